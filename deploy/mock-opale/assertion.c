/*
 * opale-mock: verification of the gateway's X-JWT-Assertion (assertion.h).
 *
 * Deliberately small and strict: compact JWS only, four asymmetric
 * algorithms, keys only from the JWKS file (never from the token: jwk, jku,
 * x5u and x5c are ignored), "crit" refused. OpenSSL does the cryptography;
 * this file only maps JOSE onto it. Debian's libcjose (0.6.2) was not used:
 * it has no OKP keys, so no EdDSA, which the gateway signs with.
 */
#include "assertion.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#define MOCK_NAME "opale-mock"

/* The four algorithms accepted; each key of the JWKS has exactly one. */
enum jws_alg { ALG_ES256, ALG_RS256, ALG_PS256, ALG_EDDSA, ALG_COUNT };

static const char *const alg_names[ALG_COUNT] = {"ES256", "RS256", "PS256", "EdDSA"};

struct mock_jwk {
    char *kid;
    enum jws_alg alg;
    EVP_PKEY *pkey;
};

static uint64_t monotonic_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int b64url_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '-' ? 62 : c == '_' ? 63 : -1;
}

/* Decodes <n> characters of strict base64url (RFC 7515 §2): only the URL-safe
 * alphabet, no padding, no whitespace, and the unused low bits of the last
 * character zero, so that every byte string has exactly one encoding. Returns
 * a malloc'd buffer with a NUL after its <*outlen> bytes, or NULL (also for
 * an empty input). */
static unsigned char *b64url_decode(const char *s, size_t n, size_t *outlen)
{
    unsigned char *out = NULL;
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;

    if (n == 0 || n % 4 == 1 || !(out = malloc(n / 4 * 3 + 3)))
        return NULL;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_val((unsigned char)s[i]);
        if (v < 0)
            goto bad;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* non-zero leftover bits: not the canonical encoding */
        goto bad;
    out[o] = '\0';
    *outlen = o;
    return out;
bad:
    free(out);
    return NULL;
}

void mock_keyset_free(struct mock_keyset *ks)
{
    for (size_t i = 0; i < ks->n; i++) {
        free(ks->keys[i].kid);
        EVP_PKEY_free(ks->keys[i].pkey);
    }
    free(ks->keys);
    ks->keys = NULL;
    ks->n = 0;
}

static const struct mock_jwk *keyset_find(const struct mock_keyset *ks, const char *kid)
{
    for (size_t i = 0; i < ks->n; i++)
        if (strcmp(ks->keys[i].kid, kid) == 0)
            return &ks->keys[i];
    return NULL;
}

/* ------------------------------------------------------ grant + MAC mode */

const char MOCK_WHY_REPLAY[] = "replay: X-Request-ID already served";

/* Request ids served, oldest first: a FIFO of (time, id) and a set. */
struct seen_entry {
    time_t t;
    char *id;
};

struct mock_seen {
    json_t *set; /* id -> null */
    struct seen_entry *q;
    size_t cap, head, n;
};

static void seen_free(struct mock_seen *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->q[(s->head + i) % s->cap].id);
    free(s->q);
    json_decref(s->set);
    free(s);
}

/* Forgets the ids older than MOCK_REPLAY_KEEP_S (and the oldest beyond
 * MOCK_REPLAY_MAX). */
static void seen_expire(struct mock_seen *s, time_t now)
{
    while (s->n > 0 && (s->q[s->head].t < now - MOCK_REPLAY_KEEP_S || s->n >= MOCK_REPLAY_MAX)) {
        json_object_del(s->set, s->q[s->head].id);
        free(s->q[s->head].id);
        s->head = (s->head + 1) % s->cap;
        s->n--;
    }
}

/* 1 when <id> was served in the last MOCK_REPLAY_KEEP_S seconds. */
static bool seen_has(struct mock_seen *s, const char *id, time_t now)
{
    seen_expire(s, now);
    return json_object_get(s->set, id) != NULL;
}

/* Remembers <id>; 0, or -1 on OOM. */
static int seen_add(struct mock_seen *s, const char *id, time_t now)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        struct seen_entry *q = malloc(cap * sizeof(*q));
        if (!q)
            return -1;
        for (size_t i = 0; i < s->n; i++)
            q[i] = s->q[(s->head + i) % s->cap];
        free(s->q);
        s->q = q;
        s->cap = cap;
        s->head = 0;
    }
    char *copy = strdup(id);
    if (!copy || json_object_set_new(s->set, id, json_null()) != 0) {
        free(copy);
        return -1;
    }
    s->q[(s->head + s->n) % s->cap] = (struct seen_entry){now, copy};
    s->n++;
    return 0;
}

static const char b64url_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* base64url of 32 bytes: 43 characters and a NUL. */
static void b64url32(const unsigned char *in, char out[44])
{
    size_t o = 0;
    uint32_t v;

    for (size_t i = 0; i < 30; i += 3) {
        v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        for (int k = 18; k >= 0; k -= 6)
            out[o++] = b64url_chars[(v >> k) & 63];
    }
    v = (uint32_t)in[30] << 16 | (uint32_t)in[31] << 8;
    for (int k = 18; k >= 6; k -= 6)
        out[o++] = b64url_chars[(v >> k) & 63];
    out[o] = '\0';
}

int mock_verifier_set_mac_key(struct mock_verifier *v, const char *path, char *err, size_t errsz)
{
    unsigned char buf[MOCK_MAC_KEY_MAX + 3];
    FILE *f = fopen(path, "rb");
    size_t n;

    if (!f) {
        snprintf(err, errsz, "cannot read: %s", strerror(errno));
        return -1;
    }
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    if (n > 0 && buf[n - 1] == '\n' && --n > 0 && buf[n - 1] == '\r')
        n--;
    if (n < MOCK_MAC_KEY_MIN || n > MOCK_MAC_KEY_MAX) {
        OPENSSL_cleanse(buf, sizeof(buf));
        snprintf(err, errsz, "the key must be %d to %d bytes", MOCK_MAC_KEY_MIN, MOCK_MAC_KEY_MAX);
        return -1;
    }
    struct mock_seen *seen = calloc(1, sizeof(*seen));
    unsigned char *key = malloc(n);
    if (!seen || !key || !(seen->set = json_object())) {
        OPENSSL_cleanse(buf, sizeof(buf));
        free(key);
        seen_free(seen);
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    memcpy(key, buf, n);
    OPENSSL_cleanse(buf, sizeof(buf));
    v->mac_key = key;
    v->mac_key_len = n;
    v->seen = seen;
    return 0;
}

int mock_verifier_served(struct mock_verifier *v, const char *request_id, time_t now)
{
    if (!v->seen || !request_id)
        return 0;
    seen_expire(v->seen, now);
    return seen_add(v->seen, request_id, now);
}

/* The expected X-Gateway-Request-MAC "mac" for request <r>, timestamp text
 * <ts> and the grant <tok> (docs/oauth2.md): HMAC-SHA256 over
 * "OPALE-GW-MAC-v1\n" t "\n" X-Request-ID "\n" method "\n" target "\n"
 * base64url(SHA-256(grant)). 0, or -1. */
static int expected_mac(const struct mock_verifier *v, const struct mock_assertion_req *r,
                        const char *ts, size_t tslen, const char *tok, char out[44])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    char gh[44];
    size_t tlen = strlen(r->request_id) + strlen(r->method) + strlen(r->target) + tslen + 64;
    char *text = malloc(tlen + 44);
    size_t maclen = 0;
    unsigned char *mac;
    int n;

    if (!text || EVP_Digest(tok, strlen(tok), md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
        free(text);
        return -1;
    }
    b64url32(md, gh);
    n = snprintf(text, tlen + 44, "OPALE-GW-MAC-v1\n%.*s\n%s\n%s\n%s\n%s", (int)tslen, ts,
                 r->request_id, r->method, r->target, gh);
    mac = n > 0 ? EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, v->mac_key, v->mac_key_len,
                            (const unsigned char *)text, (size_t)n, md, sizeof(md), &maclen)
                : NULL;
    free(text);
    ERR_clear_error();
    if (!mac || maclen != 32)
        return -1;
    b64url32(md, out);
    return 0;
}

/* Checks X-Gateway-Request-MAC of <r> for grant <tok> at <now>: the exact
 * form "v1;t=T;mac=M", T within MOCK_MAC_SKEW_S, M right. NULL or why not. */
static const char *check_mac(const struct mock_verifier *v, const struct mock_assertion_req *r,
                             const char *tok, time_t now)
{
    const char *p = r->mac, *ts;
    size_t nd = 0;
    long long t = 0;
    char want[44];

    if (!p)
        return "X-Gateway-Request-MAC absent or repeated";
    if (!r->method || !r->target)
        return "request line unknown";
    if (strncmp(p, "v1;t=", 5) != 0)
        return "X-Gateway-Request-MAC malformed";
    ts = p + 5;
    while (ts[nd] >= '0' && ts[nd] <= '9' && nd < 19)
        t = t * 10 + (ts[nd++] - '0');
    if (nd == 0 || nd > 18 || (nd > 1 && ts[0] == '0') || strncmp(ts + nd, ";mac=", 5) != 0 ||
        strlen(ts + nd + 5) != 43)
        return "X-Gateway-Request-MAC malformed";
    if (t < (long long)now - MOCK_MAC_SKEW_S || t > (long long)now + MOCK_MAC_SKEW_S)
        return "X-Gateway-Request-MAC timestamp outside the allowed skew";
    if (expected_mac(v, r, ts, nd, tok, want) != 0)
        return "cannot compute the MAC";
    if (CRYPTO_memcmp(want, ts + nd + 5, 43) != 0)
        return "X-Gateway-Request-MAC does not match this request (request id, method, target, "
               "time or grant)";
    return NULL;
}

/* The base64url member <name> of JWK <k>, decoded; NULL if absent or bad. */
static unsigned char *jwk_member(json_t *k, const char *name, size_t *len)
{
    const char *s = json_string_value(json_object_get(k, name));

    return s ? b64url_decode(s, strlen(s), len) : NULL;
}

/* A public key of EVP_PKEY type <type> from the parameters in <bld>. */
static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = params ? EVP_PKEY_CTX_new_from_name(NULL, type, NULL) : NULL;
    EVP_PKEY *pkey = NULL;

    if (!ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

/* P-256 public key from the JWK's x and y (32 bytes each), checked to be a
 * point of the curve. */
static EVP_PKEY *jwk_ec_p256(json_t *k, const char **err)
{
    unsigned char pub[65];
    size_t xlen = 0, ylen = 0;
    unsigned char *x = jwk_member(k, "x", &xlen), *y = jwk_member(k, "y", &ylen);
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *check = NULL;

    *err = "EC key: x and y must be base64url of 32 bytes each";
    if (!x || !y || xlen != 32 || ylen != 32)
        goto out;
    pub[0] = 0x04; /* uncompressed point */
    memcpy(pub + 1, x, 32);
    memcpy(pub + 33, y, 32);
    *err = "out of memory";
    bld = OSSL_PARAM_BLD_new();
    if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub)))
        goto out;
    *err = "EC key: not a point of P-256";
    pkey = pkey_fromdata("EC", bld);
    check = pkey ? EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL) : NULL;
    if (!check || EVP_PKEY_public_check(check) != 1) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
out:
    EVP_PKEY_CTX_free(check);
    OSSL_PARAM_BLD_free(bld);
    free(x);
    free(y);
    return pkey;
}

/* RSA public key from the JWK's n and e (unsigned big-endian, no leading
 * zero octet, RFC 7518 §6.3.1); n of 2048 to 16384 bits. */
static EVP_PKEY *jwk_rsa(json_t *k, const char **err)
{
    size_t nlen = 0, elen = 0;
    unsigned char *n = jwk_member(k, "n", &nlen), *e = jwk_member(k, "e", &elen);
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY *pkey = NULL;

    *err = "RSA key: n and e must be base64url unsigned integers without leading zeros";
    if (!n || !e || n[0] == 0 || e[0] == 0 || elen > 8)
        goto out;
    *err = "RSA key: n must have 2048 to 16384 bits, n and e must be odd, e >= 3";
    if (nlen < 256 || nlen > 2048 || !(n[nlen - 1] & 1) || !(e[elen - 1] & 1) ||
        (elen == 1 && e[0] < 3))
        goto out;
    *err = "out of memory";
    bn_n = BN_bin2bn(n, (int)nlen, NULL);
    bn_e = BN_bin2bn(e, (int)elen, NULL);
    bld = OSSL_PARAM_BLD_new();
    if (!bn_n || !bn_e || !bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e))
        goto out;
    *err = "RSA key: refused by OpenSSL";
    pkey = pkey_fromdata("RSA", bld);
out:
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    free(n);
    free(e);
    return pkey;
}

static EVP_PKEY *jwk_ed25519(json_t *k, const char **err)
{
    size_t xlen = 0;
    unsigned char *x = jwk_member(k, "x", &xlen);
    EVP_PKEY *pkey = NULL;

    if (!x || xlen != 32)
        *err = "OKP key: x must be base64url of 32 bytes";
    else if (!(pkey = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, x, xlen)))
        *err = "OKP key: refused by OpenSSL";
    free(x);
    return pkey;
}

/* The algorithm JWK <k> is for, from its kty, crv and alg. Returns 1 with
 * <*alg> set; 0 for a key to skip (a kind the mock does not verify with, or
 * "use" other than "sig"); -1 with <*err> set for a key of a supported kind
 * whose alg does not fit it. */
static int jwk_alg(json_t *k, enum jws_alg *alg, const char **err)
{
    const char *kty = json_string_value(json_object_get(k, "kty"));
    const char *crv = json_string_value(json_object_get(k, "crv"));
    json_t *use = json_object_get(k, "use"), *a = json_object_get(k, "alg");
    const char *name = json_string_value(a);

    if (!kty) {
        *err = "a key has no string \"kty\"";
        return -1;
    }
    if (use && !json_is_string(use)) {
        *err = "\"use\" is not a string";
        return -1;
    }
    if (use && strcmp(json_string_value(use), "sig") != 0)
        return 0;
    if (strcmp(kty, "EC") == 0 && crv && strcmp(crv, "P-256") == 0)
        *alg = ALG_ES256;
    else if (strcmp(kty, "OKP") == 0 && crv && strcmp(crv, "Ed25519") == 0)
        *alg = ALG_EDDSA;
    else if (strcmp(kty, "RSA") == 0)
        *alg = name && strcmp(name, "PS256") == 0 ? ALG_PS256 : ALG_RS256;
    else
        return 0;
    if (a && !name) {
        *err = "\"alg\" is not a string";
        return -1;
    }
    if (*alg == ALG_RS256 && (!name || strcmp(name, "RS256") != 0)) {
        *err = "an RSA key needs \"alg\" RS256 or PS256";
        return -1;
    }
    if (name && strcmp(name, alg_names[*alg]) != 0) {
        *err = *alg == ALG_ES256 ? "an EC P-256 key can only be ES256"
                                 : "an Ed25519 key can only be EdDSA";
        return -1;
    }
    return 1;
}

/* Parses one JWK. Returns 1 with <out> filled; 0 for a key to skip; -1 with
 * <*err> set when a key of a supported kind is malformed. */
static int jwk_parse(json_t *k, struct mock_jwk *out, const char **err)
{
    static const char *const private_members[] = {"d", "p", "q", "dp", "dq", "qi", "oth"};
    const char *kid;
    enum jws_alg alg = ALG_ES256;
    EVP_PKEY *pkey;
    int r;

    if (!json_is_object(k)) {
        *err = "a key is not a JSON object";
        return -1;
    }
    if ((r = jwk_alg(k, &alg, err)) <= 0)
        return r;
    for (size_t i = 0; i < sizeof(private_members) / sizeof(private_members[0]); i++)
        if (json_object_get(k, private_members[i])) {
            *err = "private key material in the JWKS";
            return -1;
        }
    kid = json_string_value(json_object_get(k, "kid"));
    if (!kid || !*kid || strlen(kid) > MOCK_MAX_KID) {
        *err = "a key needs a \"kid\" string of 1 to 256 bytes";
        return -1;
    }
    pkey = alg == ALG_ES256   ? jwk_ec_p256(k, err)
           : alg == ALG_EDDSA ? jwk_ed25519(k, err)
                              : jwk_rsa(k, err);
    ERR_clear_error();
    if (!pkey)
        return -1;
    if (!(out->kid = strdup(kid))) {
        EVP_PKEY_free(pkey);
        *err = "out of memory";
        return -1;
    }
    out->alg = alg;
    out->pkey = pkey;
    return 1;
}

/* Reads the regular file <path> of at most MOCK_MAX_JWKS bytes and parses it
 * as JSON without duplicate names. Returns the document, or NULL with <err>. */
static json_t *jwks_read(const char *path, char *err, size_t errsz)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    char *text = NULL;
    size_t len = 0;
    json_t *root = NULL;
    json_error_t jerr;

    if (!f || fstat(fileno(f), &st) != 0) {
        snprintf(err, errsz, "%s", strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > MOCK_MAX_JWKS) {
        snprintf(err, errsz, "not a regular file of at most %d bytes", MOCK_MAX_JWKS);
        goto out;
    }
    if (!(text = malloc((size_t)st.st_size + 1))) {
        snprintf(err, errsz, "out of memory");
        goto out;
    }
    len = fread(text, 1, (size_t)st.st_size + 1, f);
    if (ferror(f) || len > (size_t)st.st_size) {
        snprintf(err, errsz, "read error or file growing");
        goto out;
    }
    if (!(root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr)))
        snprintf(err, errsz, "invalid JSON at line %d: %s", jerr.line, jerr.text);
out:
    free(text);
    if (f)
        fclose(f);
    return root;
}

int mock_jwks_load(const char *path, struct mock_keyset *out, size_t *skipped, char *err,
                   size_t errsz)
{
    json_t *root = jwks_read(path, err, errsz), *keys = json_object_get(root, "keys");
    struct mock_keyset ks = {0};
    size_t nkeys = json_array_size(keys);
    int rc = -1;

    *skipped = 0;
    if (!root)
        goto out;
    if (!json_is_object(root) || !json_is_array(keys)) {
        snprintf(err, errsz, "expected a JSON object with a \"keys\" array");
        goto out;
    }
    if (!(ks.keys = calloc(nkeys ? nkeys : 1, sizeof(*ks.keys)))) {
        snprintf(err, errsz, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nkeys; i++) {
        const char *why = NULL;
        struct mock_jwk k = {0};
        int r = jwk_parse(json_array_get(keys, i), &k, &why);
        if (r < 0) {
            snprintf(err, errsz, "keys[%zu]: %s", i, why);
            goto out;
        }
        if (r == 0) {
            (*skipped)++;
            continue;
        }
        ks.keys[ks.n++] = k; /* owned by <ks> from here on */
        if (keyset_find(&ks, k.kid) != &ks.keys[ks.n - 1]) {
            snprintf(err, errsz, "keys[%zu]: duplicate kid", i);
            goto out;
        }
    }
    if (ks.n == 0) {
        snprintf(err, errsz, "no usable key (EC P-256, RSA or OKP Ed25519, \"use\" absent or sig)");
        goto out;
    }
    *out = ks;
    ks = (struct mock_keyset){0};
    rc = 0;
out:
    mock_keyset_free(&ks);
    json_decref(root);
    return rc;
}

int mock_verifier_open(struct mock_verifier *v, const char *path, const char *aud, const char *iss,
                       bool quiet, char *err, size_t errsz)
{
    size_t skipped;

    *v = (struct mock_verifier){0};
    if (mock_jwks_load(path, &v->ks, &skipped, err, errsz) != 0)
        return -1;
    v->jwks_path = path;
    v->aud = aud ? aud : MOCK_DEFAULT_AUD;
    v->iss = iss;
    v->quiet = quiet;
    v->last_load_ms = monotonic_ms();
    if (!quiet)
        fprintf(stderr, MOCK_NAME ": jwks %s: %zu key(s), %zu skipped\n", path, v->ks.n, skipped);
    return 0;
}

void mock_verifier_reload(struct mock_verifier *v, const char *why)
{
    struct mock_keyset ks;
    size_t skipped;
    char err[256];

    v->last_load_ms = monotonic_ms();
    if (mock_jwks_load(v->jwks_path, &ks, &skipped, err, sizeof(err)) != 0) {
        fprintf(stderr, MOCK_NAME ": jwks reload (%s) failed, keeping %zu key(s): %s: %s\n", why,
                v->ks.n, v->jwks_path, err);
        return;
    }
    mock_keyset_free(&v->ks);
    v->ks = ks;
    if (!v->quiet)
        fprintf(stderr, MOCK_NAME ": jwks reloaded (%s): %zu key(s), %zu skipped\n", why, ks.n,
                skipped);
}

void mock_verifier_close(struct mock_verifier *v)
{
    mock_keyset_free(&v->ks);
    if (v->mac_key)
        OPENSSL_cleanse(v->mac_key, v->mac_key_len);
    free(v->mac_key);
    v->mac_key = NULL;
    seen_free(v->seen);
    v->seen = NULL;
}

/* ES256 signatures are R || S, 32 bytes each (RFC 7518 §3.4); OpenSSL wants
 * the DER ECDSA-Sig-Value. Returns the DER length (in <*der>, for
 * OPENSSL_free), or 0. */
static int es256_to_der(const unsigned char *sig, unsigned char **der)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
    int len = 0;

    if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
        r = s = NULL; /* owned by <es> now */
        len = i2d_ECDSA_SIG(es, der);
        if (len < 0)
            len = 0;
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return len;
}

/* Whether <sig> is key <k>'s signature of <tbs> under <k>'s algorithm. */
static bool verify_signature(const struct mock_jwk *k, const unsigned char *tbs, size_t tbslen,
                             const unsigned char *sig, size_t siglen)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char *der = NULL;
    bool rsa = k->alg == ALG_RS256 || k->alg == ALG_PS256;
    bool ok = false;

    if (siglen != (rsa ? (size_t)EVP_PKEY_get_size(k->pkey) : 64))
        goto out;
    if (!md || EVP_DigestVerifyInit(md, &pctx, k->alg == ALG_EDDSA ? NULL : EVP_sha256(), NULL,
                                    k->pkey) != 1)
        goto out;
    if (k->alg == ALG_RS256 && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
        goto out;
    if (k->alg == ALG_PS256 && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                                EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1 ||
                                EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) != 1))
        goto out;
    if (k->alg == ALG_ES256) {
        int derlen = es256_to_der(sig, &der);
        if (derlen <= 0)
            goto out;
        sig = der;
        siglen = (size_t)derlen;
    }
    ok = EVP_DigestVerify(md, sig, siglen, tbs, tbslen) == 1;
out:
    OPENSSL_free(der);
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    return ok;
}

/* Whether <aud> (a string or an array of strings) names <want>. Returns
 * NULL if it does, else why not. */
static const char *check_aud(json_t *aud, const char *want)
{
    size_t i;
    json_t *a;

    if (json_is_string(aud) && strcmp(json_string_value(aud), want) == 0)
        return NULL;
    if (json_is_array(aud)) {
        bool found = false;
        json_array_foreach(aud, i, a)
        {
            if (!json_is_string(a))
                return "aud array holds a non-string";
            found = found || strcmp(json_string_value(a), want) == 0;
        }
        if (found)
            return NULL;
    }
    return "aud absent or without the configured audience";
}

/* Checks the verified payload <c> against the configuration, the request
 * <r> and the time <now>. Returns NULL, or why it is refused. */
static const char *check_claims(const struct mock_verifier *v, json_t *c,
                                const struct mock_assertion_req *r, json_int_t now)
{
    json_t *exp = json_object_get(c, "exp"), *iat = json_object_get(c, "iat");
    json_t *nbf = json_object_get(c, "nbf"), *iss = json_object_get(c, "iss");
    const char *client_id = json_string_value(json_object_get(c, "client_id"));
    const char *request_id = json_string_value(json_object_get(c, "request_id"));
    const char *why;

    if (!json_is_integer(exp))
        return "exp absent or not an integer";
    if (json_integer_value(exp) < now - MOCK_LEEWAY_S)
        return "expired";
    if (!json_is_integer(iat))
        return "iat absent or not an integer";
    if (json_integer_value(iat) > now + MOCK_LEEWAY_S)
        return "iat in the future";
    if (nbf && !json_is_integer(nbf))
        return "nbf not an integer";
    if (nbf && json_integer_value(nbf) > now + MOCK_LEEWAY_S)
        return "nbf in the future";
    if ((why = check_aud(json_object_get(c, "aud"), v->aud)))
        return why;
    if (iss && !json_is_string(iss))
        return "iss not a string";
    if (v->iss && (!iss || strcmp(json_string_value(iss), v->iss) != 0))
        return "iss absent or not the configured issuer";
    if (!client_id || !*client_id)
        return "client_id absent or not a string";
    if (v->mac_key) {
        /* a grant: bound to this request by X-Gateway-Request-MAC */
        const char *mac = json_string_value(json_object_get(c, "mac"));
        if (!mac || strcmp(mac, "v1") != 0)
            return "not a grant (mac claim absent or not \"v1\")";
        if (!r->request_id)
            return "X-Request-ID absent or repeated";
    } else {
        if (!request_id || !*request_id)
            return "request_id absent or not a string";
        if (!r->request_id || strcmp(r->request_id, request_id) != 0)
            return "request_id differs from X-Request-ID (or header absent or repeated)";
    }
    if (!r->consumer_id || strcmp(r->consumer_id, client_id) != 0)
        return "client_id differs from X-Consumer-Id (or header absent or repeated)";
    return NULL;
}

/* The key for the token's protected header <header>, after a reload if the
 * kid is unknown and one is allowed. Returns NULL with <*why> set. */
static const struct mock_jwk *header_key(struct mock_verifier *v, json_t *header, const char **why)
{
    const char *alg = json_string_value(json_object_get(header, "alg"));
    const char *kid = json_string_value(json_object_get(header, "kid"));
    const struct mock_jwk *key;
    int a = 0;

    while (alg && a < ALG_COUNT && strcmp(alg, alg_names[a]) != 0)
        a++;
    if (!alg || a == ALG_COUNT) {
        *why = "alg absent or not ES256, RS256, PS256 or EdDSA";
        return NULL;
    }
    if (json_object_get(header, "crit")) {
        *why = "crit header parameter";
        return NULL;
    }
    if (!kid || !*kid || strlen(kid) > MOCK_MAX_KID) {
        *why = "kid absent or not a string of 1 to 256 bytes";
        return NULL;
    }
    key = keyset_find(&v->ks, kid);
    if (!key && monotonic_ms() - v->last_load_ms >= MOCK_JWKS_RETRY_MS) {
        mock_verifier_reload(v, "unknown kid");
        key = keyset_find(&v->ks, kid);
    }
    if (!key)
        *why = "unknown kid";
    else if (key->alg != (enum jws_alg)a)
        *why = "alg does not match the key";
    return *why ? NULL : key;
}

json_t *mock_assertion_verify(struct mock_verifier *v, const struct mock_assertion_req *r,
                              time_t now, const char **why)
{
    const char *tok = r->token, *d1, *d2;
    size_t len, hlen = 0, plen = 0, slen = 0;
    unsigned char *hdr = NULL, *pay = NULL, *sig = NULL;
    json_t *header = NULL, *claims = NULL;
    const struct mock_jwk *key;

    *why = NULL;
    if (!tok) {
        *why = "X-JWT-Assertion absent or repeated";
        goto out;
    }
    len = strlen(tok);
    if (len > MOCK_MAX_ASSERTION) {
        *why = "too long";
        goto out;
    }
    d1 = memchr(tok, '.', len);
    d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok))) {
        *why = "not 3 segments";
        goto out;
    }
    hdr = b64url_decode(tok, (size_t)(d1 - tok), &hlen);
    pay = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &plen);
    sig = b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - tok), &slen);
    if (!hdr || !pay || !sig) {
        *why = "a segment is empty or not strict base64url";
        goto out;
    }
    header = json_loadb((const char *)hdr, hlen, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(header)) {
        *why = "header is not a JSON object";
        goto out;
    }
    if (!(key = header_key(v, header, why)))
        goto out;
    if (!verify_signature(key, (const unsigned char *)tok, (size_t)(d2 - tok), sig, slen)) {
        *why = "bad signature";
        goto out;
    }
    claims = json_loadb((const char *)pay, plen, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(claims)) {
        *why = "payload is not a JSON object";
        goto out;
    }
    *why = check_claims(v, claims, r, (json_int_t)now);
    if (!*why && v->mac_key) {
        *why = check_mac(v, r, tok, now);
        if (!*why && seen_has(v->seen, r->request_id, now))
            *why = MOCK_WHY_REPLAY;
    }
out:
    if (*why) {
        json_decref(claims);
        claims = NULL;
    }
    json_decref(header);
    free(hdr);
    free(pay);
    free(sig);
    return claims;
}
