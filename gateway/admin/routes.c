/* The admin endpoint table and dispatch decision (see routes.h). */
#include "admin/routes.h"

#include <stdio.h>
#include <string.h>

/* One endpoint: a path (or <path>{id}<suffix> when <suffix> is set), one
 * method, and whether it needs the token. */
typedef struct admin_route {
    gw_admin_ep ep;
    const char *path;
    const char *suffix;
    const char *method;
    int open;
    const char *tmpl;
} admin_route;

/* Every endpoint of the admin listener (docs/openapi/admin.json). */
static const admin_route admin_routes[] = {
    {GW_ADMIN_EP_HEALTHZ, "/healthz", NULL, "GET", 1, "/healthz"},
    {GW_ADMIN_EP_READYZ, "/readyz", NULL, "GET", 1, "/readyz"},
    {GW_ADMIN_EP_METRICS, "/metrics", NULL, "GET", 0, "/metrics"},
    {GW_ADMIN_EP_CONSUMERS, "/admin/consumers", NULL, "GET", 0, "/admin/consumers"},
    {GW_ADMIN_EP_RELOAD, "/admin/reload", NULL, "POST", 0, "/admin/reload"},
    {GW_ADMIN_EP_SUSPEND, "/admin/consumers/", "/suspend", "POST", 0,
     "/admin/consumers/{client_id}/suspend"},
    {GW_ADMIN_EP_RESUME, "/admin/consumers/", "/resume", "POST", 0,
     "/admin/consumers/{client_id}/resume"},
    {GW_ADMIN_EP_HOLD_GET, "/admin/journal/hold", NULL, "GET", 0, "/admin/journal/hold"},
    {GW_ADMIN_EP_HOLD_SET, "/admin/journal/hold", NULL, "POST", 0, "/admin/journal/hold"},
    {GW_ADMIN_EP_HOLD_LIFT, "/admin/journal/hold", NULL, "DELETE", 0, "/admin/journal/hold"},
    {GW_ADMIN_EP_ENVS, "/admin/environments", NULL, "GET", 0, "/admin/environments"},
    {GW_ADMIN_EP_ENV_CUT, "/admin/environments/", "/cut", "POST", 0,
     "/admin/environments/{environment}/cut"},
    {GW_ADMIN_EP_ENV_RESTORE, "/admin/environments/", "/restore", "POST", 0,
     "/admin/environments/{environment}/restore"},
    {GW_ADMIN_EP_SESSION_NEW, "/admin/session", NULL, "POST", 0, "/admin/session"},
    {GW_ADMIN_EP_SESSION_END, "/admin/session", NULL, "DELETE", 0, "/admin/session"},
    {GW_ADMIN_EP_WHOAMI, "/admin/whoami", NULL, "GET", 0, "/admin/whoami"},
    {GW_ADMIN_EP_OVERVIEW, "/admin/overview", NULL, "GET", 0, "/admin/overview"},
    {GW_ADMIN_EP_PARTNERS, "/admin/partners", NULL, "GET", 0, "/admin/partners"},
    {GW_ADMIN_EP_PARTNER, "/admin/partners/", "", "GET", 0, "/admin/partners/{client_id}"},
    {GW_ADMIN_EP_EVENTS, "/admin/events", NULL, "GET", 0, "/admin/events"},
    {GW_ADMIN_EP_EVENT_ACK, "/admin/events/", "/ack", "POST", 0, "/admin/events/{id}/ack"},
    {GW_ADMIN_EP_MAINTENANCE, "/admin/maintenance", NULL, "GET", 0, "/admin/maintenance"},
};
#define NROUTES (sizeof(admin_routes) / sizeof(admin_routes[0]))

/* Whether <path> names route <r>; for a templated route, the {id} segment
 * (non-empty, no '/') is copied into <id>. */
static int route_match(const admin_route *r, const char *path, char id[GW_ADMIN_ID_MAX])
{
    id[0] = '\0';
    if (r->suffix == NULL)
        return strcmp(path, r->path) == 0;
    size_t pl = strlen(r->path), sl = strlen(r->suffix), n = strlen(path);
    if (n <= pl + sl || strncmp(path, r->path, pl) != 0 || strcmp(path + n - sl, r->suffix) != 0)
        return 0;
    size_t idlen = n - pl - sl;
    if (idlen >= GW_ADMIN_ID_MAX || memchr(path + pl, '/', idlen) != NULL)
        return 0;
    memcpy(id, path + pl, idlen);
    id[idlen] = '\0';
    return 1;
}

void gw_admin_dispatch_of(const char *uri, const char *method, gw_admin_dispatch *d)
{
    memset(d, 0, sizeof(*d));
    d->ep = -1;
    size_t plen = strcspn(uri, "?");
    if (plen >= sizeof(d->path))
        plen = sizeof(d->path) - 1;
    memcpy(d->path, uri, plen);
    d->path[plen] = '\0';
    for (size_t i = 0; i < NROUTES; i++) {
        const admin_route *r = &admin_routes[i];
        char rid[GW_ADMIN_ID_MAX];
        if (!route_match(r, d->path, rid))
            continue;
        d->known = 1;
        d->open |= r->open;
        if (strstr(d->allow, r->method) == NULL)
            snprintf(d->allow + strlen(d->allow), sizeof(d->allow) - strlen(d->allow), "%s%s",
                     d->allow[0] ? ", " : "", r->method);
        if (d->ep < 0 && strcmp(r->method, method) == 0) {
            d->ep = (int)r->ep;
            memcpy(d->id, rid, sizeof(d->id));
        }
    }
}

int gw_admin_verdict(const gw_admin_dispatch *d, int authorized)
{
    if (!d->open && !authorized)
        return 401;
    if (!d->known)
        return 404;
    if (d->ep < 0)
        return 405;
    return 0;
}

static const admin_route *route_of(gw_admin_ep ep)
{
    for (size_t i = 0; i < NROUTES; i++)
        if (admin_routes[i].ep == ep)
            return &admin_routes[i];
    return NULL;
}

int gw_admin_ep_is_action(gw_admin_ep ep)
{
    const admin_route *r = route_of(ep);
    return r != NULL && strcmp(r->method, "GET") != 0 && ep != GW_ADMIN_EP_SESSION_NEW &&
           ep != GW_ADMIN_EP_SESSION_END;
}

const char *gw_admin_ep_method(gw_admin_ep ep)
{
    const admin_route *r = route_of(ep);
    return r != NULL ? r->method : NULL;
}

const char *gw_admin_ep_template(gw_admin_ep ep)
{
    const admin_route *r = route_of(ep);
    return r != NULL ? r->tmpl : NULL;
}
