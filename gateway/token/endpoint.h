/*
 * POST /token: OAuth 2.0 client_credentials (RFC 6749 §4.4) with client
 * authentication by the TLS client certificate (RFC 8705 tls_client_auth),
 * plus client_secret_basic on top when the policy holds a secret hash.
 * Issues RFC 9068 JWT access tokens bound to the certificate (cnf.x5t#S256).
 * Also the backend assertion (X-JWT-Assertion) the gateway signs per request.
 * No I/O: the caller gives what the connection knows and sends the answer.
 */
#ifndef GW_TOKEN_ENDPOINT_H
#define GW_TOKEN_ENDPOINT_H

#include <time.h>

#include "lib/http1.h"
#include "policy/policy.h"
#include "quota/memlog.h"
#include "token/oauth.h"

typedef struct gw_token_in {
    const gw_http_request *http;
    const gw_policy *policy; /* found by the certificate; NULL when unknown */
    const char *cert_sha256; /* hex */
    int ip_allowed;          /* the caller's address is in the policy's allowlist */
    int killswitch;          /* the operator suspended this consumer */
    gw_env env;              /* the listener's */
    time_t now;
    int today;       /* yyyymmdd in the gateway's time zone */
    uint64_t now_ms; /* monotonic, for the rate limit */
    gw_memlog *rate; /* per-client rate of token requests (shared) */
} gw_token_in;

typedef struct gw_token_out {
    int status;                   /* 200, 400, 401, 429 */
    char *body;                   /* malloc'd JSON */
    const char *reason;           /* journal reason: "token.issued", "token.invalid_client", ... */
    const char *www_authenticate; /* for 401 after Basic */
    char retry_after[16];         /* for 429 */
    char jti[37];                 /* of the issued token */
    char scope[1024];             /* granted */
} gw_token_out;

void gw_token_endpoint(const gw_oauth *o, const gw_token_in *in, gw_token_out *out);

/* Sign the X-JWT-Assertion for one forwarded request: iss, aud
 * (assertion_audience), iat, exp (+assertion_lifetime_s), jti = request_id,
 * sub/client_id, habilitation, scope (<scope>, may be ""), keytype,
 * request_id. malloc'd compact JWS, NULL on failure. */
char *gw_assertion_sign(const gw_oauth *o, const gw_policy *p, gw_env env, const char *scope,
                        const char *request_id, time_t now);

#endif
