/*
 * The backend assertion (contract: token/assertion.h; wire format and threat
 * model: docs/oauth2.md, "Backend assertion").
 *
 * Per request, grant_mac costs one HMAC-SHA256 over ~170 bytes (RFC 2104
 * over SHA-256, the key's inner and outer states computed once per worker:
 * a copy of each and the message's own compressions per request, no
 * EVP_MAC context reset and final, which duplicate provider contexts) and a
 * probe of one set of an 8-way set-associative table. The ES256 signature happens once per
 * grant, i.e. per consumer, habilitation, environment, scope set and minute.
 */
#include "token/assertion.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "lib/util.h"
#include "token/endpoint.h"

#define MAC_PREFIX "OPALE-GW-MAC-v1\n"
#define GRANT_MAC_CLAIM "v1"
#define GHASH_LEN 43 /* base64url of 32 bytes */

/* Slots per set of the grant table. Direct-mapped (one), two active keys
 * whose hashes met in a slot evicted each other at every request, each
 * request then signing: with 5,000 consumers on a worker's 16,384 slots (the
 * bench's S8, 10,000 partners over 2 workers) 74% of them, the raw FNV-1a's
 * low bits (the index) depending only on the low bits of the key's bytes
 * (grant_hash). Eight ways, the least recently used evicted, over a mixed
 * hash: a set overflows only when 9 of its keys are active (9 of S8's
 * 5,000 per worker sign at each request: 0.2%). */
#define GRANT_WAYS 8

typedef struct grant_slot {
    char *key; /* "client_id\nhabilitation\nENV\nscope", owned; NULL: empty */
    size_t keylen;
    uint64_t hash;      /* grant_hash of the key */
    unsigned long used; /* the cache's tick at its last use (LRU in its set) */
    long long minute;   /* now / 60 when signed */
    time_t exp;         /* the grant's exp */
    char *grant;        /* compact JWS, owned */
    char ghash[GHASH_LEN + 1];
} grant_slot;

/* HMAC-SHA256 (RFC 2104) of one key: SHA-256 after the key ^ ipad block and
 * after the key ^ opad block. SHA256_CTX is OpenSSL's low-level interface
 * (deprecated in 3.0, not removed): the same block function as EVP's
 * SHA-256, SHA-NI included, in a plain struct that a request copies. */
typedef struct mac_key {
    SHA256_CTX inner, outer;
} mac_key;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static void mac_key_set(mac_key *k, const unsigned char *key, size_t keylen)
{
    unsigned char kb[64], pad[64];
    memset(kb, 0, sizeof(kb));
    if (keylen > sizeof(kb))
        SHA256(key, keylen, kb); /* a longer key is its digest */
    else if (keylen > 0)
        memcpy(kb, key, keylen);
    for (size_t i = 0; i < 64; i++)
        pad[i] = kb[i] ^ 0x36;
    SHA256_Init(&k->inner);
    SHA256_Update(&k->inner, pad, sizeof(pad));
    for (size_t i = 0; i < 64; i++)
        pad[i] = kb[i] ^ 0x5c;
    SHA256_Init(&k->outer);
    SHA256_Update(&k->outer, pad, sizeof(pad));
    OPENSSL_cleanse(kb, sizeof(kb));
    OPENSSL_cleanse(pad, sizeof(pad));
}

typedef struct mac_run {
    SHA256_CTX c;
} mac_run;

static void mac_begin(mac_run *r, const mac_key *k)
{
    r->c = k->inner;
}

static void mac_add(mac_run *r, const void *p, size_t n)
{
    SHA256_Update(&r->c, p, n);
}

static void mac_end(mac_run *r, const mac_key *k, unsigned char md[32])
{
    unsigned char ih[32];
    SHA256_Final(ih, &r->c);
    r->c = k->outer;
    SHA256_Update(&r->c, ih, sizeof(ih));
    SHA256_Final(md, &r->c);
    OPENSSL_cleanse(r, sizeof(*r));
    OPENSSL_cleanse(ih, sizeof(ih));
}
#pragma GCC diagnostic pop

struct gw_assert_cache {
    unsigned long gen;
    mac_key *mac;      /* the HMAC key's states; NULL in per_request mode */
    grant_slot *slots; /* (mask + 1) sets of GRANT_WAYS slots */
    size_t mask;       /* nsets - 1 */
    unsigned long tick;
    unsigned long nsigned, nhits;
};

static const char b64u[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* base64url (no padding) of 32 bytes into 44 chars (43 + NUL). */
static void b64u32(const unsigned char in[32], char out[GHASH_LEN + 1])
{
    size_t o = 0, i = 0;
    for (; i + 3 <= 32; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64u[(v >> 18) & 63];
        out[o++] = b64u[(v >> 12) & 63];
        out[o++] = b64u[(v >> 6) & 63];
        out[o++] = b64u[v & 63];
    }
    uint32_t v = (uint32_t)in[30] << 16 | (uint32_t)in[31] << 8;
    out[o++] = b64u[(v >> 18) & 63];
    out[o++] = b64u[(v >> 12) & 63];
    out[o++] = b64u[(v >> 6) & 63];
    out[o] = '\0';
}

/* The MAC input (docs/oauth2.md): each field on its own line, none of them
 * can hold a line feed (HTTP header values and request-targets cannot). */
static int mac_over(const mac_key *k, long long t, const char *request_id, const char *method,
                    const char *target, size_t target_len, const char *ghash,
                    char out[GW_MAC_VALUE_MAX])
{
    char ts[24];
    size_t tl = gw_fmt_ll(ts, t);
    unsigned char md[32];
    size_t rl = strlen(request_id), ml = strlen(method);
    if (memchr(request_id, '\n', rl) != NULL || memchr(target, '\n', target_len) != NULL ||
        memchr(method, '\n', ml) != NULL)
        return -1;
    /* the fields and their line feeds gathered when they fit (one update) */
    char line[512];
    size_t gl = strlen(ghash), o = 0;
    mac_run r;
    mac_begin(&r, k);
    if (sizeof(MAC_PREFIX) - 1 + tl + rl + ml + target_len + gl + 4 <= sizeof(line)) {
        memcpy(line, MAC_PREFIX, sizeof(MAC_PREFIX) - 1);
        o = sizeof(MAC_PREFIX) - 1;
        memcpy(line + o, ts, tl);
        o += tl;
        line[o++] = '\n';
        memcpy(line + o, request_id, rl);
        o += rl;
        line[o++] = '\n';
        memcpy(line + o, method, ml);
        o += ml;
        line[o++] = '\n';
        memcpy(line + o, target, target_len);
        o += target_len;
        line[o++] = '\n';
        memcpy(line + o, ghash, gl);
        o += gl;
        mac_add(&r, line, o);
    } else {
        mac_add(&r, MAC_PREFIX, sizeof(MAC_PREFIX) - 1);
        mac_add(&r, ts, tl);
        mac_add(&r, "\n", 1);
        mac_add(&r, request_id, rl);
        mac_add(&r, "\n", 1);
        mac_add(&r, method, ml);
        mac_add(&r, "\n", 1);
        mac_add(&r, target, target_len);
        mac_add(&r, "\n", 1);
        mac_add(&r, ghash, gl);
    }
    mac_end(&r, k, md);
    /* "v1;t=<ts>;mac=<43>": at most 5 + 20 + 5 + 43 + 1 bytes, within
     * GW_MAC_VALUE_MAX; no snprintf per request */
    o = 0;
    memcpy(out, "v1;t=", 5);
    o += 5;
    memcpy(out + o, ts, tl);
    o += tl;
    memcpy(out + o, ";mac=", 5);
    o += 5;
    b64u32(md, out + o);
    return 0;
}

int gw_assertion_mac(const unsigned char *key, size_t keylen, long long t, const char *request_id,
                     const char *method, const char *target, size_t target_len, const char *ghash,
                     char out[GW_MAC_VALUE_MAX])
{
    if (key == NULL || request_id == NULL || method == NULL || target == NULL || ghash == NULL)
        return -1;
    mac_key k;
    mac_key_set(&k, key, keylen);
    int rc = mac_over(&k, t, request_id, method, target, target_len, ghash, out);
    OPENSSL_cleanse(&k, sizeof(k));
    return rc;
}

/* ---------------------------------------------------------------- cache */

gw_assert_cache *gw_assert_cache_new(const gw_oauth *o)
{
    if (o == NULL)
        return NULL;
    gw_assert_cache *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->gen = o->gen;
    size_t n = 16;
    while (n < o->assertion_cache_entries && n < (1u << 20))
        n <<= 1;
    if (o->assertion_mode == GW_ASSERTION_GRANT_MAC) {
        c->slots = calloc(n, sizeof(*c->slots));
        c->mask = n / GRANT_WAYS - 1;
        c->mac = o->mac_key != NULL ? malloc(sizeof(*c->mac)) : NULL;
        if (c->mac != NULL)
            mac_key_set(c->mac, o->mac_key, o->mac_key_len);
        if (c->slots == NULL || c->mac == NULL) {
            gw_assert_cache_free(c);
            return NULL;
        }
    }
    return c;
}

void gw_assert_cache_free(gw_assert_cache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; c->slots != NULL && i < (c->mask + 1) * GRANT_WAYS; i++) {
        free(c->slots[i].key);
        free(c->slots[i].grant);
    }
    free(c->slots);
    if (c->mac != NULL)
        OPENSSL_clear_free(c->mac, sizeof(*c->mac));
    free(c);
}

void gw_assert_cache_stats(const gw_assert_cache *c, unsigned long *signed_, unsigned long *hits)
{
    *signed_ = c != NULL ? c->nsigned : 0;
    *hits = c != NULL ? c->nhits : 0;
}

static pthread_key_t thread_key;
static pthread_once_t thread_once = PTHREAD_ONCE_INIT;

static void thread_cache_free(void *p)
{
    gw_assert_cache_free(p);
}

static void thread_key_make(void)
{
    (void)pthread_key_create(&thread_key, thread_cache_free);
}

gw_assert_cache *gw_assert_cache_thread(const gw_oauth *o)
{
    pthread_once(&thread_once, thread_key_make);
    gw_assert_cache *c = pthread_getspecific(thread_key);
    if (c != NULL && c->gen == o->gen)
        return c;
    gw_assert_cache_free(c);
    c = gw_assert_cache_new(o);
    (void)pthread_setspecific(thread_key, c);
    return c;
}

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* The index of a key: FNV-1a, whose low bits (those a mask keeps) depend
 * only on the low bits of each byte, so that keys differing in a few digits
 * met in few slots (5,000 S8 partners in 2,668 of 16,384), then MurmurHash3's
 * 64-bit finaliser to spread every bit of it over the low ones. */
static uint64_t grant_hash(const char *s, size_t n)
{
    uint64_t h = fnv1a(s, n);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/* The 60-second window a grant of key hash <h> is reused in: the minute,
 * shifted by 0..59 s per key (the hash's high bits; its low bits pick the
 * set). Aligned on the UTC minute, every consumer's grant expired at once
 * and the first second of each minute signed one per consumer (10,000 at
 * S8's scale, a burst of signatures in the requests' latency); shifted,
 * renewals spread over the minute. Either way a grant is reused for at most
 * 60 s and signed at most once per window. */
static unsigned grant_shift(uint64_t h)
{
    return (unsigned)((h >> 32) % 60u);
}

static long long grant_window(time_t now, uint64_t h)
{
    return ((long long)now + grant_shift(h)) / 60;
}

/* Sign a fresh grant for <r> into <s> (whose key is set). 0 or -1. */
static int grant_sign(const gw_oauth *o, const gw_assertion_req *r, grant_slot *s, long long window)
{
    char jti[37];
    gw_uuid4(jti);
    json_t *claims =
        json_pack("{s:s,s:s,s:I,s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "iss", o->issuer, "aud",
                  o->assertion_audience, "iat", (json_int_t)r->now, "exp",
                  (json_int_t)(r->now + o->assertion_lifetime_s), "jti", jti, "sub", r->client_id,
                  "client_id", r->client_id, "habilitation", r->habilitation, "scope",
                  r->scope != NULL ? r->scope : "", "keytype",
                  r->env == GW_ENV_PRODUCTION ? "PRODUCTION" : "SANDBOX", "mac", GRANT_MAC_CLAIM);
    char *g = claims != NULL ? gw_jws_sign(o->active, "JWT", claims) : NULL;
    json_decref(claims);
    unsigned char md[32];
    if (g == NULL || gw_sha256(g, strlen(g), md) != 0) {
        free(g);
        return -1;
    }
    free(s->grant);
    s->grant = g;
    b64u32(md, s->ghash);
    s->minute = window;
    s->exp = r->now + (time_t)o->assertion_lifetime_s;
    return 0;
}

/* The grant's key "client_id\nhabilitation\nENV\nscope" of <r> in
 * <stackkey> (512 bytes) when it fits, else allocated; <*kl> its length.
 * NULL when out of memory. */
static char *grant_key(const gw_assertion_req *r, char *stackkey, size_t *kl_out)
{
    const char *scope = r->scope != NULL ? r->scope : "";
    const char *env = r->env == GW_ENV_PRODUCTION ? "P" : "S";
    size_t cl = strlen(r->client_id), hl = strlen(r->habilitation), sl = strlen(scope);
    size_t kl = cl + 1 + hl + 1 + 1 + 1 + sl;
    char *key = kl <= 512 ? stackkey : malloc(kl);
    if (key == NULL)
        return NULL;
    char *p = key;
    memcpy(p, r->client_id, cl);
    p += cl;
    *p++ = '\n';
    memcpy(p, r->habilitation, hl);
    p += hl;
    *p++ = '\n';
    *p++ = env[0];
    *p++ = '\n';
    memcpy(p, scope, sl);
    *kl_out = kl;
    return key;
}

unsigned gw_assertion_grant_shift(const gw_assertion_req *r)
{
    char stackkey[512];
    size_t kl = 0;
    char *key = r != NULL && r->client_id != NULL && r->habilitation != NULL
                    ? grant_key(r, stackkey, &kl)
                    : NULL;
    if (key == NULL)
        return 0;
    unsigned sh = grant_shift(grant_hash(key, kl));
    if (key != stackkey)
        free(key);
    return sh;
}

/* The grant of <r> in <c>: reused while in the same window (grant_window)
 * and before its exp, else signed again. NULL on failure. */
static grant_slot *grant_get(const gw_oauth *o, gw_assert_cache *c, const gw_assertion_req *r)
{
    char stackkey[512];
    size_t kl = 0;
    char *key = grant_key(r, stackkey, &kl);
    if (key == NULL)
        return NULL;
    uint64_t h = grant_hash(key, kl);
    grant_slot *set = &c->slots[(size_t)(h & c->mask) * GRANT_WAYS];
    grant_slot *s = NULL, *victim = NULL;
    for (size_t i = 0; i < GRANT_WAYS; i++) {
        grant_slot *x = &set[i];
        if (x->key != NULL && x->hash == h && x->keylen == kl && memcmp(x->key, key, kl) == 0) {
            s = x;
            break;
        }
        /* an empty slot first, else the least recently used */
        if (victim == NULL ||
            (x->key == NULL ? 0 : x->used) < (victim->key == NULL ? 0 : victim->used))
            victim = x;
    }
    long long minute = grant_window(r->now, h);
    if (s != NULL && s->grant != NULL && s->minute == minute && r->now < s->exp) {
        s->used = ++c->tick;
        c->nhits++;
        if (key != stackkey)
            free(key);
        return s;
    }
    if (s == NULL) {
        char *k = malloc(kl);
        if (k == NULL) {
            if (key != stackkey)
                free(key);
            return NULL;
        }
        memcpy(k, key, kl);
        s = victim;
        free(s->key);
        free(s->grant);
        s->grant = NULL;
        s->key = k;
        s->keylen = kl;
        s->hash = h;
    }
    s->used = ++c->tick;
    if (key != stackkey)
        free(key);
    if (grant_sign(o, r, s, minute) < 0)
        return NULL;
    c->nsigned++;
    return s;
}

int gw_assertion_build(const gw_oauth *o, gw_assert_cache *c, const gw_assertion_req *r,
                       gw_assertion_hdrs *out)
{
    memset(out, 0, sizeof(*out));
    if (o == NULL || r == NULL || r->client_id == NULL || r->habilitation == NULL ||
        r->request_id == NULL || r->method == NULL || r->target == NULL)
        return -1;
    if (o->assertion_mode == GW_ASSERTION_PER_REQUEST) {
        out->owned = gw_assertion_sign_ids(o, r->client_id, r->habilitation, r->env, r->scope,
                                           r->request_id, r->now);
        out->assertion = out->owned;
        return out->owned != NULL ? 0 : -1;
    }
    if (c == NULL || c->mac == NULL || c->gen != o->gen)
        return -1;
    grant_slot *s = grant_get(o, c, r);
    if (s == NULL || mac_over(c->mac, (long long)r->now, r->request_id, r->method, r->target,
                              r->target_len, s->ghash, out->mac) < 0)
        return -1;
    out->assertion = s->grant;
    return 0;
}

void gw_assertion_hdrs_clear(gw_assertion_hdrs *h)
{
    if (h == NULL)
        return;
    free(h->owned);
    memset(h, 0, sizeof(*h));
}

/* ---------------------------------------------------------- verification */

/* "v1;t=DIGITS;mac=B64URL43" -> t and the mac's 43 characters. */
static int mac_parse(const char *v, long long *t, const char **mac)
{
    if (v == NULL || strncmp(v, "v1;t=", 5) != 0)
        return -1;
    const char *p = v + 5;
    long long x = 0;
    size_t nd = 0;
    while (p[nd] >= '0' && p[nd] <= '9') {
        if (nd == 18)
            return -1;
        x = x * 10 + (p[nd] - '0');
        nd++;
    }
    if (nd == 0 || (nd > 1 && p[0] == '0'))
        return -1;
    p += nd;
    if (strncmp(p, ";mac=", 5) != 0 || strlen(p + 5) != GHASH_LEN)
        return -1;
    for (size_t i = 0; i < GHASH_LEN; i++)
        if (strchr(b64u, p[5 + i]) == NULL || p[5 + i] == '\0')
            return -1;
    *t = x;
    *mac = p + 5;
    return 0;
}

const char *gw_assertion_verify(const gw_assertion_rules *k, const gw_assertion_seen *s, time_t *t)
{
    static const gw_alg algs[] = {GW_ALG_ES256, GW_ALG_RS256, GW_ALG_PS256, GW_ALG_EDDSA};
    long long mt = 0;
    const char *mac = NULL;
    if (k == NULL || s == NULL || s->grant == NULL || s->request_id == NULL || s->method == NULL ||
        s->target == NULL || mac_parse(s->mac, &mt, &mac) < 0)
        return "mac.malformed";
    long long now = (long long)k->now;
    if (mt < now - k->skew_s || mt > now + k->skew_s)
        return "mac.stale";
    unsigned char md[32];
    char ghash[GHASH_LEN + 1], want[GW_MAC_VALUE_MAX];
    if (gw_sha256(s->grant, strlen(s->grant), md) != 0)
        return "mac.malformed";
    b64u32(md, ghash);
    if (gw_assertion_mac(k->mac_key, k->mac_key_len, mt, s->request_id, s->method, s->target,
                         s->target_len, ghash, want) < 0)
        return "mac.malformed";
    const char *wm = strstr(want, ";mac=") + 5;
    if (CRYPTO_memcmp(wm, mac, GHASH_LEN) != 0)
        return "mac.mismatch";

    const gw_keyset *sets[1] = {k->keys};
    gw_jws_rules jr = {.algs = algs, .nalgs = 4, .max_len = 8192};
    gw_jws jws;
    if (gw_jws_verify(s->grant, strlen(s->grant), sets, 1, &jr, &jws) != NULL)
        return "grant.signature";
    const char *why = NULL;
    const json_t *p = jws.payload;
    const json_t *exp = json_object_get(p, "exp"), *iat = json_object_get(p, "iat");
    const char *aud = json_string_value(json_object_get(p, "aud"));
    const char *iss = json_string_value(json_object_get(p, "iss"));
    const char *cid = json_string_value(json_object_get(p, "client_id"));
    const char *m = json_string_value(json_object_get(p, "mac"));
    if (!json_is_integer(exp) || !json_is_integer(iat) || aud == NULL || cid == NULL || m == NULL ||
        strcmp(m, GRANT_MAC_CLAIM) != 0 || (k->audience != NULL && strcmp(aud, k->audience) != 0) ||
        (k->issuer != NULL && (iss == NULL || strcmp(iss, k->issuer) != 0)) ||
        json_integer_value(iat) > now + k->leeway_s)
        why = "grant.claims";
    else if (now > json_integer_value(exp) + k->leeway_s)
        why = "grant.expired";
    else if (s->consumer_id == NULL || strcmp(s->consumer_id, cid) != 0)
        why = "grant.consumer";
    gw_jws_clear(&jws);
    if (why == NULL && t != NULL)
        *t = (time_t)mt;
    return why;
}
