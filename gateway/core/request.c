/*
 * The request module: one parsed request, from dispatch to its response.
 *
 *   dispatch -> one of the gateway's own routes (local_routes[]: /token,
 *               the JWKS), each behind its list of stages
 *            -> else the listener's list of stages (guarded, or route-only
 *               on "access": "off" listeners) -> forward upstream
 *   every answer goes to the connection (gw_conn_send); the finished
 *   request goes to the outcome module (journal, events, metrics).
 */
#include "core/request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bev.h"
#include "core/h2.h"
#include "core/jbatch.h"
#include "core/outcome.h"
#include "core/reqstate.h"
#include "lib/forward.h"
#include "lib/util.h"
#include "token/assertion.h"
#include "token/endpoint.h"

/* The /token form (grant_type, scope, client_id): a small body, whatever
 * limits.max_body_bytes says. */
#define GW_TOKEN_FORM_MAX 4096

/* The gateway's own routes (present when "oauth" is configured). */
static const struct {
    gw_local_kind kind;
    const char *name; /* in the journal and the metrics */
    const char *path;
    gw_list_kind list;
} local_routes[] = {
    {GW_LOCAL_TOKEN, "token", "/token", GW_LIST_TOKEN},
    {GW_LOCAL_JWKS, "jwks", "/.well-known/jwks.json", GW_LIST_JWKS},
};
#define NLOCAL (sizeof(local_routes) / sizeof(local_routes[0]))

const char *gw_local_name(gw_local_kind k)
{
    for (size_t i = 0; i < NLOCAL; i++)
        if (local_routes[i].kind == k)
            return local_routes[i].name;
    return NULL;
}

static size_t local_index(const gw_server *srv, const char *path, size_t len)
{
    if (srv->oauth == NULL)
        return NLOCAL;
    for (size_t i = 0; i < NLOCAL; i++)
        if (strlen(local_routes[i].path) == len && memcmp(local_routes[i].path, path, len) == 0)
            return i;
    return NLOCAL;
}

int gw_request_trusted_peer(const gw_conn *c)
{
    return c->w->srv->stages != NULL &&
           gw_ipallow_trusted(c->w->srv->stages, c->peer_family, c->peer_addr);
}

static void req_free(gw_request *q)
{
    if (q == NULL)
        return;
    gw_proxy_cancel(q->call);
    gw_pipeline_done(&q->a); /* gives back a journal reservation not consumed */
    gw_policy_set_unref(q->a.svc.policies);
    gw_http_request_free(q->http);
    gw_blk_put(q); /* the worker's next request */
}

static gw_request *req_new(gw_conn *c)
{
    /* 8,200 bytes: above glibc's per-thread cache; kept by the worker
     * thread between requests (gw_blk_get), zeroed as calloc did */
    gw_request *q = gw_blk_get(sizeof(*q), NULL);
    if (q == NULL)
        return NULL;
    memset(q, 0, sizeof(*q));
    q->conn = c;
    gw_uuid4(q->request_id);
    q->t0 = c->t_first_byte ? c->t_first_byte : gw_now_ms();
    q->bytes_in = c->bytes_in;
    return q;
}

void gw_request_finish(gw_conn *c, gw_request *q)
{
    gw_outcome_request(c, q);
    req_free(q);
}

void gw_request_abort(gw_conn *c, gw_request *q)
{
    gw_worker *w = c->w;
    gw_proxy_cancel(q->call);
    q->call = NULL;
    /* answered but not all sent, or not answered yet */
    int writing = q->stream != NULL ? q->responded : c->state == CS_WRITING;
    int busy = q->stream != NULL ? !q->responded : c->state == CS_BUSY;
    if (q->err == GW_OK || writing)
        q->err = w->draining ? GW_ERR_SHUTTING_DOWN : GW_ERR_CLIENT_CLOSED;
    q->reason = w->draining ? "server.drain_deadline" : "client.closed";
    if (q->status == 0 || busy)
        q->status = 499;
    gw_request_finish(c, q);
}

gw_err_id gw_request_parse_error_id(int status)
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

/* ---- responses ---- */

/* The response of <q>, on its connection (HTTP/1.1) or its stream (h2). */
static void send_bytes(gw_request *q, char *bytes, size_t len, int status)
{
    q->status = status;
    q->bytes_out = (long)len;
    if (q->stream != NULL) {
        q->responded = 1;
        gw_h2_send(q->conn, q->stream, bytes, len);
        return;
    }
    gw_conn_send(q->conn, bytes, len);
}

static gw_fwd_resp_ctx resp_ctx(gw_conn *c, gw_request *q)
{
    gw_fwd_resp_ctx rc = {
        .request_id = q->request_id,
        .correlation_id = q->has_corr ? q->correlation_id : NULL,
        .close = q->stream == NULL && c->close_after,
        .head = q->http != NULL && strcmp(q->http->method, "HEAD") == 0,
        .extra = q->a.reply.resp_headers,
        .nextra = q->a.reply.nresp_headers,
    };
    return rc;
}

/* Answer <q> with the error <id>: its DGFIP error body, or <body> when a
 * stage wrote its own (etatSante during maintenance). <close>: end an
 * HTTP/1.1 connection after it (a stream ends alone). */
static void respond_with(gw_request *q, gw_err_id id, const char *reason, const char *body,
                         int status, int close)
{
    gw_conn *c = q->conn;
    const gw_err_def *d = gw_err(id);
    q->err = id;
    q->reason = reason;
    if (q->stream == NULL && (close || c->w->draining))
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
    gw_fwd_resp_ctx rc = resp_ctx(c, q);
    char *bytes = gw_local_response(status, "application/json; charset=utf-8", body,
                                    body ? blen : 0, &rc, &len);
    free(own);
    if (bytes == NULL) {
        gw_conn_fail(c);
        return;
    }
    send_bytes(q, bytes, len, status);
}

static void fail(gw_request *q, gw_err_id id, const char *reason, int close)
{
    respond_with(q, id, reason, NULL, 0, close);
}

/* The current request of an HTTP/1.1 connection, created for errors found
 * before a request was parsed. */
void gw_request_error(gw_conn *c, gw_err_id id, const char *reason, int close)
{
    if (c->req == NULL) {
        c->req = req_new(c);
        if (c->req == NULL) {
            gw_conn_fail(c);
            return;
        }
    }
    fail(c->req, id, reason, close);
}

gw_request *gw_request_stream_error(gw_conn *c, struct gw_h2_stream *s, gw_err_id id,
                                    const char *reason, uint64_t t0, long bytes_in)
{
    gw_request *q = req_new(c);
    if (q == NULL)
        return NULL;
    q->stream = s;
    q->t0 = t0;
    q->bytes_in = bytes_in;
    fail(q, id, reason, 0);
    return q;
}

static void proxy_done(void *arg, const gw_proxy_result *res)
{
    gw_request *q = arg;
    gw_conn *c = q->conn;
    q->call = NULL;
    const char *addr = res->addr ? res->addr : "";
    size_t alen = strnlen(addr, sizeof(q->upstream_addr) - 1);
    memcpy(q->upstream_addr, addr, alen);
    q->upstream_addr[alen] = '\0';
    q->upstream_ms = res->ms;
    q->nattempts = res->nattempts <= GW_PROXY_MAX_ATTEMPTS ? res->nattempts : 0;
    memcpy(q->attempts, res->attempts, q->nattempts * sizeof(*q->attempts));
    if (res->err != GW_OK) {
        gw_stat_add(&c->w->stats->upstream_errors, 1);
        /* no connection freed up within queue_timeout_ms: the reason says
         * so (nothing was sent, no attempt) */
        int queued = res->err == GW_ERR_UPSTREAM_TIMEOUT && res->nattempts == 0;
        if (queued)
            gw_stat_add(&c->w->stats->upstream_queue_timeouts, 1);
        fail(q, res->err, queued ? res->detail : NULL, 0);
        return;
    }
    q->upstream_status = res->resp->status;
    if (c->w->draining && q->stream == NULL)
        c->close_after = 1;
    gw_fwd_resp_ctx rc = resp_ctx(c, q);
    size_t len = 0;
    char *bytes = gw_forward_response(res->resp, &rc, &len);
    if (bytes == NULL) {
        fail(q, GW_ERR_INTERNAL, NULL, 1);
        return;
    }
    send_bytes(q, bytes, len, res->resp->status);
}

/* ---- dispatch ---- */

/* The body a request may carry, decided from its method and path as soon as
 * its header block is parsed: the /token form (whatever the method), or what
 * the matched route declares (max_body_bytes, 0 = none). An unknown path or
 * method takes no body: nothing is buffered for a caller before the gateway
 * knows what it may send. */
size_t gw_request_body_limit(void *arg, const gw_http_request *r)
{
    gw_conn *c = arg;
    const gw_server *srv = c->w->srv;
    /* any method: the token endpoint answers a GET with its own OAuth error */
    size_t li = local_index(srv, r->path, r->path_len);
    if (li < NLOCAL && local_routes[li].kind == GW_LOCAL_TOKEN)
        return GW_TOKEN_FORM_MAX;
    gw_route_match m;
    if (gw_route_match_path(&srv->conf->routes, r->method, r->path, r->path_len, &m) ==
        GW_ROUTE_FOUND)
        return m.route->max_body_bytes;
    return 0;
}

/* Send the admitted request upstream, with the identity the stages
 * established (the journal stage holds room for its record). */
static void forward(gw_conn *c, gw_request *q)
{
    const gw_access *a = &q->a;
    const gw_results *res = &a->res;
    const gw_http_request *http = q->http;
    const gw_route *route = res->route.route;
    const gw_policy *policy = res->mtls.policy;
    const gw_upstream *up = &c->w->srv->upstreams[route->upstream_idx];
    gw_extra_header extra[GW_REPLY_MAX_HEADERS + 5];
    size_t n = 0;
    for (size_t i = 0; i < a->reply.nup_headers; i++)
        extra[n++] = a->reply.up_headers[i];
    gw_assertion_hdrs assertion = {0};
    if (policy != NULL) {
        extra[n++] = (gw_extra_header){"X-Consumer-Id", policy->client_id};
        extra[n++] = (gw_extra_header){"X-Habilitation-Id", policy->id};
        extra[n++] = (gw_extra_header){"X-Opale-Env", gw_env_name(a->req.env)};
        if (a->svc.oauth != NULL) {
            /* token/assertion.h: a cached grant + a MAC of this request
             * (default), or a JWS signed for it (per_request) */
            gw_assertion_req ar = {
                .client_id = policy->client_id,
                .habilitation = policy->id,
                .env = a->req.env,
                .scope = res->bearer.has_token ? res->bearer.claims.scope : "",
                .request_id = q->request_id,
                .method = http->method,
                .target = res->route.target,
                .target_len = res->route.target_len,
                .now = a->req.now,
            };
            if (gw_assertion_build(a->svc.oauth, gw_assert_cache_thread(a->svc.oauth), &ar,
                                   &assertion) < 0) {
                gw_assertion_hdrs_clear(&assertion);
                fail(q, GW_ERR_INTERNAL, "assertion.sign", 1);
                return;
            }
            extra[n++] = (gw_extra_header){"X-JWT-Assertion", assertion.assertion};
            if (assertion.mac[0] != '\0')
                extra[n++] = (gw_extra_header){GW_MAC_HEADER, assertion.mac};
        }
    }
    gw_fwd_req_ctx fc = {
        .target = res->route.target,
        .target_len = res->route.target_len,
        .allow = (const char *const *)route->headers,
        .nallow = route->nheaders,
        .body = route->max_body_bytes > 0,
        .host = up->host_header,
        .client_ip = res->ipallow.ip[0] ? res->ipallow.ip : c->client_ip,
        .request_id = q->request_id,
        .correlation_id = q->has_corr ? q->correlation_id : NULL,
        .close = up->conf->pool_size == 0,
        .extra = extra,
        .nextra = n,
    };
    size_t len = 0;
    char *bytes = gw_forward_request(http, &fc, &len);
    gw_assertion_hdrs_clear(&assertion);
    if (bytes == NULL) {
        fail(q, GW_ERR_INTERNAL, NULL, 1);
        return;
    }
    int head = strcmp(http->method, "HEAD") == 0;
    int idem = head || strcmp(http->method, "GET") == 0;
    /* the call takes <bytes> over */
    q->call = gw_proxy_send(c->w->pools[route->upstream_idx], bytes, len, head, idem,
                            route->max_response_bytes, proxy_done, q);
    if (q->call == NULL)
        fail(q, GW_ERR_INTERNAL, NULL, 1);
}

static void refused(gw_conn *c, gw_request *q)
{
    const gw_reply *r = &q->a.reply;
    respond_with(q, r->err, r->reason, r->body, r->status, 0);
}

/* The listener's list has decided (now, or later from a suspended stage). */
static void access_done(gw_access *a, gw_verdict v)
{
    gw_request *q = a->owner;
    if (v == GW_STAGE_REJECT)
        refused(q->conn, q);
    else
        forward(q->conn, q);
}

static void jwks(gw_conn *c, gw_request *q)
{
    const gw_http_request *http = q->http;
    gw_access *a = &q->a;
    if (strcmp(http->method, "GET") != 0 && strcmp(http->method, "HEAD") != 0) {
        gw_reply_header(&a->reply, "Allow", "GET, HEAD");
        fail(q, GW_ERR_METHOD_NOT_ALLOWED, NULL, 0);
        return;
    }
    /* an answer, not a refusal: its record has room held like any other
     * allowed exchange (never summarised) */
    if (gw_pipeline_run(a) != GW_STAGE_NEXT) {
        refused(c, q);
        return;
    }
    gw_fwd_resp_ctx rc = resp_ctx(c, q);
    size_t len = 0;
    const char *set = a->svc.oauth->jwks_json;
    char *bytes = gw_local_response(200, "application/jwk-set+json", set, strlen(set), &rc, &len);
    if (bytes == NULL) {
        fail(q, GW_ERR_INTERNAL, NULL, 1);
        return;
    }
    send_bytes(q, bytes, len, 200);
}

/* /token: the token list (identity stages, journal gate, the endpoint);
 * every answer in the OAuth form but the gateway's own failures. */
static void token(gw_conn *c, gw_request *q)
{
    gw_access *a = &q->a;
    gw_token_out refusal;
    const gw_token_out *out;
    if (gw_pipeline_run(a) == GW_STAGE_NEXT) {
        out = a->res.token.reply; /* the token stage ran: its answer */
    } else {
        if (gw_token_refused(a->reply.err, &refusal) < 0) {
            refused(c, q); /* 910240 without room for the record, 500 */
            return;
        }
        out = &refusal;
    }
    gw_extra_header hdr[3];
    size_t nh = 0;
    hdr[nh++] = (gw_extra_header){"Pragma", "no-cache"};
    if (out->www_authenticate != NULL)
        hdr[nh++] = (gw_extra_header){"WWW-Authenticate", out->www_authenticate};
    if (out->retry_after[0])
        hdr[nh++] = (gw_extra_header){"Retry-After", out->retry_after};
    gw_fwd_resp_ctx rc = resp_ctx(c, q);
    rc.extra = hdr;
    rc.nextra = nh;
    if (out->status == 200) {
        memcpy(q->token_jti, out->jti, sizeof(q->token_jti));
        gw_stat_add(&c->w->stats->tokens_issued, 1);
    } else {
        /* journal the refusal with the table's closest row and the precise reason */
        q->err = out->status == 429   ? GW_ERR_THROTTLED
                 : out->status == 401 ? GW_ERR_TOKEN_INVALID
                 : out->status >= 500 ? GW_ERR_INTERNAL
                                      : GW_ERR_BAD_REQUEST;
        q->reason = out->reason;
    }
    size_t len = 0;
    char *bytes = NULL;
    if (out->body != NULL)
        bytes = gw_local_response(out->status, "application/json;charset=UTF-8", out->body,
                                  strlen(out->body), &rc, &len);
    if (out == &refusal)
        free(refusal.body);
    if (bytes == NULL) {
        fail(q, GW_ERR_INTERNAL, NULL, 1);
        return;
    }
    send_bytes(q, bytes, len, out->status);
}

/* Serve <q> (its http set): the gateway's own routes or the listener's
 * list of stages, then the upstream. */
/* The journal stage's wake of the writer, made at the end of the pass. */
static void jbatch_wake(void *arg)
{
    gw_jbatch_wake(arg);
}

static void serve(gw_conn *c, gw_request *q)
{
    gw_server *srv = c->w->srv;
    gw_http_request *http = q->http;
    if (gw_correlation_read(http, q->correlation_id) == 1)
        q->has_corr = 1;

    gw_access *a = &q->a;
    a->req = (gw_req_view){
        .http = http,
        .env = c->lis->conf->env,
        .has_cert = c->peer.has_cert,
        .cert_sha256 = c->peer.sha256,
        .peer_family = c->peer_family,
        .peer_ip = c->client_ip,
        .proxied = c->proxied,
        .proxy_family = c->proxied ? c->pp->family : 0,
        .proxy_ip = c->proxied ? c->pp->ip : NULL,
        .now = time(NULL),
        .request_id = q->request_id,
    };
    memcpy(a->req.peer_addr, c->peer_addr, sizeof(a->req.peer_addr));
    if (c->proxied)
        memcpy(a->req.proxy_addr, c->pp->addr, sizeof(a->req.proxy_addr));
    a->svc = (gw_services){
        .routes = &srv->conf->routes,
        .policies = c->w->policies != NULL ? gw_policy_set_ref(c->w->policies) : NULL,
        .suspensions = srv->susp,
        .tz = gw_stage_lists_tz(srv->stages),
        .oauth = srv->oauth,
        .token_cache = c->w->token_cache,
        .quota = srv->quota,
        .deny_cache = c->w->deny_cache,
        .redis = c->w->redis,
        .token_rate = srv->token_rate,
        .journal = srv->journal,
        .journal_continue = srv->conf->journal.on_failure_continue,
        .journal_wake = jbatch_wake,
        .journal_wake_arg = c->w->jbatch,
    };
    a->owner = q;
    size_t li = local_index(srv, http->path, http->path_len);
    if (li < NLOCAL) {
        q->local = local_routes[li].kind;
        a->list = gw_stage_list(srv->stages, local_routes[li].list);
        if (q->local == GW_LOCAL_TOKEN)
            token(c, q);
        else
            jwks(c, q);
        return;
    }
    a->list =
        gw_stage_list(srv->stages, c->lis->conf->access_off ? GW_LIST_ROUTE_ONLY : GW_LIST_GUARDED);
    a->on_done = access_done;
    gw_verdict v = gw_pipeline_run(a);
    if (v != GW_STAGE_SUSPEND)
        access_done(a, v);
}

void gw_request_dispatch(gw_conn *c, gw_http_request *http)
{
    gw_request *q = req_new(c);
    if (q == NULL) {
        gw_http_request_free(http);
        gw_conn_fail(c);
        return;
    }
    q->http = http;
    c->req = q;
    serve(c, q);
}

gw_request *gw_request_dispatch_stream(gw_conn *c, struct gw_h2_stream *s, gw_http_request *http,
                                       uint64_t t0, long bytes_in)
{
    gw_request *q = req_new(c);
    if (q == NULL) {
        gw_http_request_free(http);
        return NULL;
    }
    q->stream = s;
    q->http = http;
    q->t0 = t0;
    q->bytes_in = bytes_in;
    serve(c, q);
    return q;
}
