/* libFuzzer target for gateway/lib/h2map.c: the HTTP/2 fields of one
 * request checked and rewritten as an HTTP/1.1 head, then read by the strict
 * parser (lib/http1.c) as core/h2.c does; and the response splitter on the
 * same bytes.
 *
 * Input: one flags byte (bit 0: a body follows the header block, i.e. no
 * END_STREAM), then fields as <name length:1><name><value length:1><value>
 * until the input ends.
 *
 * Invariants (abort() when broken):
 *  - a refusal has a reason and allocates nothing;
 *  - an accepted block gives a head that ends with the blank line and holds
 *    no NUL, no bare CR or LF: so the parser never refuses it for a
 *    framing fault the HTTP/2 rules should have caught (http.nul,
 *    http.bare_lf, http.obs_fold, http.ws_before_colon, http.bad_request_line,
 *    http.bad_version);
 *  - the response splitter returns -1 or at most <max> fields, their names
 *    lowercase, the body inside the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/h2map.h"
#include "lib/http1.h"

static void check_head(const char *head, size_t len)
{
    if (len < 4 || memcmp(head + len - 4, "\r\n\r\n", 4) != 0)
        abort();
    for (size_t i = 0; i < len; i++) {
        if (head[i] == '\0')
            abort();
        if (head[i] == '\r' && (i + 1 >= len || head[i + 1] != '\n'))
            abort();
        if (head[i] == '\n' && (i == 0 || head[i - 1] != '\r'))
            abort();
    }
    gw_http_limits lim = {8192, 100, 4096};
    gw_http_parser *p = gw_http_parser_new(0, &lim);
    if (p == NULL)
        return;
    size_t used = 0;
    if (gw_http_parser_feed(p, head, len, &used) == GW_HTTP_ERROR) {
        const char *reason = NULL;
        gw_http_parser_error(p, &reason);
        static const char *const never[] = {"http.nul",
                                            "http.bare_lf",
                                            "http.obs_fold",
                                            "http.ws_before_colon",
                                            "http.bad_request_line",
                                            "http.bad_version"};
        for (size_t i = 0; reason != NULL && i < sizeof(never) / sizeof(never[0]); i++)
            if (strcmp(reason, never[i]) == 0)
                abort();
    } else {
        gw_http_request_free(gw_http_parser_take_request(p));
    }
    gw_http_parser_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int body = data[0] & 1;
    gw_h2map m;
    memset(&m, 0, sizeof(m));
    size_t i = 1;
    while (i < size) {
        size_t nl = data[i++];
        if (i + nl > size)
            break;
        const char *name = (const char *)data + i;
        i += nl;
        if (i >= size)
            break;
        size_t vl = data[i++];
        if (i + vl > size)
            break;
        gw_h2map_field(&m, name, nl, (const char *)data + i, vl);
        i += vl;
    }
    char *head = NULL;
    size_t len = 0;
    const char *e = gw_h2map_head(&m, body, &head, &len);
    gw_h2map_free(&m);
    if (e != NULL) {
        if (head != NULL || len != 0)
            abort();
    } else {
        check_head(head, len);
        free(head);
    }

    gw_h2_field f[8];
    int status = 0;
    const char *b = NULL;
    size_t blen = 0;
    int n = gw_h2map_response((const char *)data, size, &status, f, 8, &b, &blen);
    if (n > 8)
        abort();
    for (int k = 0; k < n; k++)
        for (size_t c = 0; c < f[k].name_len; c++)
            if (f[k].name[c] >= 'A' && f[k].name[c] <= 'Z')
                abort();
    if (n >= 0 && b != NULL &&
        (b < (const char *)data || b + blen > (const char *)data + size || status < 200))
        abort();
    return 0;
}
