/*
 * Access journal: the record encoder (gw_journal_format). No state, no I/O.
 */
#include "journal/journal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

/* 1 for a byte written as it is without a look at its neighbours:
 * printable ASCII but '"' (0x22) and '\\' (0x5c). Most of a record. */
static const unsigned char json_plain[256] = {
    [0x20 ... 0x21] = 1,
    [0x23 ... 0x5b] = 1,
    [0x5d ... 0x7e] = 1,
};

/* 8 bytes at once: non-zero when one of them is not written as it is, or
 * may not be ('"', '\\', below 0x20, 0x80 and above). The borrows of the
 * subtractions only run upwards from a byte that is itself flagged, so a
 * block is flagged exactly when one of its bytes needs a look. */
static inline uint64_t json_special8(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t q = x ^ (ones * '"'), s = x ^ (ones * '\\');
    return ((q - ones) | (s - ones) | (x - ones * 0x20) | x) & high;
}

/* The access record is written straight into a buffer, not built as a jansson
 * object and dumped: this runs once per request, and jansson's dump (one
 * callback per escaped run, an object per field) cost as much as the rest
 * of the journal path (callgrind, bench S2). The bytes are the ones jansson
 * writes with JSON_COMPACT | JSON_PRESERVE_ORDER, which the unit tests check
 * against jansson itself: '"' and '\\' escaped, \b \f \n \r \t by name,
 * other bytes below 0x20 as \u00XX (upper-case hex), everything else,
 * UTF-8 included, as is. A byte that does not start a well-formed UTF-8
 * sequence becomes U+FFFD (jansson would refuse the string, and the whole
 * record with it).
 *
 * json_put_rest: the escaping part of a string value from its first byte
 * that needs a look, its closing quote included (the opening one and the
 * plain bytes before it are the caller's). */
static void json_put_rest(gw_buf *b, const char *s, size_t n, const char *tail)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0;

    while (i < n) {
        /* a run of plain bytes at one table look-up each */
        size_t i0 = i;
        while (i < n && json_plain[u[i]])
            i++;
        run += i - i0;
        if (i == n)
            break;
        unsigned c = u[i];
        const char *esc = NULL;
        char ubuf[6];
        size_t l = 1, el = 2;
        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c == '\b')
            esc = "\\b";
        else if (c == '\f')
            esc = "\\f";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\r')
            esc = "\\r";
        else if (c == '\t')
            esc = "\\t";
        else if (c >= 0x80 && (l = gw_utf8_len(u + i, n - i)) == 0)
            esc = "\xEF\xBF\xBD", el = 3;
        if (esc == NULL && c < 0x20) {
            memcpy(ubuf, "\\u00", 4);
            ubuf[4] = hex[c >> 4];
            ubuf[5] = hex[c & 15];
            esc = ubuf, el = 6;
        }
        if (esc == NULL) { /* 0x7f, or a well-formed UTF-8 sequence: as is */
            run += l;
            i += l;
            continue;
        }
        gw_buf_append(b, s + i - run, run);
        run = 0;
        gw_buf_append(b, esc, el);
        i++;
    }
    gw_buf_append(b, s + i - run, run);
    if (tail != NULL)
        gw_buf_append(b, tail, strlen(tail));
    gw_buf_append(b, "\"", 1);
}

/* "<s>" (<n> bytes), escaped. Most values (ids, names, addresses, paths)
 * hold no byte that needs a look: they are copied 8 bytes at a time into
 * room reserved once (a value is never shorter escaped than raw), and only
 * from the first byte that needs it on does json_put_rest take over. */
static void json_put_strn(gw_buf *b, const char *s, size_t n)
{
    if (b->oom || (b->len + n + 3 > b->cap && (gw_buf_reserve(b, n + 2), b->oom)))
        return;
    char *o = b->data + b->len;
    size_t i = 0;
    *o++ = '"';
    for (; i + 8 <= n; i += 8, o += 8) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        if (json_special8(x))
            break;
        memcpy(o, &x, 8);
    }
    if (i < n && i + 8 > n && n >= 8) {
        /* the last bytes as one overlapping block: everything before <i>
         * went out as it is, so byte j of <s> is at o - i + j */
        uint64_t x;
        memcpy(&x, s + n - 8, 8);
        if (!json_special8(x)) {
            o += n - i;
            memcpy(o - 8, &x, 8);
            i = n;
        }
    }
    while (i < n && json_plain[(unsigned char)s[i]])
        *o++ = s[i++];
    if (i == n) {
        *o++ = '"';
        b->len = (size_t)(o - b->data);
        b->data[b->len] = '\0';
        return;
    }
    b->len = (size_t)(o - b->data);
    json_put_rest(b, s + i, n - i, NULL);
}

#define TRUNC_MARK "...[truncated]"

/* How many bytes of <s> (<n> long) fit in <max> bytes once escaped by
 * json_put_strn, cut at a character (never inside an escape or a UTF-8
 * sequence). *<all> = 1 when the whole string fits. */
static size_t escaped_fit(const char *s, size_t n, size_t max, int *all)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, out = 0;
    while (i < n) {
        unsigned c = u[i];
        size_t in = 1, w = 1;
        if (json_plain[c]) {
            /* one byte in, one out */
        } else if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' ||
                   c == '\t')
            w = 2;
        else if (c < 0x20)
            w = 6;
        else if (c >= 0x80) {
            in = gw_utf8_len(u + i, n - i);
            w = in == 0 ? 3 : in;
            in = in == 0 ? 1 : in;
        }
        if (out + w > max) {
            *all = 0;
            return i;
        }
        out += w;
        i += in;
    }
    *all = 1;
    return n;
}

/* A string value of at most <max> bytes between its quotes. A longer one is
 * cut (escaped_fit) and ends with TRUNC_MARK; returns its length in bytes
 * then, 0 when it was written whole. The value is written whole first:
 * when its escaped form fits (nearly always), that is the answer, without
 * a counting pass over it; otherwise it is taken back and cut. */
static size_t json_put_str_max(gw_buf *b, const char *s, size_t max)
{
    size_t n = strlen(s), at = b->len;
    int all = 1;
    if (n <= max) { /* escaped, never shorter than raw */
        json_put_strn(b, s, n);
        if (b->oom || b->len - at - 2 <= max)
            return 0;
        b->len = at;
        b->data[at] = '\0';
    }
    size_t keep = escaped_fit(s, n, max - (sizeof(TRUNC_MARK) - 1), &all);
    gw_buf_append(b, "\"", 1);
    json_put_rest(b, s, keep, TRUNC_MARK);
    return n;
}

/* Fields cut by put_str, with their lengths, for the "truncated" member. */
typedef struct cut_list {
    const char *name[32];
    size_t len[32];
    size_t n;
} cut_list;

/* The keys are literals written with their punctuation and their length
 * known at compile time: KEY(k) is ,"k": and the comma is left out for the
 * first member of an object (*<first>). */
#define KEY(k) ",\"" k "\":", sizeof(",\"" k "\":") - 1

static inline void json_put_key(gw_buf *b, int *first, const char *k, size_t kl)
{
    int skip = *first != 0;
    *first = 0;
    gw_buf_append(b, k + skip, kl - (size_t)skip);
}

/* <name>: the member's name under "truncated" ("tls.subject"). */
static void put_str_max(gw_buf *b, int *first, const char *k, size_t kl, const char *s, size_t max,
                        cut_list *cuts, const char *name)
{
    if (s == NULL)
        return;
    json_put_key(b, first, k, kl);
    size_t len = json_put_str_max(b, s, max);
    if (len != 0 && cuts->n < 32) {
        cuts->name[cuts->n] = name;
        cuts->len[cuts->n++] = len;
    }
}

static void put_int(gw_buf *b, int *first, const char *k, size_t kl, long long v)
{
    char num[24];
    size_t n = gw_fmt_ll(num, v);
    json_put_key(b, first, k, kl);
    gw_buf_append(b, num, n);
}

/* Only when not negative (an unknown figure is left out). */
static void put_num(gw_buf *b, int *first, const char *k, size_t kl, long long v)
{
    if (v >= 0)
        put_int(b, first, k, kl, v);
}

/* A member of the record: STR(key, value, max) and NUM/INT(key, value) in
 * the object whose first-member flag is <F>; STRN also names the member
 * under "truncated" when it is nested ("tls.subject"). */
#define STRN(F, k, s, max, name) put_str_max(&b, &F, KEY(k), s, max, &cuts, name)
#define STR(F, k, s, max) STRN(F, k, s, max, k)
#define INT(F, k, v) put_int(&b, &F, KEY(k), v)
#define NUM(F, k, v) put_num(&b, &F, KEY(k), v)

char *gw_journal_format(const gw_journal_rec *r, size_t *len)
{
    gw_buf b = {0};
    gw_buf_reserve(&b, 2000); /* a usual record (~1.1 KiB) in one allocation */
    int f = 1, g;
    cut_list cuts = {.n = 0};
    const size_t M = GW_JOURNAL_FIELD_MAX;

    gw_buf_append(&b, "{", 1);
    /* The order here is the order on the line (docs/journal.md). There is
     * deliberately no field for Authorization, tokens or secrets. */
    INT(f, "v", GW_JOURNAL_SCHEMA_VERSION);
    STR(f, "ts", r->ts, M);
    STR(f, "request_id", r->request_id, M);
    STR(f, "correlation_id", r->correlation_id, M);
    STR(f, "env", r->env, M);
    STR(f, "listener", r->listener, M);
    STR(f, "client_ip", r->client_ip, M);
    NUM(f, "client_port", r->client_port);
    if (r->tls_version || r->tls_cert_sha256 || r->tls_subject) {
        json_put_key(&b, &f, KEY("tls"));
        gw_buf_append(&b, "{", 1);
        g = 1;
        STRN(g, "version", r->tls_version, M, "tls.version");
        STRN(g, "cert_sha256", r->tls_cert_sha256, M, "tls.cert_sha256");
        STRN(g, "subject", r->tls_subject, GW_JOURNAL_SUBJECT_MAX, "tls.subject");
        gw_buf_append(&b, "}", 1);
    }
    STR(f, "protocol", r->protocol, M);
    STR(f, "consumer", r->consumer, M);
    STR(f, "habilitation", r->habilitation, M);
    STR(f, "teleservice", r->teleservice, M);
    STR(f, "method", r->method, M);
    STR(f, "route", r->route, M);
    STR(f, "path", r->path, GW_JOURNAL_PATH_MAX);
    STR(f, "query", r->query, GW_JOURNAL_PATH_MAX);
    STR(f, "siren", r->siren, M);
    STR(f, "annee", r->annee, M);
    STR(f, "scope", r->scope, M);
    if (r->quota_store != NULL) {
        json_put_key(&b, &f, KEY("quota"));
        gw_buf_append(&b, "{", 1);
        g = 1;
        INT(g, "limit", r->quota_limit);
        INT(g, "remaining", r->quota_remaining);
        STRN(g, "store", r->quota_store, M, "quota.store");
        gw_buf_append(&b, "}", 1);
    }
    STR(f, "token_jti", r->token_jti, M);
    STR(f, "client_id", r->token_client_id, M);
    STR(f, "decision", r->decision, M);
    STR(f, "reason", r->reason, M);
    STR(f, "code", r->code, M);
    if (r->status > 0)
        INT(f, "status", r->status);
    if (r->upstream_addr) {
        json_put_key(&b, &f, KEY("upstream"));
        gw_buf_append(&b, "{", 1);
        g = 1;
        STRN(g, "addr", r->upstream_addr, M, "upstream.addr");
        if (r->upstream_status > 0)
            INT(g, "status", r->upstream_status);
        NUM(g, "ms", r->upstream_ms);
        if (r->upstream_nattempts > 0) {
            json_put_key(&b, &g, KEY("attempts"));
            gw_buf_append(&b, "[", 1);
            for (size_t i = 0; i < r->upstream_nattempts; i++) {
                const gw_journal_attempt *a = &r->upstream_attempts[i];
                int h = 1;
                gw_buf_append(&b, i ? ",{" : "{", i ? 2 : 1);
                STRN(h, "addr", a->addr, M, "upstream.attempts.addr");
                STRN(h, "outcome", a->outcome, M, "upstream.attempts.outcome");
                if (a->status > 0)
                    INT(h, "status", a->status);
                NUM(h, "ms", a->ms);
                gw_buf_append(&b, "}", 1);
            }
            gw_buf_append(&b, "]", 1);
        }
        gw_buf_append(&b, "}", 1);
    }
    NUM(f, "ms", r->ms);
    NUM(f, "bytes_in", r->bytes_in);
    NUM(f, "bytes_out", r->bytes_out);
    if (cuts.n > 0) {
        /* what was cut, and the length in bytes it had (docs/journal.md):
         * the names are known ASCII, written as they are */
        json_put_key(&b, &f, KEY("truncated"));
        gw_buf_append(&b, "{", 1);
        for (size_t i = 0; i < cuts.n; i++) {
            char num[24];
            size_t n = gw_fmt_ll(num, (long long)cuts.len[i]);
            gw_buf_append(&b, i ? ",\"" : "\"", i ? 2 : 1);
            gw_buf_append(&b, cuts.name[i], strlen(cuts.name[i]));
            gw_buf_append(&b, "\":", 2);
            gw_buf_append(&b, num, n);
        }
        gw_buf_append(&b, "}", 1);
    }
    gw_buf_append(&b, "}\n", 2);
    if (b.oom) {
        gw_buf_free(&b);
        return NULL;
    }
    return gw_buf_take(&b, len);
}
