#include "quota/quota.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static void e(gw_errlist *errs, const gw_conf *c, const char *path, const char *msg)
{
    gw_errlist_add(errs, "%s: %s: %s", c->path, path, msg);
}

static void parse_redis(gw_errlist *errs, const gw_conf *c, json_t *r, gw_quota *q)
{
    gw_redis_conf *rc = &q->redis;
    if (!json_is_object(r)) {
        e(errs, c, "quota.redis", "must be an object");
        return;
    }
    const char *k;
    json_t *v;
    json_object_foreach(r, k, v)
    {
        char p[96];
        snprintf(p, sizeof(p), "quota.redis.%.64s", k);
        unsigned *dst = strcmp(k, "timeout_ms") == 0           ? &rc->timeout_ms
                        : strcmp(k, "connect_timeout_ms") == 0 ? &rc->connect_timeout_ms
                        : strcmp(k, "max_inflight") == 0       ? &rc->max_inflight
                        : strcmp(k, "backoff_min_ms") == 0     ? &rc->backoff_min_ms
                        : strcmp(k, "backoff_max_ms") == 0     ? &rc->backoff_max_ms
                        : strcmp(k, "probe_ms") == 0           ? &rc->probe_ms
                                                               : NULL;
        if (dst != NULL) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 600000)
                e(errs, c, p, "must be an integer between 1 and 600000");
            else
                *dst = (unsigned)json_integer_value(v);
        } else if (strcmp(k, "cluster") == 0) {
            if (!json_is_boolean(v))
                e(errs, c, p, "must be a boolean");
            else
                rc->cluster = json_is_true(v);
        } else if (strcmp(k, "nodes") == 0) {
            if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > 64) {
                e(errs, c, p, "must be an array of 1 to 64 \"host:port\" strings");
                continue;
            }
            rc->nodes = calloc(json_array_size(v), sizeof(char *));
            size_t i;
            json_t *n;
            json_array_foreach(v, i, n)
            {
                char pi[160];
                snprintf(pi, sizeof(pi), "%s[%zu]", p, i);
                const char *sv = json_string_value(n);
                char host[64];
                unsigned port = 0;
                if (sv == NULL || gw_redis_parse_addr(sv, host, sizeof(host), &port) < 0)
                    e(errs, c, pi, "must be \"host:port\" with a numeric address");
                else if (rc->nodes != NULL)
                    rc->nodes[rc->nnodes++] = strdup(sv);
            }
        } else {
            e(errs, c, p, "unknown key");
        }
    }
    if (rc->nnodes == 0 && json_object_get(r, "nodes") == NULL)
        e(errs, c, "quota.redis.nodes", "required");
    if (rc->nnodes > 1 && !rc->cluster)
        e(errs, c, "quota.redis.nodes", "one node unless \"cluster\" is true");
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
    q->on_failure = GW_QFAIL_LOCAL;
    q->instances = 1;
    q->redis.timeout_ms = 50;
    q->redis.connect_timeout_ms = 500;
    q->redis.max_inflight = 1024;
    q->redis.backoff_min_ms = 100;
    q->redis.backoff_max_ms = 5000;
    q->redis.probe_ms = 100;
    json_t *j = c->quota;
    json_t *redis = NULL;
    if (j != NULL) {
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
        {
            char p[96];
            snprintf(p, sizeof(p), "quota.%.64s", k);
            if (strcmp(k, "store") == 0) {
                const char *sv = json_string_value(v);
                if (sv != NULL && strcmp(sv, "memory") == 0)
                    q->kind = GW_QSTORE_MEMORY;
                else if (sv != NULL && strcmp(sv, "redis") == 0)
                    q->kind = GW_QSTORE_REDIS;
                else
                    e(errs, c, p, "must be \"memory\" or \"redis\"");
            } else if (strcmp(k, "window_s") == 0) {
                if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                    json_integer_value(v) > 86400)
                    e(errs, c, p, "must be an integer between 1 and 86400");
                else
                    q->window_ms = (uint64_t)json_integer_value(v) * 1000u;
            } else if (strcmp(k, "instances") == 0) {
                if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                    json_integer_value(v) > 1000)
                    e(errs, c, p, "must be an integer between 1 and 1000");
                else
                    q->instances = (unsigned)json_integer_value(v);
            } else if (strcmp(k, "on_store_failure") == 0) {
                const char *sv = json_string_value(v);
                if (sv != NULL && strcmp(sv, "local") == 0)
                    q->on_failure = GW_QFAIL_LOCAL;
                else if (sv != NULL && strcmp(sv, "deny") == 0)
                    q->on_failure = GW_QFAIL_DENY;
                else if (sv != NULL && strcmp(sv, "allow") == 0)
                    q->on_failure = GW_QFAIL_ALLOW;
                else
                    e(errs, c, p, "must be \"local\", \"deny\" or \"allow\"");
            } else if (strcmp(k, "redis") == 0) {
                redis = v;
            } else {
                e(errs, c, p, "unknown key");
            }
        }
    }
    if (redis != NULL)
        parse_redis(errs, c, redis, q);
    else if (q->kind == GW_QSTORE_REDIS)
        e(errs, c, "quota.redis", "required when quota.store is \"redis\"");
    q->mem = gw_memlog_new();
    q->own = gw_ownlog_new(q->window_ms);
    q->redis.own = q->own;
    q->redis.sync_after_timeouts = q->on_failure == GW_QFAIL_LOCAL;
    if (q->mem == NULL || q->own == NULL)
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
    gw_ownlog_free(q->own);
    for (size_t i = 0; i < q->redis.nnodes; i++)
        free(q->redis.nodes[i]);
    free(q->redis.nodes);
    free(q);
}

/* ---- deny cache: open addressing, fixed size, per worker ---- */

#define DKEY 96

typedef struct dslot {
    char key[DKEY];
    uint64_t until_ms;
    unsigned limit; /* the limit it was refused at */
} dslot;

struct gw_deny_cache {
    dslot *slots;
    size_t cap; /* power of two */
};

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
int gw_deny_cache_get(gw_deny_cache *d, const char *key, unsigned limit, uint64_t now_ms,
                      uint64_t *until_ms)
{
    dslot *s = &d->slots[gw_memlog_hash(key) & (d->cap - 1)];
    if (s->until_ms > now_ms && limit <= s->limit && strcmp(s->key, key) == 0) {
        *until_ms = s->until_ms;
        return 1;
    }
    return 0;
}

void gw_deny_cache_put(gw_deny_cache *d, const char *key, unsigned limit, uint64_t until_ms)
{
    if (strlen(key) >= DKEY)
        return;
    dslot *s = &d->slots[gw_memlog_hash(key) & (d->cap - 1)];
    strcpy(s->key, key);
    s->until_ms = until_ms;
    s->limit = limit;
}
