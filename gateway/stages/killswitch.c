/* killswitch: the operator's kill switch (admin API, docs/operations.md): a
 * consumer cut off, or every consumer of an environment cut (CGU §8
 * "coupure"), is refused from its next request on, on every route, public
 * ones included. Needs mtls (the consumer).
 *
 * Its settings, "access.suspensions_file": the state file of the switch
 * (default "suspensions.json", relative to the configuration's directory),
 * opened by the server (gw_killswitch_file). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stages/stages.h"

static const char *const needs[] = {"mtls", NULL};

const char *gw_killswitch_file(const gw_stage_lists *l)
{
    return gw_stage_lists_conf(l, &gw_stage_killswitch);
}

static gw_verdict run(const gw_stage_call *c)
{
    const gw_policy *p = c->res->mtls.policy;
    /* a consumer suspended, or its whole environment cut (CGU §8): the same
     * answer, 403 910213 (docs/operations.md) */
    if (c->svc->suspensions != NULL &&
        (gw_suspensions_is_suspended(c->svc->suspensions, p->client_id) ||
         gw_suspensions_is_cut(c->svc->suspensions, gw_env_name(p->env))))
        return gw_reply_reject(c->reply, GW_ERR_CONSUMER_SUSPENDED, NULL);
    return GW_STAGE_NEXT;
}

static int parse(const gw_conf *c, json_t *sf, gw_jsonv *jv, void **out)
{
    const char *sfile = "suspensions.json";
    int bad = 0;
    if (sf != NULL) {
        if (!json_is_string(sf) || json_string_length(sf) == 0) {
            gw_jsonv_err(jv, "access.suspensions_file", "must be a non-empty string");
            bad = 1;
        } else {
            sfile = json_string_value(sf);
        }
    }
    char *path;
    if (sfile[0] == '/') {
        path = strdup(sfile);
    } else {
        size_t n = strlen(c->dir) + strlen(sfile) + 2;
        path = malloc(n);
        if (path != NULL)
            snprintf(path, n, "%s/%s", c->dir, sfile);
    }
    *out = path;
    if (path == NULL) {
        gw_jsonv_err(jv, "access.suspensions_file", "out of memory");
        return -1;
    }
    return bad ? -1 : 0;
}

const gw_stage gw_stage_killswitch = {
    .name = "killswitch",
    .needs = needs,
    .out = -1,
    .key = "suspensions_file",
    .parse = parse,
    .free_conf = free,
    .run = run,
};
