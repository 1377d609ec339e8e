/* Unit tests for gateway/stages/maintenance.c: the slots, their time
 * arithmetic, the CGU budget per night, the answers during a slot. */
#include "fixture.h"

#define M(l) ((const gw_maint_conf *)gw_stage_lists_conf((l), &gw_stage_maintenance))

START_TEST(paris_offset)
{
    ck_assert_int_eq(gw_tz_offset(GW_TZ_PARIS, utc(2026, 1, 15, 12, 0)), 3600);
    ck_assert_int_eq(gw_tz_offset(GW_TZ_PARIS, utc(2026, 7, 1, 12, 0)), 7200);
    /* 2026: DST from Sunday 29 March 01:00 UTC to Sunday 25 October 01:00 UTC */
    ck_assert_int_eq(gw_tz_offset(GW_TZ_PARIS, utc(2026, 3, 29, 0, 59)), 3600);
    ck_assert_int_eq(gw_tz_offset(GW_TZ_PARIS, utc(2026, 3, 29, 1, 0)), 7200);
    ck_assert_int_eq(gw_tz_offset(GW_TZ_PARIS, utc(2026, 10, 25, 0, 59)), 7200);
    ck_assert_int_eq(gw_tz_offset(GW_TZ_PARIS, utc(2026, 10, 25, 1, 0)), 3600);
    /* 2027: 28 March and 31 October */
    ck_assert_int_eq(gw_tz_offset(GW_TZ_PARIS, utc(2027, 3, 28, 1, 0)), 7200);
    ck_assert_int_eq(gw_tz_offset(GW_TZ_PARIS, utc(2027, 3, 27, 12, 0)), 3600);
    ck_assert_int_eq(gw_tz_offset(GW_TZ_PARIS, utc(2027, 10, 31, 0, 59)), 7200);
    ck_assert_int_eq(gw_tz_offset(GW_TZ_UTC, utc(2026, 7, 1, 12, 0)), 0);
}
END_TEST

START_TEST(maintenance_slots)
{
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    gw_stage_lists *c = lists_from(
        /* 3.5 hours on the night of 24 December: only with "force" */
        "{\"maintenance\":{\"timezone\":\"Europe/Paris\",\"force\":true,"
        "\"slots\":[{\"daily\":\"02:00-04:00\"},"
        "{\"from\":\"2026-12-24T23:30\",\"until\":\"2026-12-25T01:00\"}]}}",
        &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.msgs[i]);
    ck_assert_ptr_nonnull(c);
    time_t end = 0;
    /* winter: 01:30 UTC = 02:30 Paris, in the slot until 04:00 Paris = 03:00 UTC */
    ck_assert(gw_maintenance_active(M(c), utc(2026, 1, 15, 1, 30), &end));
    ck_assert_int_eq(end, utc(2026, 1, 15, 3, 0));
    ck_assert(!gw_maintenance_active(M(c), utc(2026, 1, 15, 0, 59), &end));
    ck_assert(gw_maintenance_active(M(c), utc(2026, 1, 15, 1, 0), &end));
    ck_assert(!gw_maintenance_active(M(c), utc(2026, 1, 15, 3, 0), &end));
    /* summer: 02:00-04:00 Paris = 00:00-02:00 UTC */
    ck_assert(gw_maintenance_active(M(c), utc(2026, 7, 1, 0, 0), &end));
    ck_assert_int_eq(end, utc(2026, 7, 1, 2, 0));
    /* the explicit slot, 23:30 Paris on 24 December = 22:30 UTC */
    ck_assert(gw_maintenance_active(M(c), utc(2026, 12, 24, 22, 30), &end));
    ck_assert_int_eq(end, utc(2026, 12, 25, 0, 0));
    ck_assert(!gw_maintenance_active(M(c), utc(2026, 12, 24, 22, 29), &end));

    /* through the pipeline: guarded route 503 + Retry-After, etatSante reports */
    outcome o = run(REQ(DECL, ""), FP_A, "127.0.0.1", GW_ENV_SANDBOX, c, utc(2026, 1, 15, 2, 59));
    ck_assert_int_eq(o.err, GW_ERR_MAINTENANCE);
    ck_assert_str_eq(o.retry_after, "60");
    ck_assert(!o.has_local_body);
    o = run("GET /opale/v1/etatSante HTTP/1.1\r\nHost: x\r\nX-Correlation-ID: " UUID "\r\n\r\n",
            FP_A, "127.0.0.1", GW_ENV_SANDBOX, c, utc(2026, 1, 15, 2, 0));
    ck_assert_int_eq(o.err, GW_ERR_MAINTENANCE);
    ck_assert(o.has_local_body);
    ck_assert_str_eq(o.retry_after, "3600");
    /* outside the slot */
    o = run(REQ(DECL, ""), FP_A, "127.0.0.1", GW_ENV_SANDBOX, c, utc(2026, 1, 15, 12, 0));
    ck_assert_int_eq(o.v, GW_STAGE_NEXT);
    gw_stage_lists_free(c);

    /* crossing midnight */
    c = lists_from("{\"maintenance\":{\"timezone\":\"UTC\",\"slots\":[{\"daily\":\"23:30-01:"
                   "00\"}]}}",
                   &errs);
    ck_assert_ptr_nonnull(c);
    ck_assert(gw_maintenance_active(M(c), utc(2026, 1, 15, 23, 45), &end));
    ck_assert_int_eq(end, utc(2026, 1, 16, 1, 0));
    ck_assert(gw_maintenance_active(M(c), utc(2026, 1, 16, 0, 30), &end));
    ck_assert_int_eq(end, utc(2026, 1, 16, 1, 0));
    ck_assert(!gw_maintenance_active(M(c), utc(2026, 1, 16, 1, 0), &end));
    gw_stage_lists_free(c);
}
END_TEST

static const ccase ccases[] = {
    {"{\"maintenance\":{\"timezone\":\"Europe/Berlin\"}}",
     "gw.json: access.maintenance.timezone: must be \"Europe/Paris\" or \"UTC\""},
    {"{\"maintenance\":{\"slots\":[{\"daily\":\"12:00-14:00\"}]}}",
     "gw.json: access.maintenance.slots[0].daily: must lie within 23:00-06:00 and last at most 2 "
     "hours (CGU), unless maintenance.force is true"},
    {"{\"maintenance\":{\"slots\":[{\"daily\":\"01:00-04:00\"}]}}",
     "gw.json: access.maintenance.slots[0].daily: must lie within 23:00-06:00 and last at most 2 "
     "hours (CGU), unless maintenance.force is true"},
    {"{\"maintenance\":{\"slots\":[{\"daily\":\"2:00-4:00\"}]}}",
     "gw.json: access.maintenance.slots[0].daily: must be \"HH:MM-HH:MM\" with different times"},
    {"{\"maintenance\":{\"slots\":[{\"from\":\"2026-12-24T23:00\"}]}}",
     "gw.json: access.maintenance.slots[0]: missing key \"daily\" or \"from\"+\"until\""},
    {"{\"maintenance\":{\"slots\":[{\"from\":\"2026-02-30T23:00\",\"until\":\"2026-03-01T01:00\"}]}"
     "}",
     "gw.json: access.maintenance.slots[0].from: must be a local date-time \"YYYY-MM-DDTHH:MM\""},
    {"{\"maintenance\":{\"slots\":[{\"from\":\"2026-12-24T23:00\",\"until\":\"2026-12-24T22:00\"}]}"
     "}",
     "gw.json: access.maintenance.slots[0].until: must be after \"from\""},
    {"{\"maintenance\":{\"slots\":[{\"daily\":\"02:00-04:00\",\"from\":\"2026-12-24T23:00\"}]}}",
     "gw.json: access.maintenance.slots[0]: either \"daily\" or \"from\"/\"until\", not both"},
    {"{\"maintenance\":{\"force\":1}}", "gw.json: access.maintenance.force: must be a boolean"},
    /* the budget is per night: three back-to-back daily 2-hour slots */
    {"{\"maintenance\":{\"slots\":[{\"daily\":\"23:00-01:00\"},{\"daily\":\"01:00-03:00\"},"
     "{\"daily\":\"03:00-05:00\"}]}}",
     "gw.json: access.maintenance.slots[1].daily: the daily slots take 360 minutes a night; the "
     "CGU "
     "allow at most 2 hours a night (23:00-06:00), unless maintenance.force is true"},
    {"{\"maintenance\":{\"slots\":[{\"daily\":\"05:00-06:00\"},{\"daily\":\"23:00-00:01\"}]}}",
     "gw.json: access.maintenance.slots[1].daily: the daily slots take 121 minutes a night; the "
     "CGU "
     "allow at most 2 hours a night (23:00-06:00), unless maintenance.force is true"},
    /* a dated slot adds to the daily ones of its night (named by its evening) */
    {"{\"maintenance\":{\"slots\":[{\"daily\":\"02:00-03:30\"},"
     "{\"from\":\"2026-12-24T23:00\",\"until\":\"2026-12-25T00:00\"}]}}",
     "gw.json: access.maintenance.slots[1]: the night of 2026-12-24 has 150 minutes of maintenance "
     "(daily slots included); the CGU allow at most 2 hours a night (23:00-06:00), unless "
     "maintenance.force is true"},
    {"{\"maintenance\":{\"timezone\":\"UTC\",\"slots\":["
     "{\"from\":\"2026-12-25T01:00\",\"until\":\"2026-12-25T02:30\"},"
     "{\"from\":\"2026-12-26T01:00\",\"until\":\"2026-12-26T02:00\"},"
     "{\"from\":\"2026-12-25T04:00\",\"until\":\"2026-12-25T05:00\"}]}}",
     "gw.json: access.maintenance.slots[2]: the night of 2026-12-24 has 150 minutes of maintenance "
     "(daily slots included); the CGU allow at most 2 hours a night (23:00-06:00), unless "
     "maintenance.force is true"},
    /* each slot's own bounds come first: a slot past 06:00 */
    {"{\"maintenance\":{\"slots\":[{\"from\":\"2026-12-25T05:00\",\"until\":\"2026-12-25T06:30\"}]}"
     "}",
     "gw.json: access.maintenance.slots[0]: must lie within 23:00-06:00 and last at most 2 hours "
     "(CGU), unless maintenance.force is true"},
};

/* Within the budget: overlaps count once, nights are apart, and "force"
 * lifts the rule. */
static const char *const good_nights[] = {
    "{\"maintenance\":{\"slots\":[{\"daily\":\"01:00-02:30\"},{\"daily\":\"02:00-03:00\"}]}}",
    "{\"maintenance\":{\"slots\":[{\"daily\":\"23:00-00:00\"},{\"daily\":\"05:00-06:00\"}]}}",
    "{\"maintenance\":{\"slots\":[{\"from\":\"2026-12-24T23:00\",\"until\":\"2026-12-25T01:00\"},"
    "{\"from\":\"2026-12-25T23:00\",\"until\":\"2026-12-26T01:00\"}]}}",
    "{\"maintenance\":{\"slots\":[{\"daily\":\"02:00-03:00\"},"
    "{\"from\":\"2026-12-25T02:30\",\"until\":\"2026-12-25T03:30\"}]}}",
    "{\"maintenance\":{\"force\":true,\"slots\":[{\"daily\":\"23:00-01:00\"},"
    "{\"daily\":\"01:00-03:00\"},{\"daily\":\"03:00-05:00\"}]}}",
};

START_TEST(good_access_nights)
{
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    gw_stage_lists *c = lists_from(good_nights[_i], &errs);
    ck_assert_msg(c != NULL, "%s", errs.n ? errs.msgs[0] : "(none)");
    ck_assert_uint_eq(errs.n, 0);
    gw_stage_lists_free(c);
}
END_TEST

START_TEST(bad_access_config)
{
    expect_access_error(ccases[_i].json, ccases[_i].msg);
}
END_TEST

START_TEST(forced_slot_outside_band)
{
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    gw_stage_lists *c = lists_from(
        "{\"maintenance\":{\"force\":true,\"slots\":[{\"daily\":\"12:00-15:00\"}]}}", &errs);
    ck_assert_ptr_nonnull(c);
    time_t end = 0;
    ck_assert(gw_maintenance_active(M(c), utc(2026, 1, 15, 12, 0), &end)); /* 13:00 Paris */
    ck_assert_int_eq(end, utc(2026, 1, 15, 14, 0));
    gw_stage_lists_free(c);
}
END_TEST

static void add(TCase *tc)
{
    tcase_add_test(tc, maintenance_slots);
    tcase_add_loop_test(tc, bad_access_config, 0, sizeof(ccases) / sizeof(ccases[0]));
    tcase_add_test(tc, forced_slot_outside_band);
    tcase_add_loop_test(tc, good_access_nights, 0,
                        (int)(sizeof(good_nights) / sizeof(good_nights[0])));
    tcase_add_test(tc, paris_offset);
}

int main(void)
{
    return run_suite("maintenance", add);
}
