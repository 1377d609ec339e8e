/* Unit tests for gateway/stages/killswitch.c and its setting. */
#include "fixture.h"

START_TEST(kill_switch)
{
    char *err = NULL;
    ck_assert_int_eq(gw_suspensions_set(susp, "client-a", 1, "test", &err), 0);
    outcome o = run(REQ(DECL, ""), FP_A, "127.0.0.1", GW_ENV_SANDBOX, NULL, 0);
    ck_assert_int_eq(o.v, GW_STAGE_REJECT);
    ck_assert_int_eq(o.err, GW_ERR_CONSUMER_SUSPENDED);
    o = run(ETAT "\r\n", FP_A, "127.0.0.1", GW_ENV_SANDBOX, NULL, 0); /* public routes too */
    ck_assert_int_eq(o.v, GW_STAGE_REJECT);
    ck_assert_int_eq(o.err, GW_ERR_CONSUMER_SUSPENDED);
    ck_assert_int_eq(gw_suspensions_set(susp, "client-a", 0, "test", &err), 0);
    o = run(REQ(DECL, ""), FP_A, "127.0.0.1", GW_ENV_SANDBOX, NULL, 0);
    ck_assert_int_eq(o.v, GW_STAGE_NEXT);
    o = run(ETAT "\r\n", FP_A, "127.0.0.1", GW_ENV_SANDBOX, NULL, 0);
    ck_assert_int_eq(o.v, GW_STAGE_NEXT);
    ck_assert_int_eq(o.quota_remaining, 48); /* and counted */
}
END_TEST

START_TEST(suspensions_file_setting)
{
    expect_access_error("{\"suspensions_file\":\"\"}",
                        "gw.json: access.suspensions_file: must be a non-empty string");
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    gw_stage_lists *l = lists_from("{\"suspensions_file\":\"state/s.json\"}", &errs);
    ck_assert_ptr_nonnull(l);
    char want[PATH_MAX + 32];
    snprintf(want, sizeof(want), "%s/state/s.json", tmpdir);
    ck_assert_str_eq(gw_killswitch_file(l), want);
    gw_stage_lists_free(l);
    l = lists_from(NULL, &errs);
    snprintf(want, sizeof(want), "%s/suspensions.json", tmpdir);
    ck_assert_str_eq(gw_killswitch_file(l), want);
    gw_stage_lists_free(l);
}
END_TEST

static void add(TCase *tc)
{
    tcase_add_test(tc, kill_switch);
    tcase_add_test(tc, suspensions_file_setting);
}

int main(void)
{
    return run_suite("killswitch", add);
}
