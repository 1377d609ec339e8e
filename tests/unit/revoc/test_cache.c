/* Unit tests for gateway/revoc/cache.c: what an OCSP answer means now, the
 * soft/hard-fail policy, the refresh schedule, a CRL's age and the
 * fingerprint table. */
#include "../common.h"

#include "revoc/cache.h"

#define T0 ((time_t)1800000000)

static gw_rv_status ans(gw_rv_answer a, time_t this_update, time_t next_update)
{
    gw_rv_status s = {.answer = a,
                      .this_update = this_update,
                      .next_update = next_update,
                      .fetched_at = this_update};
    return s;
}

typedef struct decide_case {
    gw_rv_status st;
    time_t now;
    gw_rv_state want;
} decide_case;

static const decide_case decide_cases[] = {
    {{GW_RV_ANS_NONE, 0, 0, 0, 3}, T0, GW_RV_UNAVAILABLE},
    {{GW_RV_ANS_GOOD, T0, T0 + 3600, T0, 0}, T0 + 10, GW_RV_GOOD},
    /* within the leeway past nextUpdate: still good */
    {{GW_RV_ANS_GOOD, T0, T0 + 3600, T0, 0}, T0 + 3600 + GW_RV_LEEWAY_S, GW_RV_GOOD},
    {{GW_RV_ANS_GOOD, T0, T0 + 3600, T0, 0}, T0 + 3600 + GW_RV_LEEWAY_S + 1, GW_RV_STALE},
    {{GW_RV_ANS_UNKNOWN, T0, T0 + 3600, T0, 0}, T0 + 10, GW_RV_UNKNOWN},
    {{GW_RV_ANS_UNKNOWN, T0, T0 + 3600, T0, 0}, T0 + 7200, GW_RV_STALE},
    /* revoked is final, even past nextUpdate and with failures since */
    {{GW_RV_ANS_REVOKED, T0, T0 + 3600, T0, 0}, T0 + 86400, GW_RV_REVOKED},
    {{GW_RV_ANS_REVOKED, T0, 0, T0, 9}, T0 + 86400, GW_RV_REVOKED},
    /* no nextUpdate: stale after 2 x refresh_s (300 s here) from the fetch */
    {{GW_RV_ANS_GOOD, T0, 0, T0, 0}, T0 + 600, GW_RV_GOOD},
    {{GW_RV_ANS_GOOD, T0, 0, T0, 0}, T0 + 601, GW_RV_STALE},
    /* failures alone do not make a fresh answer stale */
    {{GW_RV_ANS_GOOD, T0, T0 + 3600, T0, 4}, T0 + 100, GW_RV_GOOD},
};

START_TEST(t_decide)
{
    const decide_case *c = &decide_cases[_i];
    ck_assert_int_eq(gw_rv_decide(&c->st, c->now, 300), c->want);
}
END_TEST

typedef struct policy_case {
    gw_rv_state st;
    gw_ocsp_mode mode;
    gw_rv_verdict want;
    const char *reason;
} policy_case;

static const policy_case policy_cases[] = {
    {GW_RV_GOOD, GW_OCSP_HARD, GW_RV_ACCEPT, NULL},
    {GW_RV_GOOD, GW_OCSP_SOFT, GW_RV_ACCEPT, NULL},
    {GW_RV_REVOKED, GW_OCSP_SOFT, GW_RV_REFUSE, "tls.ocsp_revoked"},
    {GW_RV_REVOKED, GW_OCSP_HARD, GW_RV_REFUSE, "tls.ocsp_revoked"},
    {GW_RV_UNKNOWN, GW_OCSP_SOFT, GW_RV_ACCEPT_SOFT, "tls.ocsp_unknown"},
    {GW_RV_UNKNOWN, GW_OCSP_HARD, GW_RV_REFUSE, "tls.ocsp_unknown"},
    {GW_RV_STALE, GW_OCSP_SOFT, GW_RV_ACCEPT_SOFT, "tls.ocsp_stale"},
    {GW_RV_STALE, GW_OCSP_HARD, GW_RV_REFUSE, "tls.ocsp_stale"},
    {GW_RV_UNAVAILABLE, GW_OCSP_SOFT, GW_RV_ACCEPT_SOFT, "tls.ocsp_unavailable"},
    {GW_RV_UNAVAILABLE, GW_OCSP_HARD, GW_RV_REFUSE, "tls.ocsp_unavailable"},
    /* off: nothing is refused, even a revoked answer held from before */
    {GW_RV_REVOKED, GW_OCSP_OFF, GW_RV_ACCEPT, NULL},
};

START_TEST(t_policy)
{
    const policy_case *c = &policy_cases[_i];
    const char *reason = "unset";
    ck_assert_int_eq(gw_rv_policy(c->st, c->mode, &reason), c->want);
    if (c->reason == NULL)
        ck_assert_ptr_null(reason);
    else
        ck_assert_str_eq(reason, c->reason);
}
END_TEST

START_TEST(t_next_fetch)
{
    /* success: refresh_s when nextUpdate is far */
    gw_rv_status s = ans(GW_RV_ANS_GOOD, T0, T0 + 86400);
    ck_assert_int_eq(gw_rv_next_fetch(&s, T0, 300, 0), T0 + 300);
    /* nextUpdate sooner: a tenth of the validity before it (1 h -> 6 min,
     * capped at 5 min) */
    s = ans(GW_RV_ANS_GOOD, T0, T0 + 3600);
    ck_assert_int_eq(gw_rv_next_fetch(&s, T0, 86400, 0), T0 + 3600 - 300);
    s = ans(GW_RV_ANS_GOOD, T0, T0 + 600);
    ck_assert_int_eq(gw_rv_next_fetch(&s, T0, 86400, 0), T0 + 600 - 60);
    /* an answer already past nextUpdate: not sooner than 5 s */
    s = ans(GW_RV_ANS_GOOD, T0 - 7200, T0 - 3600);
    ck_assert_int_eq(gw_rv_next_fetch(&s, T0, 300, 0), T0 + 5);
    /* failures: 5, 10, 20 s ..., capped by refresh_s and 5 min */
    s.failures = 1;
    ck_assert_int_eq(gw_rv_next_fetch(&s, T0, 300, 1), T0 + 5);
    s.failures = 3;
    ck_assert_int_eq(gw_rv_next_fetch(&s, T0, 300, 1), T0 + 20);
    s.failures = 30;
    ck_assert_int_eq(gw_rv_next_fetch(&s, T0, 300, 1), T0 + 300);
    ck_assert_int_eq(gw_rv_next_fetch(&s, T0, 60, 1), T0 + 60);
    ck_assert_int_eq(gw_rv_next_fetch(&s, T0, 86400, 1), T0 + 300);
}
END_TEST

START_TEST(t_crl)
{
    ck_assert_int_eq(gw_crl_decide(0, T0, 0), GW_CRL_CURRENT);
    ck_assert_int_eq(gw_crl_decide(T0, T0, 0), GW_CRL_CURRENT);
    ck_assert_int_eq(gw_crl_decide(T0, T0 + 1, 0), GW_CRL_EXPIRED);
    ck_assert_int_eq(gw_crl_decide(T0, T0 + 1, 3600), GW_CRL_GRACE);
    ck_assert_int_eq(gw_crl_decide(T0, T0 + 3600, 3600), GW_CRL_GRACE);
    ck_assert_int_eq(gw_crl_decide(T0, T0 + 3601, 3600), GW_CRL_EXPIRED);
    /* URL fetch schedule */
    ck_assert_int_eq(gw_crl_next_fetch(T0 + 86400, T0, 3600, 0), T0 + 3600);
    ck_assert_int_eq(gw_crl_next_fetch(T0 + 600, T0, 3600, 0), T0 + 600);
    ck_assert_int_eq(gw_crl_next_fetch(T0 - 600, T0, 3600, 0), T0 + 3600);
    ck_assert_int_eq(gw_crl_next_fetch(T0 + 1, T0, 3600, 0), T0 + 5);
    ck_assert_int_eq(gw_crl_next_fetch(0, T0, 3600, 1), T0 + 30);
    ck_assert_int_eq(gw_crl_next_fetch(0, T0, 3600, 2), T0 + 60);
    ck_assert_int_eq(gw_crl_next_fetch(0, T0, 3600, 20), T0 + 3600);
}
END_TEST

START_TEST(t_table)
{
    gw_rv_table t;
    memset(&t, 0, sizeof(t));
    unsigned char fp[32];
    memset(fp, 0, sizeof(fp));
    ck_assert_int_eq(gw_rv_table_find(&t, fp), -1);
    /* many keys sharing their first 8 bytes (the hash) and many that do not:
     * every one found at its index after the growths */
    for (int i = 0; i < 1000; i++) {
        memset(fp, 0, sizeof(fp));
        fp[i % 2 ? 0 : 31] = (unsigned char)(i & 0xff);
        fp[i % 2 ? 1 : 30] = (unsigned char)(i >> 8);
        ck_assert_int_eq(gw_rv_table_find(&t, fp), -1);
        ck_assert_int_eq(gw_rv_table_add(&t, fp), i);
    }
    for (int i = 0; i < 1000; i++) {
        memset(fp, 0, sizeof(fp));
        fp[i % 2 ? 0 : 31] = (unsigned char)(i & 0xff);
        fp[i % 2 ? 1 : 30] = (unsigned char)(i >> 8);
        ck_assert_int_eq(gw_rv_table_find(&t, fp), i);
    }
    memset(fp, 0xee, sizeof(fp));
    ck_assert_int_eq(gw_rv_table_find(&t, fp), -1);
    gw_rv_table_free(&t);
    ck_assert_uint_eq(t.n, 0);
}
END_TEST

START_TEST(t_fp_hex)
{
    unsigned char fp[32];
    const char *hex = "00ff10ab"
                      "cdef0123"
                      "456789ab"
                      "cdef0011"
                      "22334455"
                      "66778899"
                      "aabbccdd"
                      "eeff0102";
    ck_assert_int_eq(gw_rv_fp_from_hex(hex, fp), 0);
    ck_assert_uint_eq(fp[0], 0x00);
    ck_assert_uint_eq(fp[1], 0xff);
    ck_assert_uint_eq(fp[31], 0x02);
    ck_assert_int_eq(gw_rv_fp_from_hex("00ff", fp), -1); /* short */
    char bad[66];
    snprintf(bad, sizeof(bad), "%.63sg", hex); /* not hex */
    ck_assert_int_eq(gw_rv_fp_from_hex(bad, fp), -1);
    snprintf(bad, sizeof(bad), "%s0", hex); /* long */
    ck_assert_int_eq(gw_rv_fp_from_hex(bad, fp), -1);
    ck_assert_str_eq(gw_rv_state_name(GW_RV_STALE), "stale");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("revoc_cache");
    TCase *tc = tcase_create("cache");
    tcase_add_loop_test(tc, t_decide, 0, (int)(sizeof(decide_cases) / sizeof(decide_cases[0])));
    tcase_add_loop_test(tc, t_policy, 0, (int)(sizeof(policy_cases) / sizeof(policy_cases[0])));
    tcase_add_test(tc, t_next_fetch);
    tcase_add_test(tc, t_crl);
    tcase_add_test(tc, t_table);
    tcase_add_test(tc, t_fp_hex);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
