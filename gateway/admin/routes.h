/*
 * The admin listener's endpoints and the dispatch decision, without
 * libevent: a request's URI and method in, the endpoint (or the status that
 * refuses it) out. admin.c holds the handlers, indexed by gw_admin_ep; the
 * reference of the endpoints is docs/openapi/admin.json.
 *
 * The order of the decision: a path that no open endpoint has needs the
 * token before it learns anything (401, even for an unknown path), then 404
 * for an unknown path, then 405 (with the path's methods in Allow) for a
 * known path and another method. The query string is ignored.
 */
#ifndef GW_ADMIN_ROUTES_H
#define GW_ADMIN_ROUTES_H

typedef enum {
    GW_ADMIN_EP_HEALTHZ,
    GW_ADMIN_EP_READYZ,
    GW_ADMIN_EP_METRICS,
    GW_ADMIN_EP_CONSUMERS,
    GW_ADMIN_EP_RELOAD,
    GW_ADMIN_EP_SUSPEND,
    GW_ADMIN_EP_RESUME,
    GW_ADMIN_EP_HOLD_GET,    /* GET /admin/journal/hold */
    GW_ADMIN_EP_HOLD_SET,    /* POST /admin/journal/hold */
    GW_ADMIN_EP_HOLD_LIFT,   /* DELETE /admin/journal/hold */
    GW_ADMIN_EP_ENVS,        /* GET /admin/environments */
    GW_ADMIN_EP_ENV_CUT,     /* POST /admin/environments/{environment}/cut */
    GW_ADMIN_EP_ENV_RESTORE, /* POST /admin/environments/{environment}/restore */
    GW_ADMIN_EP_SESSION_NEW, /* POST /admin/session (bearer token only) */
    GW_ADMIN_EP_SESSION_END, /* DELETE /admin/session */
    GW_ADMIN_EP_WHOAMI,      /* GET /admin/whoami */
    GW_ADMIN_EP_OVERVIEW,    /* GET /admin/overview */
    GW_ADMIN_EP_PARTNERS,    /* GET /admin/partners */
    GW_ADMIN_EP_PARTNER,     /* GET /admin/partners/{client_id} */
    GW_ADMIN_EP_EVENTS,      /* GET /admin/events */
    GW_ADMIN_EP_EVENT_ACK,   /* POST /admin/events/{id}/ack */
    GW_ADMIN_EP_MAINTENANCE, /* GET /admin/maintenance */
    GW_ADMIN_EP__COUNT
} gw_admin_ep;

/* The longest {id} of a templated path (a client_id), terminator included. */
#define GW_ADMIN_ID_MAX 160

typedef struct gw_admin_dispatch {
    char path[256];           /* the URI's path, query removed, cut at 255 bytes */
    int known;                /* an endpoint has this path */
    int open;                 /* an endpoint of this path needs no token */
    int ep;                   /* the endpoint for this path and method, -1 when none */
    char id[GW_ADMIN_ID_MAX]; /* the {id} segment of a templated endpoint, else "" */
    char allow[64];           /* the path's methods, "GET" or "GET, POST, DELETE" */
} gw_admin_dispatch;

/* Match <uri> (path and optional query) and <method> ("GET", "POST", ...)
 * against the endpoint table. Always fills <d>. */
void gw_admin_dispatch_of(const char *uri, const char *method, gw_admin_dispatch *d);

/* What to answer once <d> is known and, for a path that is not open, the
 * token was checked (<authorized>): 401, 404, 405, or 0 when the endpoint's
 * handler answers. */
int gw_admin_verdict(const gw_admin_dispatch *d, int authorized);

/* 1 when <ep> changes something (an action a "read" operator may not
 * take): every endpoint that is not a GET, except opening and ending one's
 * own session. */
int gw_admin_ep_is_action(gw_admin_ep ep);

/* The endpoint's method and path as documented ("POST",
 * "/admin/consumers/{client_id}/suspend"), for tests and logs. */
const char *gw_admin_ep_method(gw_admin_ep ep);
const char *gw_admin_ep_template(gw_admin_ep ep);

#endif
