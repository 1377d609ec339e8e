/* The admin listener's JSON answers (see bodies.h). */
#include "admin/bodies.h"

#include <stdio.h>
#include <string.h>

json_t *gw_admin_rejected_json(const gw_policy_set *p)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < gw_policy_set_nrejected(p); i++) {
        const gw_policy_rejected *r = gw_policy_set_rejected_at(p, i);
        json_array_append_new(arr, json_pack("{s:s,s:s,s:b}", "file", r->file, "error", r->error,
                                             "kept_previous", r->kept));
    }
    return arr;
}

json_t *gw_admin_changes_json(const gw_policy_diff *d)
{
    return json_pack("{s:I,s:I,s:I,s:I,s:I}", "before", (json_int_t)d->before, "after",
                     (json_int_t)d->after, "added", (json_int_t)d->added, "changed",
                     (json_int_t)d->changed, "removed", (json_int_t)d->removed);
}

json_t *gw_admin_consumers_json(const gw_policy_set *p, gw_suspensions *susp)
{
    static const char *const states[] = {"active", "suspended", "revoked"};
    json_t *arr = json_array();
    size_t n = p != NULL ? gw_policy_set_count(p) : 0;
    for (size_t i = 0; arr != NULL && i < n; i++) {
        const gw_policy *pol = gw_policy_set_at(p, i);
        gw_suspension_info info;
        int on = susp != NULL && gw_suspensions_get(susp, pol->client_id, &info);
        json_array_append_new(
            arr, json_pack("{s:s,s:s,s:s,s:s,s:b,s:o,s:b,s:I}", "client_id", pol->client_id,
                           "habilitation", pol->id, "environment", gw_env_name(pol->env), "state",
                           states[pol->state], "suspended", on, "suspension",
                           on ? gw_admin_suspension_json(&info) : json_null(), "environment_cut",
                           gw_suspensions_is_cut(susp, gw_env_name(pol->env)), "quota_per_minute",
                           (json_int_t)pol->quota_per_minute));
    }
    return json_pack("{s:o}", "consumers", arr);
}

int gw_admin_reload_status(int rc)
{
    return rc == 0 ? 200 : rc == -2 ? 409 : 422;
}

void gw_admin_reload_refused_message(const gw_policy_diff *d, char *buf, size_t len)
{
    snprintf(buf, len,
             "the reload would remove %zu of %zu partners (%zu left): refused, the current "
             "policies stay; POST /admin/reload?force=1 to apply it",
             d->removed, d->before, d->after);
}

static json_t *errors_json(const gw_errlist *errs)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && errs != NULL && i < errs->n; i++)
        json_array_append_new(arr, json_string(errs->msgs[i]));
    return arr;
}

json_t *gw_admin_reload_json(int rc, const gw_policy_set *now, const gw_policy_diff *d,
                             const gw_errlist *errs)
{
    if (rc == 0)
        return json_pack("{s:b,s:I,s:o,s:o,s:o}", "reloaded", 1, "habilitations",
                         (json_int_t)gw_policy_set_count(now), "rejected",
                         gw_admin_rejected_json(now), "errors", errors_json(errs), "changes",
                         gw_admin_changes_json(d));
    if (rc == -2) {
        char msg[256];
        gw_admin_reload_refused_message(d, msg, sizeof(msg));
        return json_pack("{s:b,s:s,s:s,s:I,s:o,s:o}", "reloaded", 0, "refused", "empties",
                         "message", msg, "habilitations", (json_int_t)d->before, "changes",
                         gw_admin_changes_json(d), "errors", errors_json(errs));
    }
    return json_pack("{s:b,s:o}", "reloaded", 0, "errors", errors_json(errs));
}

static json_t *utc_or_null(time_t t)
{
    char buf[32];
    struct tm tm;
    if (t == 0)
        return json_null();
    gmtime_r(&t, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(buf);
}

static json_t *text_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? json_string(s) : json_null();
}

json_t *gw_admin_suspension_json(const gw_suspension_info *info)
{
    return json_pack("{s:o,s:o,s:o,s:o,s:s}", "since", utc_or_null(info->since), "until",
                     utc_or_null(info->until), "reason", text_or_null(info->reason), "by",
                     text_or_null(info->by), "source", info->why);
}

json_t *gw_admin_environments_json(gw_suspensions *susp)
{
    static const char *const envs[] = {"sandbox", "production"};
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < 2; i++) {
        gw_suspension_info info;
        int cut = gw_suspensions_cut_get(susp, envs[i], &info);
        json_t *o = json_pack("{s:s,s:b}", "environment", envs[i], "cut", cut);
        if (o != NULL && cut)
            json_object_set_new(o, "cut_detail", gw_admin_suspension_json(&info));
        json_array_append_new(arr, o);
    }
    return json_pack("{s:o}", "environments", arr);
}

int gw_admin_text_ok(const char *s, size_t max)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

int gw_admin_reason_body(const char *data, size_t n, int allow_until, time_t now,
                         char reason[GW_SUSPEND_REASON_MAX + 1], time_t *until, char *msg,
                         size_t msglen)
{
    json_t *body = n > 0 ? json_loadb(data, n, JSON_REJECT_DUPLICATES, NULL) : NULL;
    const char *k;
    json_t *v;
    int r = -1;
    *until = 0;
    reason[0] = '\0';
    if (!json_is_object(body)) {
        snprintf(msg, msglen, "a JSON body {\"reason\": text%s} is required",
                 allow_until ? ", \"until\": RFC 3339 date-time (optional)" : "");
        goto out;
    }
    json_object_foreach(body, k, v)
    {
        if (strcmp(k, "reason") != 0 && !(allow_until && strcmp(k, "until") == 0)) {
            snprintf(msg, msglen, "%.64s: unknown member", k);
            goto out;
        }
    }
    const char *rs = json_string_value(json_object_get(body, "reason"));
    if (!gw_admin_text_ok(rs, GW_SUSPEND_REASON_MAX)) {
        snprintf(msg, msglen, "reason: required, text of 1 to %d bytes without control characters",
                 GW_SUSPEND_REASON_MAX);
        goto out;
    }
    json_t *u = json_object_get(body, "until");
    if (u != NULL && !json_is_null(u)) {
        time_t t;
        if (!json_is_string(u) || gw_rfc3339_parse(json_string_value(u), &t) < 0) {
            snprintf(msg, msglen, "until: must be an RFC 3339 date-time (2026-12-31T23:59:59Z)");
            goto out;
        }
        if (t <= now) {
            snprintf(msg, msglen, "until: must be in the future");
            goto out;
        }
        if (t - now > GW_SUSPEND_MAX_S) {
            snprintf(msg, msglen, "until: at most %ld days ahead", GW_SUSPEND_MAX_S / 86400);
            goto out;
        }
        *until = t;
    }
    snprintf(reason, GW_SUSPEND_REASON_MAX + 1, "%s", rs);
    r = 0;
out:
    json_decref(body);
    return r;
}
