/* Unit tests for gateway/policy/index.c: the snapshot's hash index (first
 * holder kept, the holder's number reported, lookups of absent keys, a full
 * table at its promised size, many colliding-prefix keys). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/index.h"

#include "../common.h"

START_TEST(t_put_get)
{
    gw_policy a = {0}, b = {0};
    gw_policy_index t;
    size_t held = 99;
    ck_assert_int_eq(gw_policy_index_init(&t, 2), 0);
    ck_assert_ptr_null(gw_policy_index_get(&t, "k1"));
    ck_assert_ptr_null(gw_policy_index_get(&t, NULL));
    ck_assert_int_eq(gw_policy_index_put(&t, "k1", &a, 3, &held), 0);
    ck_assert_uint_eq(held, 99); /* untouched when the key is new */
    ck_assert_int_eq(gw_policy_index_put(&t, "k2", &b, 4, NULL), 0);
    ck_assert_ptr_eq(gw_policy_index_get(&t, "k1"), &a);
    ck_assert_ptr_eq(gw_policy_index_get(&t, "k2"), &b);
    /* a second holder of "k1": refused, the first one stays and is named */
    ck_assert_int_eq(gw_policy_index_put(&t, "k1", &b, 7, &held), 1);
    ck_assert_uint_eq(held, 3);
    ck_assert_ptr_eq(gw_policy_index_get(&t, "k1"), &a);
    ck_assert_int_eq(gw_policy_index_put(&t, "k1", &b, 7, NULL), 1);
    gw_policy_index_free(&t);
    ck_assert_ptr_null(t.slots);
    gw_policy_index_free(&t); /* twice: harmless */
}
END_TEST

/* 10,000 keys in a table sized for them: every one found, with its own
 * policy, and none that was not put. */
START_TEST(t_many)
{
    enum { N = 10000 };
    static char keys[N][16];
    static gw_policy pols[N];
    gw_policy_index t;
    ck_assert_int_eq(gw_policy_index_init(&t, N), 0);
    ck_assert_uint_ge(t.mask + 1, 2 * N); /* at most half full */
    for (size_t i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "key-%zu", i);
        ck_assert_int_eq(gw_policy_index_put(&t, keys[i], &pols[i], i, NULL), 0);
    }
    for (size_t i = 0; i < N; i++)
        ck_assert_ptr_eq(gw_policy_index_get(&t, keys[i]), &pols[i]);
    ck_assert_ptr_null(gw_policy_index_get(&t, "key-10000"));
    ck_assert_ptr_null(gw_policy_index_get(&t, "key-"));
    gw_policy_index_free(&t);
}
END_TEST

START_TEST(t_empty)
{
    gw_policy_index t;
    ck_assert_int_eq(gw_policy_index_init(&t, 0), 0);
    ck_assert_uint_eq(t.mask + 1, 16);
    ck_assert_ptr_null(gw_policy_index_get(&t, "x"));
    gw_policy_index_free(&t);
    gw_policy_index z = {0}; /* never initialised: lookups find nothing */
    ck_assert_ptr_null(gw_policy_index_get(&z, "x"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("index");
    TCase *tc = tcase_create("index");
    tcase_add_test(tc, t_put_get);
    tcase_add_test(tc, t_many);
    tcase_add_test(tc, t_empty);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
