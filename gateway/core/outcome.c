/*
 * The outcome module: a finished request (or a connection refused before
 * any request) becomes its journal record, its security events and its
 * metrics. The only place that reads a request's results: what the stages
 * decided (gw_results), what the upstream answered, what was sent.
 */
#include "core/outcome.h"

#include <stdlib.h>
#include <string.h>

#include "core/jbatch.h"
#include "core/reqstate.h"
#include "journal/events.h"
#include "journal/journal.h"
#include "lib/util.h"

static gw_stats *stats(gw_conn *c)
{
    return c->w->stats;
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

/* A value of the request as sent, bounded (<cap> - 1 bytes), "" when absent
 * or longer. */
static void copy_param(char *dst, size_t cap, const char *v, size_t n)
{
    if (v == NULL || n == 0 || n >= cap) {
        dst[0] = '\0';
        return;
    }
    memcpy(dst, v, n);
    dst[n] = '\0';
}

/* The strings a record points at while it is formatted. */
typedef struct rec_bufs {
    char ts[32];
    char rid[37];
    char siren[16];
    char annee[8];
    char *path;        /* path_s, or malloc'd when longer */
    char *teleservice; /* tsv_s, or malloc'd when longer */
    char path_s[256];
    char tsv_s[64];
    gw_journal_attempt at[GW_PROXY_MAX_ATTEMPTS];
} rec_bufs;

/* <s>/<n> as a C string: in <small> (<cap> bytes) when it fits, else a
 * malloc'd copy (NULL when out of memory); see rec_bufs_free. */
static char *rec_str(const char *s, size_t n, char *small, size_t cap)
{
    if (n >= cap)
        return strndup(s, n);
    memcpy(small, s, n);
    small[n] = '\0';
    return small;
}

static void rec_bufs_free(rec_bufs *b)
{
    if (b->path != b->path_s)
        free(b->path);
    if (b->teleservice != b->tsv_s)
        free(b->teleservice);
}

/* The one function that fills a journal record: the connection's fields,
 * then, for a request <q> (NULL: a connection refused before any request,
 * with <reason>), what it asked, what the stages decided and what was
 * answered. */
static void fill_record(gw_journal_rec *r, rec_bufs *b, gw_conn *c, gw_request *q,
                        const char *reason)
{
    memset(r, 0, sizeof(*r));
    gw_time_iso_ms(b->ts);
    r->ts = b->ts;
    r->env = gw_env_name(c->lis->conf->env);
    r->listener = c->lis->conf->name;
    r->client_port = c->client_port;
    r->upstream_status = -1;
    r->upstream_ms = -1;
    r->tls_version = c->peer.version;
    r->tls_cert_sha256 = c->peer.has_cert ? c->peer.sha256 : NULL;
    r->tls_subject = c->peer.has_cert ? c->peer.subject : NULL;
    const char *conn_ip = c->proxied ? c->pp->ip : c->client_ip;
    r->client_ip = conn_ip;
    if (q == NULL) {
        r->bytes_in = -1;
        r->bytes_out = -1;
        r->ms = -1;
        gw_uuid4(b->rid);
        r->request_id = b->rid;
        r->decision = "deny";
        r->reason = reason;
        return;
    }
    const gw_results *res = &q->a.res;
    const gw_err_def *d = gw_err(q->err);
    r->protocol = q->stream != NULL ? "h2" : NULL;
    r->request_id = q->request_id;
    r->status = q->status;
    r->ms = (long)(gw_now_ms() - q->t0);
    r->bytes_in = q->bytes_in;
    r->bytes_out = q->bytes_out;
    r->code = q->err == GW_OK ? NULL : d->code;
    r->route = gw_local_name(q->local);
    if (q->http == NULL) {
        /* refused before a request was parsed */
        r->decision = q->err == GW_OK || is_failure(q->err) ? "error" : "deny";
        r->reason = q->reason ? q->reason : d->reason;
        return;
    }
    r->correlation_id = q->has_corr ? q->correlation_id : NULL;
    if (res->ipallow.ip[0])
        r->client_ip = res->ipallow.ip;
    const gw_policy *p = res->mtls.policy;
    if (p != NULL) {
        r->consumer = p->client_id;
        r->habilitation = p->id;
    }
    const gw_route *route = res->route.route;
    r->scope = route != NULL ? route->scope : NULL;
    if (res->quota.ran) {
        r->quota_limit = (long)res->quota.limit;
        r->quota_remaining = (long)res->quota.remaining;
        r->quota_store = res->quota.store;
    }
    if (res->bearer.has_token || res->bearer.token_identified) {
        r->token_jti = res->bearer.claims.jti;
        r->token_client_id = res->bearer.claims.client_id;
    } else if (q->token_jti[0]) {
        r->token_jti = q->token_jti;
        r->token_client_id = p ? p->client_id : NULL;
    }
    r->method = q->http->method;
    /* what was asked of the backend: the canonical path and the query
     * re-serialised from the validated values (docs/journal.md) */
    int canon = route != NULL && res->route.path_len > 0;
    b->path = canon ? rec_str(res->route.target, res->route.path_len, b->path_s, sizeof(b->path_s))
                    : rec_str(q->http->path, q->http->path_len, b->path_s, sizeof(b->path_s));
    r->path = b->path;
    r->query = res->route.query_ok && res->route.query.canonical_len > 0
                   ? res->route.query.canonical
                   : NULL;
    /* the header as sent, whatever its length: the journal bounds it
     * (GW_JOURNAL_FIELD_MAX) and records the length it had */
    size_t tsl = 0;
    const char *tsv = gw_http_request_header(q->http, "ID_Teleservice", &tsl);
    b->teleservice = tsv != NULL && tsl > 0 ? rec_str(tsv, tsl, b->tsv_s, sizeof(b->tsv_s)) : NULL;
    r->teleservice = b->teleservice;
    if (route != NULL)
        r->route = route->name;
    /* the SIREN and the year as the route stage parsed them (journalled
     * even when a later stage refused them) */
    if (route != NULL) {
        size_t sl = 0;
        const char *siren = gw_route_param(&res->route.match, "siren", &sl);
        copy_param(b->siren, sizeof(b->siren), siren, sl);
    }
    size_t yl = 0;
    const char *annee = res->route.query_ok ? gw_query_get(&res->route.query, "annee", &yl) : NULL;
    copy_param(b->annee, sizeof(b->annee), annee, yl);
    r->siren = b->siren[0] ? b->siren : NULL;
    r->annee = b->annee[0] ? b->annee : NULL;
    if (q->upstream_addr[0]) {
        r->upstream_addr = q->upstream_addr;
        r->upstream_status = q->upstream_status > 0 ? q->upstream_status : -1;
        r->upstream_ms = q->upstream_ms;
    }
    for (size_t i = 0; i < q->nattempts; i++)
        b->at[i] = (gw_journal_attempt){q->attempts[i].addr, q->attempts[i].outcome,
                                        q->attempts[i].status, q->attempts[i].ms};
    r->upstream_attempts = b->at;
    r->upstream_nattempts = q->upstream_addr[0] ? q->nattempts : 0;
    r->decision = q->err == GW_OK ? "allow" : is_failure(q->err) ? "error" : "deny";
    r->reason = q->err == GW_OK ? NULL : q->reason ? q->reason : d->reason;
}

/* Submit <r> (through the worker's batch: core/jbatch.h). A request holding a journal reservation
 * (the journal stage) submits against it (never refused for room) and the reservation is consumed;
 * any other record is a refusal, which the journal may summarise instead. */
static void submit(gw_conn *c, const gw_journal_rec *r, gw_request *q)
{
    size_t len = 0;
    char *line = gw_journal_format(r, &len);
    /* a refused submit is counted by the journal itself (stats.dropped);
     * journal_refused counts only the records that could not be formatted */
    gw_journal *j = c->w->srv->journal;
    gw_journal_out *jo = q != NULL ? &q->a.res.journal : NULL;
    if (jo != NULL && jo->reserved) {
        jo->reserved = 0; /* consumed here: the stage's done() has nothing to give back */
        if (line == NULL) {
            gw_journal_release(j);
            gw_stat_add(&stats(c)->journal_refused, 1);
        } else {
            gw_jbatch_add(c->w->jbatch, GW_JLINE_RESERVED, line, len, NULL);
        }
    } else if (line == NULL) {
        gw_stat_add(&stats(c)->journal_refused, 1);
    } else if (jo != NULL && jo->unreserved) {
        /* "continue": written if it can, else counted lost */
        gw_jbatch_add(c->w->jbatch, GW_JLINE_PLAIN, line, len, NULL);
    } else {
        gw_jbatch_add(c->w->jbatch, GW_JLINE_REFUSAL, line, len,
                      r->reason != NULL ? r->reason : r->decision);
    }
}

/* ---- security events (journal/events.h) ---- */

/* <siren>: as journalled, the value sent (even when refused). */
static void events_request(gw_conn *c, gw_request *q, const char *siren)
{
    gw_server *srv = c->w->srv;
    if (srv->events == NULL)
        return;
    const gw_results *res = &q->a.res;
    gw_event_request e;
    memset(&e, 0, sizeof(e));
    e.client_ip = res->ipallow.ip[0] ? res->ipallow.ip : c->proxied ? c->pp->ip : c->client_ip;
    e.cert_sha256 = c->peer.has_cert ? c->peer.sha256 : NULL;
    e.cert_subject = c->peer.has_cert ? c->peer.subject : NULL;
    if (res->mtls.policy != NULL) {
        e.consumer = res->mtls.policy->client_id;
        e.habilitation = res->mtls.policy->id;
        e.contact = res->mtls.policy->contact_technical;
        e.valid_until = res->mtls.policy->valid_until;
    }
    e.siren = siren != NULL && siren[0] ? siren : NULL;
    e.reason = q->reason ? q->reason : gw_err(q->err)->reason;
    /* mtls.* (910201), bearer.* (900901/900902), /token's invalid_client */
    e.auth_failure = q->err == GW_ERR_CERT_UNKNOWN || q->err == GW_ERR_TOKEN_INVALID ||
                     q->err == GW_ERR_TOKEN_MISSING;
    e.cert_unknown = c->peer.has_cert && res->mtls.policy == NULL &&
                     (q->err == GW_ERR_CERT_UNKNOWN ||
                      (q->local != GW_LOCAL_NONE && q->err == GW_ERR_TOKEN_INVALID));
    e.throttled = q->status == 429;
    if (q->err == GW_ERR_MAINTENANCE && res->maintenance.active)
        e.maintenance_until = (long long)res->maintenance.until;
    gw_events_request(srv->events, &e);
}

/* <refused>: the journal reason of a refused handshake; NULL: completed. */
static void events_handshake(gw_conn *c, const char *refused)
{
    gw_event_handshake h = {
        .client_ip = c->proxied ? c->pp->ip : c->client_ip,
        .cert_sha256 = c->peer.has_cert ? c->peer.sha256 : NULL,
        .cert_subject = c->peer.has_cert ? c->peer.subject : NULL,
        .not_after = c->peer.not_after,
        .refused = refused,
    };
    gw_events_handshake(c->w->srv->events, &h);
}

void gw_outcome_handshake_done(gw_conn *c)
{
    events_handshake(c, NULL);
}

void gw_outcome_refused(gw_conn *c, const char *reason, int handshake)
{
    if (handshake)
        gw_stat_add(&stats(c)->handshakes_failed, 1);
    gw_stat_add(&stats(c)->handshake_reason[gw_tls_reason_index(reason)], 1);
    gw_journal_rec r;
    rec_bufs b;
    memset(&b, 0, sizeof(b));
    fill_record(&r, &b, c, NULL, reason);
    submit(c, &r, NULL);
    if (handshake)
        events_handshake(c, reason);
}

/* ---- metrics ---- */

static void record_stats(gw_conn *c, gw_request *q)
{
    gw_stats *s = stats(c);
    const gw_results *res = &q->a.res;
    gw_stat_add(&s->requests, 1);
    int cls = q->status / 100;
    if (cls >= 0 && cls < 6)
        gw_stat_add(&s->responses_by_class[cls], 1);
    if (q->err != GW_OK)
        gw_stat_add(&s->denials[q->err], 1);
    int quota_decided = res->quota.ran || res->quota.degraded;
    int quota_refused = q->err == GW_ERR_THROTTLED || q->err == GW_ERR_QUOTA_UNAVAILABLE;
    if (quota_decided) {
        gw_stat_add(quota_refused ? &s->quota_refused : &s->quota_admitted, 1);
        if (res->quota.deny_cached)
            gw_stat_add(&s->quota_deny_cache_hits, 1);
        if (res->quota.degraded)
            gw_stat_add(&s->quota_degraded, 1);
        /* a gauge shared by the workers: written only when it changes */
        atomic_int *g = &c->w->srv->stats.quota_store_degraded;
        if (atomic_load_explicit(g, memory_order_relaxed) != res->quota.degraded)
            atomic_store_explicit(g, res->quota.degraded, memory_order_relaxed);
    }
    /* by route: the table's index, then the gateway's own routes by kind,
     * then "none" */
    size_t ri = GW_ROUTE_MAX_ROUTES + 2;
    if (res->route.route != NULL)
        ri = (size_t)(res->route.route - c->w->srv->conf->routes.routes);
    else if (q->local == GW_LOCAL_TOKEN)
        ri = GW_ROUTE_MAX_ROUTES;
    else if (q->local == GW_LOCAL_JWKS)
        ri = GW_ROUTE_MAX_ROUTES + 1;
    if (ri < GW_ROUTE_MAX_ROUTES + 3 && cls >= 0 && cls < 6)
        gw_stat_add(&s->route_class[ri][cls], 1);
    if (res->mtls.policy != NULL) {
        int qo = quota_decided ? (quota_refused ? -1 : 1) : 0;
        gw_consumer_count(c->w->srv, c->w->id, res->mtls.policy->client_id, q->status, qo);
    }
    if (q->upstream_addr[0] && q->upstream_ms >= 0) {
        size_t ub = 0;
        while (ub < 11 && (unsigned long)q->upstream_ms > gw_latency_bounds_ms[ub])
            ub++;
        gw_stat_add(&s->upstream_latency_bucket[ub], 1);
        gw_stat_add(&s->upstream_latency_sum_ms, (unsigned long)q->upstream_ms);
    }
    unsigned long ms = (unsigned long)(gw_now_ms() - q->t0);
    size_t b = 0;
    while (b < 11 && ms > gw_latency_bounds_ms[b])
        b++;
    gw_stat_add(&s->latency_bucket[b], 1);
    gw_stat_add(&s->latency_sum_ms, ms);
}

void gw_outcome_request(gw_conn *c, gw_request *q)
{
    gw_journal_rec r;
    rec_bufs b;
    memset(&b, 0, sizeof(b));
    fill_record(&r, &b, c, q, NULL);
    events_request(c, q, b.siren);
    submit(c, &r, q);
    rec_bufs_free(&b);
    record_stats(c, q);
}
