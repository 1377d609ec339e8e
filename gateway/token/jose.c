/*
 * JOSE for the gateway: strict base64url, JWK/JWKS, JWS compact sign and
 * verify, JWT claim checks. Contract: token/jose.h; the verification rules
 * and the attack table: docs/oauth2.md ("JWS verification and the attack
 * table").
 *
 * Every OpenSSL failure path ends with ERR_clear_error(): the error queue is
 * per thread and a worker's TLS code reads it (SSL_get_error), so a refused
 * token must not leave stale entries behind.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* vasprintf */
#endif
#include "token/jose.h"
#include "lib/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#define JWS_DEFAULT_MAX_LEN 8192
#define JWS_MAX_HEADER 1024 /* decoded bytes */
#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 16384 /* OpenSSL's own ceiling; bounds the cost of a verify */
#define PEM_MAX_BYTES 65536
#define CLAIM_TIME_MAX 253402300799LL /* 9999-12-31T23:59:59Z */
#define LEEWAY_MAX 86400L
#define SCOPE_MAX_LEN 128

/* Encoded length of <n> bytes, without padding. */
#define B64URL_LEN(n) ((n) / 3 * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))

/* ------------------------------------------------------------------ algs */

static const struct {
    gw_alg alg;
    const char *name;
} alg_names[] = {
    {GW_ALG_ES256, "ES256"},
    {GW_ALG_RS256, "RS256"},
    {GW_ALG_PS256, "PS256"},
    {GW_ALG_EDDSA, "EdDSA"},
};

gw_alg gw_alg_parse(const char *s)
{
    if (s == NULL)
        return GW_ALG_INVALID;
    for (size_t i = 0; i < sizeof(alg_names) / sizeof(alg_names[0]); i++)
        if (strcmp(s, alg_names[i].name) == 0)
            return alg_names[i].alg;
    return GW_ALG_INVALID;
}

const char *gw_alg_name(gw_alg a)
{
    for (size_t i = 0; i < sizeof(alg_names) / sizeof(alg_names[0]); i++)
        if (alg_names[i].alg == a)
            return alg_names[i].name;
    return "invalid";
}

static int alg_valid(gw_alg a)
{
    return a == GW_ALG_ES256 || a == GW_ALG_RS256 || a == GW_ALG_PS256 || a == GW_ALG_EDDSA;
}

/* ------------------------------------------------------------- base64url */

static const char b64url_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64url_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* <out> has room for B64URL_LEN(n) + 1. */
static void b64url_encode_into(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64url_chars[(v >> 18) & 63];
        out[o++] = b64url_chars[(v >> 12) & 63];
        out[o++] = b64url_chars[(v >> 6) & 63];
        out[o++] = b64url_chars[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64url_chars[(v >> 18) & 63];
        out[o++] = b64url_chars[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64url_chars[(v >> 18) & 63];
        out[o++] = b64url_chars[(v >> 12) & 63];
        out[o++] = b64url_chars[(v >> 6) & 63];
    }
    out[o] = '\0';
}

char *gw_b64url_encode(const unsigned char *in, size_t n)
{
    if (in == NULL && n > 0)
        return NULL;
    char *out = malloc(B64URL_LEN(n) + 1);
    if (out != NULL)
        b64url_encode_into(in, n, out);
    return out;
}

int gw_b64url_decode(const char *in, size_t n, unsigned char **out, size_t *outlen)
{
    if (out != NULL)
        *out = NULL;
    if (outlen != NULL)
        *outlen = 0;
    if (out == NULL || outlen == NULL || (in == NULL && n > 0))
        return -1;
    if (n % 4 == 1) /* 6 bits cannot make a byte */
        return -1;
    size_t olen = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
    unsigned char *o = malloc(olen + 1);
    if (o == NULL)
        return -1;
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_val((unsigned char)in[i]);
        if (v < 0) {
            free(o);
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[j++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) { /* the unused trailing bits must be zero (canonical form) */
        free(o);
        return -1;
    }
    o[j] = '\0';
    *out = o;
    *outlen = j;
    return 0;
}

/* ------------------------------------------------------------ small bits */

static void set_err(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(char **err, const char *fmt, ...)
{
    if (err == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(err, fmt, ap) < 0)
        *err = NULL;
    va_end(ap);
}

/* 1..64 printable ASCII, no space, '"' or '\\'. */
static int kid_ok(const char *s, size_t n)
{
    if (s == NULL || n < 1 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\')
            return 0;
    }
    return 1;
}

/* Whether <pk> is the one key type <alg> may use. NULL when it is, else a
 * short reason in <why>. */
static const char *key_fits(EVP_PKEY *pk, gw_alg alg, char *why, size_t whylen)
{
    char grp[64];
    size_t gl = 0;
    int bits;
    switch (alg) {
    case GW_ALG_ES256:
        if (pk == NULL || !EVP_PKEY_is_a(pk, "EC") ||
            EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, grp, sizeof(grp), &gl) !=
                1 ||
            strcmp(grp, "prime256v1") != 0) {
            ERR_clear_error();
            snprintf(why, whylen, "not a P-256 key (ES256)");
            return why;
        }
        return NULL;
    case GW_ALG_RS256:
    case GW_ALG_PS256:
        if (pk == NULL || !EVP_PKEY_is_a(pk, "RSA")) {
            snprintf(why, whylen, "not an RSA key (%s)", gw_alg_name(alg));
            return why;
        }
        bits = EVP_PKEY_get_bits(pk);
        if (bits < RSA_MIN_BITS) {
            snprintf(why, whylen, "RSA key shorter than %d bits (%s)", RSA_MIN_BITS,
                     gw_alg_name(alg));
            return why;
        }
        if (bits > RSA_MAX_BITS) {
            snprintf(why, whylen, "RSA key longer than %d bits (%s)", RSA_MAX_BITS,
                     gw_alg_name(alg));
            return why;
        }
        return NULL;
    case GW_ALG_EDDSA:
        if (pk == NULL || !EVP_PKEY_is_a(pk, "ED25519")) {
            snprintf(why, whylen, "not an Ed25519 key (EdDSA)");
            return why;
        }
        return NULL;
    default:
        snprintf(why, whylen, "unsupported algorithm");
        return why;
    }
}

/* ------------------------------------------------------------------ keys */

void gw_jwk_clear(gw_jwk *k)
{
    if (k == NULL)
        return;
    EVP_PKEY_free(k->pkey);
    memset(k, 0, sizeof(*k));
}

void gw_keyset_clear(gw_keyset *ks)
{
    if (ks == NULL)
        return;
    free(ks->issuer);
    for (size_t i = 0; i < ks->n; i++)
        gw_jwk_clear(&ks->keys[i]);
    free(ks->keys);
    memset(ks, 0, sizeof(*ks));
}

const gw_jwk *gw_keyset_find(const gw_keyset *ks, const char *kid)
{
    if (ks == NULL || kid == NULL)
        return NULL;
    for (size_t i = 0; i < ks->n; i++)
        if (strcmp(ks->keys[i].kid, kid) == 0)
            return &ks->keys[i];
    return NULL;
}

/* Never prompt for a passphrase (the default callback reads the terminal):
 * an encrypted key simply fails to load. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

int gw_jwk_load_pem(gw_jwk *k, const char *path, const char *kid, gw_alg alg, char **err)
{
    if (err != NULL)
        *err = NULL;
    if (k == NULL || path == NULL) {
        set_err(err, "no key or no path");
        return -1;
    }
    memset(k, 0, sizeof(*k));
    if (kid == NULL || !kid_ok(kid, strlen(kid))) {
        set_err(err, "invalid kid (1 to 64 printable ASCII characters, no space, '\"' or '\\')");
        return -1;
    }
    if (!alg_valid(alg)) {
        set_err(err, "unsupported algorithm (ES256, RS256, PS256 or EdDSA)");
        return -1;
    }

    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        set_err(err, "cannot read key file: %s", strerror(errno));
        return -1;
    }
    unsigned char *buf = malloc(PEM_MAX_BYTES + 1);
    if (buf == NULL) {
        fclose(f);
        set_err(err, "out of memory");
        return -1;
    }
    size_t len = fread(buf, 1, PEM_MAX_BYTES + 1, f);
    int rerr = ferror(f);
    fclose(f);
    if (rerr || len > PEM_MAX_BYTES) {
        OPENSSL_cleanse(buf, len);
        free(buf);
        set_err(err, rerr ? "cannot read key file" : "key file larger than 64 KiB");
        return -1;
    }

    int can_sign = 1;
    EVP_PKEY *pk = NULL;
    BIO *b = BIO_new_mem_buf(buf, (int)len);
    if (b != NULL)
        pk = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
    BIO_free(b);
    if (pk == NULL) {
        can_sign = 0;
        b = BIO_new_mem_buf(buf, (int)len);
        if (b != NULL)
            pk = PEM_read_bio_PUBKEY(b, NULL, no_passphrase, NULL);
        BIO_free(b);
    }
    ERR_clear_error();
    OPENSSL_cleanse(buf, len);
    free(buf);
    if (pk == NULL) {
        set_err(err, "no PEM key found (a PKCS#8 or traditional private key, or a PUBLIC "
                     "KEY; encrypted keys are not supported)");
        return -1;
    }
    char why[96];
    if (key_fits(pk, alg, why, sizeof(why)) != NULL) {
        EVP_PKEY_free(pk);
        set_err(err, "%s", why);
        return -1;
    }
    snprintf(k->kid, sizeof(k->kid), "%s", kid);
    k->alg = alg;
    k->pkey = pk;
    k->can_sign = can_sign;
    return 0;
}

void gw_x5t_s256(const unsigned char *der, size_t n, char out[48])
{
    unsigned char md[32];
    if ((der == NULL && n > 0) || gw_sha256(der, n, md) != 0) {
        ERR_clear_error();
        out[0] = '\0';
        return;
    }
    b64url_encode_into(md, sizeof(md), out);
}

int gw_x5t_from_hex(const char *hex, char out[48])
{
    unsigned char raw[32];
    if (hex == NULL || strlen(hex) != 64)
        return -1;
    for (size_t i = 0; i < 32; i++) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char c = hex[2 * i + (size_t)k];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0)
                return -1;
            v = v << 4 | d;
        }
        raw[i] = (unsigned char)v;
    }
    b64url_encode_into(raw, 32, out); /* 43 characters: no allocation per request */
    return 0;
}

/* ------------------------------------------------------------------ JWKS */

static const char *const private_members[] = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};

/* Decode member <name> of <o> (a base64url string) into <*out>. */
static int jwk_b64_member(const json_t *o, const char *name, unsigned char **out, size_t *len)
{
    const json_t *v = json_object_get(o, name);
    if (!json_is_string(v))
        return -1;
    return gw_b64url_decode(json_string_value(v), json_string_length(v), out, len);
}

static EVP_PKEY *pkey_from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *pk = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (params == NULL || c == NULL || EVP_PKEY_fromdata_init(c) != 1 ||
        EVP_PKEY_fromdata(c, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        EVP_PKEY_free(pk);
        pk = NULL;
    }
    EVP_PKEY_CTX_free(c);
    OSSL_PARAM_free(params);
    if (pk != NULL) {
        EVP_PKEY_CTX *chk = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
        if (chk == NULL || EVP_PKEY_public_check(chk) != 1) {
            EVP_PKEY_free(pk);
            pk = NULL;
        }
        EVP_PKEY_CTX_free(chk);
    }
    return pk;
}

/* One JWK of a set. 0, or -1 with a reason in <why>. */
static int jwk_from_json(const json_t *o, gw_jwk *k, char *why, size_t whylen)
{
    memset(k, 0, sizeof(*k));
    if (!json_is_object(o)) {
        snprintf(why, whylen, "not a JSON object");
        return -1;
    }
    for (size_t i = 0; i < sizeof(private_members) / sizeof(private_members[0]); i++) {
        if (json_object_get(o, private_members[i]) != NULL) {
            snprintf(why, whylen, "private key member \"%s\" refused (publish public keys only)",
                     private_members[i]);
            return -1;
        }
    }
    const json_t *kid = json_object_get(o, "kid");
    if (!json_is_string(kid)) {
        snprintf(why, whylen, "\"kid\" missing or not a string");
        return -1;
    }
    if (!kid_ok(json_string_value(kid), json_string_length(kid))) {
        snprintf(why, whylen,
                 "invalid kid (1 to 64 printable ASCII characters, no space, '\"' "
                 "or '\\')");
        return -1;
    }
    const json_t *use = json_object_get(o, "use");
    if (use != NULL && (!json_is_string(use) || strcmp(json_string_value(use), "sig") != 0)) {
        snprintf(why, whylen, "\"use\" must be \"sig\"");
        return -1;
    }
    const json_t *jalg = json_object_get(o, "alg");
    gw_alg alg = GW_ALG_INVALID;
    if (jalg != NULL) {
        if (!json_is_string(jalg) ||
            (alg = gw_alg_parse(json_string_value(jalg))) == GW_ALG_INVALID) {
            snprintf(why, whylen, "unsupported \"alg\" (ES256, RS256, PS256 or EdDSA)");
            return -1;
        }
    }
    const json_t *kty = json_object_get(o, "kty");
    if (!json_is_string(kty)) {
        snprintf(why, whylen, "\"kty\" missing or not a string");
        return -1;
    }
    const char *ktys = json_string_value(kty);
    const json_t *crv = json_object_get(o, "crv");
    const char *crvs = json_is_string(crv) ? json_string_value(crv) : "";

    EVP_PKEY *pk = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    unsigned char *a = NULL, *b = NULL;
    size_t al = 0, bl = 0;
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    int rc = -1;
    if (bld == NULL) {
        snprintf(why, whylen, "out of memory");
        goto out;
    }
    if (strcmp(ktys, "EC") == 0) {
        if (strcmp(crvs, "P-256") != 0) {
            snprintf(why, whylen, "unsupported curve (kty EC: P-256 only)");
            goto out;
        }
        if (alg != GW_ALG_INVALID && alg != GW_ALG_ES256) {
            snprintf(why, whylen, "\"alg\" %s does not fit kty EC (ES256)", gw_alg_name(alg));
            goto out;
        }
        alg = GW_ALG_ES256;
        if (jwk_b64_member(o, "x", &a, &al) < 0 || al != 32 ||
            jwk_b64_member(o, "y", &b, &bl) < 0 || bl != 32) {
            snprintf(why, whylen, "\"x\" and \"y\" must be 32 bytes in base64url");
            goto out;
        }
        unsigned char pt[65];
        pt[0] = 0x04; /* uncompressed point */
        memcpy(pt + 1, a, 32);
        memcpy(pt + 33, b, 32);
        if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) !=
                1 ||
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt)) != 1 ||
            (pk = pkey_from_params("EC", bld)) == NULL) {
            snprintf(why, whylen, "invalid EC public key (not a point of P-256)");
            goto out;
        }
    } else if (strcmp(ktys, "RSA") == 0) {
        if (alg == GW_ALG_INVALID)
            alg = GW_ALG_RS256;
        if (alg != GW_ALG_RS256 && alg != GW_ALG_PS256) {
            snprintf(why, whylen, "\"alg\" %s does not fit kty RSA (RS256 or PS256)",
                     gw_alg_name(alg));
            goto out;
        }
        if (jwk_b64_member(o, "n", &a, &al) < 0 || al == 0 || jwk_b64_member(o, "e", &b, &bl) < 0 ||
            bl == 0) {
            snprintf(why, whylen, "\"n\" and \"e\" must be non-empty base64url");
            goto out;
        }
        bn_n = BN_bin2bn(a, (int)al, NULL);
        bn_e = BN_bin2bn(b, (int)bl, NULL);
        if (bn_n == NULL || bn_e == NULL) {
            snprintf(why, whylen, "out of memory");
            goto out;
        }
        if (BN_num_bits(bn_n) < RSA_MIN_BITS || BN_num_bits(bn_n) > RSA_MAX_BITS) {
            snprintf(why, whylen, "RSA modulus of %d bits (%d to %d accepted)", BN_num_bits(bn_n),
                     RSA_MIN_BITS, RSA_MAX_BITS);
            goto out;
        }
        if (!BN_is_odd(bn_n) || !BN_is_odd(bn_e) || BN_num_bits(bn_e) < 2 ||
            BN_num_bits(bn_e) > 64) {
            snprintf(why, whylen, "invalid RSA public key (n and e must be odd, 3 <= e < 2^64)");
            goto out;
        }
        if (OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) != 1 ||
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) != 1 ||
            (pk = pkey_from_params("RSA", bld)) == NULL) {
            snprintf(why, whylen, "invalid RSA public key");
            goto out;
        }
    } else if (strcmp(ktys, "OKP") == 0) {
        if (strcmp(crvs, "Ed25519") != 0) {
            snprintf(why, whylen, "unsupported curve (kty OKP: Ed25519 only)");
            goto out;
        }
        if (alg != GW_ALG_INVALID && alg != GW_ALG_EDDSA) {
            snprintf(why, whylen, "\"alg\" %s does not fit kty OKP (EdDSA)", gw_alg_name(alg));
            goto out;
        }
        alg = GW_ALG_EDDSA;
        if (jwk_b64_member(o, "x", &a, &al) < 0 || al != 32) {
            snprintf(why, whylen, "\"x\" must be 32 bytes in base64url");
            goto out;
        }
        if (OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, a, al) != 1 ||
            (pk = pkey_from_params("ED25519", bld)) == NULL) {
            snprintf(why, whylen, "invalid Ed25519 public key");
            goto out;
        }
    } else {
        snprintf(why, whylen, "unsupported kty (EC, RSA or OKP)");
        goto out;
    }
    if (key_fits(pk, alg, why, whylen) != NULL)
        goto out;
    snprintf(k->kid, sizeof(k->kid), "%s", json_string_value(kid));
    k->alg = alg;
    k->pkey = pk;
    k->can_sign = 0;
    pk = NULL;
    rc = 0;
out:
    EVP_PKEY_free(pk);
    BN_free(bn_n);
    BN_free(bn_e);
    free(a);
    free(b);
    OSSL_PARAM_BLD_free(bld);
    ERR_clear_error();
    return rc;
}

int gw_jwks_parse(const char *text, size_t len, gw_keyset *out, char **err)
{
    if (err != NULL)
        *err = NULL;
    if (out == NULL || (text == NULL && len > 0)) {
        set_err(err, "no text or no output");
        return -1;
    }
    memset(out, 0, sizeof(*out));
    json_error_t je;
    json_t *root = json_loadb(text ? text : "", len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        set_err(err, "invalid JSON at line %d, column %d: %s", je.line, je.column, je.text);
        return -1;
    }
    const json_t *keys = json_object_get(root, "keys");
    if (!json_is_object(root) || !json_is_array(keys)) {
        json_decref(root);
        set_err(err, "not a JWK set (an object with a \"keys\" array)");
        return -1;
    }
    size_t n = json_array_size(keys);
    out->keys = calloc(n ? n : 1, sizeof(gw_jwk));
    if (out->keys == NULL) {
        json_decref(root);
        set_err(err, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char why[160];
        gw_jwk *k = &out->keys[i];
        if (jwk_from_json(json_array_get(keys, i), k, why, sizeof(why)) < 0) {
            set_err(err, "keys[%zu]: %s", i, why);
            goto fail;
        }
        if (gw_keyset_find(out, k->kid) != NULL) {
            set_err(err, "keys[%zu]: duplicate kid \"%s\"", i, k->kid);
            gw_jwk_clear(k);
            goto fail;
        }
        out->n++;
    }
    json_decref(root);
    return 0;
fail:
    json_decref(root);
    gw_keyset_clear(out);
    return -1;
}

static int json_set_b64(json_t *o, const char *name, const unsigned char *p, size_t n)
{
    char *s = gw_b64url_encode(p, n);
    int rc = s != NULL ? json_object_set_new(o, name, json_string(s)) : -1;
    free(s);
    return rc;
}

static int json_set_bn(json_t *o, const char *name, const BIGNUM *bn, int pad)
{
    int n = pad > 0 ? pad : BN_num_bytes(bn);
    if (n <= 0 || BN_num_bytes(bn) > n)
        return -1;
    unsigned char *p = malloc((size_t)n);
    if (p == NULL)
        return -1;
    int rc = BN_bn2binpad(bn, p, n) == n ? json_set_b64(o, name, p, (size_t)n) : -1;
    free(p);
    return rc;
}

static json_t *jwk_to_json(const gw_jwk *k)
{
    json_t *o = json_object();
    BIGNUM *b1 = NULL, *b2 = NULL;
    int ok = 0;
    char why[96];
    if (o == NULL || k->pkey == NULL || key_fits(k->pkey, k->alg, why, sizeof(why)) != NULL)
        goto out;
    switch (k->alg) {
    case GW_ALG_ES256:
        ok = json_object_set_new(o, "kty", json_string("EC")) == 0 &&
             json_object_set_new(o, "crv", json_string("P-256")) == 0 &&
             EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_EC_PUB_X, &b1) == 1 &&
             EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &b2) == 1 &&
             json_set_bn(o, "x", b1, 32) == 0 && json_set_bn(o, "y", b2, 32) == 0;
        break;
    case GW_ALG_RS256:
    case GW_ALG_PS256:
        ok = json_object_set_new(o, "kty", json_string("RSA")) == 0 &&
             EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_RSA_N, &b1) == 1 &&
             EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_RSA_E, &b2) == 1 &&
             json_set_bn(o, "n", b1, 0) == 0 && json_set_bn(o, "e", b2, 0) == 0;
        break;
    case GW_ALG_EDDSA: {
        unsigned char x[32];
        size_t xl = 0;
        ok = json_object_set_new(o, "kty", json_string("OKP")) == 0 &&
             json_object_set_new(o, "crv", json_string("Ed25519")) == 0 &&
             EVP_PKEY_get_octet_string_param(k->pkey, OSSL_PKEY_PARAM_PUB_KEY, x, sizeof(x), &xl) ==
                 1 &&
             xl == sizeof(x) && json_set_b64(o, "x", x, xl) == 0;
        break;
    }
    default:
        break;
    }
    ok = ok && json_object_set_new(o, "kid", json_string(k->kid)) == 0 &&
         json_object_set_new(o, "use", json_string("sig")) == 0 &&
         json_object_set_new(o, "alg", json_string(gw_alg_name(k->alg))) == 0;
out:
    BN_free(b1);
    BN_free(b2);
    ERR_clear_error();
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

char *gw_jwks_export(const gw_keyset *ks)
{
    json_t *root = json_object();
    json_t *arr = json_array();
    char *s = NULL;
    if (root == NULL || arr == NULL || json_object_set(root, "keys", arr) != 0)
        goto out;
    for (size_t i = 0; ks != NULL && i < ks->n; i++) {
        json_t *o = jwk_to_json(&ks->keys[i]);
        if (o == NULL || json_array_append_new(arr, o) != 0)
            goto out;
    }
    s = json_dumps(root, JSON_COMPACT);
out:
    json_decref(arr);
    json_decref(root);
    return s;
}

/* ------------------------------------------------------- signature core */

/* ECDSA signatures are malleable: (r, s) and (r, n - s) both verify. The
 * gateway signs and accepts only the low form (s <= n/2, as Bitcoin's
 * BIP 62 and libsecp256k1 do), so one token has exactly one valid string and
 * a token cache or a replay check keyed on the string cannot be sidestepped. */
static const unsigned char P256_N[32] = {
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};
static const unsigned char P256_HALF_N[32] = {
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8};

/* 1 when the big-endian 32-byte <s> is above floor(n/2) (n is odd: never
 * equal to n/2). Fixed-width big-endian compares like the numbers. */
static int es256_high_s(const unsigned char s[32])
{
    return memcmp(s, P256_HALF_N, 32) > 0;
}

/* <s> := n - <s> (0 < s < n), in place, big-endian. */
static void es256_negate_s(unsigned char s[32])
{
    unsigned borrow = 0;
    for (int i = 31; i >= 0; i--) {
        unsigned d = (unsigned)P256_N[i] - s[i] - borrow;
        s[i] = (unsigned char)d;
        borrow = (d >> 8) & 1;
    }
}

static int rsa_params(EVP_PKEY_CTX *pctx, gw_alg alg)
{
    if (alg == GW_ALG_RS256)
        return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) > 0;
    if (alg == GW_ALG_PS256)
        return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
               EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) > 0 &&
               EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, gw_sha256_md()) > 0;
    return 1;
}

int gw_jws_sign_input(const gw_jwk *key, const unsigned char *in, size_t n, unsigned char **sig,
                      size_t *siglen)
{
    if (sig != NULL)
        *sig = NULL;
    if (siglen != NULL)
        *siglen = 0;
    char why[96];
    if (key == NULL || !key->can_sign || key->pkey == NULL || sig == NULL || siglen == NULL ||
        (in == NULL && n > 0) || key_fits(key->pkey, key->alg, why, sizeof(why)) != NULL)
        return -1;
    int max = EVP_PKEY_get_size(key->pkey);
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char *raw = max > 0 ? malloc((size_t)max) : NULL;
    ECDSA_SIG *es = NULL;
    size_t rl = max > 0 ? (size_t)max : 0;
    int rc = -1;
    if (mc == NULL || raw == NULL ||
        EVP_DigestSignInit(mc, &pctx, key->alg == GW_ALG_EDDSA ? NULL : gw_sha256_md(), NULL,
                           key->pkey) != 1 ||
        !rsa_params(pctx, key->alg) ||
        EVP_DigestSign(mc, raw, &rl, in ? in : (const void *)"", n) != 1)
        goto out;
    if (key->alg == GW_ALG_ES256) {
        /* DER SEQUENCE { r, s } -> R || S, 32 bytes each (RFC 7518 §3.4) */
        const unsigned char *p = raw;
        const BIGNUM *r = NULL, *s = NULL;
        es = d2i_ECDSA_SIG(NULL, &p, (long)rl);
        if (es == NULL || p != raw + rl)
            goto out;
        ECDSA_SIG_get0(es, &r, &s);
        unsigned char *o = malloc(64);
        if (o == NULL)
            goto out;
        if (BN_bn2binpad(r, o, 32) != 32 || BN_bn2binpad(s, o + 32, 32) != 32) {
            free(o);
            goto out;
        }
        if (es256_high_s(o + 32))
            es256_negate_s(o + 32); /* low-S: the only form we accept */
        free(raw);
        raw = o;
        rl = 64;
    }
    *sig = raw;
    *siglen = rl;
    raw = NULL;
    rc = 0;
out:
    ECDSA_SIG_free(es);
    free(raw);
    EVP_MD_CTX_free(mc);
    ERR_clear_error();
    return rc;
}

static int check_sig(const gw_jwk *key, const unsigned char *in, size_t n, const unsigned char *sig,
                     size_t siglen, int allow_high_s)
{
    char why[96];
    if (key == NULL || key->pkey == NULL || (in == NULL && n > 0) || sig == NULL ||
        key_fits(key->pkey, key->alg, why, sizeof(why)) != NULL)
        return 0;
    size_t want;
    switch (key->alg) {
    case GW_ALG_ES256:
    case GW_ALG_EDDSA:
        want = 64;
        break;
    default:
        want = (size_t)EVP_PKEY_get_size(key->pkey); /* the modulus length */
        break;
    }
    if (siglen != want)
        return 0;
    if (key->alg == GW_ALG_ES256 && !allow_high_s && es256_high_s(sig + 32))
        return 0; /* the malleable twin of a valid signature */

    const unsigned char *vsig = sig;
    size_t vlen = siglen;
    unsigned char *der = NULL;
    ECDSA_SIG *es = NULL;
    EVP_MD_CTX *mc = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    int ok = 0;
    if (key->alg == GW_ALG_ES256) {
        /* R || S -> DER for OpenSSL */
        BIGNUM *r = BN_bin2bn(sig, 32, NULL);
        BIGNUM *s = BN_bin2bn(sig + 32, 32, NULL);
        es = ECDSA_SIG_new();
        if (r == NULL || s == NULL || es == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
            BN_free(r);
            BN_free(s);
            goto out;
        }
        int dl = i2d_ECDSA_SIG(es, &der);
        if (dl <= 0)
            goto out;
        vsig = der;
        vlen = (size_t)dl;
    }
    mc = EVP_MD_CTX_new();
    if (mc == NULL ||
        EVP_DigestVerifyInit(mc, &pctx, key->alg == GW_ALG_EDDSA ? NULL : gw_sha256_md(), NULL,
                             key->pkey) != 1 ||
        !rsa_params(pctx, key->alg))
        goto out;
    ok = EVP_DigestVerify(mc, vsig, vlen, in ? in : (const void *)"", n) == 1;
out:
    EVP_MD_CTX_free(mc);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    ERR_clear_error();
    return ok;
}

int gw_jws_check_sig(const gw_jwk *key, const unsigned char *in, size_t n, const unsigned char *sig,
                     size_t siglen)
{
    return check_sig(key, in, n, sig, siglen, 0);
}

/* ------------------------------------------------------------ JWS compact */

char *gw_jws_sign(const gw_jwk *key, const char *typ, const json_t *payload)
{
    if (key == NULL || !key->can_sign || !kid_ok(key->kid, strlen(key->kid)) ||
        !alg_valid(key->alg) || !json_is_object(payload))
        return NULL;
    json_t *h = json_object();
    char *hs = NULL, *ps = NULL, *hb = NULL, *pb = NULL, *tok = NULL;
    unsigned char *sig = NULL;
    size_t siglen = 0;
    if (h == NULL || json_object_set_new(h, "alg", json_string(gw_alg_name(key->alg))) != 0 ||
        (typ != NULL && json_object_set_new(h, "typ", json_string(typ)) != 0) ||
        json_object_set_new(h, "kid", json_string(key->kid)) != 0)
        goto out;
    hs = json_dumps(h, JSON_COMPACT);
    ps = json_dumps(payload, JSON_COMPACT);
    if (hs == NULL || ps == NULL)
        goto out;
    hb = gw_b64url_encode((const unsigned char *)hs, strlen(hs));
    pb = gw_b64url_encode((const unsigned char *)ps, strlen(ps));
    if (hb == NULL || pb == NULL)
        goto out;
    size_t hl = strlen(hb), pl = strlen(pb);
    tok = malloc(hl + 1 + pl + 1 + B64URL_LEN((size_t)EVP_PKEY_get_size(key->pkey)) + 1);
    if (tok == NULL)
        goto out;
    memcpy(tok, hb, hl);
    tok[hl] = '.';
    memcpy(tok + hl + 1, pb, pl);
    if (gw_jws_sign_input(key, (const unsigned char *)tok, hl + 1 + pl, &sig, &siglen) < 0) {
        free(tok);
        tok = NULL;
        goto out;
    }
    tok[hl + 1 + pl] = '.';
    b64url_encode_into(sig, siglen, tok + hl + 1 + pl + 1);
out:
    json_decref(h);
    free(hs);
    free(ps);
    free(hb);
    free(pb);
    free(sig);
    return tok;
}

void gw_jws_clear(gw_jws *j)
{
    if (j == NULL)
        return;
    json_decref(j->header);
    json_decref(j->payload);
    memset(j, 0, sizeof(*j));
}

static int typ_ok(const json_t *typ)
{
    if (typ == NULL)
        return 1;
    if (!json_is_string(typ))
        return 0;
    const char *s = json_string_value(typ);
    return strcasecmp(s, "JWT") == 0 || strcasecmp(s, "at+jwt") == 0 ||
           strcasecmp(s, "application/at+jwt") == 0;
}

const char *gw_jws_verify(const char *token, size_t len, const gw_keyset *const *sets, size_t nsets,
                          const gw_jws_rules *rules, gw_jws *out)
{
    if (out == NULL)
        return "jws.malformed";
    memset(out, 0, sizeof(*out));
    if (token == NULL || rules == NULL || (sets == NULL && nsets > 0))
        return "jws.malformed";
    size_t max = rules->max_len ? rules->max_len : JWS_DEFAULT_MAX_LEN;
    if (len > max)
        return "jws.too_large";

    /* exactly three segments; header and payload not empty */
    const char *d1 = memchr(token, '.', len);
    if (d1 == NULL)
        return "jws.malformed";
    const char *d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token));
    if (d2 == NULL)
        return "jws.malformed";
    const char *sg = d2 + 1;
    size_t hl = (size_t)(d1 - token), pl = (size_t)(d2 - d1 - 1);
    size_t sl = len - (size_t)(sg - token);
    if (memchr(sg, '.', sl) != NULL || hl == 0 || pl == 0)
        return "jws.malformed";
    if (hl > B64URL_LEN(JWS_MAX_HEADER))
        return "jws.too_large";

    const char *reason = "jws.malformed";
    unsigned char *hdr = NULL, *pay = NULL, *sig = NULL;
    size_t hdrn = 0, payn = 0, sign = 0;
    json_t *h = NULL, *p = NULL;
    const gw_jwk *key = NULL;
    const gw_keyset *set = NULL;
    json_error_t je;
    if (gw_b64url_decode(token, hl, &hdr, &hdrn) < 0 ||
        gw_b64url_decode(d1 + 1, pl, &pay, &payn) < 0 || gw_b64url_decode(sg, sl, &sig, &sign) < 0)
        goto out;
    if (hdrn > JWS_MAX_HEADER) {
        reason = "jws.too_large";
        goto out;
    }
    h = json_loadb((const char *)hdr, hdrn, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(h) || !typ_ok(json_object_get(h, "typ")))
        goto out;

    const json_t *ja = json_object_get(h, "alg");
    gw_alg alg = json_is_string(ja) ? gw_alg_parse(json_string_value(ja)) : GW_ALG_INVALID;
    int allowed = 0;
    for (size_t i = 0; alg != GW_ALG_INVALID && rules->algs != NULL && i < rules->nalgs; i++)
        allowed |= rules->algs[i] == alg;
    if (!allowed) {
        reason = "jws.alg";
        goto out;
    }
    const json_t *jk = json_object_get(h, "kid");
    if (!json_is_string(jk)) {
        reason = "jws.kid";
        goto out;
    }
    if (json_object_get(h, "crit") != NULL) {
        reason = "jws.crit";
        goto out;
    }
    /* A kid that is not well-formed cannot name any key: not looked up. */
    if (kid_ok(json_string_value(jk), json_string_length(jk))) {
        for (size_t i = 0; key == NULL && i < nsets; i++) {
            if (sets[i] != NULL && (key = gw_keyset_find(sets[i], json_string_value(jk))) != NULL)
                set = sets[i];
        }
    }
    if (key == NULL) {
        reason = "jws.unknown_kid";
        goto out;
    }
    char why[96];
    if (key->alg != alg || key_fits(key->pkey, alg, why, sizeof(why)) != NULL) {
        reason = "jws.alg_key_mismatch";
        goto out;
    }
    if (!check_sig(key, (const unsigned char *)token, hl + 1 + pl, sig, sign,
                   rules->allow_high_s)) {
        reason = "jws.signature";
        goto out;
    }
    /* the payload is parsed only once its signature is known good */
    p = json_loadb((const char *)pay, payn, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(p)) {
        reason = "jws.malformed";
        goto out;
    }
    out->header = h;
    out->payload = p;
    out->alg = alg;
    out->key = key;
    out->set = set;
    h = p = NULL;
    reason = NULL;
out:
    json_decref(h);
    json_decref(p);
    free(hdr);
    free(pay);
    free(sig);
    return reason;
}

/* ------------------------------------------------------------ JWT claims */

/* Copy string claim <name> into <dst>/<cap>: 1..cap-1 bytes. Absent: ""
 * and 0 unless <required>. */
static int claim_str(const json_t *o, const char *name, char *dst, size_t cap, int required)
{
    const json_t *v = json_object_get(o, name);
    dst[0] = '\0';
    if (v == NULL)
        return required ? -1 : 0;
    if (!json_is_string(v))
        return -1;
    size_t n = json_string_length(v);
    if (n == 0 || n >= cap)
        return -1;
    memcpy(dst, json_string_value(v), n);
    dst[n] = '\0';
    return 0;
}

/* A NumericDate as a JSON integer in 0..9999-12-31. */
static int claim_time(const json_t *o, const char *name, time_t *t, int required)
{
    const json_t *v = json_object_get(o, name);
    *t = 0;
    if (v == NULL)
        return required ? -1 : 0;
    if (!json_is_integer(v))
        return -1;
    json_int_t x = json_integer_value(v);
    if (x < 0 || x > CLAIM_TIME_MAX)
        return -1;
    *t = (time_t)x;
    return 0;
}

static int scope_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == ':' || c == '-';
}

/* Split c->scope (already copied) into c->scope_buf / c->scopes. */
static int split_scopes(gw_claims *c)
{
    memcpy(c->scope_buf, c->scope, sizeof(c->scope_buf));
    c->nscopes = 0;
    char *p = c->scope_buf;
    for (;;) {
        char *start = p;
        while (*p != '\0' && *p != ' ') {
            if (!scope_char((unsigned char)*p))
                return -1;
            p++;
        }
        size_t n = (size_t)(p - start);
        if (n == 0 || n > SCOPE_MAX_LEN || c->nscopes == GW_JWT_MAX_SCOPES)
            return -1;
        c->scopes[c->nscopes++] = start;
        if (*p == '\0')
            return 0;
        *p++ = '\0'; /* a trailing space leaves an empty item: refused above */
    }
}

static int x5t_ok(const json_t *v)
{
    unsigned char *d = NULL;
    size_t dl = 0;
    if (!json_is_string(v) || json_string_length(v) != 43 ||
        gw_b64url_decode(json_string_value(v), 43, &d, &dl) < 0)
        return 0;
    free(d);
    return dl == 32;
}

/* On failure the claims read before the failing check stay in <out>: every
 * type-checked claim when the reason is not "jwt.claims" (so the caller can
 * journal jti and client_id of an expired token). */
const char *gw_jwt_check(const json_t *payload, const gw_jwt_rules *r, gw_claims *out)
{
    if (out == NULL)
        return "jwt.claims";
    memset(out, 0, sizeof(*out));
    if (r == NULL || !json_is_object(payload))
        return "jwt.claims";

    /* 1. presence, types and sizes */
    if (claim_str(payload, "iss", out->iss, sizeof(out->iss), 1) < 0 ||
        claim_str(payload, "sub", out->sub, sizeof(out->sub), 0) < 0 ||
        claim_str(payload, "client_id", out->client_id, sizeof(out->client_id), 1) < 0 ||
        claim_str(payload, "jti", out->jti, sizeof(out->jti), 1) < 0 ||
        claim_str(payload, "habilitation", out->habilitation, sizeof(out->habilitation), 0) < 0 ||
        claim_str(payload, "keytype", out->keytype, sizeof(out->keytype), 0) < 0 ||
        claim_str(payload, "scope", out->scope, sizeof(out->scope), 1) < 0 ||
        split_scopes(out) < 0 || claim_time(payload, "exp", &out->exp, 1) < 0 ||
        claim_time(payload, "iat", &out->iat, 1) < 0 ||
        claim_time(payload, "nbf", &out->nbf, 0) < 0)
        return "jwt.claims";
    const json_t *aud = json_object_get(payload, "aud");
    int aud_match = 0;
    if (json_is_string(aud)) {
        aud_match = r->audience == NULL || strcmp(json_string_value(aud), r->audience) == 0;
    } else if (json_is_array(aud) && json_array_size(aud) > 0) {
        size_t i;
        json_t *e;
        json_array_foreach(aud, i, e)
        {
            if (!json_is_string(e))
                return "jwt.claims";
            if (r->audience == NULL || strcmp(json_string_value(e), r->audience) == 0)
                aud_match = 1;
        }
    } else {
        return "jwt.claims";
    }

    /* 2. cnf (malformed is its own reason) */
    const json_t *cnf = json_object_get(payload, "cnf");
    int cnf_bad = 0;
    if (cnf != NULL) {
        const json_t *x = json_is_object(cnf) ? json_object_get(cnf, "x5t#S256") : NULL;
        if (x5t_ok(x)) {
            memcpy(out->cnf_x5t, json_string_value(x), 44);
            out->has_cnf = 1;
        } else {
            cnf_bad = 1;
        }
    }

    /* 3. values */
    if (r->issuer != NULL && strcmp(out->iss, r->issuer) != 0)
        return "jwt.iss";
    if (!aud_match)
        return "jwt.aud";
    long long lw = r->leeway_s < 0 ? 0 : r->leeway_s > LEEWAY_MAX ? LEEWAY_MAX : r->leeway_s;
    long long now = (long long)r->now;
    if (now > (long long)out->exp + lw)
        return "jwt.expired";
    if (now + lw < (long long)out->nbf) /* 0 when absent */
        return "jwt.not_yet_valid";
    if ((long long)out->iat > now + lw)
        return "jwt.iat_future";
    if (cnf_bad || (cnf == NULL && r->require_cnf))
        return "jwt.cnf";
    return NULL;
}

int gw_claims_has_scope(const gw_claims *c, const char *scope)
{
    if (c == NULL || scope == NULL || scope[0] == '\0')
        return 0;
    /* on the space-separated text, so that a plain struct copy still works */
    size_t n = strlen(scope);
    const char *p = c->scope;
    while (*p != '\0') {
        const char *e = strchr(p, ' ');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && memcmp(p, scope, n) == 0)
            return 1;
        if (e == NULL)
            break;
        p = e + 1;
    }
    return 0;
}
