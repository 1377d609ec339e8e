/* Unit tests for gateway/quota/memlog.c: the exact sliding-window log. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "quota/memlog.h"

START_TEST(exact_window)
{
    gw_memlog *m = gw_memlog_new();
    gw_memlog_result r;
    /* 3 per 1000 ms */
    for (int i = 0; i < 3; i++) {
        gw_memlog_admit(m, "k", 3, 1000, 100 + (uint64_t)i * 100, &r);
        ck_assert(r.admitted);
        ck_assert_uint_eq(r.remaining, 2u - (unsigned)i);
    }
    gw_memlog_admit(m, "k", 3, 1000, 400, &r);
    ck_assert(!r.admitted);
    ck_assert_uint_eq(r.reset_ms, 700); /* the first admission (t=100) leaves at 1100 */
    /* refusals are not recorded: at 1099 still refused, at 1100 one slot frees */
    gw_memlog_admit(m, "k", 3, 1000, 1099, &r);
    ck_assert(!r.admitted);
    ck_assert_uint_eq(r.reset_ms, 1);
    gw_memlog_admit(m, "k", 3, 1000, 1100, &r);
    ck_assert(r.admitted);
    ck_assert_uint_eq(r.remaining, 0);
    gw_memlog_admit(m, "k", 3, 1000, 1101, &r);
    ck_assert(!r.admitted);
    /* another key is independent */
    gw_memlog_admit(m, "other", 3, 1000, 1101, &r);
    ck_assert(r.admitted);
    ck_assert_uint_eq(gw_memlog_count(m, "k", 1000, 1101), 3);
    ck_assert_uint_eq(gw_memlog_count(m, "k", 1000, 5000), 0);
    ck_assert_uint_eq(gw_memlog_count(m, "nobody", 1000, 5000), 0);
    gw_memlog_free(m);
}
END_TEST

/* Never more than N in any window, whatever the arrival pattern. */
START_TEST(never_more_than_n_in_any_window)
{
    gw_memlog *m = gw_memlog_new();
    const unsigned n = 50;
    const uint64_t w = 60000;
    uint64_t *admitted = malloc(sizeof(uint64_t) * 20000);
    size_t na = 0;
    unsigned seed = 7;
    uint64_t t = 0;
    for (int i = 0; i < 20000; i++) {
        seed = seed * 1103515245u + 12345u;
        t += (seed >> 16) % 40; /* bursts and gaps around the window edge */
        gw_memlog_result r;
        gw_memlog_admit(m, "h", n, w, t, &r);
        if (r.admitted)
            admitted[na++] = t;
    }
    ck_assert(na > n);
    for (size_t i = n; i < na; i++)
        ck_assert_msg(admitted[i] - admitted[i - n] >= w, "%u admissions within %llu ms", n + 1,
                      (unsigned long long)(admitted[i] - admitted[i - n]));
    free(admitted);
    gw_memlog_free(m);
}
END_TEST

START_TEST(limit_change_keeps_newest)
{
    gw_memlog *m = gw_memlog_new();
    gw_memlog_result r;
    for (uint64_t i = 0; i < 5; i++)
        gw_memlog_admit(m, "k", 5, 1000, i, &r);
    /* limit lowered to 2: already over, refused */
    gw_memlog_admit(m, "k", 2, 1000, 10, &r);
    ck_assert(!r.admitted);
    /* newest two (t=3,4) kept: a slot frees at 1003 */
    ck_assert_uint_eq(r.reset_ms, 993);
    gw_memlog_admit(m, "k", 2, 1000, 1003, &r);
    ck_assert(r.admitted);
    /* raised to 10 */
    gw_memlog_admit(m, "k", 10, 1000, 1004, &r);
    ck_assert(r.admitted);
    ck_assert_uint_eq(r.remaining, 8); /* t=4 left the window at 1004 */
    gw_memlog_free(m);
}
END_TEST

/* A clock that goes backwards (it should not: the gateway uses a monotonic
 * clock) must neither crash nor admit more than N in the window. */
START_TEST(clock_going_backwards)
{
    gw_memlog *m = gw_memlog_new();
    gw_memlog_result r;
    gw_memlog_admit(m, "k", 2, 1000, 5000, &r);
    ck_assert(r.admitted);
    gw_memlog_admit(m, "k", 2, 1000, 4000, &r); /* 1 s in the past */
    ck_assert(r.admitted);
    gw_memlog_admit(m, "k", 2, 1000, 4500, &r);
    ck_assert(!r.admitted);
    /* entries are kept in arrival order, so the earlier-stamped one leaves
     * with the first: conservative (a later slot), never an extra admission */
    ck_assert_uint_eq(r.reset_ms, 1500);
    /* once the clock passes both entries' windows, admissions resume */
    gw_memlog_admit(m, "k", 2, 1000, 6000, &r);
    ck_assert(r.admitted);
    gw_memlog_free(m);
}
END_TEST

static gw_memlog *shared;
static int admitted_by[4];

static void *hammer(void *arg)
{
    int id = (int)(long)arg;
    for (int i = 0; i < 5000; i++) {
        gw_memlog_result r;
        gw_memlog_admit(shared, "same", 100, 1000000, 1000, &r);
        if (r.admitted)
            admitted_by[id]++;
        char k[32];
        snprintf(k, sizeof(k), "k%d", i % 300);
        gw_memlog_admit(shared, k, 5, 1000000, 1000, &r);
    }
    return NULL;
}

START_TEST(threads_share_one_limit)
{
    shared = gw_memlog_new();
    pthread_t t[4];
    for (long i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hammer, (void *)i);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    ck_assert_int_eq(admitted_by[0] + admitted_by[1] + admitted_by[2] + admitted_by[3], 100);
    for (int i = 0; i < 300; i++) {
        char k[32];
        snprintf(k, sizeof(k), "k%d", i);
        ck_assert_uint_eq(gw_memlog_count(shared, k, 1000000, 1000), 5);
    }
    gw_memlog_free(shared);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("memlog");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, exact_window);
    tcase_add_test(tc, never_more_than_n_in_any_window);
    tcase_add_test(tc, limit_change_keeps_newest);
    tcase_add_test(tc, threads_share_one_limit);
    tcase_add_test(tc, clock_going_backwards);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
