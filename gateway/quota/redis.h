/*
 * The Redis quota store: an exact sliding-window log kept in Redis by one
 * Redis 7 Function (library "opale2", function "opale2_quota"), so that several
 * gateway instances share every habilitation's window exactly. One client per
 * worker, on the worker's event_base (hiredis async + libevent adapter).
 *
 * The function (loaded with FUNCTION LOAD REPLACE at every (re)connect, on
 * every master in cluster mode) takes KEYS[1] = the quota key (hash-tagged,
 * "opale:q:{H456}") and ARGV = limit, window_ms, member (unique: the request
 * id); it reads the server's TIME, removes entries older than the window,
 * admits only if fewer than limit remain, records only admitted requests
 * (ZADD key now member), sets PEXPIRE key window, and returns
 * {admitted (0/1), remaining, ms until the oldest entry leaves the window}.
 * An entry at time t leaves the window at t + window (same boundary as the
 * in-memory log, gateway/quota/memlog.c). The calls of one loop pass for one
 * key, limit and window go as one "FCALL opale2_quota_n" (the same decisions
 * as that many opale2_quota calls in one millisecond, in order; see
 * docs/quotas.md, "Coalescing"); with a standalone Redis the pass's
 * batches of different keys go together too, as one "FCALL opale2_quota_m"
 * of at most 64 calls ("Chains"); a call cancelled before its pass ends is
 * not sent.
 *
 * Write-back: every (re)connection, and every sign that Redis lost its data
 * (the marker key opale:q:live gone: a restart without persistence, FLUSHALL),
 * starts a sync: the instance's own admissions of the window (conf.own) are
 * written back with their ages (function "opale2_restore", idempotent by
 * member), the connection answers no FCALL for a grace of 3 x probe_ms (so
 * that every other gateway writes its own back too), then writes them back
 * again, sets the marker and is ready. A reply after timeouts writes them
 * back once more (a paused Redis), with a full sync when
 * conf.sync_after_timeouts. See docs/quotas.md.
 *
 * Contract: gw_redis_quota() never invokes its callback synchronously; the
 * callback runs exactly once unless the call was cancelled first
 * (gw_redis_cancel: the callback will never run, a late reply is ignored
 * safely). Failures (not connected, timeout, error reply, too many commands
 * in flight, connection lost) are reported with ok = 0 and a constant reason.
 */
#ifndef GW_REDIS_H
#define GW_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

struct gw_ownlog;

typedef struct gw_redis_conf {
    char **nodes;                /* "host:port" (numeric IPv4/IPv6, "[::1]:6379") */
    size_t nnodes;               /* standalone: 1; cluster: the seed nodes */
    int cluster;                 /* Redis Cluster routing (CLUSTER SLOTS, MOVED, ASK) */
    unsigned timeout_ms;         /* per command (hiredis 0.14 has none), default 50 */
    unsigned connect_timeout_ms; /* default 500 */
    unsigned max_inflight;       /* calls waiting for a reply per connection, default 1024 */
    unsigned backoff_min_ms;     /* reconnect backoff with jitter, default 100 */
    unsigned backoff_max_ms;     /* default 5000 */
    unsigned probe_ms;           /* connect attempts while down, audits while up, default 100;
                                    the sync grace after a (re)connection is 3 x probe_ms */
    struct gw_ownlog *own;       /* this instance's admissions (written back), NULL: none */
    int sync_after_timeouts;     /* the first reply after timeouts starts a full sync (the
                                    grace), not only a write-back: with the local fallback */
} gw_redis_conf;

typedef struct gw_redis gw_redis;

typedef struct gw_redis_reply {
    int ok;             /* 0: the store failed (see reason) */
    const char *reason; /* "redis.down", "redis.timeout", "redis.error", "redis.busy", ... */
    int admitted;
    unsigned remaining;
    uint64_t reset_ms; /* until the oldest entry leaves the window */
} gw_redis_reply;

typedef void (*gw_redis_cb)(void *arg, const gw_redis_reply *r);
typedef struct gw_redis_call gw_redis_call;

typedef struct gw_redis_stats {
    uint64_t commands, replies, timeouts, errors, reconnects, moved, ask;
    uint64_t latency_us_sum; /* of replied commands */
    uint64_t syncs;          /* write-back rounds started (reconnection, lost data) */
    uint64_t restored;       /* own admissions sent back to Redis */
    int up;                  /* 1 when every needed connection is ready */
    int persistence;         /* -1 unknown, 0 appendonly no, 1 appendonly yes (every node) */
} gw_redis_stats;

/* Create the client and start connecting (asynchronously). NULL on OOM or a
 * malformed node list. */
gw_redis *gw_redis_new(struct event_base *base, const gw_redis_conf *c);
/* Close everything. Pending calls must have been cancelled or completed. */
void gw_redis_free(gw_redis *r);

/* Ask the store; NULL only on OOM (then nothing will be called). */
gw_redis_call *gw_redis_quota(gw_redis *r, const char *key, unsigned limit, uint64_t window_ms,
                              const char *member, gw_redis_cb cb, void *arg);
void gw_redis_cancel(gw_redis_call *c);

void gw_redis_get_stats(const gw_redis *r, gw_redis_stats *st);

/* CRC16 (XMODEM, as Redis Cluster) of the key's hash tag -> slot 0..16383. */
unsigned gw_redis_slot(const char *key, size_t len);

/* Parse "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381": returns
 * 1 (MOVED) or 2 (ASK) and fills slot/host/port, or 0 when not a redirect. */
int gw_redis_parse_redirect(const char *err, unsigned *slot, char *host, size_t hostlen,
                            unsigned *port);

/* Parse a configured node "host:port" or "[v6]:port" (the rules
 * gw_redis_new applies): 0 and host/port filled, or -1 (empty host, port
 * missing or outside 1..65535, host longer than hostlen - 1). */
int gw_redis_parse_addr(const char *s, char *host, size_t hostlen, unsigned *port);

#endif
