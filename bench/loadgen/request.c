/*
 * opale-loadgen: the requests' bytes, one per --path, built once before the
 * run from the options (Host, -H, the bearer token, Connection: close).
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "loadgen.h"

char *lg_req[MAX_PATHS]; /* "GET path HTTP/1.1\r\n" + fixed headers */
size_t lg_req_len[MAX_PATHS];
size_t lg_req_max;

void lg_build_requests(void)
{
    struct evbuffer *fixed = evbuffer_new();
    if (!fixed)
        lg_die("out of memory");
    if (!lg_have_header("Host"))
        evbuffer_add_printf(fixed, "Host: %s\r\n", lg_opt.url.authority);
    for (int i = 0; i < lg_opt.nheaders; i++) {
        const char *h = lg_opt.headers[i];
        size_t n = lg_header_name_len(h);
        const char *v = h + n + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        evbuffer_add_printf(fixed, "%.*s: %s\r\n", (int)n, h, v);
    }
    if (lg_bearer)
        evbuffer_add_printf(fixed, "Authorization: Bearer %s\r\n", lg_bearer);
    if (lg_opt.new_conn)
        evbuffer_add_printf(fixed, "Connection: close\r\n");
    size_t flen = evbuffer_get_length(fixed);
    const char *f = (const char *)evbuffer_pullup(fixed, -1);
    for (int i = 0; i < lg_opt.npaths; i++) {
        size_t plen = strlen(lg_opt.paths[i]);
        size_t n = 4 + plen + 11 + flen;
        lg_req[i] = malloc(n + 1);
        if (!lg_req[i])
            lg_die("out of memory");
        memcpy(lg_req[i], "GET ", 4);
        memcpy(lg_req[i] + 4, lg_opt.paths[i], plen);
        memcpy(lg_req[i] + 4 + plen, " HTTP/1.1\r\n", 11);
        if (flen)
            memcpy(lg_req[i] + 4 + plen + 11, f, flen);
        lg_req[i][n] = '\0';
        lg_req_len[i] = n;
        if (n > lg_req_max)
            lg_req_max = n;
    }
    evbuffer_free(fixed);
}
