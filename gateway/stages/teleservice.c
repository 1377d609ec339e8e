/* teleservice: the technical identifier (ID_Teleservice) issued with the
 * habilitation must be sent, and be that habilitation's. On a public route
 * (no scope: etatSante) it may be left out, but one that is sent must still
 * be the habilitation's: a wrong identifier is never passed on.
 * Needs route (the scope) and mtls (the habilitation). */
#include <string.h>

#include "stages/stages.h"

static const char *const needs[] = {"route", "mtls", NULL};

static gw_verdict run(const gw_stage_call *c)
{
    size_t n = 0;
    const char *v = gw_http_request_header(c->req->http, "ID_Teleservice", &n);
    if (v == NULL && c->res->route.route->scope == NULL)
        return GW_STAGE_NEXT;
    if (v == NULL || n == 0)
        return gw_reply_reject(c->reply, GW_ERR_TELESERVICE_MISSING, NULL);
    const char *want = c->res->mtls.policy->id_teleservice;
    if (n != strlen(want) || memcmp(v, want, n) != 0)
        return gw_reply_reject(c->reply, GW_ERR_TELESERVICE_MISMATCH, NULL);
    return GW_STAGE_NEXT;
}

const gw_stage gw_stage_teleservice = {
    .name = "teleservice",
    .needs = needs,
    .out = -1,
    .run = run,
};
