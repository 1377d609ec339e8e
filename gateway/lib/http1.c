/*
 * Strict HTTP/1.1 parsing: our own pass over the header block, llhttp for the
 * body framing. See http1.h for the contract.
 *
 * How a message goes through:
 *   1. HEAD: bytes are copied into <hbuf> (at most max_header_bytes) and
 *      scanned as they arrive: NUL and bare LF are refused at once, the start
 *      line is checked as soon as its CRLF is in (a status line is also
 *      checked byte by byte as it arrives), header lines are counted.
 *   2. On the empty line, the head is copied once more into the message's own
 *      block (struct + header array + head copy) and checked line by line
 *      there; NULs are written into that copy to terminate names and values.
 *   3. llhttp is fed the start line and only the header lines it reads
 *      itself (Connection, Content-Length, Proxy-Connection,
 *      Transfer-Encoding, Upgrade: its framing and keep-alive state), moved
 *      up in <hbuf> in their order, then the empty line: the other lines,
 *      which llhttp would only have checked (token names, field-content
 *      values, CRLF: checks of ours as strict, see build_message), are not
 *      scanned a second time. Then the body bytes straight from the
 *      caller's buffer. on_message_complete pauses llhttp, and
 *      llhttp_get_error_pos() tells where the message ended, so pipelined bytes
 *      stay with the caller. llhttp is initialised afresh for every message.
 *
 * Decisions:
 *   - A method that is a well-formed token but not one of GET HEAD POST PUT
 *     DELETE PATCH OPTIONS (CONNECT, TRACE, lowercase "get", ...) gets 501
 *     "http.not_implemented" (RFC 9110 9.1); a method with non-token bytes
 *     gets 400 "http.bad_method". The version is checked before the method,
 *     so the HTTP/2 preface "PRI * HTTP/2.0" is a 400 "http.bad_version".
 *   - Only origin-form targets: asterisk-form ("OPTIONS *") and absolute-form
 *     are "http.bad_target".
 *   - Host: at most one, exactly one on HTTP/1.1; its value may only hold
 *     unreserved / sub-delims / ':' / '[' / ']' / '%' (no '@', '/', spaces).
 *   - Upgrade requests are never switched: the message is complete after its
 *     body like any other, and the proxy strips Upgrade/Connection.
 *   - Chunk extensions are accepted (llhttp parses them) but capped at
 *     MAX_CHUNK_EXT bytes per message; trailers are discarded, capped at
 *     max_header_bytes. Neither is checked field by field: they never leave.
 *   - Responses: 1xx interim responses are skipped (at most MAX_INTERIM per
 *     exchange); 101 is refused because we never ask for an upgrade; 1xx, 204,
 *     304 and answers to HEAD have no body whatever the headers say; the body
 *     limit does not apply to the Content-Length of those.
 *   - Allocation failures answer 500 "http.out_of_memory" /
 *     "upstream.out_of_memory".
 *
 * Reason labels (request side / response side; response side is always 502
 * except out_of_memory). Requests answer 400 unless noted:
 *   http.headers_too_large (431)    upstream.headers_too_large
 *   http.too_many_headers (431)     upstream.too_many_headers
 *   http.trailers_too_large (431)   upstream.trailers_too_large
 *   http.body_too_large (413)       upstream.too_large
 *   http.nul                        upstream.invalid_nul
 *   http.bare_lf                    upstream.invalid_bare_lf
 *   http.leading_crlf               upstream.invalid_leading_crlf
 *   http.bad_request_line           upstream.invalid_status_line
 *   http.bad_version                upstream.invalid_version
 *   http.bad_method                 -
 *   http.not_implemented (501)      -
 *   http.bad_target                 -
 *   -                               upstream.invalid_status
 *   -                               upstream.invalid_101
 *   -                               upstream.invalid_interim (too many 1xx)
 *   http.obs_fold                   upstream.invalid_obs_fold
 *   http.ws_before_colon            upstream.invalid_ws_before_colon
 *   http.bad_header_name            upstream.invalid_header_name
 *   http.bad_header_value           upstream.invalid_header_value
 *   http.bad_cl                     upstream.invalid_cl
 *   http.dup_cl                     upstream.invalid_dup_cl
 *   http.bad_te                     upstream.invalid_te
 *   http.te_http10                  upstream.invalid_te_http10
 *   http.cl_te                      upstream.invalid_cl_te
 *   http.missing_host               -
 *   http.dup_host                   -
 *   http.bad_host                   -
 *   http.bad_expect                 -
 *   http.underscore_header          -  (a '_' in a name, ID_Teleservice aside)
 *   http.dup_header                 -  (ID_Teleservice, X-Correlation-ID,
 *                                       Content-Type or Authorization twice)
 *   http.body_not_allowed           -  (a body where the body-limit callback
 *                                       says none: refused before reading it)
 *   http.bad_chunk                  upstream.invalid_chunk
 *   http.truncated                  upstream.truncated (EOF inside a message)
 *   -                               upstream.no_response (EOF before any byte)
 *   http.out_of_memory (500)        upstream.out_of_memory (500)
 *   http.internal                   upstream.internal (misuse, can't happen)
 *   http.llhttp_<errno>             upstream.llhttp_<errno> (anything llhttp
 *                                   refuses that passed our checks)
 */
#include "lib/http1.h"

#include <stdlib.h>
#include <string.h>

#include <llhttp.h>

#include "lib/util.h"

#define DEFAULT_MAX_HEADER_BYTES 8192
#define DEFAULT_MAX_HEADERS 100
#define DEFAULT_MAX_BODY_BYTES (1024 * 1024)
#define MAX_CHUNK_EXT 1024 /* bytes of chunk extensions per message */
#define MAX_INTERIM 8      /* 1xx responses before the final one */

typedef enum perr {
    E_NONE = 0,
    E_HEADERS_TOO_LARGE,
    E_TOO_MANY_HEADERS,
    E_TRAILERS_TOO_LARGE,
    E_BODY_TOO_LARGE,
    E_NUL,
    E_BARE_LF,
    E_LEADING_CRLF,
    E_BAD_START_LINE,
    E_BAD_VERSION,
    E_BAD_METHOD,
    E_NOT_IMPLEMENTED,
    E_BAD_TARGET,
    E_BAD_STATUS,
    E_STATUS_101,
    E_TOO_MANY_INTERIM,
    E_OBS_FOLD,
    E_WS_BEFORE_COLON,
    E_BAD_HEADER_NAME,
    E_BAD_HEADER_VALUE,
    E_BAD_CL,
    E_DUP_CL,
    E_BAD_TE,
    E_TE_HTTP10,
    E_CL_TE,
    E_MISSING_HOST,
    E_DUP_HOST,
    E_BAD_HOST,
    E_BAD_EXPECT,
    E_UNDERSCORE_NAME,
    E_DUP_HEADER,
    E_BODY_NOT_ALLOWED,
    E_BAD_CHUNK,
    E_TRUNCATED,
    E_NO_RESPONSE,
    E_OOM,
    E_INTERNAL,
    E_LLHTTP, /* labelled by llhttp_label() */
    E__COUNT
} perr;

static const struct {
    int status; /* request side; the response side is 502 (500 for OOM) */
    const char *req;
    const char *resp;
} errtab[E__COUNT] = {
    [E_NONE] = {0, NULL, NULL},
    [E_HEADERS_TOO_LARGE] = {431, "http.headers_too_large", "upstream.headers_too_large"},
    [E_TOO_MANY_HEADERS] = {431, "http.too_many_headers", "upstream.too_many_headers"},
    [E_TRAILERS_TOO_LARGE] = {431, "http.trailers_too_large", "upstream.trailers_too_large"},
    [E_BODY_TOO_LARGE] = {413, "http.body_too_large", "upstream.too_large"},
    [E_NUL] = {400, "http.nul", "upstream.invalid_nul"},
    [E_BARE_LF] = {400, "http.bare_lf", "upstream.invalid_bare_lf"},
    [E_LEADING_CRLF] = {400, "http.leading_crlf", "upstream.invalid_leading_crlf"},
    [E_BAD_START_LINE] = {400, "http.bad_request_line", "upstream.invalid_status_line"},
    [E_BAD_VERSION] = {400, "http.bad_version", "upstream.invalid_version"},
    [E_BAD_METHOD] = {400, "http.bad_method", "upstream.internal"},
    [E_NOT_IMPLEMENTED] = {501, "http.not_implemented", "upstream.internal"},
    [E_BAD_TARGET] = {400, "http.bad_target", "upstream.internal"},
    [E_BAD_STATUS] = {400, "http.internal", "upstream.invalid_status"},
    [E_STATUS_101] = {400, "http.internal", "upstream.invalid_101"},
    [E_TOO_MANY_INTERIM] = {400, "http.internal", "upstream.invalid_interim"},
    [E_OBS_FOLD] = {400, "http.obs_fold", "upstream.invalid_obs_fold"},
    [E_WS_BEFORE_COLON] = {400, "http.ws_before_colon", "upstream.invalid_ws_before_colon"},
    [E_BAD_HEADER_NAME] = {400, "http.bad_header_name", "upstream.invalid_header_name"},
    [E_BAD_HEADER_VALUE] = {400, "http.bad_header_value", "upstream.invalid_header_value"},
    [E_BAD_CL] = {400, "http.bad_cl", "upstream.invalid_cl"},
    [E_DUP_CL] = {400, "http.dup_cl", "upstream.invalid_dup_cl"},
    [E_BAD_TE] = {400, "http.bad_te", "upstream.invalid_te"},
    [E_TE_HTTP10] = {400, "http.te_http10", "upstream.invalid_te_http10"},
    [E_CL_TE] = {400, "http.cl_te", "upstream.invalid_cl_te"},
    [E_MISSING_HOST] = {400, "http.missing_host", "upstream.internal"},
    [E_DUP_HOST] = {400, "http.dup_host", "upstream.internal"},
    [E_BAD_HOST] = {400, "http.bad_host", "upstream.internal"},
    [E_BAD_EXPECT] = {400, "http.bad_expect", "upstream.internal"},
    [E_UNDERSCORE_NAME] = {400, "http.underscore_header", "upstream.internal"},
    [E_DUP_HEADER] = {400, "http.dup_header", "upstream.internal"},
    [E_BODY_NOT_ALLOWED] = {400, "http.body_not_allowed", "upstream.internal"},
    [E_BAD_CHUNK] = {400, "http.bad_chunk", "upstream.invalid_chunk"},
    [E_TRUNCATED] = {400, "http.truncated", "upstream.truncated"},
    [E_NO_RESPONSE] = {400, "http.truncated", "upstream.no_response"},
    [E_OOM] = {500, "http.out_of_memory", "upstream.out_of_memory"},
    [E_INTERNAL] = {400, "http.internal", "upstream.internal"},
    [E_LLHTTP] = {400, NULL, NULL},
};

/* Labels for llhttp's own refusals, constant strings by construction. */
static const char *llhttp_label(int is_response, llhttp_errno_t e)
{
#define LL(NAME, lower)                                                                            \
    case HPE_##NAME:                                                                               \
        return is_response ? "upstream.llhttp_" #lower : "http.llhttp_" #lower;
    switch (e) {
        LL(INTERNAL, internal)
        LL(STRICT, strict)
        LL(CR_EXPECTED, cr_expected)
        LL(LF_EXPECTED, lf_expected)
        LL(UNEXPECTED_CONTENT_LENGTH, unexpected_content_length)
        LL(UNEXPECTED_SPACE, unexpected_space)
        LL(CLOSED_CONNECTION, closed_connection)
        LL(INVALID_METHOD, invalid_method)
        LL(INVALID_URL, invalid_url)
        LL(INVALID_CONSTANT, invalid_constant)
        LL(INVALID_VERSION, invalid_version)
        LL(INVALID_HEADER_TOKEN, invalid_header_token)
        LL(INVALID_CONTENT_LENGTH, invalid_content_length)
        LL(INVALID_CHUNK_SIZE, invalid_chunk_size)
        LL(INVALID_STATUS, invalid_status)
        LL(INVALID_EOF_STATE, invalid_eof_state)
        LL(INVALID_TRANSFER_ENCODING, invalid_transfer_encoding)
        LL(CB_MESSAGE_BEGIN, cb_message_begin)
        LL(CB_HEADERS_COMPLETE, cb_headers_complete)
        LL(CB_MESSAGE_COMPLETE, cb_message_complete)
        LL(CB_CHUNK_HEADER, cb_chunk_header)
        LL(CB_CHUNK_COMPLETE, cb_chunk_complete)
        LL(PAUSED, paused)
        LL(PAUSED_UPGRADE, paused_upgrade)
        LL(PAUSED_H2_UPGRADE, paused_h2_upgrade)
        LL(USER, user)
    default:
        return is_response ? "upstream.llhttp_other" : "http.llhttp_other";
    }
#undef LL
}

enum pstate { ST_HEAD, ST_BODY, ST_DONE, ST_DEAD };

struct gw_http_parser {
    llhttp_t ll;
    int is_response;
    gw_http_limits lim;
    enum pstate state;
    int started;
    int no_body;                   /* responses: answer to HEAD */
    gw_http_body_limit_cb body_cb; /* requests: per-message body limit */
    void *body_cb_arg;
    size_t msg_body_max; /* this message's body limit */

    /* HEAD phase: raw header block as received */
    char *hbuf;
    size_t hlen, hcap;
    size_t ll_len;     /* bytes of <hbuf> for llhttp once the head is checked */
    int ll_full;       /* tests: llhttp reads every header line */
    size_t line_start; /* offset in hbuf of the line being received */
    size_t nlines;     /* complete non-empty lines so far, start line included */
    size_t start_end;  /* offset just past the start line's CRLF */

    /* start line, recorded when its CRLF arrives */
    size_t method_len, target_off, target_len;
    int version_minor;
    int status;

    /* the message being built */
    gw_http_request *req;
    gw_http_response *resp;
    gw_buf body;
    int complete;
    int keep_alive;
    int chunked;
    int64_t declared_cl; /* Content-Length of a response with a body, else -1 */
    int interim;         /* 1xx responses skipped in this exchange */
    size_t ext_bytes, trailer_bytes;

    perr err;
    const char *err_reason; /* set with err, constant */
    int err_status;
};

/* ------------------------------------------------------------------------ */
/* character classes                                                        */

/* RFC 9110 5.6.2 token: ALPHA, DIGIT and !#$%&'*+-.^_`|~. A table: every
 * byte of every header name of the request and of the response passes here
 * (a range test and a strchr() each before). */
static const unsigned char tchar_tab[256] = {
    ['0' ... '9'] = 1, ['a' ... 'z'] = 1, ['A' ... 'Z'] = 1, ['!'] = 1, ['#'] = 1, ['$'] = 1,
    ['%'] = 1,         ['&'] = 1,         ['\''] = 1,        ['*'] = 1, ['+'] = 1, ['-'] = 1,
    ['.'] = 1,         ['^'] = 1,         ['_'] = 1,         ['`'] = 1, ['|'] = 1, ['~'] = 1,
};

static inline int is_tchar(unsigned char c)
{
    return tchar_tab[c];
}

static int is_field_vchar(unsigned char c)
{
    /* field-content: HTAB, SP, VCHAR, obs-text */
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* Whether <s>/<n> is all field-content bytes (is_field_vchar): eight bytes
 * at a time, and one by one from the first word that holds a byte below
 * 0x20 (HTAB included) or a DEL. The word tests are exact (no byte they
 * miss), so the result is the byte loop's. A bearer token is most of the
 * head: this is the head's longest scan. */
static int field_value_ok(const char *s, size_t n)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    size_t k = 0;
    for (; k + 8 <= n; k += 8) {
        uint64_t x, y;
        memcpy(&x, s + k, 8);
        y = x ^ (ones * 0x7f);
        if ((((x - ones * 0x20) & ~x) | ((y - ones) & ~y)) & highs)
            break;
    }
    for (; k < n; k++)
        if (!is_field_vchar((unsigned char)s[k]))
            return 0;
    return 1;
}

static int is_host_char(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c != 0 && strchr("-._~!$&'()*+,;=:[]%", c) != NULL;
}

static int is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* ------------------------------------------------------------------------ */
/* errors                                                                   */

static void set_err(gw_http_parser *p, perr e)
{
    if (p->err != E_NONE)
        return;
    p->err = e;
    p->err_reason = p->is_response ? errtab[e].resp : errtab[e].req;
    if (e == E_OOM)
        p->err_status = 500;
    else
        p->err_status = p->is_response ? 502 : errtab[e].status;
}

static void set_llhttp_err(gw_http_parser *p, llhttp_errno_t e)
{
    if (p->err != E_NONE)
        return;
    /* any framing error inside a chunked body: sizes, CRLFs, trailers */
    if (p->state == ST_BODY && p->chunked) {
        set_err(p, E_BAD_CHUNK);
        return;
    }
    p->err = E_LLHTTP;
    p->err_reason = llhttp_label(p->is_response, e);
    p->err_status = p->is_response ? 502 : 400;
}

/* ------------------------------------------------------------------------ */
/* llhttp callbacks (framing only)                                          */

static int cb_headers_complete(llhttp_t *ll)
{
    gw_http_parser *p = ll->data;
    if (!p->is_response)
        return 0; /* Upgrade needs no care: on_message_complete pauses first */
    int st = p->status;
    if (st / 100 == 1 || st == 204 || st == 304 || p->no_body)
        return 1; /* no body, whatever the headers say */
    return 0;
}

static int cb_body(llhttp_t *ll, const char *at, size_t len)
{
    gw_http_parser *p = ll->data;
    if (len > p->msg_body_max - p->body.len) {
        set_err(p, E_BODY_TOO_LARGE);
        return HPE_USER;
    }
    /* a declared length (checked against the bound): one allocation */
    if (p->body.cap == 0 && p->declared_cl > 0 && (uint64_t)p->declared_cl <= p->msg_body_max)
        gw_buf_reserve(&p->body, (size_t)p->declared_cl);
    gw_buf_append(&p->body, at, len);
    if (p->body.oom) {
        set_err(p, E_OOM);
        return HPE_USER;
    }
    return 0;
}

static int cb_chunk_ext(llhttp_t *ll, const char *at, size_t len)
{
    gw_http_parser *p = ll->data;
    p->ext_bytes += len;
    if (p->ext_bytes > MAX_CHUNK_EXT) {
        set_err(p, E_BAD_CHUNK);
        return HPE_USER;
    }
    return 0;
}

/* Header callbacks only fire for trailers: the head is checked by us and fed
 * to llhttp with state ST_HEAD, where they are ignored. */
static int cb_trailer(llhttp_t *ll, const char *at, size_t len)
{
    gw_http_parser *p = ll->data;
    if (p->state != ST_BODY)
        return 0;
    p->trailer_bytes += len;
    if (p->trailer_bytes > p->lim.max_header_bytes) {
        set_err(p, E_TRAILERS_TOO_LARGE);
        return HPE_USER;
    }
    return 0;
}

static int cb_message_complete(llhttp_t *ll)
{
    gw_http_parser *p = ll->data;
    p->complete = 1;
    /* before llhttp__after_message_complete clears the flags */
    p->keep_alive = llhttp_should_keep_alive(ll);
    return HPE_PAUSED;
}

static const llhttp_settings_t ll_settings = {
    .on_header_field = cb_trailer,
    .on_header_value = cb_trailer,
    .on_chunk_extension_name = cb_chunk_ext,
    .on_chunk_extension_value = cb_chunk_ext,
    .on_headers_complete = cb_headers_complete,
    .on_body = cb_body,
    .on_message_complete = cb_message_complete,
};

/* ------------------------------------------------------------------------ */
/* start lines                                                              */

static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};

/* Checks the request line <s>/<n> (CRLF excluded) and records its parts. */
static perr check_request_line(gw_http_parser *p, const char *s, size_t n)
{
    size_t sp1 = 0, sp2 = 0, nsp = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') {
            if (nsp == 0)
                sp1 = i;
            else if (nsp == 1)
                sp2 = i;
            nsp++;
        }
    }
    /* method SP target SP version, single spaces, no part empty */
    if (nsp != 2 || sp1 == 0 || sp2 == sp1 + 1 || sp2 + 1 == n)
        return E_BAD_START_LINE;

    const char *ver = s + sp2 + 1;
    size_t ver_len = n - sp2 - 1;
    if (ver_len != 8 || memcmp(ver, "HTTP/1.", 7) != 0 || (ver[7] != '0' && ver[7] != '1'))
        return E_BAD_VERSION;

    for (size_t i = 0; i < sp1; i++)
        if (!is_tchar((unsigned char)s[i]))
            return E_BAD_METHOD;
    int known = 0;
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strlen(methods[i]) == sp1 && memcmp(methods[i], s, sp1) == 0)
            known = 1;
    if (!known)
        return E_NOT_IMPLEMENTED;

    const char *t = s + sp1 + 1;
    size_t tlen = sp2 - sp1 - 1;
    if (t[0] != '/')
        return E_BAD_TARGET;
    for (size_t i = 0; i < tlen; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c < 0x21 || c > 0x7e || c == '#')
            return E_BAD_TARGET;
    }

    p->method_len = sp1;
    p->target_off = sp1 + 1;
    p->target_len = tlen;
    p->version_minor = ver[7] - '0';
    return E_NONE;
}

/* Checks the status line: HTTP/1.x SP 3DIGIT [SP reason]. A missing reason
 * (and its SP) is accepted. */
static perr check_status_line(gw_http_parser *p, const char *s, size_t n)
{
    if (n < 8 || memcmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1'))
        return E_BAD_VERSION;
    if (n < 12 || s[8] != ' ')
        return E_BAD_START_LINE;
    for (int i = 9; i < 12; i++)
        if (s[i] < '0' || s[i] > '9')
            return E_BAD_STATUS;
    int st = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    if (st < 100 || st > 599)
        return E_BAD_STATUS;
    if (n > 12) {
        if (s[12] != ' ')
            return E_BAD_START_LINE;
        for (size_t i = 13; i < n; i++)
            if (!is_field_vchar((unsigned char)s[i]))
                return E_BAD_START_LINE;
    }
    if (st == 101)
        return E_STATUS_101;
    p->version_minor = s[7] - '0';
    p->status = st;
    return E_NONE;
}

/* Checks byte <c> at offset <pos> of a status line still being received, so
 * that garbage fails on its first impossible byte instead of waiting for a
 * LF that may never come (issue 13). The shape is the one check_status_line()
 * enforces: "HTTP/1." [01] SP 3DIGIT, then SP or the CR of the CRLF, then
 * field characters. A CR at offset 0 is left to the leading-CRLF check; any
 * other CR before offset 12 cannot be valid. */
static perr check_status_byte(unsigned char c, size_t pos)
{
    static const char ver[] = "HTTP/1.";
    if (c == '\r')
        return pos == 0 || pos >= 12 ? E_NONE : pos < 8 ? E_BAD_VERSION : E_BAD_START_LINE;
    if (pos < 7)
        return c == (unsigned char)ver[pos] ? E_NONE : E_BAD_VERSION;
    if (pos == 7)
        return c == '0' || c == '1' ? E_NONE : E_BAD_VERSION;
    if (pos == 8)
        return c == ' ' ? E_NONE : E_BAD_START_LINE;
    if (pos < 12)
        return c >= '0' && c <= '9' ? E_NONE : E_BAD_STATUS;
    if (pos == 12)
        return c == ' ' ? E_NONE : E_BAD_START_LINE;
    return is_field_vchar(c) ? E_NONE : E_BAD_START_LINE;
}

/* ------------------------------------------------------------------------ */
/* the header block                                                         */

struct head_info {
    int ncl, nte, nhost, nexpect;
    int nsingle[4]; /* single_valued[] */
    int64_t cl;
    const char *host;
    size_t host_len;
};

static perr parse_cl(const char *v, size_t n, int64_t *out)
{
    if (n == 0)
        return E_BAD_CL;
    int64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return E_BAD_CL;
        int d = v[i] - '0';
        if (x > (INT64_MAX - d) / 10)
            return E_BAD_CL;
        x = x * 10 + d;
    }
    *out = x;
    return E_NONE;
}

/* Parses one header line <line>/<n> (CRLF excluded) of the message's own
 * copy into <h>, writing NULs after the name and the value. */
static perr parse_field_line(char *line, size_t n, gw_http_header *h)
{
    if (n > 0 && is_ows((unsigned char)line[0]))
        return E_OBS_FOLD;
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)line[i]))
        i++;
    if (i == n)
        return E_BAD_HEADER_NAME; /* no colon */
    if (line[i] != ':') {
        if (i > 0 && is_ows((unsigned char)line[i])) {
            size_t j = i;
            while (j < n && is_ows((unsigned char)line[j]))
                j++;
            if (j < n && line[j] == ':')
                return E_WS_BEFORE_COLON;
        }
        return E_BAD_HEADER_NAME;
    }
    if (i == 0)
        return E_BAD_HEADER_NAME;

    size_t vs = i + 1, ve = n;
    while (vs < ve && is_ows((unsigned char)line[vs]))
        vs++;
    while (ve > vs && is_ows((unsigned char)line[ve - 1]))
        ve--;
    if (!field_value_ok(line + vs, ve - vs))
        return E_BAD_HEADER_VALUE;

    line[i] = '\0';
    line[ve] = '\0'; /* ve <= n: at worst the CR of the CRLF */
    h->name = line;
    h->name_len = i;
    h->value = line + vs;
    h->value_len = ve - vs;
    return E_NONE;
}

/* Request headers that must appear at most once (Host has its own rule). */
static const gw_name single_valued[4] = {
    GW_NAME("ID_Teleservice"),
    GW_NAME("X-Correlation-ID"),
    GW_NAME("Content-Type"),
    GW_NAME("Authorization"),
};

/* Public-side rules on names: no '_' (CGI/WSGI backends map '_' and '-' to
 * the same variable), except the DGFIP's own ID_Teleservice that the CGU
 * requires; single-valued headers once. */
static perr check_request_name(const gw_http_header *h, struct head_info *hi)
{
    for (size_t i = 0; i < 4; i++) {
        if (gw_strcaseeqn(h->name, h->name_len, single_valued[i].s, single_valued[i].len))
            return ++hi->nsingle[i] > 1 ? E_DUP_HEADER : E_NONE;
    }
    if (memchr(h->name, '_', h->name_len) != NULL)
        return E_UNDERSCORE_NAME;
    return E_NONE;
}

/* Framing-relevant headers, common to both directions. */
static perr check_field(gw_http_parser *p, const gw_http_header *h, struct head_info *hi)
{
    if (!p->is_response) {
        perr e = check_request_name(h, hi);
        if (e != E_NONE)
            return e;
    }
    if (gw_strcaseeq(h->name, h->name_len, "content-length")) {
        if (++hi->ncl > 1)
            return E_DUP_CL;
        return parse_cl(h->value, h->value_len, &hi->cl);
    }
    if (gw_strcaseeq(h->name, h->name_len, "transfer-encoding")) {
        if (++hi->nte > 1 || !gw_strcaseeq(h->value, h->value_len, "chunked"))
            return E_BAD_TE;
        return E_NONE;
    }
    if (p->is_response)
        return E_NONE;
    if (gw_strcaseeq(h->name, h->name_len, "host")) {
        if (++hi->nhost > 1)
            return E_DUP_HOST;
        if (h->value_len == 0)
            return E_BAD_HOST;
        for (size_t k = 0; k < h->value_len; k++)
            if (!is_host_char((unsigned char)h->value[k]))
                return E_BAD_HOST;
        return E_NONE;
    }
    if (gw_strcaseeq(h->name, h->name_len, "expect")) {
        if (++hi->nexpect > 1 || !gw_strcaseeq(h->value, h->value_len, "100-continue"))
            return E_BAD_EXPECT;
        return E_NONE;
    }
    return E_NONE;
}

/* The header names llhttp 8.1 interprets (its framing and keep-alive flags);
 * it reads every other line only for its token names and field-content
 * values (tables: TOKEN, HEADER_CHARS = HTAB, SP..~, 0x80..0xff) and CRLF,
 * which parse_field_line() has required already. */
static const gw_name llhttp_names[5] = {
    GW_NAME("Connection"),        GW_NAME("Content-Length"), GW_NAME("Proxy-Connection"),
    GW_NAME("Transfer-Encoding"), GW_NAME("Upgrade"),
};

static int llhttp_reads(const gw_http_header *h)
{
    for (size_t i = 0; i < 5; i++)
        if (gw_strcaseeqn(h->name, h->name_len, llhttp_names[i].s, llhttp_names[i].len))
            return 1;
    return 0;
}

/* Builds the message block from the complete head in hbuf[0..hlen) and runs
 * the strict checks over it. On error, nothing is left allocated. On
 * success, hbuf[0..ll_len) is what llhttp reads: the start line, the lines
 * of llhttp_names[] as received and in their order, the empty line. */
static perr build_message(gw_http_parser *p)
{
    size_t nh = p->nlines - 1; /* header lines */
    size_t hsize = p->is_response ? sizeof(gw_http_response) : sizeof(gw_http_request);
    size_t size = hsize + nh * sizeof(gw_http_header) + p->hlen + 1;
    char *block = gw_blk_get(size, NULL); /* 1-4 KiB: kept per thread */
    if (block == NULL)
        return E_OOM;
    memset(block, 0, hsize);
    gw_http_header *hdrs = (gw_http_header *)(block + hsize);
    char *copy = (char *)(hdrs + nh);
    memcpy(copy, p->hbuf, p->hlen);
    copy[p->hlen] = '\0';

    struct head_info hi = {.cl = -1};
    perr e = E_NONE;
    size_t pos = p->start_end, k = 0; /* the start line was checked on arrival */
    size_t ll = p->start_end;         /* end of what llhttp reads, in hbuf */
    while (pos < p->hlen) {
        /* lines end in CRLF (checked on arrival); a lone CR stays inside */
        char *end = copy + pos;
        for (;;) {
            end = memchr(end, '\r', (size_t)(copy + p->hlen - end));
            if (end == NULL) {
                e = E_INTERNAL; /* the head ends in CRLF CRLF */
                goto out;
            }
            if (end[1] == '\n') /* copy[hlen] is a NUL: end[1] is in */
                break;
            end++;
        }
        size_t n = (size_t)(end - (copy + pos));
        if (n == 0)
            break; /* the final empty line */
        if (k >= nh) {
            e = E_INTERNAL;
            goto out;
        }
        e = parse_field_line(copy + pos, n, &hdrs[k]);
        if (e == E_NONE)
            e = check_field(p, &hdrs[k], &hi);
        if (e != E_NONE)
            goto out;
        if (p->ll_full || llhttp_reads(&hdrs[k])) {
            /* hbuf is not read again before llhttp: moved up (ll <= pos) */
            if (ll != pos)
                memmove(p->hbuf + ll, p->hbuf + pos, n + 2);
            ll += n + 2;
        }
        k++;
        pos += n + 2;
    }
    if (k != nh) {
        e = E_INTERNAL;
        goto out;
    }
    memcpy(p->hbuf + ll, "\r\n", 2); /* the empty line; ll + 2 <= hlen */
    p->ll_len = ll + 2;

    int minor = p->version_minor;
    if (hi.nte && hi.ncl)
        e = E_CL_TE;
    else if (hi.nte && minor == 0)
        e = E_TE_HTTP10;
    else if (!p->is_response && minor == 1 && hi.nhost == 0)
        e = E_MISSING_HOST;
    else if (hi.cl > 0 && (uint64_t)hi.cl > p->lim.max_body_bytes &&
             (p->is_response || p->body_cb == NULL)) {
        int bodyless = p->is_response &&
                       (p->status / 100 == 1 || p->status == 204 || p->status == 304 || p->no_body);
        if (!bodyless)
            e = E_BODY_TOO_LARGE;
    }
    if (e != E_NONE)
        goto out;
    p->chunked = hi.nte > 0; /* exactly "chunked", checked above */
    p->declared_cl = -1;
    if (p->is_response &&
        !(p->status / 100 == 1 || p->status == 204 || p->status == 304 || p->no_body))
        p->declared_cl = hi.cl;
    p->msg_body_max = p->lim.max_body_bytes;

    if (p->is_response) {
        gw_http_response *r = (gw_http_response *)block;
        r->status = p->status;
        r->version_minor = minor;
        r->headers = nh ? hdrs : NULL;
        r->nheaders = nh;
        p->resp = r;
    } else {
        gw_http_request *r = (gw_http_request *)block;
        memcpy(r->method, copy, p->method_len);
        r->method[p->method_len] = '\0';
        char *t = copy + p->target_off;
        t[p->target_len] = '\0';
        r->target = t;
        r->target_len = p->target_len;
        char *q = memchr(t, '?', p->target_len);
        r->path = t;
        r->path_len = q ? (size_t)(q - t) : p->target_len;
        r->query = q ? q + 1 : NULL;
        r->query_len = q ? p->target_len - r->path_len - 1 : 0;
        r->version_minor = minor;
        r->headers = nh ? hdrs : NULL;
        r->nheaders = nh;
        r->content_length = hi.cl;
        r->chunked = p->chunked;
        r->head_len = p->hlen;
        p->req = r;
    }
    block = NULL;
    if (!p->is_response && p->body_cb != NULL) {
        /* before a single body byte is read */
        size_t max = p->body_cb(p->body_cb_arg, p->req);
        if (max < p->msg_body_max)
            p->msg_body_max = max;
        int has_body = hi.cl > 0 || p->chunked;
        if (has_body && p->msg_body_max == 0)
            e = E_BODY_NOT_ALLOWED;
        else if (hi.cl > 0 && (uint64_t)hi.cl > p->msg_body_max)
            e = E_BODY_TOO_LARGE;
    }
out:
    gw_blk_put(block);
    return e;
}

/* ------------------------------------------------------------------------ */
/* feeding                                                                  */

static int hbuf_reserve(gw_http_parser *p, size_t need)
{
    if (need <= p->hcap)
        return 0;
    size_t cap = p->hcap ? p->hcap : 1024;
    while (cap < need)
        cap *= 2;
    if (cap > p->lim.max_header_bytes)
        cap = p->lim.max_header_bytes;
    char *nb = realloc(p->hbuf, cap);
    if (nb == NULL)
        return -1;
    p->hbuf = nb;
    p->hcap = cap;
    return 0;
}

/* Takes header bytes from <s>/<n>. Returns the number of bytes that belong to
 * the head; sets *done once the empty line is in. Errors via p->err. */
static size_t take_head_bytes(gw_http_parser *p, const char *s, size_t n, int *done)
{
    *done = 0;
    size_t room = p->lim.max_header_bytes - p->hlen;
    size_t take = n < room ? n : room;
    if (take == 0) {
        set_err(p, E_HEADERS_TOO_LARGE);
        return 0;
    }
    if (hbuf_reserve(p, p->hlen + take) < 0) {
        set_err(p, E_OOM);
        return 0;
    }
    memcpy(p->hbuf + p->hlen, s, take);
    size_t from = p->hlen;
    size_t to = p->hlen + take;
    for (size_t i = from; i < to; i++) {
        char c = p->hbuf[i];
        if (c != '\n' && c != '\0' && (!p->is_response || p->nlines != 0)) {
            /* Inside a request line or a field line only a NUL and the LF
             * matter: jump to the LF (or the end) with memchr instead of a
             * test per byte (the head is ~1 KiB per request). */
            const char *lf = memchr(p->hbuf + i, '\n', to - i);
            size_t stop = lf != NULL ? (size_t)(lf - p->hbuf) : to;
            const char *nul = memchr(p->hbuf + i, '\0', stop - i);
            if (nul != NULL) {
                set_err(p, E_NUL);
                return (size_t)(nul - p->hbuf) - from;
            }
            i = stop - 1; /* the loop's i++ lands on the LF */
            continue;
        }
        if (c == '\0') {
            set_err(p, E_NUL);
            return i - from;
        }
        if (c != '\n') {
            /* status line: a CR must be followed by LF, and every byte must
             * still fit the shape */
            perr e = i > p->line_start && p->hbuf[i - 1] == '\r'
                         ? E_BAD_START_LINE
                         : check_status_byte((unsigned char)c, i - p->line_start);
            if (e != E_NONE) {
                set_err(p, e);
                return i - from;
            }
            continue;
        }
        if (i == 0 || p->hbuf[i - 1] != '\r') {
            set_err(p, E_BARE_LF);
            return i - from;
        }
        const char *line = p->hbuf + p->line_start;
        size_t len = i - 1 - p->line_start;
        perr e = E_NONE;
        if (p->nlines == 0) {
            if (len == 0)
                e = E_LEADING_CRLF;
            else if (p->is_response)
                e = check_status_line(p, line, len);
            else
                e = check_request_line(p, line, len);
        } else if (len == 0) {
            p->hlen = i + 1;
            *done = 1;
            return i + 1 - from;
        } else if (p->nlines > p->lim.max_headers) {
            e = E_TOO_MANY_HEADERS; /* this is header line max_headers + 1 */
        }
        if (e != E_NONE) {
            set_err(p, e);
            return i - from;
        }
        if (p->nlines == 0)
            p->start_end = i + 1;
        p->nlines++;
        p->line_start = i + 1;
    }
    p->hlen = to;
    if (p->hlen == p->lim.max_header_bytes)
        set_err(p, E_HEADERS_TOO_LARGE);
    return take;
}

static void release_message(gw_http_parser *p)
{
    /* a complete message not taken owns its body (on_complete) */
    gw_http_request_free(p->req);
    gw_http_response_free(p->resp);
    p->req = NULL;
    p->resp = NULL;
    gw_buf_free(&p->body);
}

/* Back to the start of a message; <keep_started> for skipped 1xx responses. */
static void reset_message(gw_http_parser *p, int keep_started)
{
    release_message(p);
    p->state = ST_HEAD;
    p->started = keep_started;
    p->hlen = 0;
    p->line_start = 0;
    p->nlines = 0;
    p->start_end = 0;
    p->method_len = p->target_off = p->target_len = 0;
    p->version_minor = 0;
    p->status = 0;
    p->complete = 0;
    p->keep_alive = 0;
    p->chunked = 0;
    p->declared_cl = -1;
    p->ext_bytes = p->trailer_bytes = 0;
    /* The head buffer is released between messages: an idle keep-alive
     * connection then holds none (1-2 KiB each with a bearer token; the
     * bench's S5 holds 10,000 of them), for one malloc per request. */
    free(p->hbuf);
    p->hbuf = NULL;
    p->hcap = 0;
}

/* The message is complete: 1xx responses are dropped (returns 0, the parser
 * waits for the final response), anything else becomes DONE (returns 1). */
static int on_complete(gw_http_parser *p)
{
    if (p->is_response && p->status / 100 == 1) {
        if (++p->interim > MAX_INTERIM) {
            set_err(p, E_TOO_MANY_INTERIM);
            return 0;
        }
        reset_message(p, 1);
        return 0;
    }
    size_t blen = p->body.len;
    char *body = NULL;
    if (blen > 0) {
        body = gw_buf_take(&p->body, NULL);
        if (body == NULL) {
            set_err(p, E_OOM);
            return 0;
        }
    }
    if (p->req) {
        p->req->body = body;
        p->req->body_len = blen;
        p->req->keep_alive = p->keep_alive;
        p->req->chunked = p->chunked;
    } else {
        p->resp->body = body;
        p->resp->body_len = blen;
        p->resp->keep_alive = p->keep_alive;
    }
    p->state = ST_DONE;
    return 1;
}

/* Runs llhttp over <s>/<n>; returns the bytes used, sets *complete. */
static size_t run_llhttp(gw_http_parser *p, const char *s, size_t n, int *complete)
{
    *complete = 0;
    llhttp_errno_t e = llhttp_execute(&p->ll, s, n);
    if (e == HPE_OK)
        return n;
    if ((e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) && p->complete) {
        const char *at = llhttp_get_error_pos(&p->ll);
        if (at < s || at > s + n) {
            set_err(p, E_INTERNAL);
            return 0;
        }
        *complete = 1;
        return (size_t)(at - s);
    }
    if (e == HPE_USER && p->err != E_NONE)
        return 0;
    set_llhttp_err(p, e);
    return 0;
}

gw_http_status gw_http_parser_feed(gw_http_parser *p, const char *data, size_t len,
                                   size_t *consumed)
{
    size_t off = 0;
    gw_http_status rc = GW_HTTP_AGAIN;

    if (p->state == ST_DEAD) {
        rc = GW_HTTP_ERROR;
        goto out;
    }
    if (p->state == ST_DONE) {
        rc = GW_HTTP_COMPLETE; /* not taken yet: none of <data> is used */
        goto out;
    }
    if (len > 0)
        p->started = 1;

    while (off < len || p->state == ST_HEAD) {
        int done = 0;
        if (p->state == ST_HEAD) {
            if (off == len)
                break;
            off += take_head_bytes(p, data + off, len - off, &done);
            if (p->err != E_NONE)
                break;
            if (!done)
                continue;
            perr e = build_message(p);
            if (e != E_NONE) {
                set_err(p, e);
                break;
            }
            llhttp_init(&p->ll, p->is_response ? HTTP_RESPONSE : HTTP_REQUEST, &ll_settings);
            p->ll.data = p;
            size_t used = run_llhttp(p, p->hbuf, p->ll_len, &done);
            if (p->err != E_NONE)
                break;
            if (used != p->ll_len) {
                set_err(p, E_INTERNAL);
                break;
            }
            p->state = ST_BODY;
        } else {
            off += run_llhttp(p, data + off, len - off, &done);
            if (p->err != E_NONE)
                break;
        }
        if (done && on_complete(p)) {
            rc = GW_HTTP_COMPLETE;
            break;
        }
        if (p->err != E_NONE)
            break;
    }
    if (p->err != E_NONE) {
        release_message(p);
        p->state = ST_DEAD;
        rc = GW_HTTP_ERROR;
    }
out:
    if (consumed)
        *consumed = rc == GW_HTTP_AGAIN ? len : off;
    return rc;
}

gw_http_status gw_http_parser_finish(gw_http_parser *p)
{
    gw_http_status rc = GW_HTTP_ERROR;
    if (p->state == ST_DEAD)
        return GW_HTTP_ERROR;
    if (p->state == ST_DONE)
        return GW_HTTP_COMPLETE;
    if (p->state == ST_HEAD) {
        set_err(p, p->started ? E_TRUNCATED : E_NO_RESPONSE);
        goto out;
    }
    llhttp_errno_t e = llhttp_finish(&p->ll);
    if (e == HPE_PAUSED && p->complete) {
        if (on_complete(p))
            return GW_HTTP_COMPLETE;
        goto out;
    }
    if (p->err == E_NONE)
        set_err(p, E_TRUNCATED);
out:
    release_message(p);
    p->state = ST_DEAD;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* lifecycle and accessors                                                  */

gw_http_parser *gw_http_parser_new(int is_response, const gw_http_limits *lim)
{
    gw_http_parser *p = gw_zalloc(sizeof(*p)); /* two per forwarded request */
    if (p == NULL)
        return NULL;
    p->is_response = is_response != 0;
    if (lim) {
        p->lim = *lim;
    } else {
        p->lim.max_header_bytes = DEFAULT_MAX_HEADER_BYTES;
        p->lim.max_headers = DEFAULT_MAX_HEADERS;
        p->lim.max_body_bytes = DEFAULT_MAX_BODY_BYTES;
    }
    p->state = ST_HEAD;
    p->declared_cl = -1;
    return p;
}

void gw_http_parser_free(gw_http_parser *p)
{
    if (p == NULL)
        return;
    release_message(p);
    free(p->hbuf);
    free(p);
}

void gw_http_parser_set_body_limit_cb(gw_http_parser *p, gw_http_body_limit_cb cb, void *arg)
{
    p->body_cb = cb;
    p->body_cb_arg = arg;
}

void gw_http_parser_llhttp_full_head(gw_http_parser *p, int on)
{
    p->ll_full = on;
}

void gw_http_parser_expect_no_body(gw_http_parser *p, int no_body)
{
    p->no_body = no_body != 0;
}

int gw_http_parser_started(const gw_http_parser *p)
{
    return p->started;
}

int gw_http_parser_head_done(const gw_http_parser *p)
{
    return p->state == ST_BODY || p->state == ST_DONE;
}

size_t gw_http_parser_body_bytes(const gw_http_parser *p)
{
    return p->body.len;
}

int64_t gw_http_parser_declared_length(const gw_http_parser *p)
{
    return p->state == ST_BODY ? p->declared_cl : -1;
}

int gw_http_parser_error(const gw_http_parser *p, const char **reason)
{
    if (reason)
        *reason = p->err != E_NONE ? p->err_reason : NULL;
    return p->err != E_NONE ? p->err_status : 0;
}

gw_http_request *gw_http_parser_take_request(gw_http_parser *p)
{
    if (p->is_response || p->state != ST_DONE)
        return NULL;
    gw_http_request *r = p->req;
    p->req = NULL;
    reset_message(p, 0);
    return r;
}

gw_http_response *gw_http_parser_take_response(gw_http_parser *p)
{
    if (!p->is_response || p->state != ST_DONE)
        return NULL;
    gw_http_response *r = p->resp;
    p->resp = NULL;
    reset_message(p, 0);
    p->interim = 0;
    p->no_body = 0;
    return r;
}

void gw_http_request_free(gw_http_request *r)
{
    if (r == NULL)
        return;
    free(r->body);
    gw_blk_put(r); /* the struct, the header array and the head copy */
}

void gw_http_response_free(gw_http_response *r)
{
    if (r == NULL)
        return;
    free(r->body);
    gw_blk_put(r);
}

static const char *find_header(const gw_http_header *h, size_t n, const char *name, size_t *len)
{
    for (size_t i = 0; i < n; i++) {
        if (gw_strcaseeq(h[i].name, h[i].name_len, name)) {
            if (len)
                *len = h[i].value_len;
            return h[i].value;
        }
    }
    if (len)
        *len = 0;
    return NULL;
}

const char *gw_http_request_header(const gw_http_request *r, const char *name, size_t *len)
{
    return find_header(r->headers, r->nheaders, name, len);
}

const char *gw_http_response_header(const gw_http_response *r, const char *name, size_t *len)
{
    return find_header(r->headers, r->nheaders, name, len);
}

static int ncaseeq(const char *a, size_t an, const char *b, size_t bn)
{
    if (an != bn)
        return 0;
    for (size_t i = 0; i < an; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y + 32);
        if (x != y)
            return 0;
    }
    return 1;
}

int gw_http_is_hop_by_hop(const char *name, size_t name_len, const gw_http_header *headers,
                          size_t nheaders)
{
    static const gw_name fixed[] = {
        GW_NAME("connection"), GW_NAME("keep-alive"), GW_NAME("proxy-connection"),
        GW_NAME("te"),         GW_NAME("trailer"),    GW_NAME("transfer-encoding"),
        GW_NAME("upgrade"),
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        if (gw_strcaseeqn(name, name_len, fixed[i].s, fixed[i].len))
            return 1;
    if (name_len >= 6 && ncaseeq(name, 6, "proxy-", 6))
        return 1;
    for (size_t i = 0; i < nheaders; i++) {
        const gw_http_header *h = &headers[i];
        if (!gw_strcaseeq(h->name, h->name_len, "connection"))
            continue;
        const char *v = h->value, *end = h->value + h->value_len;
        while (v < end) {
            const char *comma = memchr(v, ',', (size_t)(end - v));
            const char *te = comma ? comma : end;
            const char *ts = v;
            while (ts < te && is_ows((unsigned char)*ts))
                ts++;
            const char *tz = te;
            while (tz > ts && is_ows((unsigned char)tz[-1]))
                tz--;
            if (tz > ts && ncaseeq(ts, (size_t)(tz - ts), name, name_len))
                return 1;
            v = comma ? comma + 1 : end;
        }
    }
    return 0;
}
