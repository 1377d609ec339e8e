/* Unit tests for gateway/admin/routes.c: every endpoint of the table, and
 * the dispatch decision (401 before 404 before 405, open probes, templated
 * paths, the query ignored, Allow). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "admin/routes.h"

typedef struct {
    const char *uri, *method;
    int authorized;
    int want;       /* the verdict: 0 (handler), 401, 404, 405 */
    int ep;         /* the endpoint when want == 0 */
    const char *id; /* the {id}, "" when none */
    const char *allow;
} route_case;

static const route_case cases[] = {
    /* open probes: no token needed */
    {"/healthz", "GET", 0, 0, GW_ADMIN_EP_HEALTHZ, "", "GET"},
    {"/readyz", "GET", 0, 0, GW_ADMIN_EP_READYZ, "", "GET"},
    {"/readyz?verbose=1", "GET", 0, 0, GW_ADMIN_EP_READYZ, "", "GET"},
    /* an open path with another method: 405, still without a token */
    {"/healthz", "POST", 0, 405, -1, "", "GET"},
    /* the others need the token, before anything else */
    {"/metrics", "GET", 0, 401, -1, "", "GET"},
    {"/metrics", "GET", 1, 0, GW_ADMIN_EP_METRICS, "", "GET"},
    {"/admin/consumers", "GET", 1, 0, GW_ADMIN_EP_CONSUMERS, "", "GET"},
    {"/admin/reload", "POST", 1, 0, GW_ADMIN_EP_RELOAD, "", "POST"},
    {"/admin/reload?force=1", "POST", 1, 0, GW_ADMIN_EP_RELOAD, "", "POST"},
    {"/admin/reload", "GET", 0, 401, -1, "", "POST"},
    {"/admin/reload", "GET", 1, 405, -1, "", "POST"},
    {"/admin/consumers", "POST", 1, 405, -1, "", "GET"},
    {"/admin/consumers/acme-1/suspend", "POST", 1, 0, GW_ADMIN_EP_SUSPEND, "acme-1", "POST"},
    {"/admin/consumers/acme-1/resume", "POST", 1, 0, GW_ADMIN_EP_RESUME, "acme-1", "POST"},
    {"/admin/consumers/acme-1/resume?x=y", "POST", 1, 0, GW_ADMIN_EP_RESUME, "acme-1", "POST"},
    {"/admin/consumers/acme-1/suspend", "DELETE", 1, 405, -1, "", "POST"},
    {"/admin/consumers/acme-1/suspend", "POST", 0, 401, -1, "", "POST"},
    /* unknown paths: 401 without the token (nothing learnt), 404 with it */
    {"/nothing", "GET", 0, 401, -1, "", ""},
    {"/nothing", "GET", 1, 404, -1, "", ""},
    {"/", "GET", 1, 404, -1, "", ""},
    {"/healthz/", "GET", 0, 401, -1, "", ""},
    {"/metrics/x", "GET", 1, 404, -1, "", ""},
    {"/admin/consumers/", "GET", 1, 404, -1, "", ""},
    {"/admin/consumers//suspend", "POST", 1, 404, -1, "", ""},
    {"/admin/consumers/a/b/suspend", "POST", 1, 404, -1, "", ""},
    {"/admin/consumers/acme/pause", "POST", 1, 404, -1, "", ""},
    {"/HEALTHZ", "GET", 1, 404, -1, "", ""},
};
#define NCASES ((int)(sizeof(cases) / sizeof(cases[0])))

START_TEST(t_table)
{
    const route_case *c = &cases[_i];
    gw_admin_dispatch d;
    gw_admin_dispatch_of(c->uri, c->method, &d);
    int v = gw_admin_verdict(&d, c->authorized);
    ck_assert_msg(v == c->want, "%s %s (token %d): %d, want %d", c->method, c->uri, c->authorized,
                  v, c->want);
    if (c->want == 0) {
        ck_assert_int_eq(d.ep, c->ep);
        ck_assert_str_eq(d.id, c->id);
    }
    ck_assert_str_eq(d.allow, c->allow);
    ck_assert_int_eq(d.known, c->allow[0] != '\0');
    ck_assert_ptr_null(strchr(d.path, '?'));
}
END_TEST

/* An {id} as long as the limit allows, and one byte longer. */
START_TEST(t_id_bounds)
{
    char uri[512], id[GW_ADMIN_ID_MAX + 1];
    gw_admin_dispatch d;
    memset(id, 'a', GW_ADMIN_ID_MAX - 1);
    id[GW_ADMIN_ID_MAX - 1] = '\0';
    snprintf(uri, sizeof(uri), "/admin/consumers/%s/suspend", id);
    gw_admin_dispatch_of(uri, "POST", &d);
    ck_assert_int_eq(gw_admin_verdict(&d, 1), 0);
    ck_assert_str_eq(d.id, id);
    memset(id, 'a', GW_ADMIN_ID_MAX);
    id[GW_ADMIN_ID_MAX] = '\0';
    snprintf(uri, sizeof(uri), "/admin/consumers/%s/suspend", id);
    gw_admin_dispatch_of(uri, "POST", &d);
    ck_assert_int_eq(gw_admin_verdict(&d, 1), 404);
    ck_assert_str_eq(d.id, "");
}
END_TEST

/* A path longer than the buffer is cut, never matched by its prefix. */
START_TEST(t_long_path)
{
    char uri[1024];
    memset(uri, 'x', sizeof(uri) - 1);
    uri[0] = '/';
    uri[sizeof(uri) - 1] = '\0';
    gw_admin_dispatch d;
    gw_admin_dispatch_of(uri, "GET", &d);
    ck_assert_uint_eq(strlen(d.path), sizeof(d.path) - 1);
    ck_assert_int_eq(gw_admin_verdict(&d, 1), 404);
    /* "/healthz" followed by 300 bytes is not /healthz */
    memcpy(uri, "/healthz", 8);
    gw_admin_dispatch_of(uri, "GET", &d);
    ck_assert_int_eq(d.open, 0);
    ck_assert_int_eq(gw_admin_verdict(&d, 0), 401);
}
END_TEST

/* Every endpoint is reachable with its documented method and path. */
START_TEST(t_every_endpoint)
{
    for (int ep = 0; ep < GW_ADMIN_EP__COUNT; ep++) {
        const char *tmpl = gw_admin_ep_template((gw_admin_ep)ep);
        ck_assert_ptr_nonnull(tmpl);
        char uri[256];
        const char *brace = strstr(tmpl, "{client_id}");
        size_t blen = 11;
        if (brace == NULL) {
            brace = strstr(tmpl, "{environment}");
            blen = 13;
        }
        if (brace == NULL) {
            brace = strstr(tmpl, "{id}");
            blen = 4;
        }
        if (brace != NULL)
            snprintf(uri, sizeof(uri), "%.*sc-42%s", (int)(brace - tmpl), tmpl, brace + blen);
        else
            snprintf(uri, sizeof(uri), "%s", tmpl);
        gw_admin_dispatch d;
        gw_admin_dispatch_of(uri, gw_admin_ep_method((gw_admin_ep)ep), &d);
        ck_assert_int_eq(gw_admin_verdict(&d, 1), 0);
        ck_assert_int_eq(d.ep, ep);
        ck_assert_str_eq(d.id, brace != NULL ? "c-42" : "");
    }
    ck_assert_ptr_null(gw_admin_ep_template(GW_ADMIN_EP__COUNT));
}
END_TEST

/* The actions a "read" operator may not take: every method but GET, except
 * its own session. */
START_TEST(t_actions)
{
    for (int ep = 0; ep < GW_ADMIN_EP__COUNT; ep++) {
        const char *m = gw_admin_ep_method((gw_admin_ep)ep);
        int want =
            strcmp(m, "GET") != 0 && ep != GW_ADMIN_EP_SESSION_NEW && ep != GW_ADMIN_EP_SESSION_END;
        ck_assert_int_eq(gw_admin_ep_is_action((gw_admin_ep)ep), want);
    }
    ck_assert_int_eq(gw_admin_ep_is_action(GW_ADMIN_EP_SUSPEND), 1);
    ck_assert_int_eq(gw_admin_ep_is_action(GW_ADMIN_EP_EVENT_ACK), 1);
    ck_assert_int_eq(gw_admin_ep_is_action(GW_ADMIN_EP_HOLD_LIFT), 1);
    ck_assert_int_eq(gw_admin_ep_is_action(GW_ADMIN_EP_PARTNERS), 0);
    ck_assert_int_eq(gw_admin_ep_is_action(GW_ADMIN_EP_SESSION_END), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("admin_routes");
    TCase *tc = tcase_create("routes");
    tcase_add_loop_test(tc, t_table, 0, NCASES);
    tcase_add_test(tc, t_id_bounds);
    tcase_add_test(tc, t_long_path);
    tcase_add_test(tc, t_every_endpoint);
    tcase_add_test(tc, t_actions);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
