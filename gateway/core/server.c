#include "core/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/thread.h>
#include <sys/eventfd.h>
#include <jansson.h>
#include <sys/resource.h>

#include "core/hstable.h"
#include "core/jbatch.h"
#include "core/tls.h"
#include "lib/evtimer.h"
#include "lib/hash.h"
#include "revoc/revoc.h"
#include "lib/util.h"
#include "core/worker.h"
#include "stages/stages.h"
#include "token/cache.h"

const unsigned gw_latency_bounds_ms[11] = {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000};

const char *const gw_tls_reason_names[GW_TLS_REASONS] = {"tls.no_cert",
                                                         "tls.cert_expired",
                                                         "tls.cert_not_yet_valid",
                                                         "tls.cert_unknown_ca",
                                                         "tls.cert_revoked",
                                                         "tls.crl",
                                                         "tls.cert_invalid",
                                                         "tls.protocol",
                                                         "tls.handshake",
                                                         "tls.ocsp_revoked",
                                                         "tls.ocsp_unknown",
                                                         "tls.ocsp_stale",
                                                         "tls.ocsp_unavailable",
                                                         "proxy.untrusted_peer",
                                                         "proxy.bad_header",
                                                         "other"};

size_t gw_tls_reason_index(const char *reason)
{
    for (size_t i = 0; reason != NULL && i < GW_TLS_REASONS - 1; i++)
        if (strcmp(reason, gw_tls_reason_names[i]) == 0)
            return i;
    return GW_TLS_REASONS - 1;
}

/* ---- per-consumer counters (core/consumers.c) ---- */

void gw_consumer_count(gw_server *s, unsigned worker, const char *client_id, int status,
                       int quota_outcome)
{
    if (worker < s->nworkers)
        gw_consumer_stats_count(s->workers[worker].cstats, client_id, status, quota_outcome);
}

void gw_consumer_each(gw_server *s,
                      void (*cb)(void *arg, const char *client_id, const gw_consumer_counts *c),
                      void *arg)
{
    /* one worker: its table as it is; more: a merged copy, made here */
    if (s->nworkers == 1) {
        gw_consumer_stats_each(s->workers[0].cstats, cb, arg);
        return;
    }
    gw_consumer_stats *all = gw_consumer_stats_new(GW_CONSUMER_STATS_MAX);
    if (all == NULL)
        return;
    for (unsigned i = 0; i < s->nworkers; i++)
        gw_consumer_stats_merge(all, s->workers[i].cstats);
    gw_consumer_stats_each(all, cb, arg);
    gw_consumer_stats_free(all);
}

/* A revocation alert (revoc/revoc.h) as a "tls.revocation" security event
 * and a line on stderr. */
static void revoc_alert(void *arg, const char *event, json_t *fields)
{
    gw_server *s = arg;
    char *txt = json_dumps(fields, JSON_COMPACT | JSON_SORT_KEYS);
    fprintf(stderr, "opale-gateway: %s %s\n", event, txt != NULL ? txt : "");
    free(txt);
    json_object_set_new(fields, "alert", json_string(event));
    gw_events_integrity(s->events, GW_EV_REVOCATION, fields);
}

static int revoc_init(gw_server *s, char **err)
{
    SSL_CTX **ctxs = calloc(s->nlisteners ? s->nlisteners : 1, sizeof(*ctxs));
    if (ctxs == NULL) {
        *err = strdup("out of memory");
        return -1;
    }
    for (size_t i = 0; i < s->nlisteners; i++)
        ctxs[i] = s->listeners[i].ctx;
    s->revoc = gw_revoc_new(s->conf, ctxs, err);
    free(ctxs);
    if (s->revoc == NULL)
        return -1;
    gw_revoc_set_alert(s->revoc, revoc_alert, s);
    return 0;
}

gw_revoc *gw_server_revoc(gw_server *s)
{
    return s->revoc;
}

void gw_server_reload_revocation(gw_server *s)
{
    gw_revoc_reload(s->revoc);
}

gw_server *gw_server_new(const gw_conf *conf, gw_journal *journal, char **err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, (void (*)(void))evthread_use_pthreads);
    gw_server *s = calloc(1, sizeof(*s));
    if (s == NULL)
        goto oom;
    s->conf = conf;
    s->journal = journal;
    pthread_mutex_init(&s->policies_lock, NULL);
    snprintf(s->journal_dir, sizeof(s->journal_dir), "%s", conf->journal.path);
    char *slash = strrchr(s->journal_dir, '/');
    if (slash != NULL)
        *(slash == s->journal_dir ? slash + 1 : slash) = '\0';
    s->token_rate = gw_memlog_new();
    if (s->token_rate == NULL)
        goto oom;
    s->listeners = calloc(conf->nlisteners, sizeof(*s->listeners));
    s->upstreams = calloc(conf->nupstreams, sizeof(*s->upstreams));
    if (s->listeners == NULL || s->upstreams == NULL)
        goto oom;
    for (size_t i = 0; i < conf->nlisteners; i++) {
        s->listeners[i].conf = &conf->listeners[i];
        s->listeners[i].idx = i;
        s->listeners[i].ctx = gw_tls_server_ctx_new(&conf->listeners[i], i, err);
        s->nlisteners = i + 1;
        if (s->listeners[i].ctx == NULL)
            goto fail;
    }
    if (revoc_init(s, err) < 0)
        goto fail;
    for (size_t i = 0; i < conf->nupstreams; i++) {
        if (gw_upstream_init(&s->upstreams[i], &conf->upstreams[i], i, err) < 0)
            goto fail;
        s->nupstreams = i + 1;
    }
    return s;
oom:
    *err = strdup("out of memory");
fail:
    gw_server_free(s);
    return NULL;
}

static int bind_listener(const gw_conf_listener *l, int backlog, char **err)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, l->address, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(l->port);
        sl = sizeof(*a4);
    } else if (inet_pton(AF_INET6, l->address, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(l->port);
        sl = sizeof(*a6);
    } else {
        *err = gw_strdupf("listener %s: bad address %s", l->name, l->address);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = gw_strdupf("listener %s: socket: %s", l->name, strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
        *err = gw_strdupf("listener %s: SO_REUSEPORT: %s", l->name, strerror(errno));
        close(fd);
        return -1;
    }
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
        *err = gw_strdupf("listener %s: bind %s port %u: %s", l->name, l->address, l->port,
                          strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, backlog) < 0) {
        *err = gw_strdupf("listener %s: listen: %s", l->name, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Listening follows the pauses: enabled only while neither max_connections
 * nor a descriptor shortage holds it, and never while draining (the
 * listeners are gone then). */
static void listeners_update(gw_worker *w)
{
    int on = !w->accept_paused && !w->fd_paused && !w->draining;
    for (size_t i = 0; i < w->srv->nlisteners; i++) {
        if (w->lis[i] == NULL)
            continue;
        if (on)
            evconnlistener_enable(w->lis[i]);
        else
            evconnlistener_disable(w->lis[i]);
    }
}

/*
 * Giving memory back after a burst of connections. Each handshake allocates
 * and frees far more than the connection keeps (record buffers, the key
 * exchange, the parsing of the client's certificates), and glibc returns to
 * the system only the free memory at the top of a heap: after a burst, the
 * pages freed between the connections still held stay in the RSS. Once the
 * worker has accepted TRIM_MIN_ACCEPTS connections and then none for
 * TRIM_QUIET_MS, malloc_trim() releases them: about 0.7 KiB per connection
 * held idle after a burst of 2,000 (the bench's S5, measured by RSS). A
 * worker that keeps accepting pushes the timer back and never pays for it.
 */
#define TRIM_QUIET_MS 1000
#define TRIM_MIN_ACCEPTS 256

static void trim_cb(evutil_socket_t fd, short what, void *arg)
{
    gw_worker *w = arg;
    w->accepts_since_trim = 0;
    gw_blk_drain(); /* the blocks this worker kept for its requests */
    malloc_trim(0);
}

static void trim_after_accept(gw_worker *w)
{
    if (++w->accepts_since_trim < TRIM_MIN_ACCEPTS)
        return;
    struct timeval tv = {TRIM_QUIET_MS / 1000, (TRIM_QUIET_MS % 1000) * 1000};
    evtimer_add(w->trim_ev, &tv); /* pending: pushed back */
}

static void accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    gw_worker *w = arg;
    size_t li = 0;
    for (; li < w->srv->nlisteners; li++)
        if (w->lis[li] == lis)
            break;
    if (li == w->srv->nlisteners) {
        evutil_closesocket(fd);
        return;
    }
    w->fd_backoff_ms = 0; /* a descriptor was there: the next shortage starts short */
    gw_conn_accept(w, &w->srv->listeners[li], fd, sa, salen);
    trim_after_accept(w);
    if (w->nconns >= w->srv->conf->limits.max_connections && !w->accept_paused) {
        /* Leave further connections in the kernel backlog until one closes,
         * as nginx does, rather than accepting and dropping them. */
        w->accept_paused = 1;
        listeners_update(w);
        gw_stat_add(&w->stats->connections_refused, 1);
    }
}

#define FD_BACKOFF_MIN_MS 10
#define FD_BACKOFF_MAX_MS 1000
#define FD_LOG_INTERVAL_MS 10000

/* At most one message per FD_LOG_INTERVAL_MS for the whole process (every
 * worker hits the same limit at once): the failures in between are counted
 * and reported with the next message. */
static void fd_log(gw_worker *w, int e)
{
    gw_server *s = w->srv;
    uint64_t now = gw_now_ms();
    unsigned long long last = atomic_load_explicit(&s->fd_log_ms, memory_order_relaxed);
    if (last != 0 && now - last < FD_LOG_INTERVAL_MS) {
        atomic_fetch_add_explicit(&s->fd_log_suppressed, 1, memory_order_relaxed);
        return;
    }
    if (!atomic_compare_exchange_strong(&s->fd_log_ms, &last, now)) {
        atomic_fetch_add_explicit(&s->fd_log_suppressed, 1, memory_order_relaxed);
        return;
    }
    unsigned long more = atomic_exchange_explicit(&s->fd_log_suppressed, 0, memory_order_relaxed);
    struct rlimit rl = {0, 0};
    getrlimit(RLIMIT_NOFILE, &rl);
    fprintf(stderr,
            "opale-gateway: worker %u: accept: %s: accepting paused for up to %u ms "
            "(RLIMIT_NOFILE %llu; %lu more such failures since the last message; "
            "metric opale_accept_fd_exhausted_total)\n",
            w->id, strerror(e), FD_BACKOFF_MAX_MS, (unsigned long long)rl.rlim_cur, more);
}

/*
 * accept() failed with something else than a retriable error (libevent
 * retries EAGAIN, EINTR and ECONNABORTED itself). Without this callback
 * libevent logs and polls the listener again at once: on EMFILE the pending
 * connection stays in the backlog, the socket stays readable and the worker
 * spins. Instead the worker stops listening for a back-off (10 ms doubling
 * to 1 s), or until one of its connections closes and frees a descriptor.
 */
static void accept_error_cb(struct evconnlistener *lis, void *arg)
{
    gw_worker *w = arg;
    int e = EVUTIL_SOCKET_ERROR();
    if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM)
        gw_stat_add(&w->stats->accept_fd_exhausted, 1);
    fd_log(w, e);
    w->fd_backoff_ms = w->fd_backoff_ms == 0                       ? FD_BACKOFF_MIN_MS
                       : w->fd_backoff_ms >= FD_BACKOFF_MAX_MS / 2 ? FD_BACKOFF_MAX_MS
                                                                   : w->fd_backoff_ms * 2;
    w->fd_paused = 1;
    listeners_update(w);
    struct timeval tv = {w->fd_backoff_ms / 1000, (w->fd_backoff_ms % 1000) * 1000};
    evtimer_add(w->fd_timer, &tv);
}

static void fd_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    gw_worker *w = arg;
    w->fd_paused = 0;
    listeners_update(w);
}

void gw_worker_conn_closed(gw_worker *w)
{
    int changed = 0;
    if (w->accept_paused && w->nconns < w->srv->conf->limits.max_connections) {
        w->accept_paused = 0;
        changed = 1;
    }
    if (w->fd_paused) {
        /* a descriptor is free again: try at once */
        evtimer_del(w->fd_timer);
        w->fd_paused = 0;
        changed = 1;
    }
    if (changed)
        listeners_update(w);
    if (w->draining && w->nconns == 0)
        event_base_loopexit(w->base, NULL);
}

/* ---- handshakes in progress by source address (core/hstable.c) ---- */

int gw_worker_hs_enter(gw_worker *w, int family, const unsigned char *addr, unsigned limit)
{
    return gw_hs_enter(w->hs, family, addr, limit);
}

void gw_worker_hs_leave(gw_worker *w, int family, const unsigned char *addr)
{
    gw_hs_leave(w->hs, family, addr);
}

/* ---- descriptors needed ---- */

unsigned long gw_fd_need_of(const gw_conf *conf, size_t max_connections, gw_fd_need *parts)
{
    gw_fd_need p;
    memset(&p, 0, sizeof(p));
    unsigned long w = conf->workers;
    size_t mc = max_connections != 0 ? max_connections : conf->limits.max_connections;
    p.connections = w * (unsigned long)mc * GW_FDS_PER_CONNECTION;
    p.listeners = w * (unsigned long)conf->nlisteners;
    unsigned long pool = 0;
    for (size_t i = 0; i < conf->nupstreams; i++)
        pool += conf->upstreams[i].pool_size;
    p.pools = w * pool;
    json_t *store = conf->quota != NULL ? json_object_get(conf->quota, "store") : NULL;
    if (json_is_string(store) && strcmp(json_string_value(store), "redis") == 0)
        p.redis = w * GW_FDS_REDIS_PER_WORKER;
    p.loops = w * GW_FDS_LOOP_PER_WORKER;
    p.fixed = GW_FDS_JOURNAL + (conf->admin.enabled ? GW_FDS_ADMIN : 0) + GW_FDS_SLACK;
    p.total = p.connections + p.listeners + p.pools + p.redis + p.loops + p.fixed;
    if (parts != NULL)
        *parts = p;
    return p.total;
}

static void drain_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    gw_worker *w = arg;
    gw_conn_close_all(w);
    event_base_loopexit(w->base, NULL);
}

static void drain_cb(gw_worker *w)
{
    if (w->draining)
        return;
    w->draining = 1;
    for (size_t i = 0; i < w->srv->nlisteners; i++) {
        if (w->lis[i] != NULL) {
            evconnlistener_free(w->lis[i]);
            w->lis[i] = NULL;
        }
    }
    unsigned ms = w->srv->conf->timeouts.drain_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(w->drain_deadline, &tv);
    gw_conn_drain_all(w);
    if (w->nconns == 0)
        event_base_loopexit(w->base, NULL);
}

static void policies_cb(gw_worker *w)
{
    gw_policy_set *n = gw_server_policies(w->srv);
    gw_policy_set_unref(w->policies);
    w->policies = n;
}

static void heartbeat_cb(gw_worker *w)
{
    unsigned long gen = atomic_load_explicit(&w->srv->heartbeat_gen, memory_order_acquire);
    atomic_store_explicit(&w->heartbeat, gen, memory_order_release);
}

/* A base without a lock. libevent, once evthread_use_pthreads() has run,
 * gives every base a mutex taken by each event_add, event_del and
 * event_active and around each callback of the loop (about 40 lock/unlock
 * pairs per proxied request), and a notification descriptor for the other
 * threads' calls. A worker's base is touched by its own thread alone: the
 * main thread's three requests (drain, a new policy set, a heartbeat) are
 * bits in w->wake_bits and an eventfd that the worker reads (wake_cb), so
 * its base is made with EVENT_BASE_FLAG_NOLOCK. */
enum { WAKE_DRAIN = 1u, WAKE_POLICIES = 2u, WAKE_HEARTBEAT = 4u };

static void worker_wake(gw_worker *w, unsigned bits)
{
    if (w->wake_ev == NULL)
        return;
    atomic_fetch_or_explicit(&w->wake_bits, bits, memory_order_acq_rel);
    uint64_t one = 1;
    ssize_t r;
    do
        r = write(w->wake_fd, &one, sizeof(one));
    while (r < 0 && errno == EINTR);
    /* EAGAIN: the counter is full, the worker has a wake-up pending */
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    gw_worker *w = arg;
    uint64_t n;
    while (read(fd, &n, sizeof(n)) < 0 && errno == EINTR)
        ;
    unsigned bits = atomic_exchange_explicit(&w->wake_bits, 0, memory_order_acq_rel);
    if (bits & WAKE_POLICIES)
        policies_cb(w);
    if (bits & WAKE_HEARTBEAT)
        heartbeat_cb(w);
    if (bits & WAKE_DRAIN)
        drain_cb(w);
}

static void *worker_main(void *arg)
{
    gw_worker *w = arg;
    event_base_dispatch(w->base);
    gw_jbatch_flush(w->jbatch); /* before the journal closes (after the join) */
    return NULL;
}

static int worker_init(gw_server *s, gw_worker *w, unsigned id, char **err)
{
    w->srv = s;
    w->id = id;
    TAILQ_INIT(&w->conns);
    /* the worker's counters on cache lines of their own */
    size_t ssz = (sizeof(gw_stats) + 63) / 64 * 64;
    w->stats = aligned_alloc(64, ssz);
    w->cstats = gw_consumer_stats_new(GW_CONSUMER_STATS_MAX);
    if (w->stats == NULL || w->cstats == NULL) {
        *err = strdup("out of memory");
        return -1;
    }
    memset(w->stats, 0, ssz);
    /* changelist, no locks, the coarse clock; timeouts promised to callers
     * are armed with gw_evtimer_in() (lib/evtimer.h) */
    w->base = gw_evbase_new();
    if (w->base == NULL) {
        *err = strdup("cannot create the worker's event base");
        return -1;
    }
    w->lis = calloc(s->nlisteners, sizeof(*w->lis));
    w->pools = calloc(s->nupstreams, sizeof(*w->pools));
    if (w->base == NULL || w->lis == NULL || w->pools == NULL) {
        *err = strdup("out of memory");
        return -1;
    }
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wake_fd < 0) {
        *err = strdup("cannot create the worker's eventfd");
        return -1;
    }
    w->wake_ev = event_new(w->base, w->wake_fd, EV_READ | EV_PERSIST, wake_cb, w);
    if (w->wake_ev == NULL || event_add(w->wake_ev, NULL) < 0) {
        if (w->wake_ev != NULL)
            event_free(w->wake_ev);
        w->wake_ev = NULL;
        close(w->wake_fd);
        *err = strdup("out of memory");
        return -1;
    }
    w->drain_deadline = evtimer_new(w->base, drain_deadline_cb, w);
    w->fd_timer = evtimer_new(w->base, fd_timer_cb, w);
    w->trim_ev = evtimer_new(w->base, trim_cb, w);
    w->hs = gw_hs_table_new();
    w->token_cache = gw_token_cache_new(s->oauth ? s->oauth->cache_entries : 16);
    w->deny_cache = gw_deny_cache_new(4096);
    w->jbatch = gw_jbatch_new(w->base, s->journal);
    if (s->quota != NULL && s->quota->kind == GW_QSTORE_REDIS) {
        w->redis = gw_redis_new(w->base, &s->quota->redis);
        if (w->redis == NULL) {
            *err = strdup("quota.redis: cannot create the Redis client");
            return -1;
        }
    }
    w->policies = gw_server_policies(s);
    if (w->drain_deadline == NULL || w->fd_timer == NULL || w->trim_ev == NULL || w->hs == NULL ||
        w->token_cache == NULL || w->deny_cache == NULL || w->jbatch == NULL) {
        *err = strdup("out of memory");
        return -1;
    }
    for (size_t i = 0; i < s->nupstreams; i++) {
        w->resp_budget.limit = s->conf->limits.max_buffered_response_bytes;
        w->pools[i] = gw_pool_new(w->base, &s->upstreams[i], &w->resp_budget);
        if (w->pools[i] == NULL) {
            *err = strdup("out of memory");
            return -1;
        }
    }
    for (size_t i = 0; i < s->nlisteners; i++) {
        int fd = bind_listener(s->listeners[i].conf, (int)s->conf->limits.listen_backlog, err);
        if (fd < 0)
            return -1;
        /* backlog 0: the socket already listens (limits.listen_backlog); -1
         * would make libevent call listen() again with 128 */
        w->lis[i] = evconnlistener_new(w->base, accept_cb, w, LEV_OPT_CLOSE_ON_FREE, 0, fd);
        if (w->lis[i] == NULL) {
            close(fd);
            *err = gw_strdupf("listener %s: cannot listen", s->listeners[i].conf->name);
            return -1;
        }
        evconnlistener_set_error_cb(w->lis[i], accept_error_cb);
    }
    return 0;
}

int gw_server_start(gw_server *s, char **err)
{
    s->nworkers = s->conf->workers;
    s->workers = calloc(s->nworkers, sizeof(*s->workers));
    if (s->workers == NULL) {
        *err = strdup("out of memory");
        return -1;
    }
    for (unsigned i = 0; i < s->nworkers; i++)
        if (worker_init(s, &s->workers[i], i, err) < 0)
            return -1;
    /* Workers never see process signals: the main thread handles them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (unsigned i = 0; i < s->nworkers; i++) {
        if (pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]) != 0) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            *err = gw_strdupf("cannot start worker %u", i);
            return -1;
        }
        s->workers[i].started = 1;
        /* "gw-worker-N" in top -H, ps -L and /proc/PID/task/TID/comm */
        char name[16];
        snprintf(name, sizeof(name), "gw-worker-%u", i % 1000u); /* workers <= 64 */
        pthread_setname_np(s->workers[i].thread, name);
    }
    /* the revocation thread too (it only fetches and publishes) */
    if (gw_revoc_start(s->revoc, err) < 0) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return -1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    atomic_store(&s->running, 1);
    return 0;
}

void gw_server_drain(gw_server *s)
{
    atomic_store(&s->running, 0);
    for (unsigned i = 0; i < s->nworkers; i++)
        worker_wake(&s->workers[i], WAKE_DRAIN);
}

void gw_server_join(gw_server *s)
{
    for (unsigned i = 0; i < s->nworkers; i++) {
        if (s->workers[i].started) {
            pthread_join(s->workers[i].thread, NULL);
            s->workers[i].started = 0;
        }
    }
}

void gw_server_free(gw_server *s)
{
    if (s == NULL)
        return;
    for (unsigned i = 0; s->workers != NULL && i < s->nworkers; i++) {
        gw_worker *w = &s->workers[i];
        if (w->base == NULL) {
            free(w->stats);
            gw_consumer_stats_free(w->cstats);
            continue;
        }
        gw_conn_close_all(w);
        gw_jbatch_free(w->jbatch);
        for (size_t j = 0; w->lis != NULL && j < s->nlisteners; j++)
            if (w->lis[j] != NULL)
                evconnlistener_free(w->lis[j]);
        for (size_t j = 0; w->pools != NULL && j < s->nupstreams; j++)
            gw_pool_free(w->pools[j]);
        if (w->wake_ev != NULL) {
            event_free(w->wake_ev);
            close(w->wake_fd);
        }
        if (w->drain_deadline != NULL)
            event_free(w->drain_deadline);
        if (w->fd_timer != NULL)
            event_free(w->fd_timer);
        if (w->trim_ev != NULL)
            event_free(w->trim_ev);
        gw_hs_table_free(w->hs);
        gw_policy_set_unref(w->policies);
        gw_token_cache_free(w->token_cache);
        gw_deny_cache_free(w->deny_cache);
        gw_redis_free(w->redis);
        free(w->lis);
        free(w->pools);
        event_base_free(w->base);
        free(w->stats);
        gw_consumer_stats_free(w->cstats);
    }
    free(s->workers);
    gw_revoc_free(s->revoc);
    for (size_t i = 0; i < s->nlisteners; i++)
        SSL_CTX_free(s->listeners[i].ctx);
    for (size_t i = 0; i < s->nupstreams; i++)
        gw_upstream_cleanup(&s->upstreams[i]);
    free(s->listeners);
    free(s->upstreams);
    gw_policy_set_unref(s->policies);
    gw_stage_lists_free(s->stages);
    gw_suspensions_free(s->susp);
    gw_oauth_free(s->oauth);
    gw_quota_free(s->quota);
    gw_memlog_free(s->token_rate);
    pthread_mutex_destroy(&s->policies_lock);
    free(s);
}

gw_policy_set *gw_policies_load(const gw_conf *conf, const gw_policy_set *prev, gw_errlist *errs)
{
    if (conf->policies_dir == NULL) {
        if (!conf->policies_dir_bad)
            gw_errlist_add(errs, "%s: policies_dir: required (the directory of partner policies)",
                           conf->path);
        return NULL;
    }
    const char *scopes[GW_ROUTE_MAX_SCOPES];
    size_t n = 0;
    for (size_t i = 0; i < conf->routes.n && n < GW_ROUTE_MAX_SCOPES; i++)
        if (conf->routes.routes[i].scope != NULL)
            scopes[n++] = conf->routes.routes[i].scope;
    gw_policy_rules rules = {scopes, n};
    /* with route errors (already reported) the known scopes are unknown:
     * check their syntax only */
    return gw_policy_set_build(conf->policies_dir, conf->routes_bad ? NULL : &rules, prev, errs);
}

void gw_access_state_clear(gw_access_state *st)
{
    gw_stage_lists_free(st->stages);
    gw_policy_set_unref(st->policies);
    gw_suspensions_free(st->susp);
    gw_oauth_free(st->oauth);
    gw_quota_free(st->quota);
    memset(st, 0, sizeof(*st));
}

int gw_access_load(const gw_conf *conf, gw_access_state *st, gw_errlist *errs)
{
    memset(st, 0, sizeof(*st));
    st->stages = gw_stage_lists_load(conf, errs);
    st->policies = gw_policies_load(conf, NULL, errs);
    st->oauth = gw_oauth_load(conf, errs);
    st->quota = gw_quota_load(conf, errs);
    if (st->stages != NULL) {
        char *err = NULL;
        st->susp = gw_suspensions_open(gw_killswitch_file(st->stages), &err);
        if (st->susp == NULL) {
            gw_errlist_add(errs, "%s", err ? err : "suspensions: out of memory");
            free(err);
        }
    }
    if (st->stages == NULL || st->policies == NULL || st->susp == NULL || st->oauth == NULL ||
        st->quota == NULL) {
        gw_access_state_clear(st);
        return -1;
    }
    return 0;
}

void gw_server_set_access(gw_server *s, gw_access_state *st)
{
    s->stages = st->stages;
    s->policies = st->policies;
    s->susp = st->susp;
    s->oauth = st->oauth;
    s->quota = st->quota;
    memset(st, 0, sizeof(*st));
}

gw_policy_set *gw_server_policies(gw_server *s)
{
    pthread_mutex_lock(&s->policies_lock);
    gw_policy_set *p = s->policies ? gw_policy_set_ref(s->policies) : NULL;
    pthread_mutex_unlock(&s->policies_lock);
    return p;
}

gw_suspensions *gw_server_suspensions(gw_server *s)
{
    return s->susp;
}

void gw_server_report_rejected(gw_server *s, const gw_policy_set *p, const char *by)
{
    for (size_t i = 0; i < gw_policy_set_nrejected(p); i++) {
        const gw_policy_rejected *r = gw_policy_set_rejected_at(p, i);
        gw_events_policy_rejected(s->events, by, r->file, r->error, r->kept);
    }
}

static int reload_policies(gw_server *s, const char *by, int flags, gw_policy_diff *diff,
                           gw_errlist *errs);

/* RELOADING=1 carries the monotonic time, as systemd asks of notify-reload
 * services; older systemd ignores the extra line. */
static void notify_reloading(gw_server *s)
{
    struct timespec ts;
    char msg[96];
    if (!gw_sdnotify_enabled(s->notify))
        return;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
    gw_sdnotify_send(s->notify, msg);
}

static void notify_ready(gw_server *s)
{
    char msg[512];
    if (!gw_sdnotify_enabled(s->notify))
        return;
    memcpy(msg, "READY=1\nSTATUS=", 15);
    gw_server_status(s, msg + 15, sizeof(msg) - 15);
    gw_sdnotify_send(s->notify, msg);
}

int gw_server_reload_policies(gw_server *s, const char *by, int flags, gw_policy_diff *diff,
                              gw_errlist *errs)
{
    notify_reloading(s);
    int rc = reload_policies(s, by, flags, diff, errs);
    notify_ready(s);
    return rc;
}

static int reload_policies(gw_server *s, const char *by, int flags, gw_policy_diff *diff,
                           gw_errlist *errs)
{
    gw_policy_diff d;
    gw_policy_set *cur = gw_server_policies(s);
    gw_policy_set *n = gw_policies_load(s->conf, cur, errs);
    gw_policy_set_diff(cur, n, &d);
    gw_policy_set_unref(cur);
    if (n == NULL)
        memset(&d, 0, sizeof(d));
    if (diff != NULL)
        *diff = d;
    int empties = n != NULL && gw_policy_diff_empties(&d) && !(flags & GW_RELOAD_FORCE);
    if (n == NULL || empties) {
        gw_policy_set_unref(n);
        atomic_fetch_add_explicit(&s->stats.reloads_failed, 1, memory_order_relaxed);
        return n == NULL ? -1 : -2;
    }
    pthread_mutex_lock(&s->policies_lock);
    gw_policy_set *old = s->policies;
    s->policies = n;
    pthread_mutex_unlock(&s->policies_lock);
    gw_policy_set_unref(old);
    for (unsigned i = 0; i < s->nworkers; i++)
        worker_wake(&s->workers[i], WAKE_POLICIES);
    atomic_fetch_add_explicit(&s->stats.reloads_ok, 1, memory_order_relaxed);
    gw_server_report_rejected(s, n, by);
    return 0;
}

int gw_server_redis_stats(gw_server *s, gw_redis_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (s->quota == NULL || s->quota->kind != GW_QSTORE_REDIS)
        return 0;
    out->up = 1;
    out->persistence = 1;
    for (unsigned i = 0; i < s->nworkers; i++) {
        gw_redis_stats st;
        if (s->workers[i].redis == NULL)
            continue;
        /* read from the admin thread: w->redis is set before the workers
         * start and freed after they are joined; the figures are the ones
         * the worker publishes atomically (quota/redis.c, STAT_ADD and
         * publish_up), never its connection states or slot map */
        gw_redis_get_stats(s->workers[i].redis, &st);
        out->commands += st.commands;
        out->replies += st.replies;
        out->timeouts += st.timeouts;
        out->errors += st.errors;
        out->reconnects += st.reconnects;
        out->moved += st.moved;
        out->ask += st.ask;
        out->latency_us_sum += st.latency_us_sum;
        out->syncs += st.syncs;
        out->restored += st.restored;
        out->up = out->up && st.up;
        if (st.persistence < out->persistence)
            out->persistence = st.persistence;
    }
    return 1;
}

int gw_server_quota_on_failure_relies(gw_server *s)
{
    return s->quota != NULL && s->quota->kind == GW_QSTORE_REDIS &&
           s->quota->on_failure != GW_QFAIL_ALLOW;
}

gw_stats *gw_server_stats(gw_server *s)
{
    atomic_ulong *sum = (atomic_ulong *)&s->scrape;
    const atomic_ulong *own = (const atomic_ulong *)&s->stats;
    for (size_t k = 0; k < GW_STATS_COUNTERS; k++) {
        unsigned long v = atomic_load_explicit(&own[k], memory_order_relaxed);
        for (unsigned i = 0; i < s->nworkers; i++)
            if (s->workers[i].stats != NULL)
                v += atomic_load_explicit(&((const atomic_ulong *)s->workers[i].stats)[k],
                                          memory_order_relaxed);
        atomic_store_explicit(&sum[k], v, memory_order_relaxed);
    }
    atomic_store_explicit(
        &s->scrape.quota_store_degraded,
        atomic_load_explicit(&s->stats.quota_store_degraded, memory_order_relaxed),
        memory_order_relaxed);
    return &s->scrape;
}

const gw_conf *gw_server_conf(const gw_server *s)
{
    return s->conf;
}

int gw_server_journal_ok(gw_server *s)
{
    if (s->conf->journal.on_failure_continue)
        return 1;
    return gw_journal_healthy(s->journal);
}

void gw_server_set_events(gw_server *s, gw_events *ev)
{
    s->events = ev;
}

gw_events *gw_server_events(gw_server *s)
{
    return s->events;
}

void gw_server_set_notify(gw_server *s, const gw_sdnotify *n)
{
    s->notify = n;
}

void gw_server_status(gw_server *s, char *buf, size_t len)
{
    gw_policy_set *p = gw_server_policies(s);
    unsigned long open = 0;
    for (unsigned i = 0; i < s->nworkers; i++)
        if (s->workers[i].stats != NULL)
            open +=
                atomic_load_explicit(&s->workers[i].stats->connections_open, memory_order_relaxed);
    snprintf(buf, len, "%lu connections, %zu habilitations (%zu files rejected), journal %s", open,
             p != NULL ? gw_policy_set_count(p) : 0, p != NULL ? gw_policy_set_nrejected(p) : 0,
             s->journal == NULL               ? "off"
             : gw_journal_healthy(s->journal) ? "ok"
                                              : "failing");
    gw_policy_set_unref(p);
}

int gw_server_heartbeat(gw_server *s)
{
    /* alive when every worker answered the current ask; a new ask only then.
     * A stuck worker is not excused by a later answer, and a worker that
     * answered is not blamed for an ask never sent: the current ask stays
     * pending on the stuck loop and is answered when it runs again. */
    unsigned long gen = atomic_load_explicit(&s->heartbeat_gen, memory_order_relaxed);
    for (unsigned i = 0; i < s->nworkers; i++)
        if (atomic_load_explicit(&s->workers[i].heartbeat, memory_order_acquire) != gen)
            return 0;
    atomic_store_explicit(&s->heartbeat_gen, gen + 1, memory_order_release);
    for (unsigned i = 0; i < s->nworkers; i++)
        worker_wake(&s->workers[i], WAKE_HEARTBEAT);
    return 1;
}

int gw_server_in_maintenance(const gw_server *s)
{
    time_t end;
    const gw_maint_conf *m = gw_stage_lists_conf(s->stages, &gw_stage_maintenance);
    return m != NULL && gw_maintenance_active(m, time(NULL), &end);
}

const gw_oauth *gw_server_oauth(const gw_server *s)
{
    return s->oauth;
}

const struct gw_maint_conf *gw_server_maintenance(const gw_server *s)
{
    return gw_stage_lists_conf(s->stages, &gw_stage_maintenance);
}

int gw_server_ready(const gw_server *s)
{
    return atomic_load(&((gw_server *)s)->running);
}
