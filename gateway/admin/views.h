/*
 * The console's read views (docs/console.md, docs/openapi/admin.json):
 * the partner rows, a partner's recent journal records with their chain
 * check, and the maintenance calendar, as JSON, without libevent.
 * admin.c assembles them with the live state.
 */
#ifndef GW_ADMIN_VIEWS_H
#define GW_ADMIN_VIEWS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "admin/eventlog.h"
#include "admin/series.h"
#include "policy/policy.h"
#include "policy/suspend.h"
#include "stages/stages.h"

/* <t> (Unix s) as "2026-11-27T22:00:00Z"; a JSON string, or null for 0. */
json_t *gw_view_time(int64_t t);

/* What a partner row is built from. */
typedef struct gw_view_ctx {
    gw_suspensions *susp;
    const gw_usage *usage; /* NULL: nothing sampled yet */
    gw_eventlog *log;      /* NULL: no events stream */
    gw_events *events;     /* certificates seen at handshakes; NULL: none */
    int64_t now;           /* Unix s */
} gw_view_ctx;

/* The state of partner <p>: "cut" (its environment is cut), "suspended"
 * (kill switch, or the policy's state is suspended or revoked), "expired"
 * (its habilitation's last valid day has passed), else "active". */
const char *gw_view_state(const gw_view_ctx *x, const gw_policy *p);

/* One row of GET /admin/partners: {"client_id", "organisation", "siret",
 * "habilitation", "environment", "state", "quota": {"used", "limit",
 * "window_s"}, "last_call", "error_rate", "cert_not_after",
 * "habilitation_until", "suspension": null | {"reason", "until",
 * "operator", "since", "source"}}. */
json_t *gw_view_partner(const gw_view_ctx *x, const gw_policy *p);

/* {"partners": [rows]} in the set's order (<ps> NULL: none). */
json_t *gw_view_partners(const gw_view_ctx *x, const gw_policy_set *ps);

/* The operator's name in a suspension's <by> ("lea (admin API from
 * 127.0.0.1)" -> "lea"); <by> itself when it is not of that form (a
 * DataPass revocation, an older file). Into <out> (<len> bytes). */
void gw_view_by_operator(const char *by, char *out, size_t len);

/* The last <max> records of consumer <client_id> in the access journal
 * <path> (its current file; at most the last GW_VIEW_TAIL_BYTES of it are
 * read), oldest first, each parsed with "verified": its hash is the
 * SHA-256 of its bytes and, when the record before it was read, its "prev"
 * is that record's hash. An unreadable file gives []. */
#define GW_VIEW_TAIL_BYTES (8u << 20)
json_t *gw_view_records(const char *path, const char *client_id, size_t max);

/* GET /admin/maintenance from <m> (NULL: no slot configured) at <now>:
 * {"timezone", "slots": [{"start", "end"}] (the occurrences
 * meeting [now - 1 day, now + GW_VIEW_MAINT_DAYS days), merged, in order),
 * "current": slot | null, "next": slot | null}. */
#define GW_VIEW_MAINT_DAYS 14
json_t *gw_view_maintenance(const gw_maint_conf *m, int64_t now);

#endif
