/* rights: the consumer's rights on the requested data for the period
 * concerned (CGU §4.5), checked in this order: habilitation state, the
 * operator's kill switch, validity dates, environment, the route's scope,
 * the year (year-bound routes), the SIREN. On a public route (no scope:
 * etatSante) the habilitation's state, the kill switch, the dates and the
 * environment apply too; the data rights (scope, year, SIREN) do not. */
#include <stdio.h>
#include <string.h>

#include "stages/confs.h"
#include "stages/stages.h"

static int today(const gw_access *a)
{
    return gw_local_yyyymmdd(a->confs ? a->confs->tz : GW_TZ_PARIS, a->now);
}

static gw_verdict run(gw_access *a)
{
    const gw_policy *p = a->policy;
    if (p->state == GW_HAB_SUSPENDED)
        return gw_access_reject(a, GW_ERR_HAB_SUSPENDED, NULL);
    if (p->state == GW_HAB_REVOKED)
        return gw_access_reject(a, GW_ERR_HAB_REVOKED, NULL);
    if (a->suspensions != NULL && gw_suspensions_is_suspended(a->suspensions, p->client_id))
        return gw_access_reject(a, GW_ERR_CONSUMER_SUSPENDED, NULL);
    int d = today(a);
    if (d < p->valid_from)
        return gw_access_reject(a, GW_ERR_HAB_NOT_YET_VALID, NULL);
    if (d > p->valid_until)
        return gw_access_reject(a, GW_ERR_HAB_EXPIRED, NULL);
    if (p->env != a->env)
        return gw_access_reject(a, GW_ERR_ENVIRONMENT, NULL);
    if (a->route->scope == NULL)
        return GW_STAGE_NEXT; /* a public route: the identity checks above only */
    a->scope = a->route->scope;
    if (!gw_policy_has_scope(p, a->route->scope))
        return gw_access_reject(a, GW_ERR_SCOPE, NULL);
    /* the year parsed and checked once by the route stage (lib/query.h):
     * the same value is forwarded and journalled */
    size_t yl = 0;
    const char *yv = a->query_ok ? gw_query_get(&a->query, "annee", &yl) : NULL;
    if (a->route->year_bound && yv == NULL)
        return gw_access_reject(a, GW_ERR_YEAR_INVALID, "query.missing");
    if (yv != NULL && yl != 4) /* the year syntax guarantees 4 digits: defence in depth */
        return gw_access_reject(a, GW_ERR_YEAR_INVALID, "query.bad_value");
    if (yv != NULL && yl == 4) {
        memcpy(a->annee, yv, 5);
        int y = (a->annee[0] - '0') * 1000 + (a->annee[1] - '0') * 100 + (a->annee[2] - '0') * 10 +
                (a->annee[3] - '0');
        if (y < p->year_from || y > p->year_to)
            return gw_access_reject(a, GW_ERR_YEAR_NOT_GRANTED, NULL);
    }
    size_t n = 0;
    const char *siren = gw_route_param(a->match, "siren", &n);
    if (siren != NULL) {
        if (!gw_siren_valid(siren, n))
            return gw_access_reject(a, GW_ERR_SIREN_INVALID, NULL);
        memcpy(a->siren, siren, 9);
        a->siren[9] = '\0';
    }
    return GW_STAGE_NEXT;
}

const gw_stage gw_stage_rights = {"rights", run, NULL};
