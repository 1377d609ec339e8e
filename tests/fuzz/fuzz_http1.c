/* libFuzzer target for gateway/lib/http1.c: requests and responses, fed in
 * pieces whose sizes come from the input, with the parser's invariants
 * checked (ASan/UBSan catch the rest). Each input is parsed twice, llhttp
 * reading only the head lines it interprets (the gateway's way) and the
 * whole head (gw_http_parser_llhttp_full_head): any difference in what the
 * parser says is a crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/http1.h"

static void check_request(const gw_http_request *r)
{
    if (r->target_len != strlen(r->target) || r->target[0] != '/')
        abort();
    if (r->path_len > r->target_len)
        abort();
    for (size_t i = 0; i < r->nheaders; i++) {
        const gw_http_header *h = &r->headers[i];
        if (strlen(h->name) != h->name_len || strlen(h->value) != h->value_len)
            abort();
        if (h->name_len == 0 || memchr(h->name, ':', h->name_len) != NULL)
            abort();
        for (size_t k = 0; k < h->value_len; k++) {
            unsigned char c = (unsigned char)h->value[k];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                abort();
        }
    }
    if (r->body_len > 0 && r->body == NULL)
        abort();
}

/* What the parser said, appended to <t> (cut at its size: both runs are cut
 * alike). */
typedef struct transcript {
    char s[8192];
    size_t n;
} transcript;

static void note(transcript *t, const char *fmt, long long a, long long b)
{
    if (t->n < sizeof(t->s))
        t->n += (size_t)snprintf(t->s + t->n, sizeof(t->s) - t->n, fmt, a, b);
}

static void run(int is_response, int full, const uint8_t *data, size_t size, transcript *t)
{
    gw_http_limits lim = {4096, 32, 4096};
    gw_http_parser *p = gw_http_parser_new(is_response, &lim);
    if (p == NULL)
        abort(); /* both runs must parse */
    gw_http_parser_llhttp_full_head(p, full);
    size_t off = 0;
    int messages = 0;
    while (off < size && messages < 16) {
        size_t step = 1 + (data[off] % 97);
        if (step > size - off)
            step = size - off;
        size_t used = 0;
        gw_http_status st = gw_http_parser_feed(p, (const char *)data + off, step, &used);
        note(t, "[%lld %lld]", st, (long long)used);
        if (st == GW_HTTP_ERROR) {
            const char *reason = NULL;
            int status = gw_http_parser_error(p, &reason);
            if (reason == NULL || status < 400 || status > 599)
                abort();
            note(t, "{%lld %lld}", status, (long long)strlen(reason));
            if (t->n + strlen(reason) < sizeof(t->s)) {
                memcpy(t->s + t->n, reason, strlen(reason));
                t->n += strlen(reason);
            }
            break;
        }
        if (st == GW_HTTP_COMPLETE) {
            if (used > step)
                abort();
            messages++;
            if (is_response) {
                gw_http_response *r = gw_http_parser_take_response(p);
                if (r == NULL || r->status < 100 || r->status > 999)
                    abort();
                note(t, "resp %lld ka %lld", r->status, r->keep_alive);
                note(t, " h %lld b %lld", (long long)r->nheaders, (long long)r->body_len);
                gw_http_response_free(r);
            } else {
                gw_http_request *r = gw_http_parser_take_request(p);
                if (r == NULL)
                    abort();
                check_request(r);
                note(t, "req ka %lld cl %lld", r->keep_alive, (long long)r->content_length);
                note(t, " h %lld b %lld", (long long)r->nheaders, (long long)r->body_len);
                note(t, " ch %lld t %lld", r->chunked, (long long)r->target_len);
                gw_http_request_free(r);
            }
            off += used;
            continue;
        }
        off += step;
    }
    if (is_response && off >= size && gw_http_parser_finish(p) == GW_HTTP_COMPLETE) {
        gw_http_response *r = gw_http_parser_take_response(p);
        note(t, "eof resp %lld b %lld", r->status, (long long)r->body_len);
        gw_http_response_free(r);
    }
    gw_http_parser_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    static transcript lines, full;
    lines.n = full.n = 0;
    run(data[0] & 1, 0, data + 1, size - 1, &lines);
    run(data[0] & 1, 1, data + 1, size - 1, &full);
    if (lines.n != full.n || memcmp(lines.s, full.s, lines.n) != 0)
        abort(); /* llhttp over the lines it reads and over the whole head differ */
    return 0;
}
