#include "token/oauth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static void e(gw_errlist *errs, const gw_conf *c, const char *path, const char *msg)
{
    gw_errlist_add(errs, "%s: %s: %s", c->path, path, msg);
}

static void check_keys(gw_errlist *errs, const gw_conf *c, json_t *o, const char *path,
                       const char *const *known)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        int ok = 0;
        for (size_t i = 0; known[i] != NULL; i++)
            if (strcmp(k, known[i]) == 0)
                ok = 1;
        if (!ok) {
            char p[256];
            snprintf(p, sizeof(p), "%s.%.64s", path, k);
            e(errs, c, p, "unknown key");
        }
    }
}

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

/* Optional string member; <*out> strdup'ed or left as is. */
static void opt_str(gw_errlist *errs, const gw_conf *c, json_t *o, const char *key, char **out)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL)
        return;
    char p[96];
    snprintf(p, sizeof(p), "oauth.%s", key);
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 255) {
        e(errs, c, p, "must be a string of 1 to 255 characters");
        return;
    }
    free(*out);
    *out = strdup(json_string_value(v));
}

static void opt_uint(gw_errlist *errs, const gw_conf *c, json_t *o, const char *key, long long min,
                     long long max, unsigned long long *out)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL)
        return;
    char p[96], m[96];
    snprintf(p, sizeof(p), "oauth.%s", key);
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        snprintf(m, sizeof(m), "must be an integer between %lld and %lld", min, max);
        e(errs, c, p, m);
        return;
    }
    *out = (unsigned long long)json_integer_value(v);
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

static void parse_signing_keys(gw_errlist *errs, const gw_conf *c, json_t *arr, gw_oauth *o)
{
    if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > 8) {
        e(errs, c, "oauth.signing_keys", "must be an array of 1 to 8 keys");
        return;
    }
    o->own.keys = calloc(json_array_size(arr), sizeof(gw_jwk));
    if (o->own.keys == NULL) {
        e(errs, c, "oauth.signing_keys", "out of memory");
        return;
    }
    size_t i, nactive = 0;
    json_t *k;
    json_array_foreach(arr, i, k)
    {
        static const char *const keys[] = {"kid", "file", "alg", "active", NULL};
        char p[96], pk[128];
        snprintf(p, sizeof(p), "oauth.signing_keys[%zu]", i);
        if (!json_is_object(k)) {
            e(errs, c, p, "must be an object");
            continue;
        }
        check_keys(errs, c, k, p, keys);
        const char *kid = json_string_value(json_object_get(k, "kid"));
        const char *file = json_string_value(json_object_get(k, "file"));
        json_t *algv = json_object_get(k, "alg");
        json_t *act = json_object_get(k, "active");
        gw_alg alg = algv ? gw_alg_parse(json_string_value(algv) ? json_string_value(algv) : "")
                          : GW_ALG_ES256;
        int bad = 0;
        if (kid == NULL) {
            snprintf(pk, sizeof(pk), "%s.kid", p);
            e(errs, c, pk, "required string");
            bad = 1;
        }
        if (file == NULL) {
            snprintf(pk, sizeof(pk), "%s.file", p);
            e(errs, c, pk, "required string");
            bad = 1;
        }
        if (alg == GW_ALG_INVALID) {
            snprintf(pk, sizeof(pk), "%s.alg", p);
            e(errs, c, pk, "must be \"ES256\", \"RS256\", \"PS256\" or \"EdDSA\"");
            bad = 1;
        }
        if (act != NULL && !json_is_boolean(act)) {
            snprintf(pk, sizeof(pk), "%s.active", p);
            e(errs, c, pk, "must be a boolean");
            bad = 1;
        }
        if (bad)
            continue;
        for (size_t j = 0; j < o->own.n; j++) {
            if (strcmp(o->own.keys[j].kid, kid) == 0) {
                snprintf(pk, sizeof(pk), "%s.kid", p);
                e(errs, c, pk, "duplicate kid");
                bad = 1;
            }
        }
        if (bad)
            continue;
        char *path = abs_path(c, file);
        char *err = NULL;
        gw_jwk *jk = &o->own.keys[o->own.n];
        if (path == NULL || gw_jwk_load_pem(jk, path, kid, alg, &err) < 0) {
            snprintf(pk, sizeof(pk), "%s.file", p);
            char m[512];
            snprintf(m, sizeof(m), "%s: %s", path ? path : file, err ? err : "out of memory");
            e(errs, c, pk, m);
            free(err);
            free(path);
            continue;
        }
        free(path);
        if (!jk->can_sign) {
            snprintf(pk, sizeof(pk), "%s.file", p);
            e(errs, c, pk, "must hold a private key");
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
        e(errs, c, "oauth.signing_keys", "exactly one key must be \"active\": true");
}

static void parse_external(gw_errlist *errs, const gw_conf *c, json_t *arr, gw_oauth *o)
{
    if (!json_is_array(arr) || json_array_size(arr) > GW_OAUTH_MAX_EXT) {
        e(errs, c, "oauth.external_issuers", "must be an array of at most 8 issuers");
        return;
    }
    size_t i;
    json_t *x;
    json_array_foreach(arr, i, x)
    {
        static const char *const keys[] = {"issuer", "jwks_file", NULL};
        char p[96], pk[128];
        snprintf(p, sizeof(p), "oauth.external_issuers[%zu]", i);
        if (!json_is_object(x)) {
            e(errs, c, p, "must be an object");
            continue;
        }
        check_keys(errs, c, x, p, keys);
        const char *iss = json_string_value(json_object_get(x, "issuer"));
        const char *file = json_string_value(json_object_get(x, "jwks_file"));
        if (iss == NULL || file == NULL) {
            e(errs, c, p, "\"issuer\" and \"jwks_file\" are required strings");
            continue;
        }
        if (o->issuer != NULL && strcmp(iss, o->issuer) == 0) {
            snprintf(pk, sizeof(pk), "%s.issuer", p);
            e(errs, c, pk, "must differ from oauth.issuer");
            continue;
        }
        char *path = abs_path(c, file);
        size_t len = 0;
        char *text = path ? read_file(path, &len) : NULL;
        char *err = NULL;
        gw_keyset *ks = &o->ext[o->next];
        snprintf(pk, sizeof(pk), "%s.jwks_file", p);
        if (text == NULL) {
            char m[512];
            snprintf(m, sizeof(m), "cannot read %s", path ? path : file);
            e(errs, c, pk, m);
        } else if (gw_jwks_parse(text, len, ks, &err) < 0) {
            char m[512];
            snprintf(m, sizeof(m), "%s: %s", path, err ? err : "invalid JWKS");
            e(errs, c, pk, m);
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
    size_t before = errs->n + errs->dropped;
    json_t *j = c->oauth;
    if (j == NULL) {
        e(errs, c, "oauth", "required (token endpoint and bearer validation settings)");
        return NULL;
    }
    gw_oauth *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        e(errs, c, "oauth", "out of memory");
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
                                       NULL};
    check_keys(errs, c, j, "oauth", keys);
    o->audience = strdup("api-opale");
    o->assertion_audience = strdup("opale-backend");
    if (json_object_get(j, "issuer") == NULL)
        e(errs, c, "oauth.issuer", "required string");
    opt_str(errs, c, j, "issuer", &o->issuer);
    opt_str(errs, c, j, "audience", &o->audience);
    opt_str(errs, c, j, "assertion_audience", &o->assertion_audience);
    unsigned long long v;
    v = 3600;
    opt_uint(errs, c, j, "token_lifetime_s", 60, 86400, &v);
    o->token_lifetime_s = (unsigned)v;
    v = 60;
    opt_uint(errs, c, j, "assertion_lifetime_s", 5, 3600, &v);
    o->assertion_lifetime_s = (unsigned)v;
    v = 60;
    opt_uint(errs, c, j, "leeway_s", 0, 600, &v);
    o->leeway_s = (long)v;
    v = 20;
    opt_uint(errs, c, j, "token_requests_per_minute", 1, 100000, &v);
    o->token_rate_per_minute = (unsigned)v;
    v = 10000;
    opt_uint(errs, c, j, "token_cache_entries", 16, 10000000, &v);
    o->cache_entries = (size_t)v;
    json_t *algs = json_object_get(j, "algorithms");
    if (algs == NULL) {
        o->algs[0] = GW_ALG_ES256;
        o->algs[1] = GW_ALG_RS256;
        o->algs[2] = GW_ALG_PS256;
        o->algs[3] = GW_ALG_EDDSA;
        o->nalgs = 4;
    } else if (!json_is_array(algs) || json_array_size(algs) == 0 || json_array_size(algs) > 4) {
        e(errs, c, "oauth.algorithms", "must be an array of 1 to 4 algorithms");
    } else {
        size_t i;
        json_t *a;
        json_array_foreach(algs, i, a)
        {
            char p[64];
            snprintf(p, sizeof(p), "oauth.algorithms[%zu]", i);
            gw_alg al = gw_alg_parse(json_string_value(a) ? json_string_value(a) : "");
            if (al == GW_ALG_INVALID)
                e(errs, c, p, "must be \"ES256\", \"RS256\", \"PS256\" or \"EdDSA\"");
            else
                o->algs[o->nalgs++] = al;
        }
    }
    json_t *sk = json_object_get(j, "signing_keys");
    if (sk == NULL)
        e(errs, c, "oauth.signing_keys", "required (at least one key)");
    else
        parse_signing_keys(errs, c, sk, o);
    json_t *ext = json_object_get(j, "external_issuers");
    if (ext != NULL)
        parse_external(errs, c, ext, o);
    if (errs->n + errs->dropped > before || o->issuer == NULL || o->active == NULL) {
        gw_oauth_free(o);
        return NULL;
    }
    if (o->audience == NULL || o->assertion_audience == NULL) {
        e(errs, c, "oauth", "out of memory");
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
                    char m[160];
                    snprintf(m, sizeof(m), "kid \"%s\" is used by two issuers",
                             o->sets[a]->keys[ka].kid);
                    e(errs, c, "oauth.external_issuers", m);
                }
    o->jwks_json = gw_jwks_export(&o->own);
    if (errs->n + errs->dropped > before || o->jwks_json == NULL) {
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
    free(o);
}
