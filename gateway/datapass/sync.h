/*
 * The reconciliation with the DataPass API (docs/datapass.md, "Sync"):
 * OAuth2 client credentials on <api.url>/oauth/token, then GET
 * <api.url>/habilitations page by page; every habilitation of an OPALE
 * definition is applied like a webhook (gw_dp_apply: an active one updates
 * its policy's DataPass-owned fields or creates a pending policy, a revoked
 * or obsolete one is revoked), and every OPALE policy whose habilitation
 * DataPass did not return is revoked.
 */
#ifndef GW_DP_SYNC_H
#define GW_DP_SYNC_H

#include <jansson.h>

#include "datapass/datapass.h"

#define GW_DP_SYNC_PAGE 1000     /* habilitations asked per page (the API's maximum) */
#define GW_DP_SYNC_MAX_PAGES 100 /* bound on the pages read */
#define GW_DP_HTTP_TIMEOUT_S 10  /* connect, and each read or write */

/* Every habilitation DataPass returns (a JSON array, new reference), or NULL
 * with a malloc'd message in <*err>. Blocking: never on an event loop. */
json_t *gw_dp_fetch_habilitations(const gw_dp_conf *dc, char **err);

typedef struct gw_dp_sync_report {
    long fetched;     /* OPALE habilitations returned */
    long changed;     /* policy files written (pending ones included) */
    long differences; /* policies that differed from DataPass (written or not) */
    long revoked;     /* policies revoked (DataPass says revoked, or absent) */
    long failed;      /* could not be applied */
    int reload;       /* a served policy file changed: reload */
    json_t *changes;  /* [{"habilitation","action","outcome","detail","file"}], owned */
} gw_dp_sync_report;

/* Apply <habs> (from gw_dp_fetch_habilitations) through <c>. <rep> is filled
 * (the caller json_decref's rep->changes). */
void gw_dp_sync_apply(const gw_dp_apply_ctx *c, json_t *habs, gw_dp_sync_report *rep);

/* The periodic sync: a thread fetches every <api.sync_interval_s> (first at
 * start), the main thread (<base>) applies, reloads and journals a
 * "datapass.sync" event. NULL with <*err> when the thread cannot start. */
typedef struct gw_dp_syncer gw_dp_syncer;
gw_dp_syncer *gw_dp_syncer_start(struct event_base *base, const gw_conf *conf, const gw_dp_conf *dc,
                                 gw_server *srv, char **err);
void gw_dp_syncer_stop(gw_dp_syncer *s); /* NULL accepted; joins the thread */

/* Counters for /metrics (gw_dp_metrics). */
void gw_dp_sync_count(int ok);
unsigned long gw_dp_sync_counted(int ok);

#endif
