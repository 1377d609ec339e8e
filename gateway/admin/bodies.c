/* The admin listener's JSON answers (see bodies.h). */
#include "admin/bodies.h"

#include <stdio.h>

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
        json_array_append_new(
            arr, json_pack("{s:s,s:s,s:s,s:s,s:b,s:I}", "client_id", pol->client_id, "habilitation",
                           pol->id, "environment", gw_env_name(pol->env), "state",
                           states[pol->state], "suspended",
                           susp != NULL && gw_suspensions_is_suspended(susp, pol->client_id),
                           "quota_per_minute", (json_int_t)pol->quota_per_minute));
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
