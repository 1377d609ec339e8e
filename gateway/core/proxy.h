/*
 * Upstream side: a keep-alive connection pool per upstream and per worker,
 * request sending, response parsing (llhttp, response mode) and the upstream
 * failure model (502 down/reset/invalid, 504 timeout). An upstream connection
 * that saw any error is discarded, never returned to the pool.
 *
 * Ownership: a gw_proxy_call belongs to the caller until its callback runs or
 * gw_proxy_cancel() is called, whichever comes first; after either, the caller
 * must not touch it. The callback is never invoked from inside
 * gw_proxy_send() (errors found there are reported from the event loop).
 */
#ifndef GW_PROXY_H
#define GW_PROXY_H

#include <stddef.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "conf/conf.h"
#include "core/proxy_rules.h"
#include "lib/errors.h"
#include "lib/http1.h"

/* Shared, read-only after start: one per configured upstream. */
typedef struct gw_upstream {
    const gw_conf_upstream *conf;
    size_t idx;
    SSL_CTX *ssl_ctx; /* NULL for plain HTTP */
    struct sockaddr_storage *addrs;
    socklen_t *addrlens;
    char **addr_names; /* "127.0.0.1:9080" */
    size_t naddrs;
    char *host_header;
} gw_upstream;

int gw_upstream_init(gw_upstream *u, const gw_conf_upstream *c, size_t idx, char **err);
void gw_upstream_cleanup(gw_upstream *u);

typedef struct gw_pool gw_pool; /* per worker, per upstream */

/* gw_resp_budget: the worker's response-body budget (core/proxy_rules.h). */
/* <budget> may be NULL (no worker-wide bound); it must outlive the pool. */
gw_pool *gw_pool_new(struct event_base *base, const gw_upstream *u, gw_resp_budget *budget);
/* Closes idle connections; busy ones must have been cancelled before. */
void gw_pool_free(gw_pool *p);
size_t gw_pool_idle_count(const gw_pool *p);

/* At most one retry: a pooled connection failed, a fresh one is tried. */
#define GW_PROXY_MAX_ATTEMPTS 2

/* One attempt at the upstream: a request written on one connection. Every
 * attempt is reported, so the journal accounts for each request the backend
 * may have received (issue 13). <outcome> is a constant: "ok", "reset"
 * (closed or reset after the request was written, or a stale pooled
 * connection), "connect_failed", "connect_timeout", "timeout", "invalid",
 * "too_large" or "error". <status> is the response's status, 0 when none. */
typedef struct gw_proxy_attempt {
    const char *addr;
    const char *outcome;
    int status;
    long ms;
} gw_proxy_attempt;

typedef struct gw_proxy_result {
    gw_err_id err;                    /* GW_OK, GW_ERR_UPSTREAM_DOWN/TIMEOUT/INVALID */
    gw_http_response *resp;           /* owned by the callee; valid only during the callback */
    const char *addr;                 /* upstream server address used */
    long ms;                          /* time from send to response or error */
    const char *detail;               /* constant, for logs: "connect refused", ...;
                                       * "upstream.queue_timeout" for the only timeout
                                       * without an attempt (max_connections) */
    const gw_proxy_attempt *attempts; /* valid only during the callback */
    size_t nattempts;                 /* 0 when no connection could be used */
} gw_proxy_result;

typedef void (*gw_proxy_cb)(void *arg, const gw_proxy_result *res);

typedef struct gw_proxy_call gw_proxy_call;

/* Send <req>/<len> (a complete serialised request, malloc'ed: the call takes
 * it over, and frees it even when it returns NULL; it is kept for a retry
 * until the call ends, no copy made).
 * <no_body>: the request was HEAD. <idempotent>: a stale pooled connection
 * may be retried once on a fresh one. <max_bytes>: the route's bound on the
 * response body (0: only the upstream's max_response_bytes); the smaller of
 * the two applies, to a declared Content-Length at once and to a chunked or
 * read-until-close body as it grows. */
gw_proxy_call *gw_proxy_send(gw_pool *p, char *req, size_t len, int no_body, int idempotent,
                             size_t max_bytes, gw_proxy_cb cb, void *arg);

/* Forget <call>: the callback will not run; its connection is discarded. */
void gw_proxy_cancel(gw_proxy_call *call);

#endif
