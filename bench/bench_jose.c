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

#include <openssl/evp.h>

#include "token/jose.h"

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
    free(es256_token);
    json_decref(payload);
    return 0;
}
