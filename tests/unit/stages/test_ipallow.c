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
    tcase_add_loop_test(tc, bad_setting, 0, sizeof(ccases) / sizeof(ccases[0]));
}

int main(void)
{
    return run_suite("ipallow", add);
}
