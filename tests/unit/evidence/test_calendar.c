/* Unit tests for gateway/evidence/calendar.c (interval sets, Europe/Paris
 * days and hours, maintenance calendar) and the availability figure of
 * gateway/evidence/availability.c. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "evidence/availability.h"
#include "evidence/calendar.h"
#include "evidence/evidence.h"

static int64_t T(const char *iso)
{
    int64_t ms = -1;
    ck_assert_int_eq(gw_ev_parse_time(iso, &ms), 0);
    return ms;
}

START_TEST(ivals_union_and_measure)
{
    gw_ivals s = {0};
    ck_assert_int_eq(gw_ivals_add(&s, 10, 20), 0);
    ck_assert_int_eq(gw_ivals_add(&s, 15, 30), 0); /* overlaps */
    ck_assert_int_eq(gw_ivals_add(&s, 30, 35), 0); /* touches */
    ck_assert_int_eq(gw_ivals_add(&s, 50, 60), 0);
    ck_assert_int_eq(gw_ivals_add(&s, 5, 5), 0); /* empty: ignored */
    ck_assert_int_eq(gw_ivals_add(&s, 0, 1), 0);
    gw_ivals_normalize(&s);
    ck_assert_uint_eq(s.n, 3);
    ck_assert_int_eq(s.v[0].a, 0);
    ck_assert_int_eq(s.v[1].a, 10);
    ck_assert_int_eq(s.v[1].b, 35);
    ck_assert_int_eq(s.v[2].b, 60);
    ck_assert_int_eq(gw_ivals_within(&s, 0, 100), 1 + 25 + 10);
    ck_assert_int_eq(gw_ivals_within(&s, 12, 55), 23 + 5);
    ck_assert_int_eq(gw_ivals_within(&s, 35, 50), 0);
    ck_assert_int_eq(gw_ivals_within(&s, 40, 30), 0);
    gw_ivals_clear(&s);
    ck_assert_uint_eq(s.n, 0);
}
END_TEST

START_TEST(paris_days_and_hours)
{
    /* winter: UTC+1 */
    long d = gw_paris_day(T("2026-12-02T12:00:00Z"));
    ck_assert_int_eq(gw_paris_local(d, 0), T("2026-12-01T23:00:00Z"));
    ck_assert_int_eq(gw_paris_local(d, 7 * 60), T("2026-12-02T06:00:00Z"));
    ck_assert_int_eq(gw_paris_local(d, 20 * 60), T("2026-12-02T19:00:00Z"));
    /* 23:30 UTC is already the next local day */
    ck_assert_int_eq(gw_paris_day(T("2026-12-02T23:30:00Z")), d + 1);
    ck_assert_int_eq(gw_paris_day(T("2026-12-02T22:59:59.999Z")), d);
    /* summer: UTC+2 */
    long s = gw_paris_day(T("2026-07-14T12:00:00Z"));
    ck_assert_int_eq(gw_paris_local(s, 7 * 60), T("2026-07-14T05:00:00Z"));
    ck_assert_int_eq(gw_paris_local(s, 20 * 60), T("2026-07-14T18:00:00Z"));
    /* the spring day has 23 hours, the autumn day 25 */
    long sp = gw_paris_day(T("2026-03-29T12:00:00Z"));
    ck_assert_int_eq(gw_paris_local(sp, 0), T("2026-03-28T23:00:00Z"));
    ck_assert_int_eq(gw_paris_local(sp + 1, 0) - gw_paris_local(sp, 0), 23LL * 3600000);
    ck_assert_int_eq(gw_paris_local(sp, 7 * 60), T("2026-03-29T05:00:00Z"));
    long au = gw_paris_day(T("2026-10-25T12:00:00Z"));
    ck_assert_int_eq(gw_paris_local(au + 1, 0) - gw_paris_local(au, 0), 25LL * 3600000);
    ck_assert_int_eq(gw_paris_local(au, 7 * 60), T("2026-10-25T06:00:00Z"));
}
END_TEST

START_TEST(availability_figure)
{
    gw_ivals u = {0};
    /* 07:00-07:30 Paris (in the coverage hours), 04:00-04:10 Paris (not) */
    gw_ivals_add(&u, T("2026-12-02T06:00:00Z"), T("2026-12-02T06:30:00Z"));
    gw_ivals_add(&u, T("2026-12-02T03:00:00Z"), T("2026-12-02T03:10:00Z"));
    gw_ivals_normalize(&u);
    gw_avail_figure f;
    gw_avail_compute(&u, T("2026-12-01T23:00:00Z"), T("2026-12-02T23:00:00Z"), &f);
    ck_assert_int_eq(f.total_ms, 86400000);
    ck_assert_int_eq(f.unavail_ms, 40 * 60000);
    ck_assert_int_eq(f.cov_total_ms, 13LL * 3600000);
    ck_assert_int_eq(f.cov_unavail_ms, 30 * 60000);
    /* a period that starts inside the coverage hours and ends before them
     * the next day */
    gw_avail_compute(&u, T("2026-12-02T06:15:00Z"), T("2026-12-03T05:00:00Z"), &f);
    ck_assert_int_eq(f.unavail_ms, 15 * 60000);
    ck_assert_int_eq(f.cov_total_ms, 12LL * 3600000 + 45 * 60000);
    ck_assert_int_eq(f.cov_unavail_ms, 15 * 60000);
    /* to the millisecond */
    gw_ivals v = {0};
    gw_ivals_add(&v, T("2026-12-02T10:00:00.250Z"), T("2026-12-02T10:00:07.125Z"));
    gw_avail_compute(&v, T("2026-12-02T09:00:00Z"), T("2026-12-02T11:00:00Z"), &f);
    ck_assert_int_eq(f.unavail_ms, 6875);
    ck_assert_int_eq(f.cov_unavail_ms, 6875);
    gw_ivals_clear(&u);
    gw_ivals_clear(&v);
}
END_TEST

START_TEST(maintenance_calendar)
{
    gw_maint_slot slots[2];
    memset(slots, 0, sizeof(slots));
    /* every night 23:30-00:30 Paris, and one dated slot */
    slots[0].daily = 1;
    slots[0].start_min = 23 * 60 + 30;
    slots[0].end_min = 30;
    slots[1].from = (time_t)(T("2026-12-03T01:00:00Z") / 1000);
    slots[1].until = (time_t)(T("2026-12-03T02:00:00Z") / 1000);
    gw_maint_conf c;
    memset(&c, 0, sizeof(c));
    c.tz = GW_TZ_PARIS;
    c.slots = slots;
    c.nslots = 2;
    gw_ivals m = {0};
    ck_assert_int_eq(
        gw_maint_intervals(&c, T("2026-12-02T12:00:00Z"), T("2026-12-03T12:00:00Z"), &m), 0);
    ck_assert_uint_eq(m.n, 2);
    ck_assert_int_eq(m.v[0].a, T("2026-12-02T22:30:00Z"));
    ck_assert_int_eq(m.v[0].b, T("2026-12-02T23:30:00Z"));
    ck_assert_int_eq(m.v[1].a, T("2026-12-03T01:00:00Z"));
    ck_assert_int_eq(m.v[1].b, T("2026-12-03T02:00:00Z"));
    gw_ivals_clear(&m);
    /* clipped to a period that starts inside a slot */
    ck_assert_int_eq(
        gw_maint_intervals(&c, T("2026-12-02T23:00:00.500Z"), T("2026-12-03T01:30:00Z"), &m), 0);
    ck_assert_uint_eq(m.n, 2);
    ck_assert_int_eq(m.v[0].a, T("2026-12-02T23:00:00.500Z"));
    ck_assert_int_eq(gw_ivals_within(&m, T("2026-12-02T00:00:00Z"), T("2026-12-04T00:00:00Z")),
                     29 * 60000 + 59500 + 30 * 60000);
    gw_ivals_clear(&m);
}
END_TEST

START_TEST(times)
{
    int64_t ms;
    ck_assert_int_eq(gw_ev_parse_time("2026-12-02", &ms), 0);
    ck_assert_int_eq(ms, 1796169600000LL);
    ck_assert_int_eq(gw_ev_parse_time("2026-12-02T09:00:00.123Z", &ms), 0);
    char out[32];
    gw_ev_format_time(ms, out);
    ck_assert_str_eq(out, "2026-12-02T09:00:00.123Z");
    ck_assert_int_eq(gw_ev_parse_time("2026-12-02T09:00Z", &ms), 0);
    ck_assert_int_eq(gw_ev_parse_time("2026-02-31", &ms), -1);
    ck_assert_int_eq(gw_ev_parse_time("2026-12-02T09:00:00", &ms), -1);
    ck_assert_int_eq(gw_ev_parse_time("2026-12-02T09:00:00+01:00", &ms), -1);
    ck_assert_int_eq(gw_ev_parse_time("yesterday", &ms), -1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("evidence_calendar");
    TCase *tc = tcase_create("calendar");
    tcase_add_test(tc, ivals_union_and_measure);
    tcase_add_test(tc, paris_days_and_hours);
    tcase_add_test(tc, availability_figure);
    tcase_add_test(tc, maintenance_calendar);
    tcase_add_test(tc, times);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
