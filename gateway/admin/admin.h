/*
 * Admin listener (evhttp, loopback only, on the main thread's event loop).
 * GET /healthz and /readyz are open (probes); /metrics and the /admin/ routes need
 * "Authorization: Bearer <token>" with the token from admin.token_file.
 */
#ifndef GW_ADMIN_H
#define GW_ADMIN_H

#include <event2/event.h>

#include "core/server.h"
#include "journal/journal.h"

typedef struct gw_admin gw_admin;

gw_admin *gw_admin_start(struct event_base *base, const gw_conf *conf, gw_server *srv,
                         gw_journal *journal, char **err);
void gw_admin_stop(gw_admin *a);

#endif
