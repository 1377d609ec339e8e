/* Unit tests for gateway/journal/subjects.c: the detectors' subject tables.
 * Counting is exact over the window, distinct counts distinct ids and
 * forgets old ones, the least recently seen subject is evicted first, the
 * per-stripe caps hold, and the same key always finds the same subject. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal/subjects.h"

#include "../common.h"

/* One occurrence of <key> at <now> in the counting table <t>. */
static uint32_t hit(gw_subjects *t, const char *key, uint64_t now)
{
    gw_subject_stripe *s;
    gw_subject *e = gw_subjects_lock(t, key, &s);
    ck_assert_ptr_nonnull(e);
    uint32_t n = gw_subjects_count(t, s, e, now);
    gw_subjects_unlock(s);
    return n;
}

static uint32_t seen(gw_subjects *t, const char *key, uint64_t id, uint64_t now)
{
    gw_subject_stripe *s;
    gw_subject *e = gw_subjects_lock(t, key, &s);
    ck_assert_ptr_nonnull(e);
    uint32_t n = gw_subjects_distinct(t, s, e, id, now);
    gw_subjects_unlock(s);
    return n;
}

START_TEST(t_count_window)
{
    gw_subjects t;
    ck_assert_int_eq(gw_subjects_init(&t, GW_SUBJECTS_COUNT, 3, 1000, 100, 1000), 0);
    ck_assert_uint_eq(hit(&t, "ip:a", 0), 1);
    ck_assert_uint_eq(hit(&t, "ip:a", 400), 2);
    ck_assert_uint_eq(hit(&t, "ip:b", 500), 1); /* another subject */
    ck_assert_uint_eq(hit(&t, "ip:a", 999), 3);
    /* at 1000 the first one is a full window old: gone */
    ck_assert_uint_eq(hit(&t, "ip:a", 1000), 3);
    /* never more than the ring */
    ck_assert_uint_eq(hit(&t, "ip:a", 1001), 3);
    /* long after: only the new one counts */
    ck_assert_uint_eq(hit(&t, "ip:a", 10000), 1);
    ck_assert_uint_eq(atomic_load(&t.tracked), 2);
    gw_subjects_destroy(&t);
}
END_TEST

START_TEST(t_distinct)
{
    gw_subjects t;
    ck_assert_int_eq(gw_subjects_init(&t, GW_SUBJECTS_DISTINCT, 3, 1000, 100, 1000), 0);
    ck_assert_uint_eq(seen(&t, "c", 11, 0), 1);
    ck_assert_uint_eq(seen(&t, "c", 11, 10), 1); /* same id again */
    ck_assert_uint_eq(seen(&t, "c", 22, 20), 2);
    ck_assert_uint_eq(seen(&t, "c", 33, 30), 3);
    ck_assert_uint_eq(seen(&t, "c", 44, 40), 3); /* at most the ring */
    /* after the window only the newest id counts */
    ck_assert_uint_eq(seen(&t, "c", 55, 1035), 2); /* 44 (40) and 55 */
    ck_assert_uint_eq(seen(&t, "c", 66, 5000), 1);
    gw_subjects_destroy(&t);
}
END_TEST

/* One subject per stripe at most: a new subject evicts the least recently
 * seen one of its stripe, and it is counted. */
START_TEST(t_evict_lru)
{
    gw_subjects t;
    char key[32];
    ck_assert_int_eq(gw_subjects_init(&t, GW_SUBJECTS_ONCE, 0, 0, 1, 1), 0);
    ck_assert_uint_eq(t.max_ents, 1);
    for (int i = 0; i < 200; i++) {
        gw_subject_stripe *s;
        snprintf(key, sizeof(key), "k%d", i);
        gw_subject *e = gw_subjects_lock(&t, key, &s);
        ck_assert_ptr_nonnull(e);
        ck_assert_str_eq(e->key, key);
        e->next_ok = (uint64_t)i + 1;
        gw_subjects_unlock(s);
    }
    ck_assert_uint_le(atomic_load(&t.tracked), GW_SUBJECTS_STRIPES);
    ck_assert_uint_eq(atomic_load(&t.tracked) + atomic_load(&t.evicted), 200);
    for (int i = 0; i < GW_SUBJECTS_STRIPES; i++)
        ck_assert_uint_le(t.s[i].nents, 1);
    gw_subjects_destroy(&t);
}
END_TEST

/* With room for two subjects a stripe, touching the older one keeps it:
 * the other goes when a third comes. Keys are found through the public
 * lookup only, so the test picks three keys of one stripe. */
START_TEST(t_touch_keeps)
{
    gw_subjects t;
    ck_assert_int_eq(gw_subjects_init(&t, GW_SUBJECTS_ONCE, 0, 0, 2 * GW_SUBJECTS_STRIPES, 1000),
                     0);
    ck_assert_uint_eq(t.max_ents, 2);
    char keys[3][32];
    gw_subject_stripe *first = NULL;
    int found = 0;
    for (int i = 0; found < 3 && i < 100000; i++) {
        gw_subject_stripe *s;
        char k[32];
        snprintf(k, sizeof(k), "probe%d", i);
        gw_subject *e = gw_subjects_lock(&t, k, &s);
        ck_assert_ptr_nonnull(e);
        gw_subjects_unlock(s);
        if (first == NULL)
            first = s;
        if (s == first)
            snprintf(keys[found++], sizeof(keys[0]), "%s", k);
    }
    ck_assert_int_eq(found, 3);
    gw_subjects_destroy(&t);
    ck_assert_int_eq(gw_subjects_init(&t, GW_SUBJECTS_ONCE, 0, 0, 2 * GW_SUBJECTS_STRIPES, 1000),
                     0);
    gw_subject_stripe *s;
    gw_subject *a = gw_subjects_lock(&t, keys[0], &s);
    a->next_ok = 111;
    gw_subjects_unlock(s);
    gw_subject *b = gw_subjects_lock(&t, keys[1], &s);
    b->next_ok = 222;
    gw_subjects_unlock(s);
    a = gw_subjects_lock(&t, keys[0], &s); /* a is now the newest */
    ck_assert_uint_eq(a->next_ok, 111);
    gw_subjects_unlock(s);
    gw_subject *c = gw_subjects_lock(&t, keys[2], &s); /* evicts b */
    ck_assert_uint_eq(c->next_ok, 0);
    gw_subjects_unlock(s);
    ck_assert_uint_eq(atomic_load(&t.evicted), 1);
    a = gw_subjects_lock(&t, keys[0], &s);
    ck_assert_uint_eq(a->next_ok, 111); /* kept, with its state */
    gw_subjects_unlock(s);
    b = gw_subjects_lock(&t, keys[1], &s);
    ck_assert_uint_eq(b->next_ok, 0); /* a new subject */
    gw_subjects_unlock(s);
    gw_subjects_destroy(&t);
}
END_TEST

/* The remembered times are capped too: subjects whose rings fill evict the
 * least recently seen ones, so the stripe's slots stay within the cap. */
START_TEST(t_slot_cap)
{
    gw_subjects t;
    char key[32];
    ck_assert_int_eq(
        gw_subjects_init(&t, GW_SUBJECTS_COUNT, 8, 100000, 100000, 8 * GW_SUBJECTS_STRIPES), 0);
    ck_assert_uint_eq(t.max_slots, 8);
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof(key), "s%d", i % 50);
        hit(&t, key, (uint64_t)i);
        for (int k = 0; k < GW_SUBJECTS_STRIPES; k++)
            ck_assert_uint_le(t.s[k].nslots, t.max_slots);
    }
    ck_assert_uint_gt(atomic_load(&t.evicted), 0);
    gw_subjects_destroy(&t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("subjects");
    TCase *tc = tcase_create("subjects");
    tcase_add_test(tc, t_count_window);
    tcase_add_test(tc, t_distinct);
    tcase_add_test(tc, t_evict_lru);
    tcase_add_test(tc, t_touch_keeps);
    tcase_add_test(tc, t_slot_cap);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
