/* Unit tests for gateway/token/jose.c: strict base64url, PEM key loading
 * and key-type binding, JWKS parse/export (round trip, refusals), JWS sign
 * and verify for ES256/RS256/PS256/EdDSA (with RFC 7515 A.3 and RFC 8037
 * A.4 known answers), the attack table of docs/oauth2.md (each attack
 * rejected with its exact reason) and the JWT claim checks.
 *
 * Keys are generated at test time (P-256, 2 x RSA-2048, Ed25519, an
 * attacker's P-256, and refused ones: P-384, RSA-1024, an encrypted key),
 * written as PEM to a mkdtemp directory, and loaded with gw_jwk_load_pem.
 * Every token handed to gw_jws_verify sits in a buffer of exactly its length
 * (no NUL after it), so that ASan sees any read past the end. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "token/jose.h"

#define NOW 1750000000
#define ISS "https://gw.test"
#define AUD "api-opale"
#define X5T_EMPTY "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU" /* SHA-256("") */

/* A valid access token of this gateway at NOW (exp NOW+3600). */
#define PL_OK                                                                                      \
    "{\"iss\":\"" ISS "\",\"sub\":\"commune-exemple-sandbox\",\"client_id\":\"commune-exemple-"    \
    "sandbox\",\"aud\":\"" AUD "\",\"exp\":1750003600,\"iat\":1750000000,\"nbf\":1750000000,"      \
    "\"jti\":\"0f9c2b2e-6a43-4f57-9d59-8a4a2b0c1d11\",\"scope\":\"api_opale_declarations "         \
    "api_opale_ir\",\"habilitation\":\"H42\",\"keytype\":\"SANDBOX\",\"cnf\":{\"x5t#S256\":"       \
    "\"" X5T_EMPTY "\"}}"
#define PL_OTHER                                                                                   \
    "{\"iss\":\"" ISS "\",\"client_id\":\"caisse-secu-sandbox\",\"aud\":\"" AUD "\","              \
    "\"exp\":1750003600,\"iat\":1750000000,\"jti\":\"other\",\"scope\":\"api_opale_ir\","          \
    "\"cnf\":{\"x5t#S256\":\"" X5T_EMPTY "\"}}"

#define H_EC "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"ec-1\"}"
#define H_RSA "{\"alg\":\"RS256\",\"typ\":\"at+jwt\",\"kid\":\"rsa-1\"}"

/* ---------------------------------------------------------------- fixture */

enum { K_EC, K_RSA, K_PS, K_ED, K_N };
static const gw_alg key_algs[K_N] = {GW_ALG_ES256, GW_ALG_RS256, GW_ALG_PS256, GW_ALG_EDDSA};
static const char *const key_kids[K_N] = {"ec-1", "rsa-1", "ps-1", "ed-1"};
static const char *const key_files[K_N] = {"ec.pem", "rsa.pem", "ps.pem", "ed.pem"};

static char dir[PATH_MAX];
static gw_keyset ours;                        /* issuer ISS: the four private keys above */
static gw_keyset evil;                        /* the attacker's P-256 key, kid "evil-1" */
static gw_keyset ext;                         /* another issuer, kid "ext-1" (P-256) */
static char *rsa_pub_pem;                     /* the text of rsa-1's public key PEM */
static char *evil_jwk;                        /* the attacker's public JWK (JSON object text) */
static char *rsa1024_n;                       /* base64url modulus of a 1024-bit key */
static char *jwk_n, *jwk_x, *jwk_y, *jwk_okp; /* members of ours' export */

static const gw_alg all_algs[] = {GW_ALG_ES256, GW_ALG_RS256, GW_ALG_PS256, GW_ALG_EDDSA};

static void die(const char *what)
{
    fprintf(stderr, "fixture: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(2);
}

static char *fpath(const char *name)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", dir, name) < 0)
        die("asprintf");
    return p;
}

static void write_key(const char *name, EVP_PKEY *pk, int pub, const EVP_CIPHER *enc)
{
    char *p = fpath(name);
    FILE *f = fopen(p, "w");
    if (f == NULL)
        die(p);
    int ok = pub ? PEM_write_PUBKEY(f, pk)
                 : PEM_write_PrivateKey(f, pk, enc, enc ? (unsigned char *)"secret" : NULL,
                                        enc ? 6 : 0, NULL, NULL);
    if (!ok || fclose(f) != 0)
        die(p);
    free(p);
}

static void write_text(const char *name, const char *text)
{
    char *p = fpath(name);
    FILE *f = fopen(p, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
        die(p);
    free(p);
}

static char *read_text(const char *name)
{
    char *p = fpath(name);
    FILE *f = fopen(p, "r");
    if (f == NULL)
        die(p);
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    free(p);
    return buf;
}

static void load_into(gw_keyset *ks, size_t i, const char *file, const char *kid, gw_alg alg)
{
    char *p = fpath(file), *err = NULL;
    if (gw_jwk_load_pem(&ks->keys[i], p, kid, alg, &err) != 0) {
        fprintf(stderr, "load %s: %s\n", file, err ? err : "?");
        die("gw_jwk_load_pem");
    }
    free(p);
}

static char *bn_param_b64(EVP_PKEY *pk, const char *param)
{
    BIGNUM *bn = NULL;
    if (EVP_PKEY_get_bn_param(pk, param, &bn) != 1)
        die("get_bn_param");
    unsigned char buf[1024];
    int n = BN_bn2bin(bn, buf);
    BN_free(bn);
    return gw_b64url_encode(buf, (size_t)n);
}

static char *json_member(json_t *o, const char *name)
{
    const char *s = json_string_value(json_object_get(o, name));
    if (s == NULL)
        die(name);
    return strdup(s);
}

static void fixture_up(void)
{
    char tmpl[] = "/tmp/gw-test-jose.XXXXXX";
    if (mkdtemp(tmpl) == NULL || realpath(tmpl, dir) == NULL)
        die("mkdtemp");

    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ps = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    EVP_PKEY *ev = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *ex = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    EVP_PKEY *r1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    if (!ec || !rsa || !ps || !ed || !ev || !ex || !p384 || !r1024)
        die("keygen");
    write_key("ec.pem", ec, 0, NULL);
    write_key("ec.pub.pem", ec, 1, NULL);
    write_key("rsa.pem", rsa, 0, NULL);
    write_key("rsa.pub.pem", rsa, 1, NULL);
    write_key("ps.pem", ps, 0, NULL);
    write_key("ed.pem", ed, 0, NULL);
    write_key("ed.pub.pem", ed, 1, NULL);
    write_key("evil.pem", ev, 0, NULL);
    write_key("ext.pem", ex, 0, NULL);
    write_key("p384.pem", p384, 0, NULL);
    write_key("rsa1024.pem", r1024, 0, NULL);
    write_key("enc.pem", ec, 0, EVP_aes_256_cbc());
    write_text("garbage.pem", "-----BEGIN PRIVATE KEY-----\nnot base64 at all\n"
                              "-----END PRIVATE KEY-----\n");
    write_text("empty.pem", "");
    rsa1024_n = bn_param_b64(r1024, OSSL_PKEY_PARAM_RSA_N);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ps);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(ev);
    EVP_PKEY_free(ex);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(r1024);

    ours.issuer = strdup(ISS);
    ours.keys = calloc(K_N, sizeof(gw_jwk));
    for (size_t i = 0; i < K_N; i++)
        load_into(&ours, i, key_files[i], key_kids[i], key_algs[i]);
    ours.n = K_N;
    evil.keys = calloc(1, sizeof(gw_jwk));
    load_into(&evil, 0, "evil.pem", "evil-1", GW_ALG_ES256);
    evil.n = 1;
    ext.issuer = strdup("https://idp.test");
    ext.keys = calloc(1, sizeof(gw_jwk));
    load_into(&ext, 0, "ext.pem", "ext-1", GW_ALG_ES256);
    ext.n = 1;
    rsa_pub_pem = read_text("rsa.pub.pem");

    char *js = gw_jwks_export(&evil);
    json_t *j = js ? json_loads(js, 0, NULL) : NULL;
    if (j == NULL)
        die("export evil");
    evil_jwk = json_dumps(json_array_get(json_object_get(j, "keys"), 0), JSON_COMPACT);
    json_decref(j);
    free(js);

    js = gw_jwks_export(&ours);
    j = js ? json_loads(js, 0, NULL) : NULL;
    if (j == NULL)
        die("export ours");
    json_t *keys = json_object_get(j, "keys");
    jwk_x = json_member(json_array_get(keys, K_EC), "x");
    jwk_y = json_member(json_array_get(keys, K_EC), "y");
    jwk_n = json_member(json_array_get(keys, K_RSA), "n");
    jwk_okp = json_member(json_array_get(keys, K_ED), "x");
    json_decref(j);
    free(js);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void fixture_down(void)
{
    gw_keyset_clear(&ours);
    gw_keyset_clear(&evil);
    gw_keyset_clear(&ext);
    free(rsa_pub_pem);
    free(evil_jwk);
    free(rsa1024_n);
    free(jwk_n);
    free(jwk_x);
    free(jwk_y);
    free(jwk_okp);
    if (dir[0] != '\0')
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    dir[0] = '\0';
}

/* ---------------------------------------------------------------- helpers */

/* <s> with every "$NAME" replaced (see the cases below). malloc'd. */
static char *subst(const char *s)
{
    char big[1101], huge[9001];
    memset(big, 'A', 1100);
    big[1100] = '\0';
    memset(huge, 'A', 9000);
    huge[9000] = '\0';
    const struct {
        const char *k;
        const char *v;
    } tab[] = {
        {"$JWK", evil_jwk}, {"$BIG", big}, {"$HUGE", huge}, {"$N1024", rsa1024_n},
        {"$N", jwk_n},      {"$X", jwk_x}, {"$Y", jwk_y},   {"$O", jwk_okp},
    };
    const size_t ntab = sizeof(tab) / sizeof(tab[0]);
    char *out = NULL;
    size_t olen = 0;
    FILE *m = open_memstream(&out, &olen);
    ck_assert_ptr_nonnull(m);
    while (*s != '\0') {
        if (*s != '$') {
            fputc(*s++, m);
            continue;
        }
        size_t i = 0;
        while (i < ntab && strncmp(s, tab[i].k, strlen(tab[i].k)) != 0)
            i++;
        ck_assert_msg(i < ntab, "unknown substitution at %s", s);
        fputs(tab[i].v, m);
        s += strlen(tab[i].k);
    }
    fclose(m);
    return out;
}

static char *b64s(const void *p, size_t n)
{
    char *s = gw_b64url_encode(p, n);
    ck_assert_ptr_nonnull(s);
    return s;
}

enum {
    S_NONE,     /* no signature: "h.p." */
    S_EC,       /* ours, ec-1 */
    S_RSA,      /* ours, rsa-1 (PKCS#1 v1.5) */
    S_PS,       /* ours, ps-1 (PSS) */
    S_ED,       /* ours, ed-1 */
    S_RSA_PSS,  /* rsa-1's private key, but PSS */
    S_EVIL,     /* the attacker's P-256 key */
    S_HS256PEM, /* HMAC-SHA256, secret = rsa-1's public key PEM text */
    S_HS512PEM, /* HMAC-SHA512, same secret */
};

/* The signature of <in>/<n> by <signer>, base64url. */
static char *sign_b64(int signer, const char *in, size_t n)
{
    unsigned char *sig = NULL, mac[EVP_MAX_MD_SIZE];
    unsigned int macl = 0;
    size_t sl = 0;
    gw_jwk k;
    switch (signer) {
    case S_NONE:
        return strdup("");
    case S_HS256PEM:
    case S_HS512PEM:
        ck_assert_ptr_nonnull(HMAC(signer == S_HS256PEM ? EVP_sha256() : EVP_sha512(), rsa_pub_pem,
                                   (int)strlen(rsa_pub_pem), (const unsigned char *)in, n, mac,
                                   &macl));
        return b64s(mac, macl);
    case S_EVIL:
        k = evil.keys[0];
        break;
    case S_RSA_PSS:
        k = ours.keys[K_RSA]; /* a shallow copy, not cleared */
        k.alg = GW_ALG_PS256;
        break;
    default:
        k = ours.keys[signer - S_EC];
        break;
    }
    ck_assert_int_eq(gw_jws_sign_input(&k, (const unsigned char *)in, n, &sig, &sl), 0);
    char *s = b64s(sig, sl);
    free(sig);
    return s;
}

/* "b64(hdr).b64(pl).sig" with the texts taken as they are. malloc'd. */
static char *craft(const char *hdr, const char *pl, int signer)
{
    char *h = subst(hdr), *p = subst(pl);
    char *hb = b64s(h, strlen(h)), *pb = b64s(p, strlen(p));
    char *in = NULL, *tok = NULL;
    ck_assert_int_ge(asprintf(&in, "%s.%s", hb, pb), 0);
    char *sb = sign_b64(signer, in, strlen(in));
    ck_assert_int_ge(asprintf(&tok, "%s.%s", in, sb), 0);
    free(h);
    free(p);
    free(hb);
    free(pb);
    free(in);
    free(sb);
    return tok;
}

/* Verify <tok>/<len> from a buffer of exactly <len> bytes; then the claims
 * when the JWS is good. The reason, or NULL when accepted. */
static const char *check_token(const char *tok, size_t len, const gw_keyset *const *sets,
                               size_t nsets, const gw_jws_rules *rules, const gw_jwt_rules *jr,
                               gw_claims *cl, gw_jws *keep)
{
    char *exact = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(exact);
    memcpy(exact, tok, len);
    gw_jws j;
    memset(&j, 0xa5, sizeof(j));
    ERR_clear_error();
    const char *why = gw_jws_verify(exact, len, sets, nsets, rules, &j);
    ck_assert_msg(ERR_peek_error() == 0, "OpenSSL error queue left non-empty");
    free(exact);
    if (why != NULL) {
        ck_assert_ptr_null(j.header);
        ck_assert_ptr_null(j.payload);
        ck_assert_ptr_null(j.key);
        return why;
    }
    ck_assert_ptr_nonnull(j.header);
    ck_assert_ptr_nonnull(j.payload);
    ck_assert_ptr_nonnull(j.key);
    ck_assert_ptr_nonnull(j.set);
    gw_claims tmp;
    why = gw_jwt_check(j.payload, jr, cl ? cl : &tmp);
    if (keep != NULL)
        *keep = j;
    else
        gw_jws_clear(&j);
    return why;
}

static gw_jws_rules all_rules(void)
{
    gw_jws_rules r = {all_algs, 4, 0, 0};
    return r;
}

static gw_jwt_rules jwt_rules(void)
{
    gw_jwt_rules r = {NOW, 60, ISS, AUD, 1};
    return r;
}

static int streq0(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* ------------------------------------------------------------- base64url */

static const struct {
    const char *plain, *enc;
} b64_vectors[] = {
    {"", ""},
    {"f", "Zg"},
    {"fo", "Zm8"},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg"},
    {"fooba", "Zm9vYmE"},
    {"foobar", "Zm9vYmFy"},
    {"\xfb\xff", "-_8"},
    {"\xff\xfe\xfd\xfc", "__79_A"},
};

START_TEST(b64_vector)
{
    const char *plain = b64_vectors[_i].plain, *enc = b64_vectors[_i].enc;
    char *e = gw_b64url_encode((const unsigned char *)plain, strlen(plain));
    ck_assert_str_eq(e, enc);
    free(e);
    unsigned char *d = NULL;
    size_t dl = 99;
    ck_assert_int_eq(gw_b64url_decode(enc, strlen(enc), &d, &dl), 0);
    ck_assert_uint_eq(dl, strlen(plain));
    ck_assert_mem_eq(d, plain, dl);
    ck_assert_int_eq(d[dl], 0); /* NUL-terminated for convenience */
    free(d);
}
END_TEST

static const struct {
    const char *in;
    size_t n;
} b64_bad[] = {
    {"Zg==", 4},   {"Zg=", 3},    {"Zm9vYg==", 8}, /* padding */
    {"Zh", 2},     {"Zm9", 3},    {"Zm-", 3},      /* non-zero unused bits (Zm8 is canonical) */
    {"Z", 1},      {"Zm9vY", 5},                   /* impossible lengths */
    {"Zm+v", 4},   {"Zm/v", 4},   {"Zm 9v", 5},    {"Zm9v\n", 5},
    {"Zm9v\r", 5}, {"Zm\09v", 5}, {"Zm9v.", 5},    {"Zm\xc3\xa9", 4},
};

START_TEST(b64_reject)
{
    unsigned char *d = (unsigned char *)"x";
    size_t dl = 7;
    ck_assert_msg(gw_b64url_decode(b64_bad[_i].in, b64_bad[_i].n, &d, &dl) == -1, "case %d", _i);
    ck_assert_ptr_null(d);
    ck_assert_uint_eq(dl, 0);
}
END_TEST

START_TEST(b64_round_trip)
{
    unsigned char in[200];
    ck_assert_int_eq(RAND_bytes(in, sizeof(in)), 1);
    for (size_t n = 0; n <= sizeof(in); n++) {
        char *e = gw_b64url_encode(in, n);
        ck_assert_uint_eq(strlen(e), (n * 4 + 2) / 3);
        ck_assert_ptr_null(strpbrk(e, "+/="));
        unsigned char *d = NULL;
        size_t dl = 0;
        ck_assert_int_eq(gw_b64url_decode(e, strlen(e), &d, &dl), 0);
        ck_assert_uint_eq(dl, n);
        ck_assert(n == 0 || memcmp(d, in, n) == 0);
        free(d);
        free(e);
    }
}
END_TEST

START_TEST(x5t_and_algs)
{
    char out[48];
    gw_x5t_s256((const unsigned char *)"", 0, out);
    ck_assert_str_eq(out, X5T_EMPTY);
    gw_x5t_s256((const unsigned char *)"abc", 3, out);
    ck_assert_str_eq(out, "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
    ck_assert_uint_eq(strlen(out), 43);

    for (size_t i = 0; i < 4; i++)
        ck_assert_int_eq(gw_alg_parse(gw_alg_name(all_algs[i])), all_algs[i]);
    ck_assert_str_eq(gw_alg_name(GW_ALG_EDDSA), "EdDSA");
    const char *bad[] = {"none", "None", "HS256", "es256", "ES256 ", "EDDSA", "Ed25519", "", NULL};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_int_eq(gw_alg_parse(bad[i]), GW_ALG_INVALID);
    ck_assert_str_eq(gw_alg_name(GW_ALG_INVALID), "invalid");
}
END_TEST

/* ------------------------------------------------------------------- keys */

static const struct {
    const char *file, *pub;
} load_ok_cases[K_N] = {{"ec.pem", "ec.pub.pem"},
                        {"rsa.pem", "rsa.pub.pem"},
                        {"ps.pem", NULL},
                        {"ed.pem", "ed.pub.pem"}};

START_TEST(load_pem_ok)
{
    gw_jwk k;
    char *err = NULL, *p = fpath(load_ok_cases[_i].file);
    ck_assert_int_eq(gw_jwk_load_pem(&k, p, "kid-x", key_algs[_i], &err), 0);
    ck_assert_ptr_null(err);
    ck_assert_str_eq(k.kid, "kid-x");
    ck_assert_int_eq(k.alg, key_algs[_i]);
    ck_assert_int_eq(k.can_sign, 1);
    ck_assert_ptr_nonnull(k.pkey);
    gw_jwk_clear(&k);
    ck_assert_ptr_null(k.pkey);
    free(p);
    if (load_ok_cases[_i].pub == NULL)
        return;
    p = fpath(load_ok_cases[_i].pub);
    ck_assert_int_eq(gw_jwk_load_pem(&k, p, "kid-x", key_algs[_i], &err), 0);
    ck_assert_int_eq(k.can_sign, 0);
    /* a public key verifies but does not sign */
    json_t *pl = json_loads(PL_OK, 0, NULL);
    ck_assert_ptr_null(gw_jws_sign(&k, "at+jwt", pl));
    unsigned char *sig = NULL;
    size_t sl = 0;
    ck_assert_int_eq(gw_jws_sign_input(&k, (const unsigned char *)"a.b", 3, &sig, &sl), -1);
    ck_assert_ptr_null(sig);
    char *tok = gw_jws_sign(&ours.keys[_i], NULL, pl);
    ck_assert_ptr_nonnull(tok);
    gw_keyset pubset = {NULL, &k, 1};
    snprintf(k.kid, sizeof(k.kid), "%s", key_kids[_i]);
    const gw_keyset *sets[] = {&pubset};
    gw_jws_rules r = all_rules();
    gw_jwt_rules jr = jwt_rules();
    ck_assert_ptr_null(check_token(tok, strlen(tok), sets, 1, &r, &jr, NULL, NULL));
    free(tok);
    json_decref(pl);
    gw_jwk_clear(&k);
    free(p);
}
END_TEST

static const struct {
    const char *file, *kid;
    gw_alg alg;
    const char *err;
} load_bad_cases[] = {
    {"ec.pem", "k", GW_ALG_RS256, "not an RSA key (RS256)"},
    {"ec.pem", "k", GW_ALG_PS256, "not an RSA key (PS256)"},
    {"ec.pem", "k", GW_ALG_EDDSA, "not an Ed25519 key (EdDSA)"},
    {"rsa.pem", "k", GW_ALG_ES256, "not a P-256 key (ES256)"},
    {"rsa.pub.pem", "k", GW_ALG_EDDSA, "not an Ed25519 key (EdDSA)"},
    {"ed.pem", "k", GW_ALG_ES256, "not a P-256 key (ES256)"},
    {"ed.pub.pem", "k", GW_ALG_RS256, "not an RSA key (RS256)"},
    {"p384.pem", "k", GW_ALG_ES256, "not a P-256 key (ES256)"},
    {"rsa1024.pem", "k", GW_ALG_RS256, "RSA key shorter than 2048 bits (RS256)"},
    {"rsa1024.pem", "k", GW_ALG_PS256, "RSA key shorter than 2048 bits (PS256)"},
    {"missing.pem", "k", GW_ALG_ES256, "cannot read key file: No such file or directory"},
    {".", "k", GW_ALG_ES256, "cannot read key file"},
    {"garbage.pem", "k", GW_ALG_ES256, "no PEM key found"},
    {"empty.pem", "k", GW_ALG_ES256, "no PEM key found"},
    {"enc.pem", "k", GW_ALG_ES256, "encrypted keys are not supported"},
    {"ec.pem", "", GW_ALG_ES256, "invalid kid"},
    {"ec.pem", "a b", GW_ALG_ES256, "invalid kid"},
    {"ec.pem", "a\"b", GW_ALG_ES256, "invalid kid"},
    {"ec.pem", "a\\b", GW_ALG_ES256, "invalid kid"},
    {"ec.pem", "caf\xc3\xa9", GW_ALG_ES256, "invalid kid"},
    {"ec.pem", "k1234567890123456789012345678901234567890123456789012345678901234", GW_ALG_ES256,
     "invalid kid"},
    {"ec.pem", "k", GW_ALG_INVALID, "unsupported algorithm"},
    {"ec.pem", "k", (gw_alg)99, "unsupported algorithm"},
};

START_TEST(load_pem_refused)
{
    gw_jwk k;
    memset(&k, 0x5a, sizeof(k));
    char *err = NULL, *p = fpath(load_bad_cases[_i].file);
    ck_assert_int_eq(gw_jwk_load_pem(&k, p, load_bad_cases[_i].kid, load_bad_cases[_i].alg, &err),
                     -1);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strstr(err, load_bad_cases[_i].err) != NULL, "case %d: \"%s\"", _i, err);
    ck_assert_msg(strstr(err, dir) == NULL, "the path leaked into \"%s\"", err);
    ck_assert_ptr_null(k.pkey);
    ck_assert_msg(ERR_peek_error() == 0, "OpenSSL error queue left non-empty");
    free(err);
    free(p);
}
END_TEST

/* ------------------------------------------------------------------- JWKS */

START_TEST(jwks_round_trip)
{
    char *js = gw_jwks_export(&ours);
    ck_assert_ptr_nonnull(js);
    json_error_t je;
    json_t *j = json_loads(js, JSON_REJECT_DUPLICATES, &je);
    ck_assert_ptr_nonnull(j);
    json_t *keys = json_object_get(j, "keys");
    ck_assert_uint_eq(json_array_size(keys), K_N);
    const char *kty[K_N] = {"EC", "RSA", "RSA", "OKP"};
    for (size_t i = 0; i < K_N; i++) {
        json_t *o = json_array_get(keys, i);
        ck_assert_str_eq(json_string_value(json_object_get(o, "kty")), kty[i]);
        ck_assert_str_eq(json_string_value(json_object_get(o, "kid")), key_kids[i]);
        ck_assert_str_eq(json_string_value(json_object_get(o, "use")), "sig");
        ck_assert_str_eq(json_string_value(json_object_get(o, "alg")), gw_alg_name(key_algs[i]));
        const char *privs[] = {"d", "p", "q", "dp", "dq", "qi"};
        for (size_t m = 0; m < 6; m++)
            ck_assert_ptr_null(json_object_get(o, privs[m]));
    }
    json_t *o = json_array_get(keys, K_EC);
    ck_assert_str_eq(json_string_value(json_object_get(o, "crv")), "P-256");
    ck_assert_uint_eq(json_string_length(json_object_get(o, "x")), 43);
    ck_assert_uint_eq(json_string_length(json_object_get(o, "y")), 43);
    o = json_array_get(keys, K_RSA);
    ck_assert_uint_eq(json_string_length(json_object_get(o, "n")), 342); /* 256 bytes */
    ck_assert_str_eq(json_string_value(json_object_get(o, "e")), "AQAB");
    o = json_array_get(keys, K_ED);
    ck_assert_str_eq(json_string_value(json_object_get(o, "crv")), "Ed25519");
    ck_assert_uint_eq(json_string_length(json_object_get(o, "x")), 43);
    json_decref(j);

    gw_keyset pub;
    char *err = NULL;
    ck_assert_int_eq(gw_jwks_parse(js, strlen(js), &pub, &err), 0);
    ck_assert_ptr_null(err);
    ck_assert_uint_eq(pub.n, K_N);
    ck_assert_ptr_null(pub.issuer);
    char *js2 = gw_jwks_export(&pub);
    ck_assert_str_eq(js2, js); /* canonical */

    /* tokens signed by the private keys verify with the parsed public set */
    const gw_keyset *sets[] = {&pub};
    gw_jws_rules r = all_rules();
    gw_jwt_rules jr = jwt_rules();
    json_t *pl = json_loads(PL_OK, 0, NULL);
    for (size_t i = 0; i < K_N; i++) {
        ck_assert_int_eq(pub.keys[i].can_sign, 0);
        ck_assert_int_eq(pub.keys[i].alg, key_algs[i]);
        char *tok = gw_jws_sign(&ours.keys[i], "at+jwt", pl);
        gw_jws keep;
        ck_assert_ptr_null(check_token(tok, strlen(tok), sets, 1, &r, &jr, NULL, &keep));
        ck_assert_ptr_eq(keep.key, &pub.keys[i]);
        ck_assert_ptr_eq(keep.set, &pub);
        gw_jws_clear(&keep);
        free(tok);
        ck_assert_ptr_null(gw_jws_sign(&pub.keys[i], "at+jwt", pl)); /* public: no signing */
    }
    json_decref(pl);
    gw_keyset_clear(&pub);
    ck_assert_ptr_null(pub.keys);
    free(js2);
    free(js);

    /* an empty set is valid; an empty keyset exports as such */
    ck_assert_int_eq(gw_jwks_parse("{\"keys\":[]}", 11, &pub, &err), 0);
    ck_assert_uint_eq(pub.n, 0);
    js = gw_jwks_export(&pub);
    ck_assert_str_eq(js, "{\"keys\":[]}");
    free(js);
    gw_keyset_clear(&pub);
}
END_TEST

#define EC_OK "\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"$X\",\"y\":\"$Y\""
#define RSA_OK "\"kty\":\"RSA\",\"n\":\"$N\",\"e\":\"AQAB\""
#define OKP_OK "\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"$O\""

static const struct {
    const char *name, *text, *err;
} jwks_bad[] = {
    {"not_json", "{\"keys\":[", "invalid JSON at line 1"},
    {"dup_member", "{\"keys\":[],\"keys\":[]}", "duplicate object key"},
    {"array", "[]", "not a JWK set"},
    {"no_keys", "{\"jwks\":[]}", "not a JWK set"},
    {"keys_object", "{\"keys\":{}}", "not a JWK set"},
    {"key_not_object", "{\"keys\":[\"x\"]}", "keys[0]: not a JSON object"},
    {"ec_private_d", "{\"keys\":[{" EC_OK ",\"kid\":\"a\",\"d\":\"AAAA\"}]}",
     "keys[0]: private key member \"d\" refused"},
    {"rsa_private_p", "{\"keys\":[{" RSA_OK ",\"kid\":\"a\",\"p\":\"AAAA\"}]}",
     "private key member \"p\" refused"},
    {"rsa_private_d", "{\"keys\":[{" RSA_OK ",\"kid\":\"a\",\"d\":\"AAAA\"}]}",
     "private key member \"d\" refused"},
    {"okp_private_d", "{\"keys\":[{" OKP_OK ",\"kid\":\"a\",\"d\":\"AAAA\"}]}",
     "private key member \"d\" refused"},
    {"oct_secret", "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"a\",\"k\":\"c2VjcmV0\"}]}",
     "private key member \"k\" refused"},
    {"unknown_kty", "{\"keys\":[{\"kty\":\"XYZ\",\"kid\":\"a\"}]}", "unsupported kty"},
    {"kty_missing", "{\"keys\":[{\"kid\":\"a\",\"x\":\"$X\"}]}", "\"kty\" missing"},
    {"kid_missing", "{\"keys\":[{" EC_OK "}]}", "\"kid\" missing"},
    {"kid_number", "{\"keys\":[{" EC_OK ",\"kid\":7}]}", "\"kid\" missing or not a string"},
    {"kid_space", "{\"keys\":[{" EC_OK ",\"kid\":\"a b\"}]}", "invalid kid"},
    {"kid_empty", "{\"keys\":[{" EC_OK ",\"kid\":\"\"}]}", "invalid kid"},
    {"duplicate_kid", "{\"keys\":[{" EC_OK ",\"kid\":\"a\"},{" OKP_OK ",\"kid\":\"a\"}]}",
     "keys[1]: duplicate kid \"a\""},
    {"use_enc", "{\"keys\":[{" EC_OK ",\"kid\":\"a\",\"use\":\"enc\"}]}",
     "\"use\" must be \"sig\""},
    {"alg_none", "{\"keys\":[{" EC_OK ",\"kid\":\"a\",\"alg\":\"none\"}]}", "unsupported \"alg\""},
    {"alg_hs256", "{\"keys\":[{" RSA_OK ",\"kid\":\"a\",\"alg\":\"HS256\"}]}",
     "unsupported \"alg\""},
    {"alg_rs256_on_ec", "{\"keys\":[{" EC_OK ",\"kid\":\"a\",\"alg\":\"RS256\"}]}",
     "\"alg\" RS256 does not fit kty EC"},
    {"alg_es256_on_rsa", "{\"keys\":[{" RSA_OK ",\"kid\":\"a\",\"alg\":\"ES256\"}]}",
     "\"alg\" ES256 does not fit kty RSA"},
    {"alg_es256_on_okp", "{\"keys\":[{" OKP_OK ",\"kid\":\"a\",\"alg\":\"ES256\"}]}",
     "\"alg\" ES256 does not fit kty OKP"},
    {"ec_p384",
     "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"$X\",\"y\":\"$Y\",\"kid\":"
     "\"a\"}]}",
     "unsupported curve"},
    {"ec_x_short",
     "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"$Y\","
     "\"kid\":\"a\"}]}",
     "must be 32 bytes"},
    {"ec_y_missing", "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"$X\",\"kid\":\"a\"}]}",
     "must be 32 bytes"},
    {"ec_not_on_curve",
     "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"$X\",\"y\":\"$X\","
     "\"kid\":\"a\"}]}",
     "invalid EC public key"},
    {"ec_x_padded",
     "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"$X=\",\"y\":\"$Y\","
     "\"kid\":\"a\"}]}",
     "must be 32 bytes"},
    {"rsa_short", "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"$N1024\",\"e\":\"AQAB\",\"kid\":\"a\"}]}",
     "RSA modulus of 1024 bits"},
    {"rsa_e_even", "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"$N\",\"e\":\"AQAA\",\"kid\":\"a\"}]}",
     "invalid RSA public key"},
    {"rsa_e_one", "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"$N\",\"e\":\"AQ\",\"kid\":\"a\"}]}",
     "invalid RSA public key"},
    {"rsa_n_missing", "{\"keys\":[{\"kty\":\"RSA\",\"e\":\"AQAB\",\"kid\":\"a\"}]}",
     "\"n\" and \"e\""},
    {"rsa_n_base64_std",
     "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"$N+\",\"e\":\"AQAB\",\"kid\":\"a\"}]}",
     "\"n\" and \"e\""},
    {"okp_x25519", "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"$O\",\"kid\":\"a\"}]}",
     "unsupported curve"},
    {"okp_x_short",
     "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\",\"kid\":\"a\"}]}",
     "\"x\" must be 32 bytes"},
    {"dup_member_in_key",
     "{\"keys\":[{" EC_OK ",\"kid\":\"a\"},{" RSA_OK ",\"kid\":\"b\",\"e\":1}]}",
     "duplicate object key"},
};

START_TEST(jwks_refused)
{
    char *text = subst(jwks_bad[_i].text);
    gw_keyset ks;
    memset(&ks, 0x5a, sizeof(ks));
    char *err = NULL;
    ck_assert_int_eq(gw_jwks_parse(text, strlen(text), &ks, &err), -1);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strstr(err, jwks_bad[_i].err) != NULL, "%s: \"%s\"", jwks_bad[_i].name, err);
    ck_assert_ptr_null(ks.keys);
    ck_assert_uint_eq(ks.n, 0);
    ck_assert_msg(ERR_peek_error() == 0, "OpenSSL error queue left non-empty");
    free(err);
    free(text);
}
END_TEST

START_TEST(jwks_accepted_forms)
{
    /* RSA without "alg" is RS256, with "alg":"PS256" PS256; extra members
     * (x5c, key_ops) are ignored */
    char *text =
        subst("{\"keys\":[{" RSA_OK ",\"kid\":\"r1\"},{" RSA_OK ",\"kid\":\"r2\","
              "\"alg\":\"PS256\",\"use\":\"sig\",\"key_ops\":[\"verify\"],\"x5c\":[]},{" EC_OK
              ",\"kid\":\"e1\"},{" OKP_OK ",\"kid\":\"o1\",\"alg\":\"EdDSA\"}]}");
    gw_keyset ks;
    char *err = NULL;
    ck_assert_msg(gw_jwks_parse(text, strlen(text), &ks, &err) == 0, "%s", err);
    ck_assert_uint_eq(ks.n, 4);
    ck_assert_int_eq(gw_keyset_find(&ks, "r1")->alg, GW_ALG_RS256);
    ck_assert_int_eq(gw_keyset_find(&ks, "r2")->alg, GW_ALG_PS256);
    ck_assert_int_eq(gw_keyset_find(&ks, "e1")->alg, GW_ALG_ES256);
    ck_assert_int_eq(gw_keyset_find(&ks, "o1")->alg, GW_ALG_EDDSA);
    ck_assert_ptr_null(gw_keyset_find(&ks, "r3"));
    ck_assert_ptr_null(gw_keyset_find(&ks, NULL));
    ck_assert_ptr_null(gw_keyset_find(NULL, "r1"));
    gw_keyset_clear(&ks);
    free(text);
}
END_TEST

static int evp_verify(EVP_PKEY *pk, gw_alg alg, int saltlen, const char *in,
                      const unsigned char *sig, size_t sl);

/* The P-256 group order n, from OpenSSL's curve table (not jose.c's copy). */
static BIGNUM *p256_order(void)
{
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    ck_assert_ptr_nonnull(g);
    BIGNUM *n = BN_dup(EC_GROUP_get0_order(g));
    ck_assert_ptr_nonnull(n);
    EC_GROUP_free(g);
    return n;
}

/* 1 when the S half of the ES256 R||S <sig> is above n/2. */
static int is_high_s(const unsigned char sig[64])
{
    BIGNUM *n = p256_order(), *s = BN_bin2bn(sig + 32, 32, NULL);
    ck_assert_int_eq(BN_rshift1(n, n), 1);
    int high = BN_cmp(s, n) > 0;
    BN_free(n);
    BN_free(s);
    return high;
}

/* Replace S by n - S: the other signature of the same (r, message), valid
 * for plain ECDSA. */
static void twin_s(unsigned char sig[64])
{
    BIGNUM *n = p256_order(), *s = BN_bin2bn(sig + 32, 32, NULL);
    ck_assert_int_eq(BN_sub(s, n, s), 1);
    ck_assert_int_eq(BN_bn2binpad(s, sig + 32, 32), 32);
    BN_free(n);
    BN_free(s);
}

/* RFC 7515 A.3 (ES256) and RFC 8037 A.4 (Ed25519) known answers. */
#define RFC_PAYLOAD                                                                                \
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVl" \
    "fQ"
#define RFC7515_A3_INPUT "eyJhbGciOiJFUzI1NiJ9." RFC_PAYLOAD
#define RFC7515_A3_SIG                                                                             \
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
#define RFC8037_A4_INPUT "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
#define RFC8037_A4_SIG                                                                             \
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"

START_TEST(rfc_known_answers)
{
    const char *jwks = "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"rfc7515\","
                       "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
                       "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"},"
                       "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"rfc8037\","
                       "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}";
    gw_keyset ks;
    char *err = NULL;
    ck_assert_msg(gw_jwks_parse(jwks, strlen(jwks), &ks, &err) == 0, "%s", err);
    unsigned char *sig = NULL;
    size_t sl = 0;

    /* ES256: the published R||S has a high S (a valid signature that plain
     * ECDSA accepts, refused here); its low-S twin verifies; one bit off
     * does not */
    ck_assert_int_eq(gw_b64url_decode(RFC7515_A3_SIG, strlen(RFC7515_A3_SIG), &sig, &sl), 0);
    ck_assert_uint_eq(sl, 64);
    const unsigned char *in = (const unsigned char *)RFC7515_A3_INPUT;
    ck_assert(is_high_s(sig));
    ck_assert_int_eq(evp_verify(ks.keys[0].pkey, GW_ALG_ES256, 0, RFC7515_A3_INPUT, sig, sl), 1);
    ck_assert_int_eq(gw_jws_check_sig(&ks.keys[0], in, strlen(RFC7515_A3_INPUT), sig, sl), 0);
    twin_s(sig);
    ck_assert(!is_high_s(sig));
    ck_assert_int_eq(gw_jws_check_sig(&ks.keys[0], in, strlen(RFC7515_A3_INPUT), sig, sl), 1);
    sig[63] ^= 1;
    ck_assert_int_eq(gw_jws_check_sig(&ks.keys[0], in, strlen(RFC7515_A3_INPUT), sig, sl), 0);
    free(sig);
    /* the compact token itself has no kid: refused by the verifier */
    const char *tok = RFC7515_A3_INPUT "." RFC7515_A3_SIG;
    const gw_keyset *sets[] = {&ks};
    gw_jws_rules r = all_rules();
    gw_jwt_rules jr = jwt_rules();
    ck_assert_str_eq(check_token(tok, strlen(tok), sets, 1, &r, &jr, NULL, NULL), "jws.kid");

    /* Ed25519: verify, and signing with the RFC's private key reproduces the
     * published signature bit for bit (EdDSA is deterministic) */
    ck_assert_int_eq(gw_b64url_decode(RFC8037_A4_SIG, strlen(RFC8037_A4_SIG), &sig, &sl), 0);
    in = (const unsigned char *)RFC8037_A4_INPUT;
    ck_assert_int_eq(gw_jws_check_sig(&ks.keys[1], in, strlen(RFC8037_A4_INPUT), sig, sl), 1);
    unsigned char *d = NULL;
    size_t dl = 0;
    const char *d64 = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
    ck_assert_int_eq(gw_b64url_decode(d64, strlen(d64), &d, &dl), 0);
    gw_jwk priv = {"rfc8037", GW_ALG_EDDSA, NULL, 1};
    priv.pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, d, dl);
    ck_assert_ptr_nonnull(priv.pkey);
    unsigned char *mine = NULL;
    size_t ml = 0;
    ck_assert_int_eq(gw_jws_sign_input(&priv, in, strlen(RFC8037_A4_INPUT), &mine, &ml), 0);
    ck_assert_uint_eq(ml, 64);
    ck_assert_mem_eq(mine, sig, 64);
    free(mine);
    free(sig);
    free(d);
    gw_jwk_clear(&priv);
    gw_keyset_clear(&ks);
}
END_TEST

/* Plain-EVP signer/verifier written here, independent of jose.c's, with the
 * DER <-> R||S conversion done by hand; <saltlen> for PSS. */
static unsigned char *evp_sign(EVP_PKEY *pk, gw_alg alg, int saltlen, const char *in, size_t *sl)
{
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    ck_assert_int_eq(
        EVP_DigestSignInit(mc, &pc, alg == GW_ALG_EDDSA ? NULL : EVP_sha256(), NULL, pk), 1);
    if (alg == GW_ALG_PS256) {
        ck_assert_int_gt(EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING), 0);
        ck_assert_int_gt(EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, saltlen), 0);
        ck_assert_int_gt(EVP_PKEY_CTX_set_rsa_mgf1_md(pc, EVP_sha256()), 0);
    }
    size_t n = 0;
    ck_assert_int_eq(EVP_DigestSign(mc, NULL, &n, (const unsigned char *)in, strlen(in)), 1);
    unsigned char *sig = malloc(n);
    ck_assert_int_eq(EVP_DigestSign(mc, sig, &n, (const unsigned char *)in, strlen(in)), 1);
    EVP_MD_CTX_free(mc);
    if (alg == GW_ALG_ES256) {
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)n);
        ck_assert_ptr_nonnull(es);
        unsigned char *raw = malloc(64);
        ck_assert_int_eq(BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32), 32);
        ck_assert_int_eq(BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32), 32);
        ECDSA_SIG_free(es);
        if (is_high_s(raw))
            twin_s(raw); /* plain EVP gives either form; ours accepts the low one */
        free(sig);
        sig = raw;
        n = 64;
    }
    *sl = n;
    return sig;
}

static int evp_verify(EVP_PKEY *pk, gw_alg alg, int saltlen, const char *in,
                      const unsigned char *sig, size_t sl)
{
    unsigned char *der = NULL;
    int dl = 0;
    if (alg == GW_ALG_ES256) {
        ck_assert_uint_eq(sl, 64);
        ECDSA_SIG *es = ECDSA_SIG_new();
        ck_assert_int_eq(
            ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL)), 1);
        dl = i2d_ECDSA_SIG(es, &der);
        ECDSA_SIG_free(es);
        sig = der;
        sl = (size_t)dl;
    }
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    ck_assert_int_eq(
        EVP_DigestVerifyInit(mc, &pc, alg == GW_ALG_EDDSA ? NULL : EVP_sha256(), NULL, pk), 1);
    if (alg == GW_ALG_PS256) {
        ck_assert_int_gt(EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING), 0);
        ck_assert_int_gt(EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, saltlen), 0);
        ck_assert_int_gt(EVP_PKEY_CTX_set_rsa_mgf1_md(pc, EVP_sha256()), 0);
    }
    int ok = EVP_DigestVerify(mc, sig, sl, (const unsigned char *)in, strlen(in)) == 1;
    EVP_MD_CTX_free(mc);
    OPENSSL_free(der);
    ERR_clear_error();
    return ok;
}

START_TEST(independent_evp)
{
    const gw_jwk *k = &ours.keys[_i];
    const char *in = "eyJhbGciOiJFUzI1NiJ9.eyJhIjoxfQ";
    unsigned char *sig = NULL;
    size_t sl = 0;
    /* ours -> plain EVP (PSS: exactly salt 32, MGF1-SHA-256) */
    ck_assert_int_eq(gw_jws_sign_input(k, (const unsigned char *)in, strlen(in), &sig, &sl), 0);
    ck_assert_int_eq(evp_verify(k->pkey, k->alg, 32, in, sig, sl), 1);
    if (k->alg == GW_ALG_PS256) {
        ck_assert_int_eq(evp_verify(k->pkey, k->alg, 20, in, sig, sl), 0);
        ck_assert_int_eq(evp_verify(k->pkey, k->alg, 64, in, sig, sl), 0);
    }
    free(sig);
    /* plain EVP -> ours */
    sig = evp_sign(k->pkey, k->alg, 32, in, &sl);
    ck_assert_int_eq(gw_jws_check_sig(k, (const unsigned char *)in, strlen(in), sig, sl), 1);
    ck_assert_int_eq(gw_jws_check_sig(k, (const unsigned char *)in, strlen(in) - 1, sig, sl), 0);
    if (k->alg == GW_ALG_ES256) {
        /* the high-S twin (s' = n - s) of that valid signature: plain ECDSA
         * accepts it, we refuse it (one token, one valid string) */
        twin_s(sig);
        ck_assert(is_high_s(sig));
        ck_assert_int_eq(evp_verify(k->pkey, k->alg, 0, in, sig, sl), 1);
        ck_assert_int_eq(gw_jws_check_sig(k, (const unsigned char *)in, strlen(in), sig, sl), 0);
    }
    free(sig);
    if (k->alg == GW_ALG_PS256) {
        /* another salt length is not PS256 as RFC 7518 §3.5 defines it */
        const int salts[] = {0, 20, 64, RSA_PSS_SALTLEN_MAX};
        for (size_t i = 0; i < 4; i++) {
            sig = evp_sign(k->pkey, k->alg, salts[i], in, &sl);
            ck_assert_int_eq(gw_jws_check_sig(k, (const unsigned char *)in, strlen(in), sig, sl),
                             0);
            free(sig);
        }
    }
    /* a key whose type does not fit its alg neither signs nor verifies */
    gw_jwk wrong = *k; /* shallow copy, not cleared */
    wrong.alg = k->alg == GW_ALG_ES256 ? GW_ALG_EDDSA : GW_ALG_ES256;
    ck_assert_int_eq(gw_jws_sign_input(&wrong, (const unsigned char *)in, strlen(in), &sig, &sl),
                     -1);
    ck_assert_int_eq(gw_jws_check_sig(&wrong, (const unsigned char *)in, strlen(in),
                                      (const unsigned char *)"", 0),
                     0);
    ck_assert_msg(ERR_peek_error() == 0, "OpenSSL error queue left non-empty");
}
END_TEST

/* ECDSA malleability: our signer always emits the low-S form, and a whole
 * token whose signature is replaced by its high-S twin (same r, s' = n - s,
 * valid for plain ECDSA) is refused: one token, one valid string. */
START_TEST(ecdsa_low_s_only)
{
    const gw_jwk *k = &ours.keys[K_EC];
    for (int i = 0; i < 64; i++) { /* all low by chance: 2^-64 */
        unsigned char *sig = NULL;
        size_t sl = 0;
        ck_assert_int_eq(gw_jws_sign_input(k, (const unsigned char *)"a.b", 3, &sig, &sl), 0);
        ck_assert_uint_eq(sl, 64);
        ck_assert_msg(!is_high_s(sig), "signature %d has a high S", i);
        free(sig);
    }
    json_t *pl = json_loads(PL_OK, JSON_REJECT_DUPLICATES, NULL);
    ck_assert_ptr_nonnull(pl);
    char *tok = gw_jws_sign(k, "at+jwt", pl);
    json_decref(pl);
    ck_assert_ptr_nonnull(tok);
    const gw_keyset *sets[] = {&ours};
    gw_jws_rules r = all_rules();
    gw_jwt_rules jr = jwt_rules();
    ck_assert_ptr_null(check_token(tok, strlen(tok), sets, 1, &r, &jr, NULL, NULL));
    char *last = strrchr(tok, '.') + 1;
    unsigned char *sig = NULL;
    size_t sl = 0;
    ck_assert_int_eq(gw_b64url_decode(last, strlen(last), &sig, &sl), 0);
    twin_s(sig);
    size_t in_len = (size_t)(last - 1 - tok);
    char *in = strndup(tok, in_len);
    ck_assert_int_eq(evp_verify(k->pkey, GW_ALG_ES256, 0, in, sig, sl), 1);
    char *sb = b64s(sig, sl), *twin = NULL;
    ck_assert_int_ge(asprintf(&twin, "%s.%s", in, sb), 0);
    ck_assert_str_ne(twin, tok);
    ck_assert_str_eq(check_token(twin, strlen(twin), sets, 1, &r, &jr, NULL, NULL),
                     "jws.signature");
    r.allow_high_s = 1; /* old journal checkpoints only */
    ck_assert_ptr_null(check_token(twin, strlen(twin), sets, 1, &r, &jr, NULL, NULL));
    free(twin);
    free(sb);
    free(in);
    free(sig);
    free(tok);
}
END_TEST

/* ------------------------------------------------------------ valid tokens */

START_TEST(valid_token)
{
    json_t *pl = json_loads(PL_OK, JSON_REJECT_DUPLICATES, NULL);
    ck_assert_ptr_nonnull(pl);
    const gw_jwk *k = &ours.keys[_i];
    char *tok = gw_jws_sign(k, "at+jwt", pl);
    ck_assert_ptr_nonnull(tok);
    ck_assert_ptr_null(strpbrk(tok, "+/= \n"));

    /* header as documented: {"alg":…,"typ":…,"kid":…} */
    char *dot = strchr(tok, '.');
    unsigned char *h = NULL;
    size_t hl = 0;
    ck_assert_int_eq(gw_b64url_decode(tok, (size_t)(dot - tok), &h, &hl), 0);
    char *want = NULL;
    ck_assert_int_ge(asprintf(&want, "{\"alg\":\"%s\",\"typ\":\"at+jwt\",\"kid\":\"%s\"}",
                              gw_alg_name(key_algs[_i]), key_kids[_i]),
                     0);
    ck_assert_str_eq((char *)h, want);
    free(want);
    free(h);
    /* signature length: 64 (ES256, EdDSA), 256 (RSA-2048) */
    char *last = strrchr(tok, '.') + 1;
    unsigned char *sig = NULL;
    size_t sl = 0;
    ck_assert_int_eq(gw_b64url_decode(last, strlen(last), &sig, &sl), 0);
    ck_assert_uint_eq(sl, (_i == K_EC || _i == K_ED) ? 64 : 256);
    free(sig);

    gw_claims c;
    gw_jws j;
    const gw_keyset *sets[] = {&ext, &ours};
    gw_jws_rules r = all_rules();
    gw_jwt_rules jr = jwt_rules();
    ck_assert_ptr_null(check_token(tok, strlen(tok), sets, 2, &r, &jr, &c, &j));
    ck_assert_int_eq(j.alg, key_algs[_i]);
    ck_assert_ptr_eq(j.key, k);
    ck_assert_ptr_eq(j.set, &ours);
    ck_assert_str_eq(json_string_value(json_object_get(j.header, "kid")), key_kids[_i]);
    ck_assert(json_equal(j.payload, pl));
    gw_jws_clear(&j);
    ck_assert_ptr_null(j.header);

    ck_assert_str_eq(c.iss, ISS);
    ck_assert_str_eq(c.sub, "commune-exemple-sandbox");
    ck_assert_str_eq(c.client_id, "commune-exemple-sandbox");
    ck_assert_str_eq(c.jti, "0f9c2b2e-6a43-4f57-9d59-8a4a2b0c1d11");
    ck_assert_str_eq(c.habilitation, "H42");
    ck_assert_str_eq(c.keytype, "SANDBOX");
    ck_assert_str_eq(c.scope, "api_opale_declarations api_opale_ir");
    ck_assert_uint_eq(c.nscopes, 2);
    ck_assert_str_eq(c.scopes[0], "api_opale_declarations");
    ck_assert_str_eq(c.scopes[1], "api_opale_ir");
    ck_assert(c.scopes[0] >= c.scope_buf && c.scopes[1] < c.scope_buf + sizeof(c.scope_buf));
    ck_assert_int_eq(gw_claims_has_scope(&c, "api_opale_ir"), 1);
    ck_assert_int_eq(gw_claims_has_scope(&c, "api_opale"), 0);
    ck_assert_int_eq(gw_claims_has_scope(&c, "api_opale_declarations api_opale_ir"), 0);
    ck_assert_int_eq(gw_claims_has_scope(&c, ""), 0);
    ck_assert_int_eq(c.exp, NOW + 3600);
    ck_assert_int_eq(c.iat, NOW);
    ck_assert_int_eq(c.nbf, NOW);
    ck_assert_int_eq(c.has_cnf, 1);
    ck_assert_str_eq(c.cnf_x5t, X5T_EMPTY);

    /* gw_claims_has_scope reads the "scope" text: a plain struct copy works */
    gw_claims *cp = malloc(sizeof(*cp));
    memcpy(cp, &c, sizeof(c));
    memset(&c, 0, sizeof(c));
    ck_assert_int_eq(gw_claims_has_scope(cp, "api_opale_declarations"), 1);
    ck_assert_int_eq(gw_claims_has_scope(cp, "api_opale_ir"), 1);
    free(cp);

    /* typ is optional in the header; NULL leaves it out */
    char *tok2 = gw_jws_sign(k, NULL, pl);
    ck_assert_ptr_null(check_token(tok2, strlen(tok2), sets, 2, &r, &jr, NULL, NULL));
    /* RS256 and EdDSA are deterministic, ES256 and PS256 randomised */
    char *tok3 = gw_jws_sign(k, NULL, pl);
    ck_assert_int_eq(strcmp(tok2, tok3) == 0, _i == K_RSA || _i == K_ED);
    free(tok3);
    free(tok2);
    free(tok);
    json_decref(pl);
}
END_TEST

START_TEST(key_sets)
{
    json_t *pl = json_loads(PL_OK, 0, NULL);
    char *tok = gw_jws_sign(&ext.keys[0], "JWT", pl);
    gw_jws_rules r = all_rules();
    gw_jws j;
    /* found in the second set; NULL sets are skipped */
    const gw_keyset *sets[] = {NULL, &ours, &ext};
    ck_assert_ptr_null(gw_jws_verify(tok, strlen(tok), sets, 3, &r, &j));
    ck_assert_ptr_eq(j.set, &ext);
    ck_assert_ptr_eq(j.key, &ext.keys[0]);
    gw_jws_clear(&j);
    /* not in the sets given */
    ck_assert_str_eq(gw_jws_verify(tok, strlen(tok), sets, 2, &r, &j), "jws.unknown_kid");
    ck_assert_str_eq(gw_jws_verify(tok, strlen(tok), NULL, 0, &r, &j), "jws.unknown_kid");
    /* the caller checks "iss" against the issuer of the set the key came
     * from: a token of this gateway's claims signed by the other issuer */
    ck_assert_ptr_null(gw_jws_verify(tok, strlen(tok), sets, 3, &r, &j));
    gw_jwt_rules jr = jwt_rules();
    jr.issuer = j.set->issuer;
    gw_claims cl;
    ck_assert_str_eq(gw_jwt_check(j.payload, &jr, &cl), "jwt.iss");
    ck_assert_str_eq(cl.iss, ISS);
    gw_jws_clear(&j);
    /* bad arguments */
    ck_assert_str_eq(gw_jws_verify(NULL, 0, sets, 3, &r, &j), "jws.malformed");
    ck_assert_str_eq(gw_jws_verify(tok, strlen(tok), sets, 3, NULL, &j), "jws.malformed");
    ck_assert_str_eq(gw_jws_verify(tok, strlen(tok), NULL, 1, &r, &j), "jws.malformed");
    ck_assert_str_eq(gw_jws_verify(tok, strlen(tok), sets, 3, &r, NULL), "jws.malformed");
    /* signing refuses what is not an object */
    json_t *arr = json_array();
    ck_assert_ptr_null(gw_jws_sign(&ours.keys[K_EC], NULL, arr));
    ck_assert_ptr_null(gw_jws_sign(&ours.keys[K_EC], NULL, NULL));
    ck_assert_ptr_null(gw_jws_sign(NULL, NULL, pl));
    json_decref(arr);
    free(tok);
    json_decref(pl);
}
END_TEST

/* ------------------------------------------------------------------ attacks */

enum {
    M_NONE,
    M_STRIP_SIG, /* "h.p." */
    M_OTHER_SIG, /* the signature of another token by the same key */
    M_TRUNC,     /* "h.p" */
    M_ONE_SEG,   /* "h" */
    M_EMPTY,     /* "" */
    M_EMPTY_HDR, /* ".p.s" */
    M_EMPTY_PL,  /* "h..s" */
    M_EXTRA_SEG, /* "h.p.s.x" */
    M_TRAIL_DOT, /* "h.p.s." */
    M_HDR_PLUS,  /* a '+' in the header segment */
    M_PL_SLASH,  /* a '/' in the payload segment */
    M_HDR_PAD,   /* "h==.p.s" */
    M_SIG_PAD,   /* "h.p.s==" */
    M_SPACE,     /* a space inside the payload segment */
    M_NEWLINE,   /* "h.p.s\n" */
    M_NUL,       /* a NUL byte inside the payload segment (counted in len) */
    M_SIG_BITS,  /* the last signature char with non-zero unused bits */
    M_PL_TAMPER, /* the payload replaced after signing */
    M_SIG_ZERO,  /* 64 zero bytes (r = s = 0: "psychic signature") */
    M_SIG_ORDER, /* r = s = n, the order of P-256 */
    M_SIG_DER,   /* the ES256 signature in OpenSSL's DER form */
    M_SIG_SHORT, /* the signature without its last byte */
    M_SIG_LONG,  /* the signature with one more byte */
};

typedef struct {
    const char *name;
    const char *hdr;
    const char *pl; /* NULL: PL_OK */
    int signer;
    int mut;
    const char *expect; /* NULL: accepted */
    int only_es256;     /* allowlist {ES256} instead of all four */
    size_t max_len;     /* 0: default */
} attack_case;

static const attack_case attacks[] = {
    /* alg none, any case, empty signature */
    {"alg_none", "{\"alg\":\"none\",\"kid\":\"ec-1\"}", NULL, S_NONE, 0, "jws.alg", 0, 0},
    {"alg_None", "{\"alg\":\"None\",\"kid\":\"ec-1\"}", NULL, S_NONE, 0, "jws.alg", 0, 0},
    {"alg_NONE", "{\"alg\":\"NONE\",\"kid\":\"ec-1\"}", NULL, S_NONE, 0, "jws.alg", 0, 0},
    {"alg_nOnE", "{\"alg\":\"nOnE\",\"kid\":\"ec-1\"}", NULL, S_NONE, 0, "jws.alg", 0, 0},
    {"alg_none_no_kid", "{\"alg\":\"none\"}", NULL, S_NONE, 0, "jws.alg", 0, 0},
    {"alg_none_with_sig", "{\"alg\":\"none\",\"kid\":\"ec-1\"}", NULL, S_EC, 0, "jws.alg", 0, 0},
    /* HMAC keyed with the RSA public key's PEM text */
    {"hs256_rsa_pem_secret", "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"rsa-1\"}", NULL,
     S_HS256PEM, 0, "jws.alg", 0, 0},
    {"hs512_rsa_pem_secret", "{\"alg\":\"HS512\",\"kid\":\"rsa-1\"}", NULL, S_HS512PEM, 0,
     "jws.alg", 0, 0},
    /* alg: missing, wrong type, wrong case, not in the allowlist */
    {"alg_missing", "{\"kid\":\"ec-1\"}", NULL, S_EC, 0, "jws.alg", 0, 0},
    {"alg_number", "{\"alg\":256,\"kid\":\"ec-1\"}", NULL, S_EC, 0, "jws.alg", 0, 0},
    {"alg_lowercase", "{\"alg\":\"es256\",\"kid\":\"ec-1\"}", NULL, S_EC, 0, "jws.alg", 0, 0},
    {"alg_trailing_space", "{\"alg\":\"ES256 \",\"kid\":\"ec-1\"}", NULL, S_EC, 0, "jws.alg", 0, 0},
    {"alg_not_allowed", H_RSA, NULL, S_RSA, 0, "jws.alg", 1, 0},
    {"alg_es384", "{\"alg\":\"ES384\",\"kid\":\"ec-1\"}", NULL, S_EC, 0, "jws.alg", 0, 0},
    /* alg / key type mismatch */
    {"rs256_with_ec_kid", "{\"alg\":\"RS256\",\"kid\":\"ec-1\"}", NULL, S_RSA, 0,
     "jws.alg_key_mismatch", 0, 0},
    {"es256_with_rsa_kid", "{\"alg\":\"ES256\",\"kid\":\"rsa-1\"}", NULL, S_EC, 0,
     "jws.alg_key_mismatch", 0, 0},
    {"ps256_with_rs256_kid", "{\"alg\":\"PS256\",\"kid\":\"rsa-1\"}", NULL, S_RSA_PSS, 0,
     "jws.alg_key_mismatch", 0, 0},
    {"rs256_with_ps256_kid", "{\"alg\":\"RS256\",\"kid\":\"ps-1\"}", NULL, S_PS, 0,
     "jws.alg_key_mismatch", 0, 0},
    {"eddsa_with_ec_kid", "{\"alg\":\"EdDSA\",\"kid\":\"ec-1\"}", NULL, S_ED, 0,
     "jws.alg_key_mismatch", 0, 0},
    {"es256_with_eddsa_kid", "{\"alg\":\"ES256\",\"kid\":\"ed-1\"}", NULL, S_EC, 0,
     "jws.alg_key_mismatch", 0, 0},
    /* kid */
    {"kid_unknown", "{\"alg\":\"ES256\",\"kid\":\"ec-2\"}", NULL, S_EC, 0, "jws.unknown_kid", 0, 0},
    {"kid_path_traversal", "{\"alg\":\"ES256\",\"kid\":\"../../etc/passwd\"}", NULL, S_EC, 0,
     "jws.unknown_kid", 0, 0},
    {"kid_sqlish", "{\"alg\":\"ES256\",\"kid\":\"x' OR '1'='1\"}", NULL, S_EC, 0, "jws.unknown_kid",
     0, 0},
    {"kid_empty", "{\"alg\":\"ES256\",\"kid\":\"\"}", NULL, S_EC, 0, "jws.unknown_kid", 0, 0},
    {"kid_too_long",
     "{\"alg\":\"ES256\",\"kid\":\"ec-"
     "1xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
     NULL, S_EC, 0, "jws.unknown_kid", 0, 0},
    {"kid_unicode", "{\"alg\":\"ES256\",\"kid\":\"ec-\\u0131\"}", NULL, S_EC, 0, "jws.unknown_kid",
     0, 0},
    {"kid_nul", "{\"alg\":\"ES256\",\"kid\":\"ec-1\\u0000x\"}", NULL, S_EC, 0, "jws.malformed", 0,
     0},
    {"kid_missing", "{\"alg\":\"ES256\"}", NULL, S_EC, 0, "jws.kid", 0, 0},
    {"kid_number", "{\"alg\":\"ES256\",\"kid\":1}", NULL, S_EC, 0, "jws.kid", 0, 0},
    {"kid_null", "{\"alg\":\"ES256\",\"kid\":null}", NULL, S_EC, 0, "jws.kid", 0, 0},
    {"kid_array", "{\"alg\":\"ES256\",\"kid\":[\"ec-1\"]}", NULL, S_EC, 0, "jws.kid", 0, 0},
    /* keys from the token itself are never used */
    {"embedded_jwk_our_kid", "{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"jwk\":$JWK}", NULL, S_EVIL, 0,
     "jws.signature", 0, 0},
    {"embedded_jwk_its_kid", "{\"alg\":\"ES256\",\"kid\":\"evil-1\",\"jwk\":$JWK}", NULL, S_EVIL, 0,
     "jws.unknown_kid", 0, 0},
    {"jku_elsewhere", "{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"jku\":\"https://evil.example/jwks\"}",
     NULL, S_EVIL, 0, "jws.signature", 0, 0},
    {"x5u_elsewhere", "{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"x5u\":\"https://evil.example/c.pem\"}",
     NULL, S_EVIL, 0, "jws.signature", 0, 0},
    {"x5c_attacker", "{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"x5c\":[\"MIIB\"]}", NULL, S_EVIL, 0,
     "jws.signature", 0, 0},
    {"jku_ours_signed_ignored",
     "{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"jku\":\"https://evil.example/jwks\",\"x5u\":\"https:/"
     "/evil.example/c.pem\"}",
     NULL, S_EC, 0, NULL, 0, 0},
    {"attacker_key_our_kid", H_EC, NULL, S_EVIL, 0, "jws.signature", 0, 0},
    /* crit */
    {"crit_exp", "{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"crit\":[\"exp\"],\"exp\":1}", NULL, S_EC, 0,
     "jws.crit", 0, 0},
    {"crit_b64", "{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"b64\":false,\"crit\":[\"b64\"]}", NULL,
     S_EC, 0, "jws.crit", 0, 0},
    {"crit_empty", "{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"crit\":[]}", NULL, S_EC, 0, "jws.crit", 0,
     0},
    /* signature */
    {"sig_stripped", H_EC, NULL, S_EC, M_STRIP_SIG, "jws.signature", 0, 0},
    {"sig_stripped_rsa", H_RSA, NULL, S_RSA, M_STRIP_SIG, "jws.signature", 0, 0},
    {"sig_of_other_token", H_EC, NULL, S_EC, M_OTHER_SIG, "jws.signature", 0, 0},
    {"sig_of_other_token_rsa", H_RSA, NULL, S_RSA, M_OTHER_SIG, "jws.signature", 0, 0},
    {"payload_tampered", H_EC, NULL, S_EC, M_PL_TAMPER, "jws.signature", 0, 0},
    {"sig_zero_rs", H_EC, NULL, S_EC, M_SIG_ZERO, "jws.signature", 0, 0},
    {"sig_rs_order", H_EC, NULL, S_EC, M_SIG_ORDER, "jws.signature", 0, 0},
    {"sig_der_form", H_EC, NULL, S_EC, M_SIG_DER, "jws.signature", 0, 0},
    {"sig_short_es256", H_EC, NULL, S_EC, M_SIG_SHORT, "jws.signature", 0, 0},
    {"sig_long_es256", H_EC, NULL, S_EC, M_SIG_LONG, "jws.signature", 0, 0},
    {"sig_short_rs256", H_RSA, NULL, S_RSA, M_SIG_SHORT, "jws.signature", 0, 0},
    {"sig_long_rs256", H_RSA, NULL, S_RSA, M_SIG_LONG, "jws.signature", 0, 0},
    /* segments */
    {"truncated_two_segments", H_EC, NULL, S_EC, M_TRUNC, "jws.malformed", 0, 0},
    {"truncated_one_segment", H_EC, NULL, S_EC, M_ONE_SEG, "jws.malformed", 0, 0},
    {"empty_token", H_EC, NULL, S_EC, M_EMPTY, "jws.malformed", 0, 0},
    {"empty_header_segment", H_EC, NULL, S_EC, M_EMPTY_HDR, "jws.malformed", 0, 0},
    {"empty_payload_segment", H_EC, NULL, S_EC, M_EMPTY_PL, "jws.malformed", 0, 0},
    {"extra_segment", H_EC, NULL, S_EC, M_EXTRA_SEG, "jws.malformed", 0, 0},
    {"trailing_dot", H_EC, NULL, S_EC, M_TRAIL_DOT, "jws.malformed", 0, 0},
    /* base64url */
    {"b64_plus", H_EC, NULL, S_EC, M_HDR_PLUS, "jws.malformed", 0, 0},
    {"b64_slash", H_EC, NULL, S_EC, M_PL_SLASH, "jws.malformed", 0, 0},
    {"b64_padding_header", H_EC, NULL, S_EC, M_HDR_PAD, "jws.malformed", 0, 0},
    {"b64_padding_sig", H_EC, NULL, S_EC, M_SIG_PAD, "jws.malformed", 0, 0},
    {"b64_space", H_EC, NULL, S_EC, M_SPACE, "jws.malformed", 0, 0},
    {"b64_newline", H_EC, NULL, S_EC, M_NEWLINE, "jws.malformed", 0, 0},
    {"b64_nul_byte", H_EC, NULL, S_EC, M_NUL, "jws.malformed", 0, 0},
    {"b64_unused_bits", H_EC, NULL, S_EC, M_SIG_BITS, "jws.malformed", 0, 0},
    /* JSON */
    {"header_dup_alg", "{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"alg\":\"none\"}", NULL, S_EC, 0,
     "jws.malformed", 0, 0},
    {"header_dup_kid", "{\"kid\":\"evil-1\",\"alg\":\"ES256\",\"kid\":\"ec-1\"}", NULL, S_EC, 0,
     "jws.malformed", 0, 0},
    {"payload_dup_key", H_EC,
     "{\"iss\":\"" ISS "\",\"client_id\":\"a\",\"client_id\":\"b\",\"aud\":\"" AUD "\","
     "\"exp\":1750003600,\"iat\":1750000000,\"jti\":\"j\",\"scope\":\"s\"}",
     S_EC, 0, "jws.malformed", 0, 0},
    {"header_array", "[{\"alg\":\"ES256\",\"kid\":\"ec-1\"}]", NULL, S_EC, 0, "jws.malformed", 0,
     0},
    {"header_string", "\"ES256\"", NULL, S_EC, 0, "jws.malformed", 0, 0},
    {"header_not_json", "{alg:ES256,kid:ec-1}", NULL, S_EC, 0, "jws.malformed", 0, 0},
    {"header_trailing_data", H_EC " {}", NULL, S_EC, 0, "jws.malformed", 0, 0},
    {"header_invalid_utf8", "{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"x\":\"\xc3\x28\"}", NULL, S_EC,
     0, "jws.malformed", 0, 0},
    {"payload_array", H_EC, "[" PL_OK "]", S_EC, 0, "jws.malformed", 0, 0},
    {"payload_not_json", H_EC, "not json", S_EC, 0, "jws.malformed", 0, 0},
    /* typ */
    {"typ_unknown", "{\"alg\":\"ES256\",\"typ\":\"JOSE+JSON\",\"kid\":\"ec-1\"}", NULL, S_EC, 0,
     "jws.malformed", 0, 0},
    {"typ_number", "{\"alg\":\"ES256\",\"typ\":1,\"kid\":\"ec-1\"}", NULL, S_EC, 0, "jws.malformed",
     0, 0},
    {"typ_jwt_lowercase", "{\"alg\":\"ES256\",\"typ\":\"jwt\",\"kid\":\"ec-1\"}", NULL, S_EC, 0,
     NULL, 0, 0},
    {"typ_application_at_jwt",
     "{\"alg\":\"ES256\",\"typ\":\"application/AT+JWT\",\"kid\":\"ec-1\"}", NULL, S_EC, 0, NULL, 0,
     0},
    /* sizes */
    {"header_huge", "{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"x\":\"$BIG\"}", NULL, S_EC, 0,
     "jws.too_large", 0, 0},
    {"token_huge", H_EC,
     "{\"iss\":\"" ISS "\",\"client_id\":\"a\",\"aud\":\"" AUD "\",\"exp\":1750003600,"
     "\"iat\":1750000000,\"jti\":\"j\",\"scope\":\"s\",\"x\":\"$HUGE\"}",
     S_EC, 0, "jws.too_large", 0, 0},
    {"token_over_max_len", H_EC, NULL, S_EC, 0, "jws.too_large", 0, 256},
    /* claims, end to end (the claim table below has the rest) */
    {"exp_past_beyond_leeway", H_EC,
     "{\"iss\":\"" ISS "\",\"client_id\":\"a\",\"aud\":\"" AUD "\",\"exp\":1749999939,"
     "\"iat\":1749990000,\"jti\":\"j\",\"scope\":\"s\",\"cnf\":{\"x5t#S256\":\"" X5T_EMPTY "\"}}",
     S_EC, 0, "jwt.expired", 0, 0},
    {"wrong_aud", H_EC,
     "{\"iss\":\"" ISS "\",\"client_id\":\"a\",\"aud\":\"api-other\",\"exp\":1750003600,"
     "\"iat\":1750000000,\"jti\":\"j\",\"scope\":\"s\",\"cnf\":{\"x5t#S256\":\"" X5T_EMPTY "\"}}",
     S_EC, 0, "jwt.aud", 0, 0},
    {"valid_es256_crafted", H_EC, NULL, S_EC, 0, NULL, 1, 0},
    {"valid_eddsa_crafted", "{\"alg\":\"EdDSA\",\"kid\":\"ed-1\"}", NULL, S_ED, 0, NULL, 0, 0},
};

/* Replace the payload segment of <tok> by <seg>. */
static char *with_segment(const char *tok, int which, const char *seg)
{
    const char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
    char *out = NULL;
    if (which == 1)
        ck_assert_int_ge(asprintf(&out, "%.*s.%s%s", (int)(d1 - tok), tok, seg, d2), 0);
    else
        ck_assert_int_ge(asprintf(&out, "%.*s.%s", (int)(d2 - tok), tok, seg), 0);
    return out;
}

static char *mutate(char *tok, const attack_case *c, size_t *len)
{
    char *out = NULL;
    char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
    const char *sig64 = d2 + 1;
    unsigned char *sig = NULL;
    size_t sl = 0;
    *len = strlen(tok);
    switch (c->mut) {
    case M_NONE:
        return tok;
    case M_STRIP_SIG:
        out = with_segment(tok, 2, "");
        break;
    case M_OTHER_SIG: {
        char *other = craft(c->hdr, PL_OTHER, c->signer);
        out = with_segment(tok, 2, strrchr(other, '.') + 1);
        free(other);
        break;
    }
    case M_TRUNC:
        out = strndup(tok, (size_t)(d2 - tok));
        break;
    case M_ONE_SEG:
        out = strndup(tok, (size_t)(d1 - tok));
        break;
    case M_EMPTY:
        out = strdup("");
        break;
    case M_EMPTY_HDR:
        out = strdup(d1);
        break;
    case M_EMPTY_PL:
        ck_assert_int_ge(asprintf(&out, "%.*s.%s", (int)(d1 - tok), tok, d2), 0);
        break;
    case M_EXTRA_SEG:
        ck_assert_int_ge(asprintf(&out, "%s.%s", tok, sig64), 0);
        break;
    case M_TRAIL_DOT:
        ck_assert_int_ge(asprintf(&out, "%s.", tok), 0);
        break;
    case M_HDR_PLUS:
        out = strdup(tok);
        out[1] = '+';
        break;
    case M_PL_SLASH:
        out = strdup(tok);
        out[d1 - tok + 3] = '/';
        break;
    case M_HDR_PAD:
        ck_assert_int_ge(asprintf(&out, "%.*s==%s", (int)(d1 - tok), tok, d1), 0);
        break;
    case M_SIG_PAD:
        ck_assert_int_ge(asprintf(&out, "%s==", tok), 0);
        break;
    case M_SPACE:
        ck_assert_int_ge(asprintf(&out, "%.*s %s", (int)(d1 - tok + 5), tok, d1 + 5), 0);
        break;
    case M_NEWLINE:
        ck_assert_int_ge(asprintf(&out, "%s\n", tok), 0);
        break;
    case M_NUL:
        out = strdup(tok);
        out[d1 - tok + 4] = '\0';
        *len = strlen(tok);
        free(tok);
        return out;
    case M_SIG_BITS: {
        /* 64 or 256 signature bytes: the last char carries 4 unused bits */
        out = strdup(tok);
        char *last = out + strlen(out) - 1;
        const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        int v = (int)(strchr(alpha, *last) - alpha);
        ck_assert_int_eq(v & 15, 0);
        *last = alpha[v | 1];
        break;
    }
    case M_PL_TAMPER: {
        const char *evilpl = "{\"iss\":\"" ISS "\",\"client_id\":\"admin\",\"aud\":\"" AUD "\","
                             "\"exp\":1750003600,\"iat\":1750000000,\"jti\":\"j\",\"scope\":\"s\"}";
        char *pb = b64s(evilpl, strlen(evilpl));
        out = with_segment(tok, 1, pb);
        free(pb);
        break;
    }
    case M_SIG_ZERO: {
        unsigned char z[64] = {0};
        char *zb = b64s(z, sizeof(z));
        out = with_segment(tok, 2, zb);
        free(zb);
        break;
    }
    case M_SIG_ORDER: {
        static const unsigned char order[32] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
                                                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                                0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84,
                                                0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};
        unsigned char rs[64];
        memcpy(rs, order, 32);
        memcpy(rs + 32, order, 32);
        char *ob = b64s(rs, sizeof(rs));
        out = with_segment(tok, 2, ob);
        free(ob);
        break;
    }
    case M_SIG_DER: {
        ck_assert_int_eq(gw_b64url_decode(sig64, strlen(sig64), &sig, &sl), 0);
        ck_assert_uint_eq(sl, 64);
        ECDSA_SIG *es = ECDSA_SIG_new();
        ck_assert_int_eq(
            ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL)), 1);
        unsigned char *der = NULL;
        int dl = i2d_ECDSA_SIG(es, &der);
        ck_assert_int_gt(dl, 0);
        char *db = b64s(der, (size_t)dl);
        out = with_segment(tok, 2, db);
        free(db);
        OPENSSL_free(der);
        ECDSA_SIG_free(es);
        break;
    }
    case M_SIG_SHORT:
    case M_SIG_LONG: {
        ck_assert_int_eq(gw_b64url_decode(sig64, strlen(sig64), &sig, &sl), 0);
        unsigned char *s2 = calloc(1, sl + 1);
        memcpy(s2, sig, sl);
        char *sb = b64s(s2, c->mut == M_SIG_SHORT ? sl - 1 : sl + 1);
        out = with_segment(tok, 2, sb);
        free(sb);
        free(s2);
        break;
    }
    default:
        ck_abort_msg("mutation %d", c->mut);
    }
    free(sig);
    free(tok);
    ck_assert_ptr_nonnull(out);
    *len = strlen(out);
    return out;
}

START_TEST(attack)
{
    const attack_case *c = &attacks[_i];
    size_t len = 0;
    char *tok = mutate(craft(c->hdr, c->pl ? c->pl : PL_OK, c->signer), c, &len);
    static const gw_alg es_only[] = {GW_ALG_ES256};
    gw_jws_rules r = all_rules();
    if (c->only_es256) {
        r.algs = es_only;
        r.nalgs = 1;
    }
    r.max_len = c->max_len;
    gw_jwt_rules jr = jwt_rules();
    const gw_keyset *sets[] = {&ours};
    const char *why = check_token(tok, len, sets, 1, &r, &jr, NULL, NULL);
    ck_assert_msg(streq0(why, c->expect), "%s: got %s, want %s", c->name, why ? why : "accepted",
                  c->expect ? c->expect : "accepted");
    free(tok);
}
END_TEST

/* ---------------------------------------------------------------- claims */

typedef struct {
    const char *name;
    const char *member; /* set in (or removed from) PL_OK */
    const char *value;  /* JSON text; NULL removes the member */
    int require_cnf;
    const char *expect;
} claim_case;

static const claim_case claims[] = {
    {"ok", "sub", "\"commune-exemple-sandbox\"", 1, NULL},
    /* time */
    {"exp_past_beyond_leeway", "exp", "1749999939", 1, "jwt.expired"},
    {"exp_past_within_leeway", "exp", "1749999940", 1, NULL},
    {"exp_string", "exp", "\"1750003600\"", 1, "jwt.claims"},
    {"exp_real", "exp", "1750003600.0", 1, "jwt.claims"},
    {"exp_exponent", "exp", "1.75e9", 1, "jwt.claims"},
    {"exp_negative", "exp", "-1", 1, "jwt.claims"},
    {"exp_year_10000", "exp", "253402300800", 1, "jwt.claims"},
    {"exp_missing", "exp", NULL, 1, "jwt.claims"},
    {"exp_bool", "exp", "true", 1, "jwt.claims"},
    {"nbf_future_beyond_leeway", "nbf", "1750000061", 1, "jwt.not_yet_valid"},
    {"nbf_future_within_leeway", "nbf", "1750000060", 1, NULL},
    {"nbf_missing", "nbf", NULL, 1, NULL},
    {"nbf_string", "nbf", "\"0\"", 1, "jwt.claims"},
    {"iat_future", "iat", "1750000061", 1, "jwt.iat_future"},
    {"iat_future_within_leeway", "iat", "1750000060", 1, NULL},
    {"iat_real", "iat", "1750000000.5", 1, "jwt.claims"},
    {"iat_missing", "iat", NULL, 1, "jwt.claims"},
    /* iss */
    {"iss_wrong", "iss", "\"https://evil.test\"", 1, "jwt.iss"},
    {"iss_prefix", "iss", "\"https://gw.test/\"", 1, "jwt.iss"},
    {"iss_missing", "iss", NULL, 1, "jwt.claims"},
    {"iss_array", "iss", "[\"" ISS "\"]", 1, "jwt.claims"},
    /* aud */
    {"aud_wrong", "aud", "\"api-other\"", 1, "jwt.aud"},
    {"aud_array_with_ours", "aud", "[\"api-other\",\"" AUD "\"]", 1, NULL},
    {"aud_array_without_ours", "aud", "[\"api-other\",\"api-opale2\"]", 1, "jwt.aud"},
    {"aud_array_non_string", "aud", "[\"" AUD "\",1]", 1, "jwt.claims"},
    {"aud_array_empty", "aud", "[]", 1, "jwt.claims"},
    {"aud_number", "aud", "1", 1, "jwt.claims"},
    {"aud_missing", "aud", NULL, 1, "jwt.claims"},
    /* identity claims */
    {"client_id_missing", "client_id", NULL, 1, "jwt.claims"},
    {"client_id_empty", "client_id", "\"\"", 1, "jwt.claims"},
    {"client_id_number", "client_id", "42", 1, "jwt.claims"},
    {"client_id_128", "client_id", "\"$C128\"", 1, NULL},
    {"client_id_129", "client_id", "\"$C129\"", 1, "jwt.claims"},
    {"sub_missing", "sub", NULL, 1, NULL},
    {"sub_129", "sub", "\"$C129\"", 1, "jwt.claims"},
    {"sub_object", "sub", "{}", 1, "jwt.claims"},
    {"jti_missing", "jti", NULL, 1, "jwt.claims"},
    {"jti_129", "jti", "\"$C129\"", 1, "jwt.claims"},
    {"habilitation_missing", "habilitation", NULL, 1, NULL},
    {"habilitation_32", "habilitation", "\"HHHHHHHHHHHHHHHHHHHHHHHHHHHHHHHH\"", 1, "jwt.claims"},
    {"keytype_number", "keytype", "1", 1, "jwt.claims"},
    {"keytype_16", "keytype", "\"PRODUCTIONXXXXXX\"", 1, "jwt.claims"},
    /* scope */
    {"scope_missing", "scope", NULL, 1, "jwt.claims"},
    {"scope_empty", "scope", "\"\"", 1, "jwt.claims"},
    {"scope_double_space", "scope", "\"a  b\"", 1, "jwt.claims"},
    {"scope_leading_space", "scope", "\" a\"", 1, "jwt.claims"},
    {"scope_trailing_space", "scope", "\"a \"", 1, "jwt.claims"},
    {"scope_tab", "scope", "\"a\\tb\"", 1, "jwt.claims"},
    {"scope_comma", "scope", "\"a,b\"", 1, "jwt.claims"},
    {"scope_array", "scope", "[\"a\"]", 1, "jwt.claims"},
    {"scope_chars", "scope", "\"A-z_0.9:x\"", 1, NULL},
    {"scope_128_chars", "scope", "\"$C128\"", 1, NULL},
    {"scope_129_chars", "scope", "\"$C129\"", 1, "jwt.claims"},
    {"scope_32_items", "scope", "\"$S32\"", 1, NULL},
    {"scope_33_items", "scope", "\"$S33\"", 1, "jwt.claims"},
    /* cnf */
    {"cnf_missing_required", "cnf", NULL, 1, "jwt.cnf"},
    {"cnf_missing_not_required", "cnf", NULL, 0, NULL},
    {"cnf_not_object", "cnf", "\"" X5T_EMPTY "\"", 1, "jwt.cnf"},
    {"cnf_malformed_not_required", "cnf", "[]", 0, "jwt.cnf"},
    {"cnf_without_x5t", "cnf", "{\"jkt\":\"" X5T_EMPTY "\"}", 1, "jwt.cnf"},
    {"cnf_x5t_short", "cnf", "{\"x5t#S256\":\"47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuF\"}", 1,
     "jwt.cnf"},
    {"cnf_x5t_padded", "cnf", "{\"x5t#S256\":\"" X5T_EMPTY "=\"}", 1, "jwt.cnf"},
    {"cnf_x5t_std_alphabet", "cnf",
     "{\"x5t#S256\":\"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU\"}", 1, "jwt.cnf"},
    {"cnf_x5t_unused_bits", "cnf", "{\"x5t#S256\":\"47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFV\"}",
     1, "jwt.cnf"},
    {"cnf_x5t_number", "cnf", "{\"x5t#S256\":1}", 1, "jwt.cnf"},
    {"cnf_x5t_hex", "cnf",
     "{\"x5t#S256\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"}", 1,
     "jwt.cnf"},
};

static char *claim_value(const char *v)
{
    char buf[4096];
    size_t o = 0;
    while (*v != '\0') {
        if (strncmp(v, "$C128", 5) == 0 || strncmp(v, "$C129", 5) == 0) {
            size_t n = v[4] == '8' ? 128 : 129;
            memset(buf + o, 'c', n);
            o += n;
            v += 5;
        } else if (strncmp(v, "$S32", 4) == 0 || strncmp(v, "$S33", 4) == 0) {
            int n = v[3] == '2' ? 32 : 33;
            for (int i = 0; i < n; i++)
                o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%ss%d", i ? " " : "", i);
            v += 4;
        } else {
            buf[o++] = *v++;
        }
    }
    buf[o] = '\0';
    return strdup(buf);
}

START_TEST(claim)
{
    const claim_case *c = &claims[_i];
    json_t *pl = json_loads(PL_OK, JSON_REJECT_DUPLICATES, NULL);
    ck_assert_ptr_nonnull(pl);
    if (c->value == NULL) {
        json_object_del(pl, c->member);
    } else {
        char *v = claim_value(c->value);
        json_error_t je;
        json_t *jv = json_loads(v, JSON_DECODE_ANY, &je);
        ck_assert_msg(jv != NULL, "%s: %s", c->name, je.text);
        json_object_set_new(pl, c->member, jv);
        free(v);
    }
    gw_jwt_rules jr = jwt_rules();
    jr.require_cnf = c->require_cnf;
    gw_claims cl;
    const char *why = gw_jwt_check(pl, &jr, &cl);
    ck_assert_msg(streq0(why, c->expect), "%s: got %s, want %s", c->name, why ? why : "accepted",
                  c->expect ? c->expect : "accepted");
    if (why == NULL || strcmp(why, "jwt.claims") != 0) {
        /* the claims are read even when a value check fails (journal) */
        ck_assert_str_eq(cl.jti, "0f9c2b2e-6a43-4f57-9d59-8a4a2b0c1d11");
        ck_assert_uint_ge(cl.nscopes, 1);
    }
    if (why == NULL) {
        ck_assert_int_eq(cl.has_cnf, json_object_get(pl, "cnf") != NULL);
        if (strcmp(c->name, "scope_32_items") == 0) {
            ck_assert_uint_eq(cl.nscopes, 32);
            ck_assert_str_eq(cl.scopes[31], "s31");
            ck_assert_int_eq(gw_claims_has_scope(&cl, "s17"), 1);
            ck_assert_int_eq(gw_claims_has_scope(&cl, "s1"), 1);
            ck_assert_int_eq(gw_claims_has_scope(&cl, "s32"), 0);
        }
    }
    json_decref(pl);
}
END_TEST

START_TEST(claims_bad_args)
{
    gw_claims cl;
    gw_jwt_rules jr = jwt_rules();
    json_t *arr = json_array();
    ck_assert_str_eq(gw_jwt_check(arr, &jr, &cl), "jwt.claims");
    ck_assert_str_eq(gw_jwt_check(NULL, &jr, &cl), "jwt.claims");
    json_t *pl = json_loads(PL_OK, 0, NULL);
    ck_assert_str_eq(gw_jwt_check(pl, NULL, &cl), "jwt.claims");
    ck_assert_str_eq(gw_jwt_check(pl, &jr, NULL), "jwt.claims");
    /* no issuer / audience configured: any iss and aud (still required) */
    jr.issuer = NULL;
    jr.audience = NULL;
    json_object_set_new(pl, "iss", json_string("https://other.test"));
    json_object_set_new(pl, "aud", json_string("x"));
    ck_assert_ptr_null(gw_jwt_check(pl, &jr, &cl));
    /* a huge leeway is clamped to one day, a negative one counts as 0 */
    jr.leeway_s = 1L << 62;
    jr.now = NOW + 3600 + 86401;
    ck_assert_str_eq(gw_jwt_check(pl, &jr, &cl), "jwt.expired");
    jr.leeway_s = -5;
    jr.now = NOW + 3601;
    ck_assert_str_eq(gw_jwt_check(pl, &jr, &cl), "jwt.expired");
    jr.now = NOW + 3600;
    ck_assert_ptr_null(gw_jwt_check(pl, &jr, &cl));
    json_decref(pl);
    json_decref(arr);
    ck_assert_int_eq(gw_claims_has_scope(NULL, "x"), 0);
}
END_TEST

/* ------------------------------------------------------------------ suite */

static Suite *jose_suite(void)
{
    Suite *s = suite_create("jose");
    TCase *tc = tcase_create("b64");
    tcase_add_loop_test(tc, b64_vector, 0, sizeof(b64_vectors) / sizeof(b64_vectors[0]));
    tcase_add_loop_test(tc, b64_reject, 0, sizeof(b64_bad) / sizeof(b64_bad[0]));
    tcase_add_test(tc, b64_round_trip);
    tcase_add_test(tc, x5t_and_algs);
    suite_add_tcase(s, tc);

    tc = tcase_create("keys");
    tcase_add_unchecked_fixture(tc, fixture_up, fixture_down);
    tcase_add_loop_test(tc, load_pem_ok, 0, K_N);
    tcase_add_loop_test(tc, load_pem_refused, 0,
                        sizeof(load_bad_cases) / sizeof(load_bad_cases[0]));
    tcase_add_test(tc, jwks_round_trip);
    tcase_add_loop_test(tc, jwks_refused, 0, sizeof(jwks_bad) / sizeof(jwks_bad[0]));
    tcase_add_test(tc, jwks_accepted_forms);
    tcase_add_test(tc, rfc_known_answers);
    tcase_add_loop_test(tc, independent_evp, 0, K_N);
    tcase_add_test(tc, ecdsa_low_s_only);
    tcase_add_loop_test(tc, valid_token, 0, K_N);
    tcase_add_test(tc, key_sets);
    tcase_add_loop_test(tc, attack, 0, sizeof(attacks) / sizeof(attacks[0]));
    tcase_add_loop_test(tc, claim, 0, sizeof(claims) / sizeof(claims[0]));
    tcase_add_test(tc, claims_bad_args);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(jose_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
