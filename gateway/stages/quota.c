/* quota: the exact sliding window of the habilitation (CGU §9.2), late in
 * the list so that only requests that would be served count. Every route
 * counts, public ones (etatSante) included, unless its config says
 * "quota": false (gw_route.no_quota). Adds RateLimit-Limit/-Remaining/-Reset
 * to the response; a refusal is 429 (900804) with Retry-After, exact to when
 * a slot frees. A refusal is remembered per worker until that time (deny
 * cache), so repeated refused calls do not touch the store.
 * Needs route (no_quota) and mtls (the habilitation's limit). Its result:
 * the figures of its decision and the store that made it. With the Redis
 * store it SUSPENDs until the store answers; its state slot holds the call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "quota/quota.h"
#include "stages/stages.h"

static const char *const needs[] = {"route", "mtls", NULL};

static unsigned secs_up(uint64_t ms)
{
    return (unsigned)((ms + 999) / 1000);
}

static void headers(gw_quota_out *o, gw_reply *r, unsigned limit, unsigned remaining,
                    uint64_t reset_ms)
{
    o->ran = 1;
    o->limit = limit;
    o->remaining = remaining;
    /* unsigned ints: at most 10 digits in these 16 bytes; no snprintf per request */
    gw_fmt_ull(o->rl_limit, limit);
    gw_fmt_ull(o->rl_remaining, remaining);
    gw_fmt_ull(o->rl_reset, secs_up(reset_ms));
    gw_reply_header(r, "RateLimit-Limit", o->rl_limit);
    gw_reply_header(r, "RateLimit-Remaining", o->rl_remaining);
    gw_reply_header(r, "RateLimit-Reset", o->rl_reset);
}

static gw_verdict refuse(gw_quota_out *o, gw_reply *r, unsigned limit, uint64_t wait_ms)
{
    headers(o, r, limit, 0, wait_ms);
    unsigned ra = secs_up(wait_ms);
    snprintf(o->retry_after, sizeof(o->retry_after), "%u", ra < 1 ? 1 : ra);
    gw_reply_header(r, "Retry-After", o->retry_after);
    return gw_reply_reject(r, GW_ERR_THROTTLED, NULL);
}

/* The store could not decide: on_store_failure says what happens. */
static gw_verdict store_failed(const gw_quota *q, gw_quota_out *o, gw_reply *r, const char *key,
                               unsigned limit, const char *member)
{
    o->store = "degraded";
    o->degraded = 1;
    if (q->on_failure == GW_QFAIL_DENY) {
        headers(o, r, limit, 0, 1000); /* no decision: nothing left, retry in 1 s */
        snprintf(o->retry_after, sizeof(o->retry_after), "1");
        gw_reply_header(r, "Retry-After", o->retry_after);
        return gw_reply_reject(r, GW_ERR_QUOTA_UNAVAILABLE, NULL);
    }
    if (q->on_failure == GW_QFAIL_ALLOW) {
        headers(o, r, limit, limit, 0);
        return GW_STAGE_NEXT;
    }
    /* local: this instance's share of the limit, counting every admission
     * it made in the window (through Redis too); recorded, and written back
     * to Redis when it answers again (quota/redis.c) */
    unsigned share = (limit + q->instances - 1) / q->instances;
    gw_memlog_result mr;
    gw_ownlog_admit(q->own, key, limit, share, gw_now_ms(), member, &mr);
    if (!mr.admitted)
        return refuse(o, r, share, mr.reset_ms);
    headers(o, r, share, mr.remaining, mr.reset_ms);
    return GW_STAGE_NEXT;
}

/* The state slot while the store has not answered. */
typedef struct qwait {
    gw_stage_call call; /* what run() was given: the request outlives the wait */
    const gw_qstore_ops *ops;
    gw_redis_call *pending;
    unsigned limit;
    char key[80];
} qwait;

static void store_answered(void *arg, const gw_redis_reply *rep)
{
    qwait *w = arg;
    const gw_stage_call *c = &w->call;
    gw_quota_out *o = c->out;
    w->pending = NULL;
    gw_verdict v;
    if (!rep->ok) {
        o->store_reason = rep->reason;
        v = store_failed(c->svc->quota, o, c->reply, w->key, w->limit, c->req->request_id);
    } else if (!rep->admitted) {
        o->store = "redis";
        if (c->svc->deny_cache != NULL)
            gw_deny_cache_put(c->svc->deny_cache, w->key, w->limit, gw_now_ms() + rep->reset_ms);
        v = refuse(o, c->reply, w->limit, rep->reset_ms);
    } else {
        o->store = "redis";
        headers(o, c->reply, w->limit, rep->remaining, rep->reset_ms);
        v = GW_STAGE_NEXT;
    }
    gw_pipeline_resume(c->run, v);
}

static void done(const gw_stage_call *c)
{
    qwait *w = *c->state;
    if (w == NULL)
        return;
    *c->state = NULL;
    if (w->pending != NULL)
        w->ops->cancel(w->pending); /* the request ends before the store answered */
    free(w);
}

static gw_redis_call *redis_call(void *ctx, const char *key, unsigned limit, uint64_t window_ms,
                                 const char *member, gw_redis_cb cb, void *arg)
{
    return gw_redis_quota(ctx, key, limit, window_ms, member, cb, arg);
}

static const gw_qstore_ops redis_ops = {redis_call, gw_redis_cancel};

/* "opale:q:{<habilitation>}" into <key>, cut at 79 bytes as snprintf
 * would (a policy id is far shorter), without snprintf per request. */
static void quota_key(char key[80], const char *id)
{
    static const char pre[] = "opale:q:{";
    size_t n = sizeof(pre) - 1, il = strnlen(id, 80);
    memcpy(key, pre, n);
    if (il > 80 - 1 - n)
        il = 80 - 1 - n;
    memcpy(key + n, id, il);
    n += il;
    if (n < 80 - 1)
        key[n++] = '}';
    key[n] = '\0';
}

static gw_verdict run(const gw_stage_call *c)
{
    gw_quota_out *o = c->out;
    const gw_policy *p = c->res->mtls.policy;
    if (c->res->route.route->no_quota)
        return GW_STAGE_NEXT;
    const gw_quota *q = c->svc->quota;
    if (q == NULL)
        return gw_reply_reject(c->reply, GW_ERR_INTERNAL, "quota.no_store");
    unsigned limit = p->quota_per_minute;
    char key[80];
    quota_key(key, p->id);
    uint64_t now = c->req->now_ms ? c->req->now_ms : gw_now_ms();
    o->store = q->kind == GW_QSTORE_REDIS ? "redis" : "memory";
    uint64_t until = 0;
    gw_deny_cache *deny = c->svc->deny_cache;
    if (deny != NULL && gw_deny_cache_get(deny, key, limit, now, &until)) {
        o->deny_cached = 1;
        return refuse(o, c->reply, limit, until - now);
    }
    if (q->kind == GW_QSTORE_REDIS) {
        const gw_qstore_ops *ops = c->svc->qstore != NULL ? c->svc->qstore : &redis_ops;
        void *ctx = c->svc->qstore != NULL ? c->svc->qstore_ctx : c->svc->redis;
        if (ctx == NULL)
            return store_failed(q, o, c->reply, key, limit, c->req->request_id);
        qwait *w = gw_zalloc(sizeof(*w));
        if (w == NULL)
            return gw_reply_reject(c->reply, GW_ERR_INTERNAL, "quota.oom");
        w->call = *c;
        w->ops = ops;
        w->limit = limit;
        memcpy(w->key, key, strlen(key) + 1);
        *c->state = w;
        w->pending =
            ops->call(ctx, key, limit, q->window_ms, c->req->request_id, store_answered, w);
        if (w->pending == NULL)
            return store_failed(q, o, c->reply, key, limit, c->req->request_id);
        return GW_STAGE_SUSPEND;
    }
    gw_memlog_result r;
    gw_memlog_admit(q->mem, key, limit, q->window_ms, now, &r);
    if (!r.admitted) {
        if (deny != NULL)
            gw_deny_cache_put(deny, key, limit, now + r.reset_ms);
        return refuse(o, c->reply, limit, r.reset_ms);
    }
    headers(o, c->reply, limit, r.remaining, r.reset_ms);
    return GW_STAGE_NEXT;
}

const gw_stage gw_stage_quota = {
    .name = "quota",
    .needs = needs,
    .out = offsetof(gw_results, quota),
    .run = run,
    .done = done,
};
