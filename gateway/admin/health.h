/*
 * The probes: GET /healthz (the process answers) and GET /readyz (policies
 * loaded, journal writable, listeners up; the quota store's state, the
 * environments cut, the rejected and pending policy files).
 */
#ifndef GW_ADMIN_HEALTH_H
#define GW_ADMIN_HEALTH_H

#include "admin/state.h"

/* The /readyz verdict for the policy set <ps> (opale_ready says the same). */
int gw_admin_is_ready(gw_admin *a, const gw_policy_set *ps);

void gw_admin_on_healthz(gw_admin *a, struct evhttp_request *req, const char *id);
void gw_admin_on_readyz(gw_admin *a, struct evhttp_request *req, const char *id);

#endif
