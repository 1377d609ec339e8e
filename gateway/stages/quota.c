/* quota: the exact sliding window of the habilitation (CGU §9.2), last of
 * the stages so that only requests that would be served count. Guarded
 * routes only. Adds RateLimit-Limit/-Remaining/-Reset to the response; a
 * refusal is 429 (900804) with Retry-After, exact to when a slot frees.
 * A refusal is remembered per worker until that time (deny cache), so
 * repeated refused calls do not touch the store. */
#include <stdio.h>
#include <string.h>

#include "core/util.h"
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

static gw_verdict run(gw_access *a)
{
    if (a->route->scope == NULL)
        return GW_STAGE_NEXT;
    const gw_quota *q = a->quota;
    if (q == NULL)
        return gw_access_reject(a, GW_ERR_INTERNAL, "quota.no_store");
    unsigned limit = a->policy->quota_per_minute;
    char key[80];
    snprintf(key, sizeof(key), "opale:q:{%s}", a->policy->id);
    uint64_t now = a->now_ms ? a->now_ms : gw_now_ms();
    a->quota_store = "memory";
    uint64_t until = 0;
    if (a->deny_cache != NULL && gw_deny_cache_get(a->deny_cache, key, now, &until)) {
        a->quota_deny_cached = 1;
        return refuse(a, limit, until - now);
    }
    gw_memlog_result r;
    gw_memlog_admit(q->mem, key, limit, q->window_ms, now, &r);
    if (!r.admitted) {
        if (a->deny_cache != NULL)
            gw_deny_cache_put(a->deny_cache, key, now + r.reset_ms);
        return refuse(a, limit, r.reset_ms);
    }
    headers(a, limit, r.remaining, r.reset_ms);
    return GW_STAGE_NEXT;
}

const gw_stage gw_stage_quota = {"quota", run, NULL};
