/* Unit tests for gateway/lib/http1.c: strict request/response parsing. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/http1.h"

#define RAW(s) s, sizeof(s) - 1

static const gw_http_limits LIM = {
    .max_header_bytes = 1024,
    .max_headers = 16,
    .max_body_bytes = 64,
};

/* Feeds <s>/<n> in pieces of <step> bytes (0: all at once) until the parser
 * says COMPLETE or ERROR or the input ends; <*used> is the total consumed. */
static gw_http_status feed_all(gw_http_parser *p, const char *s, size_t n, size_t step,
                               size_t *used)
{
    size_t off = 0;
    gw_http_status st = GW_HTTP_AGAIN;
    while (off < n) {
        size_t k = (step && step < n - off) ? step : n - off;
        size_t c = (size_t)-1;
        st = gw_http_parser_feed(p, s + off, k, &c);
        if (st == GW_HTTP_AGAIN)
            ck_assert_uint_eq(c, k); /* AGAIN consumes everything */
        if (st != GW_HTTP_ERROR)
            off += c;
        if (st != GW_HTTP_AGAIN)
            break;
    }
    *used = off;
    return st;
}

/* Parses one request that must be COMPLETE and use all <n> bytes. */
static gw_http_request *parse_req(const char *s, size_t n, size_t step)
{
    gw_http_parser *p = gw_http_parser_new(0, &LIM);
    ck_assert_ptr_nonnull(p);
    size_t used = 0;
    gw_http_status st = feed_all(p, s, n, step, &used);
    const char *reason = NULL;
    int status = gw_http_parser_error(p, &reason);
    ck_assert_msg(st == GW_HTTP_COMPLETE, "status %d, error %d %s", st, status,
                  reason ? reason : "-");
    ck_assert_uint_eq(used, n);
    gw_http_request *r = gw_http_parser_take_request(p);
    ck_assert_ptr_nonnull(r);
    gw_http_parser_free(p);
    return r;
}

static gw_http_response *parse_resp(const char *s, size_t n, size_t step, int no_body, size_t *used)
{
    gw_http_parser *p = gw_http_parser_new(1, &LIM);
    ck_assert_ptr_nonnull(p);
    gw_http_parser_expect_no_body(p, no_body);
    gw_http_status st = feed_all(p, s, n, step, used);
    const char *reason = NULL;
    int status = gw_http_parser_error(p, &reason);
    ck_assert_msg(st == GW_HTTP_COMPLETE, "status %d, error %d %s", st, status,
                  reason ? reason : "-");
    gw_http_response *r = gw_http_parser_take_response(p);
    ck_assert_ptr_nonnull(r);
    gw_http_parser_free(p);
    return r;
}

static void assert_hdr(const gw_http_request *r, const char *name, const char *want)
{
    size_t n = 12345;
    const char *v = gw_http_request_header(r, name, &n);
    if (want == NULL) {
        ck_assert_ptr_null(v);
        return;
    }
    ck_assert_msg(v != NULL, "header %s missing", name);
    ck_assert_uint_eq(n, strlen(want));
    ck_assert_str_eq(v, want); /* NUL-terminated at the right place */
}

/* ------------------------------------------------------------------------ */
/* refusals: every strictness rule, whole and byte by byte                  */

#define H "Host: api.example\r\n"

struct bad_case {
    const char *raw;
    size_t len;
    int status;
    const char *reason;
};

static const struct bad_case bad_requests[] = {
    /* names: no '_' but ID_Teleservice's; single-valued headers once (issue 12) */
    {RAW("GET / HTTP/1.1\r\n" H "X_Consumer_Id: a\r\n\r\n"), 400, "http.underscore_header"},
    {RAW("GET / HTTP/1.1\r\n" H "X-Consumer_Id: a\r\n\r\n"), 400, "http.underscore_header"},
    {RAW("GET / HTTP/1.1\r\n" H "X_JWT_Assertion: a\r\n\r\n"), 400, "http.underscore_header"},
    {RAW("GET / HTTP/1.1\r\n" H "ID_Teleservice_2: a\r\n\r\n"), 400, "http.underscore_header"},
    {RAW("GET / HTTP/1.1\r\n" H "ID_Teleservice: TS-0001\r\nID_Teleservice: TS-0002\r\n\r\n"), 400,
     "http.dup_header"},
    {RAW("GET / HTTP/1.1\r\n" H "ID_Teleservice: TS-0001\r\nid_teleservice: TS-0002\r\n\r\n"), 400,
     "http.dup_header"},
    {RAW("GET / HTTP/1.1\r\n" H "X-Correlation-ID: a\r\nx-correlation-id: b\r\n\r\n"), 400,
     "http.dup_header"},
    {RAW("GET / HTTP/1.1\r\n" H "Content-Type: a\r\nContent-Type: a\r\n\r\n"), 400,
     "http.dup_header"},
    {RAW("GET / HTTP/1.1\r\n" H "Authorization: a\r\nAuthorization: b\r\n\r\n"), 400,
     "http.dup_header"},
    /* request line */
    {RAW("GET  / HTTP/1.1\r\n" H "\r\n"), 400, "http.bad_request_line"},
    {RAW("GET / HTTP/1.1 \r\n" H "\r\n"), 400, "http.bad_request_line"},
    {RAW(" GET / HTTP/1.1\r\n" H "\r\n"), 400, "http.bad_request_line"},
    {RAW("GET /\r\n" H "\r\n"), 400, "http.bad_request_line"},
    {RAW("GET\t/ HTTP/1.1\r\n" H "\r\n"), 400, "http.bad_request_line"},
    {RAW("G(T / HTTP/1.1\r\n" H "\r\n"), 400, "http.bad_method"},
    {RAW("GE\x80T / HTTP/1.1\r\n" H "\r\n"), 400, "http.bad_method"},
    {RAW("CONNECT api.example:443 HTTP/1.1\r\n" H "\r\n"), 501, "http.not_implemented"},
    {RAW("TRACE / HTTP/1.1\r\n" H "\r\n"), 501, "http.not_implemented"},
    {RAW("get / HTTP/1.1\r\n" H "\r\n"), 501, "http.not_implemented"},
    {RAW("GET http://api.example/ HTTP/1.1\r\n" H "\r\n"), 400, "http.bad_target"},
    {RAW("OPTIONS * HTTP/1.1\r\n" H "\r\n"), 400, "http.bad_target"},
    {RAW("GET /a#frag HTTP/1.1\r\n" H "\r\n"), 400, "http.bad_target"},
    {RAW("GET /a\x7f HTTP/1.1\r\n" H "\r\n"), 400, "http.bad_target"},
    {RAW("GET /\xc3\xa9 HTTP/1.1\r\n" H "\r\n"), 400, "http.bad_target"},
    {RAW("GET /a\rb HTTP/1.1\r\n" H "\r\n"), 400, "http.bad_target"},
    {RAW("GET / HTTP/1.2\r\n" H "\r\n"), 400, "http.bad_version"},
    {RAW("GET / HTTP/2.0\r\n" H "\r\n"), 400, "http.bad_version"},
    {RAW("GET / http/1.1\r\n" H "\r\n"), 400, "http.bad_version"},
    {RAW("GET / HTTP/1.10\r\n" H "\r\n"), 400, "http.bad_version"},
    {RAW("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 400, "http.bad_version"},
    {RAW("\r\nGET / HTTP/1.1\r\n" H "\r\n"), 400, "http.leading_crlf"},
    /* bytes */
    {RAW("GET / HTTP/1.1\n" H "\r\n"), 400, "http.bare_lf"},
    {RAW("GET / HTTP/1.1\r\n" H "X-A: b\nc\r\n\r\n"), 400, "http.bare_lf"},
    {RAW("GET / HTTP/1.1\r\n" H "\n"), 400, "http.bare_lf"},
    {RAW("GET / HTTP/1.1\r\n" H "X-A: b\0c\r\n\r\n"), 400, "http.nul"},
    {RAW("GET /\0 HTTP/1.1\r\n" H "\r\n"), 400, "http.nul"},
    /* field lines */
    {RAW("GET / HTTP/1.1\r\nHost : api.example\r\n\r\n"), 400, "http.ws_before_colon"},
    {RAW("GET / HTTP/1.1\r\n" H "X-A\t: b\r\n\r\n"), 400, "http.ws_before_colon"},
    {RAW("GET / HTTP/1.1\r\n" H "X-A: b\r\n c\r\n\r\n"), 400, "http.obs_fold"},
    {RAW("GET / HTTP/1.1\r\n" H "X-A: b\r\n\tc\r\n\r\n"), 400, "http.obs_fold"},
    {RAW("GET / HTTP/1.1\r\n" H ": b\r\n\r\n"), 400, "http.bad_header_name"},
    {RAW("GET / HTTP/1.1\r\n" H "X@A: b\r\n\r\n"), 400, "http.bad_header_name"},
    {RAW("GET / HTTP/1.1\r\n" H "NoColonHere\r\n\r\n"), 400, "http.bad_header_name"},
    {RAW("GET / HTTP/1.1\r\n" H "X A: b\r\n\r\n"), 400, "http.bad_header_name"},
    {RAW("GET / HTTP/1.1\r\n" H "X-A: b\x01"
         "c\r\n\r\n"),
     400, "http.bad_header_value"},
    {RAW("GET / HTTP/1.1\r\n" H "X-A: b\x7f"
         "c\r\n\r\n"),
     400, "http.bad_header_value"},
    {RAW("GET / HTTP/1.1\r\n" H "X-A: b\rc\r\n\r\n"), 400, "http.bad_header_value"},
    {RAW("GET / HTTP/1.1\r\n" H "X-A: b\r\r\n\r\n"), 400, "http.bad_header_value"},
    /* framing */
    {RAW("POST / HTTP/1.1\r\n" H "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"), 400,
     "http.cl_te"},
    {RAW("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"), 400,
     "http.cl_te"},
    {RAW("POST / HTTP/1.1\r\n" H "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc"), 400,
     "http.dup_cl"},
    {RAW("POST / HTTP/1.1\r\n" H "Content-Length: 3\r\ncontent-length: 4\r\n\r\nabc"), 400,
     "http.dup_cl"},
    {RAW("POST / HTTP/1.1\r\n" H "Content-Length: +3\r\n\r\nabc"), 400, "http.bad_cl"},
    {RAW("POST / HTTP/1.1\r\n" H "Content-Length: -1\r\n\r\n"), 400, "http.bad_cl"},
    {RAW("POST / HTTP/1.1\r\n" H "Content-Length: 3 3\r\n\r\nabc"), 400, "http.bad_cl"},
    {RAW("POST / HTTP/1.1\r\n" H "Content-Length: 3,3\r\n\r\nabc"), 400, "http.bad_cl"},
    {RAW("POST / HTTP/1.1\r\n" H "Content-Length: 0x3\r\n\r\nabc"), 400, "http.bad_cl"},
    {RAW("POST / HTTP/1.1\r\n" H "Content-Length:\r\n\r\n"), 400, "http.bad_cl"},
    {RAW("POST / HTTP/1.1\r\n" H "Content-Length: 9223372036854775808\r\n\r\n"), 400,
     "http.bad_cl"},
    {RAW("POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"), 400,
     "http.bad_te"},
    {RAW("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"), 400,
     "http.bad_te"},
    {RAW("POST / HTTP/1.1\r\n" H "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"), 400,
     "http.bad_te"},
    {RAW("POST / HTTP/1.1\r\n" H "Transfer-Encoding: identity\r\n\r\n"), 400, "http.bad_te"},
    {RAW("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
         "\r\n0\r\n\r\n"),
     400, "http.bad_te"},
    {RAW("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400, "http.te_http10"},
    {RAW("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\nzz\r\n"), 400,
     "http.bad_chunk"},
    {RAW("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n"), 400,
     "http.bad_chunk"},
    {RAW("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
         "fffffffffffffffff\r\n"),
     400, "http.bad_chunk"},
    /* llhttp's own refusals keep its error name (OWS HTAB after CL/TE) */
    {RAW("POST / HTTP/1.1\r\n" H "Content-Length: 3\t\r\n\r\nabc"), 400,
     "http.llhttp_invalid_content_length"},
    {RAW("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n"), 400,
     "http.llhttp_invalid_transfer_encoding"},
    /* Host and Expect */
    {RAW("GET / HTTP/1.1\r\n\r\n"), 400, "http.missing_host"},
    {RAW("GET / HTTP/1.1\r\nX-Host: a\r\n\r\n"), 400, "http.missing_host"},
    {RAW("GET / HTTP/1.1\r\n" H "host: other\r\n\r\n"), 400, "http.dup_host"},
    {RAW("GET / HTTP/1.0\r\n" H H "\r\n"), 400, "http.dup_host"},
    {RAW("GET / HTTP/1.1\r\nHost:\r\n\r\n"), 400, "http.bad_host"},
    {RAW("GET / HTTP/1.1\r\nHost: user@api.example\r\n\r\n"), 400, "http.bad_host"},
    {RAW("GET / HTTP/1.1\r\nHost: api.example/x\r\n\r\n"), 400, "http.bad_host"},
    {RAW("GET / HTTP/1.1\r\nHost: api example\r\n\r\n"), 400, "http.bad_host"},
    {RAW("GET / HTTP/1.1\r\n" H "Expect: 200-ok\r\n\r\n"), 400, "http.bad_expect"},
    /* limits */
    {RAW("POST / HTTP/1.1\r\n" H "Content-Length: 65\r\n\r\n"), 413, "http.body_too_large"},
    {RAW("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
         "20\r\n0123456789abcdef0123456789abcdef\r\n"
         "20\r\n0123456789abcdef0123456789abcdef\r\n"
         "1\r\nX\r\n0\r\n\r\n"),
     413, "http.body_too_large"},
};

static void check_bad(int is_response, const struct bad_case *c, size_t step)
{
    gw_http_parser *p = gw_http_parser_new(is_response, &LIM);
    ck_assert_ptr_nonnull(p);
    size_t used = 0;
    gw_http_status st = feed_all(p, c->raw, c->len, step, &used);
    const char *reason = NULL;
    int status = gw_http_parser_error(p, &reason);
    ck_assert_msg(st == GW_HTTP_ERROR, "'%.*s' (step %zu): got %d, want ERROR", (int)c->len, c->raw,
                  step, st);
    ck_assert_int_eq(status, c->status);
    ck_assert_ptr_nonnull(reason);
    ck_assert_str_eq(reason, c->reason);
    /* the parser stays dead */
    size_t k = 99;
    ck_assert_int_eq(gw_http_parser_feed(p, "GET", 3, &k), GW_HTTP_ERROR);
    ck_assert_ptr_null(gw_http_parser_take_request(p));
    ck_assert_ptr_null(gw_http_parser_take_response(p));
    gw_http_parser_free(p);
}

START_TEST(test_bad_request_whole)
{
    check_bad(0, &bad_requests[_i], 0);
}
END_TEST

START_TEST(test_bad_request_bytewise)
{
    check_bad(0, &bad_requests[_i], 1);
}
END_TEST

/* Every byte value inside a header name: a token character (RFC 9110
 * 5.6.2) is accepted, anything else refuses the request ('_' is a token
 * character the gateway refuses on its own: http.underscore_header). */
START_TEST(test_header_name_bytes)
{
    static const char tokens[] = "!#$%&'*+-.^`|~";
    for (int c = 0; c < 256; c++) {
        if (c == ':')
            continue;
        char raw[64];
        int n = snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\n" H "X%cY: v\r\n\r\n", 'Z');
        ck_assert_int_gt(n, 0);
        char *at = strchr(raw + 16 + strlen(H), 'Z');
        ck_assert_ptr_nonnull(at);
        *at = (char)c;
        int token = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c != 0 && memchr(tokens, c, sizeof(tokens) - 1) != NULL);
        gw_http_parser *p = gw_http_parser_new(0, &LIM);
        ck_assert_ptr_nonnull(p);
        size_t used = 0;
        gw_http_status st = feed_all(p, raw, (size_t)n, 0, &used);
        ck_assert_msg(st == (token ? GW_HTTP_COMPLETE : GW_HTTP_ERROR), "byte 0x%02x: status %d", c,
                      st);
        if (token) {
            gw_http_request *r = gw_http_parser_take_request(p);
            ck_assert_ptr_nonnull(r);
            gw_http_request_free(r);
        }
        gw_http_parser_free(p);
    }
}
END_TEST

/* The 413 for a too large Content-Length comes before any body byte. */
START_TEST(test_cl_over_limit_refused_at_head)
{
    static const char head[] = "POST / HTTP/1.1\r\n" H "Content-Length: 65\r\n\r\n";
    gw_http_parser *p = gw_http_parser_new(0, &LIM);
    size_t used = 0;
    ck_assert_int_eq(gw_http_parser_feed(p, head, sizeof(head) - 1, &used), GW_HTTP_ERROR);
    const char *reason = NULL;
    ck_assert_int_eq(gw_http_parser_error(p, &reason), 413);
    ck_assert_str_eq(reason, "http.body_too_large");
    gw_http_parser_free(p);
}
END_TEST

/* ID_Teleservice (any case) is the one name with '_' that passes. */
START_TEST(test_id_teleservice_allowed)
{
    gw_http_request *r =
        parse_req(RAW("GET / HTTP/1.1\r\n" H "ID_Teleservice: TS-0001\r\n\r\n"), 0);
    size_t n = 0;
    ck_assert_str_eq(gw_http_request_header(r, "ID_Teleservice", &n), "TS-0001");
    gw_http_request_free(r);
}
END_TEST

/* The body-limit callback decides before any body byte is read. */
static size_t limit_cb(void *arg, const gw_http_request *r)
{
    int *calls = arg;
    (*calls)++;
    return strcmp(r->method, "POST") == 0 ? 8 : 0;
}

struct body_case {
    const char *raw;
    int status; /* 0: complete */
    const char *reason;
};

static const struct body_case body_cases[] = {
    {"GET / HTTP/1.1\r\n" H "Content-Length: 3\r\n\r\n", 400, "http.body_not_allowed"},
    {"GET / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n", 400, "http.body_not_allowed"},
    {"GET / HTTP/1.1\r\n" H "Content-Length: 1000000\r\n\r\n", 400, "http.body_not_allowed"},
    {"GET / HTTP/1.1\r\n" H "Content-Length: 0\r\n\r\n", 0, NULL},
    {"GET / HTTP/1.1\r\n" H "\r\n", 0, NULL},
    {"POST / HTTP/1.1\r\n" H "Content-Length: 9\r\n\r\n", 413, "http.body_too_large"},
    {"POST / HTTP/1.1\r\n" H "Content-Length: 8\r\n\r\n12345678", 0, NULL},
    {"POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n9\r\n123456789\r\n0\r\n\r\n", 413,
     "http.body_too_large"},
};

START_TEST(test_body_limit_cb)
{
    const struct body_case *c = &body_cases[_i];
    int calls = 0;
    gw_http_parser *p = gw_http_parser_new(0, &LIM);
    gw_http_parser_set_body_limit_cb(p, limit_cb, &calls);
    size_t used = 0;
    gw_http_status st = feed_all(p, c->raw, strlen(c->raw), 0, &used);
    ck_assert_int_eq(calls, 1);
    if (c->status == 0) {
        ck_assert_int_eq(st, GW_HTTP_COMPLETE);
        gw_http_request_free(gw_http_parser_take_request(p));
    } else {
        ck_assert_int_eq(st, GW_HTTP_ERROR);
        const char *reason = NULL;
        ck_assert_int_eq(gw_http_parser_error(p, &reason), c->status);
        ck_assert_str_eq(reason, c->reason);
    }
    gw_http_parser_free(p);
}
END_TEST

/* Chunk extensions and trailers never leave, but they are bounded. */
START_TEST(test_chunk_meta_limits)
{
    static const char head[] = "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n";
    char *s = malloc(4096);
    size_t hl = sizeof(head) - 1;
    memcpy(s, head, hl);

    /* extensions: 1000 bytes pass, 1100 do not */
    for (int big = 0; big <= 1; big++) {
        size_t n = hl;
        size_t ext = big ? 1100 : 1000;
        memcpy(s + n, "1;", 2);
        n += 2;
        memset(s + n, 'e', ext);
        n += ext;
        memcpy(s + n, "\r\nx\r\n0\r\n\r\n", 10);
        n += 10;
        if (big) {
            struct bad_case c = {s, n, 400, "http.bad_chunk"};
            check_bad(0, &c, 0);
            check_bad(0, &c, 5);
        } else {
            gw_http_request *r = parse_req(s, n, 0);
            ck_assert_uint_eq(r->body_len, 1);
            gw_http_request_free(r);
        }
    }

    /* trailers: up to max_header_bytes, the head's own fields not counted */
    static const char head2[] = "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nX-Pad: ";
    size_t h2 = sizeof(head2) - 1;
    memcpy(s, head2, h2);
    memset(s + h2, 'p', 600);
    memcpy(s + h2 + 600, "\r\n\r\n", 4);
    hl = h2 + 604;
    for (int big = 0; big <= 1; big++) {
        size_t n = hl;
        size_t val = big ? LIM.max_header_bytes : 900;
        memcpy(s + n, "0\r\nX-T: ", 8);
        n += 8;
        memset(s + n, 't', val);
        n += val;
        memcpy(s + n, "\r\n\r\n", 4);
        n += 4;
        if (big) {
            struct bad_case c = {s, n, 431, "http.trailers_too_large"};
            check_bad(0, &c, 0);
            check_bad(0, &c, 3);
        } else {
            gw_http_request *r = parse_req(s, n, 0);
            ck_assert_ptr_null(r->body);
            ck_assert_int_eq(r->chunked, 1);
            gw_http_request_free(r);
        }
    }
    free(s);
}
END_TEST

/* Header block size: exactly the limit passes, one byte more is a 431. */
static char *head_of_size(size_t size, const char *prefix)
{
    const char *tail = "\r\n\r\n";
    char *s = malloc(size + 1);
    size_t pl = strlen(prefix);
    ck_assert_uint_gt(size, pl + 8 + 4);
    memcpy(s, prefix, pl);
    memcpy(s + pl, "X-Pad: ", 7);
    memset(s + pl + 7, 'a', size - pl - 7 - 4);
    memcpy(s + size - 4, tail, 4);
    s[size] = '\0';
    return s;
}

START_TEST(test_head_limit)
{
    static const size_t steps[] = {0, 1, 7};
    for (size_t i = 0; i < 3; i++) {
        char *ok = head_of_size(LIM.max_header_bytes, "GET / HTTP/1.1\r\n" H);
        gw_http_request *r = parse_req(ok, LIM.max_header_bytes, steps[i]);
        ck_assert_uint_eq(r->head_len, LIM.max_header_bytes);
        ck_assert_uint_eq(r->nheaders, 2);
        gw_http_request_free(r);
        free(ok);

        char *big = head_of_size(LIM.max_header_bytes + 1, "GET / HTTP/1.1\r\n" H);
        struct bad_case c = {big, LIM.max_header_bytes + 1, 431, "http.headers_too_large"};
        check_bad(0, &c, steps[i]);
        free(big);
    }
    /* a head that never ends: refused as soon as the limit is reached */
    gw_http_parser *p = gw_http_parser_new(0, &LIM);
    char *junk = malloc(4096);
    memset(junk, 'a', 4096);
    memcpy(junk, "GET / HTTP/1.1\r\nX: ", 19);
    size_t used = 0;
    ck_assert_int_eq(gw_http_parser_feed(p, junk, LIM.max_header_bytes - 1, &used), GW_HTTP_AGAIN);
    ck_assert_int_eq(gw_http_parser_feed(p, junk, 1, &used), GW_HTTP_ERROR);
    const char *reason = NULL;
    ck_assert_int_eq(gw_http_parser_error(p, &reason), 431);
    ck_assert_str_eq(reason, "http.headers_too_large");
    gw_http_parser_free(p);
    free(junk);
}
END_TEST

static char *many_headers(size_t n, size_t *len)
{
    char *s = malloc(64 + n * 16);
    size_t off = (size_t)sprintf(s, "GET / HTTP/1.1\r\n" H);
    for (size_t i = 1; i < n; i++)
        off += (size_t)sprintf(s + off, "X-%zu: v\r\n", i);
    off += (size_t)sprintf(s + off, "\r\n");
    *len = off;
    return s;
}

START_TEST(test_too_many_headers)
{
    size_t len;
    char *ok = many_headers(LIM.max_headers, &len);
    gw_http_request *r = parse_req(ok, len, 0);
    ck_assert_uint_eq(r->nheaders, LIM.max_headers);
    assert_hdr(r, "x-15", "v");
    gw_http_request_free(r);
    free(ok);

    char *bad = many_headers(LIM.max_headers + 1, &len);
    struct bad_case c = {bad, len, 431, "http.too_many_headers"};
    check_bad(0, &c, 0);
    check_bad(0, &c, 1);
    free(bad);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* valid requests                                                           */

START_TEST(test_get_basic)
{
    static const char s[] = "GET /opale/v1/etatSante HTTP/1.1\r\nHost: api.example\r\n"
                            "X-Correlation-ID: 3f2b\r\n\r\n";
    gw_http_request *r = parse_req(s, sizeof(s) - 1, 0);
    ck_assert_str_eq(r->method, "GET");
    ck_assert_str_eq(r->target, "/opale/v1/etatSante");
    ck_assert_uint_eq(r->target_len, 19);
    ck_assert_uint_eq(r->path_len, 19);
    ck_assert_ptr_null(r->query);
    ck_assert_uint_eq(r->query_len, 0);
    ck_assert_int_eq(r->version_minor, 1);
    ck_assert_int_eq(r->keep_alive, 1);
    ck_assert_int_eq(r->chunked, 0);
    ck_assert(r->content_length == -1);
    ck_assert_ptr_null(r->body);
    ck_assert_uint_eq(r->body_len, 0);
    ck_assert_uint_eq(r->head_len, sizeof(s) - 1);
    ck_assert_uint_eq(r->nheaders, 2);
    ck_assert_str_eq(r->headers[0].name, "Host");
    ck_assert_uint_eq(r->headers[0].name_len, 4);
    ck_assert_str_eq(r->headers[1].name, "X-Correlation-ID");
    assert_hdr(r, "host", "api.example");
    assert_hdr(r, "x-correlation-id", "3f2b");
    assert_hdr(r, "X-CORRELATION-ID", "3f2b");
    assert_hdr(r, "X-Correlation", NULL);
    gw_http_request_free(r);
    gw_http_request_free(NULL);
}
END_TEST

START_TEST(test_query_split)
{
    static const char s[] = "GET /e/123/declarations?annee=2024&x=%20 HTTP/1.1\r\n" H "\r\n";
    gw_http_request *r = parse_req(s, sizeof(s) - 1, 0);
    ck_assert_str_eq(r->target, "/e/123/declarations?annee=2024&x=%20");
    ck_assert_uint_eq(r->path_len, strlen("/e/123/declarations"));
    ck_assert(memcmp(r->path, "/e/123/declarations", r->path_len) == 0);
    ck_assert_ptr_nonnull(r->query);
    ck_assert_str_eq(r->query, "annee=2024&x=%20");
    ck_assert_uint_eq(r->query_len, strlen("annee=2024&x=%20"));
    gw_http_request_free(r);

    static const char e[] = "GET /a? HTTP/1.1\r\n" H "\r\n";
    r = parse_req(e, sizeof(e) - 1, 0);
    ck_assert_uint_eq(r->path_len, 2);
    ck_assert_ptr_nonnull(r->query);
    ck_assert_uint_eq(r->query_len, 0);
    gw_http_request_free(r);
}
END_TEST

START_TEST(test_ows_and_values)
{
    static const char s[] = "GET / HTTP/1.1\r\n" H "X-A: \t v a l \t \r\nX-Empty:\r\n"
                            "X-Sp:   \r\nX-Obs: caf\xc3\xa9\r\nX-Tab:a\tb\r\n\r\n";
    gw_http_request *r = parse_req(s, sizeof(s) - 1, 0);
    assert_hdr(r, "x-a", "v a l");
    assert_hdr(r, "x-empty", "");
    assert_hdr(r, "x-sp", "");
    assert_hdr(r, "x-obs", "caf\xc3\xa9");
    assert_hdr(r, "x-tab", "a\tb");
    ck_assert_uint_eq(r->nheaders, 6);
    gw_http_request_free(r);
}
END_TEST

struct ka_case {
    const char *raw;
    int version_minor;
    int keep_alive;
};

static const struct ka_case ka_cases[] = {
    {"GET / HTTP/1.1\r\n" H "\r\n", 1, 1},
    {"GET / HTTP/1.1\r\n" H "Connection: close\r\n\r\n", 1, 0},
    {"GET / HTTP/1.1\r\n" H "Connection: keep-alive\r\n\r\n", 1, 1},
    {"GET / HTTP/1.0\r\n\r\n", 0, 0},
    {"GET / HTTP/1.0\r\n" H "\r\n", 0, 0},
    {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0, 1},
};

START_TEST(test_keep_alive)
{
    const struct ka_case *c = &ka_cases[_i];
    gw_http_request *r = parse_req(c->raw, strlen(c->raw), 0);
    ck_assert_int_eq(r->version_minor, c->version_minor);
    ck_assert_int_eq(r->keep_alive, c->keep_alive);
    gw_http_request_free(r);
}
END_TEST

START_TEST(test_methods)
{
    static const char *const m[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    char s[128];
    int n = snprintf(s, sizeof(s), "%s /x HTTP/1.1\r\n" H "\r\n", m[_i]);
    gw_http_request *r = parse_req(s, (size_t)n, 0);
    ck_assert_str_eq(r->method, m[_i]);
    gw_http_request_free(r);
}
END_TEST

START_TEST(test_post_content_length)
{
    static const char s[] = "POST /token HTTP/1.1\r\n" H "Content-Length: 11\r\n\r\n"
                            "hello world";
    gw_http_request *r = parse_req(s, sizeof(s) - 1, 0);
    ck_assert_str_eq(r->method, "POST");
    ck_assert(r->content_length == 11);
    ck_assert_uint_eq(r->body_len, 11);
    ck_assert(memcmp(r->body, "hello world", 11) == 0);
    ck_assert_int_eq(r->chunked, 0);
    ck_assert_uint_eq(r->head_len, sizeof(s) - 1 - 11);
    gw_http_request_free(r);

    /* at the limit exactly */
    char big[256];
    int n = snprintf(big, sizeof(big), "POST / HTTP/1.1\r\n" H "Content-Length: %zu\r\n\r\n",
                     LIM.max_body_bytes);
    memset(big + n, 'z', LIM.max_body_bytes);
    r = parse_req(big, (size_t)n + LIM.max_body_bytes, 0);
    ck_assert_uint_eq(r->body_len, LIM.max_body_bytes);
    gw_http_request_free(r);

    static const char z[] = "POST / HTTP/1.1\r\n" H "Content-Length: 000\r\n\r\n";
    r = parse_req(z, sizeof(z) - 1, 0);
    ck_assert(r->content_length == 0);
    ck_assert_ptr_null(r->body);
    gw_http_request_free(r);
}
END_TEST

START_TEST(test_chunked_body)
{
    static const char s[] = "POST / HTTP/1.1\r\n" H "Transfer-Encoding: Chunked\r\n\r\n"
                            "5\r\nhello\r\n"
                            "6;name=value\r\n world\r\n"
                            "0\r\nX-Trailer: t\r\n\r\n";
    gw_http_request *r = parse_req(s, sizeof(s) - 1, 0);
    ck_assert_int_eq(r->chunked, 1);
    ck_assert(r->content_length == -1);
    ck_assert_uint_eq(r->body_len, 11);
    ck_assert(memcmp(r->body, "hello world", 11) == 0);
    ck_assert_uint_eq(r->nheaders, 2); /* trailers are not headers */
    assert_hdr(r, "x-trailer", NULL);
    gw_http_request_free(r);
}
END_TEST

START_TEST(test_expect_and_upgrade)
{
    static const char e[] = "POST / HTTP/1.1\r\n" H "Expect: 100-Continue\r\n"
                            "Content-Length:  2 \r\n\r\nok";
    gw_http_request *r = parse_req(e, sizeof(e) - 1, 0);
    ck_assert_uint_eq(r->body_len, 2);
    gw_http_request_free(r);

    /* an upgrade request is an ordinary request: what follows is HTTP */
    static const char u[] = "GET /ws HTTP/1.1\r\n" H "Connection: Upgrade\r\n"
                            "Upgrade: websocket\r\n\r\n"
                            "GET /next HTTP/1.1\r\n" H "\r\n";
    size_t first = strlen("GET /ws HTTP/1.1\r\n" H "Connection: Upgrade\r\n"
                          "Upgrade: websocket\r\n\r\n");
    gw_http_parser *p = gw_http_parser_new(0, &LIM);
    size_t used = 0;
    ck_assert_int_eq(gw_http_parser_feed(p, u, sizeof(u) - 1, &used), GW_HTTP_COMPLETE);
    ck_assert_uint_eq(used, first);
    r = gw_http_parser_take_request(p);
    ck_assert_str_eq(r->target, "/ws");
    assert_hdr(r, "upgrade", "websocket");
    gw_http_request_free(r);
    ck_assert_int_eq(gw_http_parser_feed(p, u + used, sizeof(u) - 1 - used, &used),
                     GW_HTTP_COMPLETE);
    r = gw_http_parser_take_request(p);
    ck_assert_str_eq(r->target, "/next");
    gw_http_request_free(r);

    /* with a body: the body is read as such */
    static const char ub[] = "POST /ws HTTP/1.1\r\n" H "Connection: upgrade\r\n"
                             "Upgrade: websocket\r\nContent-Length: 3\r\n\r\nabcGET";
    ck_assert_int_eq(gw_http_parser_feed(p, ub, sizeof(ub) - 1, &used), GW_HTTP_COMPLETE);
    ck_assert_uint_eq(used, sizeof(ub) - 1 - 3);
    r = gw_http_parser_take_request(p);
    ck_assert_uint_eq(r->body_len, 3);
    ck_assert(memcmp(r->body, "abc", 3) == 0);
    gw_http_request_free(r);
    gw_http_parser_free(p);
}
END_TEST

/* Byte-by-byte (and odd-sized) feeding gives the same request. */
static const char *const valid_requests[] = {
    "GET /a/b?c=d HTTP/1.1\r\n" H "X-A:  x  \r\nConnection: close\r\n\r\n",
    "POST /token HTTP/1.1\r\n" H "Content-Length: 5\r\n\r\nhello",
    "POST /c HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
    "3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: v\r\n\r\n",
    "DELETE /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
};

static void assert_same_request(const gw_http_request *a, const gw_http_request *b)
{
    ck_assert_str_eq(a->method, b->method);
    ck_assert_str_eq(a->target, b->target);
    ck_assert_uint_eq(a->path_len, b->path_len);
    ck_assert_uint_eq(a->query_len, b->query_len);
    ck_assert_int_eq(a->version_minor, b->version_minor);
    ck_assert_int_eq(a->keep_alive, b->keep_alive);
    ck_assert_int_eq(a->chunked, b->chunked);
    ck_assert(a->content_length == b->content_length);
    ck_assert_uint_eq(a->head_len, b->head_len);
    ck_assert_uint_eq(a->nheaders, b->nheaders);
    for (size_t i = 0; i < a->nheaders; i++) {
        ck_assert_str_eq(a->headers[i].name, b->headers[i].name);
        ck_assert_str_eq(a->headers[i].value, b->headers[i].value);
    }
    ck_assert_uint_eq(a->body_len, b->body_len);
    if (a->body_len)
        ck_assert(memcmp(a->body, b->body, a->body_len) == 0);
}

START_TEST(test_bytewise_same)
{
    const char *s = valid_requests[_i];
    gw_http_request *whole = parse_req(s, strlen(s), 0);
    ck_assert_uint_gt(whole->nheaders, 0);
    for (size_t step = 1; step <= 3; step++) {
        gw_http_request *r = parse_req(s, strlen(s), step);
        assert_same_request(whole, r);
        gw_http_request_free(r);
    }
    gw_http_request_free(whole);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* pipelining and parser state                                              */

START_TEST(test_pipelining)
{
    static const char r1[] = "POST /one HTTP/1.1\r\n" H "Content-Length: 3\r\n\r\nabc";
    static const char r2[] = "POST /two HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
                             "2\r\nxy\r\n0\r\n\r\n";
    static const char r3[] = "GET /three HTTP/1.1\r\n" H "\r\n";
    char all[512];
    size_t l1 = sizeof(r1) - 1, l2 = sizeof(r2) - 1, l3 = sizeof(r3) - 1;
    memcpy(all, r1, l1);
    memcpy(all + l1, r2, l2);
    memcpy(all + l1 + l2, r3, l3);
    size_t total = l1 + l2 + l3;
    static const char *const targets[] = {"/one", "/two", "/three"};
    const size_t lens[] = {l1, l2, l3};

    for (size_t step = 0; step <= 1; step++) {
        gw_http_parser *p = gw_http_parser_new(0, &LIM);
        size_t off = 0;
        for (int i = 0; i < 3; i++) {
            size_t used = 0;
            ck_assert_int_eq(feed_all(p, all + off, total - off, step, &used), GW_HTTP_COMPLETE);
            ck_assert_uint_eq(used, lens[i]);
            /* not taken yet: more input is not used */
            size_t k = 99;
            if (off + used < total) {
                ck_assert_int_eq(gw_http_parser_feed(p, all + off + used, 1, &k), GW_HTTP_COMPLETE);
                ck_assert_uint_eq(k, 0);
            }
            gw_http_request *r = gw_http_parser_take_request(p);
            ck_assert_ptr_nonnull(r);
            ck_assert_str_eq(r->target, targets[i]);
            ck_assert_ptr_null(gw_http_parser_take_request(p));
            gw_http_request_free(r);
            off += used;
        }
        ck_assert_uint_eq(off, total);
        gw_http_parser_free(p);
    }
}
END_TEST

START_TEST(test_state_accessors)
{
    gw_http_parser *p = gw_http_parser_new(0, &LIM);
    const char *reason = "x";
    ck_assert_int_eq(gw_http_parser_error(p, &reason), 0);
    ck_assert_ptr_null(reason);
    ck_assert_int_eq(gw_http_parser_started(p), 0);
    ck_assert_int_eq(gw_http_parser_head_done(p), 0);
    size_t used = 0;
    ck_assert_int_eq(gw_http_parser_feed(p, "", 0, &used), GW_HTTP_AGAIN);
    ck_assert_int_eq(gw_http_parser_started(p), 0);
    ck_assert_int_eq(gw_http_parser_feed(p, "POST", 4, &used), GW_HTTP_AGAIN);
    ck_assert_uint_eq(used, 4);
    ck_assert_int_eq(gw_http_parser_started(p), 1);
    ck_assert_int_eq(gw_http_parser_head_done(p), 0);
    ck_assert_ptr_null(gw_http_parser_take_request(p));
    static const char rest[] = " / HTTP/1.1\r\n" H "Content-Length: 2\r\n\r\n";
    ck_assert_int_eq(gw_http_parser_feed(p, rest, sizeof(rest) - 1, &used), GW_HTTP_AGAIN);
    ck_assert_int_eq(gw_http_parser_head_done(p), 1);
    ck_assert_int_eq(gw_http_parser_feed(p, "o", 1, &used), GW_HTTP_AGAIN);
    ck_assert_int_eq(gw_http_parser_feed(p, "k", 1, &used), GW_HTTP_COMPLETE);
    ck_assert_uint_eq(used, 1);
    ck_assert_int_eq(gw_http_parser_started(p), 1);
    ck_assert_int_eq(gw_http_parser_head_done(p), 1);
    ck_assert_ptr_null(gw_http_parser_take_response(p));
    gw_http_request *r = gw_http_parser_take_request(p);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(gw_http_parser_started(p), 0);
    ck_assert_int_eq(gw_http_parser_head_done(p), 0);
    gw_http_request_free(r);
    /* EOF in the middle of a request */
    ck_assert_int_eq(gw_http_parser_feed(p, "GET", 3, &used), GW_HTTP_AGAIN);
    ck_assert_int_eq(gw_http_parser_finish(p), GW_HTTP_ERROR);
    ck_assert_int_eq(gw_http_parser_error(p, &reason), 400);
    ck_assert_str_eq(reason, "http.truncated");
    gw_http_parser_free(p);
    gw_http_parser_free(NULL);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* responses                                                                */

START_TEST(test_resp_content_length)
{
    static const char s[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                            "Content-Length: 5\r\n\r\n{\"a\"}";
    for (size_t step = 0; step <= 1; step++) {
        size_t used = 0;
        gw_http_response *r = parse_resp(s, sizeof(s) - 1, step, 0, &used);
        ck_assert_uint_eq(used, sizeof(s) - 1);
        ck_assert_int_eq(r->status, 200);
        ck_assert_int_eq(r->version_minor, 1);
        ck_assert_int_eq(r->keep_alive, 1);
        ck_assert_uint_eq(r->nheaders, 2);
        size_t n = 0;
        const char *v = gw_http_response_header(r, "content-type", &n);
        ck_assert_ptr_nonnull(v);
        ck_assert_str_eq(v, "application/json");
        ck_assert_uint_eq(r->body_len, 5);
        ck_assert(memcmp(r->body, "{\"a\"}", 5) == 0);
        gw_http_response_free(r);
    }
    gw_http_response_free(NULL);
}
END_TEST

START_TEST(test_resp_chunked)
{
    static const char s[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "4\r\nabcd\r\n3;x=y\r\nefg\r\n0\r\nX-T: 1\r\n\r\n";
    for (size_t step = 0; step <= 1; step++) {
        size_t used = 0;
        gw_http_response *r = parse_resp(s, sizeof(s) - 1, step, 0, &used);
        ck_assert_uint_eq(used, sizeof(s) - 1);
        ck_assert_uint_eq(r->body_len, 7);
        ck_assert(memcmp(r->body, "abcdefg", 7) == 0);
        ck_assert_uint_eq(r->nheaders, 1);
        ck_assert_ptr_null(gw_http_response_header(r, "x-t", NULL));
        ck_assert_int_eq(r->keep_alive, 1);
        gw_http_response_free(r);
    }
}
END_TEST

START_TEST(test_resp_until_close)
{
    static const char s[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome body";
    gw_http_parser *p = gw_http_parser_new(1, &LIM);
    size_t used = 0;
    ck_assert_int_eq(feed_all(p, s, sizeof(s) - 1, 1, &used), GW_HTTP_AGAIN);
    ck_assert_uint_eq(used, sizeof(s) - 1);
    ck_assert_ptr_null(gw_http_parser_take_response(p));
    ck_assert_int_eq(gw_http_parser_finish(p), GW_HTTP_COMPLETE);
    gw_http_response *r = gw_http_parser_take_response(p);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->keep_alive, 0);
    ck_assert_uint_eq(r->body_len, 9);
    ck_assert(memcmp(r->body, "some body", 9) == 0);
    gw_http_response_free(r);
    gw_http_parser_free(p);
}
END_TEST

struct nobody_case {
    const char *raw;
    int no_body;
    int status;
};

static const struct nobody_case nobody_cases[] = {
    {"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n", 0, 204},
    {"HTTP/1.1 204 No Content\r\n\r\n", 0, 204},
    {"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", 0, 304},
    {"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", 1, 200},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 1, 200},
};

START_TEST(test_resp_no_body)
{
    const struct nobody_case *c = &nobody_cases[_i];
    char buf[256];
    size_t n = strlen(c->raw);
    memcpy(buf, c->raw, n);
    memcpy(buf + n, "abc", 3); /* not a body: the next response's bytes */
    size_t used = 0;
    gw_http_response *r = parse_resp(buf, n + 3, 0, c->no_body, &used);
    ck_assert_uint_eq(used, n);
    ck_assert_int_eq(r->status, c->status);
    ck_assert_ptr_null(r->body);
    ck_assert_uint_eq(r->body_len, 0);
    ck_assert_int_eq(r->keep_alive, 1);
    gw_http_response_free(r);
}
END_TEST

START_TEST(test_resp_interim_skipped)
{
    static const char s[] = "HTTP/1.1 100 Continue\r\n\r\n"
                            "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                            "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
    for (size_t step = 0; step <= 1; step++) {
        size_t used = 0;
        gw_http_response *r = parse_resp(s, sizeof(s) - 1, step, 0, &used);
        ck_assert_uint_eq(used, sizeof(s) - 1);
        ck_assert_int_eq(r->status, 201);
        ck_assert_uint_eq(r->nheaders, 1);
        ck_assert_ptr_null(gw_http_response_header(r, "link", NULL));
        ck_assert_uint_eq(r->body_len, 2);
        gw_http_response_free(r);
    }

    /* the 1xx count and expect_no_body belong to one exchange */
    static const char five[] = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
                               "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
                               "HTTP/1.1 100 Continue\r\n\r\n"
                               "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    gw_http_parser *p = gw_http_parser_new(1, &LIM);
    gw_http_parser_expect_no_body(p, 1);
    size_t used = 0;
    ck_assert_int_eq(gw_http_parser_feed(p, five, sizeof(five) - 1, &used), GW_HTTP_COMPLETE);
    ck_assert_uint_eq(used, sizeof(five) - 1 - 2);
    gw_http_response *r = gw_http_parser_take_response(p);
    ck_assert_uint_eq(r->body_len, 0);
    gw_http_response_free(r);
    ck_assert_int_eq(gw_http_parser_feed(p, five, sizeof(five) - 1, &used), GW_HTTP_COMPLETE);
    ck_assert_uint_eq(used, sizeof(five) - 1);
    r = gw_http_parser_take_response(p);
    ck_assert_uint_eq(r->body_len, 2);
    gw_http_response_free(r);
    gw_http_parser_free(p);
}
END_TEST

struct respka_case {
    const char *raw;
    int keep_alive;
};

static const struct respka_case respka_cases[] = {
    {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1},
    {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 0},
    {"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 0},
    {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", 1},
    {"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", 1},
};

START_TEST(test_resp_keep_alive)
{
    const struct respka_case *c = &respka_cases[_i];
    size_t used = 0;
    gw_http_response *r = parse_resp(c->raw, strlen(c->raw), 0, 0, &used);
    ck_assert_int_eq(r->status, 200);
    ck_assert_int_eq(r->keep_alive, c->keep_alive);
    gw_http_response_free(r);
}
END_TEST

static const struct bad_case bad_responses[] = {
    {RAW("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"), 502, "upstream.invalid_bare_lf"},
    {RAW("HTTP/1.1 200 OK\r\nX: a\0\r\n\r\n"), 502, "upstream.invalid_nul"},
    {RAW("HTTP/2 200 OK\r\n\r\n"), 502, "upstream.invalid_version"},
    {RAW("HTTP/1.1  200 OK\r\n\r\n"), 502, "upstream.invalid_status"},
    {RAW("HTTP/1.1 20 OK\r\n\r\n"), 502, "upstream.invalid_status"},
    {RAW("HTTP/1.1 099 X\r\n\r\n"), 502, "upstream.invalid_status"},
    {RAW("HTTP/1.1 200OK\r\n\r\n"), 502, "upstream.invalid_status_line"},
    {RAW("HTTP/1.1 200 O\x01K\r\n\r\n"), 502, "upstream.invalid_status_line"},
    {RAW("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"), 502, "upstream.invalid_101"},
    {RAW("\r\nHTTP/1.1 200 OK\r\n\r\n"), 502, "upstream.invalid_leading_crlf"},
    {RAW("HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n"), 502, "upstream.invalid_ws_before_colon"},
    {RAW("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"), 502, "upstream.invalid_obs_fold"},
    {RAW("HTTP/1.1 200 OK\r\nX(: a\r\n\r\n"), 502, "upstream.invalid_header_name"},
    {RAW("HTTP/1.1 200 OK\r\nX: a\x7f\r\n\r\n"), 502, "upstream.invalid_header_value"},
    {RAW("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na"), 502,
     "upstream.invalid_dup_cl"},
    {RAW("HTTP/1.1 200 OK\r\nContent-Length: 1a\r\n\r\na"), 502, "upstream.invalid_cl"},
    {RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), 502, "upstream.invalid_te"},
    {RAW("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), 502,
     "upstream.invalid_te_http10"},
    {RAW("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"), 502,
     "upstream.invalid_cl_te"},
    {RAW("HTTP/1.1 200 OK\r\nContent-Length: 65\r\n\r\n"), 502, "upstream.too_large"},
    {RAW("HTTP/1.1 200 OK\r\n\r\n"
         "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdefX"),
     502, "upstream.too_large"},
    {RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n"
         "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdefX\r\n0\r\n\r\n"),
     502, "upstream.too_large"},
    {RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n"), 502,
     "upstream.invalid_chunk"},
    {RAW("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
         "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
         "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
         "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
         "HTTP/1.1 100 Continue\r\n\r\n"),
     502, "upstream.invalid_interim"},
};

START_TEST(test_bad_response)
{
    check_bad(1, &bad_responses[_i], 0);
    check_bad(1, &bad_responses[_i], 1);
}
END_TEST

START_TEST(test_resp_limits_and_eof)
{
    char *big = head_of_size(LIM.max_header_bytes + 1, "HTTP/1.1 200 OK\r\n");
    struct bad_case c = {big, LIM.max_header_bytes + 1, 502, "upstream.headers_too_large"};
    check_bad(1, &c, 0);
    free(big);

    const char *reason = NULL;
    /* EOF before anything */
    gw_http_parser *p = gw_http_parser_new(1, &LIM);
    ck_assert_int_eq(gw_http_parser_finish(p), GW_HTTP_ERROR);
    ck_assert_int_eq(gw_http_parser_error(p, &reason), 502);
    ck_assert_str_eq(reason, "upstream.no_response");
    gw_http_parser_free(p);

    /* EOF inside a Content-Length body, inside a head, inside chunks */
    static const char *const cut[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc",
        "HTTP/1.1 200 OK\r\nContent-Len",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        "HTTP/1.1 100 Continue\r\n\r\n",
    };
    for (size_t i = 0; i < 4; i++) {
        p = gw_http_parser_new(1, &LIM);
        size_t used = 0;
        ck_assert_int_eq(gw_http_parser_feed(p, cut[i], strlen(cut[i]), &used), GW_HTTP_AGAIN);
        ck_assert_int_eq(gw_http_parser_started(p), 1);
        ck_assert_int_eq(gw_http_parser_finish(p), GW_HTTP_ERROR);
        ck_assert_int_eq(gw_http_parser_error(p, &reason), 502);
        ck_assert_str_eq(reason, "upstream.truncated");
        gw_http_parser_free(p);
    }

    /* a parser for responses refuses to hand out requests */
    p = gw_http_parser_new(1, &LIM);
    size_t used = 0;
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    ck_assert_int_eq(gw_http_parser_feed(p, ok, sizeof(ok) - 1, &used), GW_HTTP_COMPLETE);
    ck_assert_ptr_null(gw_http_parser_take_request(p));
    gw_http_response *r = gw_http_parser_take_response(p);
    ck_assert_ptr_nonnull(r);
    gw_http_response_free(r);
    gw_http_parser_free(p);
}
END_TEST

/* Issue 13: a status line that cannot be valid fails on its first impossible
 * byte, without waiting for a LF that garbage may never send. */
static const struct bad_case bad_status_prefixes[] = {
    {RAW("X"), 502, "upstream.invalid_version"},
    {RAW("HTTP/1.2"), 502, "upstream.invalid_version"},
    {RAW("HTTP/2"), 502, "upstream.invalid_version"},
    {RAW("HTTP/1.1x"), 502, "upstream.invalid_status_line"},
    {RAW("HTTP/1.1 2x"), 502, "upstream.invalid_status"},
    {RAW("HTTP/1.1 200x"), 502, "upstream.invalid_status_line"},
    {RAW("HTTP/1.1 200 O\x01"), 502, "upstream.invalid_status_line"},
    {RAW("HTTP/1\r"), 502, "upstream.invalid_version"},
    {RAW("HTTP/1.1 20\r"), 502, "upstream.invalid_status_line"},
    {RAW("HTTP/1.1 200\rX"), 502, "upstream.invalid_status_line"},
    {RAW("HTTP/1.1 200 OK\r "), 502, "upstream.invalid_status_line"},
};

/* A field value is checked eight bytes at a time: every byte value, at
 * every position of a word and across two words, gets the verdict of the
 * byte rule (HTAB, SP, VCHAR, obs-text; CR and LF frame the line and are
 * tested elsewhere). */
START_TEST(test_field_value_every_byte)
{
    for (unsigned b = 0; b < 256; b++) {
        if (b == '\r' || b == '\n')
            continue;
        int ok = b == '\t' || (b >= 0x20 && b != 0x7f);
        for (size_t pos = 0; pos < 20; pos++) {
            char raw[128];
            int n = snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: a\r\nX-A: ");
            memset(raw + n, 'v', 20);
            raw[n + (int)pos] = (char)b;
            n += 20;
            n += snprintf(raw + n, sizeof(raw) - (size_t)n, "\r\n\r\n");
            gw_http_parser *p = gw_http_parser_new(0, &LIM);
            size_t used = 0;
            gw_http_status st = feed_all(p, raw, (size_t)n, 0, &used);
            ck_assert_msg(st == (ok ? GW_HTTP_COMPLETE : GW_HTTP_ERROR), "byte 0x%02x at %zu: %d",
                          b, pos, st);
            const char *reason = NULL;
            (void)gw_http_parser_error(p, &reason);
            if (!ok) /* refused by our check, not llhttp's */
                ck_assert_str_eq(reason, b == 0 ? "http.nul" : "http.bad_header_value");
            gw_http_request_free(gw_http_parser_take_request(p));
            gw_http_parser_free(p);
        }
    }
}
END_TEST

START_TEST(test_resp_status_prefix_fails_early)
{
    const struct bad_case *c = &bad_status_prefixes[_i];
    gw_http_parser *p = gw_http_parser_new(1, &LIM);
    size_t used = 0;
    const char *reason = NULL;
    ck_assert_int_eq(gw_http_parser_feed(p, c->raw, c->len, &used), GW_HTTP_ERROR);
    ck_assert_int_eq(gw_http_parser_error(p, &reason), c->status);
    ck_assert_str_eq(reason, c->reason);
    gw_http_parser_free(p);
}
END_TEST

START_TEST(test_resp_status_prefix_valid_waits)
{
    /* every prefix of valid status lines still waits for more */
    static const char *const ok[] = {"HTTP/1.1 200 OK\r", "HTTP/1.0 404 Not Found \t\x80\r",
                                     "HTTP/1.1 204\r", "\r"};
    for (size_t k = 0; k < sizeof(ok) / sizeof(ok[0]); k++) {
        for (size_t n = 1; n <= strlen(ok[k]); n++) {
            gw_http_parser *p = gw_http_parser_new(1, &LIM);
            size_t used = 0;
            ck_assert_int_eq(gw_http_parser_feed(p, ok[k], n, &used), GW_HTTP_AGAIN);
            gw_http_parser_free(p);
        }
    }
}
END_TEST

START_TEST(test_resp_random_garbage_fails_at_once)
{
    /* seeded random replies without NUL or LF: each one fails within its
     * bytes, whatever it holds (before, one in three waited for a LF) */
    uint64_t x = 0x13u;
    for (int k = 0; k < 2000; k++) {
        char buf[64];
        size_t n = 1 + (size_t)(k % 64);
        for (size_t i = 0; i < n; i++) {
            do {
                x = x * 6364136223846793005u + 1442695040888963407u;
                buf[i] = (char)(x >> 56);
            } while (buf[i] == '\0' || buf[i] == '\n' ||
                     (i == 0 && (buf[i] == 'H' || buf[i] == '\r')));
        }
        gw_http_parser *p = gw_http_parser_new(1, &LIM);
        size_t used = 0;
        ck_assert_int_eq(gw_http_parser_feed(p, buf, n, &used), GW_HTTP_ERROR);
        ck_assert_int_eq(gw_http_parser_error(p, NULL), 502);
        gw_http_parser_free(p);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* hop-by-hop                                                               */

struct hop_case {
    const char *name;
    int want;
};

static const struct hop_case hop_cases[] = {
    {"Connection", 1},
    {"connection", 1},
    {"Keep-Alive", 1},
    {"KEEP-ALIVE", 1},
    {"Proxy-Connection", 1},
    {"Proxy-Authorization", 1},
    {"proxy-authenticate", 1},
    {"Proxy-X", 1},
    {"TE", 1},
    {"Trailer", 1},
    {"Transfer-Encoding", 1},
    {"Upgrade", 1},
    {"X-Listed", 1},
    {"x-listed", 1},
    {"X-Other", 1},
    {"X-Second", 1},
    {"Proxy", 0},
    {"Proxies", 0},
    {"Trailers", 0},
    {"X-Liste", 0},
    {"X-Listed2", 0},
    {"Content-Type", 0},
    {"Host", 0},
    {"Authorization", 0},
    {"close", 0},
};

START_TEST(test_hop_by_hop)
{
    static const gw_http_header hdrs[] = {
        {"Host", 4, "api.example", 11},
        {"Connection", 10, "keep-alive, X-Listed ,\tx-other", 30},
        {"X-Second", 8, "v", 1},
        {"CONNECTION", 10, ",,X-Second", 10},
    };
    const struct hop_case *c = &hop_cases[_i];
    ck_assert_int_eq(gw_http_is_hop_by_hop(c->name, strlen(c->name), hdrs, 4), c->want);
}
END_TEST

START_TEST(test_hop_by_hop_without_connection)
{
    static const gw_http_header hdrs[] = {{"X-Listed", 8, "a", 1}};
    ck_assert_int_eq(gw_http_is_hop_by_hop("X-Listed", 8, hdrs, 1), 0);
    ck_assert_int_eq(gw_http_is_hop_by_hop("X-Listed", 8, NULL, 0), 0);
    ck_assert_int_eq(gw_http_is_hop_by_hop("Upgrade", 7, NULL, 0), 1);
    /* the length counts, not a NUL */
    ck_assert_int_eq(gw_http_is_hop_by_hop("Upgrade-Insecure", 7, NULL, 0), 1);
    ck_assert_int_eq(gw_http_is_hop_by_hop("Upgrade-Insecure", 16, NULL, 0), 0);
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ---- llhttp reads only the lines it interprets (differential) ---------- */

/* Everything the parser says about <s>/<n> fed in pieces (sizes from
 * <seed>), message after message, as text: the statuses, bytes used, the
 * error, each message's fields and body, the response's end at EOF. */
static void transcript(int is_response, int full, const char *s, size_t n, unsigned seed,
                       int no_body, char *out, size_t cap)
{
    size_t o = 0;
#define OUT(...)                                                                                   \
    do {                                                                                           \
        if (o < cap)                                                                               \
            o += (size_t)snprintf(out + o, cap - o, __VA_ARGS__);                                  \
    } while (0)
    gw_http_parser *p = gw_http_parser_new(is_response, &LIM);
    ck_assert_ptr_nonnull(p);
    gw_http_parser_llhttp_full_head(p, full);
    gw_http_parser_expect_no_body(p, no_body);
    size_t off = 0;
    gw_http_status st = GW_HTTP_AGAIN;
    for (int msgs = 0; off < n && msgs < 8;) {
        size_t k = seed == 0 ? n - off : 1 + (size_t)rand_r(&seed) % 40;
        if (k > n - off)
            k = n - off;
        size_t used = 0;
        st = gw_http_parser_feed(p, s + off, k, &used);
        OUT("[%d %zu]", (int)st, used);
        if (st == GW_HTTP_ERROR)
            break;
        off += used;
        if (st != GW_HTTP_COMPLETE)
            continue;
        msgs++;
        if (is_response) {
            gw_http_response *r = gw_http_parser_take_response(p);
            OUT("resp %d v%d ka%d h%zu b%zu:", r->status, r->version_minor, r->keep_alive,
                r->nheaders, r->body_len);
            if (r->body_len && o + r->body_len < cap) {
                memcpy(out + o, r->body, r->body_len);
                o += r->body_len;
            }
            gw_http_response_free(r);
        } else {
            gw_http_request *r = gw_http_parser_take_request(p);
            OUT("req %s %s v%d ka%d cl%lld ch%d h%zu", r->method, r->target, r->version_minor,
                r->keep_alive, (long long)r->content_length, r->chunked, r->nheaders);
            for (size_t i = 0; i < r->nheaders; i++)
                OUT("|%s=%s", r->headers[i].name, r->headers[i].value);
            OUT(" b%zu:", r->body_len);
            if (r->body_len && o + r->body_len < cap) {
                memcpy(out + o, r->body, r->body_len);
                o += r->body_len;
            }
            gw_http_request_free(r);
        }
    }
    if (st != GW_HTTP_ERROR && is_response && off == n) {
        st = gw_http_parser_finish(p);
        OUT("[eof %d]", (int)st);
        if (st == GW_HTTP_COMPLETE) {
            gw_http_response *r = gw_http_parser_take_response(p);
            OUT("resp %d b%zu", r->status, r->body_len);
            gw_http_response_free(r);
        }
    }
    const char *reason = NULL;
    int status = gw_http_parser_error(p, &reason);
    OUT("{%d %s}", status, reason ? reason : "-");
    gw_http_parser_free(p);
#undef OUT
}

static void same_both_ways(int is_response, const char *s, size_t n, unsigned seed, int no_body)
{
    static char a[16384], b[16384];
    transcript(is_response, 1, s, n, seed, no_body, a, sizeof(a));
    transcript(is_response, 0, s, n, seed, no_body, b, sizeof(b));
    ck_assert_msg(strcmp(a, b) == 0, "%s %.*s\nllhttp over the whole head: %s\nover its lines:  %s",
                  is_response ? "response" : "request", (int)(n < 400 ? n : 400), s, a, b);
}

/* The pieces of random messages: start lines, header names (llhttp's own
 * in several cases, near misses, bad bytes), values (framing values, OWS,
 * every byte class), bodies. */
static const char *const req_lines[] = {
    "GET / HTTP/1.1",
    "GET /a?b=c&d=%20 HTTP/1.1",
    "POST /x HTTP/1.1",
    "PUT /x HTTP/1.0",
    "HEAD / HTTP/1.1",
    "OPTIONS /o HTTP/1.1",
    "DELETE /\"<>{}|^` HTTP/1.1",
    "PATCH /~!$&'()*+,;=:@ HTTP/1.1",
    "GET / HTTP/1.0",
    "CONNECT a:443 HTTP/1.1",
    "GET /#f HTTP/1.1",
    "get / HTTP/1.1",
    "GET  / HTTP/1.1",
    "GET / HTTP/2.0",
    "GET http://a/ HTTP/1.1",
};
static const char *const resp_lines[] = {
    "HTTP/1.1 200 OK",
    "HTTP/1.0 200 OK",
    "HTTP/1.1 204 No Content",
    "HTTP/1.1 304 Not Modified",
    "HTTP/1.1 100 Continue",
    "HTTP/1.1 101 Switching",
    "HTTP/1.1 500",
    "HTTP/1.1 404 Not \x80 Found",
    "HTTP/1.1 200 OK\t",
};
static const char *const names[] = {
    "Host",
    "host",
    "Content-Length",
    "content-LENGTH",
    "Transfer-Encoding",
    "transfer-encoding",
    "Connection",
    "CONNECTION",
    "Proxy-Connection",
    "proxy-connection",
    "Upgrade",
    "upgrade",
    "Expect",
    "X-A",
    "Authorization",
    "ID_Teleservice",
    "X-Correlation-ID",
    "Content-Type",
    "Content-Lengthx",
    "Connectionx",
    "Upgrade-Insecure-Requests",
    "Keep-Alive",
    "Proxy-Connectio",
    "Transfer-Encodings",
    "X_B",
    "Con nection",
    "X-A ",
    "",
    "X\x7f",
    "X\x80Y",
    "X(Y",
    "!#$%&'*+-.^`|~",
};
static const char *const values[] = {
    "",
    "a",
    "0",
    "3",
    "12",
    "99999999999",
    "00",
    " 5 ",
    "5\t",
    "\t5",
    "-1",
    "3, 3",
    "+3",
    "chunked",
    "CHUNKED",
    " chunked",
    "chunked\t",
    "gzip, chunked",
    "chunked, gzip",
    "identity",
    "close",
    "keep-alive",
    "Keep-Alive",
    "upgrade",
    "close, upgrade",
    "keep-alive, Upgrade",
    "Upgrade, close",
    "closed",
    "keep-alive,close",
    " close ",
    "h2c",
    "websocket",
    "100-continue",
    "localhost",
    "a:8443",
    "a b",
    "a\tb",
    "\x80\xff",
    "x\x7fy",
    "x\x01y",
    "Bearer abc.def",
    "\"q\"",
    "x\ry",
};
static const char *const bodies[] = {
    "",
    "abc",
    "0\r\n\r\n",
    "3\r\nabc\r\n0\r\n\r\n",
    "3;e=1\r\nabc\r\n0\r\nT: v\r\n\r\n",
    "zz\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz",
    "abcdefghij",
};

#define PICK(a) ((a)[rand_r(&seed) % (sizeof(a) / sizeof((a)[0]))])

static size_t random_message(int is_response, unsigned seed, char *m, size_t cap)
{
    size_t o = 0;
    int nh = rand_r(&seed) % 7;
    o += (size_t)snprintf(m + o, cap - o, "%s\r\n",
                          is_response ? PICK(resp_lines) : PICK(req_lines));
    if (!is_response && rand_r(&seed) % 4 != 0)
        o += (size_t)snprintf(m + o, cap - o, "Host: a\r\n");
    for (int i = 0; i < nh && o + 300 < cap; i++) {
        int shape = rand_r(&seed) % 20;
        const char *name = PICK(names), *value = PICK(values);
        if (shape == 0) /* obs-fold */
            o += (size_t)snprintf(m + o, cap - o, " %s\r\n", value);
        else if (shape == 1) /* space after the colon missing, or two */
            o += (size_t)snprintf(m + o, cap - o, "%s:%s\r\n", name, value);
        else if (shape == 2)
            o += (size_t)snprintf(m + o, cap - o, "%s:  %s  \r\n", name, value);
        else if (shape == 3) { /* one random byte in the value */
            o += (size_t)snprintf(m + o, cap - o, "%s: %s", name, value);
            m[o++] = (char)(rand_r(&seed) % 256);
            o += (size_t)snprintf(m + o, cap - o, "\r\n");
        } else
            o += (size_t)snprintf(m + o, cap - o, "%s: %s\r\n", name, value);
    }
    o += (size_t)snprintf(m + o, cap - o, "\r\n");
    const char *b = PICK(bodies);
    size_t bl = strlen(b);
    if (o + bl < cap) {
        memcpy(m + o, b, bl);
        o += bl;
    }
    if (rand_r(&seed) % 8 == 0 && o + 1 < cap) /* the head or body cut short */
        o -= (size_t)rand_r(&seed) % (o / 2 + 1);
    return o;
}

START_TEST(test_llhttp_lines_same_random)
{
    char m[4096];
    for (unsigned i = 0; i < 60000; i++) {
        int is_response = i % 3 == 2;
        size_t n = random_message(is_response, i * 2654435761u + 1, m, sizeof(m));
        same_both_ways(is_response, m, n, i % 4 == 0 ? 0 : i, is_response && i % 7 == 0);
    }
}
END_TEST

START_TEST(test_llhttp_lines_same_tables)
{
    for (int i = 0; i < N(bad_requests); i++)
        for (unsigned seed = 0; seed < 4; seed++)
            same_both_ways(0, bad_requests[i].raw, bad_requests[i].len, seed, 0);
    for (int i = 0; i < N(bad_responses); i++)
        for (unsigned seed = 0; seed < 4; seed++)
            same_both_ways(1, bad_responses[i].raw, bad_responses[i].len, seed, 0);
    for (int i = 0; i < N(valid_requests); i++)
        same_both_ways(0, valid_requests[i], strlen(valid_requests[i]), 0, 0);
    for (int i = 0; i < N(ka_cases); i++)
        same_both_ways(0, ka_cases[i].raw, strlen(ka_cases[i].raw), 0, 0);
    for (int i = 0; i < N(nobody_cases); i++)
        same_both_ways(1, nobody_cases[i].raw, strlen(nobody_cases[i].raw), 0,
                       nobody_cases[i].no_body);
    for (int i = 0; i < N(respka_cases); i++)
        same_both_ways(1, respka_cases[i].raw, strlen(respka_cases[i].raw), 0, 0);
    /* the fuzz corpus (tests/fuzz/corpus/http1), whole and in pieces */
    static const char *const corpus[] = {"get",          "chunked",   "resp",
                                         "resp-chunked", "lines-req", "lines-resp"};
    char path[1024];
    const char *here = __FILE__, *cut = strstr(here, "tests/unit/lib/test_http1.c");
    ck_assert_ptr_nonnull(cut);
    for (size_t i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++) {
        snprintf(path, sizeof(path), "%.*stests/fuzz/corpus/http1/%s", (int)(cut - here), here,
                 corpus[i]);
        FILE *f = fopen(path, "rb");
        ck_assert_msg(f != NULL, "%s", path);
        char buf[8192];
        size_t n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        ck_assert_uint_gt(n, 1);
        for (unsigned seed = 0; seed < 16; seed++) { /* byte 0: fuzz_http1's mode */
            same_both_ways(0, buf + 1, n - 1, seed, 0);
            same_both_ways(1, buf + 1, n - 1, seed, 0);
        }
    }
}
END_TEST

static Suite *http1_suite(void)
{
    Suite *s = suite_create("http1");

    TCase *tc = tcase_create("refusals");
    tcase_add_loop_test(tc, test_bad_request_whole, 0, N(bad_requests));
    tcase_add_test(tc, test_header_name_bytes);
    tcase_add_loop_test(tc, test_bad_request_bytewise, 0, N(bad_requests));
    tcase_add_test(tc, test_cl_over_limit_refused_at_head);
    tcase_add_test(tc, test_id_teleservice_allowed);
    tcase_add_loop_test(tc, test_body_limit_cb, 0,
                        (int)(sizeof(body_cases) / sizeof(body_cases[0])));
    tcase_add_test(tc, test_head_limit);
    tcase_add_test(tc, test_chunk_meta_limits);
    tcase_add_test(tc, test_too_many_headers);
    suite_add_tcase(s, tc);

    tc = tcase_create("requests");
    tcase_add_test(tc, test_get_basic);
    tcase_add_test(tc, test_query_split);
    tcase_add_test(tc, test_ows_and_values);
    tcase_add_loop_test(tc, test_keep_alive, 0, N(ka_cases));
    tcase_add_loop_test(tc, test_methods, 0, 7);
    tcase_add_test(tc, test_post_content_length);
    tcase_add_test(tc, test_chunked_body);
    tcase_add_test(tc, test_expect_and_upgrade);
    tcase_add_loop_test(tc, test_bytewise_same, 0, N(valid_requests));
    tcase_add_test(tc, test_pipelining);
    tcase_add_test(tc, test_state_accessors);
    suite_add_tcase(s, tc);

    tc = tcase_create("responses");
    tcase_add_test(tc, test_resp_content_length);
    tcase_add_test(tc, test_resp_chunked);
    tcase_add_test(tc, test_resp_until_close);
    tcase_add_loop_test(tc, test_resp_no_body, 0, N(nobody_cases));
    tcase_add_test(tc, test_resp_interim_skipped);
    tcase_add_loop_test(tc, test_resp_keep_alive, 0, N(respka_cases));
    tcase_add_loop_test(tc, test_bad_response, 0, N(bad_responses));
    tcase_add_test(tc, test_resp_limits_and_eof);
    tcase_add_loop_test(tc, test_resp_status_prefix_fails_early, 0, N(bad_status_prefixes));
    tcase_add_test(tc, test_resp_status_prefix_valid_waits);
    tcase_add_test(tc, test_resp_random_garbage_fails_at_once);
    tcase_add_test(tc, test_field_value_every_byte);
    suite_add_tcase(s, tc);

    tc = tcase_create("hop_by_hop");
    tcase_add_loop_test(tc, test_hop_by_hop, 0, N(hop_cases));
    tcase_add_test(tc, test_hop_by_hop_without_connection);
    suite_add_tcase(s, tc);

    tc = tcase_create("llhttp_lines");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_llhttp_lines_same_tables);
    tcase_add_test(tc, test_llhttp_lines_same_random);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(http1_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
