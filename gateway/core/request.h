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

/* Take <http> (a complete request) and serve it: the connection is BUSY
 * until the response is handed to gw_conn_send(). */
void gw_request_dispatch(gw_conn *c, gw_http_request *http);
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
