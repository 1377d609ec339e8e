/* The console's figures over time (see series.h). */
#include "admin/series.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NSLOTS (GW_SERIES_POINTS + 1)

static gw_series_sample *slot(gw_series *g, int64_t t)
{
    return &g->ring[(t / GW_SERIES_STEP_S) % NSLOTS];
}

static const gw_series_sample *at(const gw_series *g, int64_t t)
{
    if (t <= 0)
        return NULL;
    const gw_series_sample *s = &g->ring[(t / GW_SERIES_STEP_S) % NSLOTS];
    return s->t == t ? s : NULL;
}

void gw_series_offer(gw_series *g, const gw_series_sample *s)
{
    if (s->t <= 0 || s->t % GW_SERIES_STEP_S != 0)
        return;
    *slot(g, s->t) = *s;
}

int gw_series_outcome(gw_err_id err)
{
    if (err == GW_OK)
        return 0;
    if (err == GW_ERR_THROTTLED || err == GW_ERR_QUOTA_UNAVAILABLE)
        return 2;
    if (err == GW_ERR_CLIENT_CLOSED || gw_err(err)->status >= 500)
        return 3;
    return 1;
}

static const char *const outcome_names[4] = {"forwarded", "denied", "quota", "error"};

/* The outcomes between samples <a> (earlier) and <b>. */
static void outcomes(const gw_series_sample *a, const gw_series_sample *b, unsigned long out[4])
{
    memset(out, 0, 4 * sizeof(out[0]));
    unsigned long refused = 0;
    for (int i = 1; i < GW_ERR__COUNT; i++) {
        unsigned long d = b->denials[i] - a->denials[i];
        out[gw_series_outcome((gw_err_id)i)] += d;
        refused += d;
    }
    unsigned long total = b->requests - a->requests;
    out[0] = total > refused ? total - refused : 0;
}

json_t *gw_series_json(const gw_series *g, int64_t now)
{
    json_t *points = json_array();
    int64_t last = now - now % GW_SERIES_STEP_S;
    for (int k = GW_SERIES_POINTS - 1; points != NULL && k >= 0; k--) {
        int64_t t = last - (int64_t)k * GW_SERIES_STEP_S;
        const gw_series_sample *b = at(g, t), *a = at(g, t - GW_SERIES_STEP_S);
        unsigned long o[4] = {0, 0, 0, 0};
        if (a != NULL && b != NULL)
            outcomes(a, b, o);
        char iso[32];
        time_t tt = (time_t)t;
        struct tm tm;
        gmtime_r(&tt, &tm);
        strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm);
        json_t *oc = json_object();
        for (int i = 0; oc != NULL && i < 4; i++)
            json_object_set_new(oc, outcome_names[i], json_integer((json_int_t)o[i]));
        json_array_append_new(points, json_pack("{s:s,s:o}", "t", iso, "outcomes", oc));
    }
    return json_pack("{s:i,s:o}", "step_s", GW_SERIES_STEP_S, "points", points);
}

/* The oldest sample held (the start of the span), or NULL. */
static const gw_series_sample *oldest(const gw_series *g, const gw_series_sample *cur)
{
    const gw_series_sample *o = NULL;
    for (int i = 0; i < NSLOTS; i++) {
        const gw_series_sample *s = &g->ring[i];
        if (s->t > 0 && s->t >= cur->t - (int64_t)GW_SERIES_POINTS * GW_SERIES_STEP_S &&
            s->t <= cur->t && (o == NULL || s->t < o->t))
            o = s;
    }
    return o;
}

json_t *gw_series_errors_json(const gw_series *g, const gw_series_sample *cur)
{
    json_t *o = json_object();
    const gw_series_sample *a = oldest(g, cur);
    if (o == NULL || a == NULL)
        return o;
    for (int i = 1; i < GW_ERR__COUNT; i++) {
        unsigned long d = cur->denials[i] - a->denials[i];
        int st = gw_err((gw_err_id)i)->status;
        if (d == 0 || st >= 500)
            continue;
        char key[16];
        snprintf(key, sizeof(key), "%d", st);
        json_int_t prev = json_integer_value(json_object_get(o, key));
        json_object_set_new(o, key, json_integer(prev + (json_int_t)d));
    }
    json_object_set_new(o, "5xx", json_integer((json_int_t)(cur->class5 - a->class5)));
    return o;
}

json_t *gw_series_upstream_json(const gw_series *g, const gw_series_sample *cur,
                                const unsigned bounds[GW_SERIES_BUCKETS - 1])
{
    static const struct {
        const char *name;
        double q;
    } qs[] = {{"p50", 0.50}, {"p90", 0.90}, {"p99", 0.99}};
    const gw_series_sample *a = oldest(g, cur);
    unsigned long n[GW_SERIES_BUCKETS], total = 0;
    for (int i = 0; i < GW_SERIES_BUCKETS; i++) {
        n[i] = cur->upstream[i] - (a != NULL ? a->upstream[i] : cur->upstream[i]);
        total += n[i];
    }
    json_t *o = json_object();
    for (size_t k = 0; o != NULL && k < sizeof(qs) / sizeof(qs[0]); k++) {
        if (total == 0) {
            json_object_set_new(o, qs[k].name, json_null());
            continue;
        }
        double rank = qs[k].q * (double)total, below = 0;
        int i = 0;
        while (i < GW_SERIES_BUCKETS - 1 && below + (double)n[i] < rank)
            below += (double)n[i++];
        double lo = i == 0 ? 0 : bounds[i - 1];
        /* above the last bound: its value is not known, the bound is said */
        double hi = i < GW_SERIES_BUCKETS - 1 ? bounds[i] : bounds[GW_SERIES_BUCKETS - 2];
        double v =
            n[i] > 0 && i < GW_SERIES_BUCKETS - 1 ? lo + (hi - lo) * (rank - below) / n[i] : hi;
        json_object_set_new(o, qs[k].name, json_real((double)(long)(v * 10 + 0.5) / 10));
    }
    return o;
}

/* ---- per consumer ---- */

#define USAGE_BUCKETS 1024

typedef struct usage_entry {
    struct usage_entry *next;
    char *client_id;
    uint32_t admitted[GW_USAGE_WINDOW_S + 1]; /* cumulative, by second modulo */
    int64_t admitted_t[GW_USAGE_WINDOW_S + 1];
    uint32_t answers[GW_USAGE_MINUTES + 1], failures[GW_USAGE_MINUTES + 1]; /* by minute */
    int64_t minute_t[GW_USAGE_MINUTES + 1];
    unsigned long last_answers, last_failures; /* the live counters */
    int64_t last_call;
    int seen;
} usage_entry;

struct gw_usage {
    usage_entry *b[USAGE_BUCKETS];
};

static size_t hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % USAGE_BUCKETS;
}

static usage_entry *find(const gw_usage *u, const char *id)
{
    for (usage_entry *e = u->b[hash(id)]; e != NULL; e = e->next)
        if (strcmp(e->client_id, id) == 0)
            return e;
    return NULL;
}

gw_usage *gw_usage_new(void)
{
    return calloc(1, sizeof(gw_usage));
}

void gw_usage_free(gw_usage *u)
{
    if (u == NULL)
        return;
    for (size_t i = 0; i < USAGE_BUCKETS; i++) {
        usage_entry *e = u->b[i];
        while (e != NULL) {
            usage_entry *n = e->next;
            free(e->client_id);
            free(e);
            e = n;
        }
    }
    free(u);
}

int gw_usage_offer(gw_usage *u, const char *client_id, unsigned long answers,
                   unsigned long failures, unsigned long admitted, int64_t now)
{
    usage_entry *e = find(u, client_id);
    if (e == NULL) {
        e = calloc(1, sizeof(*e));
        if (e == NULL || (e->client_id = strdup(client_id)) == NULL) {
            free(e);
            return -1;
        }
        size_t h = hash(client_id);
        e->next = u->b[h];
        u->b[h] = e;
        /* not in the counters' table the second before: its counts were
         * zero then (they start at zero with the gateway) */
        int64_t before = now - 1;
        e->admitted_t[before % (GW_USAGE_WINDOW_S + 1)] = before;
        e->minute_t[(before / 60) % (GW_USAGE_MINUTES + 1)] = before / 60;
    }
    if (!e->seen || answers != e->last_answers) {
        if (answers > 0)
            e->last_call = now;
        e->last_answers = answers;
        e->seen = 1;
    }
    size_t s = (size_t)(now % (GW_USAGE_WINDOW_S + 1));
    e->admitted[s] = (uint32_t)admitted;
    e->admitted_t[s] = now;
    int64_t minute = now / 60;
    size_t m = (size_t)(minute % (GW_USAGE_MINUTES + 1));
    if (e->minute_t[m] != minute) {
        e->answers[m] = (uint32_t)answers;
        e->failures[m] = (uint32_t)failures;
        e->minute_t[m] = minute;
    }
    /* a minute's slot holds its first sample; the figures end with the
     * live counters */
    e->last_answers = answers;
    e->last_failures = failures;
    return 0;
}

void gw_usage_get(const gw_usage *u, const char *client_id, int64_t now, gw_usage_view *out)
{
    out->used = 0;
    out->error_rate = -1;
    out->last_call = 0;
    const usage_entry *e = find(u, client_id);
    if (e == NULL)
        return;
    out->last_call = e->last_call;
    /* the newest sample, and the oldest one within the window */
    int64_t newest_t = 0, oldest_t = 0;
    uint32_t newest = 0, old = 0;
    for (size_t i = 0; i <= GW_USAGE_WINDOW_S; i++) {
        int64_t t = e->admitted_t[i];
        if (t <= 0 || t > now || t < now - GW_USAGE_WINDOW_S)
            continue;
        if (t > newest_t) {
            newest_t = t;
            newest = e->admitted[i];
        }
        if (oldest_t == 0 || t < oldest_t) {
            oldest_t = t;
            old = e->admitted[i];
        }
    }
    out->used = newest_t > 0 ? (unsigned long)(uint32_t)(newest - old) : 0;
    /* answers and failures: from the first sample of the oldest minute
     * held within 15 minutes to the live counters */
    int64_t minute = now / 60, om = 0;
    uint32_t oa = 0, of = 0;
    for (size_t i = 0; i <= GW_USAGE_MINUTES; i++) {
        int64_t t = e->minute_t[i];
        if (t <= 0 || t > minute || t < minute - GW_USAGE_MINUTES)
            continue;
        if (om == 0 || t < om) {
            om = t;
            oa = e->answers[i];
            of = e->failures[i];
        }
    }
    if (om > 0) {
        uint32_t da = (uint32_t)e->last_answers - oa;
        uint32_t df = (uint32_t)e->last_failures - of;
        if (da > 0)
            out->error_rate = (double)df / (double)da;
    }
}
