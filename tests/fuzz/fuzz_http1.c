/* libFuzzer target for gateway/lib/http1.c: requests and responses, fed in
 * pieces whose sizes come from the input, with the parser's invariants
 * checked (ASan/UBSan catch the rest). */
#include <stdint.h>
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

static void run(int is_response, const uint8_t *data, size_t size)
{
    gw_http_limits lim = {4096, 32, 4096};
    gw_http_parser *p = gw_http_parser_new(is_response, &lim);
    if (p == NULL)
        return;
    size_t off = 0;
    int messages = 0;
    while (off < size && messages < 16) {
        size_t step = 1 + (data[off] % 97);
        if (step > size - off)
            step = size - off;
        size_t used = 0;
        gw_http_status st = gw_http_parser_feed(p, (const char *)data + off, step, &used);
        if (st == GW_HTTP_ERROR) {
            const char *reason = NULL;
            int status = gw_http_parser_error(p, &reason);
            if (reason == NULL || status < 400 || status > 599)
                abort();
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
                gw_http_response_free(r);
            } else {
                gw_http_request *r = gw_http_parser_take_request(p);
                if (r == NULL)
                    abort();
                check_request(r);
                gw_http_request_free(r);
            }
            off += used;
            continue;
        }
        off += step;
    }
    if (is_response && off >= size && gw_http_parser_finish(p) == GW_HTTP_COMPLETE)
        gw_http_response_free(gw_http_parser_take_response(p));
    gw_http_parser_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    run(data[0] & 1, data + 1, size - 1);
    return 0;
}
