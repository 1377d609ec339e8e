/* The lists of stages and the runner. The arrays below are the one place
 * that says which controls run, for which requests, and in which order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stages/stages.h"

/* The access-control chain of CGU §4, in order. */
static const gw_stage *const guarded[] = {
    &gw_stage_mtls,         /* 1. the client certificate names a habilitation */
    &gw_stage_route,        /*    the route exists (404/405) */
    &gw_stage_maintenance,  /*    scheduled slot: 503 + Retry-After */
    &gw_stage_ipallow,      /* 2. the caller's IP address */
    &gw_stage_correlation,  /*    X-Correlation-ID (DGFIP convention) */
    &gw_stage_teleservice,  /* 3. the caller's technical identifier */
    &gw_stage_bearer,       /* 4. the consumer's identity (OAuth2, bound to the cert) */
    &gw_stage_killswitch,   /* 5. the operator's kill switch */
    &gw_stage_habilitation, /*   the habilitation today: state, dates, environment */
    &gw_stage_rights,       /*    rights on the data: scope, year, SIREN */
    &gw_stage_quota,        /*    50/min sandbox, 500/min production (CGU §9.2) */
    &gw_stage_journal,      /*    room for the record before anything is forwarded */
};

/* "access": "off" listeners (bench pass-through): no control, but still a
 * route and a record. */
static const gw_stage *const route_only[] = {
    &gw_stage_route,
    &gw_stage_journal,
};

/* The gateway's own routes: an answer is an exchange, with room held for
 * its record like any forwarded request. */
static const gw_stage *const jwks[] = {
    &gw_stage_journal,
};
static const gw_stage *const token[] = {
    &gw_stage_mtls,         /* the certificate names a habilitation */
    &gw_stage_ipallow,      /* the caller's address */
    &gw_stage_killswitch,   /* the operator's kill switch */
    &gw_stage_habilitation, /* the habilitation today */
    &gw_stage_journal,      /* a token is issued only with room for its record */
    &gw_stage_token,        /* the form, the client, the rate, the scopes: the answer */
};

/* Every stage that may have settings in "access", for the unknown-key check
 * and so that a key is parsed even when no list uses its stage; the
 * settings are checked in this order (the first three own the keys). */
static const gw_stage *const all_stages[] = {
    &gw_stage_ipallow, &gw_stage_killswitch,  &gw_stage_maintenance, &gw_stage_mtls,
    &gw_stage_route,   &gw_stage_correlation, &gw_stage_teleservice, &gw_stage_bearer,
    &gw_stage_rights,  &gw_stage_quota,       &gw_stage_journal,     &gw_stage_habilitation,
    &gw_stage_token,
};
#define NALL (sizeof(all_stages) / sizeof(all_stages[0]))

struct gw_stage_lists {
    gw_pipeline lists[GW_LIST_COUNT];
    void *confs[NALL]; /* all_stages[i]'s configuration, owned */
};

/* ---- the order check ---- */

int gw_pipeline_check(const gw_stage *const *stages, size_t n, char *why, size_t cap)
{
    if (n > GW_STAGE_MAX) {
        snprintf(why, cap, "%zu stages, at most %d", n, GW_STAGE_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < i; j++) {
            if (stages[j] == stages[i] || strcmp(stages[j]->name, stages[i]->name) == 0) {
                snprintf(why, cap, "stage '%s' appears twice", stages[i]->name);
                return -1;
            }
        }
        for (const char *const *need = stages[i]->needs; need != NULL && *need != NULL; need++) {
            size_t j = 0;
            while (j < i && strcmp(stages[j]->name, *need) != 0)
                j++;
            if (j == i) {
                snprintf(why, cap, "stage '%s' needs '%s', which does not run before it",
                         stages[i]->name, *need);
                return -1;
            }
        }
    }
    return 0;
}

/* ---- the runner ---- */

static gw_stage_call call_of(gw_access *a, size_t i)
{
    const gw_stage *s = a->list->stages[i];
    gw_stage_call c = {
        .req = &a->req,
        .svc = &a->svc,
        .res = &a->res,
        .out = s->out >= 0 ? (char *)&a->res + s->out : NULL,
        .reply = &a->reply,
        .conf = a->list->confs[i],
        .state = &a->state[i],
        .run = a,
    };
    return c;
}

gw_verdict gw_pipeline_run(gw_access *a)
{
    while (a->list != NULL && a->next < a->list->n) {
        if (a->ran <= a->next)
            a->ran = a->next + 1;
        gw_stage_call c = call_of(a, a->next);
        gw_verdict v = a->list->stages[a->next]->run(&c);
        if (v == GW_STAGE_SUSPEND)
            return v;
        a->next++;
        if (v == GW_STAGE_REJECT)
            return v;
    }
    return GW_STAGE_NEXT;
}

void gw_pipeline_resume(gw_access *a, gw_verdict v)
{
    a->next++;
    if (v == GW_STAGE_NEXT)
        v = gw_pipeline_run(a);
    if (v != GW_STAGE_SUSPEND && a->on_done != NULL)
        a->on_done(a, v);
}

void gw_pipeline_done(gw_access *a)
{
    for (size_t i = 0; a->list != NULL && i < a->ran && i < a->list->n; i++) {
        if (a->list->stages[i]->done != NULL) {
            gw_stage_call c = call_of(a, i);
            a->list->stages[i]->done(&c);
        }
    }
    a->ran = 0;
}

/* ---- the lists ---- */

static size_t index_of(const gw_stage *s)
{
    for (size_t i = 0; i < NALL; i++)
        if (all_stages[i] == s)
            return i;
    return NALL;
}

gw_stage_lists *gw_stage_lists_build(const gw_conf *c, const gw_stage *const *const *lists,
                                     const size_t *lens, gw_errlist *errs)
{
    size_t before = errs->n + errs->dropped;
    gw_jsonv jv = gw_jsonv_init(c->path, errs);
    gw_stage_lists *l = gw_jsonv_calloc(&jv, "access", 1, sizeof(*l));
    if (l == NULL)
        return NULL;
    json_t *a = c->access;
    if (a != NULL && !json_is_object(a)) {
        gw_jsonv_err(&jv, "access", "must be an object");
        a = NULL;
    }
    if (a != NULL) {
        const char *known[NALL + 1];
        size_t nk = 0;
        for (size_t i = 0; i < NALL; i++)
            if (all_stages[i]->key != NULL)
                known[nk++] = all_stages[i]->key;
        known[nk] = NULL;
        gw_jsonv_keys(&jv, a, "access", known);
    }
    for (size_t i = 0; i < NALL; i++) {
        const gw_stage *s = all_stages[i];
        if (s->parse == NULL)
            continue;
        json_t *v = a != NULL && s->key != NULL ? json_object_get(a, s->key) : NULL;
        if (s->parse(c, v, &jv, &l->confs[i]) < 0 && l->confs[i] != NULL) {
            s->free_conf(l->confs[i]);
            l->confs[i] = NULL;
        }
    }
    static const char *const names[GW_LIST_COUNT] = {"guarded", "route-only", "jwks", "token"};
    for (size_t k = 0; k < GW_LIST_COUNT; k++) {
        gw_pipeline *p = &l->lists[k];
        char why[160];
        p->name = names[k];
        if (gw_pipeline_check(lists[k], lens[k], why, sizeof(why)) < 0) {
            gw_errlist_add(errs, "%s: the %s list of stages: %s", c->path, names[k], why);
            continue;
        }
        p->n = lens[k];
        for (size_t i = 0; i < lens[k]; i++) {
            p->stages[i] = lists[k][i];
            size_t at = index_of(lists[k][i]);
            p->confs[i] = at < NALL ? l->confs[at] : NULL;
        }
    }
    if (errs->n + errs->dropped > before) {
        gw_stage_lists_free(l);
        return NULL;
    }
    return l;
}

gw_stage_lists *gw_stage_lists_load(const gw_conf *c, gw_errlist *errs)
{
#define LEN(a) (sizeof(a) / sizeof((a)[0]))
    const gw_stage *const *lists[GW_LIST_COUNT] = {guarded, route_only, jwks, token};
    size_t lens[GW_LIST_COUNT] = {LEN(guarded), LEN(route_only), LEN(jwks), LEN(token)};
    return gw_stage_lists_build(c, lists, lens, errs);
}

void gw_stage_lists_free(gw_stage_lists *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < NALL; i++)
        if (l->confs[i] != NULL && all_stages[i]->free_conf != NULL)
            all_stages[i]->free_conf(l->confs[i]);
    free(l);
}

const gw_pipeline *gw_stage_list(const gw_stage_lists *l, gw_list_kind kind)
{
    return l != NULL && kind < GW_LIST_COUNT ? &l->lists[kind] : NULL;
}

const void *gw_stage_lists_conf(const gw_stage_lists *l, const gw_stage *s)
{
    size_t i = index_of(s);
    return l != NULL && i < NALL ? l->confs[i] : NULL;
}
