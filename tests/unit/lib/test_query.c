/* Unit tests for gateway/lib/query.c (the query parser and canonicaliser)
 * and gw_route_canonical_path(), table-driven. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "lib/query.h"
#include "lib/route.h"

/* declared on the test route: annee (year, required), page (digits),
 * code (token) */
static const gw_query_decl decls[] = {
    {"annee", GW_QSYN_YEAR, 1},
    {"page", GW_QSYN_DIGITS, 0},
    {"code", GW_QSYN_TOKEN, 0},
};

typedef struct qcase {
    const char *query; /* NULL: no '?' at all */
    gw_query_err err;
    const char *canonical; /* when OK */
    int err_decl;          /* when not OK; -1: none */
} qcase;

static const qcase qcases[] = {
    /* accepted, re-serialised in declaration order */
    {"annee=2023", GW_QUERY_OK, "annee=2023", 0},
    {"page=2&annee=2023", GW_QUERY_OK, "annee=2023&page=2", 0},
    {"code=A-b.c_d~e&annee=1999&page=10", GW_QUERY_OK, "annee=1999&page=10&code=A-b.c_d~e", 0},
    /* the bypass of issue 12 and its variants */
    {"ANNEE=1990&annee=2023", GW_QUERY_CASE, NULL, 0},
    {"annee=2023&ANNEE=1990", GW_QUERY_CASE, NULL, 0},
    {"Annee=1990", GW_QUERY_CASE, NULL, 0},
    {"x=1&ANNEE=1990", GW_QUERY_UNDECLARED, NULL, -1},
    {"annee=2023&x=1", GW_QUERY_UNDECLARED, NULL, -1},
    {"annee=2023&annee=2023", GW_QUERY_REPEATED, NULL, 0},
    {"annee=2023&annee=1990", GW_QUERY_REPEATED, NULL, 0},
    {"%61nnee=1990&annee=2023", GW_QUERY_ENCODED_NAME, NULL, -1},
    {"annee=2023&%61nnee=1990", GW_QUERY_ENCODED_NAME, NULL, -1},
    {"ann%65e=1990", GW_QUERY_ENCODED_NAME, NULL, -1},
    {"annee%3D1990", GW_QUERY_ENCODED_NAME, NULL, -1},
    {"annee=", GW_QUERY_EMPTY, NULL, 0},
    {"annee=2023&page=", GW_QUERY_EMPTY, NULL, 1},
    {"annee", GW_QUERY_MALFORMED, NULL, -1},
    {"=2023", GW_QUERY_MALFORMED, NULL, -1},
    {"annee=2023&", GW_QUERY_MALFORMED, NULL, -1},
    {"&annee=2023", GW_QUERY_MALFORMED, NULL, -1},
    {"annee=2023&&page=1", GW_QUERY_MALFORMED, NULL, -1},
    {"ann+ee=2023", GW_QUERY_MALFORMED, NULL, -1},
    {"ann;ee=2023", GW_QUERY_MALFORMED, NULL, -1},
    {"annee[]=2023", GW_QUERY_MALFORMED, NULL, -1},
    {"annee=202", GW_QUERY_BAD_VALUE, NULL, 0},
    {"annee=20233", GW_QUERY_BAD_VALUE, NULL, 0},
    {"annee=abcd", GW_QUERY_BAD_VALUE, NULL, 0},
    {"annee=%32023", GW_QUERY_BAD_VALUE, NULL, 0},
    {"annee=2023;x=1", GW_QUERY_BAD_VALUE, NULL, 0},
    {"annee=20=3", GW_QUERY_BAD_VALUE, NULL, 0},
    {"annee=+2023", GW_QUERY_BAD_VALUE, NULL, 0},
    {"annee=2023&page=1a", GW_QUERY_BAD_VALUE, NULL, 1},
    {"annee=2023&code=a%20b", GW_QUERY_BAD_VALUE, NULL, 2},
    {"annee=2023&code=a+b", GW_QUERY_BAD_VALUE, NULL, 2},
    {"annee=2023&code=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     GW_QUERY_BAD_VALUE, NULL, 2}, /* 65 bytes */
    {"page=1", GW_QUERY_MISSING, NULL, 0},
    {"", GW_QUERY_MISSING, NULL, 0},
    {NULL, GW_QUERY_MISSING, NULL, 0},
};

START_TEST(t_parse)
{
    const qcase *c = &qcases[_i];
    gw_query q;
    memset(&q, 0x5a, sizeof(q));
    size_t len = c->query ? strlen(c->query) : 0;
    /* an exact-size heap copy, so that ASan sees any read past the end */
    char *buf = c->query ? malloc(len ? len : 1) : NULL;
    if (buf)
        memcpy(buf, c->query, len);
    gw_query_err e = gw_query_parse(decls, 3, buf, len, &q);
    ck_assert_msg(e == c->err, "%s: err %d, want %d", c->query ? c->query : "(none)", e, c->err);
    ck_assert_int_eq(q.err, e);
    if (e == GW_QUERY_OK) {
        ck_assert_str_eq(q.canonical, c->canonical);
        ck_assert_uint_eq(q.canonical_len, strlen(c->canonical));
    } else {
        ck_assert_int_eq(q.err_decl, c->err_decl);
        ck_assert_str_eq(q.canonical, "");
        ck_assert_ptr_null(gw_query_get(&q, "annee", NULL));
    }
    ck_assert_str_ne(gw_query_err_reason(e), "");
    free(buf);
}
END_TEST

START_TEST(t_get)
{
    gw_query q;
    const char *s = "page=07&annee=2024";
    ck_assert_int_eq(gw_query_parse(decls, 3, s, strlen(s), &q), GW_QUERY_OK);
    size_t n = 0;
    ck_assert_str_eq(gw_query_get(&q, "annee", &n), "2024");
    ck_assert_uint_eq(n, 4);
    ck_assert_str_eq(gw_query_get(&q, "page", &n), "07");
    ck_assert_ptr_null(gw_query_get(&q, "code", &n));
    ck_assert_ptr_null(gw_query_get(&q, "ANNEE", &n));
    ck_assert_str_eq(q.canonical, "annee=2024&page=07");
}
END_TEST

START_TEST(t_no_decls)
{
    gw_query q;
    ck_assert_int_eq(gw_query_parse(NULL, 0, NULL, 0, &q), GW_QUERY_OK);
    ck_assert_str_eq(q.canonical, "");
    ck_assert_int_eq(gw_query_parse(NULL, 0, "", 0, &q), GW_QUERY_OK); /* "path?" */
    ck_assert_int_eq(gw_query_parse(NULL, 0, "annee=2023", 10, &q), GW_QUERY_UNDECLARED);
    /* only <len> bytes are read */
    ck_assert_int_eq(gw_query_parse(decls, 3, "annee=2023&x=1", 10, &q), GW_QUERY_OK);
    ck_assert_str_eq(q.canonical, "annee=2023");
}
END_TEST

START_TEST(t_syntax_names)
{
    gw_query_syntax s;
    ck_assert_int_eq(gw_query_syntax_parse("year", &s), 0);
    ck_assert_int_eq(s, GW_QSYN_YEAR);
    ck_assert_int_eq(gw_query_syntax_parse("digits", &s), 0);
    ck_assert_int_eq(s, GW_QSYN_DIGITS);
    ck_assert_int_eq(gw_query_syntax_parse("token", &s), 0);
    ck_assert_int_eq(s, GW_QSYN_TOKEN);
    ck_assert_int_eq(gw_query_syntax_parse("Year", &s), -1);
    ck_assert_int_eq(gw_query_syntax_parse(NULL, &s), -1);
}
END_TEST

/* ---- canonical path ---- */

typedef struct pcase {
    const char *path;
    int found;
    const char *canonical;
} pcase;

static const pcase pcases[] = {
    {"/opale/v1/entreprises/732829320/declarations", 1,
     "/opale/v1/entreprises/732829320/declarations"},
    {"/opale/v1/etatSante", 1, "/opale/v1/etatSante"},
    {"/opale/v1/entreprises/7328%329320/declarations", 0, NULL}, /* '%' in a value */
    {"/opale/v1/entreprises/73282;9320/declarations", 0, NULL},
    {"/opale/v1/entreprises/a'b/declarations", 0, NULL},
    {"/opale/v1/entreprises/" /* 65 bytes */
     "12345678901234567890123456789012345678901234567890123456789012345/declarations",
     0, NULL},
    {"/opale/v1/entreprises/A-b.c_d~e/declarations", 1,
     "/opale/v1/entreprises/A-b.c_d~e/declarations"},
};

START_TEST(t_canonical_path)
{
    const pcase *c = &pcases[_i];
    gw_route routes[2];
    memset(routes, 0, sizeof(routes));
    ck_assert_ptr_null(gw_route_compile(&routes[0], "/opale/v1/entreprises/{siren}/declarations"));
    routes[0].method = "GET";
    ck_assert_ptr_null(gw_route_compile(&routes[1], "/opale/v1/etatSante"));
    routes[1].method = "GET";
    gw_route_table t = {routes, 2};
    gw_route_match m;
    gw_route_result r = gw_route_match_path(&t, "GET", c->path, strlen(c->path), &m);
    ck_assert_int_eq(r == GW_ROUTE_FOUND, c->found);
    if (c->found) {
        char out[GW_ROUTE_TARGET_MAX];
        size_t n = gw_route_canonical_path(&m, out, sizeof(out));
        ck_assert_str_eq(out, c->canonical);
        ck_assert_uint_eq(n, strlen(c->canonical));
        ck_assert_uint_eq(gw_route_canonical_path(&m, out, 5), 0); /* does not fit */
    }
    for (size_t i = 0; i < 2; i++) {
        routes[i].method = NULL;
        gw_route_free(&routes[i]);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("query");
    TCase *tc = tcase_create("parse");
    tcase_add_loop_test(tc, t_parse, 0, (int)(sizeof(qcases) / sizeof(qcases[0])));
    tcase_add_test(tc, t_get);
    tcase_add_test(tc, t_no_decls);
    tcase_add_test(tc, t_syntax_names);
    suite_add_tcase(s, tc);
    tc = tcase_create("path");
    tcase_add_loop_test(tc, t_canonical_path, 0, (int)(sizeof(pcases) / sizeof(pcases[0])));
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
