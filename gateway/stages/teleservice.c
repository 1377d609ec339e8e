/* teleservice: the technical identifier (ID_Teleservice) issued with the
 * habilitation must be sent, and be that habilitation's. On a public route
 * (no scope: etatSante) it may be left out, but one that is sent must still
 * be the habilitation's: a wrong identifier is never passed on. */
#include <string.h>

#include "stages/stages.h"

static gw_verdict run(gw_access *a)
{
    size_t n = 0;
    const char *v = gw_http_request_header(a->http, "ID_Teleservice", &n);
    if (v == NULL && a->route->scope == NULL)
        return GW_STAGE_NEXT;
    if (v == NULL || n == 0)
        return gw_access_reject(a, GW_ERR_TELESERVICE_MISSING, NULL);
    const char *want = a->policy->id_teleservice;
    if (n != strlen(want) || memcmp(v, want, n) != 0)
        return gw_access_reject(a, GW_ERR_TELESERVICE_MISMATCH, NULL);
    return GW_STAGE_NEXT;
}

const gw_stage gw_stage_teleservice = {"teleservice", run, NULL};
