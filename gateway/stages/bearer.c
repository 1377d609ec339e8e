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
 * kill switch and the habilitation (rights stage) identify the caller. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/sha.h>

#include "token/cache.h"
#include "token/oauth.h"
#include "lib/util.h"
#include "stages/stages.h"

static gw_verdict invalid(gw_access *a, const char *reason)
{
    gw_access_resp_header(a, "WWW-Authenticate",
                          "Bearer realm=\"api-opale\", error=\"invalid_token\"");
    return gw_access_reject(a, GW_ERR_TOKEN_INVALID, reason);
}

static gw_verdict run(gw_access *a)
{
    if (a->route->scope == NULL)
        return GW_STAGE_NEXT;
    size_t n = 0;
    const char *h = gw_http_request_header(a->http, "Authorization", &n);
    if (h == NULL) {
        gw_access_resp_header(a, "WWW-Authenticate", "Bearer realm=\"api-opale\"");
        return gw_access_reject(a, GW_ERR_TOKEN_MISSING, NULL);
    }
    if (n < 8 || strncasecmp(h, "Bearer ", 7) != 0)
        return invalid(a, "bearer.scheme");
    /* two credentials are ambiguous: refuse rather than pick one */
    size_t count = 0;
    for (size_t i = 0; i < a->http->nheaders; i++)
        if (gw_strcaseeq(a->http->headers[i].name, a->http->headers[i].name_len, "Authorization"))
            count++;
    if (count > 1)
        return invalid(a, "bearer.ambiguous");
    const char *tok = h + 7;
    size_t tlen = n - 7;
    const gw_oauth *o = a->oauth;
    if (o == NULL)
        return invalid(a, "bearer.no_keys");

    unsigned char key[32];
    if (gw_sha256(tok, tlen, key) != 0)
        return invalid(a, "bearer.internal");
    int own = 0;
    gw_claims *cl = &a->claims;
    if (a->token_cache == NULL || !gw_token_cache_get(a->token_cache, key, a->now, cl, &own)) {
        gw_jws_rules jr = {.algs = o->algs, .nalgs = o->nalgs, .max_len = 8192};
        gw_jws jws;
        const char *why = gw_jws_verify(tok, tlen, o->sets, o->nsets, &jr, &jws);
        if (why != NULL)
            return invalid(a, why);
        own = jws.set == &o->own;
        gw_jwt_rules rr = {
            .now = a->now,
            .leeway_s = o->leeway_s,
            .issuer = jws.set->issuer,
            .audience = o->audience,
            .require_cnf = own,
        };
        why = gw_jwt_check(jws.payload, &rr, cl);
        gw_jws_clear(&jws);
        /* the signature held: the claims name the token in the journal even
         * when a claim check fails (unless the claims are malformed) */
        if (why == NULL || strcmp(why, "jwt.claims") != 0)
            a->token_identified = 1;
        if (why != NULL)
            return invalid(a, why);
        if (a->token_cache != NULL)
            gw_token_cache_put(a->token_cache, key, cl, own, cl->exp + o->leeway_s);
    }
    a->token_identified = 1;
    char x5t[48];
    if (cl->has_cnf && (gw_x5t_from_hex(a->cert_sha256, x5t) < 0 || strcmp(cl->cnf_x5t, x5t) != 0))
        return invalid(a, "bearer.cnf_mismatch");
    if (strcmp(cl->client_id, a->policy->client_id) != 0)
        return invalid(a, "bearer.client_mismatch");
    if (cl->habilitation[0] != '\0' && strcmp(cl->habilitation, a->policy->id) != 0)
        return invalid(a, "bearer.habilitation_mismatch");
    const char *kt = a->env == GW_ENV_PRODUCTION ? "PRODUCTION" : "SANDBOX";
    if (cl->keytype[0] != '\0' && strcmp(cl->keytype, kt) != 0)
        return invalid(a, "bearer.keytype");
    a->has_token = 1;
    if (!gw_claims_has_scope(cl, a->route->scope))
        return gw_access_reject(a, GW_ERR_SCOPE, "bearer.scope");
    return GW_STAGE_NEXT;
}

const gw_stage gw_stage_bearer = {"bearer", run, NULL};
