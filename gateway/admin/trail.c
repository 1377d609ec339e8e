/*
 * The journal record and security event of an admin action (admin/trail.h).
 */
#include "admin/trail.h"

#include <stdio.h>
#include <string.h>

#include "admin/reply.h"
#include "lib/util.h"

void gw_admin_journal(gw_admin *a, const char *path, const char *reason, const char *consumer,
                      int status)
{
    gw_journal_rec r;
    memset(&r, 0, sizeof(r));
    char ts[32], rid[37];
    gw_time_iso_ms(ts);
    gw_uuid4(rid);
    r.ts = ts;
    r.request_id = rid;
    r.listener = "admin";
    r.client_port = -1;
    r.upstream_status = -1;
    r.upstream_ms = -1;
    r.ms = -1;
    r.bytes_in = -1;
    r.bytes_out = -1;
    r.method = "POST";
    r.path = path;
    r.consumer = consumer;
    r.decision = "admin";
    r.reason = reason;
    r.status = status;
    size_t len = 0;
    char *line = gw_journal_format(&r, &len);
    if (line != NULL)
        gw_journal_submit(a->journal, line, len);
}

void gw_admin_event(gw_admin *a, struct evhttp_request *req, gw_event_type type, gw_event_admin *e)
{
    e->by = "admin API";
    e->client_ip = gw_admin_peer_addr(req);
    e->who = a->cur != NULL ? a->cur->name : NULL;
    gw_events_admin(gw_server_events(a->srv), type, e);
}

/* "<operator> (admin API from <address>)": who acted, as the suspensions
 * file records it (gw_admin_by_operator reads the name back). */
void gw_admin_operator_of(gw_admin *a, struct evhttp_request *req, char *by, size_t len)
{
    const char *ip = gw_admin_peer_addr(req);
    snprintf(by, len, "%s (admin API from %s)", a->cur != NULL ? a->cur->name : "unknown",
             ip != NULL ? ip : "unknown address");
}
