/* Unit tests for gateway/policy/usable.c: "is this habilitation usable
 * today", the one check of the rights path and of /token: every refusal,
 * the bounds of the validity dates (inclusive), and the order of the
 * refusals when several apply. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "policy/usable.h"

static gw_policy pol(gw_hab_state state, int from, int until, gw_env env)
{
    gw_policy p;
    memset(&p, 0, sizeof(p));
    p.state = state;
    p.valid_from = from;
    p.valid_until = until;
    p.env = env;
    return p;
}

START_TEST(usable_cases)
{
    gw_policy p = pol(GW_HAB_ACTIVE, 20260101, 20261231, GW_ENV_SANDBOX);
    ck_assert_int_eq(gw_policy_usable(&p, GW_ENV_SANDBOX, 20260615), GW_OK);
    ck_assert_int_eq(gw_policy_usable(&p, GW_ENV_SANDBOX, 20260101), GW_OK); /* first day */
    ck_assert_int_eq(gw_policy_usable(&p, GW_ENV_SANDBOX, 20261231), GW_OK); /* last day */
    ck_assert_int_eq(gw_policy_usable(&p, GW_ENV_SANDBOX, 20251231), GW_ERR_HAB_NOT_YET_VALID);
    ck_assert_int_eq(gw_policy_usable(&p, GW_ENV_SANDBOX, 20270101), GW_ERR_HAB_EXPIRED);
    ck_assert_int_eq(gw_policy_usable(&p, GW_ENV_PRODUCTION, 20260615), GW_ERR_ENVIRONMENT);
    p.state = GW_HAB_SUSPENDED;
    ck_assert_int_eq(gw_policy_usable(&p, GW_ENV_SANDBOX, 20260615), GW_ERR_HAB_SUSPENDED);
    p.state = GW_HAB_REVOKED;
    ck_assert_int_eq(gw_policy_usable(&p, GW_ENV_SANDBOX, 20260615), GW_ERR_HAB_REVOKED);
}
END_TEST

/* Several reasons at once: state, then dates, then environment. */
START_TEST(usable_order)
{
    gw_policy p = pol(GW_HAB_SUSPENDED, 20260101, 20261231, GW_ENV_PRODUCTION);
    ck_assert_int_eq(gw_policy_usable(&p, GW_ENV_SANDBOX, 20270101), GW_ERR_HAB_SUSPENDED);
    p.state = GW_HAB_ACTIVE;
    ck_assert_int_eq(gw_policy_usable(&p, GW_ENV_SANDBOX, 20270101), GW_ERR_HAB_EXPIRED);
    ck_assert_int_eq(gw_policy_usable(&p, GW_ENV_SANDBOX, 20250101), GW_ERR_HAB_NOT_YET_VALID);
    ck_assert_int_eq(gw_policy_usable(&p, GW_ENV_SANDBOX, 20260601), GW_ERR_ENVIRONMENT);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("usable");
    TCase *tc = tcase_create("usable");
    tcase_add_test(tc, usable_cases);
    tcase_add_test(tc, usable_order);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
