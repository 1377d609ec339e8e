/*
 * Admin listener (evhttp, loopback only, on the main thread's event loop).
 * GET /healthz and /readyz are open (probes); every other path needs
 * "Authorization: Bearer <token>" with the token from admin.token_file (401
 * first, even for an unknown path), then 404 for an unknown path and 405 with
 * Allow for a known one with another method. The endpoints are the table
 * admin_routes[] in admin/routes.c; their reference is docs/openapi/admin.json.
 */
#ifndef GW_ADMIN_H
#define GW_ADMIN_H

#include <event2/event.h>

#include "core/server.h"
#include "journal/anchor.h"
#include "journal/hold.h"
#include "journal/journal.h"

typedef struct gw_admin gw_admin;

gw_admin *gw_admin_start(struct event_base *base, const gw_conf *conf, gw_server *srv,
                         gw_journal *journal, char **err);
void gw_admin_stop(gw_admin *a);

/* The journal's legal holds (GET/POST/DELETE /admin/journal/hold, /readyz,
 * /metrics) and anchoring (/metrics; NULL when not configured). Both stay
 * the caller's and must outlive the admin listener. */
void gw_admin_set_journal(gw_admin *a, gw_holds *holds, gw_anchors *anchors);

#endif
