/*
 * opale-loadgen: the workers' schedule: the connect phase, closed loop (the
 * next request when the previous answer is in), open loop (a fixed
 * timetable, latency from the scheduled time) and --hold.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/bufferevent.h>

#include "loadgen.h"

uint64_t lg_t0, lg_deadline, lg_ns_per_req, lg_mstart;

atomic_int lg_stop;

atomic_int lg_running;

atomic_int lg_ready; /* workers done with their connect phase */

atomic_int lg_go; /* the clock has started (lg_t0, lg_deadline set) */

_Atomic uint64_t lg_claimed;

static int claim_request(void)
{
    if (lg_opt.max_requests == 0)
        return 1;
    uint64_t n = atomic_fetch_add_explicit(&lg_claimed, 1, memory_order_relaxed);
    return n < lg_opt.max_requests;
}

/* Whether -n still allows a request (without claiming one). */
static int requests_left(void)
{
    return lg_opt.max_requests == 0 ||
           atomic_load_explicit(&lg_claimed, memory_order_relaxed) < lg_opt.max_requests;
}

void lg_check_done(struct worker *w)
{
    if (w->exhausted && w->busy == 0 && !w->stopping) {
        w->stopping = 1;
        event_base_loopbreak(w->base);
    }
}

/* The slot is free and its connection is down (no backoff): keep-alive
 * reconnects at once; --new-conn connects when the next request is due. */
void lg_reopen_or_next(struct conn *c)
{
    struct worker *w = c->w;
    if (w->stopping)
        return;
    if (!requests_left()) {
        w->exhausted = 1;
        lg_check_done(w);
        return;
    }
    if (!lg_opt.new_conn)
        lg_conn_open(c);
    lg_slot_next(c);
}

/* Start the next request on this slot if it is free and due. */
void lg_slot_next(struct conn *c)
{
    struct worker *w = c->w;
    if (!w->running || w->stopping || w->exhausted || c->busy || c->backoff_until)
        return;
    uint64_t now = lg_now_ns();
    if (lg_opt.rate > 0) {
        /* Due at or after the end: not part of the run. Without this, the
         * slot whose timetable lands exactly on the deadline (connection 0
         * when the run lasts a whole number of its periods) raced the
         * deadline's timer and sometimes sent one request more than the
         * timetable holds: S8's partner 1 then sent 51 in 60 s and got the
         * 429 reported as a quota error. */
        if (c->next_sched >= lg_deadline)
            return;
        if (c->next_sched > now) {
            lg_arm_timer(c, c->next_sched - now);
            return;
        }
    } else if (!lg_opt.new_conn && c->state != CS_READY) {
        return; /* closed loop: the request goes when the connection is up */
    }
    if (!claim_request()) {
        w->exhausted = 1;
        lg_check_done(w);
        return;
    }
    c->busy = 1;
    w->busy++;
    if (lg_opt.rate > 0) {
        c->t_origin = c->next_sched;
        c->sched_k++;
        c->next_sched = lg_t0 + (uint64_t)((double)(c->gid + c->sched_k * (uint64_t)lg_opt.conns) *
                                           (double)lg_ns_per_req);
    } else {
        c->t_origin = now;
    }
    c->warm = c->t_origin < lg_mstart;
    if (c->warm)
        w->st.warm_started++;
    else
        w->st.claimed++;
    if (c->state == CS_READY)
        lg_send_request(c);
    else if (c->state == CS_DOWN)
        lg_conn_open(c);
    /* CS_TCP, CS_TLS: sent once connected */
}

/* Connect phase (keep-alive and --hold): open connections while fewer than
 * the window are being set up (SETUP_WINDOW over all threads), so that the
 * target is not flooded with a storm of handshakes. With 10,000 connections
 * opened at once (S8), the gateway's 10 s handshake timeout closed the
 * slowest of them: TLS errors, and connections the generator held for up
 * but the server closed ("idle closes"), all reopened. */
void lg_setup_fill(struct worker *w)
{
    unsigned window = SETUP_WINDOW / (unsigned)lg_opt.threads;
    if (window == 0)
        window = 1;
    if (w->setup_filling)
        return; /* a failed lg_conn_open below settles at once: the loop goes on */
    w->setup_filling = 1;
    while (!w->running && !w->stopping && w->setup_active < window && w->setup_next < w->nconns) {
        struct conn *c = &w->conns[w->setup_next++];
        if (++w->setup_active > w->setup_max)
            w->setup_max = w->setup_active;
        lg_conn_open(c); /* may settle c at once (--hold: socket or connect failure) */
    }
    w->setup_filling = 0;
}

/* --hold: connection c is done with its setup (answered once, or failed),
 * or, once the hold has started, was closed. Nothing is reopened. */
void lg_hold_settled(struct conn *c)
{
    struct worker *w = c->w;
    if (w->running || c->phase_seen)
        return;
    c->phase_seen = 1;
    lg_setup_done(w);
}

/* Connect phase: one connection is done with its setup: the phase is over
 * once all are, else the window takes the next one. */
void lg_setup_done(struct worker *w)
{
    w->setup_active--;
    if (++w->phase_ready >= w->nconns)
        lg_phase_done(w);
    else
        lg_setup_fill(w);
}

void lg_on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    if (c->w->stopping)
        return;
    if (c->backoff_until) {
        uint64_t now = lg_now_ns();
        if (now < c->backoff_until) {
            lg_arm_timer(c, c->backoff_until - now);
            return;
        }
        c->backoff_until = 0;
        lg_reopen_or_next(c);
        return;
    }
    lg_slot_next(c);
}

static void stop_worker(struct worker *w)
{
    if (!w->stopping) {
        w->stopping = 1;
        event_base_loopbreak(w->base);
    }
}

void lg_on_deadline(evutil_socket_t fd, short what, void *arg)
{
    stop_worker(arg);
}

/* Every TICK_MS: the stop flag (SIGINT) and the timeouts. */
void lg_on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    if (atomic_load(&lg_stop)) {
        stop_worker(w);
        return;
    }
    uint64_t now = lg_now_ns(), limit = (uint64_t)(lg_opt.timeout * (double)NS_PER_S);
    for (unsigned i = 0; i < w->nconns && !w->stopping; i++) {
        struct conn *c = &w->conns[i];
        int late = 0;
        if ((c->state == CS_TCP || c->state == CS_TLS) && now - c->t_connect > limit)
            late = 1;
        else if (c->state == CS_READY && c->inflight && now - c->t_sent > limit)
            late = 1;
        if (late) {
            lg_report_first(E_TIMEOUT, "no %s within %g s",
                            c->state == CS_READY ? "response" : "connection", lg_opt.timeout);
            lg_conn_fail(c, E_TIMEOUT);
        }
    }
}

/* End of this worker's connect phase: wait until every worker is there and
 * the main thread has started the clock, then start the requests. Blocking
 * in a callback is fine: there is nothing else to do meanwhile. Bounded: the
 * main thread starts the clock at the latest when the slowest connect phase
 * (bounded by --timeout) is over. */
void lg_phase_done(struct worker *w)
{
    if (w->running || w->stopping)
        return;
    event_del(w->phase_ev);
    if (lg_opt.hold > 0) {
        /* Setup over (or its --timeout expired): what is not up and idle by
         * now is given up, counted as a timeout, and nothing more opens. */
        w->setup_next = w->nconns;
        for (unsigned i = 0; i < w->nconns; i++) {
            struct conn *c = &w->conns[i];
            if (c->state != CS_DOWN && (c->state != CS_READY || c->inflight)) {
                w->st.err[E_TIMEOUT]++;
                if (c->busy) {
                    c->busy = 0;
                    w->busy--;
                    w->st.failed++;
                }
                lg_conn_close(c);
            }
        }
        lg_publish(w);
    } else if (!lg_opt.new_conn) {
        /* Keep-alive, --timeout over before every connection was up: those
         * never opened open now (a closed loop only sends on an open one). */
        while (w->setup_next < w->nconns)
            lg_conn_open(&w->conns[w->setup_next++]);
    }
    for (unsigned i = 0; i < w->nconns; i++)
        w->up_at_start += w->conns[i].state == CS_READY;
    atomic_fetch_add(&lg_ready, 1);
    struct timespec ms = {0, 1000 * 1000};
    for (long i = 0; i < 1000L * 1000 && !atomic_load(&lg_go); i++)
        nanosleep(&ms, NULL);
    if (!atomic_load(&lg_go) || atomic_load(&lg_stop)) {
        stop_worker(w);
        return;
    }
    w->running = 1;
    uint64_t now = lg_now_ns();
    struct timeval tv = lg_ns_to_tv(lg_deadline > now ? lg_deadline - now : 0);
    event_add(w->deadline, &tv);
    if (lg_opt.hold > 0)
        return; /* --hold: the connections stay idle until the deadline */
    for (unsigned i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        if (lg_opt.rate > 0)
            c->next_sched = lg_t0 + (uint64_t)((double)c->gid * (double)lg_ns_per_req);
        lg_slot_next(c);
    }
}

void lg_on_phase_end(evutil_socket_t fd, short what, void *arg)
{
    lg_phase_done(arg);
}

void *lg_worker_main(void *arg)
{
    struct worker *w = arg;
    struct timeval tick = {0, TICK_MS * 1000};
    event_add(w->tick, &tick);
    if (lg_opt.new_conn) {
        lg_phase_done(w); /* a connection per request: no connect phase */
    } else if (lg_opt.hold > 0) {
        /* --hold: open the connections a window at a time, one request
         * each; the whole setup is bounded by --timeout. */
        struct timeval tv = lg_ns_to_tv((uint64_t)(lg_opt.timeout * (double)NS_PER_S));
        event_add(w->phase_ev, &tv);
        lg_setup_fill(w);
    } else {
        /* Keep-alive: open every connection before the clock starts, so
         * that the handshakes do not weigh on the first requests; a window
         * at a time (lg_setup_fill). */
        struct timeval tv = lg_ns_to_tv((uint64_t)(lg_opt.timeout * (double)NS_PER_S));
        event_add(w->phase_ev, &tv);
        lg_setup_fill(w);
    }
    if (!w->stopping)
        event_base_dispatch(w->base);
    w->stopping = 1;
    w->t_end = lg_now_ns();
    for (unsigned i = 0; i < w->nconns; i++)
        w->held_end += w->conns[i].state == CS_READY;
    if (lg_opt.rate > 0 && w->running) {
        /* Open loop: requests whose scheduled time came before the end but
         * that never started (the slot was still busy with earlier ones). */
        uint64_t end = w->t_end < lg_deadline ? w->t_end : lg_deadline;
        for (unsigned i = 0; i < w->nconns; i++) {
            struct conn *c = &w->conns[i];
            double lim = ((double)(end - lg_t0) / (double)lg_ns_per_req - (double)c->gid) /
                         (double)lg_opt.conns;
            uint64_t k = lim > 0 ? (uint64_t)ceil(lim) : 0;
            if (k > c->sched_k)
                w->missed += k - c->sched_k;
        }
    }
    atomic_fetch_sub(&lg_running, 1);
    return NULL;
}
