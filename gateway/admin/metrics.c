/*
 * GET /metrics (admin/metrics.h; the families are docs/metrics.md's).
 */
#include "admin/metrics.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "admin/health.h"
#include "admin/reply.h"
#include "core/h2.h"
#include "datapass/datapass.h"
#include "revoc/revoc.h"

static void metric(struct evbuffer *b, const char *name, const char *help, const char *type)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A family of one sample without labels: its HELP, TYPE and "<name> <v>". */
static void metric1(struct evbuffer *b, const char *name, const char *help, const char *type,
                    unsigned long long v)
{
    metric(b, name, help, type);
    evbuffer_add_printf(b, "%s %llu\n", name, v);
}

#define LD(x) atomic_load_explicit(&(x), memory_order_relaxed)

/* Tail checks, legal holds and anchoring (docs/journal.md). */
static void journal_integrity_metrics(gw_admin *a, struct evbuffer *b, const gw_journal_stats *js)
{
    metric1(b, "opale_journal_broken",
            "1 once a tail check found the journal broken (no more exchanges are served).", "gauge",
            js->broken);
    metric1(b, "opale_journal_tail_checks_total", "Periodic tail checks of the journal.", "counter",
            js->tail_checks);
    metric1(b, "opale_journal_holds", "Legal holds in force (retention suspended while > 0).",
            "gauge", gw_holds_count(a->holds));
    metric1(b, "opale_journal_retention_held_total",
            "Retention passes that deleted nothing because of a legal hold.", "counter",
            js->retention_held);
    if (a->anchors == NULL)
        return;
    gw_anchor_stats as;
    gw_anchors_get_stats(a->anchors, &as);
    metric1(b, "opale_journal_anchors_sent_total", "Checkpoint anchors accepted off the host.",
            "counter", as.sent);
    metric1(b, "opale_journal_anchor_failures_total",
            "Failed attempts to send an anchor (each retry counts).", "counter", as.failed);
    metric1(b, "opale_journal_anchors_dropped_total",
            "Anchors dropped from a full queue (a newer anchor covers them).", "counter",
            as.dropped);
    metric1(b, "opale_journal_anchors_pending", "Anchors waiting to be sent.", "gauge", as.pending);
    metric1(b, "opale_journal_anchor_failing", "1 while the last attempt to send an anchor failed.",
            "gauge", as.failing);
}

/* Security events (journal/events.h). */
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
    metric1(b, "opale_security_events_subjects", "Subjects tracked by the detectors.", "gauge",
            es.tracked);
    metric1(b, "opale_security_events_evicted_total",
            "Subjects evicted from the detectors to stay within their caps.", "counter",
            es.evicted);
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
    metric1(b, "opale_connections_accepted_total", "Client connections accepted.", "counter",
            LD(s->connections_accepted));
    metric1(b, "opale_connections_open", "Client connections open now.", "gauge",
            LD(s->connections_open));
    metric1(b, "opale_connections_limit_reached_total",
            "Times a worker stopped accepting at max_connections.", "counter",
            LD(s->connections_refused));
    metric1(b, "opale_tls_handshake_failures_total", "Refused or failed TLS handshakes.", "counter",
            LD(s->handshakes_failed));
    metric1(b, "opale_accept_fd_exhausted_total",
            "accept() failures for want of a file descriptor (each pauses accepting).", "counter",
            LD(s->accept_fd_exhausted));
    metric1(b, "opale_handshakes_refused_per_source_total",
            "Connections closed at once: their address held max_handshakes_per_source.", "counter",
            LD(s->handshakes_refused_per_source));
    h2_metrics(s, b);
    metric1(b, "opale_admin_auth_failures_total", "Admin API calls refused 401.", "counter",
            a->auth_failures);
    metric1(b, "opale_admin_auth_throttled_total",
            "Admin API calls refused 429 (source blocked after failed authentications).", "counter",
            a->auth_throttled);
    metric1(b, "opale_tcp_probes_total",
            "Client connections that ended before their first TLS byte (port probes).", "counter",
            LD(s->tcp_probes));
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
    metric1(b, "opale_upstream_errors_total",
            "Upstream connect, reset, timeout or protocol errors.", "counter",
            LD(s->upstream_errors));
    metric1(
        b, "opale_upstream_queue_timeouts_total",
        "Requests that waited queue_timeout_ms for an upstream connection (max_connections) and "
        "were answered 504, nothing sent; counted in opale_upstream_errors_total too.",
        "counter", LD(s->upstream_queue_timeouts));
    duration_histogram(b, "opale_request_duration_seconds", "Whole-request latency.",
                       s->latency_bucket, LD(s->latency_sum_ms));
    metric(b, "opale_quota_decisions_total", "Quota decisions by outcome.", "counter");
    evbuffer_add_printf(b, "opale_quota_decisions_total{outcome=\"admitted\"} %lu\n",
                        LD(s->quota_admitted));
    evbuffer_add_printf(b, "opale_quota_decisions_total{outcome=\"refused\"} %lu\n",
                        LD(s->quota_refused));
    metric1(b, "opale_quota_degraded_total", "Quota decisions taken without the shared store.",
            "counter", LD(s->quota_degraded));
    metric1(b, "opale_quota_deny_cache_hits_total", "Refusals answered from the deny cache.",
            "counter", LD(s->quota_deny_cache_hits));
    metric1(b, "opale_quota_store_degraded", "1 when the last quota decision was degraded.",
            "gauge", atomic_load_explicit(&s->quota_store_degraded, memory_order_relaxed));
    gw_redis_stats rs;
    if (gw_server_redis_stats(a->srv, &rs)) {
        metric1(b, "opale_redis_up", "1 when every Redis connection is ready.", "gauge", rs.up);
        metric(b, "opale_redis_commands_total", "Redis commands by outcome.", "counter");
        evbuffer_add_printf(b,
                            "opale_redis_commands_total{outcome=\"sent\"} %llu\n"
                            "opale_redis_commands_total{outcome=\"replied\"} %llu\n"
                            "opale_redis_commands_total{outcome=\"timeout\"} %llu\n"
                            "opale_redis_commands_total{outcome=\"error\"} %llu\n",
                            (unsigned long long)rs.commands, (unsigned long long)rs.replies,
                            (unsigned long long)rs.timeouts, (unsigned long long)rs.errors);
        metric1(b, "opale_redis_reconnects_total", "Redis reconnections.", "counter",
                rs.reconnects);
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
    metric1(b, "opale_policies", "Habilitations in the current policy set.", "gauge",
            ps ? gw_policy_set_count(ps) : 0);
    metric1(b, "opale_policy_files_rejected",
            "Policy files rejected by the last load (left out or kept at their previous version).",
            "gauge", gw_policy_set_nrejected(ps));
    gw_policy_set_unref(ps);
    gw_journal_stats js;
    gw_journal_get_stats(a->journal, &js);
    metric(b, "opale_journal_records_total", "Journal records by outcome.", "counter");
    evbuffer_add_printf(b, "opale_journal_records_total{outcome=\"written\"} %llu\n",
                        (unsigned long long)js.written);
    evbuffer_add_printf(b, "opale_journal_records_total{outcome=\"dropped\"} %llu\n",
                        (unsigned long long)(js.dropped + LD(s->journal_refused)));
    metric1(b, "opale_journal_seq", "Sequence number of the last chained record.", "gauge", js.seq);
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
    metric1(b, "opale_journal_healthy", "1 while the journal writes normally.", "gauge",
            gw_journal_healthy(a->journal));
    /* availability as CGU section 11 counts it (docs/availability.md) */
    gw_policy_set *rps = gw_server_policies(a->srv);
    int ready = gw_admin_is_ready(a, rps), maint = gw_server_in_maintenance(a->srv);
    gw_policy_set_unref(rps);
    metric1(b, "opale_ready", "1 while /readyz answers 200.", "gauge", ready);
    metric1(b, "opale_maintenance", "1 while a maintenance slot is active (answers 503 910220).",
            "gauge", maint);
    metric1(b, "opale_up", "1 when ready and outside maintenance slots.", "gauge", ready && !maint);
    metric1(b, "opale_journal_queue", "Journal records waiting to be written (lag).", "gauge",
            js.queued);
    metric1(b, "opale_journal_reservations",
            "Journal slots held for requests in flight (record not yet written).", "gauge",
            js.reserved);
    metric1(b, "opale_journal_reservations_refused_total",
            "Requests refused (503 910240) because no journal slot could be reserved.", "counter",
            js.reserve_refused);
    metric1(b, "opale_journal_refusals_summarised_total",
            "Refusal records counted in a summary record instead of written one by one.", "counter",
            js.summarised);
    metric1(b, "opale_journal_lost_pending",
            "Records lost on a write error whose gap record is not yet written.", "gauge",
            js.gap_pending);
    journal_integrity_metrics(a, b, &js);
    security_metrics(a, b);
}

void gw_admin_on_metrics(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)id;
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    metrics(a, b);
    gw_dp_metrics(b);
    gw_admin_reply(req, 200, "text/plain; version=0.0.4", b);
    evbuffer_free(b);
}
