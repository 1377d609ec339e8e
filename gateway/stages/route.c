/* route: the request must name a route of the table (404, or 405 with Allow).
 * It runs after mtls so that an unknown certificate learns nothing of the
 * route table. It then parses the query once against the route's declared
 * parameters (lib/query.h) and builds the canonical target the backend will
 * get: the route's template with the matched values, and the re-serialised
 * query. Any undeclared, repeated, differently cased, percent-encoded or
 * malformed parameter is refused here (910214; 910211 for a year).
 * Needs nothing (it runs after mtls by choice: see pipeline.c); its result
 * is the route, the match, the parsed query and the canonical target. */
#include <string.h>

#include "stages/stages.h"

static gw_verdict query_refused(gw_reply *reply, const gw_query *q)
{
    const char *reason = gw_query_err_reason(q->err);
    int value_err = q->err == GW_QUERY_MISSING || q->err == GW_QUERY_EMPTY ||
                    q->err == GW_QUERY_BAD_VALUE || q->err == GW_QUERY_REPEATED;
    if (value_err && q->err_decl >= 0 && (size_t)q->err_decl < q->ndecls &&
        q->decls[q->err_decl].syntax == GW_QSYN_YEAR)
        return gw_reply_reject(reply, GW_ERR_YEAR_INVALID, reason);
    return gw_reply_reject(reply, GW_ERR_QUERY_INVALID, reason);
}

static gw_verdict run(const gw_stage_call *c)
{
    gw_route_out *o = c->out;
    const gw_http_request *http = c->req->http;
    const gw_route_table *routes = c->svc->routes;
    gw_route_match *m = &o->match;
    gw_route_result r = gw_route_match_path(routes, http->method, http->path, http->path_len, m);
    if (r == GW_ROUTE_NOT_FOUND)
        return gw_reply_reject(c->reply, GW_ERR_NOT_FOUND, NULL);
    if (r == GW_ROUTE_METHOD_NOT_ALLOWED) {
        gw_route_allowed(routes, http->path, http->path_len, o->allow, sizeof(o->allow));
        gw_reply_header(c->reply, "Allow", o->allow);
        return gw_reply_reject(c->reply, GW_ERR_METHOD_NOT_ALLOWED, NULL);
    }
    o->route = m->route;
    size_t n = gw_route_canonical_path(m, o->target, sizeof(o->target));
    if (n == 0)
        return gw_reply_reject(c->reply, GW_ERR_INTERNAL, "route.canonical_path");
    o->path_len = n;
    o->target_len = n;
    if (gw_query_parse(m->route->query, m->route->nquery, http->query, http->query_len,
                       &o->query) != GW_QUERY_OK)
        return query_refused(c->reply, &o->query);
    o->query_ok = 1;
    if (o->query.canonical_len > 0) {
        /* fits: GW_ROUTE_TARGET_MAX counts the longest path and query */
        o->target[n++] = '?';
        memcpy(o->target + n, o->query.canonical, o->query.canonical_len + 1);
        n += o->query.canonical_len;
    }
    o->target_len = n;
    return GW_STAGE_NEXT;
}

const gw_stage gw_stage_route = {
    .name = "route",
    .out = offsetof(gw_results, route),
    .run = run,
};
