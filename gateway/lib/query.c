#include "lib/query.h"

#include <string.h>

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int is_unreserved(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* Bytes a client's parameter name may hold (before it is compared). */
static int is_name_char(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == '.' || c == '-';
}

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static int value_ok(gw_query_syntax syn, const char *v, size_t n)
{
    if (n == 0 || n > GW_QUERY_MAX_VALUE)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (syn == GW_QSYN_TOKEN ? !is_unreserved(c) : !is_digit(c))
            return 0;
    }
    return syn != GW_QSYN_YEAR || n == 4;
}

/* Index of the declaration named exactly <s>/<n>; with <fold>, the first one
 * whose name equals it ignoring ASCII case. -1 when none. */
static int find_decl(const gw_query_decl *d, size_t nd, const char *s, size_t n, int fold)
{
    for (size_t i = 0; i < nd; i++) {
        if (strlen(d[i].name) != n)
            continue;
        size_t k = 0;
        while (k < n && (fold ? lower((unsigned char)d[i].name[k]) == lower((unsigned char)s[k])
                              : d[i].name[k] == s[k]))
            k++;
        if (k == n)
            return (int)i;
    }
    return -1;
}

static gw_query_err fail(gw_query *q, gw_query_err e, int decl)
{
    q->err = e;
    q->err_decl = decl;
    for (size_t i = 0; i < GW_QUERY_MAX_PARAMS; i++) {
        q->present[i] = 0;
        q->value[i][0] = '\0';
        q->value_len[i] = 0;
    }
    q->canonical[0] = '\0';
    q->canonical_len = 0;
    return e;
}

/* One "name=value" pair <p>/<n> (n > 0). */
static gw_query_err take_pair(gw_query *q, const char *p, size_t n)
{
    const char *eq = memchr(p, '=', n);
    size_t nl = eq ? (size_t)(eq - p) : n;
    if (memchr(p, '%', nl) != NULL)
        return fail(q, GW_QUERY_ENCODED_NAME, -1);
    if (eq == NULL || nl == 0)
        return fail(q, GW_QUERY_MALFORMED, -1);
    for (size_t i = 0; i < nl; i++)
        if (!is_name_char((unsigned char)p[i]))
            return fail(q, GW_QUERY_MALFORMED, -1);
    int d = find_decl(q->decls, q->ndecls, p, nl, 0);
    if (d < 0) {
        int f = find_decl(q->decls, q->ndecls, p, nl, 1);
        return fail(q, f >= 0 ? GW_QUERY_CASE : GW_QUERY_UNDECLARED, f);
    }
    if (q->present[d])
        return fail(q, GW_QUERY_REPEATED, d);
    const char *v = eq + 1;
    size_t vl = n - nl - 1;
    if (vl == 0)
        return fail(q, GW_QUERY_EMPTY, d);
    if (!value_ok(q->decls[d].syntax, v, vl))
        return fail(q, GW_QUERY_BAD_VALUE, d);
    memcpy(q->value[d], v, vl);
    q->value[d][vl] = '\0';
    q->value_len[d] = vl;
    q->present[d] = 1;
    return GW_QUERY_OK;
}

gw_query_err gw_query_parse(const gw_query_decl *decls, size_t ndecls, const char *query,
                            size_t len, gw_query *out)
{
    gw_query *q = out;
    q->decls = decls;
    q->ndecls = ndecls > GW_QUERY_MAX_PARAMS ? GW_QUERY_MAX_PARAMS : ndecls;
    fail(q, GW_QUERY_OK, -1);
    if (query == NULL)
        len = 0;
    size_t i = 0;
    while (i < len) {
        const char *amp = memchr(query + i, '&', len - i);
        size_t end = amp ? (size_t)(amp - query) : len;
        if (end == i || (amp != NULL && end + 1 == len))
            return fail(q, GW_QUERY_MALFORMED, -1); /* "a&&b", "&a", "a&" */
        if (take_pair(q, query + i, end - i) != GW_QUERY_OK)
            return q->err;
        i = end + 1;
    }
    size_t used = 0;
    for (size_t d = 0; d < q->ndecls; d++) {
        if (!q->present[d]) {
            if (q->decls[d].required)
                return fail(q, GW_QUERY_MISSING, (int)d);
            continue;
        }
        size_t nl = strlen(q->decls[d].name), vl = q->value_len[d];
        if (used + (used ? 1 : 0) + nl + 1 + vl + 1 > sizeof(q->canonical))
            return fail(q, GW_QUERY_MALFORMED, (int)d); /* cannot happen with the limits */
        if (used)
            q->canonical[used++] = '&';
        memcpy(q->canonical + used, q->decls[d].name, nl);
        used += nl;
        q->canonical[used++] = '=';
        memcpy(q->canonical + used, q->value[d], vl);
        used += vl;
    }
    q->canonical[used] = '\0';
    q->canonical_len = used;
    return GW_QUERY_OK;
}

const char *gw_query_get(const gw_query *q, const char *name, size_t *len)
{
    if (q == NULL || name == NULL || q->err != GW_QUERY_OK)
        return NULL;
    for (size_t d = 0; d < q->ndecls; d++) {
        if (q->present[d] && strcmp(q->decls[d].name, name) == 0) {
            if (len != NULL)
                *len = q->value_len[d];
            return q->value[d];
        }
    }
    return NULL;
}

const char *gw_query_err_reason(gw_query_err e)
{
    switch (e) {
    case GW_QUERY_OK:
        return "query.ok";
    case GW_QUERY_MALFORMED:
        return "query.malformed";
    case GW_QUERY_ENCODED_NAME:
        return "query.encoded_name";
    case GW_QUERY_UNDECLARED:
        return "query.undeclared";
    case GW_QUERY_CASE:
        return "query.name_case";
    case GW_QUERY_REPEATED:
        return "query.repeated";
    case GW_QUERY_EMPTY:
        return "query.empty";
    case GW_QUERY_BAD_VALUE:
        return "query.bad_value";
    case GW_QUERY_MISSING:
        return "query.missing";
    }
    return "query.malformed";
}

int gw_query_syntax_parse(const char *s, gw_query_syntax *out)
{
    static const struct {
        const char *name;
        gw_query_syntax syn;
    } tab[] = {{"year", GW_QSYN_YEAR}, {"digits", GW_QSYN_DIGITS}, {"token", GW_QSYN_TOKEN}};
    for (size_t i = 0; s != NULL && i < sizeof(tab) / sizeof(tab[0]); i++) {
        if (strcmp(s, tab[i].name) == 0) {
            *out = tab[i].syn;
            return 0;
        }
    }
    return -1;
}
