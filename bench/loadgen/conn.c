/*
 * opale-loadgen: one connection: non-blocking TCP connect, TLS handshake
 * (bufferevent_openssl), request written, response read, errors and their
 * first description on stderr.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "loadgen.h"

const char *const lg_err_name[E_N] = {"connect", "tls", "closed", "parse", "timeout"};

static atomic_int g_reported[E_N]; /* first error of each kind described on stderr */

void lg_report_first(enum err_kind k, const char *fmt, ...)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&g_reported[k], &expected, 1))
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, LG_NAME ": first %s error: %s\n", lg_err_name[k], msg);
}

void lg_publish(struct worker *w)
{
    uint64_t e = 0;
    for (int i = 0; i < E_N; i++)
        e += w->st.err[i];
    atomic_store_explicit(&w->pub_completed, w->st.completed + w->st.warm_completed,
                          memory_order_relaxed);
    atomic_store_explicit(&w->pub_errors, e, memory_order_relaxed);
}

void lg_arm_timer(struct conn *c, uint64_t delay_ns)
{
    struct timeval tv = lg_ns_to_tv(delay_ns);
    event_add(c->timer, &tv);
}

void lg_conn_close(struct conn *c)
{
    lg_h2_free(c);
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    if (c->tcp_ev) {
        event_free(c->tcp_ev);
        c->tcp_ev = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    c->state = CS_DOWN;
    c->inflight = 0;
    c->responses_here = 0;
}

void lg_conn_fail(struct conn *c, enum err_kind kind)
{
    struct worker *w = c->w;
    int never_answered = c->responses_here == 0;
    if (kind != E_NONE)
        w->st.err[kind]++;
    if (c->busy) {
        c->busy = 0;
        w->busy--;
        if (!c->warm)
            w->st.failed++;
    }
    lg_conn_close(c);
    lg_publish(w);
    if (lg_opt.hold > 0) {
        lg_hold_settled(c); /* --hold: never reopened */
        return;
    }
    if (w->stopping)
        return;
    if (kind != E_NONE && never_answered) {
        /* Refused, TLS failure, timeout before any answer: try again after a
         * pause instead of spinning on a dead target. */
        c->backoff_until = lg_now_ns() + BACKOFF_NS;
        lg_arm_timer(c, BACKOFF_NS);
    } else {
        lg_reopen_or_next(c);
    }
    lg_check_done(w);
}

void lg_send_request(struct conn *c)
{
    struct worker *w = c->w;
    unsigned pi = lg_opt.npaths > 1 ? w->path_next++ % (unsigned)lg_opt.npaths : 0;
    if (lg_opt.h2) {
        c->inflight = 1;
        c->t_sent = lg_now_ns();
        w->st.sent += !c->warm;
        if (lg_h2_send(c, pi) != 0) {
            lg_report_first(E_CLOSED, "cannot send the HTTP/2 request");
            lg_conn_fail(c, E_CLOSED);
        }
        return;
    }
    char *b = w->scratch;
    size_t n = lg_req_len[pi];
    memcpy(b, lg_req[pi], n);
    n += lg_partner_headers(c->gid, b + n);
    if (lg_opt.correlation_id) {
        memcpy(b + n, "X-Correlation-ID: ", 18);
        n += 18;
        lg_uuid_v4(w->rng, b + n);
        n += 36;
        b[n++] = '\r';
        b[n++] = '\n';
    }
    b[n++] = '\r';
    b[n++] = '\n';
    lg_rp_reset(&c->rp);
    c->inflight = 1;
    c->t_sent = lg_now_ns();
    w->st.sent += !c->warm;
    /* Write at once rather than through the bufferevent's output, which
     * waits for a write event (two epoll_ctl and a loop iteration per
     * request). What the socket does not take goes to the output, and
     * libevent finishes the job (and reports any error through on_event). */
    size_t done = 0;
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        if (lg_opt.url.tls) {
            SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
            ERR_clear_error();
            int r = SSL_write(ssl, b, (int)n);
            if (r > 0)
                done = (size_t)r;
            ERR_clear_error();
        } else {
            ssize_t r = send(bufferevent_getfd(c->bev), b, n, MSG_NOSIGNAL);
            if (r > 0)
                done = (size_t)r;
        }
    }
    if (done < n) {
        if (bufferevent_write(c->bev, b + done, n - done) != 0) {
            lg_report_first(E_CLOSED, "cannot queue the request (out of memory)");
            lg_conn_fail(c, E_CLOSED);
            return;
        }
        if (!lg_opt.url.tls)
            bufferevent_enable(c->bev, EV_WRITE);
    }
}

/* Plain HTTP: the output is drained, stop watching for writability. */
static void on_write(struct bufferevent *bev, void *arg)
{
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        bufferevent_disable(bev, EV_WRITE);
}

static void conn_ready(struct conn *c)
{
    struct worker *w = c->w;
    uint64_t now = lg_now_ns();
    c->state = CS_READY;
    w->st.conn_established++;
    if (lg_opt.url.tls) {
        w->st.handshakes++;
        if (w->running && now >= lg_mstart)
            w->st.handshakes_run++;
    }
    lg_h_add(&w->st.conn, (now - c->t_connect) / 1000);
    if (lg_opt.h2 && lg_h2_start(c) != 0) {
        lg_conn_fail(c, E_TLS);
        return;
    }
    if (lg_opt.hold > 0) {
        /* --hold: one request on the new connection, then it stays idle. */
        if (!w->running && !c->phase_seen && !c->busy) {
            c->busy = 1;
            w->busy++;
            w->st.claimed++;
            c->t_origin = now;
            lg_send_request(c);
        }
        return;
    }
    if (!w->running) {
        /* Connect phase: over once every connection has been up once. */
        if (!c->phase_seen) {
            c->phase_seen = 1;
            lg_setup_done(w);
        }
        return;
    }
    if (c->busy)
        lg_send_request(c);
    else
        lg_slot_next(c);
}

static void response_done(struct conn *c, int status, int close);

static void read_input(struct bufferevent *bev, struct conn *c);

/* Records left in OpenSSL's read-ahead buffer (tls.c): the read callback
 * again, in this loop iteration, as if the socket were readable. */
static void read_pending(struct conn *c, struct bufferevent *bev)
{
    if (c->bev != bev || !lg_opt.url.tls || !(bufferevent_get_enabled(bev) & EV_READ))
        return; /* the connection was closed (or replaced) meanwhile */
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    if (ssl != NULL && SSL_has_pending(ssl))
        event_active(&bev->ev_read, EV_READ, 1);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    read_input(bev, c);
    read_pending(c, bev);
}

static void read_input(struct bufferevent *bev, struct conn *c)
{
    struct worker *w = c->w;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (lg_opt.h2) {
        int status = 0, close = 0;
        int r = c->h2 != NULL ? lg_h2_read(c, in, &status, &close) : 0;
        if (r < 0)
            lg_conn_fail(c, E_PARSE);
        else if (r > 0)
            response_done(c, status, close);
        return;
    }
    if (!c->inflight) {
        if (evbuffer_get_length(in) == 0)
            return;
        lg_report_first(E_PARSE, "data from the server with no request outstanding");
        lg_conn_fail(c, E_PARSE);
        return;
    }
    uint64_t before = c->rp.consumed;
    int r = lg_rp_feed(&c->rp, in);
    w->st.bytes_in += c->rp.consumed - before;
    if (r == 0)
        return;
    if (r < 0) {
        lg_report_first(E_PARSE, "%s", c->rp.error ? c->rp.error : "malformed response");
        lg_conn_fail(c, E_PARSE);
        return;
    }
    if (evbuffer_get_length(in) > 0) {
        lg_report_first(E_PARSE, "data after the end of a response (no pipelining here)");
        lg_conn_fail(c, E_PARSE);
        return;
    }
    response_done(c, c->rp.status, c->rp.close);
}

/* A whole response (<status>; <close>: the server ends the connection). */
static void response_done(struct conn *c, int status, int close)
{
    struct worker *w = c->w;
    uint64_t now = lg_now_ns();
    if (c->warm) {
        w->st.warm_completed++; /* --warmup: reported apart, in no figure of the run */
        lg_h_add(&w->st.warm_lat, (now - c->t_origin) / 1000);
    } else {
        lg_h_add(&w->st.lat, (now - c->t_origin) / 1000);
        w->st.completed++;
        w->st.status[status / 100]++;
    }
    c->responses_here++;
    c->inflight = 0;
    c->busy = 0;
    w->busy--;
    lg_publish(w);
    if (lg_opt.hold > 0) {
        if (close) {
            w->st.server_closes++;
            lg_conn_close(c);
        }
        lg_hold_settled(c);
    } else if (close || lg_opt.new_conn) {
        if (close)
            w->st.server_closes++;
        lg_conn_close(c);
        lg_reopen_or_next(c);
    } else {
        lg_slot_next(c);
    }
    lg_check_done(w);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    struct worker *w = c->w;
    if (what & BEV_EVENT_CONNECTED) {
        conn_ready(c);
        return;
    }
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)))
        return;
    int sockerr = errno;
    /* libevent stores SSL_get_error()'s code (library 0: SSL_ERROR_SSL,
     * SSL_ERROR_SYSCALL...) and then the OpenSSL error queue. Only a real
     * OpenSSL error or SSL_ERROR_SSL is a TLS failure; SSL_ERROR_SYSCALL is
     * the socket closing or failing under TLS, judged like plain HTTP. */
    unsigned long ssl_err = 0, e;
    int protocol_error = 0;
    for (int i = 0; i < 64 && (e = bufferevent_get_openssl_error(bev)) != 0; i++) {
        if (ERR_GET_LIB(e) != 0) {
            if (!ssl_err)
                ssl_err = e;
        } else if (e == SSL_ERROR_SSL) {
            protocol_error = 1;
        }
    }
    ERR_clear_error();
    enum err_kind kind;
    char buf[256];
    if (ssl_err)
        ERR_error_string_n(ssl_err, buf, sizeof buf);
    else if (protocol_error)
        snprintf(buf, sizeof buf, "TLS protocol error");
    else if (what & BEV_EVENT_EOF)
        snprintf(buf, sizeof buf, "connection closed by the server%s",
                 c->state == CS_TLS ? " during the TLS handshake" : "");
    else
        snprintf(buf, sizeof buf, "%s%s", strerror(sockerr),
                 c->state == CS_TLS ? " during the TLS handshake" : "");
    if (c->state == CS_TLS || ssl_err || protocol_error) {
        kind = E_TLS;
    } else if (lg_opt.url.tls && c->responses_here == 0 && c->inflight) {
        /* In TLS 1.3 the server's verdict on the client certificate comes
         * after the client's handshake is over: a refusal often shows as a
         * close or a reset (the alert lost) at the first request. */
        kind = E_TLS;
        size_t n = strlen(buf);
        snprintf(buf + n, sizeof buf - n,
                 " before the first response (client certificate refused?)");
    } else if (c->inflight) {
        kind = E_CLOSED;
    } else {
        w->st.idle_closes++; /* the server closed an idle keep-alive connection */
        kind = E_NONE;
    }
    if (kind != E_NONE)
        lg_report_first(kind, "%s", buf);
    lg_conn_fail(c, kind);
}

static void on_tcp(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct worker *w = c->w;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    event_free(c->tcp_ev);
    c->tcp_ev = NULL;
    if (err) {
        lg_report_first(E_CONNECT, "%s", strerror(err));
        lg_conn_fail(c, E_CONNECT);
        return;
    }
    c->fd = -1; /* owned by the bufferevent from now on */
    if (lg_opt.url.tls) {
        SSL *ssl = SSL_new(lg_ctx);
        /* --h2 offers only h2 on the measured connections (the context's
         * http/1.1 stays for --token-url) */
        static const unsigned char alpn_h2[] = "\x02h2";
        if (ssl && lg_opt.h2 && SSL_set_alpn_protos(ssl, alpn_h2, sizeof alpn_h2 - 1) != 0) {
            SSL_free(ssl);
            ssl = NULL;
        }
        if (!ssl || !SSL_set_tlsext_host_name(ssl, lg_opt.sni) ||
            lg_partner_ssl(ssl, c->gid) != 0) {
            SSL_free(ssl);
            close(fd);
            lg_report_first(E_TLS, "SSL_new failed");
            lg_conn_fail(c, E_TLS);
            return;
        }
        c->bev = bufferevent_openssl_socket_new(w->base, fd, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                BEV_OPT_CLOSE_ON_FREE);
        if (!c->bev) {
            SSL_free(ssl);
            close(fd);
            lg_report_first(E_TLS, "bufferevent_openssl_socket_new failed");
            lg_conn_fail(c, E_TLS);
            return;
        }
        bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
        c->state = CS_TLS;
        bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    } else {
        c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
        if (!c->bev) {
            close(fd);
            lg_report_first(E_CONNECT, "bufferevent_socket_new failed");
            lg_conn_fail(c, E_CONNECT);
            return;
        }
        bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
        bufferevent_enable(c->bev, EV_READ);
        conn_ready(c);
    }
}

void lg_conn_open(struct conn *c)
{
    struct worker *w = c->w;
    const struct url *u = &lg_opt.url;
    if (c->state != CS_DOWN || w->stopping)
        return;
    c->t_connect = lg_now_ns();
    c->responses_here = 0;
    w->st.conn_attempts++;
    int fd = socket(u->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        lg_report_first(E_CONNECT, "socket: %s", strerror(errno));
        lg_conn_fail(c, E_CONNECT);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->state = CS_TCP;
    if (connect(fd, (const struct sockaddr *)&u->addr, u->addrlen) != 0 && errno != EINPROGRESS) {
        lg_report_first(E_CONNECT, "connect: %s", strerror(errno));
        lg_conn_fail(c, E_CONNECT);
        return;
    }
    c->tcp_ev = event_new(w->base, fd, EV_WRITE, on_tcp, c);
    if (!c->tcp_ev || event_add(c->tcp_ev, NULL) != 0) {
        lg_report_first(E_CONNECT, "event_new failed");
        lg_conn_fail(c, E_CONNECT);
    }
}
