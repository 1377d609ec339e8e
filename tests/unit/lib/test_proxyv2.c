/* Unit tests for gateway/lib/proxyv2.c: PROXY protocol v2 headers fed
 * whole, byte by byte and split at every point, the way conn.c reads them
 * (never a byte past the header); valid IPv4/IPv6 PROXY headers, LOCAL,
 * UNSPEC, TLVs; and every refusal with its reason. */
#include <arpa/inet.h>
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../common.h"
#include "lib/proxyv2.h"

static const unsigned char SIG[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                      0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* A header: signature, <vc>, <fam>, the length of <block>, <block>.
 * <announce> overrides the length field when >= 0. Returns its size. */
static size_t mk(unsigned char *out, unsigned vc, unsigned fam, const unsigned char *block,
                 size_t blen, long announce)
{
    memcpy(out, SIG, 12);
    out[12] = (unsigned char)vc;
    out[13] = (unsigned char)fam;
    size_t l = announce >= 0 ? (size_t)announce : blen;
    out[14] = (unsigned char)(l >> 8);
    out[15] = (unsigned char)l;
    if (blen > 0)
        memcpy(out + 16, block, blen);
    return 16 + blen;
}

/* An IPv4 block: 192.0.2.10:40000 -> 198.51.100.1:443, then <tlv>. */
static size_t block4(unsigned char *b, const unsigned char *tlv, size_t tlen)
{
    const unsigned char a[12] = {192, 0, 2, 10, 198, 51, 100, 1, 0x9c, 0x40, 0x01, 0xbb};
    memcpy(b, a, 12);
    if (tlen > 0)
        memcpy(b + 12, tlv, tlen);
    return 12 + tlen;
}

/* An IPv6 block with source <src> (text) port 50000, then <tlv>. */
static size_t block6(unsigned char *b, const char *src, const unsigned char *tlv, size_t tlen)
{
    memset(b, 0, 36);
    /* also used by main() before the tests run: no ck_assert here */
    if (inet_pton(AF_INET6, src, b) != 1 || inet_pton(AF_INET6, "2001:db8::1", b + 16) != 1)
        abort();
    b[32] = 0xc3;
    b[33] = 0x50;
    b[34] = 0x01;
    b[35] = 0xbb;
    if (tlen > 0)
        memcpy(b + 36, tlv, tlen);
    return 36 + tlen;
}

static const char *addr_text(const gw_pp2_result *r, char *buf, size_t n)
{
    return inet_ntop(r->family, r->addr, buf, (socklen_t)n);
}

/* Every proper prefix of an accepted header is "more" with a need that
 * never reaches past the header and is exact once the length is known;
 * the whole header (and the header followed by a TLS byte) is "done" with
 * the same result. */
static void check_prefixes_then_done(const unsigned char *h, size_t n, gw_pp2_result *whole)
{
    gw_pp2_result r;
    for (size_t k = 0; k < n; k++) {
        ck_assert_msg(gw_pp2_parse(h, k, &r) == GW_PP2_MORE, "prefix %zu of %zu", k, n);
        ck_assert_uint_gt(r.need, k);
        ck_assert_uint_le(r.need, n);
        if (k >= 16)
            ck_assert_uint_eq(r.need, n);
        ck_assert_ptr_null(r.reason);
    }
    ck_assert_int_eq(gw_pp2_parse(h, n, whole), GW_PP2_DONE);
    ck_assert_uint_eq(whole->need, n);
    ck_assert_ptr_null(whole->reason);
    unsigned char more[GW_PP2_MAX + 1];
    memcpy(more, h, n);
    more[n] = 0x16; /* a TLS record's first byte */
    ck_assert_int_eq(gw_pp2_parse(more, n + 1, &r), GW_PP2_DONE);
    ck_assert_uint_eq(r.need, n);
    ck_assert_mem_eq(&r, whole, sizeof(r));
}

START_TEST(t_proxy_ipv4)
{
    unsigned char b[64], h[128];
    size_t n = mk(h, 0x21, 0x11, b, block4(b, NULL, 0), -1);
    ck_assert_uint_eq(n, 28);
    gw_pp2_result r;
    check_prefixes_then_done(h, n, &r);
    char ip[64];
    ck_assert_int_eq(r.proxied, 1);
    ck_assert_int_eq(r.local, 0);
    ck_assert_int_eq(r.family, AF_INET);
    ck_assert_str_eq(addr_text(&r, ip, sizeof(ip)), "192.0.2.10");
    ck_assert_uint_eq(r.port, 40000);
}
END_TEST

START_TEST(t_proxy_ipv6)
{
    unsigned char b[64], h[128];
    size_t n = mk(h, 0x21, 0x21, b, block6(b, "2001:db8:0:1::42", NULL, 0), -1);
    ck_assert_uint_eq(n, 52);
    gw_pp2_result r;
    check_prefixes_then_done(h, n, &r);
    char ip[64];
    ck_assert_int_eq(r.proxied, 1);
    ck_assert_int_eq(r.family, AF_INET6);
    ck_assert_str_eq(addr_text(&r, ip, sizeof(ip)), "2001:db8:0:1::42");
    ck_assert_uint_eq(r.port, 50000);
}
END_TEST

/* An IPv4-mapped IPv6 source is an IPv4 client (allowlists are IPv4). */
START_TEST(t_proxy_ipv6_mapped)
{
    unsigned char b[64], h[128];
    size_t n = mk(h, 0x21, 0x21, b, block6(b, "::ffff:203.0.113.7", NULL, 0), -1);
    gw_pp2_result r;
    check_prefixes_then_done(h, n, &r);
    char ip[64];
    ck_assert_int_eq(r.family, AF_INET);
    ck_assert_str_eq(addr_text(&r, ip, sizeof(ip)), "203.0.113.7");
}
END_TEST

/* LOCAL: a load balancer's own check. The block is ignored whatever it
 * holds (an empty one, a family we would refuse for PROXY, garbage). */
START_TEST(t_local)
{
    unsigned char h[GW_PP2_MAX], junk[40];
    memset(junk, 0xee, sizeof(junk));
    struct {
        unsigned fam;
        size_t blen;
    } cases[] = {{0x00, 0}, {0x11, 12}, {0x12, 12}, {0x31, 40}, {0xff, 3}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = mk(h, 0x20, cases[i].fam, junk, cases[i].blen, -1);
        gw_pp2_result r;
        check_prefixes_then_done(h, n, &r);
        ck_assert_int_eq(r.local, 1);
        ck_assert_int_eq(r.proxied, 0);
        ck_assert_int_eq(r.family, 0);
    }
}
END_TEST

/* PROXY with family UNSPEC: the socket's address is kept. */
START_TEST(t_proxy_unspec)
{
    unsigned char h[64], junk[5] = {1, 2, 3, 4, 5};
    size_t n = mk(h, 0x21, 0x00, junk, sizeof(junk), -1);
    gw_pp2_result r;
    check_prefixes_then_done(h, n, &r);
    ck_assert_int_eq(r.proxied, 0);
    ck_assert_int_eq(r.local, 0);
}
END_TEST

/* TLVs after the addresses are skipped, up to the longest header. */
START_TEST(t_tlvs)
{
    /* ALPN "h2", AUTHORITY "api.example", a 0-length NOOP */
    const unsigned char tlv[] = {0x01, 0x00, 0x02, 'h', '2', 0x02, 0x00, 0x0b, 'a',  'p',  'i',
                                 '.',  'e',  'x',  'a', 'm', 'p',  'l',  'e',  0x04, 0x00, 0x00};
    unsigned char b[GW_PP2_MAX], h[GW_PP2_MAX + 16];
    size_t n = mk(h, 0x21, 0x11, b, block4(b, tlv, sizeof(tlv)), -1);
    gw_pp2_result r;
    check_prefixes_then_done(h, n, &r);
    char ip[64];
    ck_assert_str_eq(addr_text(&r, ip, sizeof(ip)), "192.0.2.10");
    n = mk(h, 0x21, 0x21, b, block6(b, "2001:db8::7", tlv, sizeof(tlv)), -1);
    check_prefixes_then_done(h, n, &r);
    ck_assert_str_eq(addr_text(&r, ip, sizeof(ip)), "2001:db8::7");

    /* one TLV filling the header to GW_PP2_MAX exactly: accepted */
    unsigned char big[GW_PP2_MAX];
    size_t vlen = GW_PP2_MAX - 16 - 12 - 3;
    big[0] = 0xe0;
    big[1] = (unsigned char)(vlen >> 8);
    big[2] = (unsigned char)vlen;
    memset(big + 3, 'x', vlen);
    n = mk(h, 0x21, 0x11, b, block4(b, big, 3 + vlen), -1);
    ck_assert_uint_eq(n, GW_PP2_MAX);
    check_prefixes_then_done(h, n, &r);
}
END_TEST

/* The refusals. <at> is the length of the shortest refused prefix: every
 * shorter one is "more", every longer one (up to the whole) refused with
 * the same reason. */
typedef struct {
    const char *name;
    unsigned char h[GW_PP2_MAX + 64];
    size_t n;
    size_t at;
    const char *reason;
} bad_case;

static bad_case bad[16];
static size_t nbad;

static void add_bad(const char *name, const unsigned char *h, size_t n, size_t at,
                    const char *reason)
{
    if (nbad >= sizeof(bad) / sizeof(bad[0]))
        abort();
    bad_case *c = &bad[nbad++];
    c->name = name;
    memcpy(c->h, h, n);
    c->n = n;
    c->at = at;
    c->reason = reason;
}

static void make_bad_cases(void)
{
    unsigned char b[GW_PP2_MAX], h[GW_PP2_MAX + 64];
    nbad = 0;
    size_t n = mk(h, 0x21, 0x11, b, block4(b, NULL, 0), -1);
    h[0] = 'G'; /* "GET / HTTP/1.1" on a PROXY listener */
    add_bad("bad signature, first byte", h, n, 1, "bad signature");
    n = mk(h, 0x21, 0x11, b, block4(b, NULL, 0), -1);
    h[11] = 0x0b;
    add_bad("bad signature, last byte", h, n, 12, "bad signature");
    n = mk(h, 0x11, 0x11, b, block4(b, NULL, 0), -1);
    add_bad("version 1", h, n, 13, "unsupported version");
    n = mk(h, 0x31, 0x11, b, block4(b, NULL, 0), -1);
    add_bad("version 3", h, n, 13, "unsupported version");
    n = mk(h, 0x22, 0x11, b, block4(b, NULL, 0), -1);
    add_bad("command 2", h, n, 13, "unsupported command");
    n = mk(h, 0x21, 0x12, b, block4(b, NULL, 0), -1);
    add_bad("UDP over IPv4", h, n, 14, "unsupported family or protocol");
    n = mk(h, 0x21, 0x22, b, block6(b, "2001:db8::1", NULL, 0), -1);
    add_bad("UDP over IPv6", h, n, 14, "unsupported family or protocol");
    memset(b, 'u', 216);
    n = mk(h, 0x21, 0x31, b, 216, -1);
    add_bad("UNIX stream", h, n, 14, "unsupported family or protocol");
    n = mk(h, 0x21, 0x32, b, 216, -1);
    add_bad("UNIX datagram", h, n, 14, "unsupported family or protocol");
    n = mk(h, 0x21, 0x41, b, 12, -1);
    add_bad("unknown family", h, n, 14, "unsupported family or protocol");
    n = mk(h, 0x21, 0x11, b, 11, -1);
    add_bad("IPv4 block too short", h, n, 16, "address block too short");
    n = mk(h, 0x21, 0x21, b, block4(b, NULL, 0), -1);
    add_bad("IPv6 block too short", h, n, 16, "address block too short");
    n = mk(h, 0x21, 0x11, b, 0, 217);
    add_bad("length over the maximum", h, n, 16, "header too long");
    n = mk(h, 0x20, 0x00, b, 0, 0xffff);
    add_bad("LOCAL, length 65535", h, n, 16, "header too long");
    const unsigned char cut[] = {0x01, 0x00, 0x05, 'h', '2'}; /* value runs past the end */
    n = mk(h, 0x21, 0x11, b, block4(b, cut, sizeof(cut)), -1);
    add_bad("TLV past the end", h, n, n, "malformed TLV");
    const unsigned char stub[] = {0x01, 0x00}; /* no room for the length */
    n = mk(h, 0x21, 0x21, b, block6(b, "2001:db8::1", stub, sizeof(stub)), -1);
    add_bad("TLV header cut", h, n, n, "malformed TLV");
}

START_TEST(t_refused)
{
    make_bad_cases();
    bad_case *c = &bad[_i];
    gw_pp2_result r;
    for (size_t k = 0; k < c->at; k++)
        ck_assert_msg(gw_pp2_parse(c->h, k, &r) == GW_PP2_MORE, "%s: prefix %zu", c->name, k);
    for (size_t k = c->at; k <= c->n; k++) {
        ck_assert_msg(gw_pp2_parse(c->h, k, &r) == GW_PP2_REFUSED, "%s: prefix %zu", c->name, k);
        ck_assert_str_eq(r.reason, c->reason);
        ck_assert_int_eq(r.proxied, 0);
        ck_assert_uint_eq(r.need, 0);
    }
}
END_TEST

/* conn.c's reading loop against a stream of header + TLS bytes that gives
 * at most <chunk> bytes per read: for every chunk size (every split point
 * of the header), it stops exactly at the header's end. */
static size_t read_like_conn(const unsigned char *stream, size_t slen, size_t chunk,
                             gw_pp2_result *r, gw_pp2_status *st)
{
    unsigned char buf[GW_PP2_MAX];
    size_t len = 0, pos = 0;
    for (int rounds = 0; rounds < GW_PP2_MAX + 2; rounds++) {
        *st = gw_pp2_parse(buf, len, r);
        if (*st != GW_PP2_MORE)
            return pos;
        ck_assert_uint_le(r->need, GW_PP2_MAX);
        size_t want = r->need - len;
        size_t got = want < chunk ? want : chunk;
        if (got > slen - pos)
            got = slen - pos;
        ck_assert_uint_gt(got, 0);
        memcpy(buf + len, stream + pos, got);
        len += got;
        pos += got;
    }
    ck_abort_msg("reading did not end");
    return 0;
}

START_TEST(t_every_split)
{
    unsigned char b[GW_PP2_MAX], s[GW_PP2_MAX + 32];
    const unsigned char tlv[] = {0x05, 0x00, 0x03, 'a', 'b', 'c'};
    size_t n = mk(s, 0x21, 0x21, b, block6(b, "2001:db8::9", tlv, sizeof(tlv)), -1);
    memset(s + n, 0x16, 32); /* the client's TLS bytes */
    for (size_t chunk = 1; chunk <= n + 32; chunk++) {
        gw_pp2_result r;
        gw_pp2_status st;
        size_t used = read_like_conn(s, n + 32, chunk, &r, &st);
        ck_assert_int_eq(st, GW_PP2_DONE);
        ck_assert_uint_eq(used, n);
        ck_assert_int_eq(r.family, AF_INET6);
        ck_assert_uint_eq(r.port, 50000);
    }
    /* a refused header stops the reading as soon as the fault is read */
    n = mk(s, 0x21, 0x12, b, block4(b, NULL, 0), -1);
    for (size_t chunk = 1; chunk <= n; chunk++) {
        gw_pp2_result r;
        gw_pp2_status st;
        size_t used = read_like_conn(s, n, chunk, &r, &st);
        ck_assert_int_eq(st, GW_PP2_REFUSED);
        ck_assert_uint_le(used, 16);
    }
}
END_TEST

int main(void)
{
    make_bad_cases();
    Suite *s = suite_create("proxyv2");
    TCase *tc = tcase_create("proxyv2");
    tcase_add_test(tc, t_proxy_ipv4);
    tcase_add_test(tc, t_proxy_ipv6);
    tcase_add_test(tc, t_proxy_ipv6_mapped);
    tcase_add_test(tc, t_local);
    tcase_add_test(tc, t_proxy_unspec);
    tcase_add_test(tc, t_tlvs);
    tcase_add_loop_test(tc, t_refused, 0, (int)nbad);
    tcase_add_test(tc, t_every_split);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
