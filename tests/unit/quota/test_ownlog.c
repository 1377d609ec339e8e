/* Unit tests for gateway/quota/ownlog.c (the instance's own admissions,
 * written back to Redis) and the deny cache's limit rule (quota.c). */
#include <check.h>
#include <pthread.h>
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

/* Many keys' walks, by key index ("k<i>"): each key passed at most once,
 * with its members in the order given. */
#define MANY 300
#define STEPS 6

typedef struct many {
    char member[MANY][STEPS][GW_OWNLOG_MEMBER];
    uint64_t age[MANY][STEPS];
    size_t n[MANY];
    int calls[MANY];
    int bad; /* a key not of the form k<i>, or too many entries */
} many;

static void collect_many(void *arg, const char *key, const gw_ownlog_entry *e, size_t n)
{
    many *m = arg;
    unsigned i;
    if (sscanf(key, "k%u", &i) != 1 || i >= MANY || n > STEPS) {
        m->bad = 1;
        return;
    }
    m->calls[i]++;
    m->n[i] = n;
    for (size_t j = 0; j < n; j++) {
        memcpy(m->member[i][j], e[j].member, GW_OWNLOG_MEMBER);
        m->age[i][j] = e[j].age_ms;
    }
}

/* Key i's step j: its time, and whether it is decided locally (every
 * fourth key has none). */
static uint64_t step_t(unsigned i, unsigned j)
{
    return 100 + j * 10 + i % 7;
}

static int step_local(unsigned i, unsigned j)
{
    return i % 4 != 0 && (i + j) % 3 == 0;
}

/* Records and local decisions mixed over many keys: the local walk passes
 * exactly the local entries at or after the mark, per key in their order,
 * and no key without one. */
START_TEST(each_local_many_keys_exact)
{
    gw_ownlog *o = gw_ownlog_new(1000);
    gw_memlog_result r;
    char key[16], mem[GW_OWNLOG_MEMBER];
    for (unsigned j = 0; j < STEPS; j++) {
        for (unsigned i = 0; i < MANY; i++) {
            snprintf(key, sizeof(key), "k%u", i);
            snprintf(mem, sizeof(mem), "%c-%u-%u", step_local(i, j) ? 'L' : 'R', i, j);
            if (step_local(i, j)) {
                gw_ownlog_admit(o, key, 10, 10, step_t(i, j), mem, &r);
                ck_assert(r.admitted);
            } else {
                gw_ownlog_record(o, key, 10, step_t(i, j), mem);
            }
        }
    }
    static many m;
    memset(&m, 0, sizeof(m));
    const uint64_t now = 200, since = 125;
    size_t want_total = 0;
    size_t got_total = gw_ownlog_each_local(o, now, since, collect_many, &m);
    ck_assert(!m.bad);
    for (unsigned i = 0; i < MANY; i++) {
        size_t n = 0;
        for (unsigned j = 0; j < STEPS; j++) {
            if (!step_local(i, j) || step_t(i, j) < since)
                continue;
            snprintf(mem, sizeof(mem), "L-%u-%u", i, j);
            ck_assert_msg(n < m.n[i], "key %u: entry %s missing", i, mem);
            ck_assert_str_eq(m.member[i][n], mem);
            ck_assert_uint_eq(m.age[i][n], now - step_t(i, j));
            n++;
        }
        ck_assert_uint_eq(m.n[i], n);
        ck_assert_int_eq(m.calls[i], n > 0 ? 1 : 0);
        want_total += n;
    }
    ck_assert_uint_eq(got_total, want_total);
    ck_assert_uint_gt(want_total, 0);
    /* every key with a local entry was visited, and only those */
    ck_assert_uint_eq(gw_ownlog_local_visits(o), MANY - MANY / 4);
    gw_ownlog_free(o);
}
END_TEST

/* A key leaves the local walk once its local entries left the window, or a
 * full ring pushed them out; a new local decision brings it back. */
START_TEST(each_local_list_pruned)
{
    gw_ownlog *o = gw_ownlog_new(1000);
    gw_memlog_result r;
    seen s = {0};
    gw_ownlog_admit(o, "a", 10, 10, 100, "la", &r);
    gw_ownlog_record(o, "a", 10, 900, "ra"); /* stays in the window longer */
    gw_ownlog_admit(o, "b", 2, 2, 100, "lb", &r);
    gw_ownlog_record(o, "b", 2, 110, "rb1");
    gw_ownlog_record(o, "b", 2, 120, "rb2"); /* pushes lb out of b's ring */
    gw_ownlog_record(o, "c", 10, 100, "rc");
    ck_assert_uint_eq(gw_ownlog_each_local(o, 500, 0, collect, &s), 1);
    ck_assert_str_eq(s.e[0].member, "la");
    ck_assert_uint_eq(gw_ownlog_local_visits(o), 2); /* a and b; b dropped */
    memset(&s, 0, sizeof(s));
    ck_assert_uint_eq(gw_ownlog_each_local(o, 600, 0, collect, &s), 1);
    ck_assert_uint_eq(gw_ownlog_local_visits(o), 3); /* a only */
    /* la leaves the window at 1100 (ra stays): a is visited once more */
    ck_assert_uint_eq(gw_ownlog_each_local(o, 1100, 0, collect, &s), 0);
    ck_assert_uint_eq(gw_ownlog_local_visits(o), 4);
    ck_assert_uint_eq(gw_ownlog_each_local(o, 1200, 0, collect, &s), 0);
    ck_assert_uint_eq(gw_ownlog_local_visits(o), 4); /* none left */
    ck_assert_uint_eq(gw_ownlog_count(o, "a", 1200), 1);
    /* a new local decision: the key is walked again */
    gw_ownlog_admit(o, "c", 10, 10, 1300, "lc", &r);
    memset(&s, 0, sizeof(s));
    ck_assert_uint_eq(gw_ownlog_each_local(o, 1400, 0, collect, &s), 1);
    ck_assert_str_eq(s.key, "c");
    ck_assert_str_eq(s.e[0].member, "lc");
    ck_assert_uint_eq(gw_ownlog_local_visits(o), 5);
    /* the full walk is unchanged: every key in the window */
    ck_assert_uint_eq(gw_ownlog_each(o, 1400, collect, &(seen){0}), 2); /* ra, lc */
    gw_ownlog_free(o);
}
END_TEST

/* The cost follows the keys with local entries: 10,000 keys admitted by
 * Redis and one decided locally, the local walk visits one key. */
START_TEST(each_local_visits_only_local_keys)
{
    gw_ownlog *o = gw_ownlog_new(60000);
    gw_memlog_result r;
    char key[32];
    for (unsigned i = 0; i < 10000; i++) {
        snprintf(key, sizeof(key), "opale:q:{%u}", i);
        gw_ownlog_record(o, key, 100, 1000, "redis");
    }
    gw_ownlog_admit(o, "opale:q:{42}", 100, 100, 1500, "local", &r);
    ck_assert(r.admitted);
    seen s = {0};
    ck_assert_uint_eq(gw_ownlog_each_local(o, 2000, 1200, collect, &s), 1);
    ck_assert_int_eq(s.calls, 1);
    ck_assert_str_eq(s.key, "opale:q:{42}");
    ck_assert_str_eq(s.e[0].member, "local");
    ck_assert_uint_eq(gw_ownlog_local_visits(o), 1);
    ck_assert_uint_eq(gw_ownlog_each(o, 2000, collect, &(seen){0}), 10001);
    gw_ownlog_free(o);
}
END_TEST

/* Workers record and decide locally while another thread walks the local
 * keys (the Redis client's restore()): run under TSan. Thread i, 0 or 1,
 * admits locally on odd keys of its own half, records on the others. */
static gw_ownlog *shared;

static void count_entries(void *arg, const char *key, const gw_ownlog_entry *e, size_t n)
{
    (void)key;
    (void)e;
    *(size_t *)arg += n;
}

static void *writer(void *arg)
{
    long id = (long)arg;
    gw_memlog_result r;
    char key[16], mem[16];
    for (unsigned n = 0; n < 2000; n++) {
        unsigned k = (unsigned)id * 100 + n % 100;
        snprintf(key, sizeof(key), "k%u", k);
        snprintf(mem, sizeof(mem), "%ld-%u", id, n);
        if (k % 2)
            gw_ownlog_admit(shared, key, 100, 100, 1000 + n, mem, &r);
        else
            gw_ownlog_record(shared, key, 100, 1000 + n, mem);
    }
    return NULL;
}

static void *walker(void *arg)
{
    size_t *got = arg;
    for (unsigned n = 0; n < 200; n++)
        gw_ownlog_each_local(shared, 3000, 0, count_entries, got);
    return NULL;
}

START_TEST(each_local_while_writing)
{
    shared = gw_ownlog_new(60000);
    size_t during = 0;
    pthread_t t[3];
    pthread_create(&t[0], NULL, writer, (void *)0L);
    pthread_create(&t[1], NULL, writer, (void *)1L);
    pthread_create(&t[2], NULL, walker, &during);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    /* 2 threads x 50 odd keys x 20 local decisions each */
    size_t after = 0;
    ck_assert_uint_eq(gw_ownlog_each_local(shared, 3000, 0, count_entries, &after), 2000);
    ck_assert_uint_eq(after, 2000);
    ck_assert_uint_le(during, 200 * 2000);
    ck_assert_uint_eq(gw_ownlog_each(shared, 3000, count_entries, &(size_t){0}), 4000);
    gw_ownlog_free(shared);
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
    tcase_add_test(t, each_local_many_keys_exact);
    tcase_add_test(t, each_local_list_pruned);
    tcase_add_test(t, each_local_visits_only_local_keys);
    tcase_add_test(t, each_local_while_writing);
    tcase_add_test(t, resize_keeps_newest_and_truncates);
    tcase_add_test(t, deny_cache_limit_raised);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
