/* rights: the consumer's rights on the requested data for the period
 * concerned (CGU §4.5): the route's scope, the year (year-bound routes),
 * the SIREN. A public route (no scope: etatSante) has no data rights to
 * check. Needs route and mtls. Its result: the scope, the SIREN and the
 * year it checked. */
#include <stdio.h>
#include <string.h>

#include "stages/stages.h"

static const char *const needs[] = {"route", "mtls", NULL};

static gw_verdict run(const gw_stage_call *c)
{
    gw_rights_out *o = c->out;
    const gw_policy *p = c->res->mtls.policy;
    const gw_route_out *ro = &c->res->route;
    if (ro->route->scope == NULL)
        return GW_STAGE_NEXT; /* a public route: no data */
    o->scope = ro->route->scope;
    if (!gw_policy_has_scope(p, ro->route->scope))
        return gw_reply_reject(c->reply, GW_ERR_SCOPE, NULL);
    /* the year parsed and checked once by the route stage (lib/query.h):
     * the same value is forwarded and journalled */
    size_t yl = 0;
    const char *yv = ro->query_ok ? gw_query_get(&ro->query, "annee", &yl) : NULL;
    if (ro->route->year_bound && yv == NULL)
        return gw_reply_reject(c->reply, GW_ERR_YEAR_INVALID, "query.missing");
    if (yv != NULL && yl != 4) /* the year syntax guarantees 4 digits: defence in depth */
        return gw_reply_reject(c->reply, GW_ERR_YEAR_INVALID, "query.bad_value");
    if (yv != NULL) {
        memcpy(o->annee, yv, 4);
        o->annee[4] = '\0';
        int y = (yv[0] - '0') * 1000 + (yv[1] - '0') * 100 + (yv[2] - '0') * 10 + (yv[3] - '0');
        if (y < p->year_from || y > p->year_to)
            return gw_reply_reject(c->reply, GW_ERR_YEAR_NOT_GRANTED, NULL);
    }
    size_t n = 0;
    const char *siren = gw_route_param(&ro->match, "siren", &n);
    if (siren != NULL) {
        if (!gw_siren_valid(siren, n))
            return gw_reply_reject(c->reply, GW_ERR_SIREN_INVALID, NULL);
        memcpy(o->siren, siren, 9);
        o->siren[9] = '\0';
    }
    return GW_STAGE_NEXT;
}

const gw_stage gw_stage_rights = {
    .name = "rights",
    .needs = needs,
    .out = offsetof(gw_results, rights),
    .run = run,
};
