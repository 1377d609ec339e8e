/*
 * Client connections: TLS handshake, strict HTTP/1.1 reading, one request at
 * a time (pipelined requests wait in the input buffer and are answered in
 * order), forwarding, the response, the journal record. A connection whose
 * handshake selected ALPN "h2" is handed to its HTTP/2 session (core/h2.c,
 * state H2): this file then only carries its events there.
 *
 * States and the one timer each arms:
 *   HANDSHAKE  timeouts.handshake_ms  -> close
 *   IDLE       timeouts.keepalive_ms  -> close (silently)
 *   HEAD       timeouts.header_ms     -> 408 + close (from the first byte)
 *   BODY       timeouts.body_ms       -> 408 + close
 *   BUSY       none (the upstream call has its own timeouts)
 *   WRITING    timeouts.send_ms       -> close
 *   LINGER     2 s of discarding input after our FIN, so that the client
 *              reads a final error response instead of a reset
 *
 * Ownership: the worker owns its connections (list w->conns); a connection
 * owns its current request; a request owns its pending upstream call, which
 * conn_free() cancels, so no callback ever sees a freed request.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

#include "core/bev.h"
#include "core/conn.h"
#include "core/h2.h"
#include "core/outcome.h"
#include "core/request.h"
#include "lib/proxyv2.h"
#include "core/tls.h"
#include "lib/util.h"

#define GW_LINGER_MS 2000

static void conn_free(gw_conn *c);
static void process_input(gw_conn *c);
static void readcb(struct bufferevent *bev, void *arg);
static void writecb(struct bufferevent *bev, void *arg);
static void eventcb(struct bufferevent *bev, short what, void *arg);

static void hs_release(gw_conn *c)
{
    if (c->hs_slot) {
        gw_worker_hs_leave(c->w, c->proxied ? c->pp->family : c->peer_family,
                           c->proxied ? c->pp->addr : c->peer_addr);
        c->hs_slot = 0;
    }
}

static gw_stats *stats(gw_conn *c)
{
    return c->w->stats;
}

static void arm(gw_conn *c, unsigned ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

/* The HTTP/1.1 parser exists only while a request is being read or answered:
 * taken at the first byte after IDLE, given back when the connection goes
 * IDLE with nothing buffered. An idle keep-alive connection then holds no
 * parser (about 350 bytes; the bench's S5 holds 10,000 of them), for one
 * calloc and one free per request. */
static int parser_take(gw_conn *c)
{
    const gw_conf *conf = c->w->srv->conf;
    gw_http_limits lim = {
        .max_header_bytes = conf->limits.max_header_bytes,
        .max_headers = conf->limits.max_headers,
        .max_body_bytes = conf->limits.max_body_bytes,
    };
    c->parser = gw_http_parser_new(0, &lim);
    if (c->parser == NULL)
        return -1;
    gw_http_parser_set_body_limit_cb(c->parser, gw_request_body_limit, c);
    return 0;
}

static void parser_release(gw_conn *c)
{
    gw_http_parser_free(c->parser);
    c->parser = NULL;
}

/*
 * Dormant connections. An HTTP/1.1 connection idle for timeouts.dormant_ms
 * (default 1 s; 0: never) gives
 * back its bufferevent (the struct and its two evbuffers, about 1 KiB with
 * the allocator's overhead) and keeps only what its TLS session needs: the
 * SSL (one reference, taken from the bufferevent), the socket, and its timer
 * turned into a read event that times out when the keep-alive ends
 * (persistent, deleted by the wake-up once the new bufferevent reads). Its first byte (or the
 * client's FIN) builds a new bufferevent over the same SSL, already open, and the timer is a timer
 * again. A partner's connections mostly wait between calls: this is the memory an idle connection
 * costs (the bench's S5 holds 10,000 of them).
 *
 * The bufferevent is freed from the timer, never from one of its own
 * callbacks, so libevent holds no other reference to it: its destructor runs
 * in this loop pass, before any read event can fire. It closes the socket
 * it finds on the SSL's BIO: the BIO is detached first (SSL_set_bio NULL),
 * and the SSL it frees is the reference the bufferevent owned.
 */
static void wakecb(evutil_socket_t fd, short what, void *arg);
static void timercb(evutil_socket_t fd, short what, void *arg);

static void arm_idle(gw_conn *c)
{
    unsigned ka = c->w->srv->conf->timeouts.keepalive_ms;
    c->state = CS_IDLE;
    c->idle_until = gw_now_ms() + ka;
    unsigned dm = c->w->srv->conf->timeouts.dormant_ms;
    arm(c, dm != 0 && dm < ka ? dm : ka);
}

/* From the timer, <left_ms> before the keep-alive ends. Returns 1 when the
 * connection is dormant, 0 when it stays as it is: not quite idle, or the
 * read event could not be added (the caller re-arms the timer). */
static int go_dormant(gw_conn *c, unsigned left_ms)
{
    struct bufferevent *bev = c->bev;
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    evutil_socket_t fd = bufferevent_getfd(bev);
    if (ssl == NULL || fd < 0 || c->h2 != NULL || c->peer_eof || c->parser != NULL ||
        SSL_has_pending(ssl) || !SSL_want_nothing(ssl) ||
        evbuffer_get_length(bufferevent_get_input(bev)) > 0 ||
        evbuffer_get_length(bufferevent_get_output(bev)) > 0)
        return 0; /* not quite idle: stays as it is */
    if (SSL_up_ref(ssl) != 1)
        return 0;
    /* The timer (not pending: it is running) waits for the socket now. It is
     * added before the bufferevent's read event goes, so that the socket
     * stays registered with epoll all along: libevent's changelist turns a
     * delete then an add of EV_READ on one socket in one loop pass into an
     * epoll_ctl(MOD) that changes nothing. Persistent, so that it stays
     * registered until the new bufferevent's read event is (wakecb). */
    event_assign(c->timer, c->w->base, fd, EV_READ | EV_PERSIST, wakecb, c);
    struct timeval tv = {left_ms / 1000, (left_ms % 1000) * 1000};
    if (event_add(c->timer, &tv) < 0) {
        event_assign(c->timer, c->w->base, -1, 0, timercb, c);
        SSL_free(ssl); /* the reference just taken */
        return 0;      /* stays as it is (the caller re-arms the timer) */
    }
    SSL_set_bio(ssl, NULL, NULL); /* frees the socket BIO (BIO_NOCLOSE) */
    bufferevent_free(bev);        /* its SSL_free() drops its reference */
    c->bev = NULL;
    c->dormant_ssl = ssl;
    c->fd = fd; /* ours again until the next bufferevent */
    return 1;
}

/* The socket of a dormant connection is readable: a request, or the end. */
static void wakecb(evutil_socket_t fd, short what, void *arg)
{
    gw_conn *c = arg;
    if (what & EV_TIMEOUT) {
        conn_free(c); /* the keep-alive is over (conn_free deletes the timer) */
        return;
    }
    c->bev = bufferevent_openssl_socket_new(c->w->base, c->fd, c->dormant_ssl, BUFFEREVENT_SSL_OPEN,
                                            BEV_OPT_CLOSE_ON_FREE);
    c->dormant_ssl = NULL; /* the bufferevent's now, or freed by libevent if it failed */
    if (c->bev == NULL) {
        conn_free(c);
        return;
    }
    c->fd = -1;
    bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    bufferevent_setcb(c->bev, readcb, writecb, eventcb, c);
    /* EV_READ only: bufferevent_openssl adds its EV_WRITE event whenever
     * writing is enabled, output empty or not, which cost an epoll_ctl to add
     * EPOLLOUT, a loop round trip to learn the socket writable with nothing
     * to write, and an epoll_ctl to remove it per wake-up. Writing is enabled
     * with the response (gw_conn_send), as on a connection that never slept;
     * OpenSSL's own writes while reading (read blocked on write) do not
     * depend on it. */
    bufferevent_enable(c->bev, EV_READ);
    /* only now the dormant read event goes (persistent: still pending): the
     * socket never left epoll's set, no epoll_ctl (go_dormant) */
    event_del(c->timer);
    event_assign(c->timer, c->w->base, -1, 0, timercb, c);
    gw_bev_read_now(c->bev); /* readable: read now, not after another epoll_wait() */
}

/* ---- what the request module hands back ---- */

static void free_sent(const void *data, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    gw_blk_put((void *)data); /* gw_forward_response's: the next one's */
}

void gw_conn_send(gw_conn *c, char *bytes, size_t len)
{
    c->state = CS_WRITING;
    arm(c, c->w->srv->conf->timeouts.send_ms);
    bufferevent_enable(c->bev, EV_WRITE);
    /* the output references <bytes> (freed once sent, or with the
     * bufferevent): no copy of the response into the buffer's own chain */
    if (evbuffer_add_reference(bufferevent_get_output(c->bev), bytes, len, free_sent, NULL) < 0) {
        free(bytes);
        c->close_after = 1;
    } else {
        gw_bev_write_now(c->bev);
    }
}

void gw_conn_fail(gw_conn *c)
{
    if (c->h2 != NULL)
        gw_h2_fail(c); /* maybe inside an nghttp2 callback: not now */
    else
        conn_free(c);
}

/* A complete request: the connection is busy until its response is sent. */
static void dispatch(gw_conn *c, gw_http_request *http)
{
    c->state = CS_BUSY;
    evtimer_del(c->timer);
    if (!http->keep_alive || c->w->draining)
        c->close_after = 1;
    gw_request_dispatch(c, http);
}

static void process_input(gw_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    const gw_conf *conf = c->w->srv->conf;
    if (c->state == CS_LINGER) {
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    if (c->state != CS_IDLE && c->state != CS_HEAD && c->state != CS_BODY) {
        /* a pipelined request waits for the current one to be answered */
        if (evbuffer_get_length(in) > conf->limits.max_pipeline_bytes)
            bufferevent_disable(c->bev, EV_READ);
        return;
    }
    while (evbuffer_get_length(in) > 0) {
        if (c->parser == NULL && parser_take(c) < 0) {
            conn_free(c);
            return;
        }
        if (c->state == CS_IDLE) {
            c->state = CS_HEAD;
            c->t_first_byte = gw_now_ms();
            c->bytes_in = 0;
            arm(c, c->peer_eof ? 0 : conf->timeouts.header_ms);
        }
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        size_t consumed = 0;
        gw_http_status st = gw_http_parser_feed(c->parser, v.iov_base, v.iov_len, &consumed);
        if (st == GW_HTTP_ERROR) {
            const char *reason = NULL;
            int status = gw_http_parser_error(c->parser, &reason);
            c->bytes_in += (long)evbuffer_get_length(in);
            evbuffer_drain(in, evbuffer_get_length(in));
            gw_request_error(c, gw_request_parse_error_id(status), reason, 1);
            return;
        }
        if (st == GW_HTTP_COMPLETE) {
            evbuffer_drain(in, consumed);
            c->bytes_in += (long)consumed;
            gw_http_request *http = gw_http_parser_take_request(c->parser);
            if (http == NULL) {
                gw_request_error(c, GW_ERR_INTERNAL, NULL, 1);
                return;
            }
            dispatch(c, http);
            return;
        }
        evbuffer_drain(in, v.iov_len);
        c->bytes_in += (long)v.iov_len;
        if (c->state == CS_HEAD && gw_http_parser_head_done(c->parser)) {
            c->state = CS_BODY;
            arm(c, c->peer_eof ? 0 : conf->timeouts.body_ms);
        }
    }
}

/* Half-close and discard what the client still sends, so that it reads our
 * final response (or GOAWAY) rather than a reset. */
static void linger(gw_conn *c)
{
    c->state = CS_LINGER;
    shutdown(bufferevent_getfd(c->bev), SHUT_WR);
    evbuffer_drain(bufferevent_get_input(c->bev),
                   evbuffer_get_length(bufferevent_get_input(c->bev)));
    bufferevent_enable(c->bev, EV_READ);
    arm(c, GW_LINGER_MS);
}

/* The HTTP/2 session is over (gw_h2_* returned 1). */
static void h2_end(gw_conn *c)
{
    int hard = gw_h2_failed(c);
    gw_h2_free(c);
    if (hard)
        conn_free(c);
    else
        linger(c);
}

/* The response is on the wire: journal it, then either close, or wait for
 * the next request (which may already be buffered). */
static void finish_request(gw_conn *c)
{
    gw_request *q = c->req;
    c->req = NULL;
    if (q != NULL)
        gw_request_finish(c, q);
    c->t_first_byte = 0;
    c->bytes_in = 0;
    if (c->close_after) {
        linger(c);
        return;
    }
    arm_idle(c);
    gw_evbuffer_release(bufferevent_get_input(c->bev));
    bufferevent_enable(c->bev, EV_READ);
    gw_bev_read_pending(c->bev); /* records left while reading was disabled */
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        process_input(c); /* a pipelined request: the parser is reused */
    else
        parser_release(c);
}

/* ---- libevent callbacks ---- */

static void readcb(struct bufferevent *bev, void *arg)
{
    gw_conn *c = arg;
    /* another record read ahead: read it next (before the input is handled,
     * which may free the connection and with it the bufferevent's events) */
    gw_bev_read_pending(bev);
    if (c->h2 != NULL) {
        if (gw_h2_input(c))
            h2_end(c);
        return;
    }
    process_input(c);
}

static void writecb(struct bufferevent *bev, void *arg)
{
    gw_conn *c = arg;
    if (c->h2 != NULL) {
        if (gw_h2_output(c))
            h2_end(c);
        return;
    }
    if (c->state == CS_WRITING && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        finish_request(c);
}

/* Whether the client sent no TLS byte at all: a TCP connect-and-close or an
 * idle socket (a load balancer's TCP check, a readiness probe). A PROXY
 * header read before TLS does not count, the TLS read BIO never saw it. */
static int tls_silent(gw_conn *c)
{
    SSL *ssl = c->bev != NULL ? bufferevent_openssl_get_ssl(c->bev) : NULL;
    BIO *rbio = ssl != NULL ? SSL_get_rbio(ssl) : NULL;
    return rbio == NULL || BIO_number_read(rbio) == 0;
}

/* A handshake that did not complete. A port probe (no TLS byte) is only
 * counted (tcp_probes): no journal record, no security event, not a
 * handshake failure. Anything else is a refusal: journalled with its
 * reason, counted, and reported to the detectors (auth.failures). */
static void handshake_refused(gw_conn *c, unsigned long ssl_err)
{
    if (tls_silent(c)) {
        gw_stat_add(&stats(c)->tcp_probes, 1);
        return;
    }
    gw_outcome_refused(c, gw_tls_refusal_reason(&c->peer, ssl_err), 1);
}

/* 1 when the peer sent a FIN and nothing worse: the socket is in CLOSE_WAIT.
 * libevent reports a reset as an end of input too (dirty shutdowns are
 * allowed), but a reset client is gone: its request is not served. */
static int peer_half_closed(evutil_socket_t fd)
{
    struct tcp_info ti;
    socklen_t tl = sizeof(ti);
    memset(&ti, 0, sizeof(ti));
    return fd >= 0 && getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0 &&
           ti.tcpi_state == TCP_CLOSE_WAIT;
}

static void eventcb(struct bufferevent *bev, short what, void *arg)
{
    gw_conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        SSL *ssl = bufferevent_openssl_get_ssl(bev);
        hs_release(c);
        /* A client may half-close after its request with a bare FIN: read
         * as the end of its input (HTTP frames the request), not as a fatal
         * error that would forbid the response (OpenSSL 3 sends a
         * decode_error alert and refuses to write otherwise). */
        SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
        gw_tls_peer_complete(ssl, &c->peer);
        gw_outcome_handshake_done(c);
        const unsigned char *alpn = NULL;
        unsigned alen = 0;
        SSL_get0_alpn_selected(ssl, &alpn, &alen);
        if (alen == 2 && memcmp(alpn, "h2", 2) == 0) {
            if (gw_h2_start(c) < 0)
                conn_free(c);
            else if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
                readcb(bev, c); /* the preface came with the handshake's end */
            else
                gw_bev_read_pending(bev); /* or is read ahead, not decrypted yet */
            return;
        }
        arm_idle(c);
        gw_bev_read_pending(bev); /* a request sent with the client's Finished */
        return;
    }
    if (c->state == CS_HANDSHAKE) {
        unsigned long e = bufferevent_get_openssl_error(bev);
        handshake_refused(c, e);
        while (bufferevent_get_openssl_error(bev) != 0)
            ;
        ERR_clear_error();
        conn_free(c);
        return;
    }
    while (bufferevent_get_openssl_error(bev) != 0)
        ;
    ERR_clear_error();
    /* HTTP/2 frames its own end: a client gone is gone (its streams are
     * journalled by gw_h2_free) */
    if ((what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING) && c->state != CS_LINGER &&
        c->h2 == NULL && peer_half_closed(bufferevent_getfd(bev))) {
        /* The client half-closed (close_notify or a bare FIN): a request it
         * sent completely is still answered, then the connection closes.
         * The bytes of the last read may reach the input buffer after this
         * event, so what is buffered is parsed from the timer (at once). */
        c->peer_eof = 1;
        c->close_after = 1;
        bufferevent_disable(bev, EV_READ);
        if (c->state != CS_BUSY && c->state != CS_WRITING)
            arm(c, 0);
        return;
    }
    conn_free(c);
}

static void timercb(evutil_socket_t fd, short what, void *arg)
{
    gw_conn *c = arg;
    if (c->h2 != NULL) {
        if (gw_h2_timer(c))
            h2_end(c);
        return;
    }
    if (c->peer_eof && (c->state == CS_IDLE || c->state == CS_HEAD || c->state == CS_BODY)) {
        /* after a half-close: a complete request buffered is served, an
         * incomplete one never will be */
        c->in_input = 1;
        process_input(c); /* may end the connection (an allocation failure) */
        c->in_input = 0;
        if (c->free_pending || c->state == CS_IDLE || c->state == CS_HEAD || c->state == CS_BODY)
            conn_free(c);
        return;
    }
    switch (c->state) {
    case CS_HEAD:
    case CS_BODY:
        bufferevent_disable(c->bev, EV_READ);
        gw_request_error(c, GW_ERR_REQUEST_TIMEOUT, NULL, 1);
        break;
    case CS_HANDSHAKE:
        /* silent until handshake_ms: a probe; a stalled handshake: a refusal */
        handshake_refused(c, 0);
        conn_free(c);
        break;
    case CS_IDLE: {
        /* timeouts.dormant_ms without a byte: dormant until the keep-alive ends */
        uint64_t now = gw_now_ms();
        if (now >= c->idle_until) {
            conn_free(c);
            break;
        }
        unsigned left = (unsigned)(c->idle_until - now);
        if (c->w->srv->conf->timeouts.dormant_ms == 0 || go_dormant(c, left) == 0)
            arm(c, left);
        break;
    }
    default:
        conn_free(c);
        break;
    }
}

static void conn_free(gw_conn *c)
{
    if (c->in_input) {
        /* timercb still holds <c>: it frees it once process_input() returns */
        c->free_pending = 1;
        return;
    }
    gw_worker *w = c->w;
    if (c->req != NULL) {
        /* The request ends without its response on the wire (the client
         * left, or the drain deadline passed): it is still journalled. */
        gw_request *q = c->req;
        c->req = NULL;
        gw_request_abort(c, q);
    }
    gw_h2_free(c); /* journals the requests of its open streams */
    hs_release(c);
    event_del(c->timer); /* in <c>'s allocation */
    if (c->pp != NULL) {
        if (c->pp->ev != NULL)
            event_free(c->pp->ev);
        free(c->pp->buf);
    }
    SSL_free(c->dormant_ssl);
    if (c->bev != NULL)
        bufferevent_free(c->bev);
    else if (c->fd >= 0)
        evutil_closesocket(c->fd);
    gw_http_parser_free(c->parser);
    gw_tls_peer_clear(&c->peer);
    TAILQ_REMOVE(&w->conns, c, link);
    w->nconns--;
    gw_stat_add(&w->stats->connections_open, (unsigned long)-1);
    free(c);
    gw_worker_conn_closed(w);
}

/* Hand the socket to OpenSSL; the handshake starts at once. */
static void start_tls(gw_conn *c)
{
    /* One source may hold only so many handshakes on this worker: the
     * handshake slots (max_connections) are everyone's. */
    if (!gw_worker_hs_enter(c->w, c->proxied ? c->pp->family : c->peer_family,
                            c->proxied ? c->pp->addr : c->peer_addr,
                            c->lis->conf->max_handshakes_per_source)) {
        gw_stat_add(&stats(c)->handshakes_refused_per_source, 1);
        conn_free(c);
        return;
    }
    c->hs_slot = 1;
    SSL *ssl = SSL_new(c->lis->ctx);
    if (ssl == NULL) {
        conn_free(c);
        return;
    }
    gw_tls_attach_peer(ssl, &c->peer);
    c->bev = bufferevent_openssl_socket_new(c->w->base, c->fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                            BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        /* With BEV_OPT_CLOSE_ON_FREE, libevent frees the SSL itself when it
         * fails (tests/unit/core/test_sslbev.c); the socket stays ours. */
        conn_free(c);
        return;
    }
    c->fd = -1; /* owned by the bufferevent now */
    c->state = CS_HANDSHAKE;
    bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    bufferevent_setcb(c->bev, readcb, writecb, eventcb, c);
    /* reading only: writing is enabled with the response (core/bev.h) */
    gw_bev_accept_reading_only(c->bev);
}

static void proxy_refused(gw_conn *c, const char *reason)
{
    gw_outcome_refused(c, reason, 0);
    conn_free(c);
}

/*
 * PROXY protocol v2, read from the raw socket before TLS, exactly as many
 * bytes as the header needs so that no TLS byte is consumed; the bytes are
 * judged by gateway/lib/proxyv2.c. Every refusal is journalled and counted
 * as proxy.bad_header (the parser's finer reason is not a journal reason).
 */
static void proxy_readcb(evutil_socket_t fd, short what, void *arg)
{
    gw_conn *c = arg;
    gw_pp2_result pp;
    gw_conn_pp *cp = c->pp;
    gw_pp2_status st = gw_pp2_parse(cp->buf, cp->len, &pp);
    if (st == GW_PP2_MORE) {
        ssize_t n = recv(fd, cp->buf + cp->len, pp.need - cp->len, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            conn_free(c);
            return;
        }
        if (n < 0)
            return;
        cp->len = (unsigned short)(cp->len + (size_t)n); /* pp.need <= GW_PP2_MAX */
        st = gw_pp2_parse(cp->buf, cp->len, &pp);
    }
    if (st == GW_PP2_REFUSED) {
        proxy_refused(c, "proxy.bad_header");
        return;
    }
    if (st == GW_PP2_MORE)
        return;
    if (pp.proxied) {
        c->proxied = 1;
        cp->family = (unsigned char)pp.family;
        memcpy(cp->addr, pp.addr, sizeof(cp->addr));
        inet_ntop(cp->family, cp->addr, cp->ip, sizeof(cp->ip));
    }
    event_free(cp->ev);
    cp->ev = NULL;
    free(cp->buf); /* an idle connection keeps no PROXY buffer */
    cp->buf = NULL;
    start_tls(c);
}

void gw_conn_accept(gw_worker *w, const gw_listener_rt *l, evutil_socket_t fd, struct sockaddr *sa,
                    int salen)
{
    const gw_conf *conf = w->srv->conf;
    /* One allocation: the connection, its timer's struct event (the
     * size libevent gives at run time), and on a PROXY listener its
     * gw_conn_pp; each part at a 16-byte boundary. An idle connection
     * saves the timer's own chunk, and every one not behind a PROXY
     * listener the room of its fields (S5). */
    size_t ev_at = (sizeof(gw_conn) + 15) & ~(size_t)15;
    size_t pp_at = (ev_at + event_get_struct_event_size() + 15) & ~(size_t)15;
    size_t len = l->conf->proxy_protocol ? pp_at + sizeof(gw_conn_pp) : pp_at;
    gw_conn *c = calloc(1, len);
    if (c == NULL) {
        evutil_closesocket(fd);
        return;
    }
    c->timer = (struct event *)(void *)((char *)c + ev_at);
    if (l->conf->proxy_protocol)
        c->pp = (gw_conn_pp *)(void *)((char *)c + pp_at);
    c->w = w;
    c->lis = l;
    c->state = CS_HANDSHAKE;
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a->sin_addr, c->client_ip, sizeof(c->client_ip));
        c->client_port = ntohs(a->sin_port);
        c->peer_family = AF_INET;
        memcpy(c->peer_addr, &a->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
            inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], c->client_ip, sizeof(c->client_ip));
            c->peer_family = AF_INET;
            memcpy(c->peer_addr, &a->sin6_addr.s6_addr[12], 4);
        } else {
            inet_ntop(AF_INET6, &a->sin6_addr, c->client_ip, sizeof(c->client_ip));
            c->peer_family = AF_INET6;
            memcpy(c->peer_addr, &a->sin6_addr, 16);
        }
        c->client_port = ntohs(a->sin6_port);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
    if (evtimer_assign(c->timer, w->base, timercb, c) < 0) {
        free(c);
        evutil_closesocket(fd);
        return;
    }
    TAILQ_INSERT_TAIL(&w->conns, c, link);
    w->nconns++;
    gw_stat_add(&w->stats->connections_accepted, 1);
    gw_stat_add(&w->stats->connections_open, 1);
    arm(c, conf->timeouts.handshake_ms);
    if (l->conf->proxy_protocol) {
        /* Only a trusted proxy may speak first with a PROXY header. */
        if (!gw_request_trusted_peer(c)) {
            proxy_refused(c, "proxy.untrusted_peer");
            return;
        }
        c->state = CS_PROXY;
        c->pp->buf = malloc(GW_PP2_MAX);
        c->pp->ev = c->pp->buf != NULL
                        ? event_new(w->base, fd, EV_READ | EV_PERSIST, proxy_readcb, c)
                        : NULL;
        if (c->pp->ev == NULL || event_add(c->pp->ev, NULL) < 0) {
            conn_free(c);
            return;
        }
        return;
    }
    start_tls(c);
}

void gw_conn_drain_all(gw_worker *w)
{
    gw_conn *c = TAILQ_FIRST(&w->conns);
    while (c != NULL) {
        gw_conn *next = TAILQ_NEXT(c, link);
        if (c->state == CS_PROXY || c->state == CS_HANDSHAKE || c->state == CS_IDLE)
            conn_free(c);
        else if (c->h2 != NULL)
            gw_h2_drain(c);
        else
            c->close_after = 1;
        c = next;
    }
}

void gw_conn_close_all(gw_worker *w)
{
    gw_conn *c;
    while ((c = TAILQ_FIRST(&w->conns)) != NULL)
        conn_free(c);
}
