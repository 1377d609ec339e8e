/*
 * GET /healthz and GET /readyz (admin/health.h).
 */
#include "admin/health.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "admin/bodies.h"
#include "admin/reply.h"
#include "datapass/datapass.h"

/* The /readyz verdict. Rejected policy files do not make the instance
 * unready: the other partners are served (docs/policies.md, "When a file is
 * rejected"). */
int gw_admin_is_ready(gw_admin *a, const gw_policy_set *ps)
{
    return gw_server_ready(a->srv) && ps != NULL && gw_server_journal_ok(a->srv);
}

void gw_admin_on_healthz(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)a;
    (void)id;
    gw_admin_json_reply(req, 200, json_pack("{s:s}", "status", "ok"));
}

void gw_admin_on_readyz(gw_admin *a, struct evhttp_request *req, const char *id)
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
    int ready = gw_admin_is_ready(a, ps);
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
    gw_admin_reply(req, ready ? 200 : 503, "application/json", b);
    evbuffer_free(b);
}
