/* habilitation: the habilitation the certificate names may be used today:
 * its state (suspended, revoked), its validity dates (in the gateway's time
 * zone) and its environment (the listener's), gw_policy_usable. On every
 * route, public ones included, and on /token. Needs mtls. */
#include "policy/usable.h"
#include "stages/stages.h"

static const char *const needs[] = {"mtls", NULL};

static gw_verdict run(const gw_stage_call *c)
{
    gw_err_id e = gw_policy_usable(c->res->mtls.policy, c->req->env,
                                   gw_local_yyyymmdd(c->svc->tz, c->req->now));
    return e == GW_OK ? GW_STAGE_NEXT : gw_reply_reject(c->reply, e, NULL);
}

const gw_stage gw_stage_habilitation = {
    .name = "habilitation",
    .needs = needs,
    .out = -1,
    .run = run,
};
