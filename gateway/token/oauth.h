/*
 * OAuth2 settings and keys: the "oauth" object of the gateway config.
 *
 *   "oauth": {
 *     "issuer": "https://localhost:8443",          iss of the tokens we issue (required)
 *     "audience": "api-opale",                     aud of access tokens
 *     "assertion_audience": "opale-backend",       aud of X-JWT-Assertion
 *     "token_lifetime_s": 3600, "assertion_lifetime_s": 60, "leeway_s": 60,
 *     "algorithms": ["ES256", "RS256", "PS256", "EdDSA"],   accepted on verify
 *     "signing_keys": [{"kid": "2026-11", "file": "pki/token-es256.key",
 *                       "alg": "ES256", "active": true}],   exactly one active
 *     "external_issuers": [{"issuer": "https://…", "jwks_file": "….json"}],
 *     "token_requests_per_minute": 20,             per client, at /token
 *     "token_cache_entries": 10000,                verified tokens per worker
 *     "assertion_mode": "grant_mac",               or "per_request" (docs/oauth2.md)
 *     "assertion_mac_key_file": "assertion-mac.key",   shared with the backend
 *     "assertion_cache_entries": 16384             grants kept per worker
 *   }
 */
#ifndef GW_OAUTH_H
#define GW_OAUTH_H

#include <stddef.h>

#include "conf/conf.h"
#include "token/jose.h"

#define GW_OAUTH_MAX_EXT 8
#define GW_MAC_KEY_MIN 32 /* bytes of the assertion MAC key */
#define GW_MAC_KEY_MAX 512

/* How the gateway asserts a forwarded request to the backend
 * (docs/oauth2.md, "Backend assertion"). */
typedef enum {
    GW_ASSERTION_GRANT_MAC = 0,   /* a cached grant JWS + a per-request HMAC (default) */
    GW_ASSERTION_PER_REQUEST = 1, /* one JWS signed per request (the former scheme) */
} gw_assertion_mode;

struct evp_mac_st;

typedef struct gw_oauth {
    char *issuer;
    char *audience;
    char *assertion_audience;
    unsigned token_lifetime_s;
    unsigned assertion_lifetime_s;
    long leeway_s;
    gw_alg algs[4];
    size_t nalgs;
    gw_keyset own;        /* our keys; own.issuer == issuer */
    const gw_jwk *active; /* signs tokens and assertions */
    gw_keyset ext[GW_OAUTH_MAX_EXT];
    size_t next;
    const gw_keyset *sets[1 + GW_OAUTH_MAX_EXT]; /* own first */
    size_t nsets;
    unsigned token_rate_per_minute;
    size_t cache_entries;
    char *jwks_json; /* our public keys, served at /.well-known/jwks.json */
    gw_assertion_mode assertion_mode;
    unsigned char *mac_key; /* grant_mac: the key shared with the backend (never logged) */
    size_t mac_key_len;
    struct evp_mac_st *hmac; /* HMAC, fetched once at load (grant_mac) */
    size_t assertion_cache_entries;
    unsigned long gen; /* unique per load: a worker's grant cache follows it */
} gw_oauth;

/* Parse and load <c->oauth>; errors "FILE: oauth.…: message" into <errs>.
 * NULL on error (or when the section is missing: "oauth: required"). */
gw_oauth *gw_oauth_load(const gw_conf *c, gw_errlist *errs);
void gw_oauth_free(gw_oauth *o);

#endif
