/*
 * The admin listener's JSON answers, built from the policy set, the kill
 * switch and a reload's outcome, without libevent (admin.c sends them).
 * Every function returns a new reference (NULL only when out of memory).
 * Their reference is docs/openapi/admin.json.
 */
#ifndef GW_ADMIN_BODIES_H
#define GW_ADMIN_BODIES_H

#include <jansson.h>
#include <stddef.h>

#include "lib/jsonv.h"
#include "policy/policy.h"
#include "policy/suspend.h"

/* The files the set <p> rejected: [{"file", "error", "kept_previous"}]. */
json_t *gw_admin_rejected_json(const gw_policy_set *p);

/* {"before", "after", "added", "changed", "removed"} of a reload. */
json_t *gw_admin_changes_json(const gw_policy_diff *d);

/* GET /admin/consumers: {"consumers": [{"client_id", "habilitation",
 * "environment", "state", "suspended", "quota_per_minute"}]} in the set's
 * order; <p> NULL: none. */
json_t *gw_admin_consumers_json(const gw_policy_set *p, gw_suspensions *susp);

/* One suspension or cut as the admin API shows it: {"since", "until" (null:
 * until lifted), "reason" (null: none given), "by", "source" ("admin API" or
 * "datapass ...")}. */
json_t *gw_admin_suspension_json(const gw_suspension_info *info);

/* GET /admin/environments: {"environments": [{"environment", "cut", and
 * when cut "cut_detail": gw_admin_suspension_json}]}. */
json_t *gw_admin_environments_json(gw_suspensions *susp);

/* 1 when <s> is a text of 1..<max> bytes without control characters. */
int gw_admin_text_ok(const char *s, size_t max);

/* The body of suspend, resume, cut and restore (docs/openapi/admin.json):
 * a JSON object {"reason": text of 1..GW_SUSPEND_REASON_MAX bytes without
 * control characters, "until": RFC 3339 date-time (only when <allow_until>;
 * optional), in the future from <now> and at most GW_SUSPEND_MAX_S ahead}.
 * 0 with <reason> filled and <*until> (0 when absent); -1 with a message in
 * <msg> (answered 422). */
int gw_admin_reason_body(const char *data, size_t n, int allow_until, time_t now,
                         char reason[GW_SUSPEND_REASON_MAX + 1], time_t *until, char *msg,
                         size_t msglen);

/* POST /admin/reload: the status for gw_server_reload_policies()'s <rc>
 * (0: 200, the new set is in place, rejected files listed; -2: 409, the set
 * would have emptied the current one and ?force=1 was not given; else 422,
 * the directory could not be read); on 409 and 422 nothing changed. */
int gw_admin_reload_status(int rc);

/* The 409 refusal's message (also the security event's error). */
void gw_admin_reload_refused_message(const gw_policy_diff *d, char *buf, size_t len);

/* The body of the reload's answer: <now> is the set in place after a
 * successful reload (rc 0), <d> the comparison, <errs> every error met
 * (the "errors" array). */
json_t *gw_admin_reload_json(int rc, const gw_policy_set *now, const gw_policy_diff *d,
                             const gw_errlist *errs);

#endif
