#include "quota/memlog.h"

#include "lib/hash.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define STRIPES 64
#define KEY_MAX 160

typedef struct entry {
    struct entry *next;
    char key[KEY_MAX];
    uint64_t *ring; /* admission times, oldest at head */
    unsigned cap;
    unsigned head;
    unsigned count;
} entry;

typedef struct stripe {
    pthread_mutex_t lock;
    entry **buckets;
    size_t nbuckets;
    size_t n;
} stripe;

struct gw_memlog {
    stripe s[STRIPES];
};

uint64_t gw_memlog_hash(const char *k)
{
    return gw_fnv1a64_str(k);
}

gw_memlog *gw_memlog_new(void)
{
    gw_memlog *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    for (size_t i = 0; i < STRIPES; i++) {
        pthread_mutex_init(&m->s[i].lock, NULL);
        m->s[i].nbuckets = 64;
        m->s[i].buckets = calloc(64, sizeof(entry *));
        if (m->s[i].buckets == NULL) {
            gw_memlog_free(m);
            return NULL;
        }
    }
    return m;
}

void gw_memlog_free(gw_memlog *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < STRIPES; i++) {
        stripe *st = &m->s[i];
        for (size_t b = 0; st->buckets != NULL && b < st->nbuckets; b++) {
            entry *e = st->buckets[b];
            while (e != NULL) {
                entry *n = e->next;
                free(e->ring);
                free(e);
                e = n;
            }
        }
        free(st->buckets);
        pthread_mutex_destroy(&st->lock);
    }
    free(m);
}

static void grow(stripe *st)
{
    size_t nb = st->nbuckets * 2;
    entry **b = calloc(nb, sizeof(entry *));
    if (b == NULL)
        return; /* keep the longer chains */
    for (size_t i = 0; i < st->nbuckets; i++) {
        entry *e = st->buckets[i];
        while (e != NULL) {
            entry *n = e->next;
            size_t j = (gw_memlog_hash(e->key) / STRIPES) % nb;
            e->next = b[j];
            b[j] = e;
            e = n;
        }
    }
    free(st->buckets);
    st->buckets = b;
    st->nbuckets = nb;
}

static entry *find(stripe *st, const char *key, uint64_t h, int create)
{
    size_t j = (h / STRIPES) % st->nbuckets;
    for (entry *e = st->buckets[j]; e != NULL; e = e->next)
        if (strcmp(e->key, key) == 0)
            return e;
    if (!create || strlen(key) >= KEY_MAX)
        return NULL;
    entry *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    strcpy(e->key, key);
    e->next = st->buckets[j];
    st->buckets[j] = e;
    if (++st->n > st->nbuckets * 2)
        grow(st);
    return e;
}

static void prune(entry *e, uint64_t window_ms, uint64_t now_ms)
{
    while (e->count > 0 && e->ring[e->head] + window_ms <= now_ms) {
        e->head = (e->head + 1) % e->cap;
        e->count--;
    }
}

/* A new limit (policy reload): keep the newest admissions that fit. */
static int resize(entry *e, unsigned cap)
{
    uint64_t *r = malloc(sizeof(uint64_t) * cap);
    if (r == NULL)
        return -1;
    unsigned keep = e->count < cap ? e->count : cap;
    for (unsigned i = 0; i < keep; i++)
        r[i] = e->ring[(e->head + e->count - keep + i) % e->cap];
    free(e->ring);
    e->ring = r;
    e->cap = cap;
    e->head = 0;
    e->count = keep;
    return 0;
}

void gw_memlog_admit(gw_memlog *m, const char *key, unsigned limit, uint64_t window_ms,
                     uint64_t now_ms, gw_memlog_result *out)
{
    uint64_t h = gw_memlog_hash(key);
    stripe *st = &m->s[h % STRIPES];
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&st->lock);
    entry *e = find(st, key, h, 1);
    if (e == NULL || limit == 0 || ((e->cap != limit) && resize(e, limit) < 0)) {
        /* no memory for the log: refuse rather than admit without a count */
        out->admitted = 0;
        out->reset_ms = window_ms;
        pthread_mutex_unlock(&st->lock);
        return;
    }
    prune(e, window_ms, now_ms);
    if (e->count < limit) {
        e->ring[(e->head + e->count) % e->cap] = now_ms;
        e->count++;
        out->admitted = 1;
    }
    out->remaining = limit - e->count;
    out->reset_ms = e->count > 0 ? e->ring[e->head] + window_ms - now_ms : 0;
    pthread_mutex_unlock(&st->lock);
}

unsigned gw_memlog_count(gw_memlog *m, const char *key, uint64_t window_ms, uint64_t now_ms)
{
    uint64_t h = gw_memlog_hash(key);
    stripe *st = &m->s[h % STRIPES];
    pthread_mutex_lock(&st->lock);
    entry *e = find(st, key, h, 0);
    unsigned n = 0;
    if (e != NULL && e->cap > 0) {
        prune(e, window_ms, now_ms);
        n = e->count;
    }
    pthread_mutex_unlock(&st->lock);
    return n;
}
