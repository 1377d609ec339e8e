/*
 * Security events: detectors, the records, the alert hook.
 *
 * Detectors. Each one is a table of subjects (an IP, a certificate, a
 * consumer, a habilitation) split into 16 stripes, each with its own mutex,
 * hash buckets and least-recently-seen list. A worker reports what happened;
 * the detector updates the subject under its stripe lock (no I/O, no
 * allocation beyond the subject's own arrays), decides, and unlocks before
 * the record is formatted and queued. The state is bounded: at most
 * max_subjects subjects and max_slots remembered timestamps per detector
 * (split evenly between the stripes); past either, the least recently seen
 * subjects of the stripe are evicted, and counted.
 *
 *   counting (auth.failures, quota.storm): the subject keeps the times of its
 *     last N occurrences in a ring (N = the threshold), so "N within the
 *     window" is exact: the N-th newest is less than window ms old.
 *   distinct (siren.enumeration): the subject keeps up to N (SIREN hash, last
 *     seen) pairs younger than the window.
 *   once (cert.unknown, cert.expiring): the time from which the subject may
 *     be reported again.
 *   per slot (maintenance.access): the end of the slot last reported.
 *
 * A subject that fired is silent until a full window after it fired ("once
 * per window per subject"); a new record then needs the threshold reached
 * again within the window.
 *
 * Alert hook. emit() appends a copy of the record to a bounded queue (rate
 * limit checked there, with a sliding minute of start times); the alert
 * thread posix_spawn()s the command with a clean environment and every
 * descriptor above 2 closed, polls its children with waitpid(pid, WNOHANG)
 * (never waitpid(-1): other children of the process are not ours), kills
 * those that overrun the timeout and reports failures on stderr.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "journal/events.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "lib/civil.h"
#include "lib/hash.h"
#include "lib/util.h"

#define NSTRIPES 16
#define KEY_MAX 200
#define ALERT_QUEUE 64
#define ALERT_CHILDREN 16
#define ALERT_CLOSE_WAIT_MS 5000
#define HOUR_MS 3600000ull
#define DAY_MS 86400000ull
#define EXPIRY_HIGH_DAYS 7 /* cert.expiring is "high" from this close */

static const char *const type_names[GW_EV__COUNT] = {
    [GW_EV_AUTH_FAILURES] = "auth.failures",
    [GW_EV_CERT_UNKNOWN] = "cert.unknown",
    [GW_EV_SIREN_ENUMERATION] = "siren.enumeration",
    [GW_EV_QUOTA_STORM] = "quota.storm",
    [GW_EV_MAINTENANCE_ACCESS] = "maintenance.access",
    [GW_EV_CERT_EXPIRING] = "cert.expiring",
    [GW_EV_ADMIN_RELOAD] = "admin.reload",
    [GW_EV_ADMIN_RELOAD_REFUSED] = "admin.reload_refused",
    [GW_EV_ADMIN_SUSPEND] = "admin.suspend",
    [GW_EV_ADMIN_RESUME] = "admin.resume",
    [GW_EV_POLICY_REJECTED] = "policy.rejected",
    [GW_EV_ADMIN_AUTH_FAILED] = "admin.auth_failed",
    [GW_EV_ADMIN_AUTH_BLOCKED] = "admin.auth_blocked",
    [GW_EV_DATAPASS_WEBHOOK] = "datapass.webhook",
    [GW_EV_DATAPASS_SYNC] = "datapass.sync",
    [GW_EV_HABILITATION_EXPIRING] = "habilitation.expiring",
    [GW_EV_JOURNAL_BROKEN] = "journal.broken",
    [GW_EV_JOURNAL_BREAK_ACK] = "journal.break_ack",
    [GW_EV_JOURNAL_ANCHOR] = "journal.anchor_failed",
    [GW_EV_ADMIN_HOLD] = "admin.journal_hold",
    [GW_EV_ADMIN_HOLD_LIFTED] = "admin.journal_hold_lifted",
};

static const char *const sev_names[] = {"low", "medium", "high", "critical"};

const char *gw_event_type_name(gw_event_type t)
{
    return (unsigned)t < GW_EV__COUNT ? type_names[t] : NULL;
}

const char *gw_event_severity_name(gw_event_severity s)
{
    return (unsigned)s < 4 ? sev_names[s] : NULL;
}

int gw_event_severity_parse(const char *s)
{
    for (int i = 0; s != NULL && i < 4; i++)
        if (strcmp(s, sev_names[i]) == 0)
            return i;
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Subject tables                                                           */
/* ------------------------------------------------------------------------ */

typedef struct ent {
    struct ent *hnext;
    struct ent *prev, *next; /* least-recently-seen list: head is the newest */
    uint64_t h;
    uint64_t next_ok; /* ms: may fire again from then */
    long long mark;   /* per slot: the slot end last reported */
    uint64_t *ts;     /* counting: ring of times; distinct: last seen, with ids */
    uint64_t *ids;    /* distinct: SIREN hashes */
    uint32_t n, cap, head;
    char key[];
} ent;

typedef struct stripe {
    pthread_mutex_t mu;
    ent **buckets; /* allocated at the first subject */
    size_t nbuckets;
    ent *newest, *oldest;
    size_t nents, nslots;
} stripe;

enum tkind { T_ONCE, T_COUNT, T_DISTINCT, T_SLOT };

typedef struct table {
    enum tkind kind;
    uint32_t ring;      /* counting/distinct: N */
    uint64_t window_ms; /* counting/distinct */
    size_t max_ents;    /* per stripe */
    size_t max_slots;   /* per stripe */
    atomic_ullong tracked;
    atomic_ullong evicted;
    stripe s[NSTRIPES];
} table;

enum { TB_AUTH, TB_UNKNOWN, TB_EXPIRING, TB_ENUM, TB_STORM, TB_MAINT, TB__COUNT };

static int table_init(table *t, enum tkind kind, uint32_t ring, uint64_t window_ms,
                      size_t max_subjects, size_t max_slots)
{
    memset(t, 0, sizeof(*t));
    t->kind = kind;
    t->ring = ring;
    t->window_ms = window_ms;
    t->max_ents = (max_subjects + NSTRIPES - 1) / NSTRIPES;
    if (t->max_ents < 1)
        t->max_ents = 1;
    t->max_slots = (max_slots + NSTRIPES - 1) / NSTRIPES;
    if (t->max_slots < ring)
        t->max_slots = ring; /* one subject can always reach its threshold */
    for (int i = 0; i < NSTRIPES; i++)
        if (pthread_mutex_init(&t->s[i].mu, NULL) != 0)
            return -1;
    return 0;
}

static void ent_free(ent *e)
{
    free(e->ts);
    free(e->ids);
    free(e);
}

static void table_destroy(table *t)
{
    for (int i = 0; i < NSTRIPES; i++) {
        stripe *s = &t->s[i];
        ent *e = s->newest;
        while (e != NULL) {
            ent *n = e->next;
            ent_free(e);
            e = n;
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->mu);
    }
}

static void lru_unlink(stripe *s, ent *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        s->newest = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        s->oldest = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push(stripe *s, ent *e)
{
    e->prev = NULL;
    e->next = s->newest;
    if (s->newest)
        s->newest->prev = e;
    s->newest = e;
    if (s->oldest == NULL)
        s->oldest = e;
}

static void drop_ent(table *t, stripe *s, ent *e)
{
    ent **pp = &s->buckets[e->h & (s->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(s, e);
    s->nents--;
    s->nslots -= e->cap;
    atomic_fetch_sub_explicit(&t->tracked, 1, memory_order_relaxed);
    ent_free(e);
}

/* Evict the least recently seen subjects (never <keep>) until the stripe is
 * within its caps, the subject being added counted in <extra_ents>. */
static void evict(table *t, stripe *s, const ent *keep, size_t extra_ents)
{
    while (s->oldest != NULL && (s->nents + extra_ents > t->max_ents || s->nslots > t->max_slots)) {
        ent *victim = s->oldest;
        if (victim == keep) {
            victim = victim->prev;
            if (victim == NULL)
                return;
        }
        drop_ent(t, s, victim);
        atomic_fetch_add_explicit(&t->evicted, 1, memory_order_relaxed);
    }
}

/* The subject <key>, created when absent, made the newest of its stripe.
 * Called with the stripe locked; NULL when out of memory. */
static ent *lookup(table *t, stripe *s, const char *key, uint64_t h)
{
    if (s->buckets == NULL) {
        size_t nb = 64;
        while (nb < t->max_ents && nb < 8192)
            nb <<= 1;
        s->buckets = calloc(nb, sizeof(*s->buckets));
        if (s->buckets == NULL)
            return NULL;
        s->nbuckets = nb;
    }
    ent **b = &s->buckets[h & (s->nbuckets - 1)];
    for (ent *e = *b; e != NULL; e = e->hnext) {
        if (e->h == h && strcmp(e->key, key) == 0) {
            lru_unlink(s, e);
            lru_push(s, e);
            return e;
        }
    }
    evict(t, s, NULL, 1);
    size_t kl = strlen(key);
    ent *e = calloc(1, sizeof(*e) + kl + 1);
    if (e == NULL)
        return NULL;
    memcpy(e->key, key, kl + 1);
    e->h = h;
    e->hnext = *b;
    *b = e;
    lru_push(s, e);
    s->nents++;
    atomic_fetch_add_explicit(&t->tracked, 1, memory_order_relaxed);
    return e;
}

/* Room for one more time (and id) in <e>: grows the arrays up to the ring
 * size, in order (head 0). 0, or -1 when out of memory. */
static int grow(table *t, stripe *s, ent *e)
{
    if (e->n < e->cap)
        return 0;
    uint32_t nc = e->cap == 0 ? 4 : e->cap * 2;
    if (nc > t->ring)
        nc = t->ring;
    if (nc <= e->cap)
        return -1;
    uint64_t *ts = malloc(nc * sizeof(*ts));
    uint64_t *ids = t->kind == T_DISTINCT ? malloc(nc * sizeof(*ids)) : NULL;
    if (ts == NULL || (t->kind == T_DISTINCT && ids == NULL)) {
        free(ts);
        free(ids);
        return -1;
    }
    for (uint32_t i = 0; i < e->n; i++) {
        ts[i] = e->ts[(e->head + i) % e->cap];
        if (ids)
            ids[i] = e->ids[(e->head + i) % e->cap];
    }
    free(e->ts);
    free(e->ids);
    e->ts = ts;
    e->ids = ids;
    e->head = 0;
    s->nslots += nc - e->cap;
    e->cap = nc;
    evict(t, s, e, 0);
    return 0;
}

/* Counting: one occurrence at <now>. Returns how many occurrences of the
 * subject are less than the window old (at most the ring size). */
static uint32_t count_hit(table *t, stripe *s, ent *e, uint64_t now)
{
    while (e->n > 0 && now - e->ts[e->head] >= t->window_ms) {
        e->head = (e->head + 1) % e->cap;
        e->n--;
    }
    if (e->n == t->ring) { /* full: the oldest makes room */
        e->head = (e->head + 1) % e->cap;
        e->n--;
    }
    if (grow(t, s, e) < 0 && e->n == e->cap) {
        /* no memory to grow: forget the oldest */
        if (e->n == 0)
            return 0;
        e->head = (e->head + 1) % e->cap;
        e->n--;
    }
    e->ts[(e->head + e->n) % e->cap] = now;
    e->n++;
    return e->n;
}

/* Distinct: <id> seen at <now>. Returns the number of distinct ids seen less
 * than the window ago (at most the ring size). Kept in order of insertion
 * without holes (head 0). */
static uint32_t distinct_hit(table *t, stripe *s, ent *e, uint64_t id, uint64_t now)
{
    uint32_t k = 0;
    int found = -1;
    for (uint32_t i = 0; i < e->n; i++) {
        if (now - e->ts[i] >= t->window_ms)
            continue;
        e->ts[k] = e->ts[i];
        e->ids[k] = e->ids[i];
        if (e->ids[k] == id)
            found = (int)k;
        k++;
    }
    e->n = k;
    if (found >= 0) {
        e->ts[found] = now;
        return e->n;
    }
    if (e->n == t->ring || (grow(t, s, e) < 0 && e->n == e->cap)) {
        if (e->n == 0)
            return 0;
        uint32_t old = 0; /* replace the least recently seen */
        for (uint32_t i = 1; i < e->n; i++)
            if (e->ts[i] < e->ts[old])
                old = i;
        e->ids[old] = id;
        e->ts[old] = now;
        return e->n;
    }
    e->ids[e->n] = id;
    e->ts[e->n] = now;
    e->n++;
    return e->n;
}

/* ------------------------------------------------------------------------ */
/* The events object                                                        */
/* ------------------------------------------------------------------------ */

struct alert {
    char *json;
    gw_event_type type;
    gw_event_severity sev;
};

struct child {
    pid_t pid;
    uint64_t start;
    gw_event_type type;
    int killed;
};

struct gw_events {
    gw_journal *j;
    table t[TB__COUNT];
    int tables_ok;
    uint32_t auth_n, enum_n, storm_n;
    uint64_t auth_w, enum_w, storm_w;
    unsigned expiry_days;
    atomic_llong test_ms;
    atomic_ullong by_type[GW_EV__COUNT];
    atomic_ullong refused;

    /* alert hook */
    char *cmd;
    char *path_env; /* "PATH=..." */
    gw_event_severity min_sev;
    unsigned per_minute;
    unsigned timeout_ms;
    pthread_t thread;
    int started;
    pthread_mutex_t amu;
    pthread_cond_t acv;
    struct alert q[ALERT_QUEUE];
    size_t qhead, qn;
    uint64_t *rl; /* start times of the last per_minute alerts (ring) */
    size_t rl_head, rl_n;
    int closing;
    uint64_t rate_limited, dropped;      /* under amu */
    atomic_ullong run, failed, running;  /* alert thread */
    uint64_t reported_rl, reported_drop; /* alert thread */
    uint64_t last_report;                /* alert thread, mono ms */
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t ev_now(gw_events *ev)
{
    long long t = atomic_load_explicit(&ev->test_ms, memory_order_relaxed);
    return t != 0 ? (uint64_t)t : mono_ms();
}

static long long ev_wall(gw_events *ev)
{
    long long t = atomic_load_explicit(&ev->test_ms, memory_order_relaxed);
    return t != 0 ? t / 1000 : (long long)time(NULL);
}

void gw_events_test_set_time(gw_events *ev, long long ms)
{
    if (ev != NULL)
        atomic_store(&ev->test_ms, ms);
}

/* ---- records ---- */

/* A JSON string from untrusted bytes (a certificate subject): invalid UTF-8
 * becomes U+FFFD, as in the access journal, so the record is never lost. */
static json_t *jstr(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s), i = 0, l;
    gw_buf b = {0};

    while (i < n) {
        l = gw_utf8_len(u + i, n - i);
        if (l == 0) {
            gw_buf_append(&b, "\xEF\xBF\xBD", 3);
            i++;
        } else {
            gw_buf_append(&b, s + i, l);
            i += l;
        }
    }
    json_t *v = b.oom ? NULL : json_stringn(b.data ? b.data : "", b.len);
    gw_buf_free(&b);
    return v;
}

static void put(json_t *o, const char *k, json_t *v, int *fail)
{
    if (json_object_set_new(o, k, v) != 0)
        *fail = 1;
}

static void put_str(json_t *o, const char *k, const char *s, int *fail)
{
    if (s != NULL)
        put(o, k, jstr(s), fail);
}

static void put_int(json_t *o, const char *k, long long v, int *fail)
{
    if (v >= 0)
        put(o, k, json_integer(v), fail);
}

static void iso_of(long long t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *new_event(gw_event_type type, gw_event_severity sev, int *fail)
{
    char ts[32];
    json_t *o = json_object();
    if (o == NULL) {
        *fail = 1;
        return NULL;
    }
    gw_time_iso_ms(ts);
    put(o, "v", json_integer(1), fail);
    put(o, "type", json_string("security_event"), fail);
    put(o, "ts", json_string(ts), fail);
    put(o, "event", json_string(type_names[type]), fail);
    put(o, "severity", json_string(sev_names[sev]), fail);
    return o;
}

static int dump_cb(const char *p, size_t n, void *data)
{
    gw_buf *b = data;
    gw_buf_append(b, p, n);
    return b->oom ? -1 : 0;
}

static void alert_enqueue(gw_events *ev, const char *json, size_t len, gw_event_type type,
                          gw_event_severity sev);

/* Count the event, write its record, queue its alert. Takes <o>. */
static void emit(gw_events *ev, gw_event_type type, gw_event_severity sev, json_t *o, int fail)
{
    gw_buf b = {0};
    atomic_fetch_add_explicit(&ev->by_type[type], 1, memory_order_relaxed);
    if (o == NULL || fail ||
        json_dump_callback(o, dump_cb, &b, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0) {
        json_decref(o);
        gw_buf_free(&b);
        atomic_fetch_add_explicit(&ev->refused, 1, memory_order_relaxed);
        return;
    }
    json_decref(o);
    size_t jl = b.len;
    gw_buf_append(&b, "\n", 1);
    if (b.oom) {
        gw_buf_free(&b);
        atomic_fetch_add_explicit(&ev->refused, 1, memory_order_relaxed);
        return;
    }
    if (ev->cmd != NULL && sev >= ev->min_sev)
        alert_enqueue(ev, b.data, jl, type, sev);
    size_t len = 0;
    char *line = gw_buf_take(&b, &len);
    if (gw_journal_submit(ev->j, line, len) < 0)
        atomic_fetch_add_explicit(&ev->refused, 1, memory_order_relaxed);
}

/* ---- detectors ---- */

static stripe *stripe_of(table *t, uint64_t h)
{
    return &t->s[(h >> 60) % NSTRIPES];
}

/* Counting detector on <key>; 1 when the subject fires now (threshold
 * reached, silent period over), with the count in <*count>. */
static int count_fire(gw_events *ev, table *t, const char *key, uint32_t *count)
{
    uint64_t h = gw_fnv1a64_str(key);
    stripe *s = stripe_of(t, h);
    int fire = 0;
    pthread_mutex_lock(&s->mu);
    uint64_t now = ev_now(ev);
    ent *e = lookup(t, s, key, h);
    if (e != NULL) {
        uint32_t n = count_hit(t, s, e, now);
        if (n >= t->ring && now >= e->next_ok) {
            e->next_ok = now + t->window_ms;
            fire = 1;
            *count = n;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return fire;
}

/* Once-per-period detector: 1 when <key> was not reported in the last
 * <period_ms>. */
static int once_fire(gw_events *ev, table *t, const char *key, uint64_t period_ms)
{
    uint64_t h = gw_fnv1a64_str(key);
    stripe *s = stripe_of(t, h);
    int fire = 0;
    pthread_mutex_lock(&s->mu);
    uint64_t now = ev_now(ev);
    ent *e = lookup(t, s, key, h);
    if (e != NULL && now >= e->next_ok) {
        e->next_ok = now + period_ms;
        fire = 1;
    }
    pthread_mutex_unlock(&s->mu);
    return fire;
}

static void auth_failure(gw_events *ev, const char *what, const char *value, const char *reason,
                         const char *client_ip, const char *cert, const char *subject)
{
    char key[KEY_MAX];
    uint32_t n = 0;
    snprintf(key, sizeof(key), "%s:%s", what, value);
    if (!count_fire(ev, &ev->t[TB_AUTH], key, &n))
        return;
    int fail = 0;
    json_t *o = new_event(GW_EV_AUTH_FAILURES, GW_SEV_HIGH, &fail);
    if (o != NULL) {
        put_str(o, "subject", what, &fail);
        put_str(o, "client_ip", client_ip, &fail);
        put_str(o, "cert_sha256", cert, &fail);
        put_str(o, "cert_subject", subject, &fail);
        put_int(o, "failures", n, &fail);
        put_int(o, "threshold", ev->auth_n, &fail);
        put_int(o, "window_s", (long long)(ev->auth_w / 1000), &fail);
        put_str(o, "last_reason", reason, &fail);
    }
    emit(ev, GW_EV_AUTH_FAILURES, GW_SEV_HIGH, o, fail);
}

/* One authentication failure: counted for the IP and for the certificate. */
static void auth_failed(gw_events *ev, const char *ip, const char *cert, const char *subject,
                        const char *reason)
{
    if (ip != NULL && ip[0])
        auth_failure(ev, "ip", ip, reason, ip, cert, subject);
    if (cert != NULL && cert[0])
        auth_failure(ev, "cert", cert, reason, ip, cert, subject);
}

static void cert_unknown(gw_events *ev, const gw_event_request *r)
{
    if (r->cert_sha256 == NULL || !once_fire(ev, &ev->t[TB_UNKNOWN], r->cert_sha256, HOUR_MS))
        return;
    int fail = 0;
    json_t *o = new_event(GW_EV_CERT_UNKNOWN, GW_SEV_MEDIUM, &fail);
    if (o != NULL) {
        put_str(o, "cert_sha256", r->cert_sha256, &fail);
        put_str(o, "cert_subject", r->cert_subject, &fail);
        put_str(o, "client_ip", r->client_ip, &fail);
        put_str(o, "reason", r->reason, &fail);
    }
    emit(ev, GW_EV_CERT_UNKNOWN, GW_SEV_MEDIUM, o, fail);
}

static void enumeration(gw_events *ev, const gw_event_request *r)
{
    table *t = &ev->t[TB_ENUM];
    uint64_t h = gw_fnv1a64_str(r->consumer);
    stripe *s = stripe_of(t, h);
    uint32_t n = 0;
    int fire = 0;
    pthread_mutex_lock(&s->mu);
    uint64_t now = ev_now(ev);
    ent *e = lookup(t, s, r->consumer, h);
    if (e != NULL) {
        n = distinct_hit(t, s, e, gw_fnv1a64_str(r->siren), now);
        if (n >= t->ring && now >= e->next_ok) {
            e->next_ok = now + t->window_ms;
            fire = 1;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (!fire)
        return;
    int fail = 0;
    json_t *o = new_event(GW_EV_SIREN_ENUMERATION, GW_SEV_HIGH, &fail);
    if (o != NULL) {
        put_str(o, "consumer", r->consumer, &fail);
        put_str(o, "habilitation", r->habilitation, &fail);
        put_str(o, "contact", r->contact, &fail);
        put_str(o, "client_ip", r->client_ip, &fail);
        put_str(o, "cert_sha256", r->cert_sha256, &fail);
        put_int(o, "distinct_sirens", n, &fail);
        put_int(o, "threshold", ev->enum_n, &fail);
        put_int(o, "window_s", (long long)(ev->enum_w / 1000), &fail);
        put_str(o, "last_siren", r->siren, &fail);
    }
    emit(ev, GW_EV_SIREN_ENUMERATION, GW_SEV_HIGH, o, fail);
}

static void quota_storm(gw_events *ev, const gw_event_request *r)
{
    uint32_t n = 0;
    if (!count_fire(ev, &ev->t[TB_STORM], r->habilitation, &n))
        return;
    int fail = 0;
    json_t *o = new_event(GW_EV_QUOTA_STORM, GW_SEV_MEDIUM, &fail);
    if (o != NULL) {
        put_str(o, "habilitation", r->habilitation, &fail);
        put_str(o, "contact", r->contact, &fail);
        put_str(o, "consumer", r->consumer, &fail);
        put_str(o, "client_ip", r->client_ip, &fail);
        put_int(o, "refusals", n, &fail);
        put_int(o, "threshold", ev->storm_n, &fail);
        put_int(o, "window_s", (long long)(ev->storm_w / 1000), &fail);
    }
    emit(ev, GW_EV_QUOTA_STORM, GW_SEV_MEDIUM, o, fail);
}

static void maintenance(gw_events *ev, const gw_event_request *r)
{
    char key[KEY_MAX];
    if (r->consumer != NULL)
        snprintf(key, sizeof(key), "consumer:%s", r->consumer);
    else if (r->cert_sha256 != NULL)
        snprintf(key, sizeof(key), "cert:%s", r->cert_sha256);
    else if (r->client_ip != NULL)
        snprintf(key, sizeof(key), "ip:%s", r->client_ip);
    else
        return;
    table *t = &ev->t[TB_MAINT];
    uint64_t h = gw_fnv1a64_str(key);
    stripe *s = stripe_of(t, h);
    int fire = 0;
    pthread_mutex_lock(&s->mu);
    ent *e = lookup(t, s, key, h);
    if (e != NULL && e->mark != r->maintenance_until) {
        e->mark = r->maintenance_until;
        fire = 1;
    }
    pthread_mutex_unlock(&s->mu);
    if (!fire)
        return;
    char until[32];
    iso_of(r->maintenance_until, until);
    int fail = 0;
    json_t *o = new_event(GW_EV_MAINTENANCE_ACCESS, GW_SEV_LOW, &fail);
    if (o != NULL) {
        put_str(o, "consumer", r->consumer, &fail);
        put_str(o, "habilitation", r->habilitation, &fail);
        put_str(o, "contact", r->contact, &fail);
        put_str(o, "client_ip", r->client_ip, &fail);
        put_str(o, "cert_sha256", r->cert_sha256, &fail);
        put_str(o, "slot_end", until, &fail);
    }
    emit(ev, GW_EV_MAINTENANCE_ACCESS, GW_SEV_LOW, o, fail);
}

/*
 * Expiry ahead of time, one mechanism for certificates and habilitations:
 * <subject> expires in <left> seconds; <milestones> are day counts in
 * decreasing order. Returns the smallest milestone that <left> is below
 * when it has not been reported for <subject> within <repeat_ms> (so once
 * per milestone and subject for a long <repeat_ms>, daily for a day), else
 * 0. Certificates: one milestone, cert_expiry_days, daily. Habilitations:
 * 90, 30 and 7 days (the annex's three months ahead), once each.
 */
static unsigned expiry_due(gw_events *ev, table *t, const char *subject, long long left,
                           const unsigned *milestones, size_t n, uint64_t repeat_ms)
{
    unsigned m = 0;
    if (left <= 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (left < (long long)milestones[i] * 86400)
            m = milestones[i];
    if (m == 0)
        return 0;
    char key[KEY_MAX];
    snprintf(key, sizeof(key), "%s#%u", subject, m);
    return once_fire(ev, t, key, repeat_ms) ? m : 0;
}

static const unsigned hab_milestones[] = {90, 30, 7};
#define HAB_REPEAT_MS (400ull * DAY_MS) /* once per milestone: longer than any of them */

static void habilitation_expiring(gw_events *ev, const gw_event_request *r)
{
    int y = r->valid_until / 10000, mo = r->valid_until / 100 % 100, d = r->valid_until % 100;
    /* valid through its last day: it expires at the next midnight (UTC) */
    long long end = (gw_days_from_civil(y, (unsigned)mo, (unsigned)d) + 1) * 86400LL;
    long long left = end - ev_wall(ev);
    unsigned m = expiry_due(ev, &ev->t[TB_EXPIRING], r->habilitation, left, hab_milestones,
                            sizeof(hab_milestones) / sizeof(hab_milestones[0]), HAB_REPEAT_MS);
    if (m == 0)
        return;
    gw_event_severity sev = m <= EXPIRY_HIGH_DAYS ? GW_SEV_HIGH : GW_SEV_MEDIUM;
    char until[32];
    snprintf(until, sizeof(until), "%04d-%02d-%02d", y, mo, d);
    int fail = 0;
    json_t *o = new_event(GW_EV_HABILITATION_EXPIRING, sev, &fail);
    if (o != NULL) {
        put_str(o, "habilitation", r->habilitation, &fail);
        put_str(o, "contact", r->contact, &fail);
        put_str(o, "consumer", r->consumer, &fail);
        put_str(o, "valid_until", until, &fail);
        put_int(o, "days_left", left / 86400, &fail);
        put_int(o, "threshold_days", m, &fail);
    }
    emit(ev, GW_EV_HABILITATION_EXPIRING, sev, o, fail);
}

void gw_events_request(gw_events *ev, const gw_event_request *r)
{
    if (ev == NULL || r == NULL)
        return;
    if (r->auth_failure)
        auth_failed(ev, r->client_ip, r->cert_sha256, r->cert_subject, r->reason);
    if (r->cert_unknown)
        cert_unknown(ev, r);
    if (r->consumer != NULL && r->siren != NULL && r->siren[0])
        enumeration(ev, r);
    if (r->throttled && r->habilitation != NULL)
        quota_storm(ev, r);
    if (r->maintenance_until > 0)
        maintenance(ev, r);
    if (r->habilitation != NULL && r->valid_until > 0)
        habilitation_expiring(ev, r);
}

void gw_events_handshake(gw_events *ev, const gw_event_handshake *hs)
{
    if (ev == NULL || hs == NULL)
        return;
    if (hs->refused != NULL) {
        auth_failed(ev, hs->client_ip, hs->cert_sha256, hs->cert_subject, hs->refused);
        return;
    }
    if (ev->expiry_days == 0 || hs->cert_sha256 == NULL || hs->not_after <= 0)
        return;
    long long now = ev_wall(ev);
    long long left = hs->not_after - now;
    if (expiry_due(ev, &ev->t[TB_EXPIRING], hs->cert_sha256, left, &ev->expiry_days, 1, DAY_MS) ==
        0)
        return;
    long long days = left / 86400;
    gw_event_severity sev = days < EXPIRY_HIGH_DAYS ? GW_SEV_HIGH : GW_SEV_MEDIUM;
    char na[32];
    iso_of(hs->not_after, na);
    int fail = 0;
    json_t *o = new_event(GW_EV_CERT_EXPIRING, sev, &fail);
    if (o != NULL) {
        put_str(o, "cert_sha256", hs->cert_sha256, &fail);
        put_str(o, "cert_subject", hs->cert_subject, &fail);
        put_str(o, "client_ip", hs->client_ip, &fail);
        put_str(o, "not_after", na, &fail);
        put_int(o, "days_left", days, &fail);
        put_int(o, "threshold_days", ev->expiry_days, &fail);
    }
    emit(ev, GW_EV_CERT_EXPIRING, sev, o, fail);
}

void gw_events_admin(gw_events *ev, gw_event_type type, const gw_event_admin *a)
{
    gw_event_severity sev;
    switch (type) {
    case GW_EV_ADMIN_RELOAD:
    case GW_EV_ADMIN_RESUME:
    case GW_EV_ADMIN_AUTH_FAILED:
        sev = GW_SEV_MEDIUM;
        break;
    case GW_EV_ADMIN_RELOAD_REFUSED:
    case GW_EV_ADMIN_SUSPEND:
    case GW_EV_ADMIN_AUTH_BLOCKED:
        sev = GW_SEV_HIGH;
        break;
    default:
        return;
    }
    if (ev == NULL || a == NULL)
        return;
    int fail = 0;
    json_t *o = new_event(type, sev, &fail);
    if (o != NULL) {
        put_str(o, "by", a->by, &fail);
        put_str(o, "client_ip", a->client_ip, &fail);
        put_str(o, "consumer", a->consumer, &fail);
        put_str(o, "habilitation", a->habilitation, &fail);
        put_str(o, "contact", a->contact, &fail);
        if (type == GW_EV_ADMIN_RELOAD)
            put_int(o, "habilitations", a->habilitations, &fail);
        if (type == GW_EV_ADMIN_RELOAD_REFUSED)
            put_int(o, "errors", a->errors, &fail);
        if (a->error != NULL) {
            char cut[512];
            snprintf(cut, sizeof(cut), "%s", a->error);
            put_str(o, "error", cut, &fail);
        }
        if (type == GW_EV_ADMIN_SUSPEND || type == GW_EV_ADMIN_RESUME)
            put(o, "persisted", json_boolean(a->persisted > 0), &fail);
        if (type == GW_EV_ADMIN_AUTH_FAILED || type == GW_EV_ADMIN_AUTH_BLOCKED) {
            /* the request line comes from the caller: bounded here */
            char cut[257];
            put_str(o, "method", a->method, &fail);
            if (a->path != NULL) {
                snprintf(cut, sizeof(cut), "%s", a->path);
                put_str(o, "path", cut, &fail);
            }
            put_str(o, "reason", a->reason, &fail);
            put_int(o, "failures", a->failures, &fail);
            if (type == GW_EV_ADMIN_AUTH_BLOCKED)
                put_int(o, "blocked_s", a->blocked_s, &fail);
        }
    }
    emit(ev, type, sev, o, fail);
}

void gw_events_datapass(gw_events *ev, gw_event_type type, const gw_event_datapass *d)
{
    if (ev == NULL || d == NULL || (type != GW_EV_DATAPASS_WEBHOOK && type != GW_EV_DATAPASS_SYNC))
        return;
    gw_event_severity sev = d->high ? GW_SEV_HIGH : GW_SEV_MEDIUM;
    int fail = 0;
    char cut[512];
    json_t *o = new_event(type, sev, &fail);
    if (o != NULL) {
        put_str(o, "outcome", d->outcome, &fail);
        put_str(o, "datapass_event", d->event, &fail);
        put_str(o, "event_id", d->event_id, &fail);
        put_str(o, "habilitation", d->habilitation, &fail);
        put_str(o, "environment", d->environment, &fail);
        put_str(o, "client_ip", d->client_ip, &fail);
        put_str(o, "consumer", d->consumer, &fail);
        put_str(o, "contact", d->contact, &fail);
        put_str(o, "file", d->file, &fail);
        if (d->detail != NULL) {
            snprintf(cut, sizeof(cut), "%s", d->detail);
            put_str(o, "detail", cut, &fail);
        }
        if (type == GW_EV_DATAPASS_SYNC) {
            put_int(o, "changed", d->changed, &fail);
            put_int(o, "differences", d->differences, &fail);
        }
    }
    emit(ev, type, sev, o, fail);
}

void gw_events_policy_rejected(gw_events *ev, const char *by, const char *file, const char *error,
                               int kept)
{
    if (ev == NULL)
        return;
    int fail = 0;
    json_t *o = new_event(GW_EV_POLICY_REJECTED, GW_SEV_HIGH, &fail);
    if (o != NULL) {
        char cut[512];
        put_str(o, "by", by, &fail);
        put_str(o, "file", file, &fail);
        snprintf(cut, sizeof(cut), "%s", error != NULL ? error : "");
        put_str(o, "error", cut, &fail);
        put(o, "kept_previous", json_boolean(kept), &fail);
    }
    emit(ev, GW_EV_POLICY_REJECTED, GW_SEV_HIGH, o, fail);
}

void gw_events_integrity(gw_events *ev, gw_event_type type, json_t *fields)
{
    gw_event_severity sev = type == GW_EV_JOURNAL_BROKEN ? GW_SEV_CRITICAL : GW_SEV_HIGH;
    if (ev == NULL || type < GW_EV_JOURNAL_BROKEN || type > GW_EV_ADMIN_HOLD_LIFTED) {
        json_decref(fields);
        return;
    }
    int fail = 0;
    json_t *o = new_event(type, sev, &fail);
    if (o != NULL && fields != NULL && json_object_update(o, fields) != 0)
        fail = 1;
    json_decref(fields);
    emit(ev, type, sev, o, fail);
}

/* ------------------------------------------------------------------------ */
/* Alert hook                                                               */
/* ------------------------------------------------------------------------ */

/* Called by emit() from any thread: rate limit, then the bounded queue. */
static void alert_enqueue(gw_events *ev, const char *json, size_t len, gw_event_type type,
                          gw_event_severity sev)
{
    pthread_mutex_lock(&ev->amu);
    uint64_t now = ev_now(ev);
    while (ev->rl_n > 0 && now - ev->rl[ev->rl_head] >= 60000) {
        ev->rl_head = (ev->rl_head + 1) % ev->per_minute;
        ev->rl_n--;
    }
    if (ev->closing || ev->qn == ALERT_QUEUE) {
        ev->dropped++;
    } else if (ev->rl_n == ev->per_minute) {
        ev->rate_limited++;
    } else {
        char *copy = strndup(json, len);
        if (copy == NULL) {
            ev->dropped++;
        } else {
            ev->rl[(ev->rl_head + ev->rl_n) % ev->per_minute] = now;
            ev->rl_n++;
            ev->q[(ev->qhead + ev->qn) % ALERT_QUEUE] = (struct alert){copy, type, sev};
            ev->qn++;
        }
    }
    pthread_cond_signal(&ev->acv);
    pthread_mutex_unlock(&ev->amu);
}

typedef struct alert_state {
    struct child ch[ALERT_CHILDREN];
    size_t n;
} alert_state;

static void spawn_alert(gw_events *ev, alert_state *as, struct alert *a)
{
    char *env_event = NULL;
    if (asprintf(&env_event, "OPALE_EVENT=%s", a->json) < 0) {
        atomic_fetch_add(&ev->failed, 1);
        fprintf(stderr, "opale-gateway: events: alert hook %s: out of memory (event %s)\n", ev->cmd,
                type_names[a->type]);
        return;
    }
    char *argv[] = {ev->cmd, (char *)type_names[a->type], (char *)sev_names[a->sev], NULL};
    char *envp[] = {env_event, ev->path_env, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    /* ignored dispositions survive exec: give the command the defaults */
    sigaddset(&dfl, SIGPIPE);
    sigaddset(&dfl, SIGCHLD);
    sigaddset(&dfl, SIGHUP);
    sigaddset(&dfl, SIGINT);
    sigaddset(&dfl, SIGTERM);
    sigaddset(&dfl, SIGUSR1);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, 2, 1); /* its output goes to our stderr */
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    posix_spawnattr_init(&at);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &dfl);
    posix_spawnattr_setpgroup(&at, 0); /* its own group: a timeout kills it all */
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETPGROUP);
    pid_t pid = -1;
    /* counted as running before it can run: a reader that sees what the
     * hook did never sees it neither running nor run */
    atomic_fetch_add(&ev->running, 1);
    int rc = posix_spawn(&pid, ev->cmd, &fa, &at, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    free(env_event);
    if (rc != 0) {
        atomic_fetch_sub(&ev->running, 1);
        atomic_fetch_add(&ev->failed, 1);
        fprintf(stderr, "opale-gateway: events: alert hook %s: cannot run: %s (event %s)\n",
                ev->cmd, strerror(rc), type_names[a->type]);
        return;
    }
    atomic_fetch_add(&ev->run, 1);
    as->ch[as->n++] = (struct child){pid, mono_ms(), a->type, 0};
}

/* Reap the children that ended; kill those past the timeout. */
static void reap(gw_events *ev, alert_state *as)
{
    uint64_t now = mono_ms();
    for (size_t i = 0; i < as->n;) {
        struct child *c = &as->ch[i];
        int st = 0;
        pid_t r = waitpid(c->pid, &st, WNOHANG);
        if (r == 0) {
            if (!c->killed && now - c->start >= ev->timeout_ms) {
                kill(-c->pid, SIGKILL);
                kill(c->pid, SIGKILL);
                c->killed = 1;
                atomic_fetch_add(&ev->failed, 1);
                fprintf(stderr,
                        "opale-gateway: events: alert hook %s did not finish within %u ms: "
                        "killed (event %s)\n",
                        ev->cmd, ev->timeout_ms, type_names[c->type]);
            }
            i++;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r > 0 && !c->killed) {
            if (WIFEXITED(st) && WEXITSTATUS(st) != 0) {
                atomic_fetch_add(&ev->failed, 1);
                fprintf(stderr,
                        "opale-gateway: events: alert hook %s exited with status %d (event "
                        "%s)\n",
                        ev->cmd, WEXITSTATUS(st), type_names[c->type]);
            } else if (WIFSIGNALED(st)) {
                atomic_fetch_add(&ev->failed, 1);
                fprintf(stderr,
                        "opale-gateway: events: alert hook %s killed by signal %d (event %s)\n",
                        ev->cmd, WTERMSIG(st), type_names[c->type]);
            }
        }
        /* r > 0: reaped; r < 0 (ECHILD: SIGCHLD ignored by someone): gone */
        atomic_fetch_sub(&ev->running, 1);
        as->ch[i] = as->ch[--as->n];
    }
}

static void report_suppressed(gw_events *ev, int final)
{
    pthread_mutex_lock(&ev->amu);
    uint64_t rl = ev->rate_limited, dr = ev->dropped;
    pthread_mutex_unlock(&ev->amu);
    if (rl == ev->reported_rl && dr == ev->reported_drop)
        return;
    uint64_t now = mono_ms();
    if (!final && ev->last_report != 0 && now - ev->last_report < 60000)
        return;
    fprintf(stderr,
            "opale-gateway: events: alert hook %s: %llu alerts not run so far (rate limit %u "
            "per minute %llu, queue full or closing %llu)\n",
            ev->cmd, (unsigned long long)(rl + dr), ev->per_minute, (unsigned long long)rl,
            (unsigned long long)dr);
    ev->reported_rl = rl;
    ev->reported_drop = dr;
    ev->last_report = now;
}

static void deadline_in(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static int closing_full(gw_events *ev, const alert_state *as)
{
    pthread_mutex_lock(&ev->amu);
    int r = ev->closing && as->n >= ALERT_CHILDREN;
    pthread_mutex_unlock(&ev->amu);
    return r;
}

static void *alert_main(void *arg)
{
    gw_events *ev = arg;
    alert_state as;
    memset(&as, 0, sizeof(as));
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    pthread_setname_np(pthread_self(), "gw-alerts");
    for (;;) {
        struct alert a = {0};
        int done = 0;
        pthread_mutex_lock(&ev->amu);
        if (!ev->closing && !(ev->qn > 0 && as.n < ALERT_CHILDREN)) {
            int pending = ev->rate_limited != ev->reported_rl || ev->dropped != ev->reported_drop;
            if (as.n > 0 || pending) {
                struct timespec ts;
                deadline_in(&ts, as.n > 0 ? 50 : 1000);
                pthread_cond_timedwait(&ev->acv, &ev->amu, &ts);
            } else {
                pthread_cond_wait(&ev->acv, &ev->amu);
            }
        }
        if (ev->qn > 0 && as.n < ALERT_CHILDREN) {
            a = ev->q[ev->qhead];
            ev->qhead = (ev->qhead + 1) % ALERT_QUEUE;
            ev->qn--;
        }
        done = ev->closing && ev->qn == 0;
        pthread_mutex_unlock(&ev->amu);
        if (a.json != NULL) {
            spawn_alert(ev, &as, &a);
            free(a.json);
        }
        reap(ev, &as);
        report_suppressed(ev, 0);
        if (done && a.json == NULL)
            break;
        if (!done && a.json == NULL && closing_full(ev, &as)) {
            /* closing with every child slot taken: wait for one to end */
            struct timespec ts = {0, 10000000L};
            nanosleep(&ts, NULL);
        }
    }
    /* Closing: give running commands a little time, then kill and reap. */
    uint64_t until =
        mono_ms() + (ev->timeout_ms < ALERT_CLOSE_WAIT_MS ? ev->timeout_ms : ALERT_CLOSE_WAIT_MS);
    while (as.n > 0 && mono_ms() < until) {
        struct timespec ts = {0, 10000000L};
        nanosleep(&ts, NULL);
        reap(ev, &as);
    }
    for (size_t i = 0; i < as.n; i++) {
        kill(-as.ch[i].pid, SIGKILL);
        kill(as.ch[i].pid, SIGKILL);
        if (!as.ch[i].killed) {
            atomic_fetch_add(&ev->failed, 1);
            fprintf(stderr,
                    "opale-gateway: events: alert hook %s still running at shutdown: killed "
                    "(event %s)\n",
                    ev->cmd, type_names[as.ch[i].type]);
        }
        while (waitpid(as.ch[i].pid, NULL, 0) < 0 && errno == EINTR)
            ;
        atomic_fetch_sub(&ev->running, 1);
    }
    as.n = 0;
    report_suppressed(ev, 1);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Open, close, stats                                                       */
/* ------------------------------------------------------------------------ */

static unsigned dflt(unsigned v, unsigned d)
{
    return v != 0 ? v : d;
}

gw_events *gw_events_open(const gw_events_opts *o, char **err)
{
    if (o == NULL || o->journal.path == NULL || o->journal.raw) {
        if (err)
            *err = strdup("the events stream needs a path and a chained journal");
        return NULL;
    }
    gw_events *ev = calloc(1, sizeof(*ev));
    if (ev == NULL)
        goto oom;
    ev->auth_n = dflt(o->auth_threshold, GW_EVENTS_AUTH_THRESHOLD);
    ev->auth_w = 1000ull * dflt(o->auth_window_s, GW_EVENTS_AUTH_WINDOW_S);
    ev->enum_n = dflt(o->enum_distinct, GW_EVENTS_ENUM_DISTINCT);
    ev->enum_w = 1000ull * dflt(o->enum_window_s, GW_EVENTS_ENUM_WINDOW_S);
    ev->storm_n = dflt(o->storm_refusals, GW_EVENTS_STORM_REFUSALS);
    ev->storm_w = 1000ull * dflt(o->storm_window_s, GW_EVENTS_STORM_WINDOW_S);
    ev->expiry_days =
        o->cert_expiry_off ? 0 : dflt(o->cert_expiry_days, GW_EVENTS_CERT_EXPIRY_DAYS);
    size_t subj = o->max_subjects ? o->max_subjects : GW_EVENTS_MAX_SUBJECTS;
    size_t slots = o->max_slots ? o->max_slots : GW_EVENTS_MAX_SLOTS;
    if (table_init(&ev->t[TB_AUTH], T_COUNT, ev->auth_n, ev->auth_w, subj, slots) < 0 ||
        table_init(&ev->t[TB_UNKNOWN], T_ONCE, 0, 0, subj, slots) < 0 ||
        table_init(&ev->t[TB_EXPIRING], T_ONCE, 0, 0, subj, slots) < 0 ||
        table_init(&ev->t[TB_ENUM], T_DISTINCT, ev->enum_n, ev->enum_w, subj, slots) < 0 ||
        table_init(&ev->t[TB_STORM], T_COUNT, ev->storm_n, ev->storm_w, subj, slots) < 0 ||
        table_init(&ev->t[TB_MAINT], T_SLOT, 0, 0, subj, slots) < 0)
        goto oom;
    ev->tables_ok = 1;
    pthread_mutex_init(&ev->amu, NULL);
    pthread_cond_init(&ev->acv, NULL);
    if (o->alert_command != NULL && o->alert_command[0]) {
        ev->cmd = strdup(o->alert_command);
        const char *p = getenv("PATH");
        if (asprintf(&ev->path_env, "PATH=%s", p && p[0] ? p : "/usr/local/bin:/usr/bin:/bin") < 0)
            ev->path_env = NULL;
        ev->min_sev = o->alert_min_severity;
        ev->per_minute = dflt(o->alert_max_per_minute, GW_EVENTS_ALERT_PER_MINUTE);
        ev->timeout_ms = dflt(o->alert_timeout_ms, GW_EVENTS_ALERT_TIMEOUT_MS);
        ev->rl = calloc(ev->per_minute, sizeof(*ev->rl));
        if (ev->cmd == NULL || ev->path_env == NULL || ev->rl == NULL)
            goto oom;
    }
    ev->j = gw_journal_open_opts(&o->journal, err);
    if (ev->j == NULL)
        goto fail;
    if (ev->cmd != NULL) {
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        int rc = pthread_create(&ev->thread, NULL, alert_main, ev);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc != 0) {
            if (err)
                *err = strdup("cannot start the alert thread");
            goto fail;
        }
        ev->started = 1;
    }
    return ev;
oom:
    if (err)
        *err = strdup("out of memory");
fail:
    gw_events_close(ev);
    return NULL;
}

void gw_events_close(gw_events *ev)
{
    if (ev == NULL)
        return;
    if (ev->started) {
        pthread_mutex_lock(&ev->amu);
        ev->closing = 1;
        pthread_cond_signal(&ev->acv);
        pthread_mutex_unlock(&ev->amu);
        pthread_join(ev->thread, NULL);
        ev->started = 0;
    }
    for (size_t i = 0; i < ev->qn; i++)
        free(ev->q[(ev->qhead + i) % ALERT_QUEUE].json);
    if (ev->j != NULL)
        gw_journal_close(ev->j);
    if (ev->tables_ok) {
        for (int i = 0; i < TB__COUNT; i++)
            table_destroy(&ev->t[i]);
        pthread_mutex_destroy(&ev->amu);
        pthread_cond_destroy(&ev->acv);
    }
    free(ev->cmd);
    free(ev->path_env);
    free(ev->rl);
    free(ev);
}

void gw_events_reopen(gw_events *ev)
{
    if (ev != NULL)
        gw_journal_reopen(ev->j);
}

gw_journal *gw_events_journal(gw_events *ev)
{
    return ev != NULL ? ev->j : NULL;
}

void gw_events_get_stats(gw_events *ev, gw_events_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (ev == NULL)
        return;
    for (int i = 0; i < GW_EV__COUNT; i++)
        st->by_type[i] = atomic_load(&ev->by_type[i]);
    st->refused = atomic_load(&ev->refused);
    for (int i = 0; i < TB__COUNT; i++) {
        st->tracked += atomic_load(&ev->t[i].tracked);
        st->evicted += atomic_load(&ev->t[i].evicted);
    }
    st->alerts_run = atomic_load(&ev->run);
    st->alerts_failed = atomic_load(&ev->failed);
    st->alerts_running = atomic_load(&ev->running);
    if (ev->cmd != NULL) {
        pthread_mutex_lock(&ev->amu);
        st->alerts_rate_limited = ev->rate_limited;
        st->alerts_dropped = ev->dropped;
        pthread_mutex_unlock(&ev->amu);
    }
}
