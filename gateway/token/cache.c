#include "token/cache.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "lib/util.h"

typedef struct tc_entry {
    unsigned char key[32];
    gw_claims claims;
    int own;
    time_t expires;
    struct tc_entry *hnext; /* bucket chain */
    struct tc_entry *prev;  /* LRU list, most recent at head */
    struct tc_entry *next;
} tc_entry;

/* The key of a recently seen token (gw_token_cache_key): its bytes, so that
 * only the very same token gets the key again. */
typedef struct tc_memo {
    uint64_t h; /* memo_hash of the token */
    size_t len; /* 0: empty */
    size_t cap;
    char *tok; /* owned copy, <cap> bytes */
    unsigned char key[32];
} tc_memo;

#define MEMO_SLOTS 256      /* direct-mapped, per worker */
#define MEMO_MAX_TOKEN 4096 /* longer tokens are hashed every time */

struct gw_token_cache {
    tc_memo memo[MEMO_SLOTS];
    uint64_t seed;
    tc_entry **buckets;
    size_t nbuckets;
    size_t cap;
    size_t n;
    tc_entry *head;
    tc_entry *tail;
};

void gw_claims_copy(gw_claims *dst, const gw_claims *src)
{
    memcpy(dst, src, sizeof(*dst));
    for (size_t i = 0; i < src->nscopes; i++)
        dst->scopes[i] = dst->scope_buf + (src->scopes[i] - src->scope_buf);
}

gw_token_cache *gw_token_cache_new(size_t cap)
{
    gw_token_cache *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->cap = cap < 1 ? 1 : cap;
    c->nbuckets = 1;
    while (c->nbuckets < c->cap * 2)
        c->nbuckets <<= 1;
    c->buckets = calloc(c->nbuckets, sizeof(tc_entry *));
    if (c->buckets == NULL) {
        free(c);
        return NULL;
    }
    /* the seed only spreads tokens over the memo's slots: a collision (or
     * no seed) costs a SHA-256, never a wrong key */
    if (RAND_bytes((unsigned char *)&c->seed, sizeof(c->seed)) != 1)
        c->seed = (uint64_t)(uintptr_t)c;
    return c;
}

void gw_token_cache_free(gw_token_cache *c)
{
    if (c == NULL)
        return;
    tc_entry *e = c->head;
    while (e != NULL) {
        tc_entry *n = e->next;
        free(e);
        e = n;
    }
    /* the memo holds bearer tokens: wiped, not just freed */
    for (size_t i = 0; i < MEMO_SLOTS; i++)
        if (c->memo[i].tok != NULL)
            OPENSSL_clear_free(c->memo[i].tok, c->memo[i].cap);
    free(c->buckets);
    free(c);
}

/* A seeded 64-bit hash of <s>/<n>, 8 bytes per step: it only picks a memo
 * slot and skips most memcmp()s of a slot that holds another token. */
static uint64_t memo_hash(uint64_t seed, const char *s, size_t n)
{
    const uint64_t m = 0x9e3779b97f4a7c15ull;
    uint64_t h = seed ^ (n * m);
    size_t k = 0;
    for (; k + 8 <= n; k += 8) {
        uint64_t w;
        memcpy(&w, s + k, 8);
        h = (h ^ w) * m;
        h ^= h >> 32;
    }
    uint64_t w = 0;
    memcpy(&w, s + k, n - k);
    h = (h ^ w) * m;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}

int gw_token_cache_key(gw_token_cache *c, const char *tok, size_t n, unsigned char key[32])
{
    if (c == NULL || n == 0 || n > MEMO_MAX_TOKEN)
        return gw_sha256(tok, n, key);
    uint64_t h = memo_hash(c->seed, tok, n);
    tc_memo *m = &c->memo[h % MEMO_SLOTS];
    if (m->len == n && m->h == h && memcmp(m->tok, tok, n) == 0) {
        memcpy(key, m->key, 32);
        return 0;
    }
    if (gw_sha256(tok, n, key) != 0)
        return -1;
    if (m->cap < n) {
        size_t cap = n < 1024 ? 1024 : n;
        char *t = malloc(cap); /* not realloc: the old copy is wiped */
        if (m->tok != NULL)
            OPENSSL_clear_free(m->tok, m->cap);
        m->tok = t;
        m->cap = 0;
        m->len = 0;
        if (t == NULL)
            return 0; /* the slot stays empty: nothing stale */
        m->cap = cap;
    }
    memcpy(m->tok, tok, n);
    memcpy(m->key, key, 32);
    m->len = n;
    m->h = h;
    return 0;
}

static size_t slot(const gw_token_cache *c, const unsigned char key[32])
{
    uint64_t h;
    memcpy(&h, key, sizeof(h)); /* the key is a SHA-256: already uniform */
    return (size_t)(h & (c->nbuckets - 1));
}

static void lru_unlink(gw_token_cache *c, tc_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push(gw_token_cache *c, tc_entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (c->tail == NULL)
        c->tail = e;
}

static void remove_entry(gw_token_cache *c, tc_entry *e)
{
    tc_entry **pp = &c->buckets[slot(c, e->key)];
    while (*pp != NULL && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp == e)
        *pp = e->hnext;
    lru_unlink(c, e);
    c->n--;
}

static tc_entry *find(gw_token_cache *c, const unsigned char key[32])
{
    for (tc_entry *e = c->buckets[slot(c, key)]; e != NULL; e = e->hnext)
        if (memcmp(e->key, key, 32) == 0)
            return e;
    return NULL;
}

int gw_token_cache_get(gw_token_cache *c, const unsigned char key[32], time_t now, gw_claims *out,
                       int *own)
{
    tc_entry *e = find(c, key);
    if (e == NULL)
        return 0;
    if (now > e->expires) {
        remove_entry(c, e);
        free(e);
        return 0;
    }
    lru_unlink(c, e);
    lru_push(c, e);
    gw_claims_copy(out, &e->claims);
    *own = e->own;
    return 1;
}

void gw_token_cache_put(gw_token_cache *c, const unsigned char key[32], const gw_claims *cl,
                        int own, time_t expires)
{
    tc_entry *e = find(c, key);
    if (e != NULL) {
        remove_entry(c, e);
    } else if (c->n >= c->cap) {
        e = c->tail;
        remove_entry(c, e);
    } else {
        e = malloc(sizeof(*e));
        if (e == NULL)
            return; /* not cached: verified again next time */
    }
    memcpy(e->key, key, 32);
    gw_claims_copy(&e->claims, cl);
    e->own = own;
    e->expires = expires;
    size_t s = slot(c, key);
    e->hnext = c->buckets[s];
    c->buckets[s] = e;
    lru_push(c, e);
    c->n++;
}

size_t gw_token_cache_size(const gw_token_cache *c)
{
    return c->n;
}
