/* route: the request must name a route of the table (404, or 405 with Allow).
 * It runs after mtls so that an unknown certificate learns nothing of the
 * route table. It then parses the query once against the route's declared
 * parameters (lib/query.h) and builds the canonical target the backend will
 * get: the route's template with the matched values, and the re-serialised
 * query. Any undeclared, repeated, differently cased, percent-encoded or
 * malformed parameter is refused here (910214; 910211 for a year). */
#include <string.h>

#include "stages/stages.h"

static gw_verdict query_refused(gw_access *a)
{
    const gw_query *q = &a->query;
    const char *reason = gw_query_err_reason(q->err);
    int value_err = q->err == GW_QUERY_MISSING || q->err == GW_QUERY_EMPTY ||
                    q->err == GW_QUERY_BAD_VALUE || q->err == GW_QUERY_REPEATED;
    if (value_err && q->err_decl >= 0 && (size_t)q->err_decl < q->ndecls &&
        q->decls[q->err_decl].syntax == GW_QSYN_YEAR)
        return gw_access_reject(a, GW_ERR_YEAR_INVALID, reason);
    return gw_access_reject(a, GW_ERR_QUERY_INVALID, reason);
}

static gw_verdict run(gw_access *a)
{
    gw_route_match *m = a->match_storage;
    gw_route_result r =
        gw_route_match_path(a->routes, a->http->method, a->http->path, a->http->path_len, m);
    if (r == GW_ROUTE_NOT_FOUND)
        return gw_access_reject(a, GW_ERR_NOT_FOUND, NULL);
    if (r == GW_ROUTE_METHOD_NOT_ALLOWED) {
        gw_route_allowed(a->routes, a->http->path, a->http->path_len, a->allow, sizeof(a->allow));
        gw_access_resp_header(a, "Allow", a->allow);
        return gw_access_reject(a, GW_ERR_METHOD_NOT_ALLOWED, NULL);
    }
    a->route = m->route;
    a->match = m;
    size_t n = gw_route_canonical_path(m, a->target, sizeof(a->target));
    if (n == 0)
        return gw_access_reject(a, GW_ERR_INTERNAL, "route.canonical_path");
    a->path_len = n;
    a->target_len = n;
    if (gw_query_parse(m->route->query, m->route->nquery, a->http->query, a->http->query_len,
                       &a->query) != GW_QUERY_OK)
        return query_refused(a);
    a->query_ok = 1;
    if (a->query.canonical_len > 0) {
        /* fits: GW_ROUTE_TARGET_MAX counts the longest path and query */
        a->target[n++] = '?';
        memcpy(a->target + n, a->query.canonical, a->query.canonical_len + 1);
        n += a->query.canonical_len;
    }
    a->target_len = n;
    return GW_STAGE_NEXT;
}

const gw_stage gw_stage_route = {"route", run, NULL};
