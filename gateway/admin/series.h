/*
 * The console's figures over time (GET /admin/overview, GET
 * /admin/partners), without libevent and without touching the request
 * path: the admin listener samples the gateway's cumulative counters
 * (gw_server_stats, gw_consumer_each, summed over the workers) once a
 * second and keeps what the console shows:
 *
 *  - gw_series: every GW_SERIES_STEP_S seconds (on the wall clock's
 *    10-second boundaries) a sample of the requests, the denials by reason,
 *    the 5xx answers and the upstream latency buckets; GW_SERIES_POINTS + 1
 *    samples make the last 15 minutes: requests per outcome per step,
 *    answers by status, upstream latency percentiles.
 *  - gw_usage: per consumer, its quota admissions of the last 60 seconds
 *    (one sample a second), its answers and failures of the last 15
 *    minutes (one sample a minute) and when it was last seen calling.
 *
 * Main thread only. The figures are this instance's.
 */
#ifndef GW_ADMIN_SERIES_H
#define GW_ADMIN_SERIES_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/errors.h"

#define GW_SERIES_STEP_S 10
#define GW_SERIES_POINTS 90 /* 15 minutes */
#define GW_SERIES_BUCKETS 12

/* Cumulative counters at one instant. */
typedef struct gw_series_sample {
    int64_t t;              /* Unix seconds; 0: no sample */
    unsigned long requests; /* answered */
    unsigned long class5;   /* 5xx answers (the gateway's and the backend's) */
    unsigned long denials[GW_ERR__COUNT];
    unsigned long upstream[GW_SERIES_BUCKETS]; /* gw_latency_bounds_ms buckets, last: above */
} gw_series_sample;

typedef struct gw_series {
    gw_series_sample ring[GW_SERIES_POINTS + 1]; /* by (t / step) modulo */
} gw_series;

/* Keep <s> when its time is on a step boundary; other samples are ignored
 * (the caller offers one a second). */
void gw_series_offer(gw_series *g, const gw_series_sample *s);

/* The outcome of a request that ended with <err>: 0 forwarded (GW_OK), 1
 * denied by a control, 2 refused by the quota (900804, quota store
 * unavailable), 3 error (the gateway or the backend failed: a status of
 * 500 or more, or the client leaving first). */
int gw_series_outcome(gw_err_id err);

/* {"step_s", "points": [{"t", "outcomes": {"forwarded", "denied", "quota",
 * "error"}}] x GW_SERIES_POINTS}: the steps ending at the last
 * GW_SERIES_POINTS boundaries up to <now> (Unix s), oldest first; a step
 * without both its samples counts zeros. */
json_t *gw_series_json(const gw_series *g, int64_t now);

/* The answers of the last 15 minutes by status ({"401": n, ..., "5xx":
 * n}: the gateway's refusals by their status, every 5xx answer), from the
 * oldest sample held to <cur> (the counters now). */
json_t *gw_series_errors_json(const gw_series *g, const gw_series_sample *cur);

/* {"p50", "p90", "p99"} of the upstream latency (ms) over the same span,
 * interpolated inside the histogram's buckets; null values when no
 * exchange. <bounds>: the buckets' upper bounds (11 of them). */
json_t *gw_series_upstream_json(const gw_series *g, const gw_series_sample *cur,
                                const unsigned bounds[GW_SERIES_BUCKETS - 1]);

/* ---- per consumer ---- */

#define GW_USAGE_WINDOW_S 60 /* the quota window shown */
#define GW_USAGE_MINUTES 15  /* the error rate's span */

typedef struct gw_usage gw_usage;

gw_usage *gw_usage_new(void);
void gw_usage_free(gw_usage *u);

/* One consumer's cumulative counters at <now> (Unix s): <answers> and
 * <failures> (4xx and 5xx answers), <admitted> (quota admissions). Called
 * once a second for each consumer. 0, or -1 when out of memory. */
int gw_usage_offer(gw_usage *u, const char *client_id, unsigned long answers,
                   unsigned long failures, unsigned long admitted, int64_t now);

typedef struct gw_usage_view {
    unsigned long used; /* admissions within the last GW_USAGE_WINDOW_S seconds */
    double error_rate;  /* failures / answers over the last 15 minutes, -1: no answer */
    int64_t last_call;  /* Unix s of the last second its answers grew, 0: not seen */
} gw_usage_view;

/* What is known of <client_id> at <now>; a consumer never offered reads
 * {0, -1, 0}. */
void gw_usage_get(const gw_usage *u, const char *client_id, int64_t now, gw_usage_view *out);

#endif
