/*
 * opale-loadgen: the run. Options, TLS, token and requests are set up, the
 * workers started (one thread and event_base each); the clock starts once
 * every connection is up; then results are merged and reported.
 *
 * Documentation: docs/loadgen.md.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "loadgen.h"

static volatile sig_atomic_t g_signal;

static void raise_nofile(void)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)lg_opt.conns + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur >= need)
        return;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
        lg_die("-c %ld needs %lu file descriptors, the hard limit is %lu (ulimit -Hn)",
               lg_opt.conns, (unsigned long)need, (unsigned long)rl.rlim_max);
    rl.rlim_cur = need;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        lg_die("setrlimit(RLIMIT_NOFILE, %lu): %s", (unsigned long)need, strerror(errno));
}

static void on_signal(int sig)
{
    g_signal = sig;
}

int main(int argc, char **argv)
{
    lg_parse_options(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    if (lg_opt.url.tls)
        lg_tls_setup();
    if (lg_opt.partner_certs || lg_opt.partner_headers)
        lg_load_partners();
    if (lg_opt.token_url)
        lg_fetch_token();
    lg_build_requests();
    if (lg_opt.h2)
        lg_h2_build();

    int nt = (int)lg_opt.threads;
    struct worker *ws = calloc((size_t)nt, sizeof *ws);
    if (!ws)
        lg_die("out of memory");
    lg_ns_per_req = lg_opt.rate > 0 ? (uint64_t)((double)NS_PER_S / lg_opt.rate) : 0;
    if (lg_opt.rate > 0 && lg_ns_per_req == 0)
        lg_ns_per_req = 1;
    for (int i = 0; i < nt; i++) {
        struct worker *w = &ws[i];
        w->index = i;
        struct event_config *cfg = event_config_new();
        if (!cfg)
            lg_die("out of memory");
        if (lg_opt.rate > 0)
            event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
        /* Timers from the real time, not from the time cached at the start
         * of the loop iteration: the open-loop timetable and the deadline
         * stay exact even after a long callback (e.g. the connect phase). */
        event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK | EVENT_BASE_FLAG_NO_CACHE_TIME);
        w->base = event_base_new_with_config(cfg);
        event_config_free(cfg);
        if (!w->base)
            lg_die("event_base_new failed");
        w->nconns = (unsigned)(lg_opt.conns / nt + (i < lg_opt.conns % nt));
        w->conns = calloc(w->nconns, sizeof *w->conns);
        w->scratch = malloc(lg_req_max + lg_partner_hdr_max + 64);
        w->tick = event_new(w->base, -1, EV_PERSIST, lg_on_tick, w);
        w->deadline = evtimer_new(w->base, lg_on_deadline, w);
        w->phase_ev = evtimer_new(w->base, lg_on_phase_end, w);
        if (!w->conns || !w->scratch || !w->tick || !w->deadline || !w->phase_ev ||
            RAND_bytes((unsigned char *)w->rng, sizeof w->rng) != 1)
            lg_die("out of memory");
        for (unsigned j = 0; j < w->nconns; j++) {
            struct conn *c = &w->conns[j];
            c->w = w;
            c->fd = -1;
            c->gid = (uint64_t)j * (uint64_t)nt + (uint64_t)i;
            c->timer = evtimer_new(w->base, lg_on_timer, c);
            if (!c->timer)
                lg_die("out of memory");
        }
    }

    /* SIGINT/SIGTERM stop the run early (results are still reported); the
     * workers block them so that the main thread gets them. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct totals t;
    memset(&t, 0, sizeof t);
    atomic_store(&lg_running, nt);
    uint64_t t_phase = lg_now_ns();
    for (int i = 0; i < nt; i++)
        if (pthread_create(&ws[i].tid, NULL, lg_worker_main, &ws[i]) != 0)
            lg_die("pthread_create: %s", strerror(errno));
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    /* Connect phase (keep-alive): the workers open their connections; the
     * clock starts when all are done (bounded by --timeout in each). */
    uint64_t phase_end = t_phase + (uint64_t)(lg_opt.timeout * (double)NS_PER_S) + 5 * NS_PER_S;
    for (;;) {
        if (g_signal && !atomic_load(&lg_stop)) {
            fprintf(stderr, LG_NAME ": signal %d, stopping\n", (int)g_signal);
            atomic_store(&lg_stop, 1);
        }
        int gone = nt - atomic_load(&lg_running);
        if (atomic_load(&lg_ready) + gone >= nt || atomic_load(&lg_stop) || lg_now_ns() > phase_end)
            break;
        struct timespec ms = {0, 1000 * 1000};
        nanosleep(&ms, NULL);
    }
    time_t wall = time(NULL);
    struct tm tm;
    gmtime_r(&wall, &tm);
    strftime(t.started, sizeof t.started, "%Y-%m-%dT%H:%M:%SZ", &tm);
    lg_t0 = lg_now_ns();
    lg_mstart = lg_t0 + (uint64_t)(lg_opt.warmup * (double)NS_PER_S);
    lg_deadline = lg_mstart + (uint64_t)(lg_opt.duration * (double)NS_PER_S);
    t.connect_phase = (double)(lg_t0 - t_phase) / 1e9;
    atomic_store(&lg_go, 1);
    if (lg_opt.hold > 0) {
        /* Each worker counted its connections up before it reported ready;
         * a worker that stopped early (signal) counts what it had. */
        uint64_t up = 0;
        for (int i = 0; i < nt; i++)
            up += ws[i].up_at_start;
        fprintf(stderr, LG_NAME ": holding %" PRIu64 " connections for %g s (set up in %.2f s)\n",
                up, lg_opt.hold, t.connect_phase);
    }

    /* Wait, with a progress line each second; bounded by the deadline plus
     * a grace period even if a worker were stuck. */
    uint64_t hard_end = lg_deadline + 5 * NS_PER_S;
    uint64_t next_progress = lg_t0 + NS_PER_S, last_done = 0, last_t = lg_t0;
    while (atomic_load(&lg_running) > 0) {
        uint64_t now = lg_now_ns();
        if (g_signal && !atomic_load(&lg_stop)) {
            fprintf(stderr, LG_NAME ": signal %d, stopping\n", (int)g_signal);
            atomic_store(&lg_stop, 1);
        }
        if (now > hard_end) {
            atomic_store(&lg_stop, 1);
            hard_end = now + 5 * NS_PER_S;
            if (now > lg_deadline + 30 * NS_PER_S)
                lg_die("workers did not stop");
        }
        if (lg_opt.progress && now >= next_progress) {
            uint64_t done = 0, errs = 0;
            for (int i = 0; i < nt; i++) {
                done += atomic_load_explicit(&ws[i].pub_completed, memory_order_relaxed);
                errs += atomic_load_explicit(&ws[i].pub_errors, memory_order_relaxed);
            }
            double dt = (double)(now - last_t) / 1e9;
            /* time from the measured window's start: negative during
             * --warmup (those lines say so), responses of both counted */
            double at = ((double)now - (double)lg_mstart) / 1e9;
            fprintf(stderr,
                    LG_NAME ": %6.1fs  requests %" PRIu64 "  rps %.0f  errors %" PRIu64 "%s\n", at,
                    done, dt > 0 ? (double)(done - last_done) / dt : 0, errs,
                    at < -0.05 ? "  (warm-up)" : "");
            last_done = done;
            last_t = now;
            next_progress += NS_PER_S;
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }

    uint64_t t_end = lg_t0;
    for (int i = 0; i < nt; i++) {
        struct worker *w = &ws[i];
        pthread_join(w->tid, NULL);
        if (w->t_end > t_end)
            t_end = w->t_end;
        struct stats *s = &w->st;
        t.st.claimed += s->claimed;
        t.st.sent += s->sent;
        t.st.completed += s->completed;
        t.st.failed += s->failed;
        for (int k = 0; k < 6; k++)
            t.st.status[k] += s->status[k];
        for (int k = 0; k < E_N; k++)
            t.st.err[k] += s->err[k];
        t.st.conn_attempts += s->conn_attempts;
        t.st.conn_established += s->conn_established;
        t.st.handshakes += s->handshakes;
        t.st.handshakes_run += s->handshakes_run;
        t.st.server_closes += s->server_closes;
        t.st.idle_closes += s->idle_closes;
        t.st.bytes_in += s->bytes_in;
        lg_h_merge(&t.st.lat, &s->lat);
        lg_h_merge(&t.st.conn, &s->conn);
        lg_h_merge(&t.st.warm_lat, &s->warm_lat);
        for (unsigned k = 0; k < w->nconns; k++)
            if (w->conns[k].busy) {
                if (w->conns[k].warm)
                    t.warm_unfinished++;
                else
                    t.unfinished++;
            }
        t.st.warm_started += s->warm_started;
        t.st.warm_completed += s->warm_completed;
        t.up_at_start += w->up_at_start;
        t.setup_max += w->setup_max;
        t.held_end += w->held_end;
        t.missed += w->missed;
    }
    /* A run stopped by its deadline lasted exactly the duration (a worker
     * notices the deadline a little after it); one ended by -n, SIGINT, as
     * long as its last worker. */
    if (lg_opt.max_requests) {
        uint64_t claimed = atomic_load(&lg_claimed);
        uint64_t left = claimed >= lg_opt.max_requests ? 0 : lg_opt.max_requests - claimed;
        if (t.missed > left)
            t.missed = left;
    }
    if (t_end > lg_deadline)
        t_end = lg_deadline;
    t.elapsed = t_end > lg_mstart ? (double)(t_end - lg_mstart) / 1e9 : 0;

    lg_print_summary(&t);
    fflush(stdout);
    int rc = t.st.completed > 0 ? 0 : 1;
    if (lg_opt.json && lg_write_json(lg_opt.json, &t) != 0) {
        fprintf(stderr, LG_NAME ": cannot write %s: %s\n", lg_opt.json, strerror(errno));
        rc = 1;
    }

    for (int i = 0; i < nt; i++) {
        struct worker *w = &ws[i];
        for (unsigned j = 0; j < w->nconns; j++) {
            lg_conn_close(&w->conns[j]);
            event_free(w->conns[j].timer);
        }
        event_free(w->tick);
        event_free(w->deadline);
        event_free(w->phase_ev);
        event_base_free(w->base);
        free(w->conns);
        free(w->scratch);
    }
    free(ws);
    for (int i = 0; i < lg_opt.npaths; i++)
        free(lg_req[i]);
    if (lg_bearer) {
        OPENSSL_cleanse(lg_bearer, strlen(lg_bearer));
        free(lg_bearer);
    }
    lg_free_partners();
    SSL_CTX_free(lg_ctx);
    if (t.st.completed == 0)
        fprintf(stderr, LG_NAME ": no response completed\n");
    return rc;
}
