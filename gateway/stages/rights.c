/* rights: the consumer's rights on the requested data for the period
 * concerned (CGU §4.5), checked in this order: habilitation state, the
 * operator's kill switch, validity dates, environment, the route's scope,
 * the year (year-bound routes), the SIREN. Guarded routes only. */
#include <stdio.h>
#include <string.h>

#include "stages/confs.h"
#include "stages/stages.h"

/* annee from the query string: "" when absent; -1 when present but not
 * exactly 4 digits (or repeated). */
int gw_query_annee(const gw_http_request *r, char out[5])
{
    out[0] = '\0';
    if (r->query == NULL)
        return 0;
    const char *p = r->query, *end = r->query + r->query_len;
    int found = 0;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        if (e - p >= 6 && memcmp(p, "annee=", 6) == 0) {
            if (found)
                return -1;
            found = 1;
            size_t n = (size_t)(e - p - 6);
            if (n != 4)
                return -1;
            for (size_t i = 0; i < 4; i++)
                if (p[6 + i] < '0' || p[6 + i] > '9')
                    return -1;
            memcpy(out, p + 6, 4);
            out[4] = '\0';
        }
        p = e + 1;
    }
    return found;
}

static int today(const gw_access *a)
{
    gw_tz tz = a->confs ? a->confs->tz : GW_TZ_PARIS;
    time_t local = a->now + gw_tz_offset(tz, a->now);
    struct tm tm;
    gmtime_r(&local, &tm);
    return (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
}

static gw_verdict run(gw_access *a)
{
    const gw_policy *p = a->policy;
    if (a->route->scope == NULL)
        return GW_STAGE_NEXT;
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
    a->scope = a->route->scope;
    if (!gw_policy_has_scope(p, a->route->scope))
        return gw_access_reject(a, GW_ERR_SCOPE, NULL);
    if (a->route->year_bound) {
        int r = gw_query_annee(a->http, a->annee);
        if (r <= 0)
            return gw_access_reject(a, GW_ERR_YEAR_INVALID, r == 0 ? "rights.missing_year" : NULL);
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
