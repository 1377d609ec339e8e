/*
 * The admissions this gateway instance made, per quota key, over the last
 * window: what it writes back to Redis when Redis returns, restarted empty
 * or lost its keys (gateway/quota/redis.c), and what the `local` fallback
 * counts (gateway/stages/quota.c). Shared by the instance's workers
 * (striped mutexes). Bounded: a key keeps at most <limit> entries (a ring
 * of its newest admissions), each the admission's time on this host's
 * monotonic clock (ms) and its member (the request id).
 */
#ifndef GW_OWNLOG_H
#define GW_OWNLOG_H

#include <stddef.h>
#include <stdint.h>

#include "quota/memlog.h"

#define GW_OWNLOG_MEMBER 40

typedef struct gw_ownlog gw_ownlog;

typedef struct gw_ownlog_entry {
    char member[GW_OWNLOG_MEMBER];
    uint64_t age_ms; /* now - admission time, < window */
} gw_ownlog_entry;

gw_ownlog *gw_ownlog_new(uint64_t window_ms);
void gw_ownlog_free(gw_ownlog *o);

/* Record an admission decided elsewhere (by Redis) at <now_ms>. A full ring
 * (a limit lowered by a reload) drops its oldest entry. */
void gw_ownlog_record(gw_ownlog *o, const char *key, unsigned limit, uint64_t now_ms,
                      const char *member);

/* Decide locally: admit (and record) when fewer than <share> of this
 * instance's admissions, through Redis or local, lie in the window. <limit>
 * sizes the ring (share <= limit). out->remaining and reset_ms as memlog,
 * relative to <share>. */
void gw_ownlog_admit(gw_ownlog *o, const char *key, unsigned limit, unsigned share, uint64_t now_ms,
                     const char *member, gw_memlog_result *out);

/* Admissions of <key> inside the window at <now_ms>. */
unsigned gw_ownlog_count(gw_ownlog *o, const char *key, uint64_t now_ms);

/* Keys with admissions in the window; fn gets each key's entries, oldest
 * first (called under the key's stripe lock: fn must not call back into the
 * ownlog). Returns the number of entries passed. */
typedef void (*gw_ownlog_fn)(void *arg, const char *key, const gw_ownlog_entry *e, size_t n);
size_t gw_ownlog_each(gw_ownlog *o, uint64_t now_ms, gw_ownlog_fn fn, void *arg);

/* As gw_ownlog_each, but only the entries decided locally (gw_ownlog_admit,
 * not gw_ownlog_record) at or after <since_ms>: what a Redis that kept its
 * data (its marker is there) may lack after timeouts. */
size_t gw_ownlog_each_local(gw_ownlog *o, uint64_t now_ms, uint64_t since_ms, gw_ownlog_fn fn,
                            void *arg);

/* Keys visited by gw_ownlog_each_local since <o> was made: those that had
 * local entries, not every key (for tests). */
uint64_t gw_ownlog_local_visits(gw_ownlog *o);

uint64_t gw_ownlog_window(const gw_ownlog *o);

#endif
