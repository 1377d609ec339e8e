/* libFuzzer target for gateway/token/jose.c: the JWS/JWT parser and checks.
 *
 * The first input byte picks what the rest is:
 *   0: a compact token for gw_jws_verify (keys: a P-256 and an Ed25519 key
 *      made at start, kids "ec" and "ed"), then gw_jwt_check on its payload
 *      when it verifies;
 *   1: a JWKS document for gw_jwks_parse (+ export and re-parse);
 *   2: a JWT payload: when it is a JSON object, signed here with the P-256
 *      key, then it must verify, its high-S twin must not, and its claims
 *      go through gw_jwt_check (the claims checker behind a good signature);
 *   3: base64url text for the strict decoder (round trip when accepted).
 * Invariants are checked with abort(); ASan/UBSan catch the rest. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "token/jose.h"

static gw_keyset keys;
static gw_jwk signer; /* the P-256 private key of keys.keys[0] */

static const gw_alg all_algs[] = {GW_ALG_ES256, GW_ALG_RS256, GW_ALG_PS256, GW_ALG_EDDSA};

static void setup(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (ec == NULL || ed == NULL)
        abort();
    keys.issuer = strdup("https://gw.fuzz");
    keys.keys = calloc(2, sizeof(gw_jwk));
    if (keys.issuer == NULL || keys.keys == NULL)
        abort();
    keys.n = 2;
    strcpy(keys.keys[0].kid, "ec");
    keys.keys[0].alg = GW_ALG_ES256;
    keys.keys[0].pkey = ec;
    strcpy(keys.keys[1].kid, "ed");
    keys.keys[1].alg = GW_ALG_EDDSA;
    keys.keys[1].pkey = ed;
    signer = keys.keys[0];
    signer.can_sign = 1;
}

static void check_reason(const char *why, const char *prefix)
{
    if (why != NULL && strncmp(why, prefix, strlen(prefix)) != 0)
        abort();
}

static void claims(const json_t *payload)
{
    gw_jwt_rules jr = {.now = 1700000000,
                       .leeway_s = 30,
                       .issuer = keys.issuer,
                       .audience = "api-opale",
                       .require_cnf = 1};
    gw_claims c;
    const char *why = gw_jwt_check(payload, &jr, &c);
    check_reason(why, "jwt.");
    if (why == NULL) {
        if (c.nscopes > GW_JWT_MAX_SCOPES || !c.has_cnf)
            abort();
        for (size_t i = 0; i < c.nscopes; i++)
            if (!gw_claims_has_scope(&c, c.scopes[i]))
                abort();
    }
}

static void verify(const char *tok, size_t n, int must_pass)
{
    const gw_keyset *sets[] = {&keys};
    gw_jws_rules rules = {.algs = all_algs, .nalgs = 4, .max_len = 8192};
    gw_jws j;
    const char *why = gw_jws_verify(tok, n, sets, 1, &rules, &j);
    check_reason(why, "jws.");
    if (must_pass >= 0 && (why == NULL) != must_pass)
        abort();
    if (why != NULL) {
        if (j.header != NULL || j.payload != NULL || j.key != NULL)
            abort();
        return;
    }
    if (!json_is_object(j.header) || !json_is_object(j.payload) || j.set != &keys)
        abort();
    claims(j.payload);
    gw_jws_clear(&j);
}

static void sign_and_verify(const char *text, size_t n)
{
    json_error_t je;
    json_t *pl = json_loadb(text, n, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(pl)) {
        json_decref(pl);
        return;
    }
    char *tok = gw_jws_sign(&signer, "at+jwt", pl);
    json_decref(pl);
    if (tok == NULL)
        return; /* too large or unserialisable: refused, fine */
    size_t tl = strlen(tok);
    if (tl <= 8192) {
        verify(tok, tl, 1);
        /* the high-S twin: S := n - S (n - S > n/2 because we sign low-S) */
        char *dot = strrchr(tok, '.');
        unsigned char *sig = NULL;
        size_t sl = 0;
        if (dot == NULL || gw_b64url_decode(dot + 1, strlen(dot + 1), &sig, &sl) != 0 || sl != 64)
            abort();
        static const unsigned char order[32] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
                                                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                                0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84,
                                                0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};
        unsigned borrow = 0;
        for (int i = 31; i >= 0; i--) {
            unsigned d = (unsigned)order[i] - sig[32 + i] - borrow;
            sig[32 + i] = (unsigned char)d;
            borrow = (d >> 8) & 1;
        }
        char *s64 = gw_b64url_encode(sig, 64);
        free(sig);
        if (s64 == NULL)
            abort();
        size_t head = (size_t)(dot + 1 - tok);
        char *twin = malloc(head + strlen(s64) + 1);
        if (twin == NULL)
            abort();
        memcpy(twin, tok, head);
        strcpy(twin + head, s64);
        verify(twin, strlen(twin), 0);
        free(twin);
        free(s64);
    }
    free(tok);
}

static void jwks(const char *text, size_t n)
{
    gw_keyset ks;
    char *err = NULL;
    if (gw_jwks_parse(text, n, &ks, &err) != 0) {
        if (err == NULL)
            abort();
        free(err);
        return;
    }
    char *out = gw_jwks_export(&ks);
    if (out != NULL) {
        gw_keyset again;
        char *err2 = NULL;
        if (gw_jwks_parse(out, strlen(out), &again, &err2) != 0 || again.n != ks.n)
            abort(); /* an export always parses back to the same keys */
        gw_keyset_clear(&again);
        free(out);
    }
    gw_keyset_clear(&ks);
}

static void b64(const char *text, size_t n)
{
    unsigned char *out = NULL;
    size_t ol = 0;
    if (gw_b64url_decode(text, n, &out, &ol) != 0)
        return;
    char *back = gw_b64url_encode(out, ol);
    if (back == NULL || strlen(back) != n || memcmp(back, text, n) != 0)
        abort(); /* strict: only the canonical text decodes */
    free(back);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    if (size < 1 || size > 16384)
        return 0;
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    /* an exact-size copy, so that any read past the end is caught */
    char *copy = malloc(n ? n : 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, text, n);
    switch (data[0] % 4) {
    case 0:
        verify(copy, n, -1);
        break;
    case 1:
        jwks(copy, n);
        break;
    case 2:
        sign_and_verify(copy, n);
        break;
    default:
        b64(copy, n);
        break;
    }
    free(copy);
    return 0;
}
