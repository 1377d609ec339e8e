/* route: the request must name a route of the table (404, or 405 with Allow).
 * It runs after mtls so that an unknown certificate learns nothing of the
 * route table. */
#include "stages/stages.h"

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
    return GW_STAGE_NEXT;
}

const gw_stage gw_stage_route = {"route", run, NULL};
