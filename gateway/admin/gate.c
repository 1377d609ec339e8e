/*
 * The credential and access gates of the admin listener, and the console's
 * session endpoints (admin/gate.h).
 */
#include "admin/gate.h"

#include <stdio.h>
#include <string.h>

#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>

#include "admin/reply.h"
#include "admin/routes.h"
#include "admin/trail.h"
#include "lib/util.h"

/* ---- authentication failures: journalled, rate-limited per source ---- */

/*
 * The one place the credential is checked: a bearer token (any operator's,
 * admin/operators.h) or, without an Authorization header, the gw_session
 * cookie of a live session (admin/session.h). 1 with a->cur (and
 * a->cur_session) set when it is valid and its source is not blocked; else
 * the 401 or 429 is sent, the failure journalled (security events, with the
 * source address, never the token) and 0 returned. The decision is
 * gw_admin_auth_decide's (admin/auth.h).
 */
int gw_admin_gate_credential(gw_admin *a, struct evhttp_request *req, const char *path)
{
    char *ip = NULL;
    ev_uint16_t port = 0;
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    if (conn != NULL)
        evhttp_connection_get_peer(conn, &ip, &port);
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *h = evhttp_find_header(in, "Authorization");
    uint64_t now = gw_now_ms();
    const gw_admin_operator *op = NULL;
    gw_admin_session *sess = NULL;
    const char *why = "admin.no_token";
    char cookie[GW_ADMIN_SECRET_LEN + 2];
    if (h != NULL) {
        op = gw_admin_operator_by_auth(&a->ops, h);
        why = "admin.bad_token";
    } else if (gw_admin_cookie_get(evhttp_find_header(in, "Cookie"), GW_ADMIN_COOKIE, cookie,
                                   sizeof(cookie))) {
        sess = gw_admin_session_find(&a->sessions, cookie, now);
        op = sess != NULL && sess->op < a->ops.n ? &a->ops.ops[sess->op] : NULL;
        why = "admin.bad_session";
    }
    gw_admin_auth_verdict v = gw_admin_auth_decide(&a->auth, ip, op != NULL, now);
    if (v.status == 0) {
        a->cur = op;
        a->cur_session = sess;
        return 1;
    }
    if (v.status == 429) {
        char ra[24];
        snprintf(ra, sizeof(ra), "%u", v.retry_after_s);
        a->auth_throttled++;
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", ra);
        gw_admin_error_reply(req, 429, "too many failed authentications");
        return 0;
    }
    a->auth_failures++;
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    gw_event_admin e = {.habilitations = -1, .errors = -1, .blocked_s = -1};
    e.method = m == EVHTTP_REQ_GET      ? "GET"
               : m == EVHTTP_REQ_POST   ? "POST"
               : m == EVHTTP_REQ_DELETE ? "DELETE"
                                        : "other";
    e.path = path;
    e.reason = why;
    e.failures = v.failures;
    gw_admin_event(a, req, GW_EV_ADMIN_AUTH_FAILED, &e);
    if (v.blocked_s > 0) {
        e.reason = NULL;
        e.blocked_s = (long)v.blocked_s;
        gw_admin_event(a, req, GW_EV_ADMIN_AUTH_BLOCKED, &e);
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                      "Bearer realm=\"opale-admin\"");
    gw_admin_error_reply(
        req, 401, strcmp(why, "admin.bad_session") == 0 ? "session expired" : "unauthorized");
    return 0;
}

/* ---- console sessions (docs/console.md, "API and security") ---- */

/* Set-Cookie for session <s>, its Max-Age the seconds it has left (sent
 * again on every answer to the session: the idle expiry slides). */
static unsigned session_cookie(gw_admin *a, struct evhttp_request *req, const gw_admin_session *s)
{
    char cookie[128];
    unsigned left = gw_admin_session_expires_in(&a->sessions, s, gw_now_ms());
    snprintf(cookie, sizeof(cookie), "%s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%u",
             GW_ADMIN_COOKIE, s->id, left);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Set-Cookie", cookie);
    OPENSSL_cleanse(cookie, sizeof(cookie));
    return left;
}

/* POST /admin/session: with a bearer token only (a session does not beget
 * sessions); the cookie and the CSRF token in the body. */
void gw_admin_on_session_new(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)id;
    if (a->cur_session != NULL) {
        gw_admin_error_reply(req, 400, "a session is opened with Authorization: Bearer <token>");
        return;
    }
    size_t op = (size_t)(a->cur - a->ops.ops);
    gw_admin_session *s = gw_admin_session_open(&a->sessions, op, gw_now_ms());
    if (s == NULL) {
        gw_admin_error_reply(req, 500, "cannot open a session");
        return;
    }
    unsigned left = session_cookie(a, req, s);
    fprintf(stderr, "opale-gateway: admin: console session opened for operator %s\n", a->cur->name);
    gw_admin_json_reply(req, 200,
                        json_pack("{s:s,s:s,s:s,s:i}", "operator", a->cur->name, "role",
                                  gw_admin_role_name(a->cur->role), "csrf", s->csrf, "expires_in",
                                  (int)left));
}

/* DELETE /admin/session: ends the cookie's session (with a bearer token:
 * nothing to end); the cookie is cleared either way. */
void gw_admin_on_session_end(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)id;
    int ended = a->cur_session != NULL;
    if (ended)
        gw_admin_session_end(a->cur_session);
    a->cur_session = NULL;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Set-Cookie",
                      GW_ADMIN_COOKIE "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    gw_admin_json_reply(req, 200, json_pack("{s:b}", "ended", ended));
}

void gw_admin_on_whoami(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)id;
    gw_admin_json_reply(
        req, 200,
        json_pack("{s:s,s:s}", "operator", a->cur->name, "role", gw_admin_role_name(a->cur->role)));
}

/* The Origin, CSRF and role checks (gw_admin_access) of an authenticated
 * request to endpoint <ep> (-1: unknown path or method); 1 to go on, else
 * the 403 is sent. */
int gw_admin_gate_access(gw_admin *a, struct evhttp_request *req, int ep)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    const char *origin = evhttp_find_header(in, "Origin");
    gw_admin_access_in ai = {
        .is_get = m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD,
        .by_session = a->cur_session != NULL,
        .origin_present = origin != NULL,
        .origin_ok = gw_admin_origin_ok(origin, a->conf->admin.address, a->conf->admin.port),
        .csrf_ok = a->cur_session != NULL &&
                   gw_admin_csrf_ok(evhttp_find_header(in, "X-CSRF-Token"), a->cur_session->csrf),
        .role = a->cur->role,
        .ep_is_action = ep >= 0 && gw_admin_ep_is_action((gw_admin_ep)ep),
    };
    const char *err = NULL;
    if (gw_admin_access(&ai, &err) == 0) {
        if (a->cur_session != NULL && ep != GW_ADMIN_EP_SESSION_END)
            session_cookie(a, req, a->cur_session);
        return 1;
    }
    static const struct {
        const char *error, *message;
    } why[] = {
        {"origin", "the Origin is not the admin listener's"},
        {"csrf", "X-CSRF-Token missing or not this session's"},
        {"forbidden", "this operator's role is read"},
    };
    for (size_t i = 0; i < sizeof(why) / sizeof(why[0]); i++)
        if (strcmp(err, why[i].error) == 0)
            gw_admin_json_reply(req, 403,
                                json_pack("{s:s,s:s}", "error", err, "message", why[i].message));
    return 0;
}
