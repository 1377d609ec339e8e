/*
 * The stages, the lists that order them and the runner (pipeline.c).
 *
 * A list (gw_pipeline) is an ordered array of stages with each stage's
 * configuration. The lists of the gateway (gw_stage_lists) are built once
 * from the configuration: every stage's settings are parsed once, and every
 * list's order is checked against what its stages need.
 */
#ifndef GW_STAGES_H
#define GW_STAGES_H

#include "lib/util.h"
#include "stages/stage.h"

extern const gw_stage gw_stage_mtls;
extern const gw_stage gw_stage_route;
extern const gw_stage gw_stage_maintenance;
extern const gw_stage gw_stage_ipallow;
extern const gw_stage gw_stage_correlation;
extern const gw_stage gw_stage_teleservice;
extern const gw_stage gw_stage_killswitch;
extern const gw_stage gw_stage_bearer;
extern const gw_stage gw_stage_habilitation;
extern const gw_stage gw_stage_rights;
extern const gw_stage gw_stage_quota;
extern const gw_stage gw_stage_journal;
extern const gw_stage gw_stage_token;

typedef struct gw_pipeline {
    const char *name;
    size_t n;
    const gw_stage *stages[GW_STAGE_MAX];
    const void *confs[GW_STAGE_MAX]; /* not owned: gw_stage_lists owns them */
} gw_pipeline;

/* The runner's per-request state. The request module fills req and svc,
 * the stages write res and reply through their gw_stage_call. */
struct gw_access {
    gw_req_view req;
    gw_services svc;
    gw_results res;
    gw_reply reply;
    const gw_pipeline *list;
    size_t next; /* index of the next stage to run */
    size_t ran;  /* stages whose done() must be called */
    void *state[GW_STAGE_MAX];
    void (*on_done)(gw_access *a, gw_verdict v); /* after a SUSPEND */
    void *owner;
};

/* Check the order of <stages>: every stage's needs come earlier, no stage
 * twice. 0, or -1 with the reason in <why> ("stage 'rights' needs 'route',
 * which does not run before it"). */
int gw_pipeline_check(const gw_stage *const *stages, size_t n, char *why, size_t cap);

/* Run the stages of a->list from a->next on. Returns NEXT when every stage
 * passed, REJECT when one refused (a->reply.err set), SUSPEND when one waits
 * on I/O: it will call gw_pipeline_resume() later, which ends with
 * a->on_done(). */
gw_verdict gw_pipeline_run(gw_access *a);
/* Call done() of every stage that ran; always, once per request. */
void gw_pipeline_done(gw_access *a);

/* The gateway's lists. */
typedef enum {
    GW_LIST_GUARDED = 0, /* every route of a listener with access controls */
    GW_LIST_ROUTE_ONLY,  /* "access": "off" listeners (bench): route, journal */
    GW_LIST_JWKS,        /* GET /.well-known/jwks.json: journal */
    GW_LIST_TOKEN,       /* POST /token: identity, journal, the token endpoint */
    GW_LIST_COUNT
} gw_list_kind;

typedef struct gw_stage_lists gw_stage_lists;

/* Parse the "access" object (c->access, may be NULL: defaults) into the
 * configuration of each stage, once, and build the lists, checking their
 * order. Unknown keys of "access" are refused. NULL on error (in <errs>). */
gw_stage_lists *gw_stage_lists_load(const gw_conf *c, gw_errlist *errs);
/* Build lists from explicit stage arrays (unit tests: a wrong order must
 * fail): <lists>[kind] has <lens>[kind] stages. */
gw_stage_lists *gw_stage_lists_build(const gw_conf *c, const gw_stage *const *const *lists,
                                     const size_t *lens, gw_errlist *errs);
void gw_stage_lists_free(gw_stage_lists *l);
const gw_pipeline *gw_stage_list(const gw_stage_lists *l, gw_list_kind kind);
/* The configuration a stage parsed (NULL: none, or not in any list). */
const void *gw_stage_lists_conf(const gw_stage_lists *l, const gw_stage *s);

/* What other modules need of the stages' settings. */
/* The kill switch's state file (absolute). */
const char *gw_killswitch_file(const gw_stage_lists *l);
/* 1 when <addr> is one of the trusted proxies (ipallow's setting). */
int gw_ipallow_trusted(const gw_stage_lists *l, int family, const unsigned char *addr);
/* The gateway's time zone (access.maintenance.timezone). */
gw_tz gw_stage_lists_tz(const gw_stage_lists *l);

/* Helpers exported for the unit tests. */
/* The maintenance stage's settings (maintenance.c), public for the
 * evidence module's calendar (gateway/evidence/calendar.c). */
typedef struct gw_maint_slot {
    int daily;     /* 1: every day from start_min to end_min (local time) */
    int start_min; /* minutes after local midnight (dated slots too: local start) */
    int end_min;   /* may be < start_min: crosses midnight */
    time_t from;   /* explicit slot, UTC seconds */
    time_t until;
    long night; /* explicit slot: its night, as local days since 1970-01-01 of its evening */
} gw_maint_slot;

typedef struct gw_maint_conf {
    gw_tz tz;
    int force;
    gw_maint_slot *slots;
    size_t nslots;
} gw_maint_conf;

/* When <now> lies in a slot: 1, with <*end> the slot's end (UTC). */
int gw_maintenance_active(const gw_maint_conf *m, time_t now, time_t *end);
/* Resolve the effective client address. 0, or -1 when a trusted proxy sent
 * an unusable X-Forwarded-For. <trusted>: ipallow's configuration. */
int gw_ipallow_resolve(const gw_req_view *req, const void *trusted, gw_ipallow_out *out);
/* X-Correlation-ID as the correlation stage reads it: 1 with <id> (37
 * bytes) when present and a UUID, 0 when absent, -1 when not a UUID. */
int gw_correlation_read(const gw_http_request *http, char id[37]);

#endif
