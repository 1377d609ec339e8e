/* Unit tests for gateway/lib/civil.c: calendar days, the Paris offset on
 * both sides of each summer-time change, and the local date that decides
 * a habilitation's validity near midnight. */
#include <check.h>
#include <stdlib.h>

#include "lib/civil.h"

START_TEST(t_days)
{
    ck_assert_int_eq(gw_days_from_civil(1970, 1, 1), 0);
    ck_assert_int_eq(gw_days_from_civil(1969, 12, 31), -1);
    ck_assert_int_eq(gw_days_from_civil(2000, 3, 1), 11017);
    ck_assert_int_eq(gw_days_from_civil(2024, 2, 29) + 1, gw_days_from_civil(2024, 3, 1));
    ck_assert_int_eq(gw_days_from_civil(2026, 12, 2), 20789);
}
END_TEST

/* 2026: summer time from Sunday 29 March 01:00 UTC to Sunday 25 October
 * 01:00 UTC. */
START_TEST(t_paris_offset)
{
    time_t start = (time_t)gw_days_from_civil(2026, 3, 29) * 86400 + 3600;
    time_t end = (time_t)gw_days_from_civil(2026, 10, 25) * 86400 + 3600;
    ck_assert_int_eq(gw_tz_offset(GW_TZ_PARIS, start - 1), 3600);
    ck_assert_int_eq(gw_tz_offset(GW_TZ_PARIS, start), 7200);
    ck_assert_int_eq(gw_tz_offset(GW_TZ_PARIS, end - 1), 7200);
    ck_assert_int_eq(gw_tz_offset(GW_TZ_PARIS, end), 3600);
    ck_assert_int_eq(gw_tz_offset(GW_TZ_UTC, start), 0);
}
END_TEST

START_TEST(t_local_date)
{
    /* 2026-12-31 23:30 UTC is already 2027-01-01 in Paris (UTC+1) */
    time_t t = (time_t)gw_days_from_civil(2026, 12, 31) * 86400 + 23 * 3600 + 1800;
    ck_assert_int_eq(gw_local_yyyymmdd(GW_TZ_PARIS, t), 20270101);
    ck_assert_int_eq(gw_local_yyyymmdd(GW_TZ_UTC, t), 20261231);
    /* 2026-06-30 22:00 UTC is 2026-07-01 00:00 in Paris (UTC+2) */
    t = (time_t)gw_days_from_civil(2026, 6, 30) * 86400 + 22 * 3600;
    ck_assert_int_eq(gw_local_yyyymmdd(GW_TZ_PARIS, t), 20260701);
    ck_assert_int_eq(gw_local_yyyymmdd(GW_TZ_PARIS, t - 1), 20260630);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("civil");
    TCase *tc = tcase_create("civil");
    tcase_add_test(tc, t_days);
    tcase_add_test(tc, t_paris_offset);
    tcase_add_test(tc, t_local_date);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
