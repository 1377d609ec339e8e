/*
 * Internal to core/request.c and core/outcome.c: the state of one request.
 * The request module fills it; the outcome module reads it when the
 * request ends. conn.c never includes this header.
 */
#ifndef GW_REQSTATE_H
#define GW_REQSTATE_H

#include "core/conn.h"
#include "core/proxy.h"
#include "stages/stages.h"

/* The gateway's own routes, by kind (found by path, named in the journal
 * and the metrics by this table: request.c). */
typedef enum { GW_LOCAL_NONE = 0, GW_LOCAL_TOKEN, GW_LOCAL_JWKS } gw_local_kind;
/* "token", "jwks"; NULL for GW_LOCAL_NONE. */
const char *gw_local_name(gw_local_kind k);

struct gw_request {
    gw_conn *conn;
    struct gw_h2_stream *stream; /* HTTP/2: the stream it came on; NULL: HTTP/1.1 */
    int responded;               /* HTTP/2: its response was handed to the stream */
    gw_http_request *http;
    char request_id[37];
    char correlation_id[37]; /* a valid X-Correlation-ID, echoed (gw_correlation_read) */
    int has_corr;
    gw_local_kind local; /* one of the gateway's own routes */
    uint64_t t0;
    gw_proxy_call *call;
    int status;
    gw_err_id err;
    const char *reason;
    char upstream_addr[64];
    int upstream_status;
    long upstream_ms;
    gw_proxy_attempt attempts[GW_PROXY_MAX_ATTEMPTS]; /* strings are constants */
    size_t nattempts;
    long bytes_in;
    long bytes_out;
    char token_jti[37]; /* of a token issued by /token */
    gw_access a;        /* the stages' request state: view, results, reply */
};

/* outcome.c: the request ended (its response on the wire, or not): its
 * security events, its journal record, its metrics. */
void gw_outcome_request(gw_conn *c, gw_request *q);

#endif
