/* quota: the exact sliding window of the habilitation (CGU §9.2), last of
 * the stages so that only requests that would be served count. Every route
 * counts, public ones (etatSante) included, unless its config says
 * "quota": false (gw_route.no_quota). Adds RateLimit-Limit/-Remaining/-Reset to the response; a
 * refusal is 429 (900804) with Retry-After, exact to when a slot frees.
 * A refusal is remembered per worker until that time (deny cache), so
 * repeated refused calls do not touch the store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "quota/quota.h"
#include "stages/stages.h"

static unsigned secs_up(uint64_t ms)
{
    return (unsigned)((ms + 999) / 1000);
}

static void headers(gw_access *a, unsigned limit, unsigned remaining, uint64_t reset_ms)
{
    a->quota_ran = 1;
    a->quota_limit = limit;
    a->quota_remaining = remaining;
    snprintf(a->rl_limit, sizeof(a->rl_limit), "%u", limit);
    snprintf(a->rl_remaining, sizeof(a->rl_remaining), "%u", remaining);
    snprintf(a->rl_reset, sizeof(a->rl_reset), "%u", secs_up(reset_ms));
    gw_access_resp_header(a, "RateLimit-Limit", a->rl_limit);
    gw_access_resp_header(a, "RateLimit-Remaining", a->rl_remaining);
    gw_access_resp_header(a, "RateLimit-Reset", a->rl_reset);
}

static gw_verdict refuse(gw_access *a, unsigned limit, uint64_t wait_ms)
{
    headers(a, limit, 0, wait_ms);
    unsigned ra = secs_up(wait_ms);
    snprintf(a->retry_after, sizeof(a->retry_after), "%u", ra < 1 ? 1 : ra);
    gw_access_resp_header(a, "Retry-After", a->retry_after);
    return gw_access_reject(a, GW_ERR_THROTTLED, NULL);
}

/* The store could not decide: on_store_failure says what happens. */
static gw_verdict store_failed(gw_access *a, const char *key, unsigned limit)
{
    const gw_quota *q = a->quota;
    a->quota_store = "degraded";
    a->quota_degraded = 1;
    if (q->on_failure == GW_QFAIL_DENY) {
        headers(a, limit, 0, 1000); /* no decision: nothing left, retry in 1 s */
        snprintf(a->retry_after, sizeof(a->retry_after), "1");
        gw_access_resp_header(a, "Retry-After", a->retry_after);
        return gw_access_reject(a, GW_ERR_QUOTA_UNAVAILABLE, NULL);
    }
    if (q->on_failure == GW_QFAIL_ALLOW) {
        headers(a, limit, limit, 0);
        return GW_STAGE_NEXT;
    }
    /* local: this instance's share of the limit, counting every admission
     * it made in the window (through Redis too); recorded, and written back
     * to Redis when it answers again (quota/redis.c) */
    unsigned share = (limit + q->instances - 1) / q->instances;
    gw_memlog_result r;
    gw_ownlog_admit(q->own, key, limit, share, gw_now_ms(), a->request_id, &r);
    if (!r.admitted)
        return refuse(a, share, r.reset_ms);
    headers(a, share, r.remaining, r.reset_ms);
    return GW_STAGE_NEXT;
}

typedef struct qwait {
    gw_access *a;
    gw_redis_call *call;
    unsigned limit;
    char key[80];
} qwait;

static size_t my_index(void)
{
    for (size_t i = 0; i < gw_pipeline_len; i++)
        if (gw_pipeline[i] == &gw_stage_quota)
            return i;
    return 0;
}

static void redis_done(void *arg, const gw_redis_reply *rep)
{
    qwait *w = arg;
    gw_access *a = w->a;
    w->call = NULL;
    gw_verdict v;
    if (!rep->ok) {
        a->quota_store_reason = rep->reason;
        v = store_failed(a, w->key, w->limit);
    } else if (!rep->admitted) {
        a->quota_store = "redis";
        uint64_t now = gw_now_ms();
        if (a->deny_cache != NULL)
            gw_deny_cache_put(a->deny_cache, w->key, w->limit, now + rep->reset_ms);
        v = refuse(a, w->limit, rep->reset_ms);
    } else {
        a->quota_store = "redis";
        headers(a, w->limit, rep->remaining, rep->reset_ms);
        v = GW_STAGE_NEXT;
    }
    gw_pipeline_resume(a, v);
}

static void done(gw_access *a)
{
    qwait *w = a->state[my_index()];
    if (w == NULL)
        return;
    a->state[my_index()] = NULL;
    if (w->call != NULL)
        gw_redis_cancel(w->call); /* the request ends before Redis answered */
    free(w);
}

static gw_verdict run(gw_access *a)
{
    if (a->route->no_quota)
        return GW_STAGE_NEXT;
    const gw_quota *q = a->quota;
    if (q == NULL)
        return gw_access_reject(a, GW_ERR_INTERNAL, "quota.no_store");
    unsigned limit = a->policy->quota_per_minute;
    char key[80];
    snprintf(key, sizeof(key), "opale:q:{%s}", a->policy->id);
    uint64_t now = a->now_ms ? a->now_ms : gw_now_ms();
    a->quota_store = q->kind == GW_QSTORE_REDIS ? "redis" : "memory";
    uint64_t until = 0;
    if (a->deny_cache != NULL && gw_deny_cache_get(a->deny_cache, key, limit, now, &until)) {
        a->quota_deny_cached = 1;
        return refuse(a, limit, until - now);
    }
    if (q->kind == GW_QSTORE_REDIS) {
        if (a->redis == NULL)
            return store_failed(a, key, limit);
        qwait *w = calloc(1, sizeof(*w));
        if (w == NULL)
            return gw_access_reject(a, GW_ERR_INTERNAL, "quota.oom");
        w->a = a;
        w->limit = limit;
        snprintf(w->key, sizeof(w->key), "%s", key);
        a->state[my_index()] = w;
        w->call = gw_redis_quota(a->redis, key, limit, q->window_ms, a->request_id, redis_done, w);
        if (w->call == NULL)
            return store_failed(a, key, limit);
        return GW_STAGE_SUSPEND;
    }
    gw_memlog_result r;
    gw_memlog_admit(q->mem, key, limit, q->window_ms, now, &r);
    if (!r.admitted) {
        if (a->deny_cache != NULL)
            gw_deny_cache_put(a->deny_cache, key, limit, now + r.reset_ms);
        return refuse(a, limit, r.reset_ms);
    }
    headers(a, limit, r.remaining, r.reset_ms);
    return GW_STAGE_NEXT;
}

const gw_stage gw_stage_quota = {"quota", run, done};
