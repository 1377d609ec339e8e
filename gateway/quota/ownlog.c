#include "quota/ownlog.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define STRIPES 16
#define BUCKETS 256
#define KEY_MAX 160

typedef struct oent {
    uint64_t t;
    char member[GW_OWNLOG_MEMBER];
    int local; /* decided by gw_ownlog_admit, not by Redis */
} oent;

typedef struct okey {
    struct okey *next;
    /* on its stripe's list of keys with local entries (lprev != NULL): what
     * gw_ownlog_each_local walks, instead of every key */
    struct okey *lnext, **lprev;
    char key[KEY_MAX];
    oent *ring; /* oldest at head */
    unsigned cap, head, count;
} okey;

typedef struct ostripe {
    pthread_mutex_t lock;
    okey *b[BUCKETS];
    okey *local;           /* keys that had a local entry when last seen */
    uint64_t local_visits; /* keys visited by the local walks (for tests) */
} ostripe;

struct gw_ownlog {
    uint64_t window_ms;
    ostripe s[STRIPES];
};

gw_ownlog *gw_ownlog_new(uint64_t window_ms)
{
    gw_ownlog *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    o->window_ms = window_ms;
    for (size_t i = 0; i < STRIPES; i++)
        pthread_mutex_init(&o->s[i].lock, NULL);
    return o;
}

void gw_ownlog_free(gw_ownlog *o)
{
    if (o == NULL)
        return;
    for (size_t i = 0; i < STRIPES; i++) {
        for (size_t j = 0; j < BUCKETS; j++) {
            okey *k = o->s[i].b[j];
            while (k != NULL) {
                okey *n = k->next;
                free(k->ring);
                free(k);
                k = n;
            }
        }
        pthread_mutex_destroy(&o->s[i].lock);
    }
    free(o);
}

uint64_t gw_ownlog_window(const gw_ownlog *o)
{
    return o->window_ms;
}

/* The key's log, sized for <limit> (created or resized keeping the newest
 * entries); NULL on OOM or an oversized key. Under the stripe lock. */
static okey *get(ostripe *st, uint64_t h, const char *key, unsigned limit)
{
    okey **head = &st->b[(h / STRIPES) % BUCKETS];
    okey *k = *head;
    while (k != NULL && strcmp(k->key, key) != 0)
        k = k->next;
    if (k == NULL) {
        if (strlen(key) >= KEY_MAX || (k = calloc(1, sizeof(*k))) == NULL)
            return NULL;
        strcpy(k->key, key);
        k->next = *head;
        *head = k;
    }
    if (limit == 0)
        return NULL;
    if (k->cap != limit) {
        oent *r = malloc(sizeof(oent) * limit);
        if (r == NULL)
            return NULL;
        unsigned keep = k->count < limit ? k->count : limit;
        for (unsigned i = 0; i < keep; i++)
            r[i] = k->ring[(k->head + k->count - keep + i) % k->cap];
        free(k->ring);
        k->ring = r;
        k->cap = limit;
        k->head = 0;
        k->count = keep;
    }
    return k;
}

static okey *find(ostripe *st, uint64_t h, const char *key)
{
    okey *k = st->b[(h / STRIPES) % BUCKETS];
    while (k != NULL && strcmp(k->key, key) != 0)
        k = k->next;
    return k;
}

static void prune(okey *k, uint64_t window_ms, uint64_t now_ms)
{
    while (k->count > 0 && k->ring[k->head].t + window_ms <= now_ms) {
        k->head = (k->head + 1) % k->cap;
        k->count--;
    }
}

static void local_link(ostripe *st, okey *k)
{
    if (k->lprev != NULL)
        return;
    k->lnext = st->local;
    if (st->local != NULL)
        st->local->lprev = &k->lnext;
    st->local = k;
    k->lprev = &st->local;
}

static void local_unlink(okey *k)
{
    *k->lprev = k->lnext;
    if (k->lnext != NULL)
        k->lnext->lprev = k->lprev;
    k->lnext = NULL;
    k->lprev = NULL;
}

static void push(ostripe *st, okey *k, uint64_t now_ms, const char *member, int local)
{
    if (k->count == k->cap) {
        k->head = (k->head + 1) % k->cap;
        k->count--;
    }
    oent *e = &k->ring[(k->head + k->count) % k->cap];
    e->t = now_ms;
    e->local = local;
    size_t n = strlen(member);
    if (n >= GW_OWNLOG_MEMBER)
        n = GW_OWNLOG_MEMBER - 1;
    memcpy(e->member, member, n);
    e->member[n] = '\0';
    k->count++;
    if (local)
        local_link(st, k);
}

void gw_ownlog_record(gw_ownlog *o, const char *key, unsigned limit, uint64_t now_ms,
                      const char *member)
{
    uint64_t h = gw_memlog_hash(key);
    ostripe *st = &o->s[h % STRIPES];
    pthread_mutex_lock(&st->lock);
    okey *k = get(st, h, key, limit);
    if (k != NULL) {
        prune(k, o->window_ms, now_ms);
        push(st, k, now_ms, member, 0);
    }
    pthread_mutex_unlock(&st->lock);
}

void gw_ownlog_admit(gw_ownlog *o, const char *key, unsigned limit, unsigned share, uint64_t now_ms,
                     const char *member, gw_memlog_result *out)
{
    uint64_t h = gw_memlog_hash(key);
    ostripe *st = &o->s[h % STRIPES];
    memset(out, 0, sizeof(*out));
    if (share > limit)
        share = limit;
    pthread_mutex_lock(&st->lock);
    okey *k = get(st, h, key, limit);
    if (k == NULL || share == 0) {
        /* no memory for the log: refuse rather than admit without a count */
        out->reset_ms = o->window_ms;
        pthread_mutex_unlock(&st->lock);
        return;
    }
    prune(k, o->window_ms, now_ms);
    if (k->count < share) {
        push(st, k, now_ms, member, 1);
        out->admitted = 1;
        out->remaining = share - k->count;
        out->reset_ms = k->ring[k->head].t + o->window_ms - now_ms;
    } else {
        /* the slot frees when the (count - share + 1)-th oldest leaves */
        unsigned idx = (k->head + k->count - share) % k->cap;
        out->reset_ms = k->ring[idx].t + o->window_ms - now_ms;
    }
    pthread_mutex_unlock(&st->lock);
}

unsigned gw_ownlog_count(gw_ownlog *o, const char *key, uint64_t now_ms)
{
    uint64_t h = gw_memlog_hash(key);
    ostripe *st = &o->s[h % STRIPES];
    pthread_mutex_lock(&st->lock);
    okey *k = find(st, h, key);
    unsigned n = 0;
    if (k != NULL && k->cap > 0) {
        prune(k, o->window_ms, now_ms);
        n = k->count;
    }
    pthread_mutex_unlock(&st->lock);
    return n;
}

/* A walk's state: the callback and the buffer it is given. */
typedef struct walk {
    uint64_t now_ms, since_ms;
    int local_only;
    gw_ownlog_fn fn;
    void *arg;
    gw_ownlog_entry *buf;
    size_t cap, total;
} walk;

/* Pass <k>'s entries in the window (or, local_only, those decided locally
 * at or after since_ms), oldest first. Returns whether <k> still holds a
 * local entry. Under the stripe lock. */
static int walk_key(walk *w, uint64_t window_ms, okey *k)
{
    if (k->cap == 0)
        return 0;
    prune(k, window_ms, w->now_ms);
    if (k->count == 0)
        return 0;
    if (k->count > w->cap) {
        gw_ownlog_entry *nb = realloc(w->buf, sizeof(*nb) * k->count);
        if (nb == NULL)
            return 1;
        w->buf = nb;
        w->cap = k->count;
    }
    size_t n = 0;
    int any_local = 0;
    for (unsigned m = 0; m < k->count; m++) {
        const oent *e = &k->ring[(k->head + m) % k->cap];
        any_local |= e->local;
        if (w->local_only && (!e->local || e->t < w->since_ms))
            continue;
        memcpy(w->buf[n].member, e->member, GW_OWNLOG_MEMBER);
        w->buf[n++].age_ms = w->now_ms > e->t ? w->now_ms - e->t : 0;
    }
    if (n > 0) {
        w->fn(w->arg, k->key, w->buf, n);
        w->total += n;
    }
    return any_local;
}

/* Every key's entries in the window, or (local_only) those decided locally
 * at or after <since_ms>: then only the keys on the stripes' local lists,
 * each dropped from its list once it holds no local entry (they left the
 * window, or a full ring pushed them out; a new one links it again). */
static size_t each(gw_ownlog *o, uint64_t now_ms, int local_only, uint64_t since_ms,
                   gw_ownlog_fn fn, void *arg)
{
    walk w = {
        .now_ms = now_ms, .since_ms = since_ms, .local_only = local_only, .fn = fn, .arg = arg};
    for (size_t i = 0; i < STRIPES; i++) {
        ostripe *st = &o->s[i];
        pthread_mutex_lock(&st->lock);
        if (local_only) {
            okey *next;
            for (okey *k = st->local; k != NULL; k = next) {
                next = k->lnext;
                st->local_visits++;
                if (!walk_key(&w, o->window_ms, k))
                    local_unlink(k);
            }
        } else {
            for (size_t j = 0; j < BUCKETS; j++)
                for (okey *k = st->b[j]; k != NULL; k = k->next)
                    walk_key(&w, o->window_ms, k);
        }
        pthread_mutex_unlock(&st->lock);
    }
    free(w.buf);
    return w.total;
}

size_t gw_ownlog_each(gw_ownlog *o, uint64_t now_ms, gw_ownlog_fn fn, void *arg)
{
    return each(o, now_ms, 0, 0, fn, arg);
}

size_t gw_ownlog_each_local(gw_ownlog *o, uint64_t now_ms, uint64_t since_ms, gw_ownlog_fn fn,
                            void *arg)
{
    return each(o, now_ms, 1, since_ms, fn, arg);
}

uint64_t gw_ownlog_local_visits(gw_ownlog *o)
{
    uint64_t n = 0;
    for (size_t i = 0; i < STRIPES; i++) {
        pthread_mutex_lock(&o->s[i].lock);
        n += o->s[i].local_visits;
        pthread_mutex_unlock(&o->s[i].lock);
    }
    return n;
}
