/*
 * HTTP/2 connections (core/h2.c): the nghttp2 session of a client connection
 * whose TLS handshake selected ALPN "h2". conn.c keeps the transport (the
 * bufferevent, the timer, the connection's life) and hands its events here;
 * each stream becomes a gw_http_request (lib/h2map.h, then the strict
 * HTTP/1.1 parser) dispatched by the request module exactly like an
 * HTTP/1.1 request, and its response goes back on the stream.
 *
 * The known HTTP/2 denial-of-service classes are bounded per connection
 * (listeners[].http2 in docs/configuration.md, docs/security.md): each ends
 * the connection with a GOAWAY and its error code, is counted
 * (opale_h2_abuse_total{kind}) and raises an "h2.abuse" security event.
 *
 * Ownership: the connection owns its session; the session owns its streams;
 * a stream owns its request until the stream closes (gw_request_finish or
 * gw_request_abort). No nghttp2 callback ever frees the connection: the
 * functions below return 1 when conn.c must free it.
 */
#ifndef GW_CORE_H2_H
#define GW_CORE_H2_H

#include <stddef.h>

#include "core/conn.h"

typedef struct gw_h2_session gw_h2_session;
typedef struct gw_h2_stream gw_h2_stream;

/* The kinds of abuse counted (gw_stats.h2_abuse), by index. */
typedef enum {
    GW_H2_RAPID_RESET = 0,
    GW_H2_CONTINUATION_FLOOD,
    GW_H2_HEADER_LIST,
    GW_H2_CONTROL_FLOOD,
    GW_H2_EMPTY_FRAMES,
    GW_H2_TOO_MANY_STREAMS,
    GW_H2_ZERO_WINDOW,
    GW_H2_ABUSE__COUNT
} gw_h2_abuse;
/* "rapid_reset", ... (metric label and the event's "kind"). */
const char *gw_h2_abuse_name(gw_h2_abuse k);

/* The handshake selected h2: start the session (our SETTINGS are queued).
 * Returns 0, or -1 (conn.c frees the connection). */
int gw_h2_start(gw_conn *c);
/* Bytes arrived / the output drained / the connection's timer fired.
 * Return 1 when the session is over: conn.c then frees the session
 * (gw_h2_free) and either closes at once (gw_h2_failed) or, everything
 * written, half-closes and discards input for a while, so that the client
 * reads the last frames (a GOAWAY) rather than a reset. */
int gw_h2_input(gw_conn *c);
int gw_h2_output(gw_conn *c);
int gw_h2_timer(gw_conn *c);
/* Drain (SIGTERM, SIGQUIT): a graceful GOAWAY; the streams in flight are
 * answered, then the connection closes. */
void gw_h2_drain(gw_conn *c);
/* 1 when the session ended on an error (nothing more to write). */
int gw_h2_failed(const gw_conn *c);
/* A fatal error of the connection (an allocation failed in the request
 * module): the session ends at the next loop pass. */
void gw_h2_fail(gw_conn *c);
/* The connection is being freed: every open stream's request is journalled
 * (gw_request_abort), then the session is freed. */
void gw_h2_free(gw_conn *c);

/* request.c: the response of the request on <s>, as HTTP/1.1 bytes
 * (malloc'd, taken), goes out on the stream. */
void gw_h2_send(gw_conn *c, gw_h2_stream *s, char *bytes, size_t len);

#endif
