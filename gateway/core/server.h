/*
 * Workers and connections. Each worker thread owns an event_base, one
 * SO_REUSEPORT listening socket per configured listener, its connections and
 * its upstream pools; nothing in a worker is touched by another thread except
 * through gw_server_drain() (an event activated across threads) and the
 * scrape of its counters (gw_stats, one per worker, summed by
 * gw_server_stats()).
 */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "conf/conf.h"
#include "core/consumers.h"
#include "lib/errors.h"
#include "core/proxy.h"
#include "journal/events.h"
#include "journal/journal.h"
#include "policy/policy.h"
#include "policy/suspend.h"
#include "quota/quota.h"
#include "token/oauth.h"

#define GW_ROUTE_MAX_ROUTES 256
#define GW_TLS_REASONS 16
#define GW_H2_ABUSE_KINDS 7 /* core/h2.h, gw_h2_abuse */
/* The refused-handshake reasons counted in gw_stats.handshake_reason. */
extern const char *const gw_tls_reason_names[GW_TLS_REASONS];
size_t gw_tls_reason_index(const char *reason);

/* Counters read by the admin listener. Each worker has its own gw_stats,
 * written by that worker alone with gw_stat_add() (a relaxed load and store:
 * no locked instruction, no cache line shared between workers); the server
 * has one more for what the main thread counts (reloads) and for the
 * quota_store_degraded gauge. gw_server_stats() sums them on scrape (relaxed
 * loads: a metric may be a request behind, never wrong in total). Every
 * field before quota_store_degraded is an atomic_ulong counter: the sum
 * walks them as an array. */
typedef struct gw_stats {
    atomic_ulong connections_accepted;
    atomic_ulong connections_open;
    atomic_ulong connections_refused; /* max_connections reached */
    atomic_ulong handshakes_failed;
    atomic_ulong tcp_probes; /* ended before their first TLS byte: no record */
    atomic_ulong requests;
    atomic_ulong responses_by_class[6]; /* index status/100 */
    atomic_ulong denials[GW_ERR__COUNT];
    atomic_ulong upstream_errors;
    atomic_ulong
        upstream_queue_timeouts; /* of upstream_errors: no connection in queue_timeout_ms */
    atomic_ulong journal_refused;
    /* latency histogram of whole requests, milliseconds upper bounds */
    atomic_ulong latency_bucket[12];
    atomic_ulong latency_sum_ms;
    atomic_ulong quota_admitted;
    atomic_ulong quota_refused;
    atomic_ulong quota_degraded; /* decisions taken without the shared store */
    atomic_ulong quota_deny_cache_hits;
    atomic_ulong tokens_issued;
    atomic_ulong token_cache_hits;
    atomic_ulong token_cache_misses;
    /* by route (index in the route table; then "token", "jwks", none) and
     * status class */
    atomic_ulong route_class[GW_ROUTE_MAX_ROUTES + 3][6];
    atomic_ulong handshake_reason[GW_TLS_REASONS];
    atomic_ulong upstream_latency_bucket[12];
    atomic_ulong upstream_latency_sum_ms;
    atomic_ulong reloads_ok;
    atomic_ulong reloads_failed;
    /* accept() failed for want of a descriptor (EMFILE, ENFILE, ENOBUFS,
     * ENOMEM): each failure paused the worker's listeners for a back-off */
    atomic_ulong accept_fd_exhausted;
    /* connections closed at once: their source address already held
     * listeners[].max_handshakes_per_source handshakes on the worker */
    atomic_ulong handshakes_refused_per_source;
    /* HTTP/2 (core/h2.c): connections that selected ALPN h2, streams
     * opened, connections ended for an abuse (gw_h2_abuse, by kind) */
    atomic_ulong h2_connections;
    atomic_ulong h2_streams;
    atomic_ulong h2_abuse[GW_H2_ABUSE_KINDS];
    /* last, not a counter: the last quota decision of any worker was
     * degraded (the server's gw_stats only, written when it changes) */
    atomic_int quota_store_degraded;
} gw_stats;

#define GW_STATS_COUNTERS (offsetof(gw_stats, quota_store_degraded) / sizeof(atomic_ulong))

/* Add <n> to a counter only the calling thread writes (a worker's own
 * gw_stats): a relaxed load and store, no read-modify-write. */
static inline void gw_stat_add(atomic_ulong *c, unsigned long n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

extern const unsigned gw_latency_bounds_ms[11];

typedef struct gw_listener_rt {
    const gw_conf_listener *conf;
    size_t idx;
    SSL_CTX *ctx;
} gw_listener_rt;

typedef struct gw_server gw_server;

/* Build TLS contexts and upstreams from <conf> (not started). Returns NULL
 * with a malloc'd <*err> naming the config location on failure. */
gw_server *gw_server_new(const gw_conf *conf, gw_journal *journal, char **err);

/* Bind every listener on every worker and start the worker threads. */
int gw_server_start(gw_server *s, char **err);

/* Ask every worker to stop accepting, finish in-flight requests and exit
 * (bounded by timeouts.drain_ms). Thread-safe; callable more than once. */
void gw_server_drain(gw_server *s);

/* Wait for every worker thread to exit. */
void gw_server_join(gw_server *s);

void gw_server_free(gw_server *s);

/* Load what the access stages need from <conf>: their settings, the policy
 * set (every file validated; a rejected file is left out and listed in the
 * set, gw_policy_set_build) and the kill-switch state. Every error goes to
 * <errs> as "file: json.path: message". Returns 0 or -1. Used by -t too,
 * also on a conf that holds errors (gw_conf_load_check), so that every
 * section is checked in one pass. */
struct gw_stage_lists;

typedef struct gw_access_state {
    struct gw_stage_lists *stages; /* the lists of stages and their settings */
    gw_policy_set *policies;
    gw_suspensions *susp;
    gw_oauth *oauth;
    gw_quota *quota;
} gw_access_state;

int gw_access_load(const gw_conf *conf, gw_access_state *st, gw_errlist *errs);
void gw_access_state_clear(gw_access_state *st);
/* Load only the policy set; <prev>: the set a reload replaces (a rejected
 * file keeps its version there), NULL at start. */
gw_policy_set *gw_policies_load(const gw_conf *conf, const gw_policy_set *prev, gw_errlist *errs);

/* Hand the access state to the server (before gw_server_start); it owns it. */
void gw_server_set_access(gw_server *s, gw_access_state *st);

/* Reload the policies: build a new set, file by file (a rejected file keeps
 * its version of the current set, if any; see gw_policy_set_build), then
 * swap it in; every worker picks it up at its next loop pass, requests in
 * flight finish on the set they started with. A "policy.rejected" security
 * event is raised per rejected file (<by>: "SIGHUP", "admin API"); the new
 * set lists them. -1 only when the directory cannot be read: the old set
 * stays. <errs> gets every error. Main thread only.
 * <flags>: GW_RELOAD_FORCE swaps in a set that empties the current one
 * (gw_policy_diff_empties); without it such a set is refused: -2, the old
 * set stays. <diff> (may be NULL) gets the comparison of the current set
 * with the new one, whatever the outcome (zeros on -1). */
#define GW_RELOAD_FORCE 1
int gw_server_reload_policies(gw_server *s, const char *by, int flags, gw_policy_diff *diff,
                              gw_errlist *errs);
/* One "policy.rejected" security event per file <p> rejected. */
void gw_server_report_rejected(gw_server *s, const gw_policy_set *p, const char *by);

/* A reference to the current set (caller unrefs) and the kill switch. */
gw_policy_set *gw_server_policies(gw_server *s);
gw_suspensions *gw_server_suspensions(gw_server *s);

/* Sum of the workers' Redis client figures (quota store); 0 when memory. */
int gw_server_redis_stats(gw_server *s, gw_redis_stats *out);
/* 1 when the quota mode counts on Redis keeping its data (redis store,
 * on_store_failure local or deny): /readyz warns if it has no AOF. */
int gw_server_quota_on_failure_relies(gw_server *s);

/* The counters of every worker and of the server, summed now into a
 * gw_stats the server keeps for the scrape, and that one. Main thread only
 * (the admin listener): the next call overwrites it. */
gw_stats *gw_server_stats(gw_server *s);
const gw_conf *gw_server_conf(const gw_server *s);
int gw_server_ready(const gw_server *s);
/* 1 when the journal can take records (or on_failure is "continue"). */
int gw_server_journal_ok(gw_server *s);
/* 1 while a slot of access.maintenance is active (the maintenance stage
 * answers 503 910220): the opale_maintenance metric. */
int gw_server_in_maintenance(const gw_server *s);
/* The maintenance calendar (stages/stages.h), NULL when none is configured
 * (the console's GET /admin/maintenance). */
/* The OAuth2 settings and keys (the console's recette verifies the
 * journal's checkpoints with oauth->own). */
const gw_oauth *gw_server_oauth(const gw_server *s);
struct gw_maint_conf;
const struct gw_maint_conf *gw_server_maintenance(const gw_server *s);

/* The security-events stream (journal/events.h), set before gw_server_start;
 * not owned (main closes it after the workers stopped). NULL: none. */
void gw_server_set_events(gw_server *s, gw_events *ev);
gw_events *gw_server_events(gw_server *s);

/* Revocation (revoc/revoc.h): the state, for metrics; and SIGHUP's re-read
 * of the CRL files and partner certificates (returns at once). */
struct gw_revoc *gw_server_revoc(gw_server *s);
void gw_server_reload_revocation(gw_server *s);

/* Descriptors the configuration needs (docs/configuration.md, "File
 * descriptors"): per worker, max_connections x GW_FDS_PER_CONNECTION (the
 * client socket and, while a request is in flight, its upstream socket), its
 * listening sockets, its idle upstream pools, its Redis connections and its
 * event loop; then the journal streams, the admin listener and a fixed
 * slack. <parts> (may be NULL) receives the terms. <max_connections>
 * overrides conf->limits.max_connections when not 0. */
#define GW_FDS_PER_CONNECTION 2
#define GW_FDS_REDIS_PER_WORKER 16 /* a Redis Cluster of up to 16 nodes */
#define GW_FDS_LOOP_PER_WORKER 4   /* epoll, wake-up eventfd, spare */
#define GW_FDS_JOURNAL 8           /* access and events files, their directories, rotation */
#define GW_FDS_ADMIN 64            /* admin listener and its connections */
#define GW_FDS_SLACK 64            /* stdio, main loop, signals, policy and CRL files, alerts */
typedef struct gw_fd_need {
    unsigned long connections, listeners, pools, redis, loops, fixed, total;
} gw_fd_need;
unsigned long gw_fd_need_of(const gw_conf *conf, size_t max_connections, gw_fd_need *parts);

/* systemd notifications (core/sdnotify.h), set before gw_server_start; not
 * owned. A policy reload then sends RELOADING=1 before and READY=1 with a
 * STATUS= line after, whoever asked for it (SIGHUP, admin API). */
struct gw_sdnotify;
void gw_server_set_notify(gw_server *s, const struct gw_sdnotify *n);

/* The STATUS= text of a systemd notification, into <buf> (<len> bytes):
 * open connections, policies loaded and rejected, the journal's state. */
void gw_server_status(gw_server *s, char *buf, size_t len);

/* Watchdog proof of life, main thread only, called at each watchdog tick:
 * returns 1 when every worker's loop has run the heartbeat event asked for
 * at the previous call (or at the first call), 0 when one has not (a loop
 * stuck in a callback), then asks every worker for a new one. */
int gw_server_heartbeat(gw_server *s);

/* Per-consumer counters (requests by status class, quota decisions), for
 * /metrics; at most GW_CONSUMER_STATS_MAX consumers, the rest counted under
 * "(other)". Each worker counts in its own table (no lock); gw_consumer_each
 * merges them. */
#define GW_CONSUMER_STATS_MAX 100000
/* Count on worker <worker>'s table: called by that worker's thread only. */
void gw_consumer_count(gw_server *s, unsigned worker, const char *client_id, int status,
                       int quota_outcome);
/* Call <cb> for each consumer seen by any worker, with the sum of its
 * workers' counts (consumers past the bound: "(other)"). Main thread only. */
void gw_consumer_each(gw_server *s,
                      void (*cb)(void *arg, const char *client_id, const gw_consumer_counts *c),
                      void *arg);

#endif
