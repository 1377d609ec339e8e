#include "quota/quota.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lib/jsonv.h"

/* "<parent>.<key>: unknown key", the key cleaned for the message. */
static void unknown_key(gw_jsonv *v, const char *parent, const char *key)
{
    char kb[80], p[GW_JSONV_PATH];
    gw_jsonv_path_key(p, parent, gw_jsonv_clean(kb, sizeof(kb), key, 64));
    gw_jsonv_err(v, p, "unknown key");
}

/* The members are read in the object's order, so that the messages come in
 * the order of the file. */
static void parse_redis(gw_jsonv *v, json_t *r, gw_quota *q)
{
    static const char *const P = "quota.redis";
    gw_redis_conf *rc = &q->redis;
    if (!json_is_object(r)) {
        gw_jsonv_err(v, P, "must be an object");
        return;
    }
    const char *k;
    json_t *m;
    json_object_foreach(r, k, m)
    {
        char p[GW_JSONV_PATH];
        long long n;
        int b;
        unsigned *dst = strcmp(k, "timeout_ms") == 0           ? &rc->timeout_ms
                        : strcmp(k, "connect_timeout_ms") == 0 ? &rc->connect_timeout_ms
                        : strcmp(k, "max_inflight") == 0       ? &rc->max_inflight
                        : strcmp(k, "backoff_min_ms") == 0     ? &rc->backoff_min_ms
                        : strcmp(k, "backoff_max_ms") == 0     ? &rc->backoff_max_ms
                        : strcmp(k, "probe_ms") == 0           ? &rc->probe_ms
                                                               : NULL;
        if (dst != NULL) {
            if (gw_jsonv_int_in(v, r, P, k, GW_JSONV_OPTIONAL, 1, 600000, &n) == GW_JSONV_SET)
                *dst = (unsigned)n;
        } else if (strcmp(k, "cluster") == 0) {
            if (gw_jsonv_bool(v, r, P, k, GW_JSONV_OPTIONAL, &b) == GW_JSONV_SET)
                rc->cluster = b;
        } else if (strcmp(k, "nodes") == 0) {
            gw_jsonv_path_key(p, P, k);
            if (!json_is_array(m) || json_array_size(m) == 0 || json_array_size(m) > 64) {
                gw_jsonv_err(v, p, "must be an array of 1 to 64 \"host:port\" strings");
                continue;
            }
            rc->nodes = calloc(json_array_size(m), sizeof(char *));
            size_t i;
            json_t *node;
            json_array_foreach(m, i, node)
            {
                char pi[GW_JSONV_PATH];
                gw_jsonv_path_idx(pi, p, i);
                const char *sv = json_string_value(node);
                char host[64];
                unsigned port = 0;
                if (sv == NULL || gw_redis_parse_addr(sv, host, sizeof(host), &port) < 0)
                    gw_jsonv_err(v, pi, "must be \"host:port\" with a numeric address");
                else if (rc->nodes != NULL)
                    rc->nodes[rc->nnodes++] = strdup(sv);
            }
        } else {
            unknown_key(v, P, k);
        }
    }
    if (rc->nnodes == 0 && json_object_get(r, "nodes") == NULL)
        gw_jsonv_err(v, "quota.redis.nodes", "required");
    if (rc->nnodes > 1 && !rc->cluster)
        gw_jsonv_err(v, "quota.redis.nodes", "one node unless \"cluster\" is true");
}

gw_quota *gw_quota_load(const gw_conf *c, gw_errlist *errs)
{
    static const char *const P = "quota";
    gw_jsonv v = gw_jsonv_init(c->path, errs);
    gw_quota *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        gw_jsonv_err(&v, P, "out of memory");
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
        json_t *m;
        json_object_foreach(j, k, m)
        {
            char p[GW_JSONV_PATH];
            long long n;
            gw_jsonv_path_key(p, P, k);
            if (strcmp(k, "store") == 0) {
                const char *sv = json_string_value(m);
                if (sv != NULL && strcmp(sv, "memory") == 0)
                    q->kind = GW_QSTORE_MEMORY;
                else if (sv != NULL && strcmp(sv, "redis") == 0)
                    q->kind = GW_QSTORE_REDIS;
                else
                    gw_jsonv_err(&v, p, "must be \"memory\" or \"redis\"");
            } else if (strcmp(k, "window_s") == 0) {
                if (gw_jsonv_int_in(&v, j, P, k, GW_JSONV_OPTIONAL, 1, 86400, &n) == GW_JSONV_SET)
                    q->window_ms = (uint64_t)n * 1000u;
            } else if (strcmp(k, "instances") == 0) {
                if (gw_jsonv_int_in(&v, j, P, k, GW_JSONV_OPTIONAL, 1, 1000, &n) == GW_JSONV_SET)
                    q->instances = (unsigned)n;
            } else if (strcmp(k, "on_store_failure") == 0) {
                const char *sv = json_string_value(m);
                if (sv != NULL && strcmp(sv, "local") == 0)
                    q->on_failure = GW_QFAIL_LOCAL;
                else if (sv != NULL && strcmp(sv, "deny") == 0)
                    q->on_failure = GW_QFAIL_DENY;
                else if (sv != NULL && strcmp(sv, "allow") == 0)
                    q->on_failure = GW_QFAIL_ALLOW;
                else
                    gw_jsonv_err(&v, p, "must be \"local\", \"deny\" or \"allow\"");
            } else if (strcmp(k, "redis") == 0) {
                redis = m;
            } else {
                unknown_key(&v, P, k);
            }
        }
    }
    if (redis != NULL)
        parse_redis(&v, redis, q);
    else if (q->kind == GW_QSTORE_REDIS)
        gw_jsonv_err(&v, "quota.redis", "required when quota.store is \"redis\"");
    q->mem = gw_memlog_new();
    q->own = gw_ownlog_new(q->window_ms);
    q->redis.own = q->own;
    q->redis.sync_after_timeouts = q->on_failure == GW_QFAIL_LOCAL;
    if (q->mem == NULL || q->own == NULL)
        gw_jsonv_err(&v, P, "out of memory");
    if (v.nerrs > 0) {
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
