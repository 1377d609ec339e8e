/* Unit tests for gateway/admin/series.c: the 10-second series of outcomes
 * (90 steps, boundaries, gaps), the answers by status, the upstream
 * percentiles, and the per-consumer usage (quota window, error rate, last
 * call). Time is given, never read. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "admin/series.h"

#define T0 1764662400 /* 2025-12-02T08:00:00Z, on a boundary */

static const unsigned bounds[GW_SERIES_BUCKETS - 1] = {5,   10,   25,   50,   100,  250,
                                                       500, 1000, 2500, 5000, 10000};

static json_t *point(json_t *series, size_t i)
{
    return json_array_get(json_object_get(series, "points"), i);
}

static json_int_t out(json_t *p, const char *k)
{
    return json_integer_value(json_object_get(json_object_get(p, "outcomes"), k));
}

START_TEST(t_outcome_classes)
{
    ck_assert_int_eq(gw_series_outcome(GW_OK), 0);
    ck_assert_int_eq(gw_series_outcome(GW_ERR_TOKEN_MISSING), 1);
    ck_assert_int_eq(gw_series_outcome(GW_ERR_THROTTLED), 2);
    ck_assert_int_eq(gw_series_outcome(GW_ERR_QUOTA_UNAVAILABLE), 2);
    ck_assert_int_eq(gw_series_outcome(GW_ERR_UPSTREAM_DOWN), 3);
    ck_assert_int_eq(gw_series_outcome(GW_ERR_CLIENT_CLOSED), 3);
}
END_TEST

START_TEST(t_steps)
{
    gw_series *g = calloc(1, sizeof(*g));
    gw_series_sample s;
    memset(&s, 0, sizeof(s));
    s.t = T0;
    gw_series_offer(g, &s);
    /* 10 s later: 7 requests, 2 refused by the bearer stage, 1 by the quota,
     * 1 upstream failure */
    s.t = T0 + 10;
    s.requests = 7;
    s.denials[GW_ERR_TOKEN_MISSING] = 2;
    s.denials[GW_ERR_THROTTLED] = 1;
    s.denials[GW_ERR_UPSTREAM_DOWN] = 1;
    gw_series_offer(g, &s);
    /* a sample off a boundary is ignored */
    s.t = T0 + 13;
    s.requests = 1000;
    gw_series_offer(g, &s);
    json_t *j = gw_series_json(g, T0 + 14);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "step_s")), 10);
    json_t *pts = json_object_get(j, "points");
    ck_assert_uint_eq(json_array_size(pts), GW_SERIES_POINTS);
    json_t *last = point(j, GW_SERIES_POINTS - 1);
    ck_assert_str_eq(json_string_value(json_object_get(last, "t")), "2025-12-02T08:00:10Z");
    ck_assert_str_eq(json_string_value(json_object_get(point(j, 0), "t")), "2025-12-02T07:45:20Z");
    ck_assert_int_eq(out(last, "forwarded"), 3);
    ck_assert_int_eq(out(last, "denied"), 2);
    ck_assert_int_eq(out(last, "quota"), 1);
    ck_assert_int_eq(out(last, "error"), 1);
    /* the step before the first sample: zeros */
    json_t *before = point(j, GW_SERIES_POINTS - 2);
    ck_assert_int_eq(out(before, "forwarded") + out(before, "denied"), 0);
    json_decref(j);
    /* a missing sample: both steps around it count zeros, later ones count */
    s.t = T0 + 30;
    s.requests = 17;
    gw_series_offer(g, &s);
    s.t = T0 + 40;
    s.requests = 20;
    gw_series_offer(g, &s);
    j = gw_series_json(g, T0 + 40);
    ck_assert_int_eq(out(point(j, GW_SERIES_POINTS - 1), "forwarded"), 3);
    ck_assert_int_eq(out(point(j, GW_SERIES_POINTS - 2), "forwarded"), 0);
    ck_assert_int_eq(out(point(j, GW_SERIES_POINTS - 3), "forwarded"), 0);
    json_decref(j);
    /* 15 minutes later the old samples are out of the window */
    j = gw_series_json(g, T0 + 40 + 900);
    for (size_t i = 0; i < GW_SERIES_POINTS; i++)
        ck_assert_int_eq(out(point(j, i), "forwarded"), 0);
    json_decref(j);
    free(g);
}
END_TEST

START_TEST(t_errors_by_code)
{
    gw_series *g = calloc(1, sizeof(*g));
    gw_series_sample a, cur;
    memset(&a, 0, sizeof(a));
    a.t = T0;
    a.denials[GW_ERR_TOKEN_MISSING] = 5; /* before the span's start: not counted */
    gw_series_offer(g, &a);
    cur = a;
    cur.t = T0 + 123;
    cur.denials[GW_ERR_TOKEN_MISSING] += 3; /* 401 */
    cur.denials[GW_ERR_THROTTLED] = 2;      /* 429 */
    cur.denials[GW_ERR_UPSTREAM_DOWN] = 4;  /* 5xx: counted by class */
    cur.class5 = 6;
    json_t *e = gw_series_errors_json(g, &cur);
    ck_assert_int_eq(json_integer_value(json_object_get(e, "401")), 3);
    ck_assert_int_eq(json_integer_value(json_object_get(e, "429")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(e, "5xx")), 6);
    ck_assert_ptr_null(json_object_get(e, "502"));
    ck_assert_uint_eq(json_object_size(e), 3);
    json_decref(e);
    /* nothing sampled: an empty object */
    gw_series *empty = calloc(1, sizeof(*empty));
    e = gw_series_errors_json(empty, &cur);
    ck_assert_uint_eq(json_object_size(e), 0);
    json_decref(e);
    free(empty);
    free(g);
}
END_TEST

START_TEST(t_upstream_percentiles)
{
    gw_series *g = calloc(1, sizeof(*g));
    gw_series_sample a, cur;
    memset(&a, 0, sizeof(a));
    a.t = T0;
    gw_series_offer(g, &a);
    cur = a;
    cur.t = T0 + 5;
    json_t *p = gw_series_upstream_json(g, &cur, bounds);
    ck_assert(json_is_null(json_object_get(p, "p50")));
    json_decref(p);
    /* 100 exchanges in (10, 25] ms: p50 halfway, p90 at 23.5, p99 near 25 */
    cur.upstream[2] = 100;
    p = gw_series_upstream_json(g, &cur, bounds);
    ck_assert_double_eq_tol(json_real_value(json_object_get(p, "p50")), 17.5, 0.01);
    ck_assert_double_eq_tol(json_real_value(json_object_get(p, "p90")), 23.5, 0.01);
    ck_assert_double_eq_tol(json_real_value(json_object_get(p, "p99")), 24.9, 0.01);
    json_decref(p);
    /* one slow exchange above the last bound: p99 says the bound */
    memset(cur.upstream, 0, sizeof(cur.upstream));
    cur.upstream[0] = 98;
    cur.upstream[GW_SERIES_BUCKETS - 1] = 2;
    p = gw_series_upstream_json(g, &cur, bounds);
    ck_assert_double_le(json_real_value(json_object_get(p, "p50")), 5);
    ck_assert_double_eq_tol(json_real_value(json_object_get(p, "p99")), 10000, 0.01);
    json_decref(p);
    free(g);
}
END_TEST

START_TEST(t_usage)
{
    gw_usage *u = gw_usage_new();
    gw_usage_view v;
    gw_usage_get(u, "nobody", T0, &v);
    ck_assert_uint_eq(v.used, 0);
    ck_assert(v.error_rate < 0);
    ck_assert_int_eq(v.last_call, 0);
    /* first seen with 4 admissions and 4 answers, 1 failed */
    ck_assert_int_eq(gw_usage_offer(u, "c1", 4, 1, 4, T0), 0);
    gw_usage_get(u, "c1", T0, &v);
    ck_assert_uint_eq(v.used, 4);
    ck_assert_double_eq_tol(v.error_rate, 0.25, 1e-9);
    ck_assert_int_eq(v.last_call, T0);
    /* one more a second for 30 s */
    for (int i = 1; i <= 30; i++)
        gw_usage_offer(u, "c1", 4 + (unsigned long)i, 1, 4 + (unsigned long)i, T0 + i);
    gw_usage_get(u, "c1", T0 + 30, &v);
    ck_assert_uint_eq(v.used, 34);
    ck_assert_int_eq(v.last_call, T0 + 30);
    /* quiet for 90 s: nothing within the last 60 s, last call unchanged */
    for (int i = 31; i <= 120; i++)
        gw_usage_offer(u, "c1", 34, 1, 34, T0 + i);
    gw_usage_get(u, "c1", T0 + 120, &v);
    ck_assert_uint_eq(v.used, 0);
    ck_assert_int_eq(v.last_call, T0 + 30);
    ck_assert_double_eq_tol(v.error_rate, 1.0 / 34, 1e-9);
    /* 20 minutes later the old failure is out of the 15-minute span */
    for (int i = 121; i <= 1320; i += 1)
        gw_usage_offer(u, "c1", 34 + (unsigned long)(i - 120), 1, 34, T0 + i);
    gw_usage_get(u, "c1", T0 + 1320, &v);
    ck_assert_double_eq_tol(v.error_rate, 0, 1e-9);
    /* consumers are kept apart */
    gw_usage_offer(u, "c2", 10, 10, 0, T0 + 1320);
    gw_usage_get(u, "c2", T0 + 1320, &v);
    ck_assert_double_eq_tol(v.error_rate, 1.0, 1e-9);
    gw_usage_get(u, "c1", T0 + 1320, &v);
    ck_assert_double_eq_tol(v.error_rate, 0, 1e-9);
    gw_usage_free(u);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("admin_series");
    TCase *tc = tcase_create("series");
    tcase_add_test(tc, t_outcome_classes);
    tcase_add_test(tc, t_steps);
    tcase_add_test(tc, t_errors_by_code);
    tcase_add_test(tc, t_upstream_percentiles);
    tcase_add_test(tc, t_usage);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
