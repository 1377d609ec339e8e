/* teleservice: the technical identifier (ID_Teleservice) issued with the
 * habilitation must be sent, and be that habilitation's. Guarded routes only. */
#include <string.h>

#include "stages/stages.h"

static gw_verdict run(gw_access *a)
{
    if (a->route->scope == NULL)
        return GW_STAGE_NEXT;
    size_t n = 0;
    const char *v = gw_http_request_header(a->http, "ID_Teleservice", &n);
    if (v == NULL || n == 0)
        return gw_access_reject(a, GW_ERR_TELESERVICE_MISSING, NULL);
    const char *want = a->policy->id_teleservice;
    if (n != strlen(want) || memcmp(v, want, n) != 0)
        return gw_access_reject(a, GW_ERR_TELESERVICE_MISMATCH, NULL);
    return GW_STAGE_NEXT;
}

const gw_stage gw_stage_teleservice = {"teleservice", run, NULL};
