/*
 * One DataPass event applied to the policy files (docs/datapass.md, "Events
 * and what they do"): shared by the webhook receiver and the sync.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datapass/webhook.h"
#include "policy/policy.h"
#include "policy/suspend.h"

/* The policy of <hab_id> in <set>, or NULL. */
static const gw_policy *find_policy(const gw_policy_set *set, const char *hab_id)
{
    for (size_t i = 0; set != NULL && i < gw_policy_set_count(set); i++) {
        const gw_policy *p = gw_policy_set_at(set, i);
        if (strcmp(p->id, hab_id) == 0)
            return p;
    }
    return NULL;
}

/* Lift a suspension that a DataPass revocation set (and only such a one:
 * an operator's suspension stays until an operator resumes). */
static void lift_datapass_suspension(gw_suspensions *s, const char *client_id)
{
    gw_suspension_info info;
    if (gw_suspensions_get(s, client_id, &info) == 1 && strncmp(info.why, "datapass", 8) == 0) {
        char *err = NULL;
        gw_suspensions_set(s, client_id, 0, "datapass approval", &err);
        free(err);
    }
}

static void set(gw_dp_applied *v, gw_dp_outcome o, int status, const char *detail)
{
    v->outcome = o;
    v->status = status;
    snprintf(v->detail, sizeof(v->detail), "%s", detail);
}

void gw_dp_apply(const gw_dp_apply_ctx *c, const gw_dp_event *ev, gw_dp_applied *v)
{
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    memset(v, 0, sizeof(*v));
    char *old = NULL, *text = NULL, *err = NULL;
    char target[512];
    const gw_policy *p = find_policy(c->set, ev->hab_id);
    int pending = p == NULL;

    if (p != NULL) {
        snprintf(target, sizeof(target), "%s", p->file);
        snprintf(v->consumer, sizeof(v->consumer), "%s", p->client_id);
        if (p->contact_technical != NULL)
            snprintf(v->contact, sizeof(v->contact), "%s", p->contact_technical);
    } else {
        snprintf(target, sizeof(target), "%s/%s.json.pending", c->policies_dir, ev->hab_id);
    }
    snprintf(v->file, sizeof(v->file), "%s", target);
    old = gw_dp_read_file(target, NULL);
    if (old == NULL && errno != ENOENT) {
        set(v, GW_DP_OUT_FAILED, 500, "cannot read the policy file");
        goto out;
    }
    if (ev->action == GW_DP_REVOKE) {
        if (p != NULL && c->susp != NULL) {
            /* the kill switch first: the very next request is refused on
             * every worker, keep-alive connections included, before the
             * file and the reload follow */
            char why[128];
            snprintf(why, sizeof(why), "datapass %s %s", ev->name, ev->hab_id);
            gw_suspensions_set(c->susp, p->client_id, 1, why, &err);
            free(err);
            err = NULL;
        }
        if (old == NULL) {
            set(v, GW_DP_OUT_ACKED, 200, "no policy for this habilitation");
            v->file[0] = '\0';
            goto out;
        }
    }
    text = gw_dp_policy_rewrite(target, old, ev, &errs);
    if (text == NULL) {
        set(v, GW_DP_OUT_FAILED, 422, errs.n > 0 ? errs.msgs[0] : "cannot rewrite the policy");
        goto out;
    }
    if (!pending) {
        /* never write a file the loader would reject: the partner would
         * keep its old version in memory and a restart would drop it */
        gw_policy *np = gw_policy_parse(target, text, NULL, &errs);
        if (np == NULL) {
            set(v, GW_DP_OUT_FAILED, 422, errs.n > 0 ? errs.msgs[0] : "invalid policy");
            goto out;
        }
        if (np->contact_technical != NULL)
            snprintf(v->contact, sizeof(v->contact), "%s", np->contact_technical);
        if (ev->action == GW_DP_UPDATE && np->state == GW_HAB_ACTIVE && c->susp != NULL)
            lift_datapass_suspension(c->susp, p->client_id);
        gw_policy_free(np);
    }
    if (old != NULL && strcmp(old, text) == 0) {
        set(v, GW_DP_OUT_APPLIED, 200, "no change");
        goto out;
    }
    if (gw_dp_write_atomic(target, text, c->crash_before_rename, &err) < 0) {
        set(v, GW_DP_OUT_FAILED, 500, err != NULL ? err : "cannot write the policy file");
        goto out;
    }
    v->written = 1;
    v->pending = pending;
    if (pending)
        set(v, GW_DP_OUT_APPLIED, 200,
            old == NULL ? "pending policy created" : "pending policy updated");
    else
        set(v, GW_DP_OUT_APPLIED, 200, ev->action == GW_DP_REVOKE ? "revoked" : "policy updated");
out:
    gw_errlist_clear(&errs);
    free(old);
    free(text);
    free(err);
}
