/*
 * The console's read views (docs/console.md): GET /admin/overview,
 * /admin/partners, /admin/partners/{client_id}, /admin/events and
 * /admin/maintenance, and the once-a-second sampling of the figures they
 * show (admin/series.h). The JSON is built by admin/views.h, series.h,
 * eventlog.h and recette.h; here the listener's side.
 */
#ifndef GW_ADMIN_PAGES_H
#define GW_ADMIN_PAGES_H

#include "admin/state.h"

/* Once a second (the listener's sweep): the series, each consumer's usage,
 * the journal's checkpoint and verification times. */
void gw_admin_console_sample(gw_admin *a);

void gw_admin_on_overview(gw_admin *a, struct evhttp_request *req, const char *id);
void gw_admin_on_partners(gw_admin *a, struct evhttp_request *req, const char *id);
void gw_admin_on_partner(gw_admin *a, struct evhttp_request *req, const char *id);
void gw_admin_on_events(gw_admin *a, struct evhttp_request *req, const char *id);
void gw_admin_on_maintenance(gw_admin *a, struct evhttp_request *req, const char *id);

#endif
