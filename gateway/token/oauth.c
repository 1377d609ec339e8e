#include "token/oauth.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "lib/jsonv.h"

static atomic_ulong oauth_gen;

static char *abs_path(const gw_conf *c, const char *p)
{
    if (p[0] == '/')
        return strdup(p);
    size_t n = strlen(c->dir) + strlen(p) + 2;
    char *s = malloc(n);
    if (s != NULL)
        snprintf(s, n, "%s/%s", c->dir, p);
    return s;
}

/* Optional string member of "oauth"; <*out> strdup'ed or left as is. */
static void opt_str(gw_jsonv *v, json_t *o, const char *key, char **out)
{
    json_t *m = gw_jsonv_member(v, o, "oauth", key, GW_JSONV_OPTIONAL);
    if (m == NULL)
        return;
    if (!json_is_string(m) || json_string_length(m) == 0 || json_string_length(m) > 255) {
        char p[GW_JSONV_PATH];
        gw_jsonv_path_key(p, "oauth", key);
        gw_jsonv_err(v, p, "must be a string of 1 to 255 characters");
        return;
    }
    free(*out);
    *out = strdup(json_string_value(m));
}

/* Optional integer member of "oauth" into <*out>, which holds the default. */
static long long opt_int(gw_jsonv *v, json_t *o, const char *key, long long min, long long max,
                         long long dflt)
{
    long long n = dflt;
    gw_jsonv_int_in(v, o, "oauth", key, GW_JSONV_OPTIONAL, min, max, &n);
    return n;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (buf != NULL)
        buf[n] = '\0';
    *len = n;
    return buf;
}

/* The assertion MAC key: the bytes of the file, one final newline (LF or
 * CRLF) ignored, GW_MAC_KEY_MIN..GW_MAC_KEY_MAX bytes. */
static void load_mac_key(gw_jsonv *v, const gw_conf *c, json_t *j, gw_oauth *o)
{
    const char *p = "oauth.assertion_mac_key_file";
    json_t *f = json_object_get(j, "assertion_mac_key_file");
    if (f == NULL) {
        if (o->assertion_mode == GW_ASSERTION_GRANT_MAC)
            gw_jsonv_err(v, p,
                         "required with \"assertion_mode\": \"grant_mac\" (the default); "
                         "or set \"assertion_mode\": \"per_request\"");
        return;
    }
    if (!json_is_string(f) || json_string_length(f) == 0) {
        gw_jsonv_err(v, p, "must be a file name");
        return;
    }
    char *path = abs_path(c, json_string_value(f));
    FILE *fp = path ? fopen(path, "rb") : NULL;
    unsigned char buf[GW_MAC_KEY_MAX + 3];
    size_t n = 0;
    if (fp != NULL) {
        n = fread(buf, 1, sizeof(buf), fp);
        fclose(fp);
    }
    if (fp == NULL) {
        gw_jsonv_err(v, p, "cannot read %s", path ? path : json_string_value(f));
        free(path);
        return;
    }
    free(path);
    if (n > 0 && buf[n - 1] == '\n') {
        n--;
        if (n > 0 && buf[n - 1] == '\r')
            n--;
    }
    if (n < GW_MAC_KEY_MIN || n > GW_MAC_KEY_MAX) {
        gw_jsonv_err(v, p, "the key must be %d to %d bytes (e.g. openssl rand -hex 32)",
                     GW_MAC_KEY_MIN, GW_MAC_KEY_MAX);
    } else if ((o->mac_key = malloc(n)) == NULL) {
        gw_jsonv_err(v, p, "out of memory");
    } else {
        memcpy(o->mac_key, buf, n);
        o->mac_key_len = n;
    }
    OPENSSL_cleanse(buf, sizeof(buf));
}

static void parse_signing_keys(gw_jsonv *v, const gw_conf *c, json_t *arr, gw_oauth *o)
{
    if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > 8) {
        gw_jsonv_err(v, "oauth.signing_keys", "must be an array of 1 to 8 keys");
        return;
    }
    o->own.keys = calloc(json_array_size(arr), sizeof(gw_jwk));
    if (o->own.keys == NULL) {
        gw_jsonv_err(v, "oauth.signing_keys", "out of memory");
        return;
    }
    size_t i, nactive = 0;
    json_t *k;
    json_array_foreach(arr, i, k)
    {
        static const char *const keys[] = {"kid", "file", "alg", "active", NULL};
        char p[GW_JSONV_PATH], pk[GW_JSONV_PATH];
        gw_jsonv_path_idx(p, "oauth.signing_keys", i);
        if (!json_is_object(k)) {
            gw_jsonv_err(v, p, "must be an object");
            continue;
        }
        gw_jsonv_keys(v, k, p, keys);
        const char *kid = json_string_value(json_object_get(k, "kid"));
        const char *file = json_string_value(json_object_get(k, "file"));
        json_t *algv = json_object_get(k, "alg");
        json_t *act = json_object_get(k, "active");
        gw_alg alg = algv ? gw_alg_parse(json_string_value(algv) ? json_string_value(algv) : "")
                          : GW_ALG_ES256;
        int bad = 0;
        if (kid == NULL) {
            gw_jsonv_path_key(pk, p, "kid");
            gw_jsonv_err(v, pk, "required string");
            bad = 1;
        }
        if (file == NULL) {
            gw_jsonv_path_key(pk, p, "file");
            gw_jsonv_err(v, pk, "required string");
            bad = 1;
        }
        if (alg == GW_ALG_INVALID) {
            gw_jsonv_path_key(pk, p, "alg");
            gw_jsonv_err(v, pk, "must be \"ES256\", \"RS256\", \"PS256\" or \"EdDSA\"");
            bad = 1;
        }
        if (act != NULL && !json_is_boolean(act)) {
            gw_jsonv_path_key(pk, p, "active");
            gw_jsonv_err(v, pk, "must be a boolean");
            bad = 1;
        }
        if (bad)
            continue;
        for (size_t j = 0; j < o->own.n; j++) {
            if (strcmp(o->own.keys[j].kid, kid) == 0) {
                gw_jsonv_path_key(pk, p, "kid");
                gw_jsonv_err(v, pk, "duplicate kid");
                bad = 1;
            }
        }
        if (bad)
            continue;
        char *path = abs_path(c, file);
        char *err = NULL;
        gw_jwk *jk = &o->own.keys[o->own.n];
        if (path == NULL || gw_jwk_load_pem(jk, path, kid, alg, &err) < 0) {
            gw_jsonv_path_key(pk, p, "file");
            gw_jsonv_err(v, pk, "%s: %s", path ? path : file, err ? err : "out of memory");
            free(err);
            free(path);
            continue;
        }
        free(path);
        if (!jk->can_sign) {
            gw_jsonv_path_key(pk, p, "file");
            gw_jsonv_err(v, pk, "must hold a private key");
            gw_jwk_clear(jk);
            continue;
        }
        o->own.n++;
        if (act != NULL && json_is_true(act)) {
            nactive++;
            o->active = jk;
        }
    }
    if (nactive != 1 && o->own.n == json_array_size(arr))
        gw_jsonv_err(v, "oauth.signing_keys", "exactly one key must be \"active\": true");
}

static void parse_external(gw_jsonv *v, const gw_conf *c, json_t *arr, gw_oauth *o)
{
    if (!json_is_array(arr) || json_array_size(arr) > GW_OAUTH_MAX_EXT) {
        gw_jsonv_err(v, "oauth.external_issuers", "must be an array of at most 8 issuers");
        return;
    }
    size_t i;
    json_t *x;
    json_array_foreach(arr, i, x)
    {
        static const char *const keys[] = {"issuer", "jwks_file", NULL};
        char p[GW_JSONV_PATH], pk[GW_JSONV_PATH];
        gw_jsonv_path_idx(p, "oauth.external_issuers", i);
        if (!json_is_object(x)) {
            gw_jsonv_err(v, p, "must be an object");
            continue;
        }
        gw_jsonv_keys(v, x, p, keys);
        const char *iss = json_string_value(json_object_get(x, "issuer"));
        const char *file = json_string_value(json_object_get(x, "jwks_file"));
        if (iss == NULL || file == NULL) {
            gw_jsonv_err(v, p, "\"issuer\" and \"jwks_file\" are required strings");
            continue;
        }
        if (o->issuer != NULL && strcmp(iss, o->issuer) == 0) {
            gw_jsonv_path_key(pk, p, "issuer");
            gw_jsonv_err(v, pk, "must differ from oauth.issuer");
            continue;
        }
        char *path = abs_path(c, file);
        size_t len = 0;
        char *text = path ? read_file(path, &len) : NULL;
        char *err = NULL;
        gw_keyset *ks = &o->ext[o->next];
        gw_jsonv_path_key(pk, p, "jwks_file");
        if (text == NULL) {
            gw_jsonv_err(v, pk, "cannot read %s", path ? path : file);
        } else if (gw_jwks_parse(text, len, ks, &err) < 0) {
            gw_jsonv_err(v, pk, "%s: %s", path, err ? err : "invalid JWKS");
        } else {
            free(ks->issuer);
            ks->issuer = strdup(iss);
            o->next++;
        }
        free(err);
        free(text);
        free(path);
    }
}

gw_oauth *gw_oauth_load(const gw_conf *c, gw_errlist *errs)
{
    gw_jsonv jv = gw_jsonv_init(c->path, errs), *v = &jv;
    json_t *j = c->oauth;
    if (j == NULL) {
        gw_jsonv_err(v, "oauth", "required (token endpoint and bearer validation settings)");
        return NULL;
    }
    gw_oauth *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        gw_jsonv_err(v, "oauth", "out of memory");
        return NULL;
    }
    static const char *const keys[] = {"issuer",
                                       "audience",
                                       "assertion_audience",
                                       "token_lifetime_s",
                                       "assertion_lifetime_s",
                                       "leeway_s",
                                       "algorithms",
                                       "signing_keys",
                                       "external_issuers",
                                       "token_requests_per_minute",
                                       "token_cache_entries",
                                       "assertion_mode",
                                       "assertion_mac_key_file",
                                       "assertion_cache_entries",
                                       NULL};
    gw_jsonv_keys(v, j, "oauth", keys);
    o->audience = strdup("api-opale");
    o->assertion_audience = strdup("opale-backend");
    if (json_object_get(j, "issuer") == NULL)
        gw_jsonv_err(v, "oauth.issuer", "required string");
    opt_str(v, j, "issuer", &o->issuer);
    opt_str(v, j, "audience", &o->audience);
    opt_str(v, j, "assertion_audience", &o->assertion_audience);
    o->token_lifetime_s = (unsigned)opt_int(v, j, "token_lifetime_s", 60, 86400, 3600);
    o->assertion_lifetime_s = (unsigned)opt_int(v, j, "assertion_lifetime_s", 5, 3600, 60);
    o->leeway_s = (long)opt_int(v, j, "leeway_s", 0, 600, 60);
    o->token_rate_per_minute = (unsigned)opt_int(v, j, "token_requests_per_minute", 1, 100000, 20);
    o->cache_entries = (size_t)opt_int(v, j, "token_cache_entries", 16, 10000000, 10000);
    o->assertion_cache_entries =
        (size_t)opt_int(v, j, "assertion_cache_entries", 16, 1048576, 16384);
    json_t *mode = json_object_get(j, "assertion_mode");
    if (mode != NULL) {
        const char *m = json_string_value(mode);
        if (m != NULL && strcmp(m, "grant_mac") == 0)
            o->assertion_mode = GW_ASSERTION_GRANT_MAC;
        else if (m != NULL && strcmp(m, "per_request") == 0)
            o->assertion_mode = GW_ASSERTION_PER_REQUEST;
        else
            gw_jsonv_err(v, "oauth.assertion_mode", "must be \"grant_mac\" or \"per_request\"");
    }
    json_t *algs = json_object_get(j, "algorithms");
    if (algs == NULL) {
        o->algs[0] = GW_ALG_ES256;
        o->algs[1] = GW_ALG_RS256;
        o->algs[2] = GW_ALG_PS256;
        o->algs[3] = GW_ALG_EDDSA;
        o->nalgs = 4;
    } else if (!json_is_array(algs) || json_array_size(algs) == 0 || json_array_size(algs) > 4) {
        gw_jsonv_err(v, "oauth.algorithms", "must be an array of 1 to 4 algorithms");
    } else {
        size_t i;
        json_t *a;
        json_array_foreach(algs, i, a)
        {
            char p[GW_JSONV_PATH];
            gw_jsonv_path_idx(p, "oauth.algorithms", i);
            gw_alg al = gw_alg_parse(json_string_value(a) ? json_string_value(a) : "");
            if (al == GW_ALG_INVALID)
                gw_jsonv_err(v, p, "must be \"ES256\", \"RS256\", \"PS256\" or \"EdDSA\"");
            else
                o->algs[o->nalgs++] = al;
        }
    }
    json_t *sk = json_object_get(j, "signing_keys");
    if (sk == NULL)
        gw_jsonv_err(v, "oauth.signing_keys", "required (at least one key)");
    else
        parse_signing_keys(v, c, sk, o);
    json_t *ext = json_object_get(j, "external_issuers");
    if (ext != NULL)
        parse_external(v, c, ext, o);
    load_mac_key(v, c, j, o);
    if (v->nerrs > 0 || o->issuer == NULL || o->active == NULL) {
        gw_oauth_free(o);
        return NULL;
    }
    if (o->audience == NULL || o->assertion_audience == NULL) {
        gw_jsonv_err(v, "oauth", "out of memory");
        gw_oauth_free(o);
        return NULL;
    }
    o->own.issuer = strdup(o->issuer);
    o->sets[o->nsets++] = &o->own;
    for (size_t i = 0; i < o->next; i++)
        o->sets[o->nsets++] = &o->ext[i];
    /* a kid must name one key only across every set */
    for (size_t a = 0; a < o->nsets; a++)
        for (size_t ka = 0; ka < o->sets[a]->n; ka++)
            for (size_t b = a + 1; b < o->nsets; b++)
                if (gw_keyset_find(o->sets[b], o->sets[a]->keys[ka].kid) != NULL) {
                    char kb[96];
                    gw_jsonv_err(v, "oauth.external_issuers", "kid \"%s\" is used by two issuers",
                                 gw_jsonv_clean(kb, sizeof(kb), o->sets[a]->keys[ka].kid, 64));
                }
    o->jwks_json = gw_jwks_export(&o->own);
    /* explicit fetch, once: the workers' MAC contexts are made from it */
    if (o->assertion_mode == GW_ASSERTION_GRANT_MAC &&
        (o->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL)
        gw_jsonv_err(v, "oauth.assertion_mode", "HMAC is not available in libcrypto");
    o->gen = atomic_fetch_add(&oauth_gen, 1) + 1;
    if (v->nerrs > 0 || o->jwks_json == NULL) {
        gw_oauth_free(o);
        return NULL;
    }
    return o;
}

void gw_oauth_free(gw_oauth *o)
{
    if (o == NULL)
        return;
    free(o->issuer);
    free(o->audience);
    free(o->assertion_audience);
    gw_keyset_clear(&o->own);
    for (size_t i = 0; i < o->next; i++)
        gw_keyset_clear(&o->ext[i]);
    free(o->jwks_json);
    if (o->mac_key != NULL)
        OPENSSL_cleanse(o->mac_key, o->mac_key_len);
    free(o->mac_key);
    EVP_MAC_free(o->hmac);
    free(o);
}
