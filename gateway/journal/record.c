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

/* The access record is written straight into a buffer, not built as a jansson
 * object and dumped: this runs once per request, and jansson's dump (one
 * callback per escaped run, an object per field) cost as much as the rest
 * of the journal path (callgrind, bench S2). The bytes are the ones jansson
 * writes with JSON_COMPACT | JSON_PRESERVE_ORDER, which the unit tests check
 * against jansson itself: '"' and '\\' escaped, \b \f \n \r \t by name,
 * other bytes below 0x20 as \u00XX (upper-case hex), everything else,
 * UTF-8 included, as is. A byte that does not start a well-formed UTF-8
 * sequence becomes U+FFFD (jansson would refuse the string, and the whole
 * record with it). */
static void json_put_strn(gw_buf *b, const char *s, size_t n, const char *tail)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0;

    gw_buf_append(b, "\"", 1);
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
        size_t l = 1;
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
            esc = "\xEF\xBF\xBD";
        if (esc == NULL && c < 0x20) {
            memcpy(ubuf, "\\u00", 4);
            ubuf[4] = hex[c >> 4];
            ubuf[5] = hex[c & 15];
        }
        if (esc == NULL && c >= 0x20) {
            run += l;
            i += l;
            continue;
        }
        gw_buf_append(b, s + i - run, run);
        run = 0;
        if (esc != NULL)
            gw_buf_append(b, esc, strlen(esc));
        else
            gw_buf_append(b, ubuf, 6);
        i++;
    }
    gw_buf_append(b, s + i - run, run);
    if (tail != NULL)
        gw_buf_append(b, tail, strlen(tail));
    gw_buf_append(b, "\"", 1);
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
 * then, 0 when it was written whole. */
static size_t json_put_str_max(gw_buf *b, const char *s, size_t max)
{
    size_t n = strlen(s);
    int all = 1;
    /* an escape is at most 6 bytes a byte: short strings need no count */
    if (n <= max / 6 || escaped_fit(s, n, max, &all) == n) {
        json_put_strn(b, s, n, NULL);
        return 0;
    }
    size_t keep = escaped_fit(s, n, max - (sizeof(TRUNC_MARK) - 1), &all);
    json_put_strn(b, s, keep, TRUNC_MARK);
    return n;
}

/* ,"key": (the comma unless first in its object). Keys are ASCII literals. */
static void json_put_key(gw_buf *b, int *first, const char *k)
{
    char kb[64];
    size_t kl = strlen(k), n = 0;
    if (kl > sizeof(kb) - 4) { /* none is that long */
        gw_buf_append(b, ",", !*first);
        gw_buf_append(b, "\"", 1);
        gw_buf_append(b, k, kl);
        gw_buf_append(b, "\":", 2);
        *first = 0;
        return;
    }
    /* one append per key instead of three or four */
    if (!*first)
        kb[n++] = ',';
    *first = 0;
    kb[n++] = '"';
    memcpy(kb + n, k, kl);
    n += kl;
    kb[n++] = '"';
    kb[n++] = ':';
    gw_buf_append(b, kb, n);
}

/* Fields cut by put_str, with their lengths, for the "truncated" member. */
typedef struct cut_list {
    const char *name[32];
    size_t len[32];
    size_t n;
} cut_list;

static void put_str_max(gw_buf *b, int *first, const char *k, const char *s, size_t max,
                        cut_list *cuts, const char *name)
{
    if (s == NULL)
        return;
    json_put_key(b, first, k);
    size_t len = json_put_str_max(b, s, max);
    if (len != 0 && cuts != NULL && cuts->n < 32) {
        cuts->name[cuts->n] = name != NULL ? name : k;
        cuts->len[cuts->n++] = len;
    }
}

static void put_int(gw_buf *b, int *first, const char *k, long long v)
{
    char num[24];
    size_t n = gw_fmt_ll(num, v);
    json_put_key(b, first, k);
    gw_buf_append(b, num, n);
}

/* Only when not negative (an unknown figure is left out). */
static void put_num(gw_buf *b, int *first, const char *k, long long v)
{
    if (v >= 0)
        put_int(b, first, k, v);
}

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
    put_int(&b, &f, "v", GW_JOURNAL_SCHEMA_VERSION);
    put_str_max(&b, &f, "ts", r->ts, M, &cuts, NULL);
    put_str_max(&b, &f, "request_id", r->request_id, M, &cuts, NULL);
    put_str_max(&b, &f, "correlation_id", r->correlation_id, M, &cuts, NULL);
    put_str_max(&b, &f, "env", r->env, M, &cuts, NULL);
    put_str_max(&b, &f, "listener", r->listener, M, &cuts, NULL);
    put_str_max(&b, &f, "client_ip", r->client_ip, M, &cuts, NULL);
    put_num(&b, &f, "client_port", r->client_port);
    if (r->tls_version || r->tls_cert_sha256 || r->tls_subject) {
        json_put_key(&b, &f, "tls");
        gw_buf_append(&b, "{", 1);
        g = 1;
        put_str_max(&b, &g, "version", r->tls_version, M, &cuts, "tls.version");
        put_str_max(&b, &g, "cert_sha256", r->tls_cert_sha256, M, &cuts, "tls.cert_sha256");
        put_str_max(&b, &g, "subject", r->tls_subject, GW_JOURNAL_SUBJECT_MAX, &cuts,
                    "tls.subject");
        gw_buf_append(&b, "}", 1);
    }
    put_str_max(&b, &f, "protocol", r->protocol, M, &cuts, NULL);
    put_str_max(&b, &f, "consumer", r->consumer, M, &cuts, NULL);
    put_str_max(&b, &f, "habilitation", r->habilitation, M, &cuts, NULL);
    put_str_max(&b, &f, "teleservice", r->teleservice, M, &cuts, NULL);
    put_str_max(&b, &f, "method", r->method, M, &cuts, NULL);
    put_str_max(&b, &f, "route", r->route, M, &cuts, NULL);
    put_str_max(&b, &f, "path", r->path, GW_JOURNAL_PATH_MAX, &cuts, NULL);
    put_str_max(&b, &f, "query", r->query, GW_JOURNAL_PATH_MAX, &cuts, NULL);
    put_str_max(&b, &f, "siren", r->siren, M, &cuts, NULL);
    put_str_max(&b, &f, "annee", r->annee, M, &cuts, NULL);
    put_str_max(&b, &f, "scope", r->scope, M, &cuts, NULL);
    if (r->quota_store != NULL) {
        json_put_key(&b, &f, "quota");
        gw_buf_append(&b, "{", 1);
        g = 1;
        put_int(&b, &g, "limit", r->quota_limit);
        put_int(&b, &g, "remaining", r->quota_remaining);
        put_str_max(&b, &g, "store", r->quota_store, M, &cuts, "quota.store");
        gw_buf_append(&b, "}", 1);
    }
    put_str_max(&b, &f, "token_jti", r->token_jti, M, &cuts, NULL);
    put_str_max(&b, &f, "client_id", r->token_client_id, M, &cuts, NULL);
    put_str_max(&b, &f, "decision", r->decision, M, &cuts, NULL);
    put_str_max(&b, &f, "reason", r->reason, M, &cuts, NULL);
    put_str_max(&b, &f, "code", r->code, M, &cuts, NULL);
    if (r->status > 0)
        put_int(&b, &f, "status", r->status);
    if (r->upstream_addr) {
        json_put_key(&b, &f, "upstream");
        gw_buf_append(&b, "{", 1);
        g = 1;
        put_str_max(&b, &g, "addr", r->upstream_addr, M, &cuts, "upstream.addr");
        if (r->upstream_status > 0)
            put_int(&b, &g, "status", r->upstream_status);
        put_num(&b, &g, "ms", r->upstream_ms);
        if (r->upstream_nattempts > 0) {
            json_put_key(&b, &g, "attempts");
            gw_buf_append(&b, "[", 1);
            for (size_t i = 0; i < r->upstream_nattempts; i++) {
                const gw_journal_attempt *a = &r->upstream_attempts[i];
                int h = 1;
                gw_buf_append(&b, i ? ",{" : "{", i ? 2 : 1);
                put_str_max(&b, &h, "addr", a->addr, M, &cuts, "upstream.attempts.addr");
                put_str_max(&b, &h, "outcome", a->outcome, M, &cuts, "upstream.attempts.outcome");
                if (a->status > 0)
                    put_int(&b, &h, "status", a->status);
                put_num(&b, &h, "ms", a->ms);
                gw_buf_append(&b, "}", 1);
            }
            gw_buf_append(&b, "]", 1);
        }
        gw_buf_append(&b, "}", 1);
    }
    put_num(&b, &f, "ms", r->ms);
    put_num(&b, &f, "bytes_in", r->bytes_in);
    put_num(&b, &f, "bytes_out", r->bytes_out);
    if (cuts.n > 0) {
        /* what was cut, and the length in bytes it had (docs/journal.md) */
        json_put_key(&b, &f, "truncated");
        gw_buf_append(&b, "{", 1);
        g = 1;
        for (size_t i = 0; i < cuts.n; i++)
            put_int(&b, &g, cuts.name[i], (long long)cuts.len[i]);
        gw_buf_append(&b, "}", 1);
    }
    gw_buf_append(&b, "}\n", 2);
    if (b.oom) {
        gw_buf_free(&b);
        return NULL;
    }
    return gw_buf_take(&b, len);
}
