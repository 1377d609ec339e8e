/* Unit tests for gateway/core/consumers.c: counts by status class and
 * quota outcome per consumer, the bound of the table with "(other)", long
 * identifiers, and counting from several threads at once. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "core/consumers.h"

typedef struct {
    size_t n;
    int saw_other;
    gw_consumer_counts other;
    char ids[16][160];
    gw_consumer_counts c[16];
} seen;

static void collect(void *arg, const char *id, const gw_consumer_counts *c)
{
    seen *s = arg;
    if (strcmp(id, "(other)") == 0) {
        s->saw_other++;
        s->other = *c;
        return;
    }
    if (s->n < 16) {
        snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", id);
        s->c[s->n] = *c;
    }
    s->n++;
}

static const gw_consumer_counts *find(const seen *s, const char *id)
{
    for (size_t i = 0; i < s->n && i < 16; i++)
        if (strcmp(s->ids[i], id) == 0)
            return &s->c[i];
    return NULL;
}

START_TEST(t_counts)
{
    gw_consumer_stats *cs = gw_consumer_stats_new(10);
    gw_consumer_stats_count(cs, "acme", 200, 1);
    gw_consumer_stats_count(cs, "acme", 200, 1);
    gw_consumer_stats_count(cs, "acme", 429, -1);
    gw_consumer_stats_count(cs, "acme", 503, 0);
    gw_consumer_stats_count(cs, "beta", 404, 0);
    gw_consumer_stats_count(cs, "beta", 700, 0); /* no class, still a consumer */
    gw_consumer_stats_count(cs, NULL, 200, 1);   /* not counted */
    gw_consumer_stats_count(NULL, "acme", 200, 1);
    seen s;
    memset(&s, 0, sizeof(s));
    gw_consumer_stats_each(cs, collect, &s);
    ck_assert_uint_eq(s.n, 2);
    ck_assert_int_eq(s.saw_other, 0); /* table not full: no "(other)" */
    const gw_consumer_counts *a = find(&s, "acme"), *b = find(&s, "beta");
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(a->by_class[2], 2);
    ck_assert_uint_eq(a->by_class[4], 1);
    ck_assert_uint_eq(a->by_class[5], 1);
    ck_assert_uint_eq(a->quota_admitted, 2);
    ck_assert_uint_eq(a->quota_refused, 1);
    ck_assert_uint_eq(b->by_class[4], 1);
    unsigned long total = 0;
    for (int i = 0; i < 6; i++)
        total += b->by_class[i];
    ck_assert_uint_eq(total, 1);
    ck_assert_uint_eq(gw_consumer_stats_size(cs), 2);
    gw_consumer_stats_free(cs);
}
END_TEST

/* Past the bound, new consumers share "(other)", which is then listed;
 * consumers already in the table keep their own counts. */
START_TEST(t_bound)
{
    gw_consumer_stats *cs = gw_consumer_stats_new(3);
    char id[32];
    for (int i = 0; i < 10; i++) {
        snprintf(id, sizeof(id), "c%d", i);
        gw_consumer_stats_count(cs, id, 200, 1);
    }
    gw_consumer_stats_count(cs, "c0", 200, 0);
    ck_assert_uint_eq(gw_consumer_stats_size(cs), 3);
    seen s;
    memset(&s, 0, sizeof(s));
    gw_consumer_stats_each(cs, collect, &s);
    ck_assert_uint_eq(s.n, 3);
    ck_assert_int_eq(s.saw_other, 1);
    ck_assert_uint_eq(s.other.by_class[2], 7);
    ck_assert_uint_eq(s.other.quota_admitted, 7);
    ck_assert_ptr_nonnull(find(&s, "c0"));
    ck_assert_uint_eq(find(&s, "c0")->by_class[2], 2);
    ck_assert_ptr_null(find(&s, "c9"));
    gw_consumer_stats_free(cs);
}
END_TEST

/* An identifier of 129 bytes or more never enters the table. */
START_TEST(t_long_id)
{
    gw_consumer_stats *cs = gw_consumer_stats_new(1);
    char id[200];
    memset(id, 'x', 128);
    id[128] = '\0';
    gw_consumer_stats_count(cs, id, 200, 0); /* 128 bytes: fits */
    ck_assert_uint_eq(gw_consumer_stats_size(cs), 1);
    gw_consumer_stats_free(cs);
    cs = gw_consumer_stats_new(1);
    memset(id, 'x', 129);
    id[129] = '\0';
    gw_consumer_stats_count(cs, id, 200, 0);
    ck_assert_uint_eq(gw_consumer_stats_size(cs), 0);
    gw_consumer_stats_free(cs);
}
END_TEST

#define THREADS 4
#define PER_THREAD 20000

static void *hammer(void *arg)
{
    gw_consumer_stats *cs = arg;
    char id[16];
    for (int i = 0; i < PER_THREAD; i++) {
        snprintf(id, sizeof(id), "k%d", i % 50);
        gw_consumer_stats_count(cs, id, 200, 1);
    }
    return NULL;
}

static void sum(void *arg, const char *id, const gw_consumer_counts *c)
{
    unsigned long *t = arg;
    t[0] += c->by_class[2];
    t[1] += c->quota_admitted;
    t[2]++;
}

/* Counting from several threads loses nothing. */
START_TEST(t_threads)
{
    gw_consumer_stats *cs = gw_consumer_stats_new(1000);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, hammer, cs), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    unsigned long t[3] = {0, 0, 0};
    gw_consumer_stats_each(cs, sum, t);
    ck_assert_uint_eq(t[0], THREADS * PER_THREAD);
    ck_assert_uint_eq(t[1], THREADS * PER_THREAD);
    ck_assert_uint_eq(t[2], 50);
    gw_consumer_stats_free(cs);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("consumers");
    TCase *tc = tcase_create("consumers");
    tcase_add_test(tc, t_counts);
    tcase_add_test(tc, t_bound);
    tcase_add_test(tc, t_long_id);
    tcase_add_test(tc, t_threads);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
