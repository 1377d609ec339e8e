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

#include "lib/errors.h"
#include "lib/http1.h"
#include "policy/policy.h"
#include "quota/memlog.h"
#include "token/oauth.h"

/* What the stages before established (gateway/stages/, the token list):
 * the certificate names <policy>, the caller's address is allowed, the
 * consumer is not cut off, the habilitation is usable today. The endpoint
 * checks only what is its own: the form, client_id, client_secret_basic,
 * the rate, the scopes. */
typedef struct gw_token_in {
    const gw_http_request *http;
    const gw_policy *policy; /* found by the certificate (NULL: invalid_client) */
    const char *cert_sha256; /* hex */
    gw_env env;              /* the listener's */
    time_t now;
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

/* The OAuth answer (RFC 6749 §5.2) to a request an earlier stage refused
 * with <err>: invalid_client (the certificate, the address), invalid_grant
 * (the kill switch, the habilitation). 0, or -1 when <err> has no OAuth
 * form (the caller answers with the gateway's own error). */
int gw_token_refused(gw_err_id err, gw_token_out *out);

/* Sign the X-JWT-Assertion for one forwarded request (oauth.assertion_mode
 * "per_request"; the default mode is token/assertion.h's): iss, aud
 * (assertion_audience), iat, exp (+assertion_lifetime_s), jti = request_id,
 * sub/client_id, habilitation, scope (<scope>, may be ""), keytype,
 * request_id. malloc'd compact JWS, NULL on failure. */
char *gw_assertion_sign(const gw_oauth *o, const gw_policy *p, gw_env env, const char *scope,
                        const char *request_id, time_t now);
/* The same from the consumer's client_id and habilitation id. */
char *gw_assertion_sign_ids(const gw_oauth *o, const char *client_id, const char *habilitation,
                            gw_env env, const char *scope, const char *request_id, time_t now);

#endif
