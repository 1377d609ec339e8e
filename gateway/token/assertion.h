/*
 * The backend assertion: what the gateway adds to every forwarded request so
 * that the backend can check it came through the gateway, for which
 * consumer, habilitation and scope, and that it is this very request.
 * Wire format and threat model: docs/oauth2.md ("Backend assertion").
 *
 * Two modes (oauth.assertion_mode):
 *  - grant_mac (default): X-JWT-Assertion carries a "grant", a JWS signed by
 *    the active key once per (consumer, habilitation, environment, scope,
 *    minute) and cached per worker, and X-Gateway-Request-MAC an
 *    HMAC-SHA256, under the key shared with the backend, of the request's
 *    X-Request-ID, method, target, a timestamp and the grant's SHA-256;
 *  - per_request: X-JWT-Assertion is a JWS signed for this request alone
 *    (gw_assertion_sign), no MAC.
 *
 * A cache belongs to one thread (a worker); nothing in it is shared, so no
 * lock. Its OpenSSL objects are fetched and set up once: per request, the
 * grant_mac mode does one HMAC with a reused context and no other crypto.
 */
#ifndef GW_TOKEN_ASSERTION_H
#define GW_TOKEN_ASSERTION_H

#include <stddef.h>
#include <time.h>

#include "conf/conf.h"
#include "token/jose.h"
#include "token/oauth.h"

#define GW_MAC_HEADER "X-Gateway-Request-MAC"
#define GW_MAC_VALUE_MAX 80 /* "v1;t=<up to 20 digits>;mac=<43>" + NUL */

typedef struct gw_assert_cache gw_assert_cache;

/* A cache for the caller's thread, for <o> (its MAC context and grants).
 * NULL on OOM. The caller owns it (gw_assert_cache_free). */
gw_assert_cache *gw_assert_cache_new(const gw_oauth *o);
void gw_assert_cache_free(gw_assert_cache *c);

/* The calling thread's cache for <o>: made on first use, rebuilt when <o>
 * is another load (o->gen), freed when the thread exits. NULL on OOM. */
gw_assert_cache *gw_assert_cache_thread(const gw_oauth *o);

/* Grants signed and reused by <c> since it was made (for tests and the
 * benchmark). */
void gw_assert_cache_stats(const gw_assert_cache *c, unsigned long *signed_, unsigned long *hits);

typedef struct gw_assertion_req {
    const char *client_id;    /* the consumer (X-Consumer-Id) */
    const char *habilitation; /* its habilitation id */
    gw_env env;               /* the listener's: keytype */
    const char *scope;        /* the token's scopes, space-separated; "" when none */
    const char *request_id;   /* X-Request-ID sent upstream */
    const char *method;       /* as on the upstream request line */
    const char *target;       /* the request-target sent upstream (canonical path?query) */
    size_t target_len;
    time_t now;
} gw_assertion_req;

typedef struct gw_assertion_hdrs {
    const char *assertion;      /* X-JWT-Assertion value */
    char mac[GW_MAC_VALUE_MAX]; /* X-Gateway-Request-MAC value; "" in per_request mode */
    char *owned;                /* per_request: the malloc'd JWS */
} gw_assertion_hdrs;

/* The headers for request <r> under <o>'s mode. In grant_mac mode the
 * grant comes from <c> (signed when missing or stale) and out->assertion
 * points into <c>: valid until the next call on <c>. 0, or -1 (signature
 * or MAC failure, OOM; <c> NULL in grant_mac mode). Release with
 * gw_assertion_hdrs_clear. */
int gw_assertion_build(const gw_oauth *o, gw_assert_cache *c, const gw_assertion_req *r,
                       gw_assertion_hdrs *out);
void gw_assertion_hdrs_clear(gw_assertion_hdrs *h);

/* ---- verification (the backend's side; reference for docs/oauth2.md) ---- */

typedef struct gw_assertion_rules {
    const gw_keyset *keys; /* the gateway's JWKS */
    const char *issuer;    /* NULL: not checked */
    const char *audience;  /* required "aud" */
    const unsigned char *mac_key;
    size_t mac_key_len;
    time_t now;
    long leeway_s; /* on the grant's exp and iat */
    long skew_s;   /* |now - t| allowed for the MAC's timestamp */
} gw_assertion_rules;

typedef struct gw_assertion_seen {
    const char *grant;       /* X-JWT-Assertion as received */
    const char *mac;         /* X-Gateway-Request-MAC as received */
    const char *request_id;  /* X-Request-ID */
    const char *consumer_id; /* X-Consumer-Id */
    const char *method;
    const char *target;
    size_t target_len;
} gw_assertion_seen;

/* Check a received request's grant and MAC. NULL when valid (<*t> is the
 * MAC's timestamp, for the replay memory the caller keeps), or a constant
 * reason: "grant.signature" (any gw_jws_verify failure), "grant.claims",
 * "grant.expired", "grant.consumer" (client_id is not X-Consumer-Id),
 * "mac.malformed", "mac.stale" (t outside now +- skew_s), "mac.mismatch". */
const char *gw_assertion_verify(const gw_assertion_rules *k, const gw_assertion_seen *s, time_t *t);

/* The MAC of <r> for grant hash <ghash> (base64url SHA-256 of the grant) at
 * time <t>, under <key>, into <out> as the header value. 0 or -1. Exposed for
 * the verifier and the tests; gw_assertion_build uses a cached context. */
int gw_assertion_mac(const unsigned char *key, size_t keylen, long long t, const char *request_id,
                     const char *method, const char *target, size_t target_len, const char *ghash,
                     char out[GW_MAC_VALUE_MAX]);

/* The shift, 0..59 s, of the 60-second window in which the grant of <r>'s
 * consumer, habilitation, environment and scope set is reused: windows
 * start when (now + shift) % 60 == 0 (docs/oauth2.md, "Grant"; spread per
 * key so that the grants of all consumers do not expire at once). */
unsigned gw_assertion_grant_shift(const gw_assertion_req *r);

#endif
