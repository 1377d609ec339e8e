/*
 * The stage interface: one file per control of CGU §4, one interface, lists
 * of stages run in order by the runner (gateway/stages/pipeline.c).
 *
 * A stage is a module:
 *   name    its name, the one other stages use in their "needs";
 *   needs   the stages whose results it reads: the runner refuses a list in
 *           which one of them does not come earlier (at configuration
 *           load, so `opale-gateway -t` fails, never a request);
 *   out     where its own result lives in gw_results (offsetof), the only
 *           part of the request state it writes (with the reply);
 *   key     its key in the "access" object of the configuration, parsed by
 *           parse() into its own configuration (NULL: none);
 *   run     the control: reads the request through read-only views, writes
 *           its result and, when it refuses, the reply;
 *   done    called for every stage that ran, whatever the outcome, when the
 *           request ends (cancel pending I/O, give back what it holds).
 *
 * Verdicts (nginx's small vocabulary):
 *   GW_STAGE_NEXT     the control passed: go on with the next stage;
 *   GW_STAGE_REJECT   refuse: the reply says why (gw_reply_reject); the list
 *                     stops and nothing is forwarded;
 *   GW_STAGE_SUSPEND  waiting on I/O (Redis, ...): the stage keeps what it
 *                     needs in its state slot (*call->state) and later calls
 *                     gw_pipeline_resume(call->run, verdict).
 *
 * Stages know neither the connection nor the event loop.
 */
#ifndef GW_STAGE_H
#define GW_STAGE_H

#include <stddef.h>
#include <time.h>

#include <jansson.h>

#include "conf/conf.h"
#include "lib/civil.h"
#include "lib/errors.h"
#include "lib/forward.h"
#include "lib/http1.h"
#include "lib/jsonv.h"
#include "lib/query.h"
#include "lib/route.h"
#include "policy/policy.h"
#include "policy/suspend.h"
#include "token/endpoint.h"
#include "token/jose.h"

struct gw_oauth;
struct gw_token_cache;
struct gw_quota;
struct gw_deny_cache;
struct gw_redis;
struct gw_journal;
struct gw_memlog;
struct gw_redis_call;
struct gw_redis_reply;

/* An asynchronous quota store (quota/redis.h's gw_redis_quota and
 * gw_redis_cancel by default; the unit tests give an in-memory one that
 * answers later). call() never answers synchronously. */
typedef struct gw_qstore_ops {
    struct gw_redis_call *(*call)(void *ctx, const char *key, unsigned limit, uint64_t window_ms,
                                  const char *member,
                                  void (*cb)(void *arg, const struct gw_redis_reply *r), void *arg);
    void (*cancel)(struct gw_redis_call *c);
} gw_qstore_ops;

#define GW_STAGE_MAX 12
#define GW_REPLY_MAX_HEADERS 12

typedef enum { GW_STAGE_NEXT = 0, GW_STAGE_REJECT = 1, GW_STAGE_SUSPEND = 2 } gw_verdict;

/* The request as the connection received it: read-only to every stage. */
typedef struct gw_req_view {
    const gw_http_request *http;
    gw_env env;              /* the listener's */
    int has_cert;            /* verified client certificate presented */
    const char *cert_sha256; /* its fingerprint (hex) */
    int peer_family;         /* TCP peer (AF_INET/AF_INET6, v4-mapped -> v4) */
    unsigned char peer_addr[16];
    const char *peer_ip; /* peer_addr as inet_ntop() writes it (the connection's
                          * own copy, made once), NULL: formatted when needed */
    int proxied;         /* client address came from PROXY protocol */
    int proxy_family;
    unsigned char proxy_addr[16];
    const char *proxy_ip;   /* the same for proxy_addr */
    time_t now;             /* wall clock, set once per request */
    uint64_t now_ms;        /* monotonic clock, 0: read it */
    const char *request_id; /* the gateway's id of this request */
} gw_req_view;

/* Handles of the services the stages use (not owned by the request, except
 * the reference on <policies>, which the request module holds). */
typedef struct gw_services {
    const gw_route_table *routes;
    gw_policy_set *policies;
    gw_suspensions *suspensions;
    gw_tz tz;                           /* the gateway's time zone ("today") */
    const struct gw_oauth *oauth;       /* keys and rules for the bearer stage */
    struct gw_token_cache *token_cache; /* this worker's verified tokens */
    const struct gw_quota *quota;       /* the quota store */
    struct gw_deny_cache *deny_cache;   /* this worker's known refusals */
    struct gw_redis *redis;             /* this worker's Redis client (redis store) */
    const gw_qstore_ops *qstore;        /* NULL: Redis through <redis> */
    void *qstore_ctx;                   /* with qstore */
    struct gw_memlog *token_rate;       /* token requests per client (/token) */
    struct gw_journal *journal;         /* for the space gate */
    int journal_continue;               /* journal.on_failure "continue" */
    /* Wakes the journal's writer before the worker waits for I/O again
     * (gw_journal_reserve_deferred); NULL: the stage wakes it at once. */
    void (*journal_wake)(void *arg);
    void *journal_wake_arg;
} gw_services;

/* ---- the stages' results: each written by its stage only ---- */

typedef struct gw_route_out {
    const gw_route *route; /* the matched route, NULL until found */
    gw_route_match match;
    char allow[64];
    /* the query parsed once against the route's declarations (every later
     * reader uses it), and the canonical target sent upstream:
     * target[0..path_len) is the canonical path, then '?' + query.canonical
     * when the query is not empty */
    gw_query query;
    int query_ok;
    char target[GW_ROUTE_TARGET_MAX];
    size_t target_len, path_len;
} gw_route_out;

typedef struct gw_mtls_out {
    const gw_policy *policy; /* the habilitation the certificate names */
} gw_mtls_out;

typedef struct gw_maintenance_out {
    int active;
    time_t until; /* the slot's end (UTC) */
    char retry_after[16];
    char *body; /* etatSante's own answer (malloc'd, freed by done) */
} gw_maintenance_out;

typedef struct gw_ipallow_out {
    int family; /* effective client address */
    unsigned char addr[16];
    char ip[46];
} gw_ipallow_out;

typedef struct gw_bearer_out {
    int has_token;        /* a bearer token was verified and bound */
    int token_identified; /* its signature held: claims.jti/client_id are real */
    gw_claims claims;
} gw_bearer_out;

typedef struct gw_rights_out {
    const char *scope; /* the route's, once checked */
    char siren[10];    /* checked */
    char annee[5];     /* checked */
} gw_rights_out;

typedef struct gw_quota_out {
    int ran; /* the quota stage decided: its figures below */
    unsigned limit;
    unsigned remaining;
    const char *store;        /* "memory", "redis" or "degraded" */
    const char *store_reason; /* why the store failed, when degraded */
    int degraded;
    int deny_cached;
    char retry_after[16];
    char rl_limit[16], rl_remaining[16], rl_reset[16];
} gw_quota_out;

typedef struct gw_journal_out {
    int reserved;   /* holds a journal reservation (gw_journal_reserve) */
    int unreserved; /* goes on without one (journal.on_failure "continue") */
} gw_journal_out;

typedef struct gw_token_stage_out {
    gw_token_out *reply; /* the endpoint's answer, any status (malloc'd, freed by done) */
} gw_token_stage_out;

typedef struct gw_results {
    gw_mtls_out mtls;
    gw_route_out route;
    gw_maintenance_out maintenance;
    gw_ipallow_out ipallow;
    gw_bearer_out bearer;
    gw_rights_out rights;
    gw_quota_out quota;
    gw_journal_out journal;
    gw_token_stage_out token;
} gw_results;

/* The answer being prepared: the refusal of the stage that refused, and the
 * headers any stage adds (values must outlive the request: constants, or
 * buffers in the stage's result or in the policy). */
typedef struct gw_reply {
    gw_err_id err;      /* with GW_STAGE_REJECT */
    const char *reason; /* journal reason when not the table's */
    const char *body;   /* a stage answers itself (etatSante in maintenance) */
    int status;         /* with body */
    gw_extra_header resp_headers[GW_REPLY_MAX_HEADERS]; /* to the client */
    size_t nresp_headers;
    gw_extra_header up_headers[GW_REPLY_MAX_HEADERS]; /* to the upstream */
    size_t nup_headers;
} gw_reply;

/* The runner's per-request state (pipeline.c); opaque to the stages. */
typedef struct gw_access gw_access;

/* What a stage gets for one run (or done). */
typedef struct gw_stage_call {
    const gw_req_view *req;
    const gw_services *svc;
    const gw_results *res; /* the results of the stages before */
    void *out;             /* this stage's own result (inside res), NULL: none */
    gw_reply *reply;
    const void *conf; /* its configuration (parse), NULL: none */
    void **state;     /* its state slot, NULL until it sets one */
    gw_access *run;   /* to resume after SUSPEND */
} gw_stage_call;

typedef struct gw_stage {
    const char *name;
    const char *const *needs; /* NULL-terminated names, NULL: none */
    long out;                 /* offsetof(gw_results, ...), -1: no result */
    const char *key;          /* its key in "access", NULL: no configuration */
    /* Parse <v> (NULL when absent: defaults) into *conf. Errors go to
     * <jv> as "FILE: access.KEY...: message". 0, or -1 on error. */
    int (*parse)(const gw_conf *c, json_t *v, gw_jsonv *jv, void **conf);
    void (*free_conf)(void *conf);
    gw_verdict (*run)(const gw_stage_call *call);
    void (*done)(const gw_stage_call *call); /* NULL when nothing to release */
} gw_stage;

/* Add a header to the client response / upstream request. */
void gw_reply_header(gw_reply *r, const char *name, const char *value);
void gw_reply_up_header(gw_reply *r, const char *name, const char *value);
/* Refuse with <err>; <reason> NULL = the table's reason. Returns REJECT. */
gw_verdict gw_reply_reject(gw_reply *r, gw_err_id err, const char *reason);

/* Called by a suspended stage with its verdict; continues the list and
 * reports the final verdict through the request's on_done. */
void gw_pipeline_resume(gw_access *a, gw_verdict v);

#endif
