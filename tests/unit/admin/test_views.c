/* Unit tests for gateway/admin/views.c: the operator's name in a
 * suspension's author, a partner's journal records with their chain check
 * (an intact chain, a modified record, a file read from its middle), and
 * the maintenance calendar (dated and daily slots, current and next). */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "admin/views.h"
#include "journal/verify.h"

START_TEST(t_by_operator)
{
    char op[64];
    gw_view_by_operator("lea.read (admin API from 127.0.0.1)", op, sizeof(op));
    ck_assert_str_eq(op, "lea.read");
    gw_view_by_operator("admin (admin API from ::1)", op, sizeof(op));
    ck_assert_str_eq(op, "admin");
    gw_view_by_operator("admin API from 127.0.0.1", op, sizeof(op));
    ck_assert_str_eq(op, "admin API from 127.0.0.1");
    gw_view_by_operator("datapass revoke H42", op, sizeof(op));
    ck_assert_str_eq(op, "datapass revoke H42");
}
END_TEST

START_TEST(t_time)
{
    json_t *t = gw_view_time(1764662400);
    ck_assert_str_eq(json_string_value(t), "2025-12-02T08:00:00Z");
    json_decref(t);
    ck_assert(json_is_null(gw_view_time(0)));
}
END_TEST

/* One chained record line for <consumer> after <prev>, its hash in <hash>. */
static void chained(FILE *f, uint64_t seq, const char *consumer, char prev[65], int tamper)
{
    char canon[512], hash[65];
    int n = snprintf(canon, sizeof(canon),
                     "{\"ts\":\"2026-12-02T08:00:00Z\",\"consumer\":\"%s\",\"method\":\"GET\","
                     "\"seq\":%llu,\"prev\":\"%s\"",
                     consumer, (unsigned long long)seq, prev);
    gw_journal_sha256_hex(canon, (size_t)n, hash);
    if (tamper)
        memcpy(strstr(canon, "GET"), "PUT", 3);
    fprintf(f, "%s,\"hash\":\"%s\"}\n", canon, hash);
    memcpy(prev, hash, 65);
}

START_TEST(t_records)
{
    char dir[PATH_MAX], path[PATH_MAX + 32];
    gw_test_mkdtemp(dir, "views");
    snprintf(path, sizeof(path), "%s/access.jsonl", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    char prev[65] = GW_JOURNAL_GENESIS;
    for (uint64_t i = 1; i <= 10; i++)
        chained(f, i, i % 2 ? "c1" : "c2", prev, i == 5);
    fputs("{\"consumer\":\"c1\",\"partial", f); /* a line still being written */
    fclose(f);
    json_t *r = gw_view_records(path, "c1", 50);
    ck_assert_uint_eq(json_array_size(r), 5);
    for (size_t i = 0; i < 5; i++) {
        json_t *rec = json_array_get(r, i);
        ck_assert_int_eq(json_integer_value(json_object_get(rec, "seq")), (json_int_t)(2 * i + 1));
        ck_assert_str_eq(json_string_value(json_object_get(rec, "consumer")), "c1");
        /* record 5 was modified after it was hashed */
        ck_assert_int_eq(json_is_true(json_object_get(rec, "verified")), i != 2);
    }
    json_decref(r);
    /* the last <max> only, oldest first */
    r = gw_view_records(path, "c2", 2);
    ck_assert_uint_eq(json_array_size(r), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(r, 0), "seq")), 8);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(r, 1), "seq")), 10);
    json_decref(r);
    /* a consumer whose name is a prefix of another's is not mixed up */
    r = gw_view_records(path, "c", 50);
    ck_assert_uint_eq(json_array_size(r), 0);
    json_decref(r);
    r = gw_view_records("/nonexistent/access.jsonl", "c1", 50);
    ck_assert_uint_eq(json_array_size(r), 0);
    json_decref(r);
    gw_test_rmtree(dir);
}
END_TEST

static const char *str(json_t *slot, const char *k)
{
    return json_string_value(json_object_get(slot, k));
}

START_TEST(t_maintenance)
{
    /* now: 2025-12-02T08:00:00Z; a dated slot from 10:00 to 11:00 the same
     * day and a daily one 23:30-00:30, in UTC */
    const int64_t now = 1764662400;
    gw_maint_slot slots[2];
    memset(slots, 0, sizeof(slots));
    slots[0].from = (time_t)(now + 2 * 3600);
    slots[0].until = (time_t)(now + 3 * 3600);
    slots[1].daily = 1;
    slots[1].start_min = 23 * 60 + 30;
    slots[1].end_min = 30;
    gw_maint_conf m = {.tz = GW_TZ_UTC, .force = 1, .slots = slots, .nslots = 2};
    json_t *j = gw_view_maintenance(&m, now);
    ck_assert_str_eq(str(j, "timezone"), "UTC");
    ck_assert(json_is_null(json_object_get(j, "current")));
    json_t *next = json_object_get(j, "next");
    ck_assert_str_eq(str(next, "start"), "2025-12-02T10:00:00Z");
    ck_assert_str_eq(str(next, "end"), "2025-12-02T11:00:00Z");
    json_t *s = json_object_get(j, "slots");
    /* the dated one, then a daily one each night of the two weeks */
    ck_assert_uint_ge(json_array_size(s), 15);
    ck_assert_str_eq(str(json_array_get(s, 1), "start"), "2025-12-02T23:30:00Z");
    ck_assert_str_eq(str(json_array_get(s, 1), "end"), "2025-12-03T00:30:00Z");
    json_decref(j);
    /* during the dated slot: it is current, its start the real one */
    j = gw_view_maintenance(&m, now + 2 * 3600 + 600);
    ck_assert_str_eq(str(json_object_get(j, "current"), "start"), "2025-12-02T10:00:00Z");
    ck_assert_str_eq(str(json_object_get(j, "next"), "start"), "2025-12-02T23:30:00Z");
    json_decref(j);
    /* no calendar */
    j = gw_view_maintenance(NULL, now);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "slots")), 0);
    ck_assert(json_is_null(json_object_get(j, "next")));
    json_decref(j);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("admin_views");
    TCase *tc = tcase_create("views");
    tcase_add_test(tc, t_by_operator);
    tcase_add_test(tc, t_time);
    tcase_add_test(tc, t_records);
    tcase_add_test(tc, t_maintenance);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
