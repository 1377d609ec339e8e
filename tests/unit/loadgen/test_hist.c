/* Unit tests for bench/loadgen/hist.c, opale-loadgen's latency histogram:
 * exact buckets below 2*H_SUB, contiguous buckets with a relative width
 * under 1/128 above, percentiles (nearest rank, capped by the exact min and
 * max), mean and population standard deviation, merge, and the clamp at
 * H_VMAX. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

static struct hist *hist_new(void)
{
    struct hist *h = calloc(1, sizeof(*h));

    ck_assert_ptr_nonnull(h);
    return h;
}

START_TEST(empty)
{
    struct hist *h = hist_new();

    ck_assert_uint_eq(lg_h_pct(h, 50), 0);
    ck_assert_uint_eq(lg_h_pct(h, 100), 0);
    ck_assert_double_eq(lg_h_mean(h), 0.0);
    ck_assert_double_eq(lg_h_stdev(h), 0.0);
    free(h);
}
END_TEST

/* 1..100 are all exact: percentile p is the ceil(p)-th value. */
START_TEST(exact_small_values)
{
    struct hist *h = hist_new();

    for (uint64_t v = 100; v >= 1; v--) /* order does not matter */
        lg_h_add(h, v);
    ck_assert_uint_eq(h->n, 100);
    ck_assert_uint_eq(h->min, 1);
    ck_assert_uint_eq(h->max, 100);
    ck_assert_uint_eq(lg_h_pct(h, 0), 1);
    ck_assert_uint_eq(lg_h_pct(h, 1), 1);
    ck_assert_uint_eq(lg_h_pct(h, 50), 50);
    ck_assert_uint_eq(lg_h_pct(h, 50.5), 51);
    ck_assert_uint_eq(lg_h_pct(h, 90), 90);
    ck_assert_uint_eq(lg_h_pct(h, 99), 99);
    ck_assert_uint_eq(lg_h_pct(h, 99.99), 100);
    ck_assert_uint_eq(lg_h_pct(h, 100), 100);
    ck_assert_double_eq_tol(lg_h_mean(h), 50.5, 1e-9);
    free(h);
}
END_TEST

/* Every bucket follows the previous one, and above 2*H_SUB its width is at
 * most 1/128 of its lower bound. */
START_TEST(buckets_contiguous_and_narrow)
{
    for (unsigned i = 0; i + 1 < H_NB; i++) {
        uint64_t lo = lg_h_lower(i), hi = lg_h_upper(i);
        ck_assert_uint_le(lo, hi);
        ck_assert_uint_eq(lg_h_lower(i + 1), hi + 1);
        if (i >= 2 * H_SUB)
            ck_assert_msg((double)(hi - lo + 1) / (double)lo <= 1.0 / 128, "bucket %u [%llu, %llu]",
                          i, (unsigned long long)lo, (unsigned long long)hi);
        else
            ck_assert_uint_eq(lo, hi);
    }
    ck_assert_uint_eq(lg_h_upper(H_NB - 1), H_VMAX);
}
END_TEST

/* A large value lands in a bucket whose upper bound is within 1/128 above
 * it; the percentile never exceeds the exact max nor goes below the min. */
START_TEST(large_values_bounded_error)
{
    struct hist *h = hist_new();
    uint64_t vals[] = {1000, 12345, 1000003, 987654321};

    for (size_t k = 0; k < sizeof(vals) / sizeof(vals[0]); k++) {
        memset(h, 0, sizeof(*h));
        lg_h_add(h, vals[k]);
        lg_h_add(h, vals[k] * 2);
        uint64_t p = lg_h_pct(h, 50); /* the bucket of vals[k] */
        ck_assert_uint_ge(p, vals[k]);
        ck_assert_uint_le(p, vals[k] + vals[k] / 128);
        ck_assert_uint_eq(lg_h_pct(h, 100), vals[k] * 2);
        ck_assert_uint_eq(lg_h_pct(h, 99.9), vals[k] * 2); /* capped by the exact max */
    }
    memset(h, 0, sizeof(*h));
    lg_h_add(h, 1000003);
    ck_assert_uint_eq(lg_h_pct(h, 50), 1000003); /* one value: min = max */
    free(h);
}
END_TEST

START_TEST(mean_and_stdev)
{
    struct hist *h = hist_new();
    uint64_t vals[] = {2, 4, 4, 4, 5, 5, 7, 9};

    for (size_t k = 0; k < sizeof(vals) / sizeof(vals[0]); k++)
        lg_h_add(h, vals[k]);
    ck_assert_double_eq_tol(lg_h_mean(h), 5.0, 1e-9);
    ck_assert_double_eq_tol(lg_h_stdev(h), 2.0, 1e-9); /* population */
    free(h);
}
END_TEST

/* Merging two histograms gives the one that saw every value. */
START_TEST(merge_equals_union)
{
    struct hist *a = hist_new(), *b = hist_new(), *all = hist_new(), *none = hist_new();

    for (uint64_t v = 1; v < 200000; v = v * 3 + 1) {
        lg_h_add(v % 2 ? a : b, v);
        lg_h_add(all, v);
    }
    lg_h_merge(a, b);
    lg_h_merge(a, none); /* an empty one changes nothing */
    ck_assert_uint_eq(a->n, all->n);
    ck_assert_uint_eq(a->min, all->min);
    ck_assert_uint_eq(a->max, all->max);
    ck_assert_int_eq(memcmp(a->b, all->b, sizeof(a->b)), 0);
    ck_assert_double_eq_tol(lg_h_mean(a), lg_h_mean(all), 1e-6);
    lg_h_merge(none, all); /* into an empty one: min taken over */
    ck_assert_uint_eq(none->min, all->min);
    free(a);
    free(b);
    free(all);
    free(none);
}
END_TEST

START_TEST(clamped_at_vmax)
{
    struct hist *h = hist_new();

    lg_h_add(h, UINT64_MAX);
    ck_assert_uint_eq(h->max, H_VMAX);
    ck_assert_uint_eq(lg_h_pct(h, 50), H_VMAX);
    ck_assert_uint_eq(h->b[H_NB - 1], 1);
    free(h);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("loadgen_hist");
    TCase *tc = tcase_create("hist");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, empty);
    tcase_add_test(tc, exact_small_values);
    tcase_add_test(tc, buckets_contiguous_and_narrow);
    tcase_add_test(tc, large_values_bounded_error);
    tcase_add_test(tc, mean_and_stdev);
    tcase_add_test(tc, merge_equals_union);
    tcase_add_test(tc, clamped_at_vmax);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
