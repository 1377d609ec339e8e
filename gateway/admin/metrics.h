/*
 * GET /metrics: the Prometheus text exposition (docs/metrics.md) of the
 * workers' summed counters, the consumers', the revocation thread's, the
 * quota store's, the journal's, the security events', the admin listener's
 * own, and DataPass's.
 */
#ifndef GW_ADMIN_METRICS_H
#define GW_ADMIN_METRICS_H

#include "admin/state.h"

void gw_admin_on_metrics(gw_admin *a, struct evhttp_request *req, const char *id);

#endif
