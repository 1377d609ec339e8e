/*
 * The operator's incident actions (docs/operations.md): policy reload,
 * consumer suspension and resumption, environment cut and restoration,
 * the acknowledgement of a security event; the lists they act on (GET
 * /admin/consumers, /admin/environments); and the event of a suspension
 * that lifts itself. Each action is logged, raises its security event and
 * leaves its journal record (admin/trail.h).
 */
#ifndef GW_ADMIN_ACTIONS_H
#define GW_ADMIN_ACTIONS_H

#include "admin/state.h"

void gw_admin_on_consumers(gw_admin *a, struct evhttp_request *req, const char *id);
void gw_admin_on_reload(gw_admin *a, struct evhttp_request *req, const char *id);
void gw_admin_on_suspend(gw_admin *a, struct evhttp_request *req, const char *id);
void gw_admin_on_resume(gw_admin *a, struct evhttp_request *req, const char *id);
void gw_admin_on_envs(gw_admin *a, struct evhttp_request *req, const char *id);
void gw_admin_on_env_cut(gw_admin *a, struct evhttp_request *req, const char *id);
void gw_admin_on_env_restore(gw_admin *a, struct evhttp_request *req, const char *id);
void gw_admin_on_event_ack(gw_admin *a, struct evhttp_request *req, const char *id);

/* A suspension or cut lifted itself (its "until" passed): one
 * suspension.expired event, from whichever thread swept it. <arg>: the
 * server (gw_suspensions_on_expired). */
void gw_admin_on_expired(void *arg, const gw_suspension_info *info, int persisted);

#endif
