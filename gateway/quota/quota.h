/*
 * Quotas (CGU §9.2): an exact sliding window per habilitation, "never more
 * than N admissions in any rolling window", N = the policy's
 * quota.per_minute (50 sandbox / 500 production by default).
 *
 * Settings, the "quota" object of the gateway config:
 *   "quota": {"store": "memory" | "redis", "window_s": 60,
 *             "on_store_failure": "local" | "deny" | "allow", "instances": 1,
 *             "redis": {"nodes": ["127.0.0.1:6379"], "cluster": false,
 *                       "timeout_ms": 50, "connect_timeout_ms": 500,
 *                       "max_inflight": 1024, "probe_ms": 100}}
 * "memory" (the default) is the in-process log shared by the workers of one
 * instance (gateway/quota/memlog.c); "redis" shares the log between
 * instances (gateway/quota/redis.c). See docs/quotas.md.
 */
#ifndef GW_QUOTA_H
#define GW_QUOTA_H

#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "quota/memlog.h"
#include "quota/ownlog.h"
#include "quota/redis.h"

typedef enum { GW_QSTORE_MEMORY = 0, GW_QSTORE_REDIS = 1 } gw_qstore_kind;

typedef enum {
    GW_QFAIL_LOCAL = 0, /* fall back to the in-process log, limit ceil(N / instances) */
    GW_QFAIL_DENY = 1,  /* 503: no data without a quota decision */
    GW_QFAIL_ALLOW = 2  /* admit, marked degraded (unsafe) */
} gw_qfail;

typedef struct gw_quota {
    gw_qstore_kind kind;
    uint64_t window_ms;
    gw_memlog *mem; /* the in-process store */
    gw_ownlog *own; /* this instance's admissions with the Redis store: the "local"
                       fallback counts them, redis.c writes them back */
    gw_qfail on_failure;
    unsigned instances;  /* gateway instances sharing the Redis store */
    gw_redis_conf redis; /* with kind == GW_QSTORE_REDIS */
} gw_quota;

/* Parse <c->quota> (NULL: defaults); errors "FILE: quota.…: message". */
gw_quota *gw_quota_load(const gw_conf *c, gw_errlist *errs);
void gw_quota_free(gw_quota *q);

/* Per-worker cache of refusals: "refused until T" per key, exact because no
 * admission can leave the window before T. An entry remembers the limit it
 * was refused at and answers only a request whose limit is not higher: a
 * limit raised by a reload applies at the next request. */
typedef struct gw_deny_cache gw_deny_cache;
gw_deny_cache *gw_deny_cache_new(size_t cap);
void gw_deny_cache_free(gw_deny_cache *d);
/* 1 and <*until_ms> when <key> is refused until a later time than <now_ms>. */
int gw_deny_cache_get(gw_deny_cache *d, const char *key, unsigned limit, uint64_t now_ms,
                      uint64_t *until_ms);
void gw_deny_cache_put(gw_deny_cache *d, const char *key, unsigned limit, uint64_t until_ms);

#endif
