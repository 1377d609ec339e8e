/*
 * The backend assertion's verifier (docs/mock-opale.md, "Backend assertion").
 *
 * Verifies the compact JWS the gateway sends in X-JWT-Assertion against the
 * keys of a JWKS file, with OpenSSL 3 (EVP) and jansson only. With a MAC key
 * (--mac-key), the assertion is the gateway's cached "grant" and each
 * request must also carry X-Gateway-Request-MAC, an HMAC-SHA256 of its
 * X-Request-ID, method, target, timestamp and the grant's hash; a request id
 * seen before is refused (replay). It knows
 * nothing of HTTP or of the rest of the mock: the caller hands it the values
 * of the headers it binds, so it can be unit-tested without a server
 * (tests/unit/mock/test_assertion.c) and replaced on its own.
 */
#ifndef MOCK_ASSERTION_H
#define MOCK_ASSERTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#define MOCK_MAX_JWKS (1024 * 1024) /* bytes of the --jwks file */
#define MOCK_MAX_ASSERTION 16384    /* bytes of an X-JWT-Assertion */
#define MOCK_MAX_KID 256
#define MOCK_LEEWAY_S 5         /* on exp, iat and nbf */
#define MOCK_JWKS_RETRY_MS 1000 /* unknown kid: at most one re-read per second */
#define MOCK_DEFAULT_AUD "opale-backend"
#define MOCK_MAC_SKEW_S 30         /* |now - t| of X-Gateway-Request-MAC */
#define MOCK_REPLAY_KEEP_S 90      /* request ids remembered (> 2 * skew) */
#define MOCK_REPLAY_MAX (1u << 22) /* ids remembered at most */
#define MOCK_MAC_KEY_MIN 32
#define MOCK_MAC_KEY_MAX 512

/* The reason mock_assertion_verify gives for a request id seen before. */
extern const char MOCK_WHY_REPLAY[];

struct mock_seen;

struct mock_jwk;

/* The usable keys of one JWKS document; owns its keys. */
struct mock_keyset {
    struct mock_jwk *keys;
    size_t n;
};

struct mock_verifier {
    const char *jwks_path; /* NULL: no verification (borrowed) */
    const char *aud;       /* borrowed */
    const char *iss;       /* NULL: not checked (borrowed) */
    struct mock_keyset ks;
    uint64_t last_load_ms; /* CLOCK_MONOTONIC, last (re)load attempt */
    bool quiet;
    unsigned char *mac_key; /* NULL: per-request assertions (no --mac-key) */
    size_t mac_key_len;
    struct mock_seen *seen; /* request ids already served (with mac_key) */
};

/* What the verifier reads from one request: the value of its one
 * X-JWT-Assertion, X-Request-ID and X-Consumer-Id header, each NULL when
 * the header is absent or repeated. */
struct mock_assertion_req {
    const char *token;
    const char *request_id;
    const char *consumer_id;
    const char *mac;    /* X-Gateway-Request-MAC (with a MAC key) */
    const char *method; /* the request line's method */
    const char *target; /* the request line's target, as received */
};

/* Reads the JWKS document at <path> into <out> (all or nothing; <out> is
 * untouched on failure). Returns 0 with <*skipped> set to the number of keys
 * of a kind it does not verify with, or -1 with a message in <err>. A
 * document without a usable key is refused. */
int mock_jwks_load(const char *path, struct mock_keyset *out, size_t *skipped, char *err,
                   size_t errsz);

void mock_keyset_free(struct mock_keyset *ks);

/* Loads <path> and sets <v> up to verify against it (<aud> NULL: the
 * default audience). Logs the key count on stderr unless <quiet>. Returns 0,
 * or -1 with the reason in <err> and <v> left empty. */
int mock_verifier_open(struct mock_verifier *v, const char *path, const char *aud, const char *iss,
                       bool quiet, char *err, size_t errsz);

/* Re-reads the JWKS file (<why> goes to the log); on failure the current keys
 * stay and the failure is logged, even when quiet. */
void mock_verifier_reload(struct mock_verifier *v, const char *why);

void mock_verifier_close(struct mock_verifier *v);

/* Reads the MAC key shared with the gateway from <path> (its bytes, one
 * final newline ignored, MOCK_MAC_KEY_MIN..MOCK_MAC_KEY_MAX of them) and
 * switches <v> to grant + MAC verification. 0, or -1 with <err>. */
int mock_verifier_set_mac_key(struct mock_verifier *v, const char *path, char *err, size_t errsz);

/* Verifies the assertion of request <r> at time <now> (seconds since the
 * epoch). May re-read the JWKS when the token names an unknown kid (at most
 * once per MOCK_JWKS_RETRY_MS). Returns the token's claims (a new reference,
 * the caller's), or NULL with <*why> set to a constant reason for the log
 * (never request input); MOCK_WHY_REPLAY when the MAC is right but the
 * request id was already served (mock_verifier_served). */
/* With a MAC key: remembers that the request <request_id> was answered (for
 * MOCK_REPLAY_KEEP_S), so that it is refused if it comes again. A request
 * dropped without an answer (a reset) is not remembered: the gateway may
 * retry it once, with the same headers. 0, or -1 on OOM. */
int mock_verifier_served(struct mock_verifier *v, const char *request_id, time_t now);

json_t *mock_assertion_verify(struct mock_verifier *v, const struct mock_assertion_req *r,
                              time_t now, const char **why);

#endif
