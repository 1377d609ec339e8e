/*
 * The admin listener (admin/admin.h): evhttp on the main thread's loop, the
 * dispatch of a request through the gates (admin/gate.h) to its endpoint's
 * handler, and the once-a-second sweep. The handlers live by job in
 * health.c, metrics.c, actions.c, holds.c, gate.c and pages.c; their shared
 * state is admin/state.h.
 */
#include "admin/admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <openssl/crypto.h>

#include "admin/actions.h"
#include "admin/gate.h"
#include "admin/health.h"
#include "admin/holds.h"
#include "admin/metrics.h"
#include "admin/pages.h"
#include "admin/reply.h"
#include "admin/routes.h"
#include "admin/state.h"

/* Once a second on the admin listener's loop: expired suspensions lift
 * themselves even when their consumer sends nothing. */
static void sweep_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_admin *a = arg;
    gw_suspensions_sweep(gw_server_suspensions(a->srv), time(NULL));
    gw_admin_console_sample(a);
}

/* The handlers, by endpoint (admin/routes.h holds the table). */
static const gw_admin_handler admin_handlers[GW_ADMIN_EP__COUNT] = {
    [GW_ADMIN_EP_HEALTHZ] = gw_admin_on_healthz,
    [GW_ADMIN_EP_READYZ] = gw_admin_on_readyz,
    [GW_ADMIN_EP_METRICS] = gw_admin_on_metrics,
    [GW_ADMIN_EP_CONSUMERS] = gw_admin_on_consumers,
    [GW_ADMIN_EP_RELOAD] = gw_admin_on_reload,
    [GW_ADMIN_EP_SUSPEND] = gw_admin_on_suspend,
    [GW_ADMIN_EP_RESUME] = gw_admin_on_resume,
    [GW_ADMIN_EP_HOLD_GET] = gw_admin_on_hold_get,
    [GW_ADMIN_EP_HOLD_SET] = gw_admin_on_hold_post,
    [GW_ADMIN_EP_HOLD_LIFT] = gw_admin_on_hold_delete,
    [GW_ADMIN_EP_ENVS] = gw_admin_on_envs,
    [GW_ADMIN_EP_ENV_CUT] = gw_admin_on_env_cut,
    [GW_ADMIN_EP_ENV_RESTORE] = gw_admin_on_env_restore,
    [GW_ADMIN_EP_SESSION_NEW] = gw_admin_on_session_new,
    [GW_ADMIN_EP_SESSION_END] = gw_admin_on_session_end,
    [GW_ADMIN_EP_WHOAMI] = gw_admin_on_whoami,
    [GW_ADMIN_EP_OVERVIEW] = gw_admin_on_overview,
    [GW_ADMIN_EP_PARTNERS] = gw_admin_on_partners,
    [GW_ADMIN_EP_PARTNER] = gw_admin_on_partner,
    [GW_ADMIN_EP_EVENTS] = gw_admin_on_events,
    [GW_ADMIN_EP_EVENT_ACK] = gw_admin_on_event_ack,
    [GW_ADMIN_EP_MAINTENANCE] = gw_admin_on_maintenance,
};

/* The methods evhttp knows, by name: every one reaches handle(), which
 * answers 405 itself for a known path. */
static const struct {
    enum evhttp_cmd_type cmd;
    const char *name;
} admin_methods[] = {
    {EVHTTP_REQ_GET, "GET"},     {EVHTTP_REQ_POST, "POST"},       {EVHTTP_REQ_HEAD, "HEAD"},
    {EVHTTP_REQ_PUT, "PUT"},     {EVHTTP_REQ_DELETE, "DELETE"},   {EVHTTP_REQ_OPTIONS, "OPTIONS"},
    {EVHTTP_REQ_TRACE, "TRACE"}, {EVHTTP_REQ_CONNECT, "CONNECT"}, {EVHTTP_REQ_PATCH, "PATCH"},
};

static const char *method_name(enum evhttp_cmd_type m)
{
    for (size_t i = 0; i < sizeof(admin_methods) / sizeof(admin_methods[0]); i++)
        if (admin_methods[i].cmd == m)
            return admin_methods[i].name;
    return "";
}

/* Dispatch (the order is admin/routes.h's): the console's files (open);
 * the credential first for a path that is not open (admin/gate.h answers
 * 401 or 429 itself), then Origin and CSRF (403), 404, 405 with Allow, the
 * role (403), else the endpoint's handler. */
static void handle(struct evhttp_request *req, void *arg)
{
    gw_admin *a = arg;
    gw_admin_dispatch d;
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    gw_admin_dispatch_of(evhttp_request_get_uri(req), method_name(m), &d);
    a->cur = NULL;
    a->cur_session = NULL;
    if (strcmp(d.path, "/console") == 0 || strncmp(d.path, "/console/", 9) == 0) {
        if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD) {
            gw_admin_serve_console(req, d.path, m == EVHTTP_REQ_HEAD);
        } else {
            evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
            gw_admin_error_reply(req, 405, "method not allowed");
        }
        return;
    }
    if (!d.open && !gw_admin_gate_credential(a, req, d.path))
        return;
    if (!d.open && !gw_admin_gate_access(a, req, d.ep))
        goto out;
    switch (gw_admin_verdict(&d, 1)) {
    case 404:
        gw_admin_error_reply(req, 404, "not found");
        break;
    case 405:
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", d.allow);
        gw_admin_error_reply(req, 405, "method not allowed");
        break;
    default:
        admin_handlers[d.ep](a, req, d.id);
        break;
    }
out:
    a->cur = NULL;
    a->cur_session = NULL;
}

/* accept() failed (EMFILE...): libevent would poll the listener again at
 * once and spin the main thread; pause it for a second instead, as the
 * workers do (core/server.c). */
static void admin_accept_resume(evutil_socket_t fd, short what, void *arg)
{
    evconnlistener_enable(arg);
}

static void admin_accept_error(struct evconnlistener *lis, void *arg)
{
    struct timeval tv = {1, 0};
    if (event_base_once(evconnlistener_get_base(lis), -1, EV_TIMEOUT, admin_accept_resume, lis,
                        &tv) == 0)
        evconnlistener_disable(lis);
}

gw_admin *gw_admin_start(struct event_base *base, const gw_conf *conf, gw_server *srv,
                         gw_journal *journal, char **err)
{
    gw_admin *a = calloc(1, sizeof(*a));
    char msg[512];
    if (a == NULL) {
        *err = strdup("out of memory");
        return NULL;
    }
    a->srv = srv;
    a->journal = journal;
    a->conf = conf;
    if (gw_admin_operators_load(&a->ops, &conf->admin, err) < 0) {
        free(a);
        return NULL;
    }
    /* integration tests only: a shorter idle expiry (never a longer one) */
    /* the counters start at zero: the first step counts from the start */
    int64_t t0 = (int64_t)time(NULL);
    gw_series_sample zero;
    memset(&zero, 0, sizeof(zero));
    zero.t = t0 - t0 % GW_SERIES_STEP_S;
    gw_series_offer(&a->series, &zero);
    a->usage = gw_usage_new();
    a->log = gw_eventlog_new(0);
    if (a->log != NULL && gw_server_events(srv) != NULL) {
        a->obs.fn = gw_eventlog_observe;
        a->obs.arg = a->log;
        gw_events_set_observer(gw_server_events(srv), &a->obs);
    }
    const char *idle = getenv("GW_TEST_ADMIN_SESSION_IDLE_S");
    if (idle != NULL && atoi(idle) > 0 && atoi(idle) < GW_ADMIN_SESSION_IDLE_S)
        a->sessions.idle_s = (unsigned)atoi(idle);
    a->http = evhttp_new(base);
    struct evhttp_bound_socket *bound =
        a->http != NULL
            ? evhttp_bind_socket_with_handle(a->http, conf->admin.address, conf->admin.port)
            : NULL;
    if (bound == NULL) {
        snprintf(msg, sizeof(msg), "admin: cannot listen on %s port %u: %s", conf->admin.address,
                 conf->admin.port, strerror(errno));
        *err = strdup(msg);
        gw_admin_stop(a);
        return NULL;
    }
    evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(bound), admin_accept_error);
    evhttp_set_max_headers_size(a->http, 8192);
    evhttp_set_max_body_size(a->http, 65536);
    evhttp_set_timeout(a->http, GW_ADMIN_TIMEOUT_S);
    ev_uint16_t methods = 0;
    for (size_t i = 0; i < sizeof(admin_methods) / sizeof(admin_methods[0]); i++)
        methods |= (ev_uint16_t)admin_methods[i].cmd;
    evhttp_set_allowed_methods(a->http, methods);
    evhttp_set_gencb(a->http, handle, a);
    gw_suspensions_on_expired(gw_server_suspensions(srv), gw_admin_on_expired, srv);
    a->sweep = event_new(base, -1, EV_PERSIST, sweep_tick, a);
    struct timeval one = {1, 0};
    if (a->sweep != NULL && event_add(a->sweep, &one) == 0)
        gw_suspensions_timer_sweeps(gw_server_suspensions(srv));
    return a;
}

void gw_admin_set_journal(gw_admin *a, gw_holds *holds, gw_anchors *anchors)
{
    a->holds = holds;
    a->anchors = anchors;
}

void gw_admin_stop(gw_admin *a)
{
    if (a == NULL)
        return;
    if (a->http != NULL)
        evhttp_free(a->http);
    if (a->sweep != NULL)
        event_free(a->sweep);
    gw_admin_operators_clear(&a->ops);
    if (a->obs.fn != NULL)
        gw_events_set_observer(gw_server_events(a->srv), NULL);
    gw_eventlog_free(a->log);
    gw_admin_recette_clear(&a->recette);
    gw_usage_free(a->usage);
    OPENSSL_cleanse(&a->sessions, sizeof(a->sessions));
    free(a);
}
