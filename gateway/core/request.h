/*
 * The request module (core/request.c): what happens to one parsed request.
 * It dispatches: the gateway's own routes (/token, the JWKS) or a list of
 * stages (gateway/stages/) then the upstream; it answers through the
 * connection (gw_conn_send) and hands the finished request to the outcome
 * module. conn.c knows only this interface, not the stages.
 */
#ifndef GW_REQUEST_H
#define GW_REQUEST_H

#include "core/conn.h"
#include "lib/errors.h"
#include "lib/http1.h"

#include <stdint.h>

struct gw_h2_stream;

/* Take <http> (a complete request) and serve it: the connection is BUSY
 * until the response is handed to gw_conn_send(). */
void gw_request_dispatch(gw_conn *c, gw_http_request *http);
/* HTTP/2: take <http>, the complete request of stream <s> (its first byte
 * at <t0>, <bytes_in> on the wire), and serve it the same way; the response
 * goes to gw_h2_send(). Returns the request, owned by the stream until it
 * hands it to gw_request_finish/abort; NULL when it could not be created
 * (<http> is freed). */
gw_request *gw_request_dispatch_stream(gw_conn *c, struct gw_h2_stream *s, gw_http_request *http,
                                       uint64_t t0, long bytes_in);
/* HTTP/2: answer stream <s> with the DGFIP error <id> (a malformed or
 * refused request); returns its request as above, or NULL. */
gw_request *gw_request_stream_error(gw_conn *c, struct gw_h2_stream *s, gw_err_id id,
                                    const char *reason, uint64_t t0, long bytes_in);
/* The error of a request the HTTP/1.1 parser refused with <status>. */
gw_err_id gw_request_parse_error_id(int status);
/* Answer with the DGFIP error <id> (creating the request when none was
 * parsed: a parse error, a timeout). <close>: Connection: close. */
void gw_request_error(gw_conn *c, gw_err_id id, const char *reason, int close);
/* The response is on the wire: journal, events, metrics, then free. */
void gw_request_finish(gw_conn *c, gw_request *q);
/* The connection ends without the response on the wire (client gone, drain
 * deadline): the request is still journalled, then freed. */
void gw_request_abort(gw_conn *c, gw_request *q);
/* The body a request may carry (gw_http_parser_set_body_limit_cb). */
size_t gw_request_body_limit(void *conn, const gw_http_request *r);
/* 1 when the connection's peer may speak first with a PROXY header. */
int gw_request_trusted_peer(const gw_conn *c);

#endif
