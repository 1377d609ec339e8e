/* bearer: the OAuth2 access token (RFC 6750) of a guarded route.
 *
 * Signature and claims are verified once per token (then cached per worker
 * until exp); on every request the token must still be bound to this caller:
 * cnf.x5t#S256 = the presented certificate's thumbprint (RFC 8705 §3),
 * client_id = the consumer the certificate identified, habilitation = that
 * consumer's, keytype = the listener's environment, and the route's scope
 * must be one of the token's (the rights stage then checks the
 * habilitation's: a policy change narrows access even for live tokens).
 * A public route (no scope: etatSante) needs no token and any token sent
 * there is ignored (not verified, not journalled): the certificate, the
 * kill switch and the habilitation (rights stage) identify the caller.
 * Needs route (the scope) and mtls (the consumer). Its result: the token's
 * claims, whether it was identified and bound. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/sha.h>

#include "token/cache.h"
#include "token/oauth.h"
#include "lib/util.h"
#include "stages/stages.h"

static const char *const needs[] = {"route", "mtls", NULL};

static gw_verdict invalid(gw_reply *r, const char *reason)
{
    gw_reply_header(r, "WWW-Authenticate", "Bearer realm=\"api-opale\", error=\"invalid_token\"");
    return gw_reply_reject(r, GW_ERR_TOKEN_INVALID, reason);
}

static gw_verdict run(const gw_stage_call *c)
{
    gw_bearer_out *o = c->out;
    const gw_route *route = c->res->route.route;
    const gw_policy *policy = c->res->mtls.policy;
    const gw_http_request *http = c->req->http;
    gw_reply *reply = c->reply;
    if (route->scope == NULL)
        return GW_STAGE_NEXT;
    size_t n = 0;
    const char *h = gw_http_request_header(http, "Authorization", &n);
    if (h == NULL) {
        gw_reply_header(reply, "WWW-Authenticate", "Bearer realm=\"api-opale\"");
        return gw_reply_reject(reply, GW_ERR_TOKEN_MISSING, NULL);
    }
    if (n < 8 || strncasecmp(h, "Bearer ", 7) != 0)
        return invalid(reply, "bearer.scheme");
    /* two credentials are ambiguous: refuse rather than pick one */
    size_t count = 0;
    for (size_t i = 0; i < http->nheaders; i++)
        if (gw_strcaseeq(http->headers[i].name, http->headers[i].name_len, "Authorization"))
            count++;
    if (count > 1)
        return invalid(reply, "bearer.ambiguous");
    const char *tok = h + 7;
    size_t tlen = n - 7;
    const gw_oauth *oa = c->svc->oauth;
    if (oa == NULL)
        return invalid(reply, "bearer.no_keys");

    gw_token_cache *cache = c->svc->token_cache;
    unsigned char key[32];
    if (gw_token_cache_key(cache, tok, tlen, key) != 0)
        return invalid(reply, "bearer.internal");
    int own = 0;
    gw_claims *cl = &o->claims;
    time_t now = c->req->now;
    if (cache == NULL || !gw_token_cache_get(cache, key, now, cl, &own)) {
        gw_jws_rules jr = {.algs = oa->algs, .nalgs = oa->nalgs, .max_len = 8192};
        gw_jws jws;
        const char *why = gw_jws_verify(tok, tlen, oa->sets, oa->nsets, &jr, &jws);
        if (why != NULL)
            return invalid(reply, why);
        own = jws.set == &oa->own;
        gw_jwt_rules rr = {
            .now = now,
            .leeway_s = oa->leeway_s,
            .issuer = jws.set->issuer,
            .audience = oa->audience,
            .require_cnf = own,
        };
        why = gw_jwt_check(jws.payload, &rr, cl);
        gw_jws_clear(&jws);
        /* the signature held: the claims name the token in the journal even
         * when a claim check fails (unless the claims are malformed) */
        if (why == NULL || strcmp(why, "jwt.claims") != 0)
            o->token_identified = 1;
        if (why != NULL)
            return invalid(reply, why);
        if (cache != NULL)
            gw_token_cache_put(cache, key, cl, own, cl->exp + oa->leeway_s);
    }
    o->token_identified = 1;
    char x5t[48];
    if (cl->has_cnf &&
        (gw_x5t_from_hex(c->req->cert_sha256, x5t) < 0 || strcmp(cl->cnf_x5t, x5t) != 0))
        return invalid(reply, "bearer.cnf_mismatch");
    if (strcmp(cl->client_id, policy->client_id) != 0)
        return invalid(reply, "bearer.client_mismatch");
    if (cl->habilitation[0] != '\0' && strcmp(cl->habilitation, policy->id) != 0)
        return invalid(reply, "bearer.habilitation_mismatch");
    const char *kt = c->req->env == GW_ENV_PRODUCTION ? "PRODUCTION" : "SANDBOX";
    if (cl->keytype[0] != '\0' && strcmp(cl->keytype, kt) != 0)
        return invalid(reply, "bearer.keytype");
    o->has_token = 1;
    if (!gw_claims_has_scope(cl, route->scope))
        return gw_reply_reject(reply, GW_ERR_SCOPE, "bearer.scope");
    return GW_STAGE_NEXT;
}

const gw_stage gw_stage_bearer = {
    .name = "bearer",
    .needs = needs,
    .out = offsetof(gw_results, bearer),
    .run = run,
};
