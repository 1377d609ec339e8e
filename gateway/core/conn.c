/*
 * Client connections: TLS handshake, strict HTTP/1.1 reading, one request at
 * a time (pipelined requests wait in the input buffer and are answered in
 * order), forwarding, the response, the journal record.
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
#include "lib/forward.h"
#include "lib/proxyv2.h"
#include "core/tls.h"
#include "lib/util.h"
#include "core/worker.h"
#include "stages/confs.h"
#include "stages/stages.h"
#include "token/endpoint.h"

#define GW_LINGER_MS 2000
/* The /token form (grant_type, scope, client_id): a small body, whatever
 * limits.max_body_bytes says. */
#define GW_TOKEN_FORM_MAX 4096

enum cstate { CS_PROXY, CS_HANDSHAKE, CS_IDLE, CS_HEAD, CS_BODY, CS_BUSY, CS_WRITING, CS_LINGER };

typedef struct gw_req {
    struct gw_conn *conn;
    gw_http_request *http;
    char request_id[37];
    char correlation_id[37];
    int has_corr;
    const gw_route *route;
    char siren[16];
    char annee[8];
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
    char teleservice[65];    /* ID_Teleservice as sent, for the journal */
    const char *local_route; /* "token" or "jwks" for the gateway's own routes */
    char token_jti[37];      /* of a token issued by /token */
    int journal_rsv;         /* holds a journal reservation (gw_journal_reserve) */
    int journal_unreserved;  /* forwarded without one (journal.on_failure "continue") */
    gw_access a;             /* what the access stages know and decided */
} gw_req;

typedef struct gw_conn {
    TAILQ_ENTRY(gw_conn) link;
    gw_worker *w;
    const gw_listener_rt *lis;
    struct bufferevent *bev;
    struct event *timer;
    enum cstate state;
    gw_tls_peer peer;
    char client_ip[INET6_ADDRSTRLEN];
    int client_port;
    int peer_family; /* AF_INET / AF_INET6, v4-mapped stored as AF_INET */
    unsigned char peer_addr[16];
    evutil_socket_t fd;    /* until the bufferevent owns it, else -1 */
    struct event *pp_ev;   /* reading a PROXY v2 header */
    unsigned char *pp_buf; /* GW_PP2_MAX bytes, only while reading a PROXY header */
    size_t pp_len;
    int proxied; /* the PROXY header gave the client address */
    char proxy_ip[INET6_ADDRSTRLEN];
    int proxy_family;
    unsigned char proxy_addr[16];
    gw_http_parser *parser;
    gw_req *req;
    int close_after;
    uint64_t t_first_byte;
    long bytes_in;
    int hs_slot; /* holds a handshake slot of its source address (gw_worker_hs_enter) */
    int hs_family;
    unsigned char hs_addr[16];
    int peer_eof;     /* the client half-closed: answer what it sent, then close */
    int in_input;     /* inside process_input() called from timercb: conn_free() defers */
    int free_pending; /* conn_free() was called while in_input */
} gw_conn;

static void conn_free(gw_conn *c);
static void process_input(gw_conn *c);

static void hs_release(gw_conn *c)
{
    if (c->hs_slot) {
        gw_worker_hs_leave(c->w, c->hs_family, c->hs_addr);
        c->hs_slot = 0;
    }
}

static gw_stats *stats(gw_conn *c)
{
    return &c->w->srv->stats;
}

static void arm(gw_conn *c, unsigned ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

/* ---- journal ---- */

/* <q>: the request whose record this is, NULL for a handshake. A request
 * holding a reservation submits against it (never refused for room); any
 * other record is a refusal, which the journal may summarise instead. */
static void journal_submit(gw_conn *c, gw_journal_rec *r, const char *client_ip, gw_req *q)
{
    char ts[32];
    gw_time_iso_ms(ts);
    r->ts = ts;
    r->env = gw_env_name(c->lis->conf->env);
    r->listener = c->lis->conf->name;
    r->client_ip = client_ip != NULL && client_ip[0] ? client_ip
                   : c->proxied                      ? c->proxy_ip
                                                     : c->client_ip;
    r->client_port = c->client_port;
    r->tls_version = c->peer.version[0] ? c->peer.version : NULL;
    r->tls_cert_sha256 = c->peer.has_cert ? c->peer.sha256 : NULL;
    r->tls_subject = c->peer.has_cert ? c->peer.subject : NULL;
    size_t len = 0;
    char *line = gw_journal_format(r, &len);
    /* a refused submit is counted by the journal itself (stats.dropped);
     * journal_refused counts only the records that could not be formatted */
    gw_journal *j = c->w->srv->journal;
    if (q != NULL && q->journal_rsv) {
        q->journal_rsv = 0;
        if (line == NULL) {
            gw_journal_release(j);
            atomic_fetch_add_explicit(&stats(c)->journal_refused, 1, memory_order_relaxed);
        } else {
            gw_journal_submit_reserved(j, line, len);
        }
    } else if (line == NULL) {
        atomic_fetch_add_explicit(&stats(c)->journal_refused, 1, memory_order_relaxed);
    } else if (q != NULL && q->journal_unreserved) {
        gw_journal_submit(j, line, len); /* "continue": written if it can, else counted lost */
    } else {
        gw_journal_submit_refusal(j, line, len, r->reason != NULL ? r->reason : r->decision);
    }
}

/* "error" (the gateway or the backend failed) rather than "deny" (a control
 * refused the request). */
static int is_failure(gw_err_id e)
{
    switch (e) {
    case GW_ERR_INTERNAL:
    case GW_ERR_OVERLOADED:
    case GW_ERR_SHUTTING_DOWN:
    case GW_ERR_UPSTREAM_DOWN:
    case GW_ERR_UPSTREAM_TIMEOUT:
    case GW_ERR_UPSTREAM_INVALID:
    case GW_ERR_CLIENT_CLOSED:
        return 1;
    default:
        return 0;
    }
}

/* ---- security events (journal/events.h) ---- */

static void events_request(gw_conn *c, gw_req *q)
{
    gw_server *srv = c->w->srv;
    if (srv->events == NULL)
        return;
    gw_event_request e;
    memset(&e, 0, sizeof(e));
    e.client_ip = q->a.client_ip[0] ? q->a.client_ip : c->proxied ? c->proxy_ip : c->client_ip;
    e.cert_sha256 = c->peer.has_cert ? c->peer.sha256 : NULL;
    e.cert_subject = c->peer.has_cert ? c->peer.subject : NULL;
    if (q->a.policy != NULL) {
        e.consumer = q->a.policy->client_id;
        e.habilitation = q->a.policy->id;
        e.contact = q->a.policy->contact_technical;
        e.valid_until = q->a.policy->valid_until;
    }
    e.siren = q->siren[0] ? q->siren : NULL;
    e.reason = q->reason ? q->reason : gw_err(q->err)->reason;
    /* mtls.* (910201), bearer.* (900901/900902), /token's invalid_client */
    e.auth_failure = q->err == GW_ERR_CERT_UNKNOWN || q->err == GW_ERR_TOKEN_INVALID ||
                     q->err == GW_ERR_TOKEN_MISSING;
    e.cert_unknown = c->peer.has_cert && q->a.policy == NULL &&
                     (q->err == GW_ERR_CERT_UNKNOWN ||
                      (q->local_route != NULL && q->err == GW_ERR_TOKEN_INVALID));
    e.throttled = q->status == 429;
    time_t end = 0;
    if (q->err == GW_ERR_MAINTENANCE && srv->confs != NULL &&
        gw_maintenance_active(srv->confs, q->a.now, &end))
        e.maintenance_until = (long long)end;
    gw_events_request(srv->events, &e);
}

/* <refused>: the journal reason of a refused handshake; NULL: completed. */
static void events_handshake(gw_conn *c, const char *refused)
{
    gw_event_handshake h = {
        .client_ip = c->proxied ? c->proxy_ip : c->client_ip,
        .cert_sha256 = c->peer.has_cert ? c->peer.sha256 : NULL,
        .cert_subject = c->peer.has_cert ? c->peer.subject : NULL,
        .not_after = c->peer.not_after,
        .refused = refused,
    };
    gw_events_handshake(c->w->srv->events, &h);
}

/* ---- end of security events ---- */

static void journal_request(gw_conn *c, gw_req *q)
{
    events_request(c, q);
    gw_journal_rec r;
    memset(&r, 0, sizeof(r));
    r.client_port = -1;
    r.upstream_status = -1;
    r.upstream_ms = -1;
    r.request_id = q->request_id;
    r.correlation_id = q->has_corr ? q->correlation_id : NULL;
    if (q->a.policy != NULL) {
        r.consumer = q->a.policy->client_id;
        r.habilitation = q->a.policy->id;
    }
    r.teleservice = q->teleservice[0] ? q->teleservice : NULL;
    r.scope = q->a.route != NULL ? q->a.route->scope : NULL;
    if (q->a.quota_ran) {
        r.quota_limit = (long)q->a.quota_limit;
        r.quota_remaining = (long)q->a.quota_remaining;
        r.quota_store = q->a.quota_store;
    }
    if (q->a.has_token || q->a.token_identified) {
        r.token_jti = q->a.claims.jti;
        r.token_client_id = q->a.claims.client_id;
    } else if (q->token_jti[0]) {
        r.token_jti = q->token_jti;
        r.token_client_id = q->a.policy ? q->a.policy->client_id : NULL;
    }
    if (q->local_route != NULL)
        r.route = q->local_route;
    if (q->http != NULL) {
        r.method = q->http->method;
        /* what was asked of the backend: the canonical path and the query
         * re-serialised from the validated values (docs/journal.md) */
        int canon = q->a.route != NULL && q->a.path_len > 0;
        char *path =
            canon ? strndup(q->a.target, q->a.path_len) : strndup(q->http->path, q->http->path_len);
        r.path = path;
        r.query = q->a.query_ok && q->a.query.canonical_len > 0 ? q->a.query.canonical : NULL;
        /* the header as sent, whatever its length: the journal bounds it
         * (GW_JOURNAL_FIELD_MAX) and records the length it had */
        size_t tsl = 0;
        const char *tsv = gw_http_request_header(q->http, "ID_Teleservice", &tsl);
        char *teleservice = tsv != NULL && tsl > 0 ? strndup(tsv, tsl) : NULL;
        if (teleservice != NULL)
            r.teleservice = teleservice;
        r.route = q->route ? q->route->name : q->local_route;
        r.siren = q->siren[0] ? q->siren : NULL;
        r.annee = q->annee[0] ? q->annee : NULL;
        r.status = q->status;
        r.ms = (long)(gw_now_ms() - q->t0);
        r.bytes_in = q->bytes_in;
        r.bytes_out = q->bytes_out;
        if (q->upstream_addr[0]) {
            r.upstream_addr = q->upstream_addr;
            r.upstream_status = q->upstream_status > 0 ? q->upstream_status : -1;
            r.upstream_ms = q->upstream_ms;
        }
        gw_journal_attempt at[GW_PROXY_MAX_ATTEMPTS];
        for (size_t i = 0; i < q->nattempts; i++)
            at[i] = (gw_journal_attempt){q->attempts[i].addr, q->attempts[i].outcome,
                                         q->attempts[i].status, q->attempts[i].ms};
        r.upstream_attempts = at;
        r.upstream_nattempts = q->upstream_addr[0] ? q->nattempts : 0;
        const gw_err_def *d = gw_err(q->err);
        r.decision = q->err == GW_OK ? "allow" : is_failure(q->err) ? "error" : "deny";
        r.reason = q->err == GW_OK ? NULL : q->reason ? q->reason : d->reason;
        r.code = q->err == GW_OK ? NULL : d->code;
        journal_submit(c, &r, q->a.client_ip, q);
        free(path);
        free(teleservice);
        return;
    }
    const gw_err_def *d = gw_err(q->err);
    r.status = q->status;
    r.ms = (long)(gw_now_ms() - q->t0);
    r.bytes_in = q->bytes_in;
    r.bytes_out = q->bytes_out;
    r.decision = q->err == GW_OK || is_failure(q->err) ? "error" : "deny";
    r.reason = q->reason ? q->reason : d->reason;
    r.code = q->err == GW_OK ? NULL : d->code;
    journal_submit(c, &r, NULL, q);
}

static void record_stats(gw_conn *c, gw_req *q)
{
    gw_stats *s = stats(c);
    atomic_fetch_add_explicit(&s->requests, 1, memory_order_relaxed);
    int cls = q->status / 100;
    if (cls >= 0 && cls < 6)
        atomic_fetch_add_explicit(&s->responses_by_class[cls], 1, memory_order_relaxed);
    if (q->err != GW_OK)
        atomic_fetch_add_explicit(&s->denials[q->err], 1, memory_order_relaxed);
    if (q->a.quota_ran || q->a.quota_degraded) {
        int refused = q->err == GW_ERR_THROTTLED || q->err == GW_ERR_QUOTA_UNAVAILABLE;
        atomic_fetch_add_explicit(refused ? &s->quota_refused : &s->quota_admitted, 1,
                                  memory_order_relaxed);
        if (q->a.quota_deny_cached)
            atomic_fetch_add_explicit(&s->quota_deny_cache_hits, 1, memory_order_relaxed);
        if (q->a.quota_degraded)
            atomic_fetch_add_explicit(&s->quota_degraded, 1, memory_order_relaxed);
        atomic_store_explicit(&s->quota_store_degraded, q->a.quota_degraded, memory_order_relaxed);
    }
    size_t ri = GW_ROUTE_MAX_ROUTES + 2; /* none */
    if (q->a.route != NULL)
        ri = (size_t)(q->a.route - c->w->srv->conf->routes.routes);
    else if (q->local_route != NULL)
        ri = GW_ROUTE_MAX_ROUTES + (q->local_route[0] == 't' ? 0 : 1);
    if (ri < GW_ROUTE_MAX_ROUTES + 3 && cls >= 0 && cls < 6)
        atomic_fetch_add_explicit(&s->route_class[ri][cls], 1, memory_order_relaxed);
    if (q->a.policy != NULL) {
        int qo = 0;
        if (q->a.quota_ran || q->a.quota_degraded)
            qo = (q->err == GW_ERR_THROTTLED || q->err == GW_ERR_QUOTA_UNAVAILABLE) ? -1 : 1;
        gw_consumer_count(c->w->srv, q->a.policy->client_id, q->status, qo);
    }
    if (q->upstream_addr[0] && q->upstream_ms >= 0) {
        size_t ub = 0;
        while (ub < 11 && (unsigned long)q->upstream_ms > gw_latency_bounds_ms[ub])
            ub++;
        atomic_fetch_add_explicit(&s->upstream_latency_bucket[ub], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->upstream_latency_sum_ms, (unsigned long)q->upstream_ms,
                                  memory_order_relaxed);
    }
    unsigned long ms = (unsigned long)(gw_now_ms() - q->t0);
    size_t b = 0;
    while (b < 11 && ms > gw_latency_bounds_ms[b])
        b++;
    atomic_fetch_add_explicit(&s->latency_bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->latency_sum_ms, ms, memory_order_relaxed);
}

static void req_free(gw_req *q)
{
    if (q == NULL)
        return;
    gw_proxy_cancel(q->call);
    if (q->journal_rsv)
        gw_journal_release(q->conn->w->srv->journal);
    gw_pipeline_done(&q->a);
    free(q->a.local_body);
    gw_policy_set_unref(q->a.policies);
    gw_http_request_free(q->http);
    free(q);
}

static gw_req *req_new(gw_conn *c)
{
    gw_req *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return NULL;
    q->conn = c;
    gw_uuid4(q->request_id);
    q->t0 = c->t_first_byte ? c->t_first_byte : gw_now_ms();
    q->bytes_in = c->bytes_in;
    return q;
}

/* ---- responses ---- */

static void send_bytes(gw_conn *c, char *bytes, size_t len, int status)
{
    gw_req *q = c->req;
    q->status = status;
    q->bytes_out = (long)len;
    c->state = CS_WRITING;
    arm(c, c->w->srv->conf->timeouts.send_ms);
    bufferevent_enable(c->bev, EV_WRITE);
    if (bufferevent_write(c->bev, bytes, len) < 0)
        c->close_after = 1;
    else
        gw_bev_write_now(c->bev);
    free(bytes);
}

/* Answer the current request (creating one for errors found before a request
 * was parsed) with the error <id>: its DGFIP error body, or <body> when a
 * stage wrote its own (etatSante during maintenance). */
static void respond_with(gw_conn *c, gw_err_id id, const char *reason, const char *body, int status,
                         int close)
{
    if (c->req == NULL) {
        c->req = req_new(c);
        if (c->req == NULL) {
            conn_free(c);
            return;
        }
    }
    gw_req *q = c->req;
    const gw_err_def *d = gw_err(id);
    q->err = id;
    q->reason = reason;
    if (close || c->w->draining)
        c->close_after = 1;
    size_t blen = 0, len = 0;
    char *own = NULL;
    if (body == NULL) {
        own = gw_err_body(id, &blen);
        body = own;
        status = d->status;
    } else {
        blen = strlen(body);
    }
    gw_fwd_resp_ctx rc = {
        .request_id = q->request_id,
        .correlation_id = q->has_corr ? q->correlation_id : NULL,
        .close = c->close_after,
        .head = q->http != NULL && strcmp(q->http->method, "HEAD") == 0,
        .extra = q->a.resp_headers,
        .nextra = q->a.nresp_headers,
    };
    char *bytes = gw_local_response(status, "application/json; charset=utf-8", body,
                                    body ? blen : 0, &rc, &len);
    free(own);
    if (bytes == NULL) {
        conn_free(c);
        return;
    }
    send_bytes(c, bytes, len, status);
}

static void respond_error(gw_conn *c, gw_err_id id, const char *reason, int close)
{
    respond_with(c, id, reason, NULL, 0, close);
}

static void proxy_done(void *arg, const gw_proxy_result *res)
{
    gw_req *q = arg;
    gw_conn *c = q->conn;
    q->call = NULL;
    snprintf(q->upstream_addr, sizeof(q->upstream_addr), "%s", res->addr ? res->addr : "");
    q->upstream_ms = res->ms;
    q->nattempts = res->nattempts <= GW_PROXY_MAX_ATTEMPTS ? res->nattempts : 0;
    memcpy(q->attempts, res->attempts, q->nattempts * sizeof(*q->attempts));
    if (res->err != GW_OK) {
        atomic_fetch_add_explicit(&stats(c)->upstream_errors, 1, memory_order_relaxed);
        respond_error(c, res->err, NULL, 0);
        return;
    }
    q->upstream_status = res->resp->status;
    if (c->w->draining)
        c->close_after = 1;
    gw_fwd_resp_ctx rc = {
        .request_id = q->request_id,
        .correlation_id = q->has_corr ? q->correlation_id : NULL,
        .close = c->close_after,
        .head = strcmp(q->http->method, "HEAD") == 0,
        .extra = q->a.resp_headers,
        .nextra = q->a.nresp_headers,
    };
    size_t len = 0;
    char *bytes = gw_forward_response(res->resp, &rc, &len);
    if (bytes == NULL) {
        respond_error(c, GW_ERR_INTERNAL, NULL, 1);
        return;
    }
    send_bytes(c, bytes, len, res->resp->status);
}

/* ---- request dispatch ---- */

/* The body a request may carry, decided from its method and path as soon as
 * its header block is parsed (gw_http_parser_set_body_limit_cb): the /token
 * form (whatever the method), or what the matched route declares
 * (max_body_bytes, 0 = none). An unknown path or method takes no body:
 * nothing is buffered for a caller before the gateway knows what it may
 * send. */
static size_t body_limit(void *arg, const gw_http_request *r)
{
    gw_conn *c = arg;
    const gw_server *srv = c->w->srv;
    /* any method: the token endpoint answers a GET with its own OAuth error */
    if (srv->oauth != NULL && r->path_len == 6 && memcmp(r->path, "/token", 6) == 0)
        return GW_TOKEN_FORM_MAX;
    gw_route_match m;
    if (gw_route_match_path(&srv->conf->routes, r->method, r->path, r->path_len, &m) ==
        GW_ROUTE_FOUND)
        return m.route->max_body_bytes;
    return 0;
}

static void copy_param(char *dst, size_t cap, const char *v, size_t n)
{
    if (v == NULL || n == 0 || n >= cap) {
        dst[0] = '\0';
        return;
    }
    memcpy(dst, v, n);
    dst[n] = '\0';
}

/* Send the admitted request upstream, with the identity the stages
 * established. */
/* No exchange without a record (journal.on_failure "deny", the default):
 * the request (or the token) gets a journal reservation before anything is
 * forwarded (or issued), held until its record is written, so that the
 * record cannot be dropped for room once the backend has answered
 * (docs/journal.md, "No exchange without a record"). 1: refused, answer
 * 910240. With "continue", a request that finds no room goes on without. */
static int journal_refuses(gw_conn *c, gw_req *q)
{
    if (q->journal_rsv)
        return 0;
    if (gw_journal_reserve(c->w->srv->journal) == 0) {
        q->journal_rsv = 1;
        return 0;
    }
    if (!c->w->srv->conf->journal.on_failure_continue)
        return 1;
    q->journal_unreserved = 1;
    return 0;
}

static void forward(gw_conn *c, gw_req *q)
{
    gw_access *a = &q->a;
    if (journal_refuses(c, q)) {
        respond_error(c, GW_ERR_JOURNAL_UNAVAILABLE, NULL, 0);
        return;
    }
    const gw_http_request *http = q->http;
    const gw_route *route = a->route;
    const gw_upstream *up = &c->w->srv->upstreams[route->upstream_idx];
    gw_extra_header extra[GW_ACCESS_MAX_HEADERS + 4];
    size_t n = 0;
    for (size_t i = 0; i < a->nup_headers; i++)
        extra[n++] = a->up_headers[i];
    char *assertion = NULL;
    if (a->policy != NULL) {
        extra[n++] = (gw_extra_header){"X-Consumer-Id", a->policy->client_id};
        extra[n++] = (gw_extra_header){"X-Habilitation-Id", a->policy->id};
        extra[n++] = (gw_extra_header){"X-Opale-Env", gw_env_name(a->env)};
        if (a->oauth != NULL) {
            assertion =
                gw_assertion_sign(a->oauth, a->policy, a->env, a->has_token ? a->claims.scope : "",
                                  q->request_id, a->now);
            if (assertion == NULL) {
                respond_error(c, GW_ERR_INTERNAL, "assertion.sign", 1);
                return;
            }
            extra[n++] = (gw_extra_header){"X-JWT-Assertion", assertion};
        }
    }
    gw_fwd_req_ctx fc = {
        .target = a->target,
        .target_len = a->target_len,
        .allow = (const char *const *)route->headers,
        .nallow = route->nheaders,
        .body = route->max_body_bytes > 0,
        .host = up->host_header,
        .client_ip = a->client_ip[0] ? a->client_ip : c->client_ip,
        .request_id = q->request_id,
        .correlation_id = q->has_corr ? q->correlation_id : NULL,
        .close = up->conf->pool_size == 0,
        .extra = extra,
        .nextra = n,
    };
    size_t len = 0;
    char *bytes = gw_forward_request(http, &fc, &len);
    free(assertion);
    if (bytes == NULL) {
        respond_error(c, GW_ERR_INTERNAL, NULL, 1);
        return;
    }
    int head = strcmp(http->method, "HEAD") == 0;
    int idem = head || strcmp(http->method, "GET") == 0;
    q->call = gw_proxy_send(c->w->pools[route->upstream_idx], bytes, len, head, idem,
                            route->max_response_bytes, proxy_done, q);
    free(bytes);
    if (q->call == NULL)
        respond_error(c, GW_ERR_INTERNAL, NULL, 1);
}

/* The stages have decided (now, or later from a suspended stage's callback). */
static void access_done(gw_access *a, gw_verdict v)
{
    gw_req *q = a->owner;
    gw_conn *c = q->conn;
    q->route = a->route;
    if (a->match != NULL) {
        size_t sl = 0;
        const char *siren = gw_route_param(a->match, "siren", &sl);
        copy_param(q->siren, sizeof(q->siren), siren, sl);
    }
    size_t yl = 0;
    const char *annee = a->query_ok ? gw_query_get(&a->query, "annee", &yl) : NULL;
    copy_param(q->annee, sizeof(q->annee), annee, yl);
    if (v == GW_STAGE_REJECT) {
        respond_with(c, a->err, a->reason, a->local_body, a->local_status, 0);
        return;
    }
    forward(c, q);
}

/* The gateway's own routes: POST /token and GET /.well-known/jwks.json.
 * Returns 1 when the request was one of them (and is being answered). */
static int local_route(gw_conn *c, gw_req *q)
{
    gw_access *a = &q->a;
    const gw_http_request *http = q->http;
    int is_token = http->path_len == 6 && memcmp(http->path, "/token", 6) == 0;
    int is_jwks = http->path_len == 22 && memcmp(http->path, "/.well-known/jwks.json", 22) == 0;
    if ((!is_token && !is_jwks) || a->oauth == NULL)
        return 0;
    q->local_route = is_token ? "token" : "jwks";
    gw_fwd_resp_ctx rc = {
        .request_id = q->request_id,
        .correlation_id = q->has_corr ? q->correlation_id : NULL,
        .close = c->close_after,
        .head = strcmp(http->method, "HEAD") == 0,
    };
    size_t len = 0;
    char *bytes = NULL;
    if (is_jwks) {
        if (strcmp(http->method, "GET") != 0 && strcmp(http->method, "HEAD") != 0) {
            gw_access_resp_header(a, "Allow", "GET, HEAD");
            respond_error(c, GW_ERR_METHOD_NOT_ALLOWED, NULL, 0);
            return 1;
        }
        /* an answer, not a refusal: its record has room held like any other
         * allowed exchange (never summarised) */
        if (journal_refuses(c, q)) {
            respond_error(c, GW_ERR_JOURNAL_UNAVAILABLE, NULL, 0);
            return 1;
        }
        bytes = gw_local_response(200, "application/jwk-set+json", a->oauth->jwks_json,
                                  strlen(a->oauth->jwks_json), &rc, &len);
        if (bytes == NULL) {
            respond_error(c, GW_ERR_INTERNAL, NULL, 1);
            return 1;
        }
        send_bytes(c, bytes, len, 200);
        return 1;
    }
    /* /token: the certificate's policy, the caller's address, the kill switch */
    if (a->has_cert && a->policies != NULL)
        a->policy = gw_policy_by_cert(a->policies, a->cert_sha256);
    int ip_ok = 0;
    if (a->policy != NULL && gw_ipallow_resolve(a) == 0)
        ip_ok = gw_policy_ip_allowed(a->policy, a->client_family, a->client_addr);
    gw_token_in in = {
        .http = http,
        .policy = a->policy,
        .cert_sha256 = a->has_cert ? a->cert_sha256 : NULL,
        .ip_allowed = ip_ok,
        .killswitch = a->policy != NULL && a->suspensions != NULL &&
                      gw_suspensions_is_suspended(a->suspensions, a->policy->client_id),
        .env = a->env,
        .now = a->now,
        .today = gw_local_yyyymmdd(a->confs ? a->confs->tz : GW_TZ_PARIS, a->now),
        .now_ms = gw_now_ms(),
        .rate = c->w->srv->token_rate,
    };
    /* a token is issued only with room for its record, as data is */
    if (journal_refuses(c, q)) {
        respond_error(c, GW_ERR_JOURNAL_UNAVAILABLE, NULL, 0);
        return 1;
    }
    gw_token_out out;
    gw_token_endpoint(a->oauth, &in, &out);
    gw_extra_header hdr[3];
    size_t nh = 0;
    hdr[nh++] = (gw_extra_header){"Pragma", "no-cache"};
    if (out.www_authenticate != NULL)
        hdr[nh++] = (gw_extra_header){"WWW-Authenticate", out.www_authenticate};
    if (out.retry_after[0])
        hdr[nh++] = (gw_extra_header){"Retry-After", out.retry_after};
    rc.extra = hdr;
    rc.nextra = nh;
    if (out.status == 200) {
        memcpy(q->token_jti, out.jti, sizeof(q->token_jti));
        atomic_fetch_add_explicit(&stats(c)->tokens_issued, 1, memory_order_relaxed);
    } else {
        /* journal the refusal with the table's closest row and the precise reason */
        q->err = out.status == 429   ? GW_ERR_THROTTLED
                 : out.status == 401 ? GW_ERR_TOKEN_INVALID
                 : out.status >= 500 ? GW_ERR_INTERNAL
                                     : GW_ERR_BAD_REQUEST;
        q->reason = out.reason;
    }
    if (out.body != NULL)
        bytes = gw_local_response(out.status, "application/json;charset=UTF-8", out.body,
                                  strlen(out.body), &rc, &len);
    free(out.body);
    if (bytes == NULL) {
        respond_error(c, GW_ERR_INTERNAL, NULL, 1);
        return 1;
    }
    send_bytes(c, bytes, len, out.status);
    return 1;
}

static void dispatch(gw_conn *c, gw_http_request *http)
{
    gw_server *srv = c->w->srv;
    gw_req *q = req_new(c);
    if (q == NULL) {
        gw_http_request_free(http);
        conn_free(c);
        return;
    }
    q->http = http;
    c->req = q;
    c->state = CS_BUSY;
    evtimer_del(c->timer);
    if (!http->keep_alive || c->w->draining)
        c->close_after = 1;
    size_t n = 0;
    const char *corr = gw_http_request_header(http, "X-Correlation-ID", &n);
    if (corr != NULL && gw_is_uuid(corr, n)) {
        memcpy(q->correlation_id, corr, 36);
        q->correlation_id[36] = '\0';
        q->has_corr = 1;
    }
    const char *ts = gw_http_request_header(http, "ID_Teleservice", &n);
    copy_param(q->teleservice, sizeof(q->teleservice), ts, n);

    gw_access *a = &q->a;
    a->http = http;
    a->routes = &srv->conf->routes;
    a->env = c->lis->conf->env;
    a->route_only = c->lis->conf->access_off;
    a->has_cert = c->peer.has_cert;
    a->cert_sha256 = c->peer.sha256;
    a->peer_family = c->peer_family;
    memcpy(a->peer_addr, c->peer_addr, sizeof(a->peer_addr));
    a->proxied = c->proxied;
    a->proxy_family = c->proxy_family;
    memcpy(a->proxy_addr, c->proxy_addr, sizeof(a->proxy_addr));
    a->now = time(NULL);
    a->policies = c->w->policies != NULL ? gw_policy_set_ref(c->w->policies) : NULL;
    a->suspensions = srv->susp;
    a->confs = srv->confs;
    a->oauth = srv->oauth;
    a->token_cache = c->w->token_cache;
    a->quota = srv->quota;
    a->deny_cache = c->w->deny_cache;
    a->redis = c->w->redis;
    a->request_id = q->request_id;
    a->on_done = access_done;
    if (local_route(c, q))
        return;
    a->owner = q;
    gw_verdict v = gw_pipeline_run(a);
    if (v != GW_STAGE_SUSPEND)
        access_done(a, v);
}

static gw_err_id parse_error_id(int status)
{
    switch (status) {
    case 413:
        return GW_ERR_BODY_TOO_LARGE;
    case 431:
        return GW_ERR_HEADERS_TOO_LARGE;
    case 501:
        return GW_ERR_NOT_IMPLEMENTED;
    case 500:
        return GW_ERR_INTERNAL;
    default:
        return GW_ERR_BAD_REQUEST;
    }
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
            respond_error(c, parse_error_id(status), reason, 1);
            return;
        }
        if (st == GW_HTTP_COMPLETE) {
            evbuffer_drain(in, consumed);
            c->bytes_in += (long)consumed;
            gw_http_request *http = gw_http_parser_take_request(c->parser);
            if (http == NULL) {
                respond_error(c, GW_ERR_INTERNAL, NULL, 1);
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

/* The response is on the wire: journal it, then either close, or wait for
 * the next request (which may already be buffered). */
static void finish_request(gw_conn *c)
{
    gw_req *q = c->req;
    c->req = NULL;
    if (q != NULL) {
        journal_request(c, q);
        record_stats(c, q);
        req_free(q);
    }
    c->t_first_byte = 0;
    c->bytes_in = 0;
    if (c->close_after) {
        /* Half-close and discard what the client still sends, so that it
         * reads our final response rather than a reset. */
        c->state = CS_LINGER;
        shutdown(bufferevent_getfd(c->bev), SHUT_WR);
        evbuffer_drain(bufferevent_get_input(c->bev),
                       evbuffer_get_length(bufferevent_get_input(c->bev)));
        bufferevent_enable(c->bev, EV_READ);
        arm(c, GW_LINGER_MS);
        return;
    }
    c->state = CS_IDLE;
    arm(c, c->w->srv->conf->timeouts.keepalive_ms);
    gw_evbuffer_release(bufferevent_get_input(c->bev));
    bufferevent_enable(c->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        process_input(c);
}

/* ---- libevent callbacks ---- */

static void readcb(struct bufferevent *bev, void *arg)
{
    process_input(arg);
}

static void writecb(struct bufferevent *bev, void *arg)
{
    gw_conn *c = arg;
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
        atomic_fetch_add_explicit(&stats(c)->tcp_probes, 1, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&stats(c)->handshakes_failed, 1, memory_order_relaxed);
    gw_journal_rec r;
    memset(&r, 0, sizeof(r));
    r.client_port = -1;
    r.upstream_status = -1;
    r.upstream_ms = -1;
    r.bytes_in = -1;
    r.bytes_out = -1;
    r.ms = -1;
    char rid[37];
    gw_uuid4(rid);
    r.request_id = rid;
    r.decision = "deny";
    r.reason = gw_tls_refusal_reason(&c->peer, ssl_err);
    atomic_fetch_add_explicit(&stats(c)->handshake_reason[gw_tls_reason_index(r.reason)], 1,
                              memory_order_relaxed);
    journal_submit(c, &r, NULL, NULL);
    events_handshake(c, r.reason);
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
        events_handshake(c, NULL);
        c->state = CS_IDLE;
        arm(c, c->w->srv->conf->timeouts.keepalive_ms);
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
    if ((what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING) && c->state != CS_LINGER &&
        peer_half_closed(bufferevent_getfd(bev))) {
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
        respond_error(c, GW_ERR_REQUEST_TIMEOUT, NULL, 1);
        break;
    case CS_HANDSHAKE:
        /* silent until handshake_ms: a probe; a stalled handshake: a refusal */
        handshake_refused(c, 0);
        conn_free(c);
        break;
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
        gw_req *q = c->req;
        c->req = NULL;
        gw_proxy_cancel(q->call);
        q->call = NULL;
        if (q->err == GW_OK || c->state == CS_WRITING)
            q->err = w->draining ? GW_ERR_SHUTTING_DOWN : GW_ERR_CLIENT_CLOSED;
        q->reason = w->draining ? "server.drain_deadline" : "client.closed";
        if (q->status == 0 || c->state == CS_BUSY)
            q->status = 499;
        journal_request(c, q);
        record_stats(c, q);
        req_free(q);
    }
    hs_release(c);
    if (c->timer != NULL)
        event_free(c->timer);
    if (c->pp_ev != NULL)
        event_free(c->pp_ev);
    free(c->pp_buf);
    if (c->bev != NULL)
        bufferevent_free(c->bev);
    else if (c->fd >= 0)
        evutil_closesocket(c->fd);
    gw_http_parser_free(c->parser);
    TAILQ_REMOVE(&w->conns, c, link);
    w->nconns--;
    atomic_fetch_sub_explicit(&w->srv->stats.connections_open, 1, memory_order_relaxed);
    free(c);
    gw_worker_conn_closed(w);
}

/* Hand the socket to OpenSSL; the handshake starts at once. */
static void start_tls(gw_conn *c)
{
    /* One source may hold only so many handshakes on this worker: the
     * handshake slots (max_connections) are everyone's. */
    c->hs_family = c->proxied ? c->proxy_family : c->peer_family;
    memcpy(c->hs_addr, c->proxied ? c->proxy_addr : c->peer_addr, sizeof(c->hs_addr));
    if (!gw_worker_hs_enter(c->w, c->hs_family, c->hs_addr,
                            c->lis->conf->max_handshakes_per_source)) {
        atomic_fetch_add_explicit(&stats(c)->handshakes_refused_per_source, 1,
                                  memory_order_relaxed);
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
        SSL_free(ssl);
        conn_free(c);
        return;
    }
    c->fd = -1; /* owned by the bufferevent now */
    c->state = CS_HANDSHAKE;
    bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    bufferevent_setcb(c->bev, readcb, writecb, eventcb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void proxy_refused(gw_conn *c, const char *reason)
{
    atomic_fetch_add_explicit(&stats(c)->handshake_reason[gw_tls_reason_index(reason)], 1,
                              memory_order_relaxed);
    gw_journal_rec r;
    memset(&r, 0, sizeof(r));
    r.client_port = -1;
    r.upstream_status = -1;
    r.upstream_ms = -1;
    r.bytes_in = -1;
    r.bytes_out = -1;
    r.ms = -1;
    char rid[37];
    gw_uuid4(rid);
    r.request_id = rid;
    r.decision = "deny";
    r.reason = reason;
    journal_submit(c, &r, NULL, NULL);
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
    gw_pp2_status st = gw_pp2_parse(c->pp_buf, c->pp_len, &pp);
    if (st == GW_PP2_MORE) {
        ssize_t n = recv(fd, c->pp_buf + c->pp_len, pp.need - c->pp_len, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            conn_free(c);
            return;
        }
        if (n < 0)
            return;
        c->pp_len += (size_t)n;
        st = gw_pp2_parse(c->pp_buf, c->pp_len, &pp);
    }
    if (st == GW_PP2_REFUSED) {
        proxy_refused(c, "proxy.bad_header");
        return;
    }
    if (st == GW_PP2_MORE)
        return;
    if (pp.proxied) {
        c->proxied = 1;
        c->proxy_family = pp.family;
        memcpy(c->proxy_addr, pp.addr, sizeof(c->proxy_addr));
        inet_ntop(c->proxy_family, c->proxy_addr, c->proxy_ip, sizeof(c->proxy_ip));
    }
    event_free(c->pp_ev);
    c->pp_ev = NULL;
    free(c->pp_buf); /* an idle connection keeps no PROXY buffer */
    c->pp_buf = NULL;
    start_tls(c);
}

void gw_conn_accept(gw_worker *w, const gw_listener_rt *l, evutil_socket_t fd, struct sockaddr *sa,
                    int salen)
{
    const gw_conf *conf = w->srv->conf;
    gw_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        evutil_closesocket(fd);
        return;
    }
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
    gw_http_limits lim = {
        .max_header_bytes = conf->limits.max_header_bytes,
        .max_headers = conf->limits.max_headers,
        .max_body_bytes = conf->limits.max_body_bytes,
    };
    c->fd = fd;
    c->parser = gw_http_parser_new(0, &lim);
    if (c->parser != NULL)
        gw_http_parser_set_body_limit_cb(c->parser, body_limit, c);
    c->timer = evtimer_new(w->base, timercb, c);
    if (c->parser == NULL || c->timer == NULL) {
        gw_http_parser_free(c->parser);
        if (c->timer != NULL)
            event_free(c->timer);
        free(c);
        evutil_closesocket(fd);
        return;
    }
    TAILQ_INSERT_TAIL(&w->conns, c, link);
    w->nconns++;
    atomic_fetch_add_explicit(&w->srv->stats.connections_accepted, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->srv->stats.connections_open, 1, memory_order_relaxed);
    arm(c, conf->timeouts.handshake_ms);
    if (l->conf->proxy_protocol) {
        /* Only a trusted proxy may speak first with a PROXY header. */
        if (w->srv->confs == NULL ||
            !gw_is_trusted_proxy(w->srv->confs, c->peer_family, c->peer_addr)) {
            proxy_refused(c, "proxy.untrusted_peer");
            return;
        }
        c->state = CS_PROXY;
        c->pp_buf = malloc(GW_PP2_MAX);
        c->pp_ev = c->pp_buf != NULL ? event_new(w->base, fd, EV_READ | EV_PERSIST, proxy_readcb, c)
                                     : NULL;
        if (c->pp_ev == NULL || event_add(c->pp_ev, NULL) < 0) {
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
