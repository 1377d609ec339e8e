/*
 * Route table: method + path template ("/opale/v1/entreprises/{siren}/declarations")
 * -> route. Templates have literal segments and "{name}" segments that match
 * one non-empty path segment. Matching is exact on segments (no prefix match,
 * no trailing slash tolerance); a query string is not part of the match.
 */
#ifndef GW_ROUTE_H
#define GW_ROUTE_H

#include <stddef.h>

#include "lib/query.h"

#define GW_ROUTE_MAX_SEGS 16
#define GW_ROUTE_MAX_PARAMS 4
#define GW_ROUTE_MAX_SCOPES 256
/* routes[].max_response_bytes when absent: OPALE answers are a few KiB */
#define GW_ROUTE_DEFAULT_MAX_RESPONSE_BYTES ((size_t)4 << 20)
#define GW_ROUTE_MAX_TEMPLATE 512 /* bytes of a path template */
#define GW_ROUTE_MAX_VALUE 64     /* bytes of a path parameter's value */
#define GW_ROUTE_MAX_HEADERS 8    /* request headers a route forwards besides the default set */
/* The canonical target sent upstream: path + '?' + canonical query. */
#define GW_ROUTE_TARGET_MAX                                                                        \
    (GW_ROUTE_MAX_TEMPLATE + GW_ROUTE_MAX_PARAMS * GW_ROUTE_MAX_VALUE + 1 + GW_QUERY_CANONICAL_MAX)

typedef struct gw_route {
    char *name;     /* e.g. "declarations"; defaults to the template */
    char *method;   /* "GET", "POST", ... */
    char *path;     /* the template as written */
    char *upstream; /* upstream name */
    size_t upstream_idx;
    char *scope;    /* NULL when none (etatSante); used by the rights stage */
    int year_bound; /* declares annee (year, required); kept for compatibility */
    /* bound on the response body; the upstream's max_response_bytes applies
     * too (the smaller wins); 0: none of its own */
    size_t max_response_bytes;
    /* declared query parameters (lib/query.h); nothing else is accepted */
    gw_query_decl query[GW_QUERY_MAX_PARAMS];
    size_t nquery;
    size_t max_body_bytes;               /* 0: the route takes no body (refused, never forwarded) */
    char *headers[GW_ROUTE_MAX_HEADERS]; /* forwarded besides the default allowlist */
    size_t nheaders;
    int no_quota; /* config "quota": false: calls do not count (default: they do) */
    /* compiled template */
    size_t nsegs;
    char *segs[GW_ROUTE_MAX_SEGS];     /* literal text, or NULL for a parameter */
    size_t seg_len[GW_ROUTE_MAX_SEGS]; /* strlen(segs[i]); 0 for a parameter */
    char *params[GW_ROUTE_MAX_SEGS];   /* parameter name where segs[i] == NULL */
} gw_route;

typedef struct gw_route_table {
    gw_route *routes;
    size_t n;
} gw_route_table;

typedef struct gw_route_match {
    const gw_route *route;
    size_t nparams;
    struct {
        const char *name;
        const char *value; /* points into the caller's path buffer */
        size_t len;
    } params[GW_ROUTE_MAX_PARAMS];
} gw_route_match;

/* Compile <tmpl> into <r> (segments). Returns NULL on success or a constant
 * error message ("must start with '/'", "empty segment", ...). Only nsegs,
 * segs[] and params[] are written (overwritten, not freed: pass a zeroed
 * route); on error they are left untouched. "/" compiles to zero segments.
 * Besides the messages listed in docs/configuration.md: "bad character"
 * (a literal byte outside RFC 3986 pchar, or '%'), "dot segment" ("." or
 * ".."), "duplicate parameter name", "too long" (more than
 * GW_ROUTE_MAX_TEMPLATE bytes), "out of memory". */
const char *gw_route_compile(gw_route *r, const char *tmpl);

typedef enum {
    GW_ROUTE_FOUND = 0,
    GW_ROUTE_NOT_FOUND = 1,         /* no template matches the path -> 404 */
    GW_ROUTE_METHOD_NOT_ALLOWED = 2 /* a template matches, another method -> 405 */
} gw_route_result;

/* Match <method> and the path part <path>/<path_len> (no query). The path is
 * matched as received: percent-encoded bytes are not decoded, so "%2F" never
 * becomes a separator; "." and ".." segments never match. A parameter
 * segment matches only 1..GW_ROUTE_MAX_VALUE bytes of [A-Za-z0-9-._~] (no
 * '%'), so that the canonical path is built from checked values only. */
gw_route_result gw_route_match_path(const gw_route_table *t, const char *method, const char *path,
                                    size_t path_len, gw_route_match *m);

/* For a 405: write the distinct methods whose template matches <path>, in
 * table order, as "GET, HEAD" into <out>/<outsz> (always NUL-terminated when
 * <outsz> > 0; a method that does not fit ends the list). Returns how many
 * distinct methods match, written or not. */
size_t gw_route_allowed(const gw_route_table *t, const char *path, size_t path_len, char *out,
                        size_t outsz);

/* The value of parameter <name> in <m> (not NUL-terminated; its length in
 * <len>), or NULL. */
const char *gw_route_param(const gw_route_match *m, const char *name, size_t *len);

/* The canonical path of the match <m>: the route's template with each
 * parameter replaced by its matched value, written NUL-terminated into
 * <out>/<cap>. Returns its length, or 0 when <m> holds no route or it does not
 * fit (cap >= GW_ROUTE_MAX_TEMPLATE + GW_ROUTE_MAX_PARAMS * GW_ROUTE_MAX_VALUE
 * always fits). Pure: the fuzz target of the canonicaliser may call it. */
size_t gw_route_canonical_path(const gw_route_match *m, char *out, size_t cap);

/* Free what <r> points to (not <r> itself) and zero it. NULL-safe. */
void gw_route_free(gw_route *r);

#endif
