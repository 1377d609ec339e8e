/* Internal to core/: the worker and server structures shared by server.c
 * (threads, listeners, drain) and conn.c (connections, requests). */
#ifndef GW_WORKER_H
#define GW_WORKER_H

#include <pthread.h>
#include <sys/queue.h>

#include <event2/listener.h>

#include "core/sdnotify.h"
#include "core/server.h"
#include "quota/memlog.h"

struct gw_conn;
TAILQ_HEAD(gw_conn_list, gw_conn);

typedef struct gw_worker {
    gw_server *srv;
    unsigned id;
    pthread_t thread;
    int started;
    struct event_base *base;
    struct evconnlistener **lis; /* one per listener */
    /* The other threads' requests to this worker (drain, new policies,
     * heartbeat): bits set in <wake_bits>, then one 8-byte write to the
     * eventfd <wake_fd>, which <wake_ev> reads on this worker's loop. The
     * base has no lock (EVENT_BASE_FLAG_NOLOCK): no other thread may touch
     * it (server.c, "A base without a lock"). */
    int wake_fd;
    struct event *wake_ev;
    atomic_uint wake_bits;
    struct event *drain_deadline;
    struct gw_conn_list conns;
    size_t nconns;
    int accept_paused; /* max_connections reached */
    int fd_paused;     /* accept() ran out of descriptors: back-off running */
    unsigned fd_backoff_ms;
    struct event *fd_timer; /* ends the back-off */
    struct event *trim_ev;  /* malloc_trim() once accepts go quiet (server.c) */
    unsigned accepts_since_trim;
    struct gw_hs_table *hs; /* handshakes in progress by source address */
    int draining;
    gw_pool **pools;                    /* one per upstream */
    gw_policy_set *policies;            /* this worker's reference to the current set */
    struct gw_token_cache *token_cache; /* verified tokens of this worker */
    struct gw_deny_cache *deny_cache;   /* quota refusals known to this worker */
    struct gw_redis *redis;             /* this worker's Redis client (redis store) */
    atomic_ulong heartbeat;             /* the last ask answered (heartbeat_gen), on this loop */
    /* upstream bodies being received, all pools (limits.max_buffered_response_bytes) */
    gw_resp_budget resp_budget;
    gw_stats *stats;           /* this worker's counters, written by it alone */
    gw_consumer_stats *cstats; /* its per-consumer counters, written by it alone */
    struct gw_jbatch *jbatch;  /* its journal records waiting for the end of the pass */
} gw_worker;

struct gw_server {
    const gw_conf *conf;
    gw_journal *journal;
    gw_events *events; /* security events, NULL: none (not owned) */
    gw_listener_rt *listeners;
    size_t nlisteners;
    gw_upstream *upstreams;
    size_t nupstreams;
    gw_worker *workers;
    unsigned nworkers;
    gw_stats stats;  /* main thread's counters (reloads), quota_store_degraded */
    gw_stats scrape; /* gw_server_stats(): the sum at the last scrape */
    atomic_int running;
    struct gw_stage_lists *stages; /* the lists of stages and their settings */
    gw_suspensions *susp;
    pthread_mutex_t policies_lock;
    gw_policy_set *policies; /* current set, under policies_lock */
    gw_oauth *oauth;
    gw_quota *quota;
    gw_memlog *token_rate;          /* token requests per client, all workers */
    char journal_dir[4096];         /* directory of the journal file, for statvfs */
    atomic_ullong fd_log_ms;        /* last "out of descriptors" message (ms) */
    atomic_ulong fd_log_suppressed; /* failures since that message */
    const gw_sdnotify *notify;      /* systemd notifications, NULL: none (not owned) */
    atomic_ulong heartbeat_gen;     /* main thread: the current ask, 0 before the first */
    struct gw_revoc *revoc;         /* CRL refresh, OCSP, stapling (revoc/revoc.h) */
};

/* conn.c */
void gw_conn_accept(gw_worker *w, const gw_listener_rt *l, evutil_socket_t fd, struct sockaddr *sa,
                    int salen);
/* Drain: close idle connections now; the others close after their response. */
void gw_conn_drain_all(gw_worker *w);
/* Deadline passed: close everything. */
void gw_conn_close_all(gw_worker *w);
/* called by conn.c when a connection is gone */
void gw_worker_conn_closed(gw_worker *w);
/* Handshake slots by source address (server.c). enter: 1 when the address
 * holds fewer than <limit> handshakes on this worker (0: no limit), and the
 * slot is taken; 0 when refused. leave: give the slot back. */
int gw_worker_hs_enter(gw_worker *w, int family, const unsigned char *addr, unsigned limit);
void gw_worker_hs_leave(gw_worker *w, int family, const unsigned char *addr);

#endif
