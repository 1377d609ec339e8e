/* Unit tests for deploy/mock-opale/assertion.c, the mock's verifier of the
 * gateway's X-JWT-Assertion: JWKS loading (usable, skipped and refused keys)
 * and token verification for ES256, PS256 and EdDSA, each check of
 * docs/mock-opale.md "The checks" refusing with its reason, and the re-read
 * of the JWKS on an unknown kid; with a MAC key (--mac-key), the grant and
 * X-Gateway-Request-MAC of each request and the refusal of a replay.
 *
 * Keys are generated at test time (P-256, Ed25519, RSA-2048) and published
 * in a JWKS file written to a mkdtemp directory; tokens are signed here with
 * OpenSSL, independently of the verifier. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include "assertion.h"

#define NOW 1750000000

enum { K_EC, K_ED, K_PS, K_N };
static EVP_PKEY *keys[K_N];
static const char *const kids[K_N] = {"ec-1", "ed-1", "ps-1"};
static const char *const algs[K_N] = {"ES256", "EdDSA", "PS256"};
static char dir[] = "/tmp/test_assertion.XXXXXX";
static char jwks_path[64];

/* ---------------------------------------------------------------- helpers */

static char *b64u(const unsigned char *in, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);

    ck_assert_int_ge(len, 0);
    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = '\0';
    for (char *p = out; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    return out;
}

static json_t *jb64(const unsigned char *in, size_t n)
{
    char *s = b64u(in, n);
    json_t *j = json_string(s);

    free(s);
    return j;
}

static json_t *bn_member(EVP_PKEY *k, const char *name)
{
    BIGNUM *bn = NULL;
    unsigned char buf[512];
    int n;

    ck_assert(EVP_PKEY_get_bn_param(k, name, &bn) == 1);
    n = BN_bn2bin(bn, buf);
    BN_free(bn);
    return jb64(buf, (size_t)n);
}

/* The public JWK of keys[i] under <kid> (NULL: kids[i]). */
static json_t *public_jwk(int i, const char *kid)
{
    unsigned char pub[65];
    size_t len = sizeof(pub);
    json_t *j = json_pack("{s:s}", "kid", kid ? kid : kids[i]);

    if (i == K_EC) {
        ck_assert(
            EVP_PKEY_get_octet_string_param(keys[i], OSSL_PKEY_PARAM_PUB_KEY, pub, len, &len) == 1);
        ck_assert_uint_eq(len, 65);
        json_object_set_new(j, "kty", json_string("EC"));
        json_object_set_new(j, "crv", json_string("P-256"));
        json_object_set_new(j, "x", jb64(pub + 1, 32));
        json_object_set_new(j, "y", jb64(pub + 33, 32));
    } else if (i == K_ED) {
        ck_assert(EVP_PKEY_get_raw_public_key(keys[i], pub, &len) == 1);
        json_object_set_new(j, "kty", json_string("OKP"));
        json_object_set_new(j, "crv", json_string("Ed25519"));
        json_object_set_new(j, "x", jb64(pub, len));
    } else {
        json_object_set_new(j, "kty", json_string("RSA"));
        json_object_set_new(j, "alg", json_string("PS256"));
        json_object_set_new(j, "n", bn_member(keys[i], OSSL_PKEY_PARAM_RSA_N));
        json_object_set_new(j, "e", bn_member(keys[i], OSSL_PKEY_PARAM_RSA_E));
    }
    return j;
}

static void write_jwks(json_t *keyarray)
{
    json_t *doc = json_pack("{s:o}", "keys", keyarray);

    ck_assert_int_eq(json_dump_file(doc, jwks_path, JSON_COMPACT), 0);
    json_decref(doc);
}

/* The three test keys, plus one of a kind the mock skips. */
static void write_default_jwks(void)
{
    write_jwks(json_pack("[o,o,o,{s:s,s:s}]", public_jwk(K_EC, NULL), public_jwk(K_ED, NULL),
                         public_jwk(K_PS, NULL), "kty", "oct", "k", "c2VjcmV0"));
}

/* The JWS signature of <tbs> by keys[i], as JOSE wants it (ES256: R || S). */
static char *sign(int i, const char *tbs)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char sig[512], raw[64];
    size_t siglen = sizeof(sig);
    char *out;

    ck_assert(EVP_DigestSignInit(md, &pctx, i == K_ED ? NULL : EVP_sha256(), NULL, keys[i]) == 1);
    if (i == K_PS) {
        ck_assert(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1);
        ck_assert(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) == 1);
        ck_assert(EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) == 1);
    }
    ck_assert(EVP_DigestSign(md, sig, &siglen, (const unsigned char *)tbs, strlen(tbs)) == 1);
    EVP_MD_CTX_free(md);
    if (i == K_EC) {
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
        ck_assert_ptr_nonnull(es);
        BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32);
        ECDSA_SIG_free(es);
        return b64u(raw, 64);
    }
    out = b64u(sig, siglen);
    return out;
}

/* A compact JWS of <header> and <payload> (JSON texts) signed by keys[i]. */
static char *token(int i, const char *header, const char *payload)
{
    char *h = b64u((const unsigned char *)header, strlen(header));
    char *p = b64u((const unsigned char *)payload, strlen(payload));
    char *tbs = NULL, *s, *t = NULL;

    ck_assert_int_gt(asprintf(&tbs, "%s.%s", h, p), 0);
    s = sign(i, tbs);
    ck_assert_int_gt(asprintf(&t, "%s.%s", tbs, s), 0);
    free(h);
    free(p);
    free(tbs);
    free(s);
    return t;
}

static char *header_of(int i)
{
    char *h = NULL;

    ck_assert_int_gt(asprintf(&h, "{\"alg\":\"%s\",\"kid\":\"%s\"}", algs[i], kids[i]), 0);
    return h;
}

/* A payload valid at NOW for request "r1" of consumer "c1", with exp shifted
 * by <exp_delta> seconds from NOW + 60. */
static char *payload(long exp_delta)
{
    char *p = NULL;

    ck_assert_int_gt(asprintf(&p,
                              "{\"aud\":\"opale-backend\",\"iss\":\"https://gw.test\",\"iat\":%d,"
                              "\"exp\":%ld,\"client_id\":\"c1\",\"request_id\":\"r1\","
                              "\"habilitation\":\"H1\"}",
                              NOW, NOW + 60 + exp_delta),
                     0);
    return p;
}

static struct mock_verifier v;

/* Verifies <tok> for request r1 of consumer c1 at <now>; returns the reason
 * (NULL: accepted, and the claims were checked). */
static const char *verify_at(const char *tok, time_t now)
{
    struct mock_assertion_req r = {.token = tok, .request_id = "r1", .consumer_id = "c1"};
    const char *why = "unset";
    json_t *claims = mock_assertion_verify(&v, &r, now, &why);

    if (claims) {
        ck_assert_ptr_null(why);
        ck_assert_str_eq(json_string_value(json_object_get(claims, "habilitation")), "H1");
        json_decref(claims);
    } else {
        ck_assert_ptr_nonnull(why);
    }
    return why;
}

static void setup(void)
{
    char err[256] = "";

    write_default_jwks();
    ck_assert_msg(
        mock_verifier_open(&v, jwks_path, NULL, "https://gw.test", true, err, sizeof(err)) == 0,
        "%s", err);
    ck_assert_uint_eq(v.ks.n, 3);
}

static void teardown(void)
{
    mock_verifier_close(&v);
}

/* ------------------------------------------------------------------ tests */

START_TEST(valid_token_accepted)
{
    char *h = header_of(_i), *p = payload(0), *t = token(_i, h, p);

    ck_assert_ptr_null(verify_at(t, NOW));
    ck_assert_ptr_null(verify_at(t, NOW + 60 + 5)); /* leeway on exp */
    free(h);
    free(p);
    free(t);
}
END_TEST

START_TEST(altered_token_refused)
{
    char *h = header_of(_i), *p = payload(0), *t = token(_i, h, p);
    char *other = payload(3600), *t2 = token(_i, h, other);
    char *dot = strchr(t, '.'), *dot2 = strchr(t2, '.'), *forged = NULL;
    char *last;

    /* the payload of t2 under the signature of t */
    ck_assert_int_gt(asprintf(&forged, "%.*s%.*s%s", (int)(dot - t), t,
                              (int)(strrchr(t2, '.') - dot2), dot2, strrchr(t, '.')),
                     0);
    ck_assert_str_eq(verify_at(forged, NOW), "bad signature");
    /* one flipped character of the signature (the first: no unused bits) */
    last = strrchr(t, '.') + 1;
    *last = *last == 'A' ? 'B' : 'A';
    ck_assert_str_eq(verify_at(t, NOW), "bad signature");
    free(h);
    free(p);
    free(t);
    free(other);
    free(t2);
    free(forged);
}
END_TEST

START_TEST(claims_checked)
{
    char *h = header_of(K_EC), *p = payload(0), *t = token(K_EC, h, p);
    struct mock_assertion_req r = {.token = t, .request_id = "r2", .consumer_id = "c1"};
    const char *why = NULL;

    ck_assert_str_eq(verify_at(t, NOW + 60 + 6), "expired");
    ck_assert_str_eq(verify_at(t, NOW - 6), "iat in the future");
    ck_assert_ptr_null(mock_assertion_verify(&v, &r, NOW, &why));
    ck_assert_str_eq(why, "request_id differs from X-Request-ID (or header absent or repeated)");
    r = (struct mock_assertion_req){.token = t, .request_id = "r1"};
    ck_assert_ptr_null(mock_assertion_verify(&v, &r, NOW, &why));
    ck_assert_str_eq(why, "client_id differs from X-Consumer-Id (or header absent or repeated)");
    free(p);
    free(t);
    free(h);
}
END_TEST

/* One claim rule each, on an otherwise valid payload at NOW. */
#define CLAIMS(aud, iss, extra)                                                                    \
    "{\"aud\":" aud ",\"iss\":\"" iss "\",\"iat\":1750000000,\"client_id\":\"c1\","                \
    "\"request_id\":\"r1\",\"habilitation\":\"H1\"" extra "}"
static const struct {
    const char *payload, *why;
} claim_cases[] = {
    {CLAIMS("[\"x\",\"opale-backend\"]", "https://gw.test", ",\"exp\":1750000060"), NULL},
    {CLAIMS("\"opale-backend\"", "https://gw.test", ",\"exp\":1750000060.0"),
     "exp absent or not an integer"},
    {CLAIMS("\"other\"", "https://gw.test", ",\"exp\":1750000060"),
     "aud absent or without the configured audience"},
    {CLAIMS("[\"opale-backend\",1]", "https://gw.test", ",\"exp\":1750000060"),
     "aud array holds a non-string"},
    {CLAIMS("\"opale-backend\"", "https://evil.test", ",\"exp\":1750000060"),
     "iss absent or not the configured issuer"},
    {CLAIMS("\"opale-backend\"", "https://gw.test", ",\"exp\":1750000060,\"nbf\":1750000006"),
     "nbf in the future"},
    {CLAIMS("\"opale-backend\"", "https://gw.test", ",\"exp\":1750000060,\"client_id\":\"\""),
     "payload is not a JSON object"}, /* a duplicate member */
};

START_TEST(claim_rules)
{
    char *h = header_of(K_EC), *t = token(K_EC, h, claim_cases[_i].payload);
    const char *why = verify_at(t, NOW);

    if (claim_cases[_i].why)
        ck_assert_str_eq(why ? why : "(accepted)", claim_cases[_i].why);
    else
        ck_assert_msg(why == NULL, "refused: %s", why);
    free(h);
    free(t);
}
END_TEST

START_TEST(header_checked)
{
    char *p = payload(0), *t;

    t = token(K_EC, "{\"alg\":\"ES256\",\"kid\":\"nope\"}", p);
    ck_assert_str_eq(verify_at(t, NOW), "unknown kid");
    free(t);
    t = token(K_EC, "{\"alg\":\"EdDSA\",\"kid\":\"ec-1\"}", p);
    ck_assert_str_eq(verify_at(t, NOW), "alg does not match the key");
    free(t);
    t = token(K_EC, "{\"alg\":\"none\",\"kid\":\"ec-1\"}", p);
    ck_assert_str_eq(verify_at(t, NOW), "alg absent or not ES256, RS256, PS256 or EdDSA");
    free(t);
    t = token(K_EC, "{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"crit\":[\"exp\"]}", p);
    ck_assert_str_eq(verify_at(t, NOW), "crit header parameter");
    free(t);
    t = token(K_EC, "{\"alg\":\"ES256\",\"alg\":\"ES256\",\"kid\":\"ec-1\"}", p);
    ck_assert_str_eq(verify_at(t, NOW), "header is not a JSON object");
    free(t);
    ck_assert_str_eq(verify_at(NULL, NOW), "X-JWT-Assertion absent or repeated");
    ck_assert_str_eq(verify_at("a.b", NOW), "not 3 segments");
    ck_assert_str_eq(verify_at("a.b.c.d", NOW), "not 3 segments");
    ck_assert_str_eq(verify_at("eyJ9.eyJ9.AB", NOW), "a segment is empty or not strict base64url");
    ck_assert_str_eq(verify_at("eyJ9..AA", NOW), "a segment is empty or not strict base64url");
    ck_assert_str_eq(verify_at("eyJ9.e+J9.AA", NOW), "a segment is empty or not strict base64url");
    free(p);
}
END_TEST

/* A key published after the mock started is found by re-reading the JWKS,
 * but not within a second of the last read. */
START_TEST(unknown_kid_rereads_jwks)
{
    char *p = payload(0), *t = token(K_ED, "{\"alg\":\"EdDSA\",\"kid\":\"ed-new\"}", p);

    write_jwks(json_pack("[o,o]", public_jwk(K_EC, NULL), public_jwk(K_ED, "ed-new")));
    ck_assert_str_eq(verify_at(t, NOW), "unknown kid"); /* read less than 1 s ago */
    v.last_load_ms = 0;                                 /* as if read long ago */
    ck_assert_ptr_null(verify_at(t, NOW));
    ck_assert_uint_eq(v.ks.n, 2);
    free(p);
    free(t);
}
END_TEST

/* The JWKS file: each refusal with its message, keys of other kinds skipped. */
/* Writes <keyarray> (consumed) as the JWKS file and loads it, which must fail;
 * returns the error (a static buffer) and checks nothing was kept. */
static const char *jwks_refusal(json_t *keyarray)
{
    static char err[256];
    struct mock_keyset ks = {0};
    size_t skipped;

    write_jwks(keyarray);
    ck_assert_int_eq(mock_jwks_load(jwks_path, &ks, &skipped, err, sizeof(err)), -1);
    ck_assert_ptr_null(ks.keys);
    return err;
}

START_TEST(jwks_refusals)
{
    struct mock_keyset ks = {0};
    size_t skipped = 99;
    char err[256];
    json_t *priv = public_jwk(K_EC, NULL);

    write_default_jwks();
    ck_assert_int_eq(mock_jwks_load(jwks_path, &ks, &skipped, err, sizeof(err)), 0);
    ck_assert_uint_eq(ks.n, 3);
    ck_assert_uint_eq(skipped, 1);
    mock_keyset_free(&ks);

    json_object_set_new(priv, "d", json_string("AAAA"));
    ck_assert_str_eq(jwks_refusal(json_pack("[o]", priv)),
                     "keys[0]: private key material in the JWKS");
    ck_assert_str_eq(
        jwks_refusal(json_pack("[o,o]", public_jwk(K_EC, NULL), public_jwk(K_ED, "ec-1"))),
        "keys[1]: duplicate kid");
    ck_assert_str_eq(jwks_refusal(json_pack("[{s:s,s:s,s:s,s:s}]", "kty", "RSA", "kid", "r", "n",
                                            "AQAB", "e", "AQAB")),
                     "keys[0]: an RSA key needs \"alg\" RS256 or PS256");
    ck_assert_str_eq(jwks_refusal(json_pack("[{s:s,s:s,s:s,s:s}]", "kty", "OKP", "crv", "Ed25519",
                                            "kid", "e", "x", "AAAA")),
                     "keys[0]: OKP key: x must be base64url of 32 bytes");
    ck_assert_str_eq(jwks_refusal(json_pack("[{s:s,s:s}]", "kty", "EC", "crv", "P-384")),
                     "no usable key (EC P-256, RSA or OKP Ed25519, \"use\" absent or sig)");
}
END_TEST

/* ------------------------------------------------------- grant + MAC mode */

#define MAC_KEY "k3y-shared-by-the-gateway-and-opale"
#define TARGET "/opale/v1/entreprises/732829320/declarations?annee=2023"

/* X-Gateway-Request-MAC for grant <tok>, computed here (docs/oauth2.md). */
static char *request_mac(const char *key, long t, const char *rid, const char *method,
                         const char *target, const char *tok)
{
    unsigned char gh[32], md[32];
    unsigned int ml = 0;
    char *text = NULL, *ghs, *ms, *out = NULL;

    ck_assert(EVP_Digest(tok, strlen(tok), gh, &ml, EVP_sha256(), NULL) == 1);
    ghs = b64u(gh, 32);
    ck_assert_int_gt(
        asprintf(&text, "OPALE-GW-MAC-v1\n%ld\n%s\n%s\n%s\n%s", t, rid, method, target, ghs), 0);
    ck_assert_ptr_nonnull(
        HMAC(EVP_sha256(), key, (int)strlen(key), (unsigned char *)text, strlen(text), md, &ml));
    ms = b64u(md, 32);
    ck_assert_int_gt(asprintf(&out, "v1;t=%ld;mac=%s", t, ms), 0);
    free(text);
    free(ghs);
    free(ms);
    return out;
}

static const char *verify_req(const char *tok, const char *mac, const char *rid, const char *method,
                              const char *target, time_t now)
{
    struct mock_assertion_req r = {.token = tok,
                                   .request_id = rid,
                                   .consumer_id = "c1",
                                   .mac = mac,
                                   .method = method,
                                   .target = target};
    const char *why = NULL;
    json_t *claims = mock_assertion_verify(&v, &r, now, &why);

    json_decref(claims);
    return claims ? NULL : why;
}

START_TEST(grant_and_mac)
{
    char err[256] = "", kp[96];
    snprintf(kp, sizeof(kp), "%s/mac.key", dir);
    FILE *f = fopen(kp, "w");
    ck_assert_ptr_nonnull(f);
    fputs("short\n", f);
    fclose(f);
    ck_assert_int_eq(mock_verifier_set_mac_key(&v, kp, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "the key must be 32 to 512 bytes");
    f = fopen(kp, "w");
    fputs(MAC_KEY "\n", f); /* the final newline is not part of the key */
    fclose(f);
    ck_assert_msg(mock_verifier_set_mac_key(&v, kp, err, sizeof(err)) == 0, "%s", err);

    char *h = header_of(K_EC), *p = NULL;
    ck_assert_int_gt(asprintf(&p,
                              "{\"aud\":\"opale-backend\",\"iss\":\"https://gw.test\",\"iat\":%d,"
                              "\"exp\":%d,\"client_id\":\"c1\",\"habilitation\":\"H1\","
                              "\"mac\":\"v1\"}",
                              NOW, NOW + 60),
                     0);
    char *g = token(K_EC, h, p);
    char *mac = request_mac(MAC_KEY, NOW, "r1", "GET", TARGET, g);
    char *other_key = request_mac(MAC_KEY "x", NOW, "r1", "GET", TARGET, g);
    char *stale = request_mac(MAC_KEY, NOW - 31, "r1", "GET", TARGET, g);

    /* the pair moved to another request, a wrong key, a stale or absent MAC */
    ck_assert_str_eq(verify_req(g, mac, "r2", "GET", TARGET, NOW),
                     "X-Gateway-Request-MAC does not match this request (request id, method, "
                     "target, time or grant)");
    ck_assert_str_eq(verify_req(g, mac, "r1", "POST", TARGET, NOW),
                     "X-Gateway-Request-MAC does not match this request (request id, method, "
                     "target, time or grant)");
    ck_assert_str_eq(verify_req(g, mac, "r1", "GET", "/opale/v1/etatSante", NOW),
                     "X-Gateway-Request-MAC does not match this request (request id, method, "
                     "target, time or grant)");
    ck_assert_str_eq(verify_req(g, other_key, "r1", "GET", TARGET, NOW),
                     "X-Gateway-Request-MAC does not match this request (request id, method, "
                     "target, time or grant)");
    ck_assert_str_eq(verify_req(g, stale, "r1", "GET", TARGET, NOW),
                     "X-Gateway-Request-MAC timestamp outside the allowed skew");
    ck_assert_str_eq(verify_req(g, NULL, "r1", "GET", TARGET, NOW),
                     "X-Gateway-Request-MAC absent or repeated");
    ck_assert_str_eq(verify_req(g, "v1;t=01;mac=x", "r1", "GET", TARGET, NOW),
                     "X-Gateway-Request-MAC malformed");
    /* an expired grant with a fresh MAC */
    char *mac_late = request_mac(MAC_KEY, NOW + 66, "r1", "GET", TARGET, g);
    ck_assert_str_eq(verify_req(g, mac_late, "r1", "GET", TARGET, NOW + 66), "expired");
    /* a per-request assertion is not a grant */
    char *lp = payload(0), *legacy = token(K_EC, h, lp);
    char *lmac = request_mac(MAC_KEY, NOW, "r1", "GET", TARGET, legacy);
    ck_assert_str_eq(verify_req(legacy, lmac, "r1", "GET", TARGET, NOW),
                     "not a grant (mac claim absent or not \"v1\")");
    /* the right request: accepted until it is answered, then a replay */
    ck_assert_ptr_null(verify_req(g, mac, "r1", "GET", TARGET, NOW));
    ck_assert_ptr_null(verify_req(g, mac, "r1", "GET", TARGET, NOW)); /* reset: not answered */
    ck_assert_int_eq(mock_verifier_served(&v, "r1", NOW), 0);
    ck_assert_ptr_eq(verify_req(g, mac, "r1", "GET", TARGET, NOW + 1), MOCK_WHY_REPLAY);
    /* remembered for MOCK_REPLAY_KEEP_S: beyond it the MAC is stale anyway */
    ck_assert_ptr_eq(verify_req(g, mac, "r1", "GET", TARGET, NOW + MOCK_MAC_SKEW_S),
                     MOCK_WHY_REPLAY);
    free(h);
    free(p);
    free(g);
    free(mac);
    free(other_key);
    free(stale);
    free(mac_late);
    free(lp);
    free(legacy);
    free(lmac);
}
END_TEST

/* ----------------------------------------------------------------- runner */

static Suite *suite(void)
{
    Suite *s = suite_create("mock_assertion");
    TCase *tc = tcase_create("verify");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, valid_token_accepted, 0, K_N);
    tcase_add_loop_test(tc, altered_token_refused, 0, K_N);
    tcase_add_test(tc, claims_checked);
    tcase_add_loop_test(tc, claim_rules, 0, sizeof(claim_cases) / sizeof(claim_cases[0]));
    tcase_add_test(tc, header_checked);
    tcase_add_test(tc, unknown_kid_rereads_jwks);
    tcase_add_test(tc, jwks_refusals);
    tcase_add_test(tc, grant_and_mac);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr;
    int failed;

    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(jwks_path, sizeof(jwks_path), "%s/jwks.json", dir);
    keys[K_EC] = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    keys[K_ED] = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    keys[K_PS] = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    for (int i = 0; i < K_N; i++)
        if (!keys[i]) {
            fprintf(stderr, "key generation failed\n");
            return 1;
        }
    sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    for (int i = 0; i < K_N; i++)
        EVP_PKEY_free(keys[i]);
    unlink(jwks_path);
    rmdir(dir);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
