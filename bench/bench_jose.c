/*
 * JOSE benchmark: the cost of signing and of verifying one access token per
 * algorithm (ES256 P-256, RS256 and PS256 RSA-2048, EdDSA Ed25519), against
 * the cost of a verified-token cache hit, i.e. SHA-256 of the token (the
 * cache key; the hash-table probe itself is not counted). Prints figures;
 * asserts nothing about speed (the machine is shared and noisy).
 *
 *   bench_jose [N]     tokens per algorithm, default 2000 (RSA signing: N/4)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "token/assertion.h"
#include "token/endpoint.h"
#include "token/jose.h"
#include "token/oauth.h"

#define NOW 1750000000

static const char payload_text[] =
    "{\"iss\":\"https://opale-gateway.example\",\"sub\":\"commune-exemple-sandbox\","
    "\"client_id\":\"commune-exemple-sandbox\",\"aud\":\"api-opale\",\"exp\":1750003600,"
    "\"iat\":1750000000,\"nbf\":1750000000,\"jti\":\"0f9c2b2e-6a43-4f57-9d59-8a4a2b0c1d11\","
    "\"scope\":\"api_opale_declarations api_opale_ir\",\"habilitation\":\"12345\","
    "\"keytype\":\"SANDBOX\",\"cnf\":{\"x5t#S256\":\"47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU\"}"
    "}";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile unsigned sink;

/* SHA-256 of the token with one EVP_MD_CTX reused (what gw_sha256 does). */
static int bench_sha_ctx(const char *tok, size_t len, long m)
{
    EVP_MD *sha = EVP_MD_fetch(NULL, "SHA256", NULL);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (sha == NULL || c == NULL)
        return -1;
    double t0 = now_s();
    for (long i = 0; i < m; i++) {
        if (EVP_DigestInit_ex2(c, sha, NULL) != 1 || EVP_DigestUpdate(c, tok, len) != 1 ||
            EVP_DigestFinal_ex(c, md, &mdlen) != 1)
            return -1;
        sink += md[0];
    }
    printf("cache hit: SHA-256, EVP_MD fetched once and EVP_MD_CTX reused: %.2f us\n",
           (now_s() - t0) * 1e6 / (double)m);
    EVP_MD_CTX_free(c);
    EVP_MD_free(sha);
    return 0;
}

/* HMAC-SHA256 of a 150-byte MAC input: implicit fetches against explicit. */
static int bench_hmac(long m)
{
    static const unsigned char key[] = "0123456789abcdef0123456789abcdef0123456789abcdef";
    unsigned char in[150], md[32];
    unsigned int ml = 0;
    size_t sl = 0;
    memset(in, 'x', sizeof(in));
    double t0 = now_s();
    for (long i = 0; i < m; i++) {
        if (HMAC(EVP_sha256(), key, 48, in, sizeof(in), md, &ml) == NULL)
            return -1;
        sink += md[0];
    }
    double implicit_us = (now_s() - t0) * 1e6 / (double)m;
    t0 = now_s();
    for (long i = 0; i < m; i++) {
        if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, 48, in, sizeof(in), md, sizeof(md),
                      &sl) == NULL)
            return -1;
        sink += md[0];
    }
    double q_us = (now_s() - t0) * 1e6 / (double)m;
    EVP_MAC *hm = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *c = hm ? EVP_MAC_CTX_new(hm) : NULL;
    char dg[] = "SHA256";
    OSSL_PARAM ps[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, dg, 0),
                       OSSL_PARAM_construct_end()};
    if (c == NULL || EVP_MAC_init(c, key, 48, ps) != 1)
        return -1;
    t0 = now_s();
    for (long i = 0; i < m; i++) {
        if (EVP_MAC_init(c, NULL, 0, NULL) != 1 || EVP_MAC_update(c, in, sizeof(in)) != 1 ||
            EVP_MAC_final(c, md, &sl, sizeof(md)) != 1)
            return -1;
        sink += md[0];
    }
    double reused_us = (now_s() - t0) * 1e6 / (double)m;
    EVP_MAC_CTX_free(c);
    EVP_MAC_free(hm);
    printf("HMAC-SHA256 of 150 bytes: %.2f us (HMAC(EVP_sha256())), %.2f us (EVP_Q_mac), "
           "%.2f us (EVP_MAC fetched once, context reused)\n",
           implicit_us, q_us, reused_us);
    return 0;
}

/* The backend assertion per forwarded request, both modes. */
static int bench_assertion(long n)
{
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    static unsigned char key[] = "0123456789abcdef0123456789abcdef0123456789abcdef";
    gw_jwk k = {"bench-1", GW_ALG_ES256, pk, 1};
    gw_oauth o = {
        .issuer = "https://opale-gateway.example",
        .assertion_audience = "opale-backend",
        .assertion_lifetime_s = 60,
        .active = &k,
        .assertion_mode = GW_ASSERTION_GRANT_MAC,
        .mac_key = key,
        .mac_key_len = 48,
        .hmac = EVP_MAC_fetch(NULL, "HMAC", NULL),
        .assertion_cache_entries = 16384,
        .gen = 1,
    };
    static const char target[] = "/opale/v1/entreprises/732829320/declarations?annee=2023";
    gw_assertion_req r = {"commune-exemple-sandbox",
                          "12345",
                          GW_ENV_SANDBOX,
                          "api_opale_declarations api_opale_ir",
                          "0f9c2b2e-6a43-4f57-9d59-8a4a2b0c1d11",
                          "GET",
                          target,
                          sizeof(target) - 1,
                          NOW};
    gw_assert_cache *c = pk && o.hmac ? gw_assert_cache_new(&o) : NULL;
    if (c == NULL)
        return -1;
    /* the former scheme: a JWS signed per request */
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        char *a = gw_assertion_sign_ids(&o, r.client_id, r.habilitation, r.env, r.scope,
                                        r.request_id, NOW);
        if (a == NULL)
            return -1;
        sink += (unsigned)a[0];
        free(a);
    }
    double old_us = (now_s() - t0) * 1e6 / (double)n;
    /* grant + MAC, the grant cached (one consumer, one minute) */
    long m = n * 50;
    gw_assertion_hdrs h;
    t0 = now_s();
    for (long i = 0; i < m; i++) {
        if (gw_assertion_build(&o, c, &r, &h) != 0)
            return -1;
        sink += (unsigned)h.mac[40];
    }
    double hit_us = (now_s() - t0) * 1e6 / (double)m;
    /* grant + MAC when every request needs a new grant (a consumer's first
     * request of its minute) */
    t0 = now_s();
    for (long i = 0; i < n; i++) {
        r.now = NOW + 60 * (i + 1);
        if (gw_assertion_build(&o, c, &r, &h) != 0)
            return -1;
        sink += (unsigned)h.mac[40];
    }
    double miss_us = (now_s() - t0) * 1e6 / (double)n;
    unsigned long nsig, nhit;
    gw_assert_cache_stats(c, &nsig, &nhit);
    printf("backend assertion per request: %.1f us (per_request: ES256 JWS), %.2f us "
           "(grant_mac, grant cached), %.1f us (grant_mac, new grant); %lu grants signed, "
           "%lu reused\n",
           old_us, hit_us, miss_us, nsig, nhit);
    printf("per_request / grant_mac (cached): about %.0fx\n", old_us / hit_us);
    gw_assert_cache_free(c);
    EVP_MAC_free(o.hmac);
    gw_jwk_clear(&k);
    return 0;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 2000;
    if (n < 1) {
        fprintf(stderr, "usage: bench_jose [N]\n");
        return 2;
    }
    json_t *payload = json_loads(payload_text, 0, NULL);
    if (payload == NULL)
        return 1;
    static const struct {
        gw_alg alg;
        const char *type;
        const char *param; /* curve name, or NULL */
        size_t bits;
    } algs[] = {
        {GW_ALG_ES256, "EC", "P-256", 0},
        {GW_ALG_RS256, "RSA", NULL, 2048},
        {GW_ALG_PS256, "RSA", NULL, 2048},
        {GW_ALG_EDDSA, "ED25519", NULL, 0},
    };
    const gw_alg allow[] = {GW_ALG_ES256, GW_ALG_RS256, GW_ALG_PS256, GW_ALG_EDDSA};
    gw_jws_rules rules = {allow, 4, 0, 0};
    gw_jwt_rules jr = {NOW, 60, "https://opale-gateway.example", "api-opale", 1};
    char *es256_token = NULL;
    double es256_verify_us = 0;

    printf("bench_jose: N=%ld tokens per algorithm (%s)\n", n, OpenSSL_version(OPENSSL_VERSION));
    printf("%-6s %8s %12s %12s %16s\n", "alg", "bytes", "sign us", "verify us", "verify+claims us");
    for (size_t a = 0; a < sizeof(algs) / sizeof(algs[0]); a++) {
        EVP_PKEY *pk = algs[a].param  ? EVP_PKEY_Q_keygen(NULL, NULL, algs[a].type, algs[a].param)
                       : algs[a].bits ? EVP_PKEY_Q_keygen(NULL, NULL, algs[a].type, algs[a].bits)
                                      : EVP_PKEY_Q_keygen(NULL, NULL, algs[a].type);
        if (pk == NULL) {
            fprintf(stderr, "keygen failed\n");
            return 1;
        }
        gw_jwk k = {"bench-1", algs[a].alg, pk, 1};
        gw_keyset ks = {NULL, &k, 1};
        const gw_keyset *sets[] = {&ks};

        long ns = (algs[a].alg == GW_ALG_RS256 || algs[a].alg == GW_ALG_PS256) ? (n + 3) / 4 : n;
        char *tok = NULL;
        double t0 = now_s();
        for (long i = 0; i < ns; i++) {
            free(tok);
            tok = gw_jws_sign(&k, "at+jwt", payload);
            if (tok == NULL) {
                fprintf(stderr, "sign failed\n");
                return 1;
            }
        }
        double sign_us = (now_s() - t0) * 1e6 / (double)ns;
        size_t len = strlen(tok);

        t0 = now_s();
        for (long i = 0; i < n; i++) {
            gw_jws j;
            if (gw_jws_verify(tok, len, sets, 1, &rules, &j) != NULL) {
                fprintf(stderr, "verify failed\n");
                return 1;
            }
            gw_jws_clear(&j);
        }
        double verify_us = (now_s() - t0) * 1e6 / (double)n;

        t0 = now_s();
        for (long i = 0; i < n; i++) {
            gw_jws j;
            gw_claims c;
            if (gw_jws_verify(tok, len, sets, 1, &rules, &j) != NULL ||
                gw_jwt_check(j.payload, &jr, &c) != NULL) {
                fprintf(stderr, "verify/claims failed\n");
                return 1;
            }
            sink += (unsigned)c.nscopes;
            gw_jws_clear(&j);
        }
        double full_us = (now_s() - t0) * 1e6 / (double)n;
        printf("%-6s %8zu %12.1f %12.1f %16.1f\n", gw_alg_name(algs[a].alg), len, sign_us,
               verify_us, full_us);
        if (algs[a].alg == GW_ALG_ES256) {
            es256_token = tok;
            es256_verify_us = full_us;
        } else {
            free(tok);
        }
        gw_jwk_clear(&k);
    }

    /* a cache hit: SHA-256 of the token (the cache key) */
    size_t len = strlen(es256_token);
    long m = n * 50;
    unsigned char md[32];
    unsigned int mdlen = 0;
    double t0 = now_s();
    for (long i = 0; i < m; i++) {
        EVP_Digest(es256_token, len, md, &mdlen, EVP_sha256(), NULL);
        sink += md[0];
    }
    double sha_us = (now_s() - t0) * 1e6 / (double)m;
    EVP_MD *sha = EVP_MD_fetch(NULL, "SHA256", NULL);
    t0 = now_s();
    for (long i = 0; i < m; i++) {
        EVP_Digest(es256_token, len, md, &mdlen, sha, NULL);
        sink += md[0];
    }
    double sha_fetched_us = (now_s() - t0) * 1e6 / (double)m;
    EVP_MD_free(sha);
    printf("cache hit: SHA-256 of a %zu-byte token: %.2f us (EVP_sha256()), %.2f us (EVP_MD "
           "fetched once)\n",
           len, sha_us, sha_fetched_us);
    printf("ES256 verify+claims / cache hit: about %.0fx\n",
           es256_verify_us / (sha_fetched_us < sha_us ? sha_fetched_us : sha_us));
    if (bench_sha_ctx(es256_token, len, m) != 0 || bench_hmac(m) != 0 || bench_assertion(n) != 0)
        return 1;
    free(es256_token);
    json_decref(payload);
    return 0;
}
