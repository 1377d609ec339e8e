/* The access-control chain of CGU §4, in order. This array is the one place
 * that says which controls run and in which order. */
#include "stages/stages.h"

const gw_stage *const gw_pipeline[] = {
    &gw_stage_mtls,        /* 1. the client certificate names a habilitation */
    &gw_stage_route,       /*    the route exists (404/405) */
    &gw_stage_maintenance, /*    scheduled slot: 503 + Retry-After */
    &gw_stage_ipallow,     /* 2. the caller's IP address */
    &gw_stage_correlation, /*    X-Correlation-ID (DGFIP convention) */
    &gw_stage_teleservice, /* 3. the caller's technical identifier */
    &gw_stage_bearer,      /* 4. the consumer's identity (OAuth2, bound to the cert) */
    &gw_stage_rights,      /* 5. rights on the data for the period */
    &gw_stage_quota,       /*    50/min sandbox, 500/min production (CGU §9.2) */
};
const size_t gw_pipeline_len = sizeof(gw_pipeline) / sizeof(gw_pipeline[0]);

gw_verdict gw_pipeline_run(gw_access *a)
{
    while (a->next < gw_pipeline_len) {
        const gw_stage *s = gw_pipeline[a->next];
        if (a->route_only && s != &gw_stage_route) {
            a->next++;
            continue;
        }
        if (a->ran <= a->next)
            a->ran = a->next + 1;
        gw_verdict v = s->run(a);
        if (v == GW_STAGE_SUSPEND)
            return v;
        a->next++;
        if (v == GW_STAGE_REJECT)
            return v;
    }
    return GW_STAGE_NEXT;
}

void gw_pipeline_resume(gw_access *a, gw_verdict v)
{
    a->next++;
    if (v == GW_STAGE_NEXT)
        v = gw_pipeline_run(a);
    if (v != GW_STAGE_SUSPEND && a->on_done != NULL)
        a->on_done(a, v);
}

void gw_pipeline_done(gw_access *a)
{
    for (size_t i = 0; i < a->ran && i < gw_pipeline_len; i++)
        if (gw_pipeline[i]->done != NULL)
            gw_pipeline[i]->done(a);
    a->ran = 0;
}
