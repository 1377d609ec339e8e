/*
 * Legal holds over the admin API (docs/journal.md, "Legal hold"): GET,
 * POST and DELETE /admin/journal/hold. Retention stops on both journal
 * streams while any hold is set.
 */
#ifndef GW_ADMIN_HOLDS_H
#define GW_ADMIN_HOLDS_H

#include "admin/state.h"

void gw_admin_on_hold_get(gw_admin *a, struct evhttp_request *req, const char *id);
void gw_admin_on_hold_post(gw_admin *a, struct evhttp_request *req, const char *id);
void gw_admin_on_hold_delete(gw_admin *a, struct evhttp_request *req, const char *id);

#endif
