/*
 * The access stages: one file per control of CGU §4, one interface, one
 * ordered list (gateway/stages/pipeline.c). Stages know the request only
 * through gw_access, never the connection or the event loop.
 *
 * Verdicts (nginx's small vocabulary):
 *   GW_STAGE_NEXT     the control passed: go on with the next stage;
 *   GW_STAGE_REJECT   refuse: a->err (and optionally a->reason) say why; the
 *                     pipeline stops and nothing is forwarded;
 *   GW_STAGE_SUSPEND  waiting on I/O (Redis, ...): the stage keeps its state in
 *                     a->state[its index] and later calls gw_pipeline_resume().
 * done() is called for every stage that ran, whatever the outcome, when the
 * request ends (cancel pending I/O there).
 */
#ifndef GW_STAGE_H
#define GW_STAGE_H

#include <stddef.h>
#include <time.h>

#include <jansson.h>

#include "conf/conf.h"
#include "lib/errors.h"
#include "lib/forward.h"
#include "lib/http1.h"
#include "lib/route.h"
#include "policy/policy.h"
#include "policy/suspend.h"
#include "token/jose.h"

struct gw_oauth;
struct gw_token_cache;
struct gw_quota;
struct gw_deny_cache;
struct gw_redis;

#define GW_STAGE_MAX 12
#define GW_ACCESS_MAX_HEADERS 12

typedef enum { GW_STAGE_NEXT = 0, GW_STAGE_REJECT = 1, GW_STAGE_SUSPEND = 2 } gw_verdict;

struct gw_stage_confs;

typedef struct gw_access {
    /* inputs, set before the pipeline runs */
    const gw_http_request *http;
    const gw_route_table *routes;
    const gw_route *route;       /* set by the route stage */
    const gw_route_match *match; /* set by the route stage */
    gw_route_match match_storage[1];
    char allow[64];
    /* set by the route stage: the query parsed once against the route's
     * declarations (every later reader uses it), and the canonical target
     * sent upstream: target[0..path_len) is the canonical path, then
     * '?' + query.canonical when the query is not empty */
    gw_query query;
    int query_ok;
    char target[GW_ROUTE_TARGET_MAX];
    size_t target_len, path_len;
    gw_env env;              /* the listener's */
    int has_cert;            /* verified client certificate presented */
    const char *cert_sha256; /* its fingerprint (hex) */
    int peer_family;         /* TCP peer (AF_INET/AF_INET6, v4-mapped -> v4) */
    unsigned char peer_addr[16];
    int proxied; /* client address came from PROXY protocol */
    int proxy_family;
    unsigned char proxy_addr[16];
    time_t now;              /* wall clock, set once per request */
    gw_policy_set *policies; /* a reference held for the request's life */
    gw_suspensions *suspensions;
    const struct gw_stage_confs *confs;
    const struct gw_oauth *oauth;       /* keys and rules for the bearer stage */
    struct gw_token_cache *token_cache; /* this worker's verified tokens */
    const struct gw_quota *quota;       /* the quota store */
    struct gw_deny_cache *deny_cache;   /* this worker's known refusals */
    struct gw_redis *redis;             /* this worker's Redis client (redis store) */
    uint64_t now_ms;                    /* monotonic clock, 0: read it */

    /* outputs */
    const gw_policy *policy; /* set by the mtls stage */
    int client_family;       /* effective client address (ipallow) */
    unsigned char client_addr[16];
    char client_ip[46];
    char siren[10];
    char annee[5];
    const char *scope;
    gw_err_id err;                                       /* with GW_STAGE_REJECT */
    const char *reason;                                  /* journal reason when not the table's */
    gw_extra_header resp_headers[GW_ACCESS_MAX_HEADERS]; /* to the client */
    size_t nresp_headers;
    gw_extra_header up_headers[GW_ACCESS_MAX_HEADERS]; /* to the upstream */
    size_t nup_headers;
    char retry_after[16];
    int quota_ran; /* the quota stage decided: its figures below */
    unsigned quota_limit;
    unsigned quota_remaining;
    const char *quota_store;        /* "memory", "redis" or "degraded" */
    const char *quota_store_reason; /* why the store failed, when degraded */
    int quota_degraded;
    const char *request_id; /* unique member of the Redis log */
    int quota_deny_cached;
    char rl_limit[16], rl_remaining[16], rl_reset[16];
    int has_token;        /* a bearer token was verified and bound */
    int token_identified; /* its signature held: claims.jti/client_id are real */
    gw_claims claims;     /* its claims */
    char *local_body;     /* a stage answers itself (etatSante in maintenance) */
    int local_status;

    /* pipeline bookkeeping */
    int route_only; /* listener "access": "off" (bench): the route stage alone */
    size_t next;    /* index of the next stage to run */
    size_t ran;     /* stages whose done() must be called */
    void *state[GW_STAGE_MAX];
    void (*on_done)(struct gw_access *a, gw_verdict v); /* set by core */
    void *owner;
} gw_access;

typedef struct gw_stage {
    const char *name;
    gw_verdict (*run)(gw_access *a);
    void (*done)(gw_access *a); /* NULL when nothing to release */
} gw_stage;

/* Add a header to the client response / upstream request (values must
 * outlive the request: constants or buffers inside gw_access/policy). */
void gw_access_resp_header(gw_access *a, const char *name, const char *value);
void gw_access_up_header(gw_access *a, const char *name, const char *value);

/* Refuse with <err>; <reason> NULL = the table's reason. Returns REJECT. */
gw_verdict gw_access_reject(gw_access *a, gw_err_id err, const char *reason);

#endif
