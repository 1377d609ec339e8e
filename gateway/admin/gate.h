/*
 * The gates of an admin request that is not open, in this order: the
 * credential (a bearer token or a console session's cookie; 401, or 429 for
 * a source blocked after failed authentications), then Origin, CSRF and the
 * operator's role (403). The decisions are admin/auth.h's and
 * admin/session.h's; here the evhttp side, the counters, the security
 * events and the session endpoints (docs/console.md, "API and security").
 */
#ifndef GW_ADMIN_GATE_H
#define GW_ADMIN_GATE_H

#include "admin/state.h"

/* 1 with a->cur (and a->cur_session) set when the credential of <req> is
 * valid and its source not blocked; else the 401 or 429 is sent, the
 * failure journalled (security events, with the source address, never the
 * token) and 0 returned. <path>: the request's path, for the event. */
int gw_admin_gate_credential(gw_admin *a, struct evhttp_request *req, const char *path);

/* The Origin, CSRF and role checks (gw_admin_access) of an authenticated
 * request to endpoint <ep> (-1: unknown path or method); 1 to go on (the
 * session's cookie sent again: its idle expiry slides), else the 403 is
 * sent and 0 returned. */
int gw_admin_gate_access(gw_admin *a, struct evhttp_request *req, int ep);

/* POST /admin/session, DELETE /admin/session, GET /admin/whoami. */
void gw_admin_on_session_new(gw_admin *a, struct evhttp_request *req, const char *id);
void gw_admin_on_session_end(gw_admin *a, struct evhttp_request *req, const char *id);
void gw_admin_on_whoami(gw_admin *a, struct evhttp_request *req, const char *id);

#endif
