/*
 * The operator's incident actions (admin/actions.h; docs/operations.md).
 */
#include "admin/actions.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "admin/bodies.h"
#include "admin/reply.h"
#include "admin/trail.h"
#include "lib/util.h"

/* POST /admin/reload: the status and body are admin/bodies.c's
 * (gw_admin_reload_status); here the logs, the security event and the
 * journal record. */
static void do_reload(gw_admin *a, struct evhttp_request *req)
{
    gw_errlist errs;
    gw_policy_diff d;
    memset(&errs, 0, sizeof(errs));
    int force = gw_admin_query_flag(req, "force");
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
    gw_admin_event(a, req, status == 200 ? GW_EV_ADMIN_RELOAD : GW_EV_ADMIN_RELOAD_REFUSED, &ea);
    gw_admin_journal(a, "/admin/reload", status == 200 ? "admin.reload" : "admin.reload_refused",
                     NULL, status);
    gw_policy_set_unref(p);
    gw_errlist_clear(&errs);
    gw_admin_json_reply(req, status, o);
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
    gw_admin_error_reply(req, 422, msg);
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
        gw_admin_json_reply(req, 404, json_pack("{s:s}", "error", "unknown client_id"));
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
        gw_admin_error_reply(
            req, 409, "suspended by a DataPass revocation: lifted by a DataPass re-approval only");
        return;
    }
    gw_admin_operator_of(a, req, by, sizeof(by));
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
    gw_admin_event(a, req, on ? GW_EV_ADMIN_SUSPEND : GW_EV_ADMIN_RESUME, &ea);
    gw_admin_journal(a, path, on ? "admin.suspend" : "admin.resume", pol->client_id,
                     rc == 0 ? 200 : 500);
    free(err);
    gw_policy_set_unref(p);
    gw_admin_json_reply(req, rc == 0 ? 200 : 500, o);
}

/* POST /admin/environments/{env}/cut and .../restore (CGU §8 "coupure"). */
static void do_cut(gw_admin *a, struct evhttp_request *req, const char *env, int on)
{
    if (strcmp(env, "sandbox") != 0 && strcmp(env, "production") != 0) {
        gw_admin_error_reply(req, 404, "unknown environment (sandbox or production)");
        return;
    }
    char reason[GW_SUSPEND_REASON_MAX + 1], by[128], until_s[32], path[96];
    time_t until = 0;
    if (reason_of(req, on, reason, &until) < 0)
        return;
    gw_admin_operator_of(a, req, by, sizeof(by));
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
    json_t *f = json_pack("{s:s,s:s?,s:s,s:s,s:s,s:b}", "by", by, "client_ip",
                          gw_admin_peer_addr(req), "environment", env, "reason", reason, "operator",
                          a->cur != NULL ? a->cur->name : "unknown", "persisted", rc == 0);
    if (f != NULL && until != 0)
        json_object_set_new(f, "until", json_string(until_s));
    if (f != NULL && rc < 0)
        json_object_set_new(f, "error", json_string(err ? err : "cannot persist"));
    gw_events_integrity(gw_server_events(a->srv), on ? GW_EV_ADMIN_CUT : GW_EV_ADMIN_CUT_LIFTED, f);
    gw_admin_journal(a, path, on ? "admin.environment_cut" : "admin.environment_restored", NULL,
                     rc == 0 ? 200 : 500);
    json_t *o = json_pack("{s:s,s:b,s:b}", "environment", env, "cut", on, "persisted", rc == 0);
    if (o != NULL && rc < 0)
        json_object_set_new(o, "error", json_string(err ? err : "cannot persist"));
    free(err);
    gw_admin_json_reply(req, rc == 0 ? 200 : 500, o);
}

/* A suspension or cut lifted itself (its "until" passed): one
 * suspension.expired event, from whichever thread swept it. <arg>: the
 * server. */
void gw_admin_on_expired(void *arg, const gw_suspension_info *info, int persisted)
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

static void do_consumers(gw_admin *a, struct evhttp_request *req)
{
    gw_policy_set *p = gw_server_policies(a->srv);
    gw_admin_json_reply(req, 200, gw_admin_consumers_json(p, gw_server_suspensions(a->srv)));
    gw_policy_set_unref(p);
}

void gw_admin_on_consumers(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)id;
    do_consumers(a, req);
}

void gw_admin_on_reload(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)id;
    do_reload(a, req);
}

void gw_admin_on_suspend(gw_admin *a, struct evhttp_request *req, const char *id)
{
    char path[256];
    snprintf(path, sizeof(path), "/admin/consumers/%s/suspend", id);
    do_suspend(a, req, path, id, 1);
}

void gw_admin_on_resume(gw_admin *a, struct evhttp_request *req, const char *id)
{
    char path[256];
    snprintf(path, sizeof(path), "/admin/consumers/%s/resume", id);
    do_suspend(a, req, path, id, 0);
}

void gw_admin_on_envs(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)id;
    gw_admin_json_reply(req, 200, gw_admin_environments_json(gw_server_suspensions(a->srv)));
}

void gw_admin_on_env_cut(gw_admin *a, struct evhttp_request *req, const char *id)
{
    do_cut(a, req, id, 1);
}

void gw_admin_on_env_restore(gw_admin *a, struct evhttp_request *req, const char *id)
{
    do_cut(a, req, id, 0);
}

/* POST /admin/events/{id}/ack: journalled as admin.event_ack with the
 * operator. */
void gw_admin_on_event_ack(gw_admin *a, struct evhttp_request *req, const char *id)
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
        gw_admin_error_reply(req, 404, "no such event (or no longer held)");
        return;
    }
    if (rc > 0) {
        gw_admin_error_reply(req, 409, "already acknowledged");
        return;
    }
    json_t *f =
        json_pack("{s:s,s:s?,s:s,s:I,s:s}", "by", "admin API", "client_ip", gw_admin_peer_addr(req),
                  "operator", a->cur->name, "event_id", (json_int_t)n, "event_type", type);
    gw_events_integrity(gw_server_events(a->srv), GW_EV_ADMIN_EVENT_ACK, f);
    fprintf(stderr, "opale-gateway: admin: event %llu (%s) acknowledged by %s\n", n, type,
            a->cur->name);
    gw_admin_json_reply(req, 200,
                        json_pack("{s:I,s:{s:s,s:s}}", "id", (json_int_t)n, "acked", "operator",
                                  a->cur->name, "time", now));
}
