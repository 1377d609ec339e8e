#include "token/cache.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct tc_entry {
    unsigned char key[32];
    gw_claims claims;
    int own;
    time_t expires;
    struct tc_entry *hnext; /* bucket chain */
    struct tc_entry *prev;  /* LRU list, most recent at head */
    struct tc_entry *next;
} tc_entry;

struct gw_token_cache {
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
    free(c->buckets);
    free(c);
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
