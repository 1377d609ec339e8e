/*
 * The console's read views and the sampling of their figures
 * (admin/pages.h; docs/console.md).
 */
#include "admin/pages.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/statvfs.h>
#include <time.h>

#include <event2/keyvalq_struct.h>

#include "admin/reply.h"
#include "admin/views.h"
#include "datapass/datapass.h"

#define LD(x) atomic_load_explicit(&(x), memory_order_relaxed)

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
void gw_admin_console_sample(gw_admin *a)
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

void gw_admin_on_overview(gw_admin *a, struct evhttp_request *req, const char *id)
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
    gw_admin_json_reply(req, 200, o);
}

static gw_view_ctx view_ctx(gw_admin *a)
{
    gw_view_ctx x = {gw_server_suspensions(a->srv), a->usage, a->log, gw_server_events(a->srv),
                     (int64_t)time(NULL)};
    return x;
}

void gw_admin_on_partners(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)id;
    gw_view_ctx x = view_ctx(a);
    gw_policy_set *ps = gw_server_policies(a->srv);
    json_t *o = gw_view_partners(&x, ps);
    gw_policy_set_unref(ps);
    gw_admin_json_reply(req, 200, o);
}

#define PARTNER_RECORDS 50

void gw_admin_on_partner(gw_admin *a, struct evhttp_request *req, const char *id)
{
    gw_view_ctx x = view_ctx(a);
    gw_policy_set *ps = gw_server_policies(a->srv);
    const gw_policy *p = ps != NULL ? gw_policy_by_client_id(ps, id) : NULL;
    if (p == NULL) {
        gw_policy_set_unref(ps);
        gw_admin_error_reply(req, 404, "unknown client_id");
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
    gw_admin_json_reply(req, 200, o);
}

void gw_admin_on_events(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)id;
    struct evkeyvalq q;
    TAILQ_INIT(&q);
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (query != NULL && evhttp_parse_query_str(query, &q) != 0) {
        gw_admin_error_reply(req, 400, "malformed query string");
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
    else if (gw_admin_query_u64(&q, "after", &eq.after) < 0)
        bad = "after: an event id";
    else if (gw_admin_query_u64(&q, "limit", &limit) < 0 || limit < 1 ||
             limit > GW_EVENTLOG_LIMIT_MAX)
        bad = "limit: 1 to 500";
    if (bad != NULL) {
        evhttp_clear_headers(&q);
        gw_admin_error_reply(req, 400, bad);
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
    gw_admin_json_reply(req, 200, o);
}

void gw_admin_on_maintenance(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)id;
    gw_admin_json_reply(req, 200,
                        gw_view_maintenance(gw_server_maintenance(a->srv), (int64_t)time(NULL)));
}
