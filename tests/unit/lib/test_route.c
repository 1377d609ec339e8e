/* Unit tests for gateway/lib/route.c: template compilation and matching,
 * table-driven. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "lib/route.h"

/* ---- compile ---- */

typedef struct compile_case {
    const char *tmpl;
    const char *err; /* NULL: compiles */
    size_t nsegs;
} compile_case;

static const compile_case compiles[] = {
    {"/opale/v1/etatSante", NULL, 3},
    {"/opale/v1/entreprises/{siren}/declarations", NULL, 5},
    {"/.well-known/jwks.json", NULL, 2},
    {"/a/...", NULL, 2}, /* three dots are a name, not a dot segment */
    {"/a/-._~!$&'()*+,;=:@", NULL, 2},
    {"/", NULL, 0},
    {"", "must start with '/'", 0},
    {"opale/v1", "must start with '/'", 0},
    {"{x}", "must start with '/'", 0},
    {"//", "empty segment", 0},
    {"/a//b", "empty segment", 0},
    {"/a/", "empty segment", 0},
    {"/a/{}", "bad parameter name", 0},
    {"/a/{Siren}", "bad parameter name", 0},
    {"/a/{x1}", "bad parameter name", 0},
    {"/a/{x-y}", "bad parameter name", 0},
    {"/a/{a{b}", "bad parameter name", 0},
    {"/a/x{y}", "parameter must be a whole segment", 0},
    {"/a/{y}x", "parameter must be a whole segment", 0},
    {"/a/{y", "parameter must be a whole segment", 0},
    {"/a/y}", "parameter must be a whole segment", 0},
    {"/a/{", "parameter must be a whole segment", 0},
    {"/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16", NULL, 16},
    {"/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17", "too many segments", 0},
    {"/{a}/{b}/{c}/{d}", NULL, 4},
    {"/{a}/{b}/{c}/{d}/{e}", "too many parameters", 0},
    {"/a/{x}/b/{x}", "duplicate parameter name", 0},
    {"/a/./b", "dot segment", 0},
    {"/a/..", "dot segment", 0},
    {"/a/b%2Fc", "bad character", 0},
    {"/a b", "bad character", 0},
    {"/a?b=1", "bad character", 0},
    {"/a#b", "bad character", 0},
    {"/caf\xc3\xa9", "bad character", 0},
};

START_TEST(t_compile)
{
    const compile_case *cc = &compiles[_i];
    gw_route r;
    memset(&r, 0, sizeof(r));
    const char *err = gw_route_compile(&r, cc->tmpl);
    if (cc->err == NULL) {
        ck_assert_msg(err == NULL, "%s: %s", cc->tmpl, err);
        ck_assert_uint_eq(r.nsegs, cc->nsegs);
        for (size_t k = 0; k < r.nsegs; k++)
            ck_assert_msg((r.segs[k] == NULL) != (r.params[k] == NULL), "%s: seg %zu", cc->tmpl, k);
        for (size_t k = r.nsegs; k < GW_ROUTE_MAX_SEGS; k++) {
            ck_assert_ptr_null(r.segs[k]);
            ck_assert_ptr_null(r.params[k]);
        }
    } else {
        ck_assert_msg(err != NULL, "%s: compiled", cc->tmpl);
        ck_assert_str_eq(err, cc->err);
        /* nothing written on error */
        ck_assert_uint_eq(r.nsegs, 0);
        for (size_t k = 0; k < GW_ROUTE_MAX_SEGS; k++) {
            ck_assert_ptr_null(r.segs[k]);
            ck_assert_ptr_null(r.params[k]);
        }
    }
    gw_route_free(&r);
}
END_TEST

START_TEST(t_compile_segments)
{
    gw_route r;
    memset(&r, 0, sizeof(r));
    ck_assert_ptr_null(gw_route_compile(&r, "/opale/{siren}/x_y"));
    ck_assert_uint_eq(r.nsegs, 3);
    ck_assert_str_eq(r.segs[0], "opale");
    ck_assert_ptr_null(r.params[0]);
    ck_assert_ptr_null(r.segs[1]);
    ck_assert_str_eq(r.params[1], "siren");
    ck_assert_str_eq(r.segs[2], "x_y");
    ck_assert_ptr_null(r.params[2]);
    gw_route_free(&r);
    ck_assert_uint_eq(r.nsegs, 0);
    ck_assert_ptr_null(r.segs[0]);
    gw_route_free(&r); /* zeroed: fine twice */
    gw_route_free(NULL);
    ck_assert_str_eq(gw_route_compile(&r, NULL), "must start with '/'");
}
END_TEST

/* ---- match ---- */

static const struct {
    const char *method, *tmpl;
} table_def[] = {
    /* 0 */ {"GET", "/opale/v1/etatSante"},
    /* 1 */ {"HEAD", "/opale/v1/etatSante"},
    /* 2 */ {"GET", "/opale/v1/entreprises/{siren}/declarations"},
    /* 3 */ {"GET", "/opale/v1/entreprises/{siren}/comptes-bancaires"},
    /* 4 */ {"POST", "/token"},
    /* 5 */ {"GET", "/.well-known/jwks.json"},
    /* 6 */ {"GET", "/a/{x}/b/{y}"},
    /* 7 */ {"DELETE", "/a/{x}/b/{y}"},
    /* 8 */ {"GET", "/"},
    /* 9 */ {"GET", "/x/literal"},
    /* 10 */ {"GET", "/x/{p}"},
};
#define NROUTES (sizeof(table_def) / sizeof(table_def[0]))

static gw_route routes[NROUTES];
static gw_route_table table = {routes, NROUTES};

static void setup(void)
{
    memset(routes, 0, sizeof(routes));
    for (size_t i = 0; i < NROUTES; i++) {
        ck_assert_ptr_null(gw_route_compile(&routes[i], table_def[i].tmpl));
        routes[i].method = strdup(table_def[i].method);
        routes[i].path = strdup(table_def[i].tmpl);
        routes[i].name = strdup(table_def[i].tmpl);
    }
}

static void teardown(void)
{
    for (size_t i = 0; i < NROUTES; i++)
        gw_route_free(&routes[i]);
}

enum { WHOLE = 0, CUT_QUERY = 1 };

typedef struct match_case {
    const char *method;
    const char *path;
    int len_mode; /* WHOLE: strlen(path); CUT_QUERY: up to '?'; >1: that many bytes */
    gw_route_result want;
    int route;                /* index in table_def when FOUND */
    const char *params[2][2]; /* {name, value} */
} match_case;

#define F GW_ROUTE_FOUND
#define NF GW_ROUTE_NOT_FOUND
#define NA GW_ROUTE_METHOD_NOT_ALLOWED

static const match_case matches[] = {
    {"GET", "/opale/v1/etatSante", WHOLE, F, 0, {{NULL}}},
    {"HEAD", "/opale/v1/etatSante", WHOLE, F, 1, {{NULL}}},
    {"GET", "/opale/v1/entreprises/123456789/declarations", WHOLE, F, 2, {{"siren", "123456789"}}},
    {"GET",
     "/opale/v1/entreprises/552100554/comptes-bancaires",
     WHOLE,
     F,
     3,
     {{"siren", "552100554"}}},
    {"POST", "/token", WHOLE, F, 4, {{NULL}}},
    {"GET", "/.well-known/jwks.json", WHOLE, F, 5, {{NULL}}},
    {"GET", "/a/1/b/two", WHOLE, F, 6, {{"x", "1"}, {"y", "two"}}},
    {"DELETE", "/a/1/b/two", WHOLE, F, 7, {{"x", "1"}, {"y", "two"}}},
    {"GET", "/", WHOLE, F, 8, {{NULL}}},
    /* literal before parameter: table order decides */
    {"GET", "/x/literal", WHOLE, F, 9, {{NULL}}},
    {"GET", "/x/other", WHOLE, F, 10, {{"p", "other"}}},
    /* methods: exact, case-sensitive, HEAD is not GET */
    {"POST", "/opale/v1/etatSante", WHOLE, NA, 0, {{NULL}}},
    {"get", "/opale/v1/etatSante", WHOLE, NA, 0, {{NULL}}},
    {"HEAD", "/opale/v1/entreprises/123456789/declarations", WHOLE, NA, 0, {{NULL}}},
    {"GET", "/token", WHOLE, NA, 0, {{NULL}}},
    {"PUT", "/a/1/b/2", WHOLE, NA, 0, {{NULL}}},
    {"GET", "/nope", WHOLE, NF, 0, {{NULL}}},
    {"POST", "/nope", WHOLE, NF, 0, {{NULL}}},
    /* literals are byte-exact */
    {"GET", "/opale/v1/etatsante", WHOLE, NF, 0, {{NULL}}},
    {"GET", "/OPALE/v1/etatSante", WHOLE, NF, 0, {{NULL}}},
    /* segment count is exact */
    {"GET", "/opale/v1/etatSante/", WHOLE, NF, 0, {{NULL}}},
    {"GET", "/opale/v1/etatSante/x", WHOLE, NF, 0, {{NULL}}},
    {"GET", "/opale/v1", WHOLE, NF, 0, {{NULL}}},
    {"GET", "/opale/v1/entreprises/123456789/declarations/", WHOLE, NF, 0, {{NULL}}},
    {"GET", "/opale/v1/entreprises/123456789/declarations/2024", WHOLE, NF, 0, {{NULL}}},
    {"GET", "/opale//v1/etatSante", WHOLE, NF, 0, {{NULL}}},
    {"GET", "//", WHOLE, NF, 0, {{NULL}}},
    {"GET", "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q", WHOLE, NF, 0, {{NULL}}},
    /* a parameter is one non-empty segment */
    {"GET", "/opale/v1/entreprises//declarations", WHOLE, NF, 0, {{NULL}}},
    {"GET", "/opale/v1/entreprises/1/2/declarations", WHOLE, NF, 0, {{NULL}}},
    /* dot segments never match, not even a parameter */
    {"GET", "/opale/v1/entreprises/../declarations", WHOLE, NF, 0, {{NULL}}},
    {"GET", "/opale/v1/entreprises/./declarations", WHOLE, NF, 0, {{NULL}}},
    {"GET", "/opale/v1/../v1/etatSante", WHOLE, NF, 0, {{NULL}}},
    {"GET", "/x/..", WHOLE, NF, 0, {{NULL}}},
    {"GET", "/x/.", WHOLE, NF, 0, {{NULL}}},
    {"GET", "/x/...", WHOLE, F, 10, {{"p", "..."}}},
    /* no percent-decoding: %2F is not a separator, %65 is not 'e' */
    {"GET", "/opale/v1/entreprises%2F123/declarations", WHOLE, NF, 0, {{NULL}}},
    {"GET", "/opale%2Fv1/etatSante", WHOLE, NF, 0, {{NULL}}},
    {"GET", "/opale/v1/%65tatSante", WHOLE, NF, 0, {{NULL}}},
    /* a parameter's value is [A-Za-z0-9-._~] only: no '%' (the canonical
     * path sent upstream is rebuilt from checked values) */
    {"GET", "/opale/v1/entreprises/123%2F456/declarations", WHOLE, NF, 0, {{NULL}}},
    {"GET", "/x/%2E%2E", WHOLE, NF, 0, {{NULL}}},
    {"GET", "/x/a;b", WHOLE, NF, 0, {{NULL}}},
    {"GET", "/x/a'b", WHOLE, NF, 0, {{NULL}}},
    {"GET", "/x/A-z.0_9~", WHOLE, F, 10, {{"p", "A-z.0_9~"}}},
    /* the query is not part of the match: the caller cuts it */
    {"GET", "/opale/v1/etatSante?x=1", CUT_QUERY, F, 0, {{NULL}}},
    {"GET", "/opale/v1/etatSante?x=1", WHOLE, NF, 0, {{NULL}}},
    {"GET",
     "/opale/v1/entreprises/123456789/declarations?annee=2024",
     CUT_QUERY,
     F,
     2,
     {{"siren", "123456789"}}},
    /* only <path_len> bytes count */
    {"GET", "/opale/v1/etatSanteXYZ", 19, F, 0, {{NULL}}},
    {"GET", "/opale/v1/etatSan", WHOLE, NF, 0, {{NULL}}},
    /* not a path */
    {"GET", "", WHOLE, NF, 0, {{NULL}}},
    {"GET", "opale/v1/etatSante", WHOLE, NF, 0, {{NULL}}},
    {"OPTIONS", "*", WHOLE, NF, 0, {{NULL}}},
};

START_TEST(t_match)
{
    const match_case *mc = &matches[_i];
    size_t len = mc->len_mode == WHOLE       ? strlen(mc->path)
                 : mc->len_mode == CUT_QUERY ? strcspn(mc->path, "?")
                                             : (size_t)mc->len_mode;
    gw_route_match m;
    memset(&m, 0xA5, sizeof(m)); /* the result must not depend on prior contents */
    gw_route_result got = gw_route_match_path(&table, mc->method, mc->path, len, &m);
    ck_assert_msg(got == mc->want, "%s %s: got %d, want %d", mc->method, mc->path, got, mc->want);
    if (mc->want != GW_ROUTE_FOUND) {
        ck_assert_ptr_null(m.route);
        ck_assert_uint_eq(m.nparams, 0);
        return;
    }
    ck_assert_ptr_eq(m.route, &routes[mc->route]);
    size_t np = 0;
    while (np < 2 && mc->params[np][0] != NULL)
        np++;
    ck_assert_uint_eq(m.nparams, np);
    for (size_t k = 0; k < np; k++) {
        size_t vlen = 0;
        ck_assert_str_eq(m.params[k].name, mc->params[k][0]);
        const char *v = gw_route_param(&m, mc->params[k][0], &vlen);
        ck_assert_ptr_nonnull(v);
        ck_assert_uint_eq(vlen, strlen(mc->params[k][1]));
        ck_assert_int_eq(memcmp(v, mc->params[k][1], vlen), 0);
        /* points into the caller's buffer */
        ck_assert(v >= mc->path && v + vlen <= mc->path + len);
    }
}
END_TEST

START_TEST(t_match_nul_byte)
{
    static const char p[] = "/opale/v1/etatSante\0";
    gw_route_match m;
    ck_assert_int_eq(gw_route_match_path(&table, "GET", p, sizeof(p) - 1, &m), GW_ROUTE_NOT_FOUND);
    /* a NUL is not a value byte: no match (the value is not cut at it) */
    static const char q[] = "/x/a\0b";
    ck_assert_int_eq(gw_route_match_path(&table, "GET", q, sizeof(q) - 1, &m), GW_ROUTE_NOT_FOUND);
    static const char q2[] = "/x/ab";
    ck_assert_int_eq(gw_route_match_path(&table, "GET", q2, sizeof(q2) - 1, &m), GW_ROUTE_FOUND);
    ck_assert_ptr_eq(m.route, &routes[10]);
    ck_assert_uint_eq(m.params[0].len, 2);
}
END_TEST

START_TEST(t_match_edges)
{
    gw_route_match m;
    const char *p = "/token";
    ck_assert_int_eq(gw_route_match_path(NULL, "POST", p, 6, &m), GW_ROUTE_NOT_FOUND);
    ck_assert_int_eq(gw_route_match_path(&table, "POST", NULL, 0, &m), GW_ROUTE_NOT_FOUND);
    ck_assert_int_eq(gw_route_match_path(&table, "POST", p, 6, NULL), GW_ROUTE_FOUND);
    ck_assert_int_eq(gw_route_match_path(&table, NULL, p, 6, &m), GW_ROUTE_METHOD_NOT_ALLOWED);
    gw_route_table empty = {NULL, 0};
    ck_assert_int_eq(gw_route_match_path(&empty, "POST", p, 6, &m), GW_ROUTE_NOT_FOUND);
}
END_TEST

START_TEST(t_param)
{
    gw_route_match m;
    const char *p = "/a/11/b/22";
    size_t len = 99;
    ck_assert_int_eq(gw_route_match_path(&table, "GET", p, strlen(p), &m), GW_ROUTE_FOUND);
    const char *v = gw_route_param(&m, "y", &len);
    ck_assert_ptr_eq(v, p + 8);
    ck_assert_uint_eq(len, 2);
    ck_assert_ptr_eq(gw_route_param(&m, "x", NULL), p + 3);
    len = 99;
    ck_assert_ptr_null(gw_route_param(&m, "z", &len));
    ck_assert_uint_eq(len, 99);
    ck_assert_ptr_null(gw_route_param(&m, NULL, &len));
    ck_assert_ptr_null(gw_route_param(NULL, "x", &len));
}
END_TEST

typedef struct allow_case {
    const char *path;
    size_t outsz;
    size_t count;
    const char *out;
} allow_case;

static const allow_case allows[] = {
    {"/opale/v1/etatSante", 64, 2, "GET, HEAD"},
    {"/a/1/b/2", 64, 2, "GET, DELETE"},
    {"/x/literal", 64, 1, "GET"}, /* two GET routes, one method */
    {"/token", 64, 1, "POST"},
    {"/nope", 64, 0, ""},
    {"/opale/v1/etatSante", 9, 2, "GET"}, /* "GET, HEAD" needs 10 bytes */
    {"/opale/v1/etatSante", 10, 2, "GET, HEAD"},
    {"/opale/v1/etatSante", 3, 2, ""},
};

START_TEST(t_allowed)
{
    const allow_case *ac = &allows[_i];
    char out[64];
    memset(out, 'X', sizeof(out));
    size_t n = gw_route_allowed(&table, ac->path, strlen(ac->path), out, ac->outsz);
    ck_assert_uint_eq(n, ac->count);
    ck_assert_str_eq(out, ac->out);
    ck_assert_uint_eq(gw_route_allowed(&table, ac->path, strlen(ac->path), NULL, 0), ac->count);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("route");
    TCase *tc = tcase_create("compile");
    tcase_add_loop_test(tc, t_compile, 0, (int)(sizeof(compiles) / sizeof(compiles[0])));
    tcase_add_test(tc, t_compile_segments);
    suite_add_tcase(s, tc);
    tc = tcase_create("match");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, t_match, 0, (int)(sizeof(matches) / sizeof(matches[0])));
    tcase_add_test(tc, t_match_nul_byte);
    tcase_add_test(tc, t_match_edges);
    tcase_add_test(tc, t_param);
    tcase_add_loop_test(tc, t_allowed, 0, (int)(sizeof(allows) / sizeof(allows[0])));
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
