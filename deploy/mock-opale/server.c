/*
 * opale-mock: the request entry point and fault injection (mock.h;
 * docs/mock-opale.md, "Fault injection").
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include "mock.h"

enum outcome {
    OUT_REPLY, /* normal processing */
    OUT_ERROR, /* injected 500 */
    OUT_RESET, /* injected TCP reset, nothing written */
};

/* A reply held back by the latency timer (or a reset, which is always
 * deferred to the next loop turn so evhttp is never freed under its own
 * read callback). Owned by the mock's pending list; <req> is owned by evhttp
 * until a reply is sent or until it is detached from its connection (client
 * gone), in which case we free it. */
struct pending {
    struct pending *prev, *next;
    struct mock *m;
    struct evhttp_request *req;
    struct evhttp_connection *evcon; /* the connection <req> arrived on */
    struct event *timer;
    enum outcome outcome;
};

/* Uniform in [0, 1): a rate of 1.0 therefore always fires, 0.0 never. */
static double uniform01(uint64_t *s)
{
    return (double)(mock_splitmix64(s) >> 11) * 0x1.0p-53;
}

/* The value of the one <name> header of <req>; NULL if absent or repeated. */
static const char *single_header(struct evhttp_request *req, const char *name)
{
    struct evkeyval *kv;
    const char *found = NULL;

    TAILQ_FOREACH(kv, evhttp_request_get_input_headers(req), next)
    {
        if (evutil_ascii_strcasecmp(kv->key, name) != 0)
            continue;
        if (found)
            return NULL;
        found = kv->value;
    }
    return found;
}

static void pending_drop(struct mock *m, struct pending *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        m->pending = p->next;
    if (p->next)
        p->next->prev = p->prev;
    event_free(p->timer);
    free(p);
}

/* Drops the connection of <req> with a TCP RST and without writing a byte.
 *
 * evhttp_connection_free() calls shutdown(SHUT_WR) before closing, which
 * would send a FIN and turn the reset into a clean EOF. So the socket is
 * closed first, with SO_LINGER {1, 0}, by dup3()-ing a fresh unconnected
 * socket over its descriptor: the kernel sends the RST, and evhttp later
 * shuts down and closes the harmless placeholder. */
static void reset_connection(struct mock *m, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;

    mock_access_log(m, req, "RESET");
    if (fd >= 0) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        int placeholder;

        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        placeholder = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (placeholder >= 0) {
            dup3(placeholder, fd, O_CLOEXEC);
            close(placeholder);
        }
    }
    evhttp_connection_free(evcon); /* frees <req> too */
}

static void finish(struct mock *m, struct evhttp_request *req, enum outcome o)
{
    switch (o) {
    case OUT_RESET:
        reset_connection(m, req);
        break;
    case OUT_ERROR:
        mock_send_error(m, req, E500);
        break;
    case OUT_REPLY:
        mock_serve_opale(m, req);
        break;
    }
}

static void on_pending_timer(evutil_socket_t fd, short what, void *arg)
{
    struct pending *p = arg;
    struct mock *m = p->m;
    struct evhttp_request *req = p->req;
    enum outcome o = p->outcome;

    pending_drop(m, p);
    if (!evhttp_request_get_connection(req)) {
        /* client gone and evhttp detached the request: it is ours to free */
        evhttp_request_free(req);
        return;
    }
    finish(m, req, o);
}

/* evhttp calls this when a connection goes away: on client close (after it
 * detached the in-flight request, which becomes ours), on our own reset, and
 * at shutdown (request still attached; evhttp frees it). Cancel whatever
 * reply is pending on that connection. */
static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    struct mock *m = arg;
    struct pending *p = m->pending, *next;

    for (; p; p = next) {
        next = p->next;
        if (p->evcon != evcon)
            continue;
        if (!evhttp_request_get_connection(p->req)) {
            mock_access_log(m, p->req, "client closed before reply");
            evhttp_request_free(p->req);
        }
        pending_drop(m, p);
    }
}

static int defer(struct mock *m, struct evhttp_request *req, enum outcome o, long delay_ms)
{
    struct pending *p = calloc(1, sizeof(*p));
    struct timeval tv = {.tv_sec = delay_ms / 1000, .tv_usec = (delay_ms % 1000) * 1000};

    if (!p)
        return -1;
    p->m = m;
    p->req = req;
    p->evcon = evhttp_request_get_connection(req);
    p->outcome = o;
    p->timer = evtimer_new(m->base, on_pending_timer, p);
    if (!p->timer || evtimer_add(p->timer, &tv) != 0) {
        if (p->timer)
            event_free(p->timer);
        free(p);
        return -1;
    }
    p->next = m->pending;
    if (p->next)
        p->next->prev = p;
    m->pending = p;
    return 0;
}

void mock_on_request(struct evhttp_request *req, void *arg)
{
    struct mock *m = arg;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    enum outcome o = OUT_REPLY;
    double u_reset, u_error;

    /* TCP_NODELAY: set on the listener, which Linux copies to every
     * accepted socket (main.c) */
    if (evcon)
        evhttp_connection_set_closecb(evcon, on_conn_close, m);
    if (!path)
        path = "";
    if (strncmp(path, "/__mock/", 8) == 0) {
        mock_serve_control(m, req, path + 8);
        return;
    }

    if (m->v.jwks_path) {
        /* Checked first: a refused request is not counted as served, draws
         * nothing from the fault PRNG and is answered at once. */
        struct mock_assertion_req ar = {
            .token = single_header(req, "X-JWT-Assertion"),
            .request_id = single_header(req, "X-Request-ID"),
            .consumer_id = single_header(req, "X-Consumer-Id"),
            .mac = single_header(req, "X-Gateway-Request-MAC"),
            .method = mock_method_name(evhttp_request_get_command(req)),
            .target = evhttp_request_get_uri(req),
        };
        const char *why;
        json_t *claims = mock_assertion_verify(&m->v, &ar, time(NULL), &why);
        if (!claims) {
            m->assertion_refused++;
            if (why == MOCK_WHY_REPLAY) {
                m->assertion_replayed++;
                mock_send_error_note(m, req, E409_REPLAY, why);
            } else {
                mock_send_error_note(m, req, E401_ASSERTION, why);
            }
            return;
        }
        mock_record(m, req, path, claims);
        if (m->v.mac_key && m->last.set) /* the grant, and the MAC of this very request */
            m->last.mac_verified = true;
    } else {
        mock_record(m, req, path, NULL);
    }
    /* Two draws per request whatever the rates, so that the outcome of the
     * n-th request depends only on the seed, n and the rates. */
    u_reset = uniform01(&m->rng);
    u_error = uniform01(&m->rng);
    if (u_reset < m->fault.reset_rate)
        o = OUT_RESET;
    else if (u_error < m->fault.error_rate)
        o = OUT_ERROR;
    /* the request id is consumed once it is answered (a reset answers
     * nothing: the gateway may retry the request with the same headers) */
    if (m->v.mac_key && o != OUT_RESET &&
        mock_verifier_served(&m->v, single_header(req, "X-Request-ID"), time(NULL)) != 0)
        o = OUT_ERROR;

    if (m->fault.latency_ms == 0 && o != OUT_RESET) {
        finish(m, req, o);
        return;
    }
    /* A reset is deferred even without latency: freeing the connection from
     * inside evhttp's own read callback is not something to rely on. */
    if (defer(m, req, o, m->fault.latency_ms) != 0) {
        if (o == OUT_RESET)
            o = OUT_ERROR; /* cannot defer: answer rather than hang */
        finish(m, req, o);
    }
}

/* Called by evhttp for each accepted connection, before the first request:
 * the one place where every TCP connection can be counted. */
struct bufferevent *mock_on_new_conn(struct event_base *base, void *arg)
{
    struct mock *m = arg;

    m->connections++;
    return bufferevent_socket_new(base, -1, 0);
}

void mock_pending_free_all(struct mock *m)
{
    while (m->pending) {
        struct pending *p = m->pending;
        if (!evhttp_request_get_connection(p->req))
            evhttp_request_free(p->req);
        pending_drop(m, p);
    }
}
