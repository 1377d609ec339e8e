/*
 * Kill switch: the set of suspended client_ids. The admin listener changes
 * it rarely, under the write lock; the set is small, so a change rebuilds
 * the whole hash index, which keeps lookups simple (no tombstones).
 *
 * Requests read it without the lock: every change publishes an immutable
 * view (the client_ids in force with their "until", the environment cuts)
 * and bumps a generation counter. Each thread keeps a reference to the view
 * it last used (thread-local) and takes the current one, under a mutex,
 * only when the generation moved: per request, one load of a counter that
 * is written only on a change, and one hash lookup. The very next request
 * after a change sees it (the generation is bumped before the change
 * returns). A view is freed when the last thread holding it moves on, or
 * with the set.
 *
 * File: {"suspended": [{"client_id": "...", "since": "2026-11-27T22:00:00Z",
 * "why": "...", "reason": "...", "by": "...", "until": "..."}], "cuts":
 * [{"environment": "sandbox", "since": ..., "reason": ..., "by": ...,
 * "until": ...}]} ("reason", "by", "until" and "cuts" only when set),
 * rewritten whole on every change: temp file in the same
 * directory, fsync, rename over the old one, fsync of the directory. A crash
 * leaves either the old or the new file, never half of one.
 */
#include "policy/suspend.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "lib/file.h"
#include "lib/hash.h"
#include "lib/jsonv.h"
#include "lib/util.h"
#include "policy/values.h"

#define SUSP_MAX_FILE (4u << 20)
#define WHY_MAX 512 /* bytes of "why" kept */

typedef struct entry {
    char *client_id; /* for a cut: the environment's name; NULL: not cut */
    time_t since;
    char *why;
    char *reason; /* the operator's, NULL when none was given */
    char *by;     /* who, NULL when unknown */
    time_t until; /* 0: until lifted */
} entry;

#define NENV 2
static const char *const env_names[NENV] = {"sandbox", "production"};

/* What requests read: immutable once published. */
typedef struct view {
    struct view *next; /* every view of the set not yet freed (vmu) */
    size_t refs;       /* the set's (current) + threads' (vmu) */
    size_t mask;       /* slots: open addressing, id NULL = empty */
    struct vslot {
        const char *id;
        time_t until;
    } * slots;
    int cut[NENV];
    time_t cut_until[NENV];
    char ids[]; /* the client_ids, each NUL-terminated */
} view;

struct gw_suspensions {
    pthread_rwlock_t lock;   /* guards v, n, cap, idx, mask */
    pthread_mutex_t persist; /* one rewrite of the file at a time */
    char *path;
    entry *v; /* in suspension order */
    size_t n, cap;
    size_t *idx; /* open addressing: index into v + 1, 0 = empty */
    size_t mask;
    entry cut[NENV];       /* by environment; client_id NULL: not cut */
    atomic_llong next_due; /* the earliest "until" in force, 0: none */
    atomic_int timer;      /* 1: a timer sweeps, lookups do not */
    gw_suspension_expired_fn on_expired;
    void *on_expired_arg;
    unsigned long long inst; /* unique among the sets of the process */
    atomic_ullong gen;       /* bumped by each publication */
    pthread_mutex_t vmu;     /* guards cur, views, refs */
    view *cur;               /* NULL: none (out of memory), readers lock */
    view *views;
};

static size_t index_cap(size_t n);

/* ---- the views read by requests ---- */

/* Drop a reference; the view is freed at the last. Caller holds vmu. */
static void view_unref(gw_suspensions *s, view *v)
{
    if (v == NULL || --v->refs > 0)
        return;
    for (view **p = &s->views; *p != NULL; p = &(*p)->next)
        if (*p == v) {
            *p = v->next;
            break;
        }
    free(v->slots);
    free(v);
}

/* Build the view of the current set and make it the one requests read.
 * Caller holds the write lock. Out of memory: no view, requests take the
 * read lock until the next change (never a stale view). */
static void publish(gw_suspensions *s)
{
    size_t bytes = 0;
    for (size_t i = 0; i < s->n; i++)
        bytes += strlen(s->v[i].client_id) + 1;
    size_t cap = index_cap(s->n);
    view *v = calloc(1, sizeof(*v) + bytes);
    struct vslot *slots = calloc(cap, sizeof(*slots));
    if (v == NULL || slots == NULL) {
        free(v);
        free(slots);
        v = NULL;
    } else {
        v->slots = slots;
        v->mask = cap - 1;
        v->refs = 1;
        char *p = v->ids;
        for (size_t k = 0; k < s->n; k++) {
            size_t len = strlen(s->v[k].client_id) + 1;
            memcpy(p, s->v[k].client_id, len);
            size_t i = (size_t)gw_fnv1a64_str(p) & v->mask;
            while (slots[i].id != NULL)
                i = (i + 1) & v->mask;
            slots[i].id = p;
            slots[i].until = s->v[k].until;
            p += len;
        }
        for (int k = 0; k < NENV; k++) {
            v->cut[k] = s->cut[k].client_id != NULL;
            v->cut_until[k] = s->cut[k].until;
        }
    }
    pthread_mutex_lock(&s->vmu);
    if (v != NULL) {
        v->next = s->views;
        s->views = v;
    }
    view *old = s->cur;
    s->cur = v;
    view_unref(s, old);
    atomic_fetch_add_explicit(&s->gen, 1, memory_order_release);
    pthread_mutex_unlock(&s->vmu);
}

static atomic_ullong inst_next = 1;

/* This thread's view (of one set at a time). */
static _Thread_local struct {
    unsigned long long inst, gen;
    view *v;
} tl_view;

/* The current view for this thread, taken again only when the generation
 * moved; NULL when there is none (the caller takes the read lock). */
static const view *view_get(gw_suspensions *s)
{
    unsigned long long gen = atomic_load_explicit(&s->gen, memory_order_acquire);
    if (tl_view.inst == s->inst && tl_view.gen == gen)
        return tl_view.v;
    pthread_mutex_lock(&s->vmu);
    /* a view of another set is left alone: that set may be gone (it frees
     * its views itself) */
    if (tl_view.inst == s->inst)
        view_unref(s, tl_view.v);
    tl_view.v = s->cur;
    if (tl_view.v != NULL)
        tl_view.v->refs++;
    tl_view.inst = s->inst;
    tl_view.gen = atomic_load_explicit(&s->gen, memory_order_relaxed);
    pthread_mutex_unlock(&s->vmu);
    return tl_view.v;
}

/* The view's answer: 1 when the consumer (<k> < 0) or environment <k> is
 * suspended and in force at <now>. */
static int view_has(const view *v, const char *client_id, int k, time_t now)
{
    time_t until;
    if (k >= 0) {
        if (!v->cut[k])
            return 0;
        until = v->cut_until[k];
    } else {
        size_t i = (size_t)gw_fnv1a64_str(client_id) & v->mask;
        while (v->slots[i].id != NULL && strcmp(v->slots[i].id, client_id) != 0)
            i = (i + 1) & v->mask;
        if (v->slots[i].id == NULL)
            return 0;
        until = v->slots[i].until;
    }
    return until == 0 || now < until;
}

/* Position of <client_id> in v, or -1. Caller holds the lock. */
static long find(const gw_suspensions *s, const char *client_id)
{
    if (s->idx == NULL)
        return -1;
    size_t i = (size_t)gw_fnv1a64_str(client_id) & s->mask;
    while (s->idx[i] != 0) {
        const entry *e = &s->v[s->idx[i] - 1];
        if (strcmp(e->client_id, client_id) == 0)
            return (long)(s->idx[i] - 1);
        i = (i + 1) & s->mask;
    }
    return -1;
}

/* Rebuild the index for the n entries, at most half full. Caller holds the
 * write lock. -1 on allocation failure (the old index is kept). */
static size_t index_cap(size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    return cap;
}

/* Fill <idx> (<cap> zeroed slots, cap >= index_cap(n)) and install it. */
static void index_into(gw_suspensions *s, size_t *idx, size_t cap)
{
    for (size_t k = 0; k < s->n; k++) {
        size_t i = (size_t)gw_fnv1a64_str(s->v[k].client_id) & (cap - 1);
        while (idx[i] != 0)
            i = (i + 1) & (cap - 1);
        idx[i] = k + 1;
    }
    free(s->idx);
    s->idx = idx;
    s->mask = cap - 1;
}

static int reindex(gw_suspensions *s)
{
    size_t cap = index_cap(s->n);
    size_t *idx = calloc(cap, sizeof(*idx));
    if (idx == NULL)
        return -1;
    index_into(s, idx, cap);
    return 0;
}

static void entry_free(entry *e)
{
    free(e->client_id);
    free(e->why);
    free(e->reason);
    free(e->by);
    memset(e, 0, sizeof(*e));
}

/* After a change: the earliest "until" in force (0 when none), and the
 * view requests read. Caller holds the write lock. */
static void update_due(gw_suspensions *s)
{
    time_t due = 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].until != 0 && (due == 0 || s->v[i].until < due))
            due = s->v[i].until;
    for (int k = 0; k < NENV; k++)
        if (s->cut[k].client_id != NULL && s->cut[k].until != 0 &&
            (due == 0 || s->cut[k].until < due))
            due = s->cut[k].until;
    atomic_store(&s->next_due, (long long)due);
    publish(s);
}

static int env_index(const char *env)
{
    for (int k = 0; env != NULL && k < NENV; k++)
        if (strcmp(env, env_names[k]) == 0)
            return k;
    return -1;
}

/* <why> cut to WHY_MAX bytes on a UTF-8 boundary. */
static char *dup_why(const char *why)
{
    if (why == NULL)
        why = "";
    size_t n = strlen(why);
    if (n > WHY_MAX) {
        n = WHY_MAX;
        while (n > 0 && ((unsigned char)why[n] & 0xC0) == 0x80)
            n--;
    }
    return strndup(why, n);
}

/* Fill <e> (zeroed first); -1 on allocation failure with <e> left empty. */
static int entry_fill(entry *e, const char *client_id, time_t since, const char *why,
                      const char *reason, const char *by, time_t until)
{
    memset(e, 0, sizeof(*e));
    e->client_id = strdup(client_id);
    e->why = dup_why(why);
    e->reason = reason != NULL ? dup_why(reason) : NULL;
    e->by = by != NULL ? dup_why(by) : NULL;
    e->since = since;
    e->until = until;
    if (e->client_id == NULL || e->why == NULL || (reason != NULL && e->reason == NULL) ||
        (by != NULL && e->by == NULL)) {
        entry_free(e);
        return -1;
    }
    return 0;
}

static int push(gw_suspensions *s, const char *client_id, time_t since, const char *why,
                const char *reason, const char *by, time_t until)
{
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 16;
        entry *nv = realloc(s->v, ncap * sizeof(*nv));
        if (nv == NULL)
            return -1;
        s->v = nv;
        s->cap = ncap;
    }
    if (entry_fill(&s->v[s->n], client_id, since, why, reason, by, until) < 0)
        return -1;
    s->n++;
    return 0;
}

/* "2026-11-27T22:00:00Z" <-> time_t (UTC). */
static int parse_since(const char *str, time_t *out)
{
    char day[11];
    int ymd;
    if (strlen(str) != 20 || str[10] != 'T' || str[13] != ':' || str[16] != ':' || str[19] != 'Z')
        return -1;
    memcpy(day, str, 10);
    day[10] = '\0';
    if (gw_date_parse(day, &ymd) != 0)
        return -1;
    int hms[3];
    for (int k = 0; k < 3; k++) {
        const char *q = str + 11 + 3 * k;
        if (q[0] < '0' || q[0] > '9' || q[1] < '0' || q[1] > '9')
            return -1;
        hms[k] = (q[0] - '0') * 10 + (q[1] - '0');
    }
    if (hms[0] > 23 || hms[1] > 59 || hms[2] > 59)
        return -1;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = ymd / 10000 - 1900;
    tm.tm_mon = (ymd / 100) % 100 - 1;
    tm.tm_mday = ymd % 100;
    tm.tm_hour = hms[0];
    tm.tm_min = hms[1];
    tm.tm_sec = hms[2];
    *out = timegm(&tm);
    return 0;
}

int gw_rfc3339_parse(const char *str, time_t *out)
{
    char base[21];
    size_t n = str != NULL ? strlen(str) : 0;
    if (n < 20 || n > 64)
        return -1;
    memcpy(base, str, 19);
    base[19] = 'Z';
    base[20] = '\0';
    if (base[4] != '-' || base[7] != '-' || (str[10] != 'T' && str[10] != 't'))
        return -1;
    base[10] = 'T';
    time_t t;
    if (parse_since(base, &t) < 0)
        return -1;
    const char *q = str + 19;
    if (*q == '.') {
        q++;
        if (*q < '0' || *q > '9')
            return -1;
        while (*q >= '0' && *q <= '9')
            q++;
    }
    if ((q[0] == 'Z' || q[0] == 'z') && q[1] == '\0') {
        *out = t;
        return 0;
    }
    if ((q[0] != '+' && q[0] != '-') || strlen(q) != 6 || q[3] != ':')
        return -1;
    for (int k = 1; k < 6; k++)
        if (k != 3 && (q[k] < '0' || q[k] > '9'))
            return -1;
    int hh = (q[1] - '0') * 10 + (q[2] - '0'), mm = (q[4] - '0') * 10 + (q[5] - '0');
    if (hh > 23 || mm > 59)
        return -1;
    long off = hh * 3600L + mm * 60L;
    *out = q[0] == '+' ? t - off : t + off;
    return 0;
}

static void fmt_since(time_t t, char out[32])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- loading ---- */

static char *msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *msg(const char *fmt, ...)
{
    char *m = NULL;
    va_list ap;
    va_start(ap, fmt);
    int r = vasprintf(&m, fmt, ap);
    va_end(ap);
    return r < 0 ? NULL : m;
}

/* The date-time <key> of the entry at <pe> into <*t> (left as it is when
 * an optional one is absent); 0, or -1 with the error reported. */
static int load_time(gw_jsonv *v, json_t *o, const char *pe, const char *key, int flags, time_t *t)
{
    char pk[GW_JSONV_PATH];
    const char *s = NULL;
    int st = gw_jsonv_str(v, o, pe, key, flags, &s);
    if (st == GW_JSONV_BAD || (flags == GW_JSONV_REQUIRED && st != GW_JSONV_SET))
        return -1;
    if (s != NULL && parse_since(s, t) < 0) {
        gw_jsonv_path_key(pk, pe, key);
        gw_jsonv_err(v, pk, "must be a UTC date-time YYYY-MM-DDThh:mm:ssZ");
        return -1;
    }
    return 0;
}

/* What a suspension and a cut both record: "since" (required), then the
 * optional "why", "reason", "by" and "until", checked in that order. */
typedef struct entry_fields {
    time_t since, until;
    const char *why, *reason, *by;
} entry_fields;

/* The entry_fields of the entry at <pe>; 0, or -1 with the error. */
static int load_fields(gw_jsonv *v, json_t *o, const char *pe, entry_fields *f)
{
    *f = (entry_fields){.why = ""};
    if (load_time(v, o, pe, "since", GW_JSONV_REQUIRED, &f->since) < 0 ||
        gw_jsonv_str(v, o, pe, "why", GW_JSONV_OPTIONAL, &f->why) == GW_JSONV_BAD ||
        gw_jsonv_str(v, o, pe, "reason", GW_JSONV_OPTIONAL, &f->reason) == GW_JSONV_BAD ||
        gw_jsonv_str(v, o, pe, "by", GW_JSONV_OPTIONAL, &f->by) == GW_JSONV_BAD ||
        load_time(v, o, pe, "until", GW_JSONV_OPTIONAL, &f->until) < 0)
        return -1;
    return 0;
}

/* Fill <s> from the parsed file. Stops at the first problem, reported
 * through <v>; returns 0 or -1. */
static int load_json(gw_suspensions *s, json_t *root, gw_jsonv *v)
{
    static const char *const keys[] = {"suspended", "cuts", NULL};
    static const char *const ekeys[] = {"client_id", "since", "why", "reason", "by", "until", NULL};
    static const char *const ckeys[] = {"environment", "since", "why", "reason",
                                        "by",          "until", NULL};
    char pe[GW_JSONV_PATH], pk[GW_JSONV_PATH];

    if (!json_is_object(root)) {
        gw_jsonv_err(v, "$", "must be an object");
        return -1;
    }
    gw_jsonv_keys(v, root, "$", keys);
    if (v->nerrs > 0)
        return -1;
    json_t *a = gw_jsonv_member(v, root, "$", "suspended", GW_JSONV_REQUIRED);
    if (a == NULL)
        return -1;
    if (!json_is_array(a)) {
        gw_jsonv_err(v, "suspended", "must be an array");
        return -1;
    }
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *o = json_array_get(a, i);
        const char *client_id;
        gw_jsonv_path_idx(pe, "suspended", i);
        if (!json_is_object(o)) {
            gw_jsonv_err(v, pe, "must be an object");
            return -1;
        }
        gw_jsonv_keys(v, o, pe, ekeys);
        if (v->nerrs > 0 ||
            gw_jsonv_str(v, o, pe, "client_id", GW_JSONV_REQUIRED, &client_id) != GW_JSONV_SET)
            return -1;
        gw_jsonv_path_key(pk, pe, "client_id");
        if (!gw_client_id_valid(client_id)) {
            gw_jsonv_err(v, pk, "must match " GW_CLIENT_ID_RULE);
            return -1;
        }
        long j = find(s, client_id);
        if (j >= 0) {
            gw_jsonv_err(v, pk, "duplicate of suspended[%ld].client_id", j);
            return -1;
        }
        entry_fields f;
        if (load_fields(v, o, pe, &f) < 0)
            return -1;
        if (push(s, client_id, f.since, f.why, f.reason, f.by, f.until) < 0 || reindex(s) < 0) {
            gw_jsonv_err(v, "$", "out of memory");
            return -1;
        }
    }
    json_t *c = gw_jsonv_member(v, root, "$", "cuts", GW_JSONV_OPTIONAL);
    if (c == NULL)
        return v->nerrs > 0 ? -1 : 0;
    if (!json_is_array(c)) {
        gw_jsonv_err(v, "cuts", "must be an array");
        return -1;
    }
    for (size_t i = 0; i < json_array_size(c); i++) {
        json_t *o = json_array_get(c, i);
        const char *env;
        gw_jsonv_path_idx(pe, "cuts", i);
        if (!json_is_object(o)) {
            gw_jsonv_err(v, pe, "must be an object");
            return -1;
        }
        gw_jsonv_keys(v, o, pe, ckeys);
        if (v->nerrs > 0 ||
            gw_jsonv_str(v, o, pe, "environment", GW_JSONV_REQUIRED, &env) != GW_JSONV_SET)
            return -1;
        int k = env_index(env);
        gw_jsonv_path_key(pk, pe, "environment");
        if (k < 0 || s->cut[k].client_id != NULL) {
            gw_jsonv_err(v, pk, k < 0 ? "must be \"sandbox\" or \"production\"" : "duplicate");
            return -1;
        }
        entry_fields f;
        if (load_fields(v, o, pe, &f) < 0)
            return -1;
        if (entry_fill(&s->cut[k], env, f.since, f.why, f.reason, f.by, f.until) < 0) {
            gw_jsonv_err(v, "$", "out of memory");
            return -1;
        }
    }
    return 0;
}

static void free_entries(gw_suspensions *s)
{
    for (size_t i = 0; i < s->n; i++)
        entry_free(&s->v[i]);
    for (int k = 0; k < NENV; k++)
        entry_free(&s->cut[k]);
    free(s->v);
    free(s->idx);
}

gw_suspensions *gw_suspensions_open(const char *path, char **err)
{
    char *text = NULL;
    size_t len = 0;
    gw_errlist errs = {0};
    gw_jsonv v = gw_jsonv_init(path, &errs);
    json_t *root = NULL;

    *err = NULL;
    if (path == NULL || path[0] == '\0') {
        *err = msg("%s: $: cannot read: %s", "-", strerror(EINVAL));
        return NULL;
    }
    gw_suspensions *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->path = strdup(path)) == NULL) {
        free(s);
        *err = msg("%s: $: out of memory", path);
        return NULL;
    }
    /* writer-preferring: every request of every worker reads the kill
     * switch; with glibc's default (readers first) a suspension could wait
     * behind traffic for as long as readers keep overlapping */
    pthread_rwlockattr_t la;
    pthread_rwlockattr_init(&la);
    pthread_rwlockattr_setkind_np(&la, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&s->lock, &la);
    pthread_rwlockattr_destroy(&la);
    pthread_mutex_init(&s->persist, NULL);
    pthread_mutex_init(&s->vmu, NULL);
    s->inst = atomic_fetch_add(&inst_next, 1);
    if (reindex(s) < 0) {
        gw_jsonv_err(&v, "$", "out of memory");
        goto out;
    }
    /* opened without blocking: a FIFO left there cannot hang the start */
    int e = gw_file_read(path, SUSP_MAX_FILE, GW_FILE_NONBLOCK, &text, &len);
    if (e == ENOENT)
        goto out; /* no file yet: nobody is suspended */
    if (e != 0) {
        gw_jsonv_err(&v, "$", "cannot read: %s", strerror(e));
        goto out;
    }
    root = gw_jsonv_parse(&v, text, len);
    if (root != NULL && load_json(s, root, &v) == 0)
        update_due(s);
out:
    if (v.nerrs == 0 && s->cur == NULL)
        publish(s); /* no file, or an empty one */
    json_decref(root);
    free(text);
    if (v.nerrs > 0) {
        /* the first problem only: the admin API answers with one message */
        *err = errs.n > 0 ? strdup(errs.msgs[0]) : msg("%s: $: out of memory", path);
        gw_errlist_clear(&errs);
        gw_suspensions_free(s);
        return NULL;
    }
    return s;
}

void gw_suspensions_free(gw_suspensions *s)
{
    if (s == NULL)
        return;
    free_entries(s);
    while (s->views != NULL) {
        view *v = s->views;
        s->views = v->next;
        free(v->slots);
        free(v);
    }
    pthread_rwlock_destroy(&s->lock);
    pthread_mutex_destroy(&s->persist);
    pthread_mutex_destroy(&s->vmu);
    free(s->path);
    free(s);
}

/* <src> into <dst> (<cap> bytes), cut on a UTF-8 boundary. */
static void copy_cut(char *dst, size_t cap, const char *src)
{
    size_t w = src != NULL ? strlen(src) : 0;
    if (w >= cap) {
        w = cap - 1;
        while (w > 0 && ((unsigned char)src[w] & 0xC0) == 0x80)
            w--;
    }
    if (w > 0)
        memcpy(dst, src, w);
    dst[w] = '\0';
}

static void info_of(const entry *e, int is_cut, gw_suspension_info *out)
{
    memset(out, 0, sizeof(*out));
    copy_cut(is_cut ? out->env : out->client_id, is_cut ? sizeof(out->env) : sizeof(out->client_id),
             e->client_id);
    out->since = e->since;
    out->until = e->until;
    copy_cut(out->why, sizeof(out->why), e->why);
    copy_cut(out->reason, sizeof(out->reason), e->reason);
    copy_cut(out->by, sizeof(out->by), e->by);
}

/* In force at <now>: not past its "until". */
static int in_force(const entry *e, time_t now)
{
    return e->until == 0 || now < e->until;
}

/* The consumer's (<env> NULL) or the environment's entry in force at the
 * time of the call, copied into <out> when not NULL: 1, or 0. Sweeps what is
 * due first. */
static int lookup(gw_suspensions *s, const char *client_id, const char *env,
                  gw_suspension_info *out)
{
    int k = env != NULL ? env_index(env) : -1;
    if (s == NULL || (env == NULL && client_id == NULL) || (env != NULL && k < 0))
        return 0;
    time_t now = time(NULL);
    if (!atomic_load(&s->timer))
        gw_suspensions_sweep(s, now);
    const view *vw = out == NULL ? view_get(s) : NULL;
    if (vw != NULL)
        return view_has(vw, client_id, k, now);
    pthread_rwlock_rdlock(&s->lock);
    const entry *e = NULL;
    if (k >= 0) {
        e = s->cut[k].client_id != NULL ? &s->cut[k] : NULL;
    } else {
        long i = find(s, client_id);
        e = i >= 0 ? &s->v[i] : NULL;
    }
    int r = e != NULL && in_force(e, now);
    if (r && out != NULL)
        info_of(e, k >= 0, out);
    pthread_rwlock_unlock(&s->lock);
    return r;
}

int gw_suspensions_is_suspended(gw_suspensions *s, const char *client_id)
{
    return client_id != NULL && lookup(s, client_id, NULL, NULL);
}

int gw_suspensions_is_cut(gw_suspensions *s, const char *env)
{
    return env != NULL && lookup(s, NULL, env, NULL);
}

int gw_suspensions_get(gw_suspensions *s, const char *client_id, gw_suspension_info *out)
{
    return client_id != NULL && lookup(s, client_id, NULL, out);
}

int gw_suspensions_cut_get(gw_suspensions *s, const char *env, gw_suspension_info *out)
{
    return env != NULL && lookup(s, NULL, env, out);
}

void gw_suspensions_on_expired(gw_suspensions *s, gw_suspension_expired_fn fn, void *arg)
{
    if (s == NULL)
        return;
    pthread_rwlock_wrlock(&s->lock);
    s->on_expired = fn;
    s->on_expired_arg = arg;
    pthread_rwlock_unlock(&s->lock);
}

size_t gw_suspensions_list(gw_suspensions *s, gw_suspension_info *out, size_t cap)
{
    if (s == NULL)
        return 0;
    pthread_rwlock_rdlock(&s->lock);
    size_t n = s->n;
    for (size_t i = 0; i < n && i < cap; i++)
        info_of(&s->v[i], 0, &out[i]);
    pthread_rwlock_unlock(&s->lock);
    return n;
}

/* ---- persisting ---- */

/* One entry of the file; <key> names its subject ("client_id" or
 * "environment"). NULL when out of memory. */
static json_t *entry_json(const entry *e, const char *key)
{
    char since[32], until[32];
    fmt_since(e->since, since);
    json_t *o = json_pack("{s:s, s:s, s:s}", key, e->client_id, "since", since, "why", e->why);
    if (o == NULL)
        return NULL;
    int bad = 0;
    if (e->reason != NULL)
        bad |= json_object_set_new(o, "reason", json_string(e->reason));
    if (e->by != NULL)
        bad |= json_object_set_new(o, "by", json_string(e->by));
    if (e->until != 0) {
        fmt_since(e->until, until);
        bad |= json_object_set_new(o, "until", json_string(until));
    }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The file's text for the current set. Caller frees. */
static char *dump(gw_suspensions *s)
{
    json_t *a = json_array(), *c = json_array();
    json_t *root = json_pack("{s:o}", "suspended", a);
    if (root == NULL || c == NULL) {
        json_decref(root);
        json_decref(c);
        return NULL;
    }
    size_t ncut = 0, n;
    pthread_rwlock_rdlock(&s->lock);
    for (size_t i = 0; i < s->n; i++)
        json_array_append_new(a, entry_json(&s->v[i], "client_id"));
    for (int k = 0; k < NENV; k++)
        if (s->cut[k].client_id != NULL) {
            ncut++;
            json_array_append_new(c, entry_json(&s->cut[k], "environment"));
        }
    n = s->n;
    pthread_rwlock_unlock(&s->lock);
    int ok = json_array_size(a) == n && json_array_size(c) == ncut;
    if (ncut > 0)
        ok &= json_object_set(root, "cuts", c) == 0;
    char *text = ok ? json_dumps(root, JSON_INDENT(2)) : NULL;
    json_decref(c);
    json_decref(root);
    return text;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Rewrite the file from the current set. Returns 0 or -1 with <*err>. */
static int persist(gw_suspensions *s, char **err)
{
    char *tmp = NULL, *text = NULL, *dir = NULL;
    const char *step = NULL;
    int fd = -1, e = 0, r = -1;

    pthread_mutex_lock(&s->persist);
    text = dump(s);
    if (text == NULL || asprintf(&tmp, "%s.tmp.XXXXXX", s->path) < 0) {
        tmp = NULL;
        step = "cannot serialize";
        e = ENOMEM;
        goto out;
    }
    fd = mkstemp(tmp);
    if (fd < 0) {
        step = "cannot create a temporary file";
        e = errno;
        free(tmp);
        tmp = NULL;
        goto out;
    }
    size_t len = strlen(text);
    if (fchmod(fd, 0644) < 0 || write_all(fd, text, len) < 0 || write_all(fd, "\n", 1) < 0) {
        step = "cannot write";
        e = errno;
        goto out;
    }
    if (fsync(fd) < 0) {
        step = "cannot fsync";
        e = errno;
        goto out;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, s->path) < 0) {
        step = "cannot rename the temporary file";
        e = errno;
        goto out;
    }
    free(tmp);
    tmp = NULL;
    const char *slash = strrchr(s->path, '/');
    dir = slash == NULL      ? strdup(".")
          : slash == s->path ? strdup("/")
                             : strndup(s->path, (size_t)(slash - s->path));
    int dfd = dir != NULL ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (dfd < 0 || fsync(dfd) < 0) {
        step = "cannot fsync the directory";
        e = dir == NULL ? ENOMEM : errno;
    } else {
        r = 0;
    }
    if (dfd >= 0)
        close(dfd);
out:
    if (fd >= 0)
        close(fd);
    if (tmp != NULL)
        unlink(tmp);
    if (r < 0)
        *err = msg("%s: %s: %s", s->path, step, strerror(e));
    pthread_mutex_unlock(&s->persist);
    free(tmp);
    free(text);
    free(dir);
    return r;
}

/* Replace the reason, by and until of <e> (an operator re-suspending).
 * -1 when out of memory (<e> unchanged). */
static int entry_update(entry *e, const char *why, const char *reason, const char *by, time_t until)
{
    entry n;
    if (entry_fill(&n, e->client_id, e->since, why, reason, by, until) < 0)
        return -1;
    entry_free(e);
    *e = n;
    return 0;
}

/* The change itself; <update>: an existing suspension takes the new
 * details (the operator's), else it is left as it is (DataPass). */
static int set_ex(gw_suspensions *s, const char *client_id, int on, const char *why,
                  const char *reason, const char *by, time_t until, int update, char **err)
{
    *err = NULL;
    if (s == NULL) {
        *err = msg("no suspensions set");
        return -1;
    }
    if (client_id == NULL || !gw_client_id_valid(client_id)) {
        *err = msg("client_id must match " GW_CLIENT_ID_RULE);
        return -1;
    }
    pthread_rwlock_wrlock(&s->lock);
    long i = find(s, client_id);
    int oom = 0;
    if (on && i < 0) {
        if (push(s, client_id, time(NULL), why, reason, by, until) < 0) {
            oom = 1;
        } else if (reindex(s) < 0) {
            /* take it back: the old index still describes the others */
            s->n--;
            entry_free(&s->v[s->n]);
            oom = 1;
        }
    } else if (on && update) {
        oom = entry_update(&s->v[i], why, reason, by, until) < 0;
    } else if (!on && i >= 0) {
        entry gone = s->v[i];
        memmove(&s->v[i], &s->v[i + 1], (s->n - (size_t)i - 1) * sizeof(entry));
        s->n--;
        if (reindex(s) < 0) {
            /* put it back where it was: the old index still describes v */
            memmove(&s->v[i + 1], &s->v[i], (s->n - (size_t)i) * sizeof(entry));
            s->v[i] = gone;
            s->n++;
            oom = 1;
        } else {
            entry_free(&gone);
        }
    }
    update_due(s);
    pthread_rwlock_unlock(&s->lock);
    if (oom) {
        *err = msg("%s: out of memory", s->path);
        return -1;
    }
    /* Rewritten even when nothing changed, so that a retry after a failed
     * write brings the file back in step with memory. */
    return persist(s, err);
}

int gw_suspensions_set(gw_suspensions *s, const char *client_id, int on, const char *why,
                       char **err)
{
    return set_ex(s, client_id, on, why, NULL, NULL, 0, 0, err);
}

int gw_suspensions_suspend(gw_suspensions *s, const char *client_id, const char *why,
                           const char *reason, const char *by, time_t until, char **err)
{
    return set_ex(s, client_id, 1, why, reason, by, until, 1, err);
}

int gw_suspensions_cut(gw_suspensions *s, const char *env, int on, const char *reason,
                       const char *by, time_t until, char **err)
{
    *err = NULL;
    int k = env_index(env);
    if (s == NULL || k < 0) {
        *err = msg("environment must be \"sandbox\" or \"production\"");
        return -1;
    }
    pthread_rwlock_wrlock(&s->lock);
    int oom = 0;
    entry *e = &s->cut[k];
    if (on) {
        time_t since = e->client_id != NULL ? e->since : time(NULL);
        entry n;
        if (entry_fill(&n, env, since, "admin API", reason, by, until) < 0) {
            oom = 1;
        } else {
            entry_free(e);
            *e = n;
        }
    } else {
        entry_free(e);
    }
    update_due(s);
    pthread_rwlock_unlock(&s->lock);
    if (oom) {
        *err = msg("%s: out of memory", s->path);
        return -1;
    }
    return persist(s, err);
}

void gw_suspensions_timer_sweeps(gw_suspensions *s)
{
    if (s != NULL)
        atomic_store(&s->timer, 1);
}

size_t gw_suspensions_sweep(gw_suspensions *s, time_t now)
{
    if (s == NULL)
        return 0;
    long long due = atomic_load(&s->next_due);
    if (due == 0 || (long long)now < due)
        return 0;
    pthread_rwlock_wrlock(&s->lock);
    size_t cap = index_cap(s->n), gone = 0, m = 0;
    size_t *idx = calloc(cap, sizeof(*idx));
    gw_suspension_info *out = calloc(s->n + NENV, sizeof(*out));
    if (idx == NULL || out == NULL) {
        /* retried by the next caller; in_force() hides it meanwhile */
        pthread_rwlock_unlock(&s->lock);
        free(idx);
        free(out);
        return 0;
    }
    for (size_t i = 0; i < s->n; i++) {
        if (!in_force(&s->v[i], now)) {
            info_of(&s->v[i], 0, &out[gone++]);
            entry_free(&s->v[i]);
        } else {
            s->v[m++] = s->v[i];
        }
    }
    s->n = m;
    index_into(s, idx, cap);
    for (int k = 0; k < NENV; k++)
        if (s->cut[k].client_id != NULL && !in_force(&s->cut[k], now)) {
            info_of(&s->cut[k], 1, &out[gone++]);
            entry_free(&s->cut[k]);
        }
    update_due(s);
    gw_suspension_expired_fn fn = s->on_expired;
    void *arg = s->on_expired_arg;
    pthread_rwlock_unlock(&s->lock);
    if (gone > 0) {
        char *err = NULL;
        int persisted = persist(s, &err) == 0;
        free(err);
        for (size_t i = 0; fn != NULL && i < gone; i++)
            fn(arg, &out[i], persisted);
    }
    free(out);
    return gone;
}
