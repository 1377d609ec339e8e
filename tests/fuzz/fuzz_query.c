/* libFuzzer target for the request canonicaliser: gateway/lib/query.c (the
 * query parser) and the path side of gateway/lib/route.c (matching and
 * gw_route_canonical_path). The input is a request target "path?query";
 * the route table is the OPALE one (DESIGN.md), with annee a required year
 * on the year-bound routes and two optional parameters on one route.
 *
 * Invariants (abort() when broken):
 *  - a refused query leaves no value and an empty canonical form;
 *  - an accepted query's canonical form is a fixed point: parsed again it is
 *    accepted and gives the same canonical form and the same values;
 *  - every value of an accepted query fits its syntax and gw_query_get
 *    returns it;
 *  - a matched path's canonical form is made of checked bytes only (no '%',
 *    no dot segment) and, matched again, selects the same route and gives
 *    the same canonical form. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/query.h"
#include "lib/route.h"

static gw_route routes_storage[8];
static gw_route_table table = {routes_storage, 0};

static void add(const char *tmpl, int year, int extra)
{
    gw_route *r = &routes_storage[table.n++];
    memset(r, 0, sizeof(*r));
    r->method = strdup("GET");
    r->name = strdup(tmpl);
    if (r->method == NULL || r->name == NULL || gw_route_compile(r, tmpl) != NULL)
        abort();
    if (year) {
        strcpy(r->query[r->nquery].name, "annee");
        r->query[r->nquery].syntax = GW_QSYN_YEAR;
        r->query[r->nquery].required = 1;
        r->nquery++;
    }
    if (extra) {
        strcpy(r->query[r->nquery].name, "page");
        r->query[r->nquery].syntax = GW_QSYN_DIGITS;
        r->nquery++;
        strcpy(r->query[r->nquery].name, "tri_x");
        r->query[r->nquery].syntax = GW_QSYN_TOKEN;
        r->nquery++;
    }
}

static void setup(void)
{
    if (table.n > 0)
        return;
    add("/opale/v1/etatSante", 0, 0);
    add("/opale/v1/entreprises/{siren}/declarations", 1, 0);
    add("/opale/v1/entreprises/{siren}/comptes-bancaires", 0, 1);
    add("/opale/v1/entreprises/{siren}/creances", 1, 0);
    add("/opale/v1/entreprises/{siren}/paiements", 1, 1);
    add("/opale/v1/entreprises/{siren}/habilitations", 0, 0);
}

static int fits(gw_query_syntax syn, const char *v, size_t n)
{
    if (n == 0 || n > GW_QUERY_MAX_VALUE || strlen(v) != n)
        return 0;
    if (syn == GW_QSYN_YEAR && n != 4)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        int digit = c >= '0' && c <= '9';
        int tok = digit || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
                  c == '.' || c == '_' || c == '~';
        if (syn == GW_QSYN_TOKEN ? !tok : !digit)
            return 0;
    }
    return 1;
}

static void check_query(const gw_route *r, const char *q, size_t n)
{
    gw_query a;
    gw_query_err e = gw_query_parse(r->query, r->nquery, q, n, &a);
    if (e != a.err)
        abort();
    if (e != GW_QUERY_OK) {
        if (a.canonical_len != 0 || a.canonical[0] != '\0')
            abort();
        for (size_t i = 0; i < r->nquery; i++)
            if (a.present[i])
                abort();
        if (strncmp(gw_query_err_reason(e), "query.", 6) != 0)
            abort();
        return;
    }
    if (strlen(a.canonical) != a.canonical_len)
        abort();
    for (size_t i = 0; i < r->nquery; i++) {
        if (r->query[i].required && !a.present[i])
            abort();
        if (!a.present[i])
            continue;
        if (!fits(r->query[i].syntax, a.value[i], a.value_len[i]))
            abort();
        size_t gl = 0;
        const char *g = gw_query_get(&a, r->query[i].name, &gl);
        if (g == NULL || gl != a.value_len[i] || memcmp(g, a.value[i], gl) != 0)
            abort();
    }
    /* the canonical form is a fixed point */
    char canon[GW_QUERY_CANONICAL_MAX];
    memcpy(canon, a.canonical, a.canonical_len + 1);
    gw_query b;
    if (gw_query_parse(r->query, r->nquery, canon, a.canonical_len, &b) != GW_QUERY_OK ||
        b.canonical_len != a.canonical_len || memcmp(b.canonical, canon, a.canonical_len) != 0)
        abort();
    for (size_t i = 0; i < r->nquery; i++)
        if (b.present[i] != a.present[i] || (a.present[i] && strcmp(a.value[i], b.value[i]) != 0))
            abort();
}

static void check_path(const char *path, size_t n, const gw_route **matched)
{
    gw_route_match m;
    *matched = NULL;
    if (gw_route_match_path(&table, "GET", path, n, &m) != GW_ROUTE_FOUND)
        return;
    char canon[GW_ROUTE_MAX_TEMPLATE + GW_ROUTE_MAX_PARAMS * GW_ROUTE_MAX_VALUE + 1];
    size_t cl = gw_route_canonical_path(&m, canon, sizeof(canon));
    if (cl == 0 || cl != strlen(canon) || canon[0] != '/' || memchr(canon, '%', cl) != NULL ||
        strstr(canon, "/./") != NULL || strstr(canon, "/../") != NULL)
        abort();
    gw_route_match m2;
    char again[sizeof(canon)];
    if (gw_route_match_path(&table, "GET", canon, cl, &m2) != GW_ROUTE_FOUND ||
        m2.route != m.route || gw_route_canonical_path(&m2, again, sizeof(again)) != cl ||
        memcmp(again, canon, cl) != 0)
        abort();
    *matched = m.route;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    if (size > 4096)
        return 0;
    /* an exact-size copy, so that any read past the end is caught */
    char *t = malloc(size ? size : 1);
    if (t == NULL)
        return 0;
    memcpy(t, data, size);
    const char *qm = memchr(t, '?', size);
    size_t pl = qm ? (size_t)(qm - t) : size;
    const gw_route *r = NULL;
    check_path(t, pl, &r);
    /* the query against the matched route's declarations, or against the
     * richest route's when the path matched nothing */
    if (r == NULL)
        r = &routes_storage[4];
    if (qm != NULL)
        check_query(r, qm + 1, size - pl - 1);
    else
        check_query(r, NULL, 0);
    free(t);
    return 0;
}
