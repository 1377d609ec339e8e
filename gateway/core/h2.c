/*
 * HTTP/2 connections: the nghttp2 session (server side, RFC 9113) of a
 * connection whose handshake selected ALPN "h2". See h2.h for the contract.
 *
 * A stream's life:
 *   HEADERS (+ CONTINUATION)  fields checked and rewritten by lib/h2map.c,
 *                             then the HTTP/1.1 head is fed to a parser of
 *                             its own (lib/http1.c, the body limit of the
 *                             route applied as on HTTP/1.1)
 *   DATA                      fed to that parser (Content-Length framing, or
 *                             chunked framing when no content-length came)
 *   END_STREAM                the request is complete: dispatched by the
 *                             request module (the stages, then the upstream
 *                             over HTTP/1.1) -- or it is answered at once
 *                             with its DGFIP error (400, 413, 431, 501, 408)
 *   response                  request.c's HTTP/1.1 bytes, split back into an
 *                             HTTP/2 HEADERS frame and DATA (gw_h2_send)
 *   stream closed             the request is journalled: finished when the
 *                             response's END_STREAM was sent, aborted
 *                             (client.closed, 499) otherwise
 *
 * Timers (the connection's one timer, armed at the nearest deadline):
 *   a header block or a body not complete within timeouts.header_ms /
 *   body_ms -> 408 on that stream; no stream for timeouts.keepalive_ms ->
 *   GOAWAY(NO_ERROR) and close; a response blocked by flow control for
 *   http2.stall_ms -> GOAWAY(ENHANCE_YOUR_CALM) (zero_window); after any
 *   GOAWAY that ends the connection, at most GW_H2_LINGER_MS to write it.
 *
 * nghttp2 runs with its HTTP messaging checks off: every rule on the fields
 * is ours (lib/h2map.c, then lib/http1.c), so that a malformed request is
 * answered with the documented error body and journalled, as over HTTP/1.1.
 * Frame-level violations stay nghttp2's (GOAWAY or RST_STREAM with
 * PROTOCOL_ERROR, FRAME_SIZE_ERROR, ...).
 */
#include "core/h2.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>
#include <nghttp2/nghttp2.h>

#include "core/bev.h"
#include "core/request.h"
#include "journal/events.h"
#include "lib/h2map.h"
#include "lib/util.h"

/* Output buffered in the bufferevent before nghttp2 is told to wait. */
#define GW_H2_OUT_HIGH (64 * 1024)
/* Time left to write a final GOAWAY before the socket is closed. */
#define GW_H2_LINGER_MS 1000

_Static_assert(GW_H2_ABUSE__COUNT == GW_H2_ABUSE_KINDS, "gw_stats.h2_abuse size");

static const char *const abuse_names[GW_H2_ABUSE__COUNT] = {
    [GW_H2_RAPID_RESET] = "rapid_reset",   [GW_H2_CONTINUATION_FLOOD] = "continuation_flood",
    [GW_H2_HEADER_LIST] = "header_list",   [GW_H2_CONTROL_FLOOD] = "control_flood",
    [GW_H2_EMPTY_FRAMES] = "empty_frames", [GW_H2_TOO_MANY_STREAMS] = "too_many_streams",
    [GW_H2_ZERO_WINDOW] = "zero_window",
};

const char *gw_h2_abuse_name(gw_h2_abuse k)
{
    return (unsigned)k < GW_H2_ABUSE__COUNT ? abuse_names[k] : NULL;
}

struct gw_h2_stream {
    gw_h2_stream *next, *prev;
    int32_t id;
    gw_h2map map;           /* the request's fields, until its head is built */
    gw_http_parser *parser; /* from the head on */
    int head_done;          /* further HEADERS are trailers (discarded) */
    int chunked;            /* the body is framed as chunked for the parser */
    int complete;           /* the parser has the whole message */
    int remote_closed;      /* END_STREAM received */
    int request_done;       /* dispatched, or answered with an error */
    size_t list_bytes;      /* decoded fields, name + value + 32 each */
    unsigned ncont;         /* CONTINUATION frames in the current header block */
    uint64_t t_first;
    uint64_t deadline_in; /* the head or the body must be complete by then; 0: none */
    long bytes_in;
    gw_request *q;
    char *resp; /* the response as HTTP/1.1 bytes, owned; the body points in it */
    const char *body;
    size_t body_len, body_off;
    int submitted, sent_all;
    uint64_t progress; /* the submit, or the last frame sent */
};

struct gw_h2_session {
    nghttp2_session *ng;
    gw_conn *c;
    const gw_conf_http2 *cf;
    gw_h2_stream *streams;
    size_t nstreams;
    struct event *flush_ev;
    int closing;  /* a GOAWAY that ends the connection is queued */
    int failed;   /* close at the next timer run */
    int deleting; /* gw_h2_free: no callback acts any more */
    int draining; /* a graceful GOAWAY was sent */
    uint64_t close_at;
    uint64_t idle_since; /* when the last stream closed (or the start) */
    uint64_t win_start;
    unsigned resets, controls, empties;
};

/* The worker's own counters (summed on scrape). */
static gw_stats *stats(gw_conn *c)
{
    return c->w->stats;
}

static void close_soon(gw_h2_session *h)
{
    h->failed = 1;
    struct timeval tv = {0, 0};
    evtimer_add(h->c->timer, &tv);
}

/* ---- abuse: count, report, GOAWAY ---- */

static const char *code_name(uint32_t code)
{
    switch (code) {
    case NGHTTP2_PROTOCOL_ERROR:
        return "PROTOCOL_ERROR";
    case NGHTTP2_ENHANCE_YOUR_CALM:
        return "ENHANCE_YOUR_CALM";
    default:
        return "INTERNAL_ERROR";
    }
}

/* End the connection for the abuse <k>: GOAWAY with <code>, the metric, a
 * "h2.abuse" security event. Once per connection. */
static void abuse(gw_h2_session *h, gw_h2_abuse k, uint32_t code)
{
    if (h->closing)
        return;
    gw_conn *c = h->c;
    h->closing = 1;
    h->close_at = gw_now_ms() + GW_H2_LINGER_MS;
    gw_stat_add(&stats(c)->h2_abuse[k], 1);
    nghttp2_session_terminate_session(h->ng, code);
    gw_events *ev = c->w->srv->events;
    if (ev != NULL) {
        json_t *f = json_pack("{s:s, s:s, s:s, s:s}", "kind", abuse_names[k], "error_code",
                              code_name(code), "client_ip", c->proxied ? c->pp->ip : c->client_ip,
                              "listener", c->lis->conf->name);
        if (f != NULL && c->peer.has_cert)
            json_object_set_new(f, "cert_sha256", json_string(c->peer.sha256));
        gw_events_integrity(ev, GW_EV_H2_ABUSE, f);
    }
}

/* The per-second windows of the flood counters. */
static void tick(gw_h2_session *h, uint64_t now)
{
    if (now - h->win_start >= 1000) {
        h->win_start = now;
        h->resets = h->controls = h->empties = 0;
    }
}

/* ---- streams ---- */

static gw_h2_stream *stream_of(gw_h2_session *h, int32_t id)
{
    return id > 0 ? nghttp2_session_get_stream_user_data(h->ng, id) : NULL;
}

static void stream_free(gw_h2_stream *s)
{
    gw_h2map_free(&s->map);
    gw_http_parser_free(s->parser);
    free(s->resp);
    free(s);
}

static void stream_unlink(gw_h2_session *h, gw_h2_stream *s)
{
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        h->streams = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    h->nstreams--;
    if (h->nstreams == 0)
        h->idle_since = gw_now_ms();
}

static void reset_stream(gw_h2_session *h, gw_h2_stream *s, uint32_t code)
{
    nghttp2_submit_rst_stream(h->ng, NGHTTP2_FLAG_NONE, s->id, code);
}

/* Answer the stream with the error <id> (its request is created here). */
static void refuse(gw_h2_session *h, gw_h2_stream *s, gw_err_id id, const char *reason)
{
    s->request_done = 1;
    s->deadline_in = 0;
    s->q = gw_request_stream_error(h->c, s, id, reason, s->t_first, s->bytes_in);
    if (s->q == NULL)
        reset_stream(h, s, NGHTTP2_INTERNAL_ERROR);
}

static void parse_refused(gw_h2_session *h, gw_h2_stream *s)
{
    const char *reason = NULL;
    int status = gw_http_parser_error(s->parser, &reason);
    refuse(h, s, gw_request_parse_error_id(status), reason);
}

/* Feed <n> bytes of the message to the stream's parser. Returns 0, or -1
 * when the stream was answered. */
static int feed(gw_h2_session *h, gw_h2_stream *s, const char *data, size_t n)
{
    if (n == 0)
        return 0;
    if (s->complete) {
        refuse(h, s, GW_ERR_BAD_REQUEST, "h2.content_length_mismatch");
        return -1;
    }
    size_t used = 0;
    gw_http_status st = gw_http_parser_feed(s->parser, data, n, &used);
    if (st == GW_HTTP_ERROR) {
        parse_refused(h, s);
        return -1;
    }
    if (st == GW_HTTP_COMPLETE) {
        s->complete = 1;
        if (used < n) {
            refuse(h, s, GW_ERR_BAD_REQUEST, "h2.content_length_mismatch");
            return -1;
        }
    }
    return 0;
}

/* The request's header block is complete. */
static void head_done(gw_h2_session *h, gw_h2_stream *s, int end_stream)
{
    gw_conn *c = h->c;
    const gw_conf *conf = c->w->srv->conf;
    s->head_done = 1;
    s->deadline_in = end_stream ? 0 : gw_now_ms() + conf->timeouts.body_ms;
    char *head = NULL;
    size_t hl = 0;
    s->chunked = !end_stream && !s->map.has_content_length;
    const char *reason = gw_h2map_head(&s->map, !end_stream, &head, &hl);
    gw_h2map_free(&s->map);
    if (reason != NULL) {
        int oom = strcmp(reason, "http.out_of_memory") == 0;
        refuse(h, s, oom ? GW_ERR_INTERNAL : GW_ERR_BAD_REQUEST, reason);
        return;
    }
    gw_http_limits lim = {
        .max_header_bytes = conf->limits.max_header_bytes,
        .max_headers = conf->limits.max_headers,
        .max_body_bytes = conf->limits.max_body_bytes,
    };
    s->parser = gw_http_parser_new(0, &lim);
    if (s->parser == NULL) {
        free(head);
        refuse(h, s, GW_ERR_INTERNAL, "http.out_of_memory");
        return;
    }
    gw_http_parser_set_body_limit_cb(s->parser, gw_request_body_limit, c);
    feed(h, s, head, hl);
    free(head);
}

static void body_data(gw_h2_session *h, gw_h2_stream *s, const uint8_t *data, size_t n)
{
    if (s->request_done || s->parser == NULL || n == 0)
        return;
    s->deadline_in = gw_now_ms() + h->c->w->srv->conf->timeouts.body_ms;
    if (s->chunked) {
        char hdr[20];
        size_t hn = gw_h2map_chunk(n, hdr);
        if (feed(h, s, hdr, hn) < 0 || feed(h, s, (const char *)data, n) < 0)
            return;
        feed(h, s, "\r\n", 2);
        return;
    }
    feed(h, s, (const char *)data, n);
}

/* END_STREAM: the request is complete (or its body is short). */
static void end_stream(gw_h2_session *h, gw_h2_stream *s)
{
    s->remote_closed = 1;
    if (s->request_done)
        return;
    if (s->parser == NULL) {
        refuse(h, s, GW_ERR_BAD_REQUEST, "h2.bad_pseudo_header");
        return;
    }
    if (s->chunked && !s->complete && feed(h, s, "0\r\n\r\n", 5) < 0)
        return;
    if (!s->complete) {
        refuse(h, s, GW_ERR_BAD_REQUEST, "h2.content_length_mismatch");
        return;
    }
    gw_http_request *http = gw_http_parser_take_request(s->parser);
    s->request_done = 1;
    s->deadline_in = 0;
    if (http == NULL) {
        refuse(h, s, GW_ERR_INTERNAL, NULL);
        return;
    }
    s->q = gw_request_dispatch_stream(h->c, s, http, s->t_first, s->bytes_in);
    if (s->q == NULL)
        reset_stream(h, s, NGHTTP2_INTERNAL_ERROR);
}

/* ---- nghttp2 callbacks ---- */

static ssize_t send_cb(nghttp2_session *ng, const uint8_t *data, size_t len, int flags, void *ud)
{
    gw_h2_session *h = ud;
    struct evbuffer *out = bufferevent_get_output(h->c->bev);
    if (evbuffer_get_length(out) >= GW_H2_OUT_HIGH)
        return NGHTTP2_ERR_WOULDBLOCK;
    if (evbuffer_add(out, data, len) < 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return (ssize_t)len;
}

static int on_begin_frame(nghttp2_session *ng, const nghttp2_frame_hd *hd, void *ud)
{
    gw_h2_session *h = ud;
    uint64_t now = gw_now_ms();
    tick(h, now);
    gw_h2_stream *s = stream_of(h, hd->stream_id);
    int end = (hd->flags & NGHTTP2_FLAG_END_STREAM) != 0;
    switch (hd->type) {
    case NGHTTP2_DATA:
        if (hd->length == 0 && !end)
            h->empties++;
        break;
    case NGHTTP2_HEADERS:
        if (hd->length == 0 && !end)
            h->empties++;
        if (s != NULL)
            s->ncont = 0; /* trailers: a new header block */
        break;
    case NGHTTP2_CONTINUATION:
        if (hd->length == 0)
            h->empties++;
        if (s != NULL && ++s->ncont > h->cf->max_continuation_frames) {
            abuse(h, GW_H2_CONTINUATION_FLOOD, NGHTTP2_ENHANCE_YOUR_CALM);
            return 0;
        }
        break;
    case NGHTTP2_SETTINGS:
    case NGHTTP2_PING:
        if (!(hd->flags & NGHTTP2_FLAG_ACK))
            h->controls++;
        break;
    case NGHTTP2_PRIORITY:
        h->controls++;
        break;
    case NGHTTP2_RST_STREAM:
        h->resets++;
        break;
    default:
        break;
    }
    if (s != NULL)
        s->bytes_in += 9 + (long)hd->length;
    if (h->resets > h->cf->max_resets_per_s)
        abuse(h, GW_H2_RAPID_RESET, NGHTTP2_ENHANCE_YOUR_CALM);
    else if (h->controls > h->cf->max_control_frames_per_s)
        abuse(h, GW_H2_CONTROL_FLOOD, NGHTTP2_ENHANCE_YOUR_CALM);
    else if (h->empties > h->cf->max_empty_frames_per_s)
        abuse(h, GW_H2_EMPTY_FRAMES, NGHTTP2_ENHANCE_YOUR_CALM);
    return 0;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
    gw_h2_session *h = ud;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST ||
        h->closing)
        return 0;
    gw_h2_stream *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM INTERNAL_ERROR */
    s->id = frame->hd.stream_id;
    s->t_first = gw_now_ms();
    s->deadline_in = s->t_first + h->c->w->srv->conf->timeouts.header_ms;
    s->bytes_in = 9 + (long)frame->hd.length;
    s->next = h->streams;
    if (h->streams != NULL)
        h->streams->prev = s;
    h->streams = s;
    h->nstreams++;
    nghttp2_session_set_stream_user_data(ng, s->id, s);
    gw_stat_add(&stats(h->c)->h2_streams, 1);
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    gw_h2_session *h = ud;
    gw_h2_stream *s = stream_of(h, frame->hd.stream_id);
    if (s == NULL || h->closing)
        return 0;
    s->list_bytes += namelen + valuelen + 32;
    if (s->list_bytes > h->cf->max_header_list_bytes) {
        abuse(h, GW_H2_HEADER_LIST, NGHTTP2_ENHANCE_YOUR_CALM);
        return 0;
    }
    if (s->head_done)
        return 0; /* trailers are discarded, as over HTTP/1.1 */
    gw_h2map_field(&s->map, (const char *)name, namelen, (const char *)value, valuelen);
    return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
    gw_h2_session *h = ud;
    if (h->closing)
        return 0;
    gw_h2_stream *s = stream_of(h, frame->hd.stream_id);
    if (s == NULL)
        return 0;
    int end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (frame->hd.type == NGHTTP2_HEADERS && !s->head_done &&
        (frame->hd.flags & NGHTTP2_FLAG_END_HEADERS))
        head_done(h, s, end);
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) && end)
        end_stream(h, s);
    return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud)
{
    gw_h2_session *h = ud;
    gw_h2_stream *s = stream_of(h, id);
    if (s != NULL && !h->closing)
        body_data(h, s, data, len);
    return 0;
}

static int on_invalid_frame(nghttp2_session *ng, const nghttp2_frame *frame, int lib_error,
                            void *ud)
{
    gw_h2_session *h = ud;
    /* nghttp2 refuses a stream beyond SETTINGS_MAX_CONCURRENT_STREAMS
     * (REFUSED_STREAM before our SETTINGS are acknowledged, a connection
     * PROTOCOL_ERROR after): either way the connection ends here */
    if (frame->hd.type == NGHTTP2_HEADERS &&
        (lib_error == NGHTTP2_ERR_PROTO || lib_error == NGHTTP2_ERR_REFUSED_STREAM) &&
        h->nstreams >= h->cf->max_concurrent_streams)
        abuse(h, GW_H2_TOO_MANY_STREAMS, NGHTTP2_PROTOCOL_ERROR);
    return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
    gw_h2_session *h = ud;
    gw_h2_stream *s = stream_of(h, frame->hd.stream_id);
    if (s == NULL || (frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS))
        return 0;
    s->progress = gw_now_ms();
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        s->sent_all = 1;
        /* answered before the client finished its request (an early
         * refusal): it need not send the rest (RFC 9113 8.1) */
        if (!s->remote_closed)
            reset_stream(h, s, NGHTTP2_NO_ERROR);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
    gw_h2_session *h = ud;
    gw_h2_stream *s = stream_of(h, id);
    if (s == NULL || h->deleting)
        return 0;
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    stream_unlink(h, s);
    gw_request *q = s->q;
    s->q = NULL;
    if (q != NULL) {
        if (s->sent_all)
            gw_request_finish(h->c, q);
        else
            gw_request_abort(h->c, q);
    }
    stream_free(s);
    return 0;
}

static ssize_t read_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                         uint32_t *data_flags, nghttp2_data_source *src, void *ud)
{
    gw_h2_stream *s = src->ptr;
    size_t n = s->body_len - s->body_off;
    if (n > len)
        n = len;
    memcpy(buf, s->body + s->body_off, n);
    s->body_off += n;
    if (s->body_off == s->body_len)
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* ---- sending, closing, timers ---- */

static int should_close(gw_h2_session *h)
{
    if (h->failed)
        return 1;
    return !nghttp2_session_want_read(h->ng) && !nghttp2_session_want_write(h->ng) &&
           evbuffer_get_length(bufferevent_get_output(h->c->bev)) == 0;
}

static void flush(gw_h2_session *h)
{
    if (h->failed)
        return;
    if (nghttp2_session_send(h->ng) != 0)
        h->failed = 1;
    if (evbuffer_get_length(bufferevent_get_output(h->c->bev)) > 0) {
        bufferevent_enable(h->c->bev, EV_WRITE);
        gw_bev_write_now(h->c->bev);
    }
}

static void rearm(gw_h2_session *h)
{
    gw_conn *c = h->c;
    const gw_conf *conf = c->w->srv->conf;
    uint64_t now = gw_now_ms(), at = UINT64_MAX;
    if (h->closing)
        at = h->close_at;
    else if (h->nstreams == 0 && !h->draining)
        at = h->idle_since + conf->timeouts.keepalive_ms;
    for (gw_h2_stream *s = h->streams; s != NULL; s = s->next) {
        if (s->deadline_in != 0 && s->deadline_in < at)
            at = s->deadline_in;
        if (s->submitted && !s->sent_all && s->progress + h->cf->stall_ms < at)
            at = s->progress + h->cf->stall_ms;
    }
    if (at == UINT64_MAX) {
        evtimer_del(c->timer);
        return;
    }
    uint64_t ms = at > now ? at - now : 0;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(c->timer, &tv);
}

/* After any event: send what is queued, then close or re-arm. */
static int settle(gw_h2_session *h)
{
    flush(h);
    if (should_close(h))
        return 1;
    rearm(h);
    return 0;
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    gw_h2_session *h = arg;
    if (settle(h))
        close_soon(h);
}

void gw_h2_send(gw_conn *c, gw_h2_stream *s, char *bytes, size_t len)
{
    gw_h2_session *h = c->h2;
    gw_h2_field f[GW_H2MAP_MAX_RESP_FIELDS];
    int status = 0;
    const char *body = NULL;
    size_t body_len = 0;
    int n = gw_h2map_response(bytes, len, &status, f, GW_H2MAP_MAX_RESP_FIELDS, &body, &body_len);
    if (n < 0 || s->submitted) {
        free(bytes);
        reset_stream(h, s, NGHTTP2_INTERNAL_ERROR);
        event_active(h->flush_ev, EV_TIMEOUT, 0);
        return;
    }
    char st[4];
    st[0] = (char)('0' + status / 100);
    st[1] = (char)('0' + status / 10 % 10);
    st[2] = (char)('0' + status % 10);
    st[3] = '\0';
    nghttp2_nv nv[GW_H2MAP_MAX_RESP_FIELDS + 1];
    nv[0] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)st, 7, 3, NGHTTP2_NV_FLAG_NONE};
    for (int i = 0; i < n; i++)
        nv[i + 1] = (nghttp2_nv){(uint8_t *)f[i].name, (uint8_t *)f[i].value, f[i].name_len,
                                 f[i].value_len, NGHTTP2_NV_FLAG_NONE};
    free(s->resp);
    s->resp = bytes;
    s->body = body;
    s->body_len = body_len;
    s->body_off = 0;
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = read_body};
    s->submitted = 1;
    s->progress = gw_now_ms();
    if (nghttp2_submit_response(h->ng, s->id, nv, (size_t)n + 1, body_len > 0 ? &prd : NULL) != 0)
        reset_stream(h, s, NGHTTP2_INTERNAL_ERROR);
    /* sent from the loop, never from inside the request module's call */
    event_active(h->flush_ev, EV_TIMEOUT, 0);
}

int gw_h2_start(gw_conn *c)
{
    const gw_conf_http2 *cf = &c->lis->conf->http2;
    gw_h2_session *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return -1;
    h->c = c;
    h->cf = cf;
    h->idle_since = h->win_start = gw_now_ms();
    nghttp2_session_callbacks *cb = NULL;
    nghttp2_option *opt = NULL;
    int rv = -1;
    if (nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0)
        goto out;
    nghttp2_session_callbacks_set_send_callback(cb, send_cb);
    nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb, on_invalid_frame);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    /* every rule on the fields is ours (h2map, then the HTTP/1.1 parser) */
    nghttp2_option_set_no_http_messaging(opt, 1);
    /* nghttp2's own bounds stay as a backstop behind ours */
    nghttp2_option_set_max_continuations(opt, cf->max_continuation_frames + 1);
    nghttp2_option_set_stream_reset_rate_limit(opt, (uint64_t)cf->max_resets_per_s * 2,
                                               cf->max_resets_per_s);
    if (nghttp2_session_server_new2(&h->ng, cb, h, opt) != 0)
        goto out;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, cf->max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, cf->initial_window_bytes},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, cf->max_header_list_bytes},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    };
    if (nghttp2_submit_settings(h->ng, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) != 0)
        goto out;
    h->flush_ev = event_new(c->w->base, -1, 0, flush_cb, h);
    if (h->flush_ev == NULL)
        goto out;
    c->h2 = h;
    c->state = CS_H2;
    gw_stat_add(&stats(c)->h2_connections, 1);
    rv = settle(h) ? -1 : 0;
    if (rv < 0) {
        gw_h2_free(c);
        h = NULL;
    }
out:
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
    if (rv < 0 && h != NULL) {
        if (h->ng != NULL)
            nghttp2_session_del(h->ng);
        free(h);
    }
    return rv;
}

int gw_h2_input(gw_conn *c)
{
    gw_h2_session *h = c->h2;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (!h->failed && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        ssize_t rv = nghttp2_session_mem_recv(h->ng, v.iov_base, v.iov_len);
        if (rv < 0) {
            /* a bad preface, an allocation failure, a flood nghttp2 caught */
            h->failed = 1;
            break;
        }
        evbuffer_drain(in, v.iov_len);
    }
    if (h->closing || h->failed)
        evbuffer_drain(in, evbuffer_get_length(in));
    return settle(h);
}

int gw_h2_output(gw_conn *c)
{
    return settle(c->h2);
}

int gw_h2_timer(gw_conn *c)
{
    gw_h2_session *h = c->h2;
    uint64_t now = gw_now_ms();
    if (h->failed || (h->closing && now >= h->close_at))
        return 1;
    const gw_conf *conf = c->w->srv->conf;
    for (gw_h2_stream *s = h->streams; s != NULL && !h->closing; s = s->next) {
        if (s->deadline_in != 0 && now >= s->deadline_in && !s->request_done)
            refuse(h, s, GW_ERR_REQUEST_TIMEOUT, NULL);
        else if (s->submitted && !s->sent_all && now >= s->progress + h->cf->stall_ms)
            abuse(h, GW_H2_ZERO_WINDOW, NGHTTP2_ENHANCE_YOUR_CALM);
    }
    if (!h->closing && !h->draining && h->nstreams == 0 &&
        now >= h->idle_since + conf->timeouts.keepalive_ms) {
        /* idle: a graceful end, then close once it is written */
        nghttp2_session_terminate_session(h->ng, NGHTTP2_NO_ERROR);
        h->closing = 1;
        h->close_at = now + GW_H2_LINGER_MS;
    }
    return settle(h);
}

void gw_h2_drain(gw_conn *c)
{
    gw_h2_session *h = c->h2;
    if (h == NULL || h->closing || h->draining)
        return;
    h->draining = 1;
    nghttp2_submit_goaway(h->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h->ng),
                          NGHTTP2_NO_ERROR, NULL, 0);
    event_active(h->flush_ev, EV_TIMEOUT, 0);
}

int gw_h2_failed(const gw_conn *c)
{
    return c->h2 == NULL || c->h2->failed;
}

void gw_h2_fail(gw_conn *c)
{
    close_soon(c->h2);
}

void gw_h2_free(gw_conn *c)
{
    gw_h2_session *h = c->h2;
    if (h == NULL)
        return;
    h->deleting = 1;
    gw_h2_stream *s;
    while ((s = h->streams) != NULL) {
        stream_unlink(h, s);
        gw_request *q = s->q;
        s->q = NULL;
        if (q != NULL)
            gw_request_abort(c, q);
        stream_free(s);
    }
    nghttp2_session_del(h->ng);
    if (h->flush_ev != NULL)
        event_free(h->flush_ev);
    free(h);
    c->h2 = NULL;
}
