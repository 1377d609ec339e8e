/*
 * JOSE for the gateway: strict base64url, JWK/JWKS, JWS compact sign and
 * verify (ES256, RS256, PS256, EdDSA/Ed25519), and JWT claim checks. All
 * crypto goes through OpenSSL 3 EVP. No I/O, no event loop, no policy: the
 * bearer stage and the token endpoint build on this.
 *
 * Attack surface decisions (docs/oauth2.md has the table):
 *  - the algorithm comes from the header but must be in the caller's
 *    allowlist AND be the one algorithm bound to the key found by "kid";
 *    "none" and every HMAC algorithm are unknown here, so always refused;
 *  - keys are found by "kid" only, in the caller's key sets; "jwk", "jku",
 *    "x5u", "x5c" header parameters are never used as key sources;
 *  - any "crit" header parameter is refused (no extension is understood);
 *  - base64url must be canonical: the URL-safe alphabet, no padding, no
 *    whitespace, unused trailing bits zero; exactly three segments;
 *  - header and payload must be JSON objects without duplicate keys;
 *  - sizes are bounded (whole token, header).
 */
#ifndef GW_JOSE_H
#define GW_JOSE_H

#include <stddef.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

typedef enum {
    GW_ALG_INVALID = 0,
    GW_ALG_ES256 = 1, /* ECDSA P-256 + SHA-256, signature R||S (64 bytes) */
    GW_ALG_RS256 = 2, /* RSASSA-PKCS1-v1_5 + SHA-256, RSA >= 2048 bits */
    GW_ALG_PS256 = 3, /* RSASSA-PSS + SHA-256, MGF1-SHA-256, salt 32 */
    GW_ALG_EDDSA = 4, /* Ed25519 */
} gw_alg;

/* "ES256", "RS256", "PS256", "EdDSA" (exact case) -> alg; else INVALID. */
gw_alg gw_alg_parse(const char *s);
const char *gw_alg_name(gw_alg a);

/* ---- base64url (RFC 7515 §2, no padding) ---- */

/* malloc'd NUL-terminated text, NULL on OOM. */
char *gw_b64url_encode(const unsigned char *in, size_t n);
/* Strict decode of <in>/<n>. Returns 0 and a malloc'd <*out> (NUL-terminated
 * for convenience, <*outlen> excludes it) or -1 (bad character, padding,
 * impossible length, non-zero unused bits, OOM). */
int gw_b64url_decode(const char *in, size_t n, unsigned char **out, size_t *outlen);

/* ---- keys ---- */

typedef struct gw_jwk {
    char kid[65];   /* 1..64 printable ASCII, no space, no '"' or '\\' */
    gw_alg alg;     /* the one algorithm this key is used with */
    EVP_PKEY *pkey; /* owned */
    int can_sign;   /* a private key */
} gw_jwk;

typedef struct gw_keyset {
    char *issuer; /* the "iss" its tokens must carry (NULL for none) */
    gw_jwk *keys;
    size_t n;
} gw_keyset;

/* Load a PEM key file (private: can sign; or public) for <alg> with <kid>.
 * The key type must fit <alg> (P-256 for ES256, RSA >= 2048 for RS256/PS256,
 * Ed25519 for EdDSA). Returns 0, or -1 with a malloc'd <*err> (constant-ish
 * message without the path, e.g. "not a P-256 key (ES256)"). */
int gw_jwk_load_pem(gw_jwk *k, const char *path, const char *kid, gw_alg alg, char **err);

/* Parse a JWKS document (RFC 7517) of public keys. Accepted: kty "EC" with
 * crv "P-256" (ES256), "RSA" (RS256 unless "alg" says PS256; >= 2048 bits),
 * "OKP" crv "Ed25519" (EdDSA); "kid" required and unique; "alg", when
 * present, must match; "use", when present, must be "sig"; keys with private
 * members ("d", "p", ...) are refused. Returns 0 or -1 with <*err>. */
int gw_jwks_parse(const char *text, size_t len, gw_keyset *out, char **err);

/* The public keys of <ks> as a JWKS JSON text (kty, crv/x/y, n/e, kid, use
 * "sig", alg). malloc'd; NULL on OOM. */
char *gw_jwks_export(const gw_keyset *ks);

const gw_jwk *gw_keyset_find(const gw_keyset *ks, const char *kid);
void gw_jwk_clear(gw_jwk *k);
void gw_keyset_clear(gw_keyset *ks); /* frees issuer, keys, their pkeys */

/* RFC 7638 thumbprint is not needed; SHA-256 helpers are: */
/* base64url(SHA-256(<der>)) into <out> (43 chars + NUL), for cnf.x5t#S256. */
void gw_x5t_s256(const unsigned char *der, size_t n, char out[48]);
/* The same from the certificate's fingerprint as 64 lowercase hex chars (the
 * form the TLS layer keeps): base64url of those 32 bytes. 0, or -1 when
 * <hex> is NULL or not 64 lowercase hex chars. */
int gw_x5t_from_hex(const char *hex, char out[48]);

/* ---- JWS compact ---- */

/* Sign <payload> (a JSON object; serialised compactly) with <key>: header
 * {"alg":…,"typ":<typ>,"kid":…}. Returns a malloc'd token or NULL. */
char *gw_jws_sign(const gw_jwk *key, const char *typ, const json_t *payload);

typedef struct gw_jws_rules {
    const gw_alg *algs; /* allowlist */
    size_t nalgs;
    size_t max_len;   /* whole token; 0 = 8192 */
    int allow_high_s; /* ES256: accept s > n/2 too (0: refused, the default);
                       * only for checking journals signed before signatures
                       * were normalised to low-S, never for tokens */
} gw_jws_rules;

typedef struct gw_jws {
    json_t *header;  /* owned */
    json_t *payload; /* owned */
    gw_alg alg;
    const gw_jwk *key;    /* the key that verified it (in one of the sets) */
    const gw_keyset *set; /* the set the key came from */
} gw_jws;

/* Verify <token>: parse strictly, find the key by "kid" in <sets> (first
 * match wins; a kid present in two sets is the caller's configuration error),
 * check alg allowlist + key binding, check the signature. Returns NULL and
 * fills <out> (caller calls gw_jws_clear), or a constant reason:
 *   "jws.too_large", "jws.malformed" (segments, base64url, JSON, not an
 *   object, duplicate key), "jws.alg" (missing/unknown/not allowed, incl.
 *   "none" and HS*), "jws.kid" (missing or not a string), "jws.unknown_kid",
 *   "jws.alg_key_mismatch", "jws.crit", "jws.signature". */
const char *gw_jws_verify(const char *token, size_t len, const gw_keyset *const *sets, size_t nsets,
                          const gw_jws_rules *rules, gw_jws *out);
void gw_jws_clear(gw_jws *j);

/* ---- JWT claims (RFC 7519, RFC 9068) ---- */

typedef struct gw_jwt_rules {
    time_t now;
    long leeway_s;        /* for exp, nbf, iat */
    const char *issuer;   /* required "iss" (the key set's issuer) */
    const char *audience; /* must be "aud" or one of its array elements */
    int require_cnf;      /* tokens of this gateway must carry cnf.x5t#S256 */
} gw_jwt_rules;

#define GW_JWT_MAX_SCOPES 32

typedef struct gw_claims {
    char iss[256];
    char sub[129];
    char client_id[129];
    char jti[129];
    char habilitation[32];
    char keytype[16];
    char scope[1024];                /* space-separated as in the token */
    char *scopes[GW_JWT_MAX_SCOPES]; /* point into a private copy */
    size_t nscopes;
    char scope_buf[1024];
    time_t exp, nbf, iat;
    int has_cnf;
    char cnf_x5t[48]; /* base64url SHA-256 */
} gw_claims;

/* Check the claims of a verified token. Returns NULL and fills <out>, or:
 *   "jwt.claims" (a claim of the wrong type, too long, or missing: exp, iat,
 *   iss, aud, client_id, jti, scope are required; nbf optional), "jwt.iss",
 *   "jwt.aud", "jwt.expired" (now > exp + leeway), "jwt.not_yet_valid"
 *   (now + leeway < nbf), "jwt.iat_future" (iat > now + leeway),
 *   "jwt.cnf" (required and missing, or malformed). */
const char *gw_jwt_check(const json_t *payload, const gw_jwt_rules *r, gw_claims *out);

/* 1 when <scope> is one of <c>'s scopes. */
int gw_claims_has_scope(const gw_claims *c, const char *scope);

/* ---- additions (not in the first contract; jose.c) ---- */

/* The JWS signature (RFC 7515 §5.1) of the signing input <in>/<n> with
 * <key> (must be able to sign): R||S (64 bytes) for ES256, the modulus
 * length for RS256/PS256, 64 bytes for EdDSA. 0 and a malloc'd <*sig>, or
 * -1. For known-answer tests and the benchmark; gw_jws_sign uses it. */
int gw_jws_sign_input(const gw_jwk *key, const unsigned char *in, size_t n, unsigned char **sig,
                      size_t *siglen);
/* 1 when <sig>/<siglen> (JWS form, exact length required) is <key>'s
 * signature of <in>/<n> under key->alg; else 0. An ES256 signature with a
 * high S (s > n/2, the malleable twin of a low-S one) is refused: 0.
 * gw_jws_verify uses it. */
int gw_jws_check_sig(const gw_jwk *key, const unsigned char *in, size_t n, const unsigned char *sig,
                     size_t siglen);

#endif
