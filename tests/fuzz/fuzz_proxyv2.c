/* libFuzzer target for gateway/lib/proxyv2.c (the PROXY protocol v2
 * header). The first byte picks a read size (1..16); the rest is a
 * connection's first bytes, read the way conn.c reads them: never more
 * than the parser says the header needs.
 *
 * Invariants (abort() when broken):
 *  - "more": need > bytes given, need <= GW_PP2_MAX, no reason;
 *  - "done": 16 <= need <= GW_PP2_MAX, need <= bytes given; a proxied
 *    result is AF_INET or AF_INET6 and never LOCAL; the header's exact
 *    bytes give the same result, and every shorter prefix is "more";
 *  - "refused": a reason, need 0, and one byte more is refused too;
 *  - the piecewise read ends exactly where the whole input's parse says:
 *    at the header's end when done, never past GW_PP2_MAX. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lib/proxyv2.h"

static void check(const unsigned char *buf, size_t len, gw_pp2_status st, const gw_pp2_result *r)
{
    switch (st) {
    case GW_PP2_MORE:
        if (r->need <= len || r->need > GW_PP2_MAX || r->reason != NULL || r->proxied)
            abort();
        break;
    case GW_PP2_DONE:
        if (r->need < 16 || r->need > GW_PP2_MAX || r->need > len || r->reason != NULL)
            abort();
        if (r->proxied && ((r->family != AF_INET && r->family != AF_INET6) || r->local))
            abort();
        if (!r->proxied && r->family != 0)
            abort();
        break;
    case GW_PP2_REFUSED:
        if (r->reason == NULL || r->need != 0 || r->proxied)
            abort();
        break;
    default:
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    size_t chunk = (size_t)(data[0] & 15) + 1;
    size_t n = size - 1;
    /* an exact-size copy, so that any read past the end is caught */
    unsigned char *in = malloc(n ? n : 1);
    if (in == NULL)
        return 0;
    memcpy(in, data + 1, n);

    gw_pp2_result whole, r;
    gw_pp2_status st = gw_pp2_parse(in, n, &whole);
    check(in, n, st, &whole);
    if (st == GW_PP2_DONE) {
        if (gw_pp2_parse(in, whole.need, &r) != GW_PP2_DONE || memcmp(&r, &whole, sizeof(r)) != 0)
            abort();
        for (size_t k = 0; k < whole.need; k++)
            if (gw_pp2_parse(in, k, &r) != GW_PP2_MORE)
                abort();
    }

    /* conn.c's loop: read at most need - len, at most <chunk> at a time */
    unsigned char *buf = malloc(GW_PP2_MAX + 1); /* + 1: the byte after a refusal */
    if (buf == NULL) {
        free(in);
        return 0;
    }
    size_t len = 0;
    gw_pp2_status pst;
    for (;;) {
        pst = gw_pp2_parse(buf, len, &r);
        check(buf, len, pst, &r);
        if (pst != GW_PP2_MORE || len == n)
            break;
        size_t want = r.need - len;
        size_t got = want < chunk ? want : chunk;
        if (got > n - len)
            got = n - len;
        memcpy(buf + len, in + len, got);
        len += got;
    }
    if (pst == GW_PP2_REFUSED && len < n) {
        buf[len] = in[len];
        if (gw_pp2_parse(buf, len + 1, &r) != GW_PP2_REFUSED)
            abort();
    }
    if (pst != st)
        abort();
    if (pst == GW_PP2_DONE && (len != whole.need || memcmp(&r, &whole, sizeof(r)) != 0))
        abort();
    free(buf);
    free(in);
    return 0;
}
