#include "core/proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "core/bev.h"
#include "core/tls.h"
#include "lib/evtimer.h"
#include "lib/util.h"

/* Idle pooled connections are closed after this long, before a typical
 * backend (nginx: 75 s, evhttp: 50 s) closes them under our feet. */
#define GW_POOL_IDLE_MS 30000
/* One read of a plain upstream socket takes at most this much (on the
 * worker's stack). */
#define GW_UP_READ 16384

struct uconn {
    gw_pool *pool;
    struct bufferevent *bev;
    struct event *rev; /* plain upstream: our read event (bev reads nothing) */
    gw_http_parser *parser;
    struct event *timer;
    TAILQ_ENTRY(uconn) link;
    int in_pool;
    gw_proxy_call *call;
    size_t addr_i;
    int reused;
    int got_bytes;
    int connected;
    size_t charged; /* bytes of the worker's response budget held */
};

TAILQ_HEAD(uconn_list, uconn);
TAILQ_HEAD(call_list, gw_proxy_call);

struct gw_pool {
    struct event_base *base;
    const gw_upstream *up;
    struct uconn_list idle;
    size_t nidle;
    size_t nconns;          /* open connections, idle ones included */
    struct call_list waitq; /* calls waiting for a connection (max_connections), oldest first */
    size_t nwait;
    struct event *dispatch; /* hands freed connections to the waiting calls, from the loop */
    size_t rr;
    gw_http_limits lim;
    gw_resp_budget *budget; /* the worker's, NULL: none */
};

struct gw_proxy_call {
    gw_pool *pool;
    char *req;
    size_t len;
    int no_body;
    int idempotent;
    int retried;
    size_t max_bytes; /* response body bound for this call */
    gw_proxy_cb cb;
    void *arg;
    struct uconn *uc;
    uint64_t t0;
    struct event *defer;
    gw_err_id defer_err;
    const char *defer_detail;
    gw_proxy_attempt attempts[GW_PROXY_MAX_ATTEMPTS];
    size_t nattempts;
    uint64_t attempt_t0;
    TAILQ_ENTRY(gw_proxy_call) wlink;
    int queued;         /* in its pool's waitq */
    int want_fresh;     /* the retry: a new connection, not a pooled one */
    struct event *wait; /* the queue timeout, created at the first wait */
};

/* ---- upstream description ---- */

int gw_upstream_init(gw_upstream *u, const gw_conf_upstream *c, size_t idx, char **err)
{
    memset(u, 0, sizeof(*u));
    u->conf = c;
    u->idx = idx;
    u->naddrs = c->nservers;
    u->addrs = calloc(c->nservers, sizeof(*u->addrs));
    u->addrlens = calloc(c->nservers, sizeof(*u->addrlens));
    u->addr_names = calloc(c->nservers, sizeof(*u->addr_names));
    if (u->addrs == NULL || u->addrlens == NULL || u->addr_names == NULL)
        goto oom;
    for (size_t i = 0; i < c->nservers; i++) {
        char name[96];
        const gw_conf_upstream_server *s = &c->servers[i];
        if (strchr(s->host, ':') != NULL)
            snprintf(name, sizeof(name), "[%s]:%u", s->host, s->port);
        else
            snprintf(name, sizeof(name), "%s:%u", s->host, s->port);
        if (gw_upstream_addr_parse(name, &u->addrs[i], &u->addrlens[i]) < 0) {
            char m[160];
            snprintf(m, sizeof(m), "upstreams[%zu].servers[%zu]: not a numeric address", idx, i);
            *err = strdup(m);
            gw_upstream_cleanup(u);
            return -1;
        }
        u->addr_names[i] = strdup(name);
        if (u->addr_names[i] == NULL)
            goto oom;
    }
    u->host_header = strdup(c->tls_server_name ? c->tls_server_name : u->addr_names[0]);
    if (u->host_header == NULL)
        goto oom;
    if (c->tls) {
        u->ssl_ctx = gw_tls_client_ctx_new(c, idx, err);
        if (u->ssl_ctx == NULL) {
            gw_upstream_cleanup(u);
            return -1;
        }
    }
    return 0;
oom:
    *err = strdup("out of memory");
    gw_upstream_cleanup(u);
    return -1;
}

void gw_upstream_cleanup(gw_upstream *u)
{
    for (size_t i = 0; u->addr_names != NULL && i < u->naddrs; i++)
        free(u->addr_names[i]);
    free(u->addr_names);
    free(u->addrs);
    free(u->addrlens);
    free(u->host_header);
    SSL_CTX_free(u->ssl_ctx);
    memset(u, 0, sizeof(*u));
}

/* ---- connections ---- */

static void budget_release(struct uconn *uc)
{
    gw_resp_budget_release(uc->pool->budget, &uc->charged);
}

/* Charges what the response being received on <uc> may come to
 * (gw_resp_budget_charge). Returns -1 when the worker's budget cannot hold
 * it. */
static int budget_charge(struct uconn *uc)
{
    if (uc->parser == NULL)
        return 0;
    return gw_resp_budget_charge(uc->pool->budget, &uc->charged,
                                 gw_http_parser_declared_length(uc->parser),
                                 gw_http_parser_body_bytes(uc->parser));
}

/* A connection was freed or went idle: the waiting calls may go on. */
static void wake_waiters(gw_pool *p)
{
    if (p->nwait > 0)
        event_active(p->dispatch, EV_TIMEOUT, 0);
}

/* Another connection may be opened (upstreams[].max_connections). */
static int can_open(const gw_pool *p)
{
    unsigned max = p->up->conf->max_connections;
    return max == 0 || p->nconns < max;
}

static void uconn_free(struct uconn *uc)
{
    budget_release(uc);
    if (uc->in_pool) {
        TAILQ_REMOVE(&uc->pool->idle, uc, link);
        uc->pool->nidle--;
        uc->in_pool = 0;
    }
    uc->pool->nconns--;
    wake_waiters(uc->pool);
    if (uc->call != NULL)
        uc->call->uc = NULL;
    if (uc->timer != NULL)
        event_free(uc->timer);
    if (uc->rev != NULL)
        event_free(uc->rev);
    if (uc->bev != NULL)
        bufferevent_free(uc->bev);
    gw_http_parser_free(uc->parser);
    free(uc);
}

/* Arms <ev> to fire <ms> from now, not from the loop's cached time
 * (lib/evtimer.h). */
static int timer_in(struct event *ev, unsigned ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return gw_evtimer_in(ev, &tv);
}

static void arm(struct uconn *uc, unsigned ms)
{
    timer_in(uc->timer, ms);
}

static void call_free(gw_proxy_call *call)
{
    if (call->defer != NULL)
        event_free(call->defer);
    if (call->wait != NULL)
        event_free(call->wait);
    gw_blk_put(call->req); /* gw_forward_request's */
    free(call);
}

/* Report the outcome and release the call. The connection has already been
 * detached or freed by the caller. */
static void deliver(gw_proxy_call *call, gw_err_id err, gw_http_response *resp, const char *addr,
                    const char *detail)
{
    gw_proxy_result res = {
        .err = err,
        .resp = resp,
        .addr = addr,
        .ms = (long)(gw_now_ms() - call->t0),
        .detail = detail,
        .attempts = call->attempts,
        .nattempts = call->nattempts,
    };
    call->cb(call->arg, &res);
    gw_http_response_free(resp);
    call_free(call);
}

static int start(gw_proxy_call *call, int fresh);

/* Closes the current attempt of <call> (the last one opened by start()). */
static void attempt_end(gw_proxy_call *call, const char *outcome, int status)
{
    if (call->nattempts == 0)
        return;
    gw_proxy_attempt *a = &call->attempts[call->nattempts - 1];
    a->outcome = outcome;
    a->status = status;
    a->ms = (long)(gw_now_ms() - call->attempt_t0);
}

/* The connection failed while serving <call>: discard it, then retry once on
 * a fresh connection when that is safe, else report <err>. */
static void fail(struct uconn *uc, gw_err_id err, const char *detail)
{
    gw_proxy_call *call = uc->call;
    const gw_upstream *up = uc->pool->up;
    const char *addr = up->addr_names[uc->addr_i];
    int retry = call != NULL &&
                gw_proxy_may_retry(uc->reused, uc->got_bytes, call->idempotent, call->retried, err);
    if (call != NULL)
        attempt_end(call, gw_proxy_fail_outcome(uc->connected || uc->reused, err, detail), 0);
    uc->call = NULL;
    uconn_free(uc);
    if (call == NULL)
        return;
    call->uc = NULL;
    if (retry) {
        call->retried = 1;
        if (start(call, 1) == 0)
            return;
    }
    deliver(call, err, NULL, addr, detail);
}

static void release(struct uconn *uc, int reusable)
{
    gw_pool *p = uc->pool;
    uc->call = NULL;
    if (!reusable || p->nidle >= p->up->conf->pool_size) {
        uconn_free(uc);
        return;
    }
    budget_release(uc);
    gw_http_parser_free(uc->parser);
    uc->parser = NULL;
    uc->got_bytes = 0;
    TAILQ_INSERT_HEAD(&p->idle, uc, link);
    p->nidle++;
    uc->in_pool = 1;
    arm(uc, GW_POOL_IDLE_MS);
    wake_waiters(p);
}

static void complete(struct uconn *uc, int extra_bytes)
{
    gw_proxy_call *call = uc->call;
    gw_http_response *resp = gw_http_parser_take_response(uc->parser);
    const char *addr = uc->pool->up->addr_names[uc->addr_i];
    evtimer_del(uc->timer);
    int reusable = resp != NULL && resp->keep_alive && !extra_bytes;
    call->uc = NULL;
    attempt_end(call, resp != NULL ? "ok" : "error", resp != NULL ? resp->status : 0);
    release(uc, reusable);
    if (resp == NULL)
        deliver(call, GW_ERR_INTERNAL, NULL, addr, "out of memory");
    else
        deliver(call, GW_OK, resp, addr, NULL);
}

enum { FED_MORE, FED_COMPLETE, FED_FAILED };

/* Feed <n> bytes at <p> to <uc>'s response parser. FED_MORE: all taken, the
 * response goes on; FED_COMPLETE: the response ended after <*used> bytes
 * (the caller completes it); FED_FAILED: <uc> failed (and is gone). */
static int feed(struct uconn *uc, const char *p, size_t n, size_t *used)
{
    size_t consumed = 0;
    gw_http_status st = gw_http_parser_feed(uc->parser, p, n, &consumed);
    if (st == GW_HTTP_ERROR) {
        const char *reason = NULL;
        gw_http_parser_error(uc->parser, &reason);
        fail(uc, GW_ERR_UPSTREAM_INVALID, reason);
        return FED_FAILED;
    }
    if (st == GW_HTTP_COMPLETE) {
        *used = consumed;
        return FED_COMPLETE;
    }
    *used = n;
    if (budget_charge(uc) < 0) {
        fail(uc, GW_ERR_UPSTREAM_INVALID, "upstream.budget_exceeded");
        return FED_FAILED;
    }
    return FED_MORE;
}

/* A TLS upstream: bufferevent_openssl's read callback. */
static void readcb(struct bufferevent *bev, void *arg)
{
    struct uconn *uc = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (uc->call == NULL) {
        /* bytes on an idle connection: the server is out of step */
        uconn_free(uc);
        return;
    }
    uc->got_bytes = 1;
    while (evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        size_t used = 0;
        int f = feed(uc, v.iov_base, v.iov_len, &used);
        if (f == FED_FAILED)
            return;
        evbuffer_drain(in, used);
        if (f == FED_COMPLETE) {
            complete(uc, evbuffer_get_length(in) > 0);
            return;
        }
    }
}

static void eventcb(struct bufferevent *bev, short what, void *arg)
{
    struct uconn *uc = arg;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        uc->connected = 1;
        if (uc->call != NULL)
            arm(uc, uc->pool->up->conf->response_timeout_ms);
        return;
    }
    if (uc->call == NULL) {
        uconn_free(uc);
        return;
    }
    if ((what & BEV_EVENT_EOF) && uc->parser != NULL && gw_http_parser_started(uc->parser)) {
        if (gw_http_parser_finish(uc->parser) == GW_HTTP_COMPLETE) {
            complete(uc, 1); /* never reuse a connection the server closed */
            return;
        }
        fail(uc, GW_ERR_UPSTREAM_INVALID, "truncated response");
        return;
    }
    ERR_clear_error();
    fail(uc, GW_ERR_UPSTREAM_DOWN, uc->connected ? "connection closed" : "connect failed");
}

/* A plain upstream socket is readable. libevent's bufferevent_socket reads
 * with evbuffer_read(), which asks the socket how much it holds
 * (ioctl(FIONREAD)) before every readv(), into a chain it allocates: two
 * system calls and an allocation per response. Here one read() into the
 * stack, fed to the parser as it is (the parser keeps what it needs), then
 * what readcb() would do; the end of the stream or an error goes to
 * eventcb() as the bufferevent would report it. The bufferevent only
 * connects and writes (EV_READ is never enabled on it). The event stays
 * added from the connect to the free (EV_PERSIST), idle in the pool
 * included, as the bufferevent's EV_READ was. */
static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct uconn *uc = arg;
    char buf[GW_UP_READ];
    ssize_t r = read(fd, buf, sizeof(buf));
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (r <= 0) {
        eventcb(uc->bev, BEV_EVENT_READING | (r == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR), uc);
        return;
    }
    if (uc->call == NULL) {
        uconn_free(uc); /* bytes on an idle connection: the server is out of step */
        return;
    }
    uc->got_bytes = 1;
    size_t used = 0;
    if (feed(uc, buf, (size_t)r, &used) == FED_COMPLETE)
        complete(uc, used < (size_t)r);
}

static void timercb(evutil_socket_t fd, short what, void *arg)
{
    struct uconn *uc = arg;
    if (uc->call == NULL) {
        uconn_free(uc); /* idle too long in the pool */
        return;
    }
    fail(uc, GW_ERR_UPSTREAM_TIMEOUT, uc->connected ? "response timeout" : "connect timeout");
}

static struct uconn *uconn_connect(gw_pool *p)
{
    const gw_upstream *up = p->up;
    struct uconn *uc = calloc(1, sizeof(*uc));
    if (uc == NULL)
        return NULL;
    uc->pool = p;
    p->nconns++; /* uconn_free() counts it out */
    uc->addr_i = p->rr++ % up->naddrs;
    uc->timer = evtimer_new(p->base, timercb, uc);
    if (uc->timer == NULL)
        goto fail;
    int opts = BEV_OPT_CLOSE_ON_FREE;
    if (up->ssl_ctx != NULL) {
        SSL *ssl = SSL_new(up->ssl_ctx);
        if (ssl == NULL)
            goto fail;
        const char *sni = up->conf->tls_server_name ? up->conf->tls_server_name
                                                    : up->conf->servers[uc->addr_i].host;
        SSL_set_tlsext_host_name(ssl, sni);
        if (up->conf->tls_server_name != NULL)
            SSL_set1_host(ssl, sni);
        else
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), sni);
        uc->bev =
            bufferevent_openssl_socket_new(p->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, opts);
        if (uc->bev == NULL)
            goto fail; /* libevent has freed the SSL (BEV_OPT_CLOSE_ON_FREE) */
        bufferevent_openssl_set_allow_dirty_shutdown(uc->bev, 1);
    } else {
        uc->bev = bufferevent_socket_new(p->base, -1, opts);
        if (uc->bev == NULL)
            goto fail;
    }
    bufferevent_setcb(uc->bev, readcb, NULL, eventcb, uc);
    if (bufferevent_socket_connect(uc->bev, (struct sockaddr *)&up->addrs[uc->addr_i],
                                   (int)up->addrlens[uc->addr_i]) < 0)
        goto fail;
    if (up->ssl_ctx == NULL) {
        /* readable before the connect completes only on an error: read()
         * then reports it (connect failed) */
        uc->rev =
            event_new(p->base, bufferevent_getfd(uc->bev), EV_READ | EV_PERSIST, on_readable, uc);
        if (uc->rev == NULL || event_add(uc->rev, NULL) < 0)
            goto fail;
    }
    return uc;
fail:
    uconn_free(uc);
    return NULL;
}

/* <call> leaves its pool's waiting list, if it is there. */
static void dequeue(gw_proxy_call *call)
{
    if (!call->queued)
        return;
    TAILQ_REMOVE(&call->pool->waitq, call, wlink);
    call->pool->nwait--;
    call->queued = 0;
    event_del(call->wait);
}

/* Connections were freed or went idle: the waiting calls start in their
 * order while there is one for them. */
static void dispatch_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_pool *p = arg;
    gw_proxy_call *call;
    while ((call = TAILQ_FIRST(&p->waitq)) != NULL && (p->nidle > 0 || can_open(p))) {
        dequeue(call);
        if (start(call, call->want_fresh) < 0)
            deliver(call, GW_ERR_UPSTREAM_DOWN, NULL, p->up->addr_names[0],
                    "cannot open connection");
    }
}

static void defer_cb(evutil_socket_t fd, short what, void *arg)
{
    gw_proxy_call *call = arg;
    deliver(call, call->defer_err, NULL, call->pool->up->addr_names[0], call->defer_detail);
}

/* The request to a plain upstream connection that is established (reused
 * from the pool, or connected) and has nothing queued: one send() now,
 * instead of a copy into the bufferevent's output chain (an allocation),
 * its EV_WRITE enabled and activated, its callback's writev() later in the
 * loop pass, the chain drained and EV_WRITE deleted. Returns the bytes
 * sent; what is left (a full socket buffer: EAGAIN or a short write) and
 * any error go through the bufferevent as before, which reports an error
 * to eventcb() (the retry rules of fail() unchanged). */
static size_t write_direct(struct uconn *uc, const char *req, size_t len)
{
    if (uc->rev == NULL || !(uc->connected || uc->reused) ||
        evbuffer_get_length(bufferevent_get_output(uc->bev)) > 0)
        return 0;
    ssize_t r;
    do
        r = send(bufferevent_getfd(uc->bev), req, len, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    return r > 0 ? (size_t)r : 0;
}

static void wait_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_proxy_call *call = arg;
    gw_pool *p = call->pool;
    dequeue(call);
    /* no connection within queue_timeout_ms: nothing was sent (no attempt) */
    deliver(call, GW_ERR_UPSTREAM_TIMEOUT, NULL, p->up->addr_names[0], "upstream.queue_timeout");
}

/* <call> waits for a connection, behind those already waiting. */
static int enqueue(gw_proxy_call *call, int fresh)
{
    gw_pool *p = call->pool;
    if (call->wait == NULL && (call->wait = evtimer_new(p->base, wait_timeout_cb, call)) == NULL)
        return -1;
    if (timer_in(call->wait, p->up->conf->queue_timeout_ms) < 0)
        return -1;
    call->want_fresh = fresh;
    call->queued = 1;
    TAILQ_INSERT_TAIL(&p->waitq, call, wlink);
    p->nwait++;
    return 0;
}

/* Starts <call> on a pooled connection, or a new one (<fresh>: a new one
 * only), or queues it when max_connections are open and none is idle.
 * Returns 0 (sent or queued) or -1 (no connection could be opened). */
static int start(gw_proxy_call *call, int fresh)
{
    gw_pool *p = call->pool;
    struct uconn *uc = NULL;
    if (!fresh && (uc = TAILQ_FIRST(&p->idle)) != NULL) {
        TAILQ_REMOVE(&p->idle, uc, link);
        p->nidle--;
        uc->in_pool = 0;
        uc->reused = 1;
        evtimer_del(uc->timer);
    } else {
        /* A retry (<fresh>) always finds room: fail() closed the connection
         * that failed before calling here. */
        if (!can_open(p))
            return enqueue(call, fresh);
        uc = uconn_connect(p);
        if (uc == NULL)
            return -1;
    }
    gw_http_limits lim = p->lim;
    if (call->max_bytes > 0 && call->max_bytes < lim.max_body_bytes)
        lim.max_body_bytes = call->max_bytes;
    uc->parser = gw_http_parser_new(1, &lim);
    if (uc->parser == NULL) {
        uconn_free(uc);
        return -1;
    }
    gw_http_parser_expect_no_body(uc->parser, call->no_body);
    uc->call = call;
    call->uc = uc;
    size_t sent = write_direct(uc, call->req, call->len);
    if (sent < call->len && bufferevent_write(uc->bev, call->req + sent, call->len - sent) < 0) {
        uc->call = NULL;
        call->uc = NULL;
        uconn_free(uc);
        return -1;
    }
    if (call->nattempts < GW_PROXY_MAX_ATTEMPTS) {
        call->attempts[call->nattempts++] =
            (gw_proxy_attempt){.addr = p->up->addr_names[uc->addr_i], .outcome = "error", .ms = -1};
        call->attempt_t0 = gw_now_ms();
    }
    if (sent < call->len) {
        /* a plain upstream is read by uc->rev (on_readable), not the bufferevent */
        bufferevent_enable(uc->bev, uc->rev != NULL ? EV_WRITE : EV_READ | EV_WRITE);
        if (uc->connected || uc->reused)
            gw_bev_write_now(uc->bev);
    }
    arm(uc, uc->connected || uc->reused ? p->up->conf->response_timeout_ms
                                        : p->up->conf->connect_timeout_ms);
    return 0;
}

gw_proxy_call *gw_proxy_send(gw_pool *p, char *req, size_t len, int no_body, int idempotent,
                             size_t max_bytes, gw_proxy_cb cb, void *arg)
{
    gw_proxy_call *call = gw_zalloc(sizeof(*call));
    if (call == NULL) {
        free(req);
        return NULL;
    }
    call->req = req; /* ours now: kept for a retry, freed with the call */
    call->len = len;
    call->pool = p;
    call->no_body = no_body;
    call->idempotent = idempotent;
    call->max_bytes = max_bytes;
    call->cb = cb;
    call->arg = arg;
    call->t0 = gw_now_ms();
    /* behind the calls already waiting for a connection, if any */
    if ((p->nwait > 0 ? enqueue(call, 0) : start(call, 0)) < 0) {
        /* report from the loop, never from inside this call */
        call->defer = evtimer_new(p->base, defer_cb, call);
        if (call->defer == NULL) {
            call_free(call);
            return NULL;
        }
        call->defer_err = GW_ERR_UPSTREAM_DOWN;
        call->defer_detail = "cannot open connection";
        struct timeval tv = {0, 0};
        evtimer_add(call->defer, &tv);
    }
    return call;
}

void gw_proxy_cancel(gw_proxy_call *call)
{
    if (call == NULL)
        return;
    dequeue(call);
    if (call->uc != NULL) {
        call->uc->call = NULL;
        uconn_free(call->uc);
    }
    call_free(call);
}

gw_pool *gw_pool_new(struct event_base *base, const gw_upstream *u, gw_resp_budget *budget)
{
    gw_pool *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->base = base;
    p->up = u;
    p->budget = budget;
    TAILQ_INIT(&p->idle);
    TAILQ_INIT(&p->waitq);
    p->dispatch = event_new(base, -1, 0, dispatch_cb, p);
    if (p->dispatch == NULL) {
        free(p);
        return NULL;
    }
    p->lim.max_header_bytes = 65536;
    p->lim.max_headers = 200;
    p->lim.max_body_bytes = u->conf->max_response_bytes;
    return p;
}

void gw_pool_free(gw_pool *p)
{
    if (p == NULL)
        return;
    struct uconn *uc;
    while ((uc = TAILQ_FIRST(&p->idle)) != NULL)
        uconn_free(uc);
    event_free(p->dispatch);
    free(p);
}

size_t gw_pool_idle_count(const gw_pool *p)
{
    return p->nidle;
}
