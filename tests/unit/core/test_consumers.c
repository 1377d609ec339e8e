/* Unit tests for gateway/core/consumers.c: counts by status class and
 * quota outcome per consumer, the bound of the table with "(other)", long
 * identifiers, one table per counting thread scraped and merged while they
 * count, and a merge into a full table. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
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

typedef struct {
    gw_consumer_stats *cs;
    int base; /* the thread's first identifier: threads share half of theirs */
} hammer_arg;

static void *hammer(void *arg)
{
    hammer_arg *h = arg;
    char id[16];
    for (int i = 0; i < PER_THREAD; i++) {
        snprintf(id, sizeof(id), "k%d", h->base + i % 50);
        gw_consumer_stats_count(h->cs, id, 200, 1);
    }
    return NULL;
}

static void sum(void *arg, const char *id, const gw_consumer_counts *c)
{
    (void)id;
    unsigned long *t = arg;
    t[0] += c->by_class[2];
    t[1] += c->quota_admitted;
    t[2]++;
}

typedef struct {
    gw_consumer_stats **tabs;
    atomic_int *stop;
    unsigned long scrapes;
} reader_arg;

/* A scrape running while the workers count: merges their tables again and
 * again (TSan checks the publication of entries and counts). */
static void *reader(void *arg)
{
    reader_arg *r = arg;
    for (int n = 0; n < 100000 && !atomic_load(r->stop); n++) {
        gw_consumer_stats *all = gw_consumer_stats_new(1000);
        for (int i = 0; i < THREADS; i++)
            gw_consumer_stats_merge(all, r->tabs[i]);
        unsigned long t[3] = {0, 0, 0};
        gw_consumer_stats_each(all, sum, t);
        ck_assert_uint_le(t[0], THREADS * PER_THREAD);
        ck_assert_uint_le(t[2], 25 * (THREADS + 1));
        gw_consumer_stats_free(all);
        r->scrapes++;
    }
    return NULL;
}

/* One table per thread (each its only writer), scraped while they count,
 * then merged: nothing is lost, a consumer seen by several threads is
 * listed once with the sum. */
START_TEST(t_threads)
{
    gw_consumer_stats *tabs[THREADS];
    hammer_arg ha[THREADS];
    pthread_t th[THREADS], rd;
    atomic_int stop = 0;
    for (int i = 0; i < THREADS; i++) {
        tabs[i] = gw_consumer_stats_new(1000);
        ha[i] = (hammer_arg){tabs[i], 25 * i}; /* k0..k49, k25..k74, ... */
    }
    reader_arg ra = {tabs, &stop, 0};
    ck_assert_int_eq(pthread_create(&rd, NULL, reader, &ra), 0);
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, hammer, &ha[i]), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    atomic_store(&stop, 1);
    pthread_join(rd, NULL);
    gw_consumer_stats *all = gw_consumer_stats_new(1000);
    for (int i = 0; i < THREADS; i++)
        gw_consumer_stats_merge(all, tabs[i]);
    unsigned long t[3] = {0, 0, 0};
    gw_consumer_stats_each(all, sum, t);
    ck_assert_uint_eq(t[0], THREADS * PER_THREAD);
    ck_assert_uint_eq(t[1], THREADS * PER_THREAD);
    ck_assert_uint_eq(t[2], 25 * (THREADS + 1)); /* k0..k99, each once */
    gw_consumer_stats_free(all);
    for (int i = 0; i < THREADS; i++)
        gw_consumer_stats_free(tabs[i]);
}
END_TEST

/* Merging into a table with a smaller bound: the consumers it has no room
 * for, and the sources' "(other)", end in its "(other)". */
START_TEST(t_merge_bound)
{
    gw_consumer_stats *a = gw_consumer_stats_new(2), *b = gw_consumer_stats_new(2);
    gw_consumer_stats_count(a, "x", 200, 1);
    gw_consumer_stats_count(a, "y", 200, 1);
    gw_consumer_stats_count(a, "z", 429, -1); /* a full: a's "(other)" */
    gw_consumer_stats_count(b, "x", 200, 1);
    gw_consumer_stats_count(b, "w", 503, 0);
    gw_consumer_stats *all = gw_consumer_stats_new(2);
    gw_consumer_stats_merge(all, a);
    gw_consumer_stats_merge(all, b);
    seen s;
    memset(&s, 0, sizeof(s));
    gw_consumer_stats_each(all, collect, &s);
    ck_assert_uint_eq(s.n, 2);
    ck_assert_ptr_nonnull(find(&s, "x"));
    ck_assert_uint_eq(find(&s, "x")->by_class[2], 2);
    ck_assert_uint_eq(find(&s, "x")->quota_admitted, 2);
    ck_assert_int_eq(s.saw_other, 1);
    ck_assert_uint_eq(s.other.by_class[4], 1); /* z */
    ck_assert_uint_eq(s.other.by_class[5], 1); /* w */
    ck_assert_uint_eq(s.other.quota_refused, 1);
    gw_consumer_stats_free(all);
    gw_consumer_stats_free(a);
    gw_consumer_stats_free(b);
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
    tcase_add_test(tc, t_merge_bound);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
