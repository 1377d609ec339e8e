/* token: POST /token (token/endpoint.c), last of the token list, after the
 * stages that identify the caller on every route (mtls, ipallow,
 * killswitch, habilitation) and the journal gate: the endpoint checks what
 * is its own (the form, client_id, client_secret_basic, the rate, the
 * scopes) and answers. Its result is that answer, any status; the request
 * module sends it. A refusal by an earlier stage of the list is answered in
 * the OAuth form too (gw_token_refused). Needs mtls. */
#include <stdlib.h>

#include "lib/util.h"
#include "stages/stages.h"

static const char *const needs[] = {"mtls", NULL};

static gw_verdict run(const gw_stage_call *c)
{
    gw_token_stage_out *o = c->out;
    if (c->svc->oauth == NULL)
        return gw_reply_reject(c->reply, GW_ERR_INTERNAL, "token.no_keys");
    gw_token_in in = {
        .http = c->req->http,
        .policy = c->res->mtls.policy,
        .cert_sha256 = c->req->has_cert ? c->req->cert_sha256 : NULL,
        .env = c->req->env,
        .now = c->req->now,
        .now_ms = c->req->now_ms ? c->req->now_ms : gw_now_ms(),
        .rate = c->svc->token_rate,
    };
    o->reply = calloc(1, sizeof(*o->reply));
    if (o->reply == NULL)
        return gw_reply_reject(c->reply, GW_ERR_INTERNAL, "token.oom");
    gw_token_endpoint(c->svc->oauth, &in, o->reply);
    return GW_STAGE_NEXT;
}

static void done(const gw_stage_call *c)
{
    gw_token_stage_out *o = c->out;
    if (o->reply != NULL)
        free(o->reply->body);
    free(o->reply);
    o->reply = NULL;
}

const gw_stage gw_stage_token = {
    .name = "token",
    .needs = needs,
    .out = offsetof(gw_results, token),
    .run = run,
    .done = done,
};
