/*
 * DataPass in the loop (docs/datapass.md): the "datapass" config section,
 * the webhook receiver (its own TLS listener on the main thread's event loop,
 * no client certificate) and the metrics of both.
 */
#ifndef GW_DATAPASS_H
#define GW_DATAPASS_H

#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "core/server.h"
#include "datapass/webhook.h"

struct event_base;
struct evbuffer;

/* The X-App-Environment values DataPass sends. */
typedef enum { GW_DP_SANDBOX = 0, GW_DP_STAGING = 1, GW_DP_PRODUCTION = 2, GW_DP__NENV } gw_dp_env;

#define GW_DP_MAX_SECRETS 2 /* per environment: the current one and the next (rotation) */

typedef struct gw_dp_conf {
    int webhook;   /* "webhook" present: run the receiver */
    char *address; /* numeric address */
    uint16_t port;
    char *cert, *key;     /* absolute paths */
    size_t max_body;      /* default 65536 */
    long replay_window_s; /* default 86400 */
    char *state_file;     /* absolute; default <policies_dir>/../datapass-seen.json */
    unsigned char *secrets[GW_DP__NENV][GW_DP_MAX_SECRETS];
    size_t secret_len[GW_DP__NENV][GW_DP_MAX_SECRETS];
    size_t nsecrets[GW_DP__NENV];
    /* "api": the DataPass API for the sync (gateway/datapass/sync.c) */
    int api;
    char *api_url; /* e.g. https://datapass.api.gouv.fr/api/v1 */
    char *api_client_id;
    char *api_secret;     /* read from client_secret_file */
    char *api_ca;         /* absolute path of a CA bundle, or NULL: system store */
    long sync_interval_s; /* 0: on demand only (--sync-datapass); default 300 */
} gw_dp_conf;

/* Validate <c>->datapass into <out> (zeroed first; nothing enabled when the
 * section is absent). Every problem goes to <errs> as "<conf file>:
 * datapass.key: message". Returns 0 or -1. */
int gw_dp_conf_load(const gw_conf *c, gw_dp_conf *out, gw_errlist *errs);
void gw_dp_conf_clear(gw_dp_conf *dc);

const char *gw_dp_env_name(gw_dp_env e);

typedef struct gw_dp_receiver gw_dp_receiver;

/*
 * Start the receiver on <base> (main thread). Takes <dc> (zeroed on return).
 * Policies are changed through <srv> (files rewritten, then
 * gw_server_reload_policies), revocations through its kill switch.
 * NULL with a malloc'd message in <*err>.
 */
gw_dp_receiver *gw_dp_receiver_start(struct event_base *base, const gw_conf *conf, gw_dp_conf *dc,
                                     gw_server *srv, char **err);
void gw_dp_receiver_stop(gw_dp_receiver *r); /* NULL accepted */

const char *gw_dp_outcome_name(gw_dp_outcome o);

/* The Prometheus lines of the webhook and sync counters (process-wide),
 * appended to <b>; called by the admin /metrics. */
void gw_dp_metrics(struct evbuffer *b);
void gw_dp_count(gw_dp_outcome o);

/* The policy files that wait for an operator: "<policies_dir>/<name>.json.pending"
 * (docs/datapass.md, "Pending policies"), sorted; *<n> entries, malloc'd
 * array of malloc'd names (NULL when none). */
char **gw_dp_pending_list(const char *policies_dir, size_t *n);
void gw_dp_pending_free(char **v, size_t n);

#endif
