#include "admin/admin.h"

#include <errno.h>
#include <sys/statvfs.h>
#include <sys/queue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "admin/auth.h"
#include "admin/bodies.h"
#include "admin/console.h"
#include "admin/eventlog.h"
#include "admin/operators.h"
#include "admin/recette.h"
#include "admin/routes.h"
#include "admin/series.h"
#include "admin/session.h"
#include "admin/views.h"
#include "core/h2.h"
#include "datapass/datapass.h"
#include "lib/util.h"
#include "revoc/revoc.h"

struct gw_admin {
    struct evhttp *http;
    gw_server *srv;
    gw_journal *journal;
    const gw_conf *conf;
    gw_admin_operators ops;        /* named operators and their tokens (admin/operators.h) */
    gw_admin_sessions sessions;    /* console sessions (admin/session.h) */
    const gw_admin_operator *cur;  /* the operator of the request being handled, else NULL */
    gw_admin_session *cur_session; /* its session when it came with the cookie */
    gw_admin_auth auth;            /* failed authentications by source (admin/auth.h) */
    unsigned long auth_failures;   /* metrics: 401 answered */
    unsigned long auth_throttled;  /* metrics: 429 answered to a blocked source */
    gw_holds *holds;               /* legal holds (gw_admin_set_journal), the caller's */
    gw_anchors *anchors;           /* anchoring off the host, NULL when not configured */
    struct event *sweep;           /* expired suspensions, once a second */
    /* the console's figures (admin/series.h), sampled by the sweep */
    gw_series series;
    gw_usage *usage;
    int64_t sampled_s;                 /* the last second sampled */
    uint64_t checkpoints, tail_checks; /* the journal's, at the last sample */
    int64_t last_checkpoint, verified_at;
    gw_eventlog *log;         /* recent security events (admin/eventlog.h) */
    gw_events_observer obs;   /* feeds <log> */
    gw_admin_recette recette; /* the last partner page's report (admin/recette.h) */
};

static const char *status_phrase(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 503:
        return "Service Unavailable";
    default:
        return "Internal Server Error";
    }
}

/* The headers of every console and admin answer (admin/console.h). */
static void security_headers(struct evhttp_request *req)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    for (const gw_admin_header *x = gw_admin_security_headers; x->name != NULL; x++)
        evhttp_add_header(h, x->name, x->value);
}

static void reply(struct evhttp_request *req, int code, const char *ctype, struct evbuffer *b)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
    security_headers(req);
    evhttp_send_reply(req, code, status_phrase(code), b);
}

static void metric(struct evbuffer *b, const char *name, const char *help, const char *type)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

#define LD(x) atomic_load_explicit(&(x), memory_order_relaxed)

/* Tail checks, legal holds and anchoring (docs/journal.md). */
static void journal_integrity_metrics(gw_admin *a, struct evbuffer *b, const gw_journal_stats *js)
{
    metric(b, "opale_journal_broken",
           "1 once a tail check found the journal broken (no more exchanges are served).", "gauge");
    evbuffer_add_printf(b, "opale_journal_broken %llu\n", (unsigned long long)js->broken);
    metric(b, "opale_journal_tail_checks_total", "Periodic tail checks of the journal.", "counter");
    evbuffer_add_printf(b, "opale_journal_tail_checks_total %llu\n",
                        (unsigned long long)js->tail_checks);
    metric(b, "opale_journal_holds", "Legal holds in force (retention suspended while > 0).",
           "gauge");
    evbuffer_add_printf(b, "opale_journal_holds %zu\n", gw_holds_count(a->holds));
    metric(b, "opale_journal_retention_held_total",
           "Retention passes that deleted nothing because of a legal hold.", "counter");
    evbuffer_add_printf(b, "opale_journal_retention_held_total %llu\n",
                        (unsigned long long)js->retention_held);
    if (a->anchors == NULL)
        return;
    gw_anchor_stats as;
    gw_anchors_get_stats(a->anchors, &as);
    metric(b, "opale_journal_anchors_sent_total", "Checkpoint anchors accepted off the host.",
           "counter");
    evbuffer_add_printf(b, "opale_journal_anchors_sent_total %llu\n", (unsigned long long)as.sent);
    metric(b, "opale_journal_anchor_failures_total",
           "Failed attempts to send an anchor (each retry counts).", "counter");
    evbuffer_add_printf(b, "opale_journal_anchor_failures_total %llu\n",
                        (unsigned long long)as.failed);
    metric(b, "opale_journal_anchors_dropped_total",
           "Anchors dropped from a full queue (a newer anchor covers them).", "counter");
    evbuffer_add_printf(b, "opale_journal_anchors_dropped_total %llu\n",
                        (unsigned long long)as.dropped);
    metric(b, "opale_journal_anchors_pending", "Anchors waiting to be sent.", "gauge");
    evbuffer_add_printf(b, "opale_journal_anchors_pending %llu\n", (unsigned long long)as.pending);
    metric(b, "opale_journal_anchor_failing", "1 while the last attempt to send an anchor failed.",
           "gauge");
    evbuffer_add_printf(b, "opale_journal_anchor_failing %d\n", as.failing);
}

/* Security events (journal/events.h). */
/* The /readyz verdict. Rejected policy files do not make the instance
 * unready: the other partners are served (docs/policies.md, "When a file is
 * rejected"). */
static int is_ready(gw_admin *a, const gw_policy_set *ps)
{
    return gw_server_ready(a->srv) && ps != NULL && gw_server_journal_ok(a->srv);
}

static void security_metrics(gw_admin *a, struct evbuffer *b)
{
    gw_events *ev = gw_server_events(a->srv);
    if (ev == NULL)
        return;
    gw_events_stats es;
    gw_events_get_stats(ev, &es);
    metric(b, "opale_security_events_total", "Security events raised, by type.", "counter");
    for (int i = 0; i < GW_EV__COUNT; i++)
        evbuffer_add_printf(b, "opale_security_events_total{event=\"%s\"} %llu\n",
                            gw_event_type_name((gw_event_type)i),
                            (unsigned long long)es.by_type[i]);
    metric(b, "opale_security_events_unwritten_total",
           "Security event records the stream refused or could not write.", "counter");
    gw_journal_stats js;
    gw_journal_get_stats(gw_events_journal(ev), &js);
    evbuffer_add_printf(b, "opale_security_events_unwritten_total %llu\n",
                        (unsigned long long)(es.refused + js.dropped));
    metric(b, "opale_security_events_subjects", "Subjects tracked by the detectors.", "gauge");
    evbuffer_add_printf(b, "opale_security_events_subjects %llu\n", (unsigned long long)es.tracked);
    metric(b, "opale_security_events_evicted_total",
           "Subjects evicted from the detectors to stay within their caps.", "counter");
    evbuffer_add_printf(b, "opale_security_events_evicted_total %llu\n",
                        (unsigned long long)es.evicted);
    metric(b, "opale_security_alerts_total", "Alert hook runs by outcome.", "counter");
    evbuffer_add_printf(b,
                        "opale_security_alerts_total{outcome=\"run\"} %llu\n"
                        "opale_security_alerts_total{outcome=\"failed\"} %llu\n"
                        "opale_security_alerts_total{outcome=\"rate_limited\"} %llu\n"
                        "opale_security_alerts_total{outcome=\"dropped\"} %llu\n",
                        (unsigned long long)es.alerts_run, (unsigned long long)es.alerts_failed,
                        (unsigned long long)es.alerts_rate_limited,
                        (unsigned long long)es.alerts_dropped);
}

/* One family per pass over the consumers: the exposition format wants the
 * samples of a family together, after its HELP and TYPE. */
static void consumer_requests_metric(void *arg, const char *id, const gw_consumer_counts *c)
{
    struct evbuffer *b = arg;
    for (int k = 1; k < 6; k++)
        if (c->by_class[k] > 0)
            evbuffer_add_printf(b,
                                "opale_consumer_requests_total{consumer=\"%s\",class=\"%dxx\"} "
                                "%lu\n",
                                id, k, c->by_class[k]);
}

static void consumer_quota_metric(void *arg, const char *id, const gw_consumer_counts *c)
{
    struct evbuffer *b = arg;
    evbuffer_add_printf(
        b,
        "opale_consumer_quota_decisions_total{consumer=\"%s\",outcome=\"admitted\"} "
        "%lu\n",
        id, c->quota_admitted);
    evbuffer_add_printf(b,
                        "opale_consumer_quota_decisions_total{consumer=\"%s\",outcome=\"refused\"} "
                        "%lu\n",
                        id, c->quota_refused);
}

/* A latency histogram kept in milliseconds (gw_latency_bounds_ms), exposed
 * in seconds, the base unit. <bucket> holds 12 non-cumulative counts, the
 * last one above the largest bound. */
static void duration_histogram(struct evbuffer *b, const char *name, const char *help,
                               const atomic_ulong *bucket, unsigned long sum_ms)
{
    metric(b, name, help, "histogram");
    unsigned long cum = 0;
    for (int i = 0; i < 11; i++) {
        cum += atomic_load_explicit(&bucket[i], memory_order_relaxed);
        evbuffer_add_printf(b, "%s_bucket{le=\"%g\"} %lu\n", name, gw_latency_bounds_ms[i] / 1000.0,
                            cum);
    }
    cum += atomic_load_explicit(&bucket[11], memory_order_relaxed);
    evbuffer_add_printf(b, "%s_bucket{le=\"+Inf\"} %lu\n", name, cum);
    evbuffer_add_printf(b, "%s_sum %.3f\n", name, sum_ms / 1000.0);
    evbuffer_add_printf(b, "%s_count %lu\n", name, cum);
}

/* HTTP/2 (docs/metrics.md, docs/security.md "HTTP/2"). */
static void h2_metrics(gw_stats *s, struct evbuffer *b)
{
    metric(b, "opale_h2_connections_total", "Client connections that selected ALPN h2.", "counter");
    evbuffer_add_printf(b, "opale_h2_connections_total %lu\n", LD(s->h2_connections));
    metric(b, "opale_h2_streams_total", "HTTP/2 streams opened by clients.", "counter");
    evbuffer_add_printf(b, "opale_h2_streams_total %lu\n", LD(s->h2_streams));
    metric(b, "opale_h2_abuse_total", "HTTP/2 connections ended by a GOAWAY for an abuse, by kind.",
           "counter");
    for (int k = 0; k < GW_H2_ABUSE__COUNT; k++)
        evbuffer_add_printf(b, "opale_h2_abuse_total{kind=\"%s\"} %lu\n", gw_h2_abuse_name(k),
                            LD(s->h2_abuse[k]));
}

static void metrics(gw_admin *a, struct evbuffer *b)
{
    gw_stats *s = gw_server_stats(a->srv);
    metric(b, "opale_connections_accepted_total", "Client connections accepted.", "counter");
    evbuffer_add_printf(b, "opale_connections_accepted_total %lu\n", LD(s->connections_accepted));
    metric(b, "opale_connections_open", "Client connections open now.", "gauge");
    evbuffer_add_printf(b, "opale_connections_open %lu\n", LD(s->connections_open));
    metric(b, "opale_connections_limit_reached_total",
           "Times a worker stopped accepting at max_connections.", "counter");
    evbuffer_add_printf(b, "opale_connections_limit_reached_total %lu\n",
                        LD(s->connections_refused));
    metric(b, "opale_tls_handshake_failures_total", "Refused or failed TLS handshakes.", "counter");
    evbuffer_add_printf(b, "opale_tls_handshake_failures_total %lu\n", LD(s->handshakes_failed));
    metric(b, "opale_accept_fd_exhausted_total",
           "accept() failures for want of a file descriptor (each pauses accepting).", "counter");
    evbuffer_add_printf(b, "opale_accept_fd_exhausted_total %lu\n", LD(s->accept_fd_exhausted));
    metric(b, "opale_handshakes_refused_per_source_total",
           "Connections closed at once: their address held max_handshakes_per_source.", "counter");
    evbuffer_add_printf(b, "opale_handshakes_refused_per_source_total %lu\n",
                        LD(s->handshakes_refused_per_source));
    h2_metrics(s, b);
    metric(b, "opale_admin_auth_failures_total", "Admin API calls refused 401.", "counter");
    evbuffer_add_printf(b, "opale_admin_auth_failures_total %lu\n", a->auth_failures);
    metric(b, "opale_admin_auth_throttled_total",
           "Admin API calls refused 429 (source blocked after failed authentications).", "counter");
    evbuffer_add_printf(b, "opale_admin_auth_throttled_total %lu\n", a->auth_throttled);
    metric(b, "opale_tcp_probes_total",
           "Client connections that ended before their first TLS byte (port probes).", "counter");
    evbuffer_add_printf(b, "opale_tcp_probes_total %lu\n", LD(s->tcp_probes));
    metric(b, "opale_requests_total", "Requests answered, by status class.", "counter");
    for (int i = 1; i < 6; i++)
        evbuffer_add_printf(b, "opale_requests_total{class=\"%dxx\"} %lu\n", i,
                            LD(s->responses_by_class[i]));
    metric(b, "opale_denials_total", "Requests refused or failed, by reason.", "counter");
    for (int i = 1; i < GW_ERR__COUNT; i++) {
        const gw_err_def *d = gw_err((gw_err_id)i);
        evbuffer_add_printf(b, "opale_denials_total{reason=\"%s\",code=\"%s\"} %lu\n", d->reason,
                            d->code, LD(s->denials[i]));
    }
    metric(b, "opale_route_requests_total", "Requests by route and status class.", "counter");
    const gw_conf *conf = gw_server_conf(a->srv);
    for (size_t r = 0; r < conf->routes.n && r < GW_ROUTE_MAX_ROUTES + 3; r++)
        for (int k = 1; k < 6; k++)
            evbuffer_add_printf(b, "opale_route_requests_total{route=\"%s\",class=\"%dxx\"} %lu\n",
                                conf->routes.routes[r].name, k, LD(s->route_class[r][k]));
    static const char *const local_names[] = {"token", "jwks", "(none)"};
    for (size_t r = 0; r < 3; r++)
        for (int k = 1; k < 6; k++)
            evbuffer_add_printf(b, "opale_route_requests_total{route=\"%s\",class=\"%dxx\"} %lu\n",
                                local_names[r], k, LD(s->route_class[GW_ROUTE_MAX_ROUTES + r][k]));
    metric(b, "opale_consumer_requests_total", "Requests by consumer and status class.", "counter");
    gw_consumer_each(a->srv, consumer_requests_metric, b);
    metric(b, "opale_consumer_quota_decisions_total", "Quota decisions by consumer and outcome.",
           "counter");
    gw_consumer_each(a->srv, consumer_quota_metric, b);
    metric(b, "opale_tls_refusals_total", "Refused handshakes by reason.", "counter");
    for (size_t r = 0; r < GW_TLS_REASONS; r++)
        evbuffer_add_printf(b, "opale_tls_refusals_total{reason=\"%s\"} %lu\n",
                            gw_tls_reason_names[r], LD(s->handshake_reason[r]));
    char *rv = gw_revoc_metrics(gw_server_revoc(a->srv)); /* CRL, OCSP, stapling */
    if (rv != NULL)
        evbuffer_add(b, rv, strlen(rv));
    free(rv);
    duration_histogram(b, "opale_upstream_duration_seconds", "Upstream exchange latency.",
                       s->upstream_latency_bucket, LD(s->upstream_latency_sum_ms));
    metric(b, "opale_upstream_errors_total", "Upstream connect, reset, timeout or protocol errors.",
           "counter");
    evbuffer_add_printf(b, "opale_upstream_errors_total %lu\n", LD(s->upstream_errors));
    duration_histogram(b, "opale_request_duration_seconds", "Whole-request latency.",
                       s->latency_bucket, LD(s->latency_sum_ms));
    metric(b, "opale_quota_decisions_total", "Quota decisions by outcome.", "counter");
    evbuffer_add_printf(b, "opale_quota_decisions_total{outcome=\"admitted\"} %lu\n",
                        LD(s->quota_admitted));
    evbuffer_add_printf(b, "opale_quota_decisions_total{outcome=\"refused\"} %lu\n",
                        LD(s->quota_refused));
    metric(b, "opale_quota_degraded_total", "Quota decisions taken without the shared store.",
           "counter");
    evbuffer_add_printf(b, "opale_quota_degraded_total %lu\n", LD(s->quota_degraded));
    metric(b, "opale_quota_deny_cache_hits_total", "Refusals answered from the deny cache.",
           "counter");
    evbuffer_add_printf(b, "opale_quota_deny_cache_hits_total %lu\n", LD(s->quota_deny_cache_hits));
    metric(b, "opale_quota_store_degraded", "1 when the last quota decision was degraded.",
           "gauge");
    evbuffer_add_printf(b, "opale_quota_store_degraded %d\n",
                        atomic_load_explicit(&s->quota_store_degraded, memory_order_relaxed));
    gw_redis_stats rs;
    if (gw_server_redis_stats(a->srv, &rs)) {
        metric(b, "opale_redis_up", "1 when every Redis connection is ready.", "gauge");
        evbuffer_add_printf(b, "opale_redis_up %d\n", rs.up);
        metric(b, "opale_redis_commands_total", "Redis commands by outcome.", "counter");
        evbuffer_add_printf(b,
                            "opale_redis_commands_total{outcome=\"sent\"} %llu\n"
                            "opale_redis_commands_total{outcome=\"replied\"} %llu\n"
                            "opale_redis_commands_total{outcome=\"timeout\"} %llu\n"
                            "opale_redis_commands_total{outcome=\"error\"} %llu\n",
                            (unsigned long long)rs.commands, (unsigned long long)rs.replies,
                            (unsigned long long)rs.timeouts, (unsigned long long)rs.errors);
        metric(b, "opale_redis_reconnects_total", "Redis reconnections.", "counter");
        evbuffer_add_printf(b, "opale_redis_reconnects_total %llu\n",
                            (unsigned long long)rs.reconnects);
        metric(b, "opale_redis_redirects_total", "Redis Cluster redirections.", "counter");
        evbuffer_add_printf(b,
                            "opale_redis_redirects_total{kind=\"moved\"} %llu\n"
                            "opale_redis_redirects_total{kind=\"ask\"} %llu\n",
                            (unsigned long long)rs.moved, (unsigned long long)rs.ask);
        metric(b, "opale_redis_command_duration_seconds", "Round trips of replied Redis commands.",
               "summary");
        evbuffer_add_printf(b,
                            "opale_redis_command_duration_seconds_sum %.6f\n"
                            "opale_redis_command_duration_seconds_count %llu\n",
                            rs.latency_us_sum / 1e6, (unsigned long long)rs.replies);
    }
    metric(b, "opale_policy_reloads_total", "Policy reloads by outcome.", "counter");
    evbuffer_add_printf(b, "opale_policy_reloads_total{outcome=\"ok\"} %lu\n", LD(s->reloads_ok));
    evbuffer_add_printf(b, "opale_policy_reloads_total{outcome=\"refused\"} %lu\n",
                        LD(s->reloads_failed));
    gw_policy_set *ps = gw_server_policies(a->srv);
    metric(b, "opale_policies", "Habilitations in the current policy set.", "gauge");
    evbuffer_add_printf(b, "opale_policies %zu\n", ps ? gw_policy_set_count(ps) : 0);
    metric(b, "opale_policy_files_rejected",
           "Policy files rejected by the last load (left out or kept at their previous version).",
           "gauge");
    evbuffer_add_printf(b, "opale_policy_files_rejected %zu\n", gw_policy_set_nrejected(ps));
    gw_policy_set_unref(ps);
    gw_journal_stats js;
    gw_journal_get_stats(a->journal, &js);
    metric(b, "opale_journal_records_total", "Journal records by outcome.", "counter");
    evbuffer_add_printf(b, "opale_journal_records_total{outcome=\"written\"} %llu\n",
                        (unsigned long long)js.written);
    evbuffer_add_printf(b, "opale_journal_records_total{outcome=\"dropped\"} %llu\n",
                        (unsigned long long)(js.dropped + LD(s->journal_refused)));
    metric(b, "opale_journal_seq", "Sequence number of the last chained record.", "gauge");
    evbuffer_add_printf(b, "opale_journal_seq %llu\n", (unsigned long long)js.seq);
    metric(b, "opale_journal_events_total", "Journal file events.", "counter");
    evbuffer_add_printf(b,
                        "opale_journal_events_total{event=\"rotation\"} %llu\n"
                        "opale_journal_events_total{event=\"checkpoint\"} %llu\n"
                        "opale_journal_events_total{event=\"retention_delete\"} %llu\n",
                        (unsigned long long)js.rotations, (unsigned long long)js.checkpoints,
                        (unsigned long long)js.files_deleted);
    metric(b, "opale_journal_write_duration_seconds", "Journal batch writes (writev).", "summary");
    evbuffer_add_printf(b,
                        "opale_journal_write_duration_seconds_sum %.6f\n"
                        "opale_journal_write_duration_seconds_count %llu\n",
                        js.write_us_sum / 1e6, (unsigned long long)js.write_batches);
    metric(b, "opale_journal_write_max_seconds", "The slowest journal batch write since start.",
           "gauge");
    evbuffer_add_printf(b, "opale_journal_write_max_seconds %.6f\n", js.write_us_max / 1e6);
    metric(b, "opale_journal_healthy", "1 while the journal writes normally.", "gauge");
    evbuffer_add_printf(b, "opale_journal_healthy %d\n", gw_journal_healthy(a->journal));
    /* availability as CGU section 11 counts it (docs/availability.md) */
    gw_policy_set *rps = gw_server_policies(a->srv);
    int ready = is_ready(a, rps), maint = gw_server_in_maintenance(a->srv);
    gw_policy_set_unref(rps);
    metric(b, "opale_ready", "1 while /readyz answers 200.", "gauge");
    evbuffer_add_printf(b, "opale_ready %d\n", ready);
    metric(b, "opale_maintenance", "1 while a maintenance slot is active (answers 503 910220).",
           "gauge");
    evbuffer_add_printf(b, "opale_maintenance %d\n", maint);
    metric(b, "opale_up", "1 when ready and outside maintenance slots.", "gauge");
    evbuffer_add_printf(b, "opale_up %d\n", ready && !maint);
    metric(b, "opale_journal_queue", "Journal records waiting to be written (lag).", "gauge");
    evbuffer_add_printf(b, "opale_journal_queue %llu\n", (unsigned long long)js.queued);
    metric(b, "opale_journal_reservations",
           "Journal slots held for requests in flight (record not yet written).", "gauge");
    evbuffer_add_printf(b, "opale_journal_reservations %llu\n", (unsigned long long)js.reserved);
    metric(b, "opale_journal_reservations_refused_total",
           "Requests refused (503 910240) because no journal slot could be reserved.", "counter");
    evbuffer_add_printf(b, "opale_journal_reservations_refused_total %llu\n",
                        (unsigned long long)js.reserve_refused);
    metric(b, "opale_journal_refusals_summarised_total",
           "Refusal records counted in a summary record instead of written one by one.", "counter");
    evbuffer_add_printf(b, "opale_journal_refusals_summarised_total %llu\n",
                        (unsigned long long)js.summarised);
    metric(b, "opale_journal_lost_pending",
           "Records lost on a write error whose gap record is not yet written.", "gauge");
    evbuffer_add_printf(b, "opale_journal_lost_pending %llu\n", (unsigned long long)js.gap_pending);
    journal_integrity_metrics(a, b, &js);
    security_metrics(a, b);
}

static void admin_journal(gw_admin *a, const char *path, const char *reason, const char *consumer,
                          int status)
{
    gw_journal_rec r;
    memset(&r, 0, sizeof(r));
    char ts[32], rid[37];
    gw_time_iso_ms(ts);
    gw_uuid4(rid);
    r.ts = ts;
    r.request_id = rid;
    r.listener = "admin";
    r.client_port = -1;
    r.upstream_status = -1;
    r.upstream_ms = -1;
    r.ms = -1;
    r.bytes_in = -1;
    r.bytes_out = -1;
    r.method = "POST";
    r.path = path;
    r.consumer = consumer;
    r.decision = "admin";
    r.reason = reason;
    r.status = status;
    size_t len = 0;
    char *line = gw_journal_format(&r, &len);
    if (line != NULL)
        gw_journal_submit(a->journal, line, len);
}

/* ---- security events (journal/events.h): admin actions ---- */

/* The caller's address (owned by the connection), NULL when unknown. */
static const char *peer_addr(struct evhttp_request *req)
{
    char *addr = NULL;
    ev_uint16_t port = 0;
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    if (conn != NULL)
        evhttp_connection_get_peer(conn, &addr, &port);
    return addr;
}

static void admin_event(gw_admin *a, struct evhttp_request *req, gw_event_type type,
                        gw_event_admin *e)
{
    e->by = "admin API";
    e->client_ip = peer_addr(req);
    e->who = a->cur != NULL ? a->cur->name : NULL;
    gw_events_admin(gw_server_events(a->srv), type, e);
}

/* ---- end of security events ---- */

static void json_reply(struct evhttp_request *req, int code, json_t *o)
{
    struct evbuffer *b = evbuffer_new();
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (b == NULL || s == NULL) {
        free(s);
        if (b)
            evbuffer_free(b);
        json_decref(o);
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evbuffer_add_printf(b, "%s\n", s);
    free(s);
    json_decref(o);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    security_headers(req);
    evhttp_send_reply(req, code, status_phrase(code), b);
    evbuffer_free(b);
}

/* 1 when the query string of <req> sets <key> to "1" or "true". */
static int query_flag(struct evhttp_request *req, const char *key)
{
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq kv;
    int on = 0;
    if (q == NULL || evhttp_parse_query_str(q, &kv) != 0)
        return 0;
    const char *v = evhttp_find_header(&kv, key);
    on = v != NULL && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
    evhttp_clear_headers(&kv);
    return on;
}

/* POST /admin/reload: the status and body are admin/bodies.c's
 * (gw_admin_reload_status); here the logs, the security event and the
 * journal record. */
static void do_reload(gw_admin *a, struct evhttp_request *req)
{
    gw_errlist errs;
    gw_policy_diff d;
    memset(&errs, 0, sizeof(errs));
    int force = query_flag(req, "force");
    int rc = gw_server_reload_policies(a->srv, "admin API", force ? GW_RELOAD_FORCE : 0, &d, &errs);
    int status = gw_admin_reload_status(rc);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.msgs[i]);
    gw_policy_set *p = rc == 0 ? gw_server_policies(a->srv) : NULL;
    json_t *o = gw_admin_reload_json(rc, p, &d, &errs);
    gw_event_admin ea = {.habilitations = -1, .errors = (long)(errs.n + errs.dropped)};
    char msg[256];
    if (status == 409) {
        gw_admin_reload_refused_message(&d, msg, sizeof(msg));
        fprintf(stderr, "opale-gateway: admin: %s\n", msg);
        ea.habilitations = (long)d.before;
        ea.errors = 0;
        ea.error = msg;
    } else if (status == 200) {
        if (force && gw_policy_diff_empties(&d))
            fprintf(stderr,
                    "opale-gateway: admin: forced reload removed %zu of %zu partners (%zu left)\n",
                    d.removed, d.before, d.after);
        fprintf(stderr, "opale-gateway: admin: policies reloaded (%zu habilitations)\n",
                gw_policy_set_count(p));
        for (size_t i = 0; i < gw_policy_set_nrejected(p); i++) {
            const gw_policy_rejected *r = gw_policy_set_rejected_at(p, i);
            fprintf(stderr, "opale-gateway: admin: %s rejected, %s\n", r->file,
                    r->kept ? "its previous version stays" : "left out (its partner is refused)");
        }
        ea.habilitations = (long)gw_policy_set_count(p);
    } else {
        fprintf(stderr, "opale-gateway: admin: reload refused, the previous policies stay\n");
        ea.error = errs.n > 0 ? errs.msgs[0] : NULL;
    }
    admin_event(a, req, status == 200 ? GW_EV_ADMIN_RELOAD : GW_EV_ADMIN_RELOAD_REFUSED, &ea);
    admin_journal(a, "/admin/reload", status == 200 ? "admin.reload" : "admin.reload_refused", NULL,
                  status);
    gw_policy_set_unref(p);
    gw_errlist_clear(&errs);
    json_reply(req, status, o);
}

static void error_reply(struct evhttp_request *req, int code, const char *msg);

/* "<operator> (admin API from <address>)": who acted, as the suspensions
 * file records it (gw_admin_by_operator reads the name back). */
static void operator_of(gw_admin *a, struct evhttp_request *req, char *by, size_t len)
{
    const char *ip = peer_addr(req);
    snprintf(by, len, "%s (admin API from %s)", a->cur != NULL ? a->cur->name : "unknown",
             ip != NULL ? ip : "unknown address");
}

/* The reason body of <req> (gw_admin_reason_body); 0, or -1 with the 422
 * sent. */
static int reason_of(struct evhttp_request *req, int allow_until,
                     char reason[GW_SUSPEND_REASON_MAX + 1], time_t *until)
{
    char msg[256];
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    const char *data = n > 0 ? (const char *)evbuffer_pullup(in, -1) : "";
    if (gw_admin_reason_body(data, n, allow_until, time(NULL), reason, until, msg, sizeof(msg)) ==
        0)
        return 0;
    error_reply(req, 422, msg);
    return -1;
}

static void fmt_utc(time_t t, char out[32])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* POST /admin/consumers/{id}/suspend and .../resume (docs/operations.md):
 * a reason required, an optional "until" for a suspension; a suspension
 * that DataPass set (a revocation) is lifted by a DataPass re-approval
 * only (409 here). */
static void do_suspend(gw_admin *a, struct evhttp_request *req, const char *path,
                       const char *client_id, int on)
{
    gw_policy_set *p = gw_server_policies(a->srv);
    const gw_policy *pol = p ? gw_policy_by_client_id(p, client_id) : NULL;
    if (pol == NULL) {
        gw_policy_set_unref(p);
        json_reply(req, 404, json_pack("{s:s}", "error", "unknown client_id"));
        return;
    }
    char reason[GW_SUSPEND_REASON_MAX + 1], by[128], until_s[32];
    time_t until = 0;
    if (reason_of(req, on, reason, &until) < 0) {
        gw_policy_set_unref(p);
        return;
    }
    gw_suspensions *susp = gw_server_suspensions(a->srv);
    gw_suspension_info cur;
    if (!on && gw_suspensions_get(susp, pol->client_id, &cur) &&
        strncmp(cur.why, "datapass", 8) == 0) {
        gw_policy_set_unref(p);
        error_reply(req, 409,
                    "suspended by a DataPass revocation: lifted by a DataPass re-approval only");
        return;
    }
    operator_of(a, req, by, sizeof(by));
    char *err = NULL;
    int rc = on ? gw_suspensions_suspend(susp, pol->client_id, "admin API", reason, by, until, &err)
                : gw_suspensions_set(susp, pol->client_id, 0, "admin API", &err);
    json_t *o = json_pack("{s:s,s:b,s:b}", "client_id", pol->client_id, "suspended", on,
                          "persisted", rc == 0);
    if (rc < 0) {
        json_object_set_new(o, "error", json_string(err ? err : "cannot persist"));
        fprintf(stderr, "opale-gateway: admin: %s\n", err ? err : "cannot persist suspension");
    }
    if (until != 0)
        fmt_utc(until, until_s);
    fprintf(stderr, "opale-gateway: admin: consumer %s %s%s%s\n", pol->client_id,
            on ? "suspended" : "resumed", until != 0 ? " until " : "", until != 0 ? until_s : "");
    gw_event_admin ea = {.consumer = pol->client_id,
                         .habilitation = pol->id,
                         .contact = pol->contact_technical,
                         .habilitations = -1,
                         .errors = -1,
                         .error = rc < 0 ? (err ? err : "cannot persist") : NULL,
                         .persisted = rc == 0,
                         .reason = reason,
                         .until = until != 0 ? until_s : NULL};
    admin_event(a, req, on ? GW_EV_ADMIN_SUSPEND : GW_EV_ADMIN_RESUME, &ea);
    admin_journal(a, path, on ? "admin.suspend" : "admin.resume", pol->client_id,
                  rc == 0 ? 200 : 500);
    free(err);
    gw_policy_set_unref(p);
    json_reply(req, rc == 0 ? 200 : 500, o);
}

/* POST /admin/environments/{env}/cut and .../restore (CGU §8 "coupure"). */
static void do_cut(gw_admin *a, struct evhttp_request *req, const char *env, int on)
{
    if (strcmp(env, "sandbox") != 0 && strcmp(env, "production") != 0) {
        error_reply(req, 404, "unknown environment (sandbox or production)");
        return;
    }
    char reason[GW_SUSPEND_REASON_MAX + 1], by[128], until_s[32], path[96];
    time_t until = 0;
    if (reason_of(req, on, reason, &until) < 0)
        return;
    operator_of(a, req, by, sizeof(by));
    snprintf(path, sizeof(path), "/admin/environments/%s/%s", env, on ? "cut" : "restore");
    char *err = NULL;
    int rc = gw_suspensions_cut(gw_server_suspensions(a->srv), env, on, reason, by, until, &err);
    if (rc < 0)
        fprintf(stderr, "opale-gateway: admin: %s\n", err ? err : "cannot persist the cut");
    if (until != 0)
        fmt_utc(until, until_s);
    fprintf(stderr, "opale-gateway: admin: environment %s %s%s%s\n", env,
            on ? "cut: every consumer refused" : "restored", until != 0 ? " until " : "",
            until != 0 ? until_s : "");
    json_t *f = json_pack("{s:s,s:s?,s:s,s:s,s:s,s:b}", "by", by, "client_ip", peer_addr(req),
                          "environment", env, "reason", reason, "operator",
                          a->cur != NULL ? a->cur->name : "unknown", "persisted", rc == 0);
    if (f != NULL && until != 0)
        json_object_set_new(f, "until", json_string(until_s));
    if (f != NULL && rc < 0)
        json_object_set_new(f, "error", json_string(err ? err : "cannot persist"));
    gw_events_integrity(gw_server_events(a->srv), on ? GW_EV_ADMIN_CUT : GW_EV_ADMIN_CUT_LIFTED, f);
    admin_journal(a, path, on ? "admin.environment_cut" : "admin.environment_restored", NULL,
                  rc == 0 ? 200 : 500);
    json_t *o = json_pack("{s:s,s:b,s:b}", "environment", env, "cut", on, "persisted", rc == 0);
    if (o != NULL && rc < 0)
        json_object_set_new(o, "error", json_string(err ? err : "cannot persist"));
    free(err);
    json_reply(req, rc == 0 ? 200 : 500, o);
}

/* A suspension or cut lifted itself (its "until" passed): one
 * suspension.expired event, from whichever thread swept it. <arg>: the
 * server. */
static void on_expired(void *arg, const gw_suspension_info *info, int persisted)
{
    gw_server *srv = arg;
    char since[32], until[32];
    fmt_utc(info->since, since);
    fmt_utc(info->until, until);
    json_t *f = json_pack("{s:s,s:s,s:s,s:s?,s:s?,s:b}", "by", "expiry", "since", since, "until",
                          until, "reason", info->reason[0] ? info->reason : NULL, "suspended_by",
                          info->by[0] ? info->by : NULL, "persisted", persisted);
    if (f != NULL && info->env[0] != '\0') {
        json_object_set_new(f, "environment", json_string(info->env));
    } else if (f != NULL) {
        json_object_set_new(f, "consumer", json_string(info->client_id));
        gw_policy_set *p = gw_server_policies(srv);
        const gw_policy *pol = p ? gw_policy_by_client_id(p, info->client_id) : NULL;
        if (pol != NULL) {
            json_object_set_new(f, "habilitation", json_string(pol->id));
            if (pol->contact_technical != NULL)
                json_object_set_new(f, "contact", json_string(pol->contact_technical));
        }
        gw_policy_set_unref(p);
    }
    fprintf(stderr, "opale-gateway: %s %s: suspension expired (until %s), lifted\n",
            info->env[0] ? "environment" : "consumer", info->env[0] ? info->env : info->client_id,
            until);
    gw_events_integrity(gw_server_events(srv), GW_EV_SUSPENSION_EXPIRED, f);
}

/* ---- the console's figures (admin/series.h) ---- */

/* The counters the series keep, now. */
static void series_sample(gw_admin *a, gw_series_sample *cur, int64_t now)
{
    gw_stats *s = gw_server_stats(a->srv);
    memset(cur, 0, sizeof(*cur));
    cur->t = now;
    cur->requests = LD(s->requests);
    cur->class5 = LD(s->responses_by_class[5]);
    for (int i = 0; i < GW_ERR__COUNT; i++)
        cur->denials[i] = LD(s->denials[i]);
    for (int i = 0; i < GW_SERIES_BUCKETS; i++)
        cur->upstream[i] = LD(s->upstream_latency_bucket[i]);
}

typedef struct usage_arg {
    gw_admin *a;
    int64_t now;
} usage_arg;

static void usage_offer(void *arg, const char *id, const gw_consumer_counts *c)
{
    usage_arg *u = arg;
    if (strcmp(id, "(other)") == 0)
        return;
    unsigned long answers = 0;
    for (int k = 1; k < 6; k++)
        answers += c->by_class[k];
    gw_usage_offer(u->a->usage, id, answers, c->by_class[4] + c->by_class[5], c->quota_admitted,
                   u->now);
}

/* Once a second: the series, each consumer's usage, the journal's
 * checkpoint and verification times (as seen by this sampling). */
static void console_sample(gw_admin *a)
{
    int64_t now = (int64_t)time(NULL);
    if (now == a->sampled_s)
        return;
    a->sampled_s = now;
    gw_series_sample cur;
    series_sample(a, &cur, now);
    gw_series_offer(&a->series, &cur);
    if (a->usage != NULL) {
        usage_arg u = {a, now};
        gw_consumer_each(a->srv, usage_offer, &u);
    }
    gw_journal_stats js;
    gw_journal_get_stats(a->journal, &js);
    if (js.checkpoints != a->checkpoints)
        a->last_checkpoint = now;
    if (js.tail_checks != a->tail_checks && !js.broken)
        a->verified_at = now;
    a->checkpoints = js.checkpoints;
    a->tail_checks = js.tail_checks;
}

/* Once a second on the admin listener's loop: expired suspensions lift
 * themselves even when their consumer sends nothing. */
static void sweep_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_admin *a = arg;
    gw_suspensions_sweep(gw_server_suspensions(a->srv), time(NULL));
    console_sample(a);
}

static void do_consumers(gw_admin *a, struct evhttp_request *req)
{
    gw_policy_set *p = gw_server_policies(a->srv);
    json_reply(req, 200, gw_admin_consumers_json(p, gw_server_suspensions(a->srv)));
    gw_policy_set_unref(p);
}

/* ---- routing ---- */

static void error_reply(struct evhttp_request *req, int code, const char *msg)
{
    json_reply(req, code, json_pack("{s:s}", "error", msg));
}

/* ---- authentication failures: journalled, rate-limited per source ---- */

/*
 * The one place the credential is checked: a bearer token (any operator's,
 * admin/operators.h) or, without an Authorization header, the gw_session
 * cookie of a live session (admin/session.h). 1 with a->cur (and
 * a->cur_session) set when it is valid and its source is not blocked; else
 * the 401 or 429 is sent, the failure journalled (security events, with the
 * source address, never the token) and 0 returned. The decision is
 * gw_admin_auth_decide's (admin/auth.h).
 */
static int auth_gate(gw_admin *a, struct evhttp_request *req, const char *path)
{
    char *ip = NULL;
    ev_uint16_t port = 0;
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    if (conn != NULL)
        evhttp_connection_get_peer(conn, &ip, &port);
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *h = evhttp_find_header(in, "Authorization");
    uint64_t now = gw_now_ms();
    const gw_admin_operator *op = NULL;
    gw_admin_session *sess = NULL;
    const char *why = "admin.no_token";
    char cookie[GW_ADMIN_SECRET_LEN + 2];
    if (h != NULL) {
        op = gw_admin_operator_by_auth(&a->ops, h);
        why = "admin.bad_token";
    } else if (gw_admin_cookie_get(evhttp_find_header(in, "Cookie"), GW_ADMIN_COOKIE, cookie,
                                   sizeof(cookie))) {
        sess = gw_admin_session_find(&a->sessions, cookie, now);
        op = sess != NULL && sess->op < a->ops.n ? &a->ops.ops[sess->op] : NULL;
        why = "admin.bad_session";
    }
    gw_admin_auth_verdict v = gw_admin_auth_decide(&a->auth, ip, op != NULL, now);
    if (v.status == 0) {
        a->cur = op;
        a->cur_session = sess;
        return 1;
    }
    if (v.status == 429) {
        char ra[24];
        snprintf(ra, sizeof(ra), "%u", v.retry_after_s);
        a->auth_throttled++;
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", ra);
        error_reply(req, 429, "too many failed authentications");
        return 0;
    }
    a->auth_failures++;
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    gw_event_admin e = {.habilitations = -1, .errors = -1, .blocked_s = -1};
    e.method = m == EVHTTP_REQ_GET      ? "GET"
               : m == EVHTTP_REQ_POST   ? "POST"
               : m == EVHTTP_REQ_DELETE ? "DELETE"
                                        : "other";
    e.path = path;
    e.reason = why;
    e.failures = v.failures;
    admin_event(a, req, GW_EV_ADMIN_AUTH_FAILED, &e);
    if (v.blocked_s > 0) {
        e.reason = NULL;
        e.blocked_s = (long)v.blocked_s;
        admin_event(a, req, GW_EV_ADMIN_AUTH_BLOCKED, &e);
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                      "Bearer realm=\"opale-admin\"");
    error_reply(req, 401,
                strcmp(why, "admin.bad_session") == 0 ? "session expired" : "unauthorized");
    return 0;
}

/* ---- console sessions (docs/console.md, "API and security") ---- */

/* Set-Cookie for session <s>, its Max-Age the seconds it has left (sent
 * again on every answer to the session: the idle expiry slides). */
static unsigned session_cookie(gw_admin *a, struct evhttp_request *req, const gw_admin_session *s)
{
    char cookie[128];
    unsigned left = gw_admin_session_expires_in(&a->sessions, s, gw_now_ms());
    snprintf(cookie, sizeof(cookie), "%s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%u",
             GW_ADMIN_COOKIE, s->id, left);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Set-Cookie", cookie);
    OPENSSL_cleanse(cookie, sizeof(cookie));
    return left;
}

/* POST /admin/session: with a bearer token only (a session does not beget
 * sessions); the cookie and the CSRF token in the body. */
static void on_session_new(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)id;
    if (a->cur_session != NULL) {
        error_reply(req, 400, "a session is opened with Authorization: Bearer <token>");
        return;
    }
    size_t op = (size_t)(a->cur - a->ops.ops);
    gw_admin_session *s = gw_admin_session_open(&a->sessions, op, gw_now_ms());
    if (s == NULL) {
        error_reply(req, 500, "cannot open a session");
        return;
    }
    unsigned left = session_cookie(a, req, s);
    fprintf(stderr, "opale-gateway: admin: console session opened for operator %s\n", a->cur->name);
    json_reply(req, 200,
               json_pack("{s:s,s:s,s:s,s:i}", "operator", a->cur->name, "role",
                         gw_admin_role_name(a->cur->role), "csrf", s->csrf, "expires_in",
                         (int)left));
}

/* DELETE /admin/session: ends the cookie's session (with a bearer token:
 * nothing to end); the cookie is cleared either way. */
static void on_session_end(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)id;
    int ended = a->cur_session != NULL;
    if (ended)
        gw_admin_session_end(a->cur_session);
    a->cur_session = NULL;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Set-Cookie",
                      GW_ADMIN_COOKIE "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    json_reply(req, 200, json_pack("{s:b}", "ended", ended));
}

static void on_whoami(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)id;
    json_reply(
        req, 200,
        json_pack("{s:s,s:s}", "operator", a->cur->name, "role", gw_admin_role_name(a->cur->role)));
}

/* GET (or HEAD) /console/...: the embedded files, open (the page holds no
 * data). <head>: HEAD, headers only. */
static void serve_console(struct evhttp_request *req, const char *path, int head)
{
    if (strcmp(path, "/console") == 0) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Location", "/console/");
        security_headers(req);
        evhttp_send_reply(req, 301, "Moved Permanently", NULL);
        return;
    }
    const gw_console_file *f = gw_console_find(path);
    if (f == NULL) {
        error_reply(req, 404, "not found");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    if (!head)
        evbuffer_add_reference(b, f->data, f->len, NULL, NULL);
    reply(req, 200, gw_console_mime(f->name), b);
    evbuffer_free(b);
}

static void on_healthz(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)a;
    (void)id;
    json_reply(req, 200, json_pack("{s:s}", "status", "ok"));
}

static void on_readyz(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)id;
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    gw_journal_stats js;
    gw_journal_get_stats(a->journal, &js);
    gw_policy_set *ps = gw_server_policies(a->srv);
    int ready = is_ready(a, ps);
    json_t *pol = json_pack("{s:I,s:o}", "loaded", (json_int_t)gw_policy_set_count(ps), "rejected",
                            gw_admin_rejected_json(ps));
    /* approved by DataPass, waiting for an operator (docs/datapass.md) */
    json_t *pend = json_array();
    size_t npend = 0;
    char **pv = gw_dp_pending_list(gw_server_conf(a->srv)->policies_dir, &npend);
    for (size_t i = 0; pend != NULL && i < npend; i++)
        json_array_append_new(pend, json_string(pv[i]));
    gw_dp_pending_free(pv, npend);
    if (pol != NULL && pend != NULL)
        json_object_set(pol, "pending", pend);
    json_decref(pend);
    char *pols = pol != NULL ? json_dumps(pol, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(pol);
    /* environments cut (CGU §8): the instance is up, their consumers refused */
    char cuts[64] = "";
    gw_suspensions *susp = gw_server_suspensions(a->srv);
    if (gw_suspensions_is_cut(susp, "sandbox"))
        strcat(cuts, "\"sandbox\"");
    if (gw_suspensions_is_cut(susp, "production"))
        strcat(cuts, cuts[0] ? ",\"production\"" : "\"production\"");
    gw_policy_set_unref(ps);
    gw_redis_stats rs;
    const char *qstate = "memory", *qwarn = NULL;
    if (gw_server_redis_stats(a->srv, &rs)) {
        qstate = rs.up ? "redis" : "degraded";
        /* a Redis restarted without its log forgets the window: exact only
         * while every gateway that admitted lives to write it back
         * (docs/quotas.md) */
        if (rs.persistence == 0 && gw_server_quota_on_failure_relies(a->srv))
            qwarn = "redis without persistence (appendonly no)";
    }
    gw_stats *st = gw_server_stats(a->srv);
    if (atomic_load_explicit(&st->quota_store_degraded, memory_order_relaxed))
        qstate = "degraded";
    evbuffer_add_printf(
        b,
        "{\"ready\":%s,\"listeners\":%s,\"journal_queue\":%llu,\"journal_integrity\":\"%s\","
        "\"journal_holds\":%zu,\"quota_store\":\"%s\"%s%s%s,\"environments_cut\":[%s],"
        "\"policies\":%s}\n",
        ready ? "true" : "false", gw_server_ready(a->srv) ? "\"up\"" : "\"draining\"",
        (unsigned long long)js.queued, js.broken ? "broken" : "ok", gw_holds_count(a->holds),
        qstate, qwarn ? ",\"quota_store_warning\":\"" : "", qwarn ? qwarn : "", qwarn ? "\"" : "",
        cuts, pols != NULL ? pols : "null");
    free(pols);
    reply(req, ready ? 200 : 503, "application/json", b);
    evbuffer_free(b);
}

static void on_metrics(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)id;
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    metrics(a, b);
    gw_dp_metrics(b);
    reply(req, 200, "text/plain; version=0.0.4", b);
    evbuffer_free(b);
}

static void on_consumers(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)id;
    do_consumers(a, req);
}

static void on_reload(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)id;
    do_reload(a, req);
}

static void on_suspend(gw_admin *a, struct evhttp_request *req, const char *id)
{
    char path[256];
    snprintf(path, sizeof(path), "/admin/consumers/%s/suspend", id);
    do_suspend(a, req, path, id, 1);
}

static void on_resume(gw_admin *a, struct evhttp_request *req, const char *id)
{
    char path[256];
    snprintf(path, sizeof(path), "/admin/consumers/%s/resume", id);
    do_suspend(a, req, path, id, 0);
}

static void on_envs(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)id;
    json_reply(req, 200, gw_admin_environments_json(gw_server_suspensions(a->srv)));
}

static void on_env_cut(gw_admin *a, struct evhttp_request *req, const char *id)
{
    do_cut(a, req, id, 1);
}

static void on_env_restore(gw_admin *a, struct evhttp_request *req, const char *id)
{
    do_cut(a, req, id, 0);
}

/* ---- the console's read views (docs/console.md) ---- */

/* The free bytes of the file system holding <path>, -1 when unknown. */
static long long free_bytes(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash != NULL && slash != dir)
        *slash = '\0';
    struct statvfs sv;
    if (statvfs(dir, &sv) != 0)
        return -1;
    return (long long)sv.f_bavail * (long long)sv.f_frsize;
}

static void on_overview(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)id;
    int64_t now = (int64_t)time(NULL);
    const gw_conf *conf = gw_server_conf(a->srv);
    gw_series_sample cur;
    series_sample(a, &cur, now);
    gw_stats *s = gw_server_stats(a->srv);
    gw_redis_stats rs;
    int redis = gw_server_redis_stats(a->srv, &rs);
    int degraded =
        atomic_load_explicit(&s->quota_store_degraded, memory_order_relaxed) || (redis && !rs.up);
    gw_journal_stats js;
    gw_journal_get_stats(a->journal, &js);
    const char *jstate = js.broken                         ? "broken"
                         : !gw_journal_healthy(a->journal) ? "failing"
                                                           : "writing";
    long long fb = free_bytes(conf->journal.path);
    gw_policy_set *ps = gw_server_policies(a->srv);
    size_t npend = 0;
    char **pv = gw_dp_pending_list(conf->policies_dir, &npend);
    gw_dp_pending_free(pv, npend);
    json_t *o = json_pack(
        "{s:o,s:i,s:I,s:o,s:o,s:o,s:{s:s,s:b},s:{s:s,s:I,s:o,s:o,s:o},s:{s:I,s:I,s:I}}", "now",
        gw_view_time(now), "workers", (int)conf->workers, "connections",
        (json_int_t)LD(s->connections_open), "series", gw_series_json(&a->series, now),
        "errors_by_code", gw_series_errors_json(&a->series, &cur), "upstream_ms",
        gw_series_upstream_json(&a->series, &cur, gw_latency_bounds_ms), "quota_store", "kind",
        redis ? "redis" : "memory", "degraded", degraded, "journal", "state", jstate, "queue",
        (json_int_t)js.queued, "free_bytes", fb >= 0 ? json_integer(fb) : json_null(),
        "last_checkpoint", gw_view_time(a->last_checkpoint), "verified_at",
        gw_view_time(a->verified_at), "policies", "loaded", (json_int_t)gw_policy_set_count(ps),
        "rejected", (json_int_t)gw_policy_set_nrejected(ps), "pending", (json_int_t)npend);
    gw_policy_set_unref(ps);
    json_reply(req, 200, o);
}

static gw_view_ctx view_ctx(gw_admin *a)
{
    gw_view_ctx x = {gw_server_suspensions(a->srv), a->usage, a->log, gw_server_events(a->srv),
                     (int64_t)time(NULL)};
    return x;
}

static void on_partners(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)id;
    gw_view_ctx x = view_ctx(a);
    gw_policy_set *ps = gw_server_policies(a->srv);
    json_t *o = gw_view_partners(&x, ps);
    gw_policy_set_unref(ps);
    json_reply(req, 200, o);
}

#define PARTNER_RECORDS 50

static void on_partner(gw_admin *a, struct evhttp_request *req, const char *id)
{
    gw_view_ctx x = view_ctx(a);
    gw_policy_set *ps = gw_server_policies(a->srv);
    const gw_policy *p = ps != NULL ? gw_policy_by_client_id(ps, id) : NULL;
    if (p == NULL) {
        gw_policy_set_unref(ps);
        error_reply(req, 404, "unknown client_id");
        return;
    }
    json_t *o = gw_view_partner(&x, p);
    json_object_set_new(
        o, "records",
        gw_view_records(gw_server_conf(a->srv)->journal.path, p->client_id, PARTNER_RECORDS));
    json_t *ev = NULL;
    if (a->log != NULL) {
        gw_eventlog_query q = {.consumer = p->client_id, .limit = PARTNER_RECORDS};
        json_t *page = gw_eventlog_query_json(a->log, &q);
        ev = json_incref(json_object_get(page, "events"));
        json_decref(page);
    }
    json_object_set_new(o, "events", ev != NULL ? ev : json_array());
    /* sandbox only: the recette is the sandbox acceptance (docs/recette.md) */
    const gw_oauth *oa = gw_server_oauth(a->srv);
    json_object_set_new(
        o, "recette",
        p->env != GW_ENV_SANDBOX ? json_pack("{s:b,s:s}", "available", 0, "markdown", "")
        : oa == NULL
            ? json_pack("{s:b,s:s}", "available", 0, "markdown", "No report: no signing keys.")
            : gw_admin_recette_json(&a->recette, gw_server_conf(a->srv)->journal.path, &oa->own,
                                    p->client_id, time(NULL)));
    gw_policy_set_unref(ps);
    json_reply(req, 200, o);
}

/* A query parameter as an unsigned integer: 1 with <*out>, 0 absent, -1
 * not a number. */
static int query_u64(struct evkeyvalq *q, const char *key, uint64_t *out)
{
    const char *v = evhttp_find_header(q, key);
    if (v == NULL || v[0] == '\0')
        return 0;
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0' || v[0] < '0' || v[0] > '9')
        return -1;
    *out = n;
    return 1;
}

static void on_events(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)id;
    struct evkeyvalq q;
    TAILQ_INIT(&q);
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (query != NULL && evhttp_parse_query_str(query, &q) != 0) {
        error_reply(req, 400, "malformed query string");
        return;
    }
    gw_eventlog_query eq = {.limit = GW_EVENTLOG_LIMIT};
    const char *sev = evhttp_find_header(&q, "severity");
    const char *type = evhttp_find_header(&q, "type");
    const char *consumer = evhttp_find_header(&q, "consumer");
    uint64_t limit = GW_EVENTLOG_LIMIT;
    const char *bad = NULL;
    if (sev != NULL && sev[0] && (eq.min_severity = gw_event_severity_parse(sev)) < 0)
        bad = "severity: low, medium, high or critical";
    else if (query_u64(&q, "after", &eq.after) < 0)
        bad = "after: an event id";
    else if (query_u64(&q, "limit", &limit) < 0 || limit < 1 || limit > GW_EVENTLOG_LIMIT_MAX)
        bad = "limit: 1 to 500";
    if (bad != NULL) {
        evhttp_clear_headers(&q);
        error_reply(req, 400, bad);
        return;
    }
    if (eq.min_severity < 0)
        eq.min_severity = 0;
    eq.limit = (size_t)limit;
    eq.type = type != NULL && type[0] ? type : NULL;
    eq.consumer = consumer != NULL && consumer[0] ? consumer : NULL;
    json_t *o = a->log != NULL ? gw_eventlog_query_json(a->log, &eq)
                               : json_pack("{s:[],s:I}", "events", "next", (json_int_t)eq.after);
    evhttp_clear_headers(&q);
    json_reply(req, 200, o);
}

/* POST /admin/events/{id}/ack: journalled as admin.event_ack with the
 * operator. */
static void on_event_ack(gw_admin *a, struct evhttp_request *req, const char *id)
{
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(id, &end, 10);
    char type[64] = "", now[32];
    gw_time_iso(now);
    int rc = id[0] >= '0' && id[0] <= '9' && errno == 0 && *end == '\0' && a->log != NULL
                 ? gw_eventlog_ack(a->log, (uint64_t)n, a->cur->name, now, type)
                 : -1;
    if (rc < 0) {
        error_reply(req, 404, "no such event (or no longer held)");
        return;
    }
    if (rc > 0) {
        error_reply(req, 409, "already acknowledged");
        return;
    }
    json_t *f = json_pack("{s:s,s:s?,s:s,s:I,s:s}", "by", "admin API", "client_ip", peer_addr(req),
                          "operator", a->cur->name, "event_id", (json_int_t)n, "event_type", type);
    gw_events_integrity(gw_server_events(a->srv), GW_EV_ADMIN_EVENT_ACK, f);
    fprintf(stderr, "opale-gateway: admin: event %llu (%s) acknowledged by %s\n", n, type,
            a->cur->name);
    json_reply(req, 200,
               json_pack("{s:I,s:{s:s,s:s}}", "id", (json_int_t)n, "acked", "operator",
                         a->cur->name, "time", now));
}

static void on_maintenance(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)id;
    json_reply(req, 200, gw_view_maintenance(gw_server_maintenance(a->srv), (int64_t)time(NULL)));
}

/* ---- legal holds (docs/journal.md, "Legal hold") ---- */

/* Apply the hold state to both streams: retention stops while any hold is
 * set, and runs again at once when the last one is lifted. */
static void apply_holds(gw_admin *a)
{
    int held = gw_holds_count(a->holds) > 0;
    gw_journal_set_hold(a->journal, held);
    gw_journal_set_hold(gw_events_journal(gw_server_events(a->srv)), held);
}

static void hold_event(gw_admin *a, struct evhttp_request *req, gw_event_type type,
                       const char *consumer, const char *reason, size_t holds)
{
    json_t *f = json_pack("{s:s,s:s?,s:s?,s:o,s:s?,s:I}", "by", "admin API", "client_ip",
                          peer_addr(req), "operator", a->cur != NULL ? a->cur->name : NULL,
                          "consumer", consumer ? json_string(consumer) : json_null(), "reason",
                          reason, "holds", (json_int_t)holds);
    gw_events_integrity(gw_server_events(a->srv), type, f);
}

/* A printable string of 1..<max> bytes without control characters. */
static int hold_text(const char *s, size_t max)
{
    return gw_admin_text_ok(s, max);
}

static void on_hold_get(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)id;
    json_reply(req, 200,
               json_pack("{s:o,s:b}", "holds", gw_holds_json(a->holds), "retention_suspended",
                         gw_holds_count(a->holds) > 0));
}

static void on_hold_post(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)id;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    json_t *body =
        n > 0 ? json_loadb((const char *)evbuffer_pullup(in, -1), n, JSON_REJECT_DUPLICATES, NULL)
              : NULL;
    const char *reason = json_string_value(json_object_get(body, "reason"));
    json_t *cj = json_object_get(body, "consumer");
    const char *consumer = json_string_value(cj);
    const char *k;
    json_t *v;
    int extra = 0;
    json_object_foreach(body, k, v) extra |= strcmp(k, "reason") != 0 && strcmp(k, "consumer") != 0;
    if (!json_is_object(body) || extra || !hold_text(reason, 512) ||
        (cj != NULL && !json_is_null(cj) && !hold_text(consumer, 128))) {
        json_decref(body);
        error_reply(
            req, 400,
            "expected {\"reason\": text (1-512 bytes), \"consumer\": client_id (optional)}");
        return;
    }
    char *err = NULL;
    int rc = gw_holds_set(a->holds, consumer, reason, "admin API", &err);
    if (rc < 0) {
        fprintf(stderr, "opale-gateway: admin: legal hold: %s\n", err ? err : "out of memory");
        free(err);
        json_decref(body);
        error_reply(req, 500, "the hold could not be saved");
        return;
    }
    apply_holds(a);
    size_t count = gw_holds_count(a->holds);
    hold_event(a, req, GW_EV_ADMIN_HOLD, consumer, reason, count);
    fprintf(stderr,
            "opale-gateway: admin: legal hold set on %s (%zu in force): retention suspended\n",
            consumer ? consumer : "all journal files", count);
    json_reply(req, rc == 1 ? 201 : 200,
               json_pack("{s:o,s:s,s:I,s:o}", "consumer",
                         consumer ? json_string(consumer) : json_null(), "reason", reason, "holds",
                         (json_int_t)count, "list", gw_holds_json(a->holds)));
    json_decref(body);
}

static void on_hold_delete(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)id;
    struct evkeyvalq q;
    const char *consumer = NULL;
    TAILQ_INIT(&q);
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (query != NULL && evhttp_parse_query_str(query, &q) == 0)
        consumer = evhttp_find_header(&q, "consumer");
    if (consumer != NULL && !hold_text(consumer, 128)) {
        evhttp_clear_headers(&q);
        error_reply(req, 400, "consumer: a client_id (1-128 bytes)");
        return;
    }
    char *err = NULL;
    int rc = gw_holds_lift(a->holds, consumer, &err);
    if (rc <= 0) {
        if (rc < 0)
            fprintf(stderr, "opale-gateway: admin: legal hold: %s\n", err ? err : "out of memory");
        free(err);
        evhttp_clear_headers(&q);
        error_reply(req, rc < 0 ? 500 : 404,
                    rc < 0 ? "the hold could not be saved" : "no such hold");
        return;
    }
    apply_holds(a);
    size_t count = gw_holds_count(a->holds);
    hold_event(a, req, GW_EV_ADMIN_HOLD_LIFTED, consumer, NULL, count);
    fprintf(stderr, "opale-gateway: admin: legal hold on %s lifted (%zu in force)%s\n",
            consumer ? consumer : "all journal files", count,
            count == 0 ? ": retention runs again" : "");
    json_reply(req, 200,
               json_pack("{s:b,s:o,s:I}", "lifted", 1, "consumer",
                         consumer ? json_string(consumer) : json_null(), "holds",
                         (json_int_t)count));
    evhttp_clear_headers(&q);
}

/* The handlers, by endpoint (admin/routes.h holds the table). */
typedef void (*admin_handler)(gw_admin *a, struct evhttp_request *req, const char *id);
static const admin_handler admin_handlers[GW_ADMIN_EP__COUNT] = {
    [GW_ADMIN_EP_HEALTHZ] = on_healthz,
    [GW_ADMIN_EP_READYZ] = on_readyz,
    [GW_ADMIN_EP_METRICS] = on_metrics,
    [GW_ADMIN_EP_CONSUMERS] = on_consumers,
    [GW_ADMIN_EP_RELOAD] = on_reload,
    [GW_ADMIN_EP_SUSPEND] = on_suspend,
    [GW_ADMIN_EP_RESUME] = on_resume,
    [GW_ADMIN_EP_HOLD_GET] = on_hold_get,
    [GW_ADMIN_EP_HOLD_SET] = on_hold_post,
    [GW_ADMIN_EP_HOLD_LIFT] = on_hold_delete,
    [GW_ADMIN_EP_ENVS] = on_envs,
    [GW_ADMIN_EP_ENV_CUT] = on_env_cut,
    [GW_ADMIN_EP_ENV_RESTORE] = on_env_restore,
    [GW_ADMIN_EP_SESSION_NEW] = on_session_new,
    [GW_ADMIN_EP_SESSION_END] = on_session_end,
    [GW_ADMIN_EP_WHOAMI] = on_whoami,
    [GW_ADMIN_EP_OVERVIEW] = on_overview,
    [GW_ADMIN_EP_PARTNERS] = on_partners,
    [GW_ADMIN_EP_PARTNER] = on_partner,
    [GW_ADMIN_EP_EVENTS] = on_events,
    [GW_ADMIN_EP_EVENT_ACK] = on_event_ack,
    [GW_ADMIN_EP_MAINTENANCE] = on_maintenance,
};

/* The methods evhttp knows, by name: every one reaches handle(), which
 * answers 405 itself for a known path. */
static const struct {
    enum evhttp_cmd_type cmd;
    const char *name;
} admin_methods[] = {
    {EVHTTP_REQ_GET, "GET"},     {EVHTTP_REQ_POST, "POST"},       {EVHTTP_REQ_HEAD, "HEAD"},
    {EVHTTP_REQ_PUT, "PUT"},     {EVHTTP_REQ_DELETE, "DELETE"},   {EVHTTP_REQ_OPTIONS, "OPTIONS"},
    {EVHTTP_REQ_TRACE, "TRACE"}, {EVHTTP_REQ_CONNECT, "CONNECT"}, {EVHTTP_REQ_PATCH, "PATCH"},
};

static const char *method_name(enum evhttp_cmd_type m)
{
    for (size_t i = 0; i < sizeof(admin_methods) / sizeof(admin_methods[0]); i++)
        if (admin_methods[i].cmd == m)
            return admin_methods[i].name;
    return "";
}

/* The Origin, CSRF and role checks (gw_admin_access) of an authenticated
 * request to endpoint <ep> (-1: unknown path or method); 1 to go on, else
 * the 403 is sent. */
static int access_gate(gw_admin *a, struct evhttp_request *req, int ep)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    const char *origin = evhttp_find_header(in, "Origin");
    gw_admin_access_in ai = {
        .is_get = m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD,
        .by_session = a->cur_session != NULL,
        .origin_present = origin != NULL,
        .origin_ok = gw_admin_origin_ok(origin, a->conf->admin.address, a->conf->admin.port),
        .csrf_ok = a->cur_session != NULL &&
                   gw_admin_csrf_ok(evhttp_find_header(in, "X-CSRF-Token"), a->cur_session->csrf),
        .role = a->cur->role,
        .ep_is_action = ep >= 0 && gw_admin_ep_is_action((gw_admin_ep)ep),
    };
    const char *err = NULL;
    if (gw_admin_access(&ai, &err) == 0) {
        if (a->cur_session != NULL && ep != GW_ADMIN_EP_SESSION_END)
            session_cookie(a, req, a->cur_session);
        return 1;
    }
    static const struct {
        const char *error, *message;
    } why[] = {
        {"origin", "the Origin is not the admin listener's"},
        {"csrf", "X-CSRF-Token missing or not this session's"},
        {"forbidden", "this operator's role is read"},
    };
    for (size_t i = 0; i < sizeof(why) / sizeof(why[0]); i++)
        if (strcmp(err, why[i].error) == 0)
            json_reply(req, 403, json_pack("{s:s,s:s}", "error", err, "message", why[i].message));
    return 0;
}

/* Dispatch (the order is admin/routes.h's): the console's files (open);
 * the credential first for a path that is not open (auth_gate answers 401
 * or 429 itself), then Origin and CSRF (403), 404, 405 with Allow, the
 * role (403), else the endpoint's handler. */
static void handle(struct evhttp_request *req, void *arg)
{
    gw_admin *a = arg;
    gw_admin_dispatch d;
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    gw_admin_dispatch_of(evhttp_request_get_uri(req), method_name(m), &d);
    a->cur = NULL;
    a->cur_session = NULL;
    if (strcmp(d.path, "/console") == 0 || strncmp(d.path, "/console/", 9) == 0) {
        if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD) {
            serve_console(req, d.path, m == EVHTTP_REQ_HEAD);
        } else {
            evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
            error_reply(req, 405, "method not allowed");
        }
        return;
    }
    if (!d.open && !auth_gate(a, req, d.path))
        return;
    if (!d.open && !access_gate(a, req, d.ep))
        goto out;
    switch (gw_admin_verdict(&d, 1)) {
    case 404:
        error_reply(req, 404, "not found");
        break;
    case 405:
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", d.allow);
        error_reply(req, 405, "method not allowed");
        break;
    default:
        admin_handlers[d.ep](a, req, d.id);
        break;
    }
out:
    a->cur = NULL;
    a->cur_session = NULL;
}

/* accept() failed (EMFILE...): libevent would poll the listener again at
 * once and spin the main thread; pause it for a second instead, as the
 * workers do (core/server.c). */
static void admin_accept_resume(evutil_socket_t fd, short what, void *arg)
{
    evconnlistener_enable(arg);
}

static void admin_accept_error(struct evconnlistener *lis, void *arg)
{
    struct timeval tv = {1, 0};
    if (event_base_once(evconnlistener_get_base(lis), -1, EV_TIMEOUT, admin_accept_resume, lis,
                        &tv) == 0)
        evconnlistener_disable(lis);
}

gw_admin *gw_admin_start(struct event_base *base, const gw_conf *conf, gw_server *srv,
                         gw_journal *journal, char **err)
{
    gw_admin *a = calloc(1, sizeof(*a));
    char msg[512];
    if (a == NULL) {
        *err = strdup("out of memory");
        return NULL;
    }
    a->srv = srv;
    a->journal = journal;
    a->conf = conf;
    if (gw_admin_operators_load(&a->ops, &conf->admin, err) < 0) {
        free(a);
        return NULL;
    }
    /* integration tests only: a shorter idle expiry (never a longer one) */
    /* the counters start at zero: the first step counts from the start */
    int64_t t0 = (int64_t)time(NULL);
    gw_series_sample zero;
    memset(&zero, 0, sizeof(zero));
    zero.t = t0 - t0 % GW_SERIES_STEP_S;
    gw_series_offer(&a->series, &zero);
    a->usage = gw_usage_new();
    a->log = gw_eventlog_new(0);
    if (a->log != NULL && gw_server_events(srv) != NULL) {
        a->obs.fn = gw_eventlog_observe;
        a->obs.arg = a->log;
        gw_events_set_observer(gw_server_events(srv), &a->obs);
    }
    const char *idle = getenv("GW_TEST_ADMIN_SESSION_IDLE_S");
    if (idle != NULL && atoi(idle) > 0 && atoi(idle) < GW_ADMIN_SESSION_IDLE_S)
        a->sessions.idle_s = (unsigned)atoi(idle);
    a->http = evhttp_new(base);
    struct evhttp_bound_socket *bound =
        a->http != NULL
            ? evhttp_bind_socket_with_handle(a->http, conf->admin.address, conf->admin.port)
            : NULL;
    if (bound == NULL) {
        snprintf(msg, sizeof(msg), "admin: cannot listen on %s port %u: %s", conf->admin.address,
                 conf->admin.port, strerror(errno));
        *err = strdup(msg);
        gw_admin_stop(a);
        return NULL;
    }
    evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(bound), admin_accept_error);
    evhttp_set_max_headers_size(a->http, 8192);
    evhttp_set_max_body_size(a->http, 65536);
    evhttp_set_timeout(a->http, 10);
    ev_uint16_t methods = 0;
    for (size_t i = 0; i < sizeof(admin_methods) / sizeof(admin_methods[0]); i++)
        methods |= (ev_uint16_t)admin_methods[i].cmd;
    evhttp_set_allowed_methods(a->http, methods);
    evhttp_set_gencb(a->http, handle, a);
    gw_suspensions_on_expired(gw_server_suspensions(srv), on_expired, srv);
    a->sweep = event_new(base, -1, EV_PERSIST, sweep_tick, a);
    struct timeval one = {1, 0};
    if (a->sweep != NULL && event_add(a->sweep, &one) == 0)
        gw_suspensions_timer_sweeps(gw_server_suspensions(srv));
    return a;
}

void gw_admin_set_journal(gw_admin *a, gw_holds *holds, gw_anchors *anchors)
{
    a->holds = holds;
    a->anchors = anchors;
}

void gw_admin_stop(gw_admin *a)
{
    if (a == NULL)
        return;
    if (a->http != NULL)
        evhttp_free(a->http);
    if (a->sweep != NULL)
        event_free(a->sweep);
    gw_admin_operators_clear(&a->ops);
    if (a->obs.fn != NULL)
        gw_events_set_observer(gw_server_events(a->srv), NULL);
    gw_eventlog_free(a->log);
    gw_admin_recette_clear(&a->recette);
    gw_usage_free(a->usage);
    OPENSSL_cleanse(&a->sessions, sizeof(a->sessions));
    free(a);
}
