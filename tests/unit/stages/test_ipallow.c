/* Unit tests for gateway/stages/ipallow.c: the effective client address
 * (trusted proxies, X-Forwarded-For) and the allowlist. */
#include "fixture.h"

START_TEST(trusted_proxy_forwarded_for)
{
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    gw_stage_lists *c = lists_from("{\"trusted_proxies\":[\"10.0.0.0/8\"]}", &errs);
    ck_assert_ptr_nonnull(c);
    /* right-most untrusted hop: 127.0.0.1 (10.9.9.9 is another trusted proxy) */
    outcome o = run(REQ(DECL, "X-Forwarded-For: 192.0.2.1, 127.0.0.1, 10.9.9.9\r\n"), FP_A,
                    "10.1.2.3", GW_ENV_SANDBOX, c, 0);
    ck_assert_int_eq(o.v, GW_STAGE_NEXT);
    ck_assert_str_eq(o.client_ip, "127.0.0.1");
    /* spoofed left-most entries do not help */
    o = run(REQ(DECL, "X-Forwarded-For: 127.0.0.1, 192.0.2.1\r\n"), FP_A, "10.1.2.3",
            GW_ENV_SANDBOX, c, 0);
    ck_assert_int_eq(o.err, GW_ERR_IP_DENIED);
    ck_assert_str_eq(o.client_ip, "192.0.2.1");
    /* several header lines read as one list, last line right-most */
    o = run(REQ(DECL, "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-For: 127.0.0.1\r\n"), FP_A,
            "10.1.2.3", GW_ENV_SANDBOX, c, 0);
    ck_assert_int_eq(o.v, GW_STAGE_NEXT);
    /* malformed from a trusted proxy: refused */
    o = run(REQ(DECL, "X-Forwarded-For: 127.0.0.1, bogus\r\n"), FP_A, "10.1.2.3", GW_ENV_SANDBOX, c,
            0);
    ck_assert_int_eq(o.err, GW_ERR_IP_DENIED);
    ck_assert_str_eq(o.reason, "ipallow.bad_forwarded_for");
    /* v4-mapped hop normalised */
    o = run(REQ(DECL, "X-Forwarded-For: ::ffff:127.0.0.1\r\n"), FP_A, "10.1.2.3", GW_ENV_SANDBOX, c,
            0);
    ck_assert_int_eq(o.v, GW_STAGE_NEXT);
    ck_assert_str_eq(o.client_ip, "127.0.0.1");
    gw_stage_lists_free(c);
}
END_TEST

START_TEST(trusted_peer)
{
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    gw_stage_lists *c =
        lists_from("{\"trusted_proxies\":[\"10.0.0.0/8\",\"2001:db8::/32\"]}", &errs);
    ck_assert_ptr_nonnull(c);
    unsigned char a4[4] = {10, 1, 2, 3}, b4[4] = {11, 1, 2, 3}, a6[16] = {0x20, 0x01, 0x0d, 0xb8};
    ck_assert(gw_ipallow_trusted(c, AF_INET, a4));
    ck_assert(!gw_ipallow_trusted(c, AF_INET, b4));
    ck_assert(gw_ipallow_trusted(c, AF_INET6, a6));
    ck_assert(!gw_ipallow_trusted(defaults, AF_INET, a4)); /* none by default */
    gw_stage_lists_free(c);
}
END_TEST

/* The address text the connection formatted once is the one inet_ntop()
 * gives; the stage takes it for the peer and the PROXY source, and formats
 * an X-Forwarded-For hop itself. */
START_TEST(client_text_from_the_connection)
{
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    gw_stage_lists *c = lists_from("{\"trusted_proxies\":[\"10.0.0.0/8\"]}", &errs);
    ck_assert_ptr_nonnull(c);
    const void *tconf = gw_stage_lists_conf(c, &gw_stage_ipallow);
    static const struct {
        int family;
        const char *text;
    } peers[] = {{AF_INET, "192.0.2.1"},
                 {AF_INET, "127.0.0.1"},
                 {AF_INET, "255.255.255.255"},
                 {AF_INET6, "2001:db8::7"},
                 {AF_INET6, "::1"},
                 {AF_INET6, "fe80::1:2:3:4"},
                 {AF_INET6, "2001:db8:0:1:2:3:4:5"}};
    gw_http_request http;
    memset(&http, 0, sizeof(http));
    for (size_t i = 0; i < sizeof(peers) / sizeof(peers[0]); i++) {
        gw_req_view v;
        memset(&v, 0, sizeof(v));
        v.http = &http;
        v.peer_family = peers[i].family;
        ck_assert_int_eq(inet_pton(peers[i].family, peers[i].text, v.peer_addr), 1);
        gw_ipallow_out formatted, given;
        memset(&formatted, 0, sizeof(formatted));
        memset(&given, 0x55, sizeof(given));
        ck_assert_int_eq(gw_ipallow_resolve(&v, tconf, &formatted), 0);
        ck_assert_str_eq(formatted.ip, peers[i].text);
        v.peer_ip = peers[i].text;
        ck_assert_int_eq(gw_ipallow_resolve(&v, tconf, &given), 0);
        ck_assert_str_eq(given.ip, peers[i].text);
        ck_assert_int_eq(given.family, formatted.family);
        ck_assert(memcmp(given.addr, formatted.addr, peers[i].family == AF_INET ? 4 : 16) == 0);
    }
    /* a trusted peer: the PROXY source's text; an X-Forwarded-For hop is
     * formatted (the peer's text is not the client's) */
    gw_req_view v;
    memset(&v, 0, sizeof(v));
    v.http = &http;
    v.peer_family = AF_INET;
    ck_assert_int_eq(inet_pton(AF_INET, "10.1.2.3", v.peer_addr), 1);
    v.peer_ip = "10.1.2.3";
    v.proxied = 1;
    v.proxy_family = AF_INET6;
    ck_assert_int_eq(inet_pton(AF_INET6, "2001:db8::9", v.proxy_addr), 1);
    v.proxy_ip = "2001:db8::9";
    gw_ipallow_out o;
    memset(&o, 0, sizeof(o));
    ck_assert_int_eq(gw_ipallow_resolve(&v, tconf, &o), 0);
    ck_assert_str_eq(o.ip, "2001:db8::9");
    ck_assert_int_eq(o.family, AF_INET6);
    gw_http_request *h = gw_test_request(REQ(DECL, "X-Forwarded-For: 192.0.2.44\r\n"));
    v.http = h;
    v.proxied = 0;
    ck_assert_int_eq(gw_ipallow_resolve(&v, tconf, &o), 0);
    ck_assert_str_eq(o.ip, "192.0.2.44");
    gw_http_request_free(h);
    gw_stage_lists_free(c);
}
END_TEST

static const ccase ccases[] = {
    {"{\"trusted_proxies\":[\"10.0.0.1/8\"]}", "gw.json: access.trusted_proxies[0]: host bits set"},
    {"{\"trusted_proxies\":[\"x\"]}", "gw.json: access.trusted_proxies[0]: not a CIDR"},
    {"{\"trusted_proxies\":\"10.0.0.0/8\"}",
     "gw.json: access.trusted_proxies: must be an array of at most 256 CIDRs"},
};

START_TEST(bad_setting)
{
    expect_access_error(ccases[_i].json, ccases[_i].msg);
}
END_TEST

static void add(TCase *tc)
{
    tcase_add_test(tc, trusted_proxy_forwarded_for);
    tcase_add_test(tc, trusted_peer);
    tcase_add_test(tc, client_text_from_the_connection);
    tcase_add_loop_test(tc, bad_setting, 0, sizeof(ccases) / sizeof(ccases[0]));
}

int main(void)
{
    return run_suite("ipallow", add);
}
