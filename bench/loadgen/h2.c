/*
 * opale-loadgen: --h2, HTTP/2 over TLS (ALPN "h2") through nghttp2's client
 * API. One slot is one HTTP/2 connection with one stream in flight at a
 * time, like one HTTP/1.1 keep-alive connection: the same scheduling (closed
 * loop, --rate), the same counters, so that S2-h2 compares with S2 (the
 * cost of the protocol, not of more concurrency).
 *
 * The request of each --path is the HTTP/1.1 one of request.c, rewritten
 * once into HTTP/2 fields: the request line into :method/:path, Host into
 * :authority, the names lowercased, Connection dropped.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <nghttp2/nghttp2.h>

#include "loadgen.h"

/* The fields of one --path, built once (lg_h2_build). */
struct h2req {
    nghttp2_nv nv[MAX_HEADERS + 8];
    size_t n;
};
static struct h2req g_req[MAX_PATHS];

struct lg_h2 {
    nghttp2_session *ng;
    int32_t stream; /* the stream in flight, 0: none */
    int status;     /* its :status */
    char corr[36];  /* its X-Correlation-ID */
    int goaway;     /* the server sent a GOAWAY: reopen after this answer */
};

static nghttp2_nv mknv(const char *name, size_t nl, const char *value, size_t vl)
{
    nghttp2_nv nv = {(uint8_t *)name, (uint8_t *)value, nl, vl, NGHTTP2_NV_FLAG_NONE};
    return nv;
}

/* Splits request.c's "GET path HTTP/1.1\r\nName: value\r\n..." (kept for the
 * run: the fields point into it, the names lowercased in place). */
void lg_h2_build(void)
{
    for (int i = 0; i < lg_opt.npaths; i++) {
        struct h2req *r = &g_req[i];
        char *s = lg_req[i];
        char *sp = strchr(s, ' ');
        char *sp2 = sp ? strchr(sp + 1, ' ') : NULL;
        char *eol = strstr(s, "\r\n");
        if (!sp || !sp2 || !eol)
            lg_die("--h2: cannot rewrite request %d", i);
        r->n = 0;
        r->nv[r->n++] = mknv(":method", 7, s, (size_t)(sp - s));
        r->nv[r->n++] = mknv(":scheme", 7, "https", 5);
        r->nv[r->n++] = mknv(":path", 5, sp + 1, (size_t)(sp2 - sp - 1));
        char *line = eol + 2;
        while (*line && strncmp(line, "\r\n", 2) != 0 && r->n < MAX_HEADERS + 7) {
            char *end = strstr(line, "\r\n");
            char *colon = memchr(line, ':', (size_t)(end - line));
            if (!end || !colon)
                lg_die("--h2: cannot rewrite request %d", i);
            size_t nl = (size_t)(colon - line);
            for (size_t k = 0; k < nl; k++)
                if (line[k] >= 'A' && line[k] <= 'Z')
                    line[k] = (char)(line[k] - 'A' + 'a');
            char *v = colon + 1;
            while (*v == ' ')
                v++;
            size_t vl = (size_t)(end - v);
            if (nl == 4 && memcmp(line, "host", 4) == 0)
                r->nv[r->n++] = mknv(":authority", 10, v, vl);
            else if (!(nl == 10 && memcmp(line, "connection", 10) == 0))
                r->nv[r->n++] = mknv(line, nl, v, vl);
            line = end + 2;
        }
    }
}

static ssize_t send_cb(nghttp2_session *ng, const uint8_t *data, size_t len, int flags, void *ud)
{
    struct conn *c = ud;
    if (bufferevent_write(c->bev, data, len) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return (ssize_t)len;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
    struct conn *c = ud;
    if (f->hd.type == NGHTTP2_HEADERS && f->hd.stream_id == c->h2->stream && nl == 7 &&
        memcmp(name, ":status", 7) == 0 && vl == 3)
        c->h2->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
    return 0;
}

static int on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                   void *ud)
{
    struct conn *c = ud;
    c->w->st.bytes_in += len;
    return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct conn *c = ud;
    if (f->hd.type == NGHTTP2_GOAWAY)
        c->h2->goaway = 1;
    return 0;
}

/* The stream in flight ended: an answer (END_STREAM) or a reset. */
static int on_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
    struct conn *c = ud;
    if (id != c->h2->stream)
        return 0;
    c->h2->stream = 0;
    if (code != NGHTTP2_NO_ERROR || c->h2->status < 100 || c->h2->status > 599) {
        lg_report_first(E_PARSE, "HTTP/2 stream reset (error %u) or no :status", code);
        c->h2->status = -1;
        return 0;
    }
    return 0;
}

int lg_h2_start(struct conn *c)
{
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
    const unsigned char *alpn = NULL;
    unsigned alen = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alen);
    if (alen != 2 || memcmp(alpn, "h2", 2) != 0) {
        lg_report_first(E_TLS, "--h2: the server did not select ALPN h2");
        return -1;
    }
    c->h2 = calloc(1, sizeof(*c->h2));
    if (c->h2 == NULL)
        return -1;
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb) != 0)
        return -1;
    nghttp2_session_callbacks_set_send_callback(cb, send_cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
    int rv = nghttp2_session_client_new(&c->h2->ng, cb, c);
    nghttp2_session_callbacks_del(cb);
    if (rv != 0)
        return -1;
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
    if (nghttp2_submit_settings(c->h2->ng, NGHTTP2_FLAG_NONE, iv, 1) != 0 ||
        nghttp2_session_send(c->h2->ng) != 0)
        return -1;
    return 0;
}

void lg_h2_free(struct conn *c)
{
    if (c->h2 == NULL)
        return;
    nghttp2_session_del(c->h2->ng);
    free(c->h2);
    c->h2 = NULL;
}

int lg_h2_send(struct conn *c, unsigned pi)
{
    struct lg_h2 *h = c->h2;
    struct h2req *r = &g_req[pi];
    nghttp2_nv nv[MAX_HEADERS + 9];
    memcpy(nv, r->nv, r->n * sizeof(nv[0]));
    size_t n = r->n;
    if (lg_opt.correlation_id) {
        lg_uuid_v4(c->w->rng, h->corr);
        nv[n++] = mknv("x-correlation-id", 16, h->corr, 36);
    }
    h->status = 0;
    h->stream = nghttp2_submit_request(h->ng, NULL, nv, n, NULL, NULL);
    if (h->stream < 0 || nghttp2_session_send(h->ng) != 0) {
        h->stream = 0;
        return -1;
    }
    return 0;
}

int lg_h2_read(struct conn *c, struct evbuffer *in, int *status, int *close)
{
    struct lg_h2 *h = c->h2;
    int32_t inflight = h->stream;
    while (evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        ssize_t rv = nghttp2_session_mem_recv(h->ng, v.iov_base, v.iov_len);
        if (rv < 0) {
            lg_report_first(E_PARSE, "HTTP/2: %s", nghttp2_strerror((int)rv));
            return -1;
        }
        evbuffer_drain(in, v.iov_len);
    }
    if (nghttp2_session_send(h->ng) != 0)
        return -1;
    if (inflight == 0 || h->stream != 0)
        return 0; /* nothing was waiting, or still waiting */
    if (h->status < 0)
        return -1;
    *status = h->status;
    *close = h->goaway;
    return 1;
}
