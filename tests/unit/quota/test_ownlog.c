/* Unit tests for gateway/quota/ownlog.c (the instance's own admissions,
 * written back to Redis) and the deny cache's limit rule (quota.c). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quota/ownlog.h"
#include "quota/quota.h"

typedef struct seen {
    char key[64];
    gw_ownlog_entry e[64];
    size_t n;
    int calls;
} seen;

static void collect(void *arg, const char *key, const gw_ownlog_entry *e, size_t n)
{
    seen *s = arg;
    snprintf(s->key, sizeof(s->key), "%s", key);
    s->n = n < 64 ? n : 64;
    memcpy(s->e, e, sizeof(*e) * s->n);
    s->calls++;
}

/* Recorded (Redis) and local admissions share one log; the local decision
 * counts both against the share. */
START_TEST(share_counts_redis_admissions)
{
    gw_ownlog *o = gw_ownlog_new(1000);
    gw_memlog_result r;
    gw_ownlog_record(o, "k", 10, 100, "r1");
    gw_ownlog_record(o, "k", 10, 110, "r2");
    /* share 3: one local admission left */
    gw_ownlog_admit(o, "k", 10, 3, 120, "l1", &r);
    ck_assert(r.admitted);
    ck_assert_uint_eq(r.remaining, 0);
    ck_assert_uint_eq(r.reset_ms, 980); /* r1 leaves at 1100 */
    gw_ownlog_admit(o, "k", 10, 3, 130, "l2", &r);
    ck_assert(!r.admitted);
    ck_assert_uint_eq(r.reset_ms, 970);
    ck_assert_uint_eq(gw_ownlog_count(o, "k", 130), 3);
    /* r1 leaves at exactly 1100 */
    gw_ownlog_admit(o, "k", 10, 3, 1099, "l3", &r);
    ck_assert(!r.admitted);
    gw_ownlog_admit(o, "k", 10, 3, 1100, "l4", &r);
    ck_assert(r.admitted);
    ck_assert_uint_eq(gw_ownlog_count(o, "other", 1100), 0);
    gw_ownlog_free(o);
}
END_TEST

/* What is written back: the entries still in the window, oldest first,
 * with their ages; never more than the limit per key. */
START_TEST(each_gives_ages_and_is_bounded)
{
    gw_ownlog *o = gw_ownlog_new(1000);
    for (unsigned i = 0; i < 8; i++) {
        char m[16];
        snprintf(m, sizeof(m), "m%u", i);
        gw_ownlog_record(o, "opale:q:{H}", 5, 100 + i * 10, m); /* ring of 5 */
    }
    seen s = {0};
    ck_assert_uint_eq(gw_ownlog_each(o, 500, collect, &s), 5);
    ck_assert_int_eq(s.calls, 1);
    ck_assert_str_eq(s.key, "opale:q:{H}");
    ck_assert_uint_eq(s.n, 5);
    for (unsigned i = 0; i < 5; i++) {
        char m[16];
        snprintf(m, sizeof(m), "m%u", i + 3); /* the newest five */
        ck_assert_str_eq(s.e[i].member, m);
        ck_assert_uint_eq(s.e[i].age_ms, 500 - (100 + (i + 3) * 10));
    }
    /* m3 (t=130) leaves at 1130: four left at 1130 */
    memset(&s, 0, sizeof(s));
    ck_assert_uint_eq(gw_ownlog_each(o, 1130, collect, &s), 4);
    ck_assert_str_eq(s.e[0].member, "m4");
    ck_assert_uint_eq(s.e[0].age_ms, 990);
    /* an entry recorded after the caller read its clock: age 0, not huge */
    gw_ownlog_record(o, "opale:q:{H}", 5, 1200, "late");
    memset(&s, 0, sizeof(s));
    gw_ownlog_each(o, 1150, collect, &s);
    ck_assert_str_eq(s.e[s.n - 1].member, "late");
    ck_assert_uint_eq(s.e[s.n - 1].age_ms, 0);
    /* all gone a window later: nothing to write back */
    memset(&s, 0, sizeof(s));
    ck_assert_uint_eq(gw_ownlog_each(o, 5000, collect, &s), 0);
    ck_assert_int_eq(s.calls, 0);
    gw_ownlog_free(o);
}
END_TEST

/* The partial write-back: only the local decisions (gw_ownlog_admit), and
 * only those at or after the mark; a key with none is not passed at all. */
START_TEST(each_local_gives_local_decisions_since)
{
    gw_ownlog *o = gw_ownlog_new(1000);
    gw_memlog_result r;
    gw_ownlog_record(o, "opale:q:{A}", 10, 100, "redis1");
    gw_ownlog_admit(o, "opale:q:{A}", 10, 10, 110, "local1", &r);
    ck_assert(r.admitted);
    gw_ownlog_record(o, "opale:q:{A}", 10, 120, "redis2");
    gw_ownlog_admit(o, "opale:q:{A}", 10, 10, 130, "local2", &r);
    ck_assert(r.admitted);
    gw_ownlog_record(o, "opale:q:{B}", 10, 140, "redis3"); /* no local decision */
    seen s = {0};
    ck_assert_uint_eq(gw_ownlog_each_local(o, 200, 0, collect, &s), 2);
    ck_assert_int_eq(s.calls, 1);
    ck_assert_str_eq(s.key, "opale:q:{A}");
    ck_assert_str_eq(s.e[0].member, "local1");
    ck_assert_uint_eq(s.e[0].age_ms, 90);
    ck_assert_str_eq(s.e[1].member, "local2");
    /* the mark is inclusive: an entry of the mark's own ms is sent again */
    memset(&s, 0, sizeof(s));
    ck_assert_uint_eq(gw_ownlog_each_local(o, 200, 130, collect, &s), 1);
    ck_assert_str_eq(s.e[0].member, "local2");
    memset(&s, 0, sizeof(s));
    ck_assert_uint_eq(gw_ownlog_each_local(o, 200, 131, collect, &s), 0);
    ck_assert_int_eq(s.calls, 0);
    /* the full walk still gives all five */
    ck_assert_uint_eq(gw_ownlog_each(o, 200, collect, &(seen){0}), 5);
    /* a local entry out of the window is not sent */
    memset(&s, 0, sizeof(s));
    ck_assert_uint_eq(gw_ownlog_each_local(o, 1115, 0, collect, &s), 1);
    ck_assert_str_eq(s.e[0].member, "local2");
    gw_ownlog_free(o);
}
END_TEST

/* A limit lowered by a reload keeps the newest entries that fit; a long
 * member is truncated, never overflows. */
START_TEST(resize_keeps_newest_and_truncates)
{
    gw_ownlog *o = gw_ownlog_new(1000);
    gw_ownlog_record(o, "k", 4, 10, "a");
    gw_ownlog_record(o, "k", 4, 20, "b");
    gw_ownlog_record(o, "k", 4, 30, "c");
    gw_ownlog_record(o, "k", 2, 40, "0123456789012345678901234567890123456789-long");
    seen s = {0};
    ck_assert_uint_eq(gw_ownlog_each(o, 50, collect, &s), 2);
    ck_assert_str_eq(s.e[0].member, "c");
    ck_assert_uint_eq(strlen(s.e[1].member), GW_OWNLOG_MEMBER - 1);
    gw_memlog_result r;
    gw_ownlog_admit(o, "k", 2, 5, 60, "x", &r); /* share capped to the limit */
    ck_assert(!r.admitted);
    gw_ownlog_admit(o, "k", 2, 0, 60, "x", &r);
    ck_assert(!r.admitted);
    ck_assert_uint_eq(gw_ownlog_window(o), 1000);
    gw_ownlog_free(o);
}
END_TEST

/* The deny cache answers only requests whose limit is not above the one
 * refused: a limit raised by a reload goes to the store at once. */
START_TEST(deny_cache_limit_raised)
{
    gw_deny_cache *d = gw_deny_cache_new(16);
    uint64_t until = 0;
    gw_deny_cache_put(d, "opale:q:{H}", 5, 2000);
    ck_assert(gw_deny_cache_get(d, "opale:q:{H}", 5, 1000, &until));
    ck_assert_uint_eq(until, 2000);
    ck_assert(gw_deny_cache_get(d, "opale:q:{H}", 3, 1000, &until));  /* lowered: still refused */
    ck_assert(!gw_deny_cache_get(d, "opale:q:{H}", 6, 1000, &until)); /* raised */
    ck_assert(!gw_deny_cache_get(d, "opale:q:{H}", 5, 2000, &until)); /* expired */
    ck_assert(!gw_deny_cache_get(d, "opale:q:{other}", 5, 1000, &until));
    gw_deny_cache_free(d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ownlog");
    TCase *t = tcase_create("core");
    tcase_add_test(t, share_counts_redis_admissions);
    tcase_add_test(t, each_gives_ages_and_is_bounded);
    tcase_add_test(t, each_local_gives_local_decisions_since);
    tcase_add_test(t, resize_keeps_newest_and_truncates);
    tcase_add_test(t, deny_cache_limit_raised);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
