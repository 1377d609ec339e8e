#include "quota/quota.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static void e(gw_errlist *errs, const gw_conf *c, const char *path, const char *msg)
{
    gw_errlist_add(errs, "%s: %s: %s", c->path, path, msg);
}

gw_quota *gw_quota_load(const gw_conf *c, gw_errlist *errs)
{
    size_t before = errs->n + errs->dropped;
    gw_quota *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        e(errs, c, "quota", "out of memory");
        return NULL;
    }
    q->kind = GW_QSTORE_MEMORY;
    q->window_ms = 60000;
    json_t *j = c->quota;
    if (j != NULL) {
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
        {
            char p[96];
            snprintf(p, sizeof(p), "quota.%.64s", k);
            if (strcmp(k, "store") == 0) {
                if (!json_is_string(v) || strcmp(json_string_value(v), "memory") != 0)
                    e(errs, c, p,
                      "must be \"memory\" (the Redis store is not part of this version)");
            } else if (strcmp(k, "window_s") == 0) {
                if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                    json_integer_value(v) > 86400)
                    e(errs, c, p, "must be an integer between 1 and 86400");
                else
                    q->window_ms = (uint64_t)json_integer_value(v) * 1000u;
            } else {
                e(errs, c, p, "unknown key");
            }
        }
    }
    q->mem = gw_memlog_new();
    if (q->mem == NULL)
        e(errs, c, "quota", "out of memory");
    if (errs->n + errs->dropped > before) {
        gw_quota_free(q);
        return NULL;
    }
    return q;
}

void gw_quota_free(gw_quota *q)
{
    if (q == NULL)
        return;
    gw_memlog_free(q->mem);
    free(q);
}

/* ---- deny cache: open addressing, fixed size, per worker ---- */

#define DKEY 96

typedef struct dslot {
    char key[DKEY];
    uint64_t until_ms;
} dslot;

struct gw_deny_cache {
    dslot *slots;
    size_t cap; /* power of two */
};

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

gw_deny_cache *gw_deny_cache_new(size_t cap)
{
    gw_deny_cache *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    d->cap = 16;
    while (d->cap < cap)
        d->cap <<= 1;
    d->slots = calloc(d->cap, sizeof(dslot));
    if (d->slots == NULL) {
        free(d);
        return NULL;
    }
    return d;
}

void gw_deny_cache_free(gw_deny_cache *d)
{
    if (d == NULL)
        return;
    free(d->slots);
    free(d);
}

/* One slot per hash (a direct-mapped cache): a collision just forgets the
 * older refusal, which only costs a store round trip, never correctness. */
int gw_deny_cache_get(gw_deny_cache *d, const char *key, uint64_t now_ms, uint64_t *until_ms)
{
    dslot *s = &d->slots[fnv(key) & (d->cap - 1)];
    if (s->until_ms > now_ms && strcmp(s->key, key) == 0) {
        *until_ms = s->until_ms;
        return 1;
    }
    return 0;
}

void gw_deny_cache_put(gw_deny_cache *d, const char *key, uint64_t until_ms)
{
    if (strlen(key) >= DKEY)
        return;
    dslot *s = &d->slots[fnv(key) & (d->cap - 1)];
    strcpy(s->key, key);
    s->until_ms = until_ms;
}
