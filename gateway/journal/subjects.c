/* The detectors' subject tables: contract in journal/subjects.h. */
#include "journal/subjects.h"

#include <stdlib.h>
#include <string.h>

#include "lib/hash.h"

int gw_subjects_init(gw_subjects *t, gw_subjects_kind kind, uint32_t ring, uint64_t window_ms,
                     size_t max_subjects, size_t max_slots)
{
    memset(t, 0, sizeof(*t));
    t->kind = kind;
    t->ring = ring;
    t->window_ms = window_ms;
    t->max_ents = (max_subjects + GW_SUBJECTS_STRIPES - 1) / GW_SUBJECTS_STRIPES;
    if (t->max_ents < 1)
        t->max_ents = 1;
    t->max_slots = (max_slots + GW_SUBJECTS_STRIPES - 1) / GW_SUBJECTS_STRIPES;
    if (t->max_slots < ring)
        t->max_slots = ring; /* one subject can always reach its threshold */
    for (int i = 0; i < GW_SUBJECTS_STRIPES; i++)
        if (pthread_mutex_init(&t->s[i].mu, NULL) != 0)
            return -1;
    return 0;
}

static void subject_free(gw_subject *e)
{
    free(e->ts);
    free(e->ids);
    free(e);
}

void gw_subjects_destroy(gw_subjects *t)
{
    for (int i = 0; i < GW_SUBJECTS_STRIPES; i++) {
        gw_subject_stripe *s = &t->s[i];
        gw_subject *e = s->newest;
        while (e != NULL) {
            gw_subject *n = e->next;
            subject_free(e);
            e = n;
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->mu);
    }
}

static void lru_unlink(gw_subject_stripe *s, gw_subject *e)
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

static void lru_push(gw_subject_stripe *s, gw_subject *e)
{
    e->prev = NULL;
    e->next = s->newest;
    if (s->newest)
        s->newest->prev = e;
    s->newest = e;
    if (s->oldest == NULL)
        s->oldest = e;
}

static void drop_ent(gw_subjects *t, gw_subject_stripe *s, gw_subject *e)
{
    gw_subject **pp = &s->buckets[e->h & (s->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(s, e);
    s->nents--;
    s->nslots -= e->cap;
    atomic_fetch_sub_explicit(&t->tracked, 1, memory_order_relaxed);
    subject_free(e);
}

/* Evict the least recently seen subjects (never <keep>) until the stripe is
 * within its caps, the subject being added counted in <extra_ents>. */
static void evict(gw_subjects *t, gw_subject_stripe *s, const gw_subject *keep, size_t extra_ents)
{
    while (s->oldest != NULL && (s->nents + extra_ents > t->max_ents || s->nslots > t->max_slots)) {
        gw_subject *victim = s->oldest;
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
static gw_subject *lookup(gw_subjects *t, gw_subject_stripe *s, const char *key, uint64_t h)
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
    gw_subject **b = &s->buckets[h & (s->nbuckets - 1)];
    for (gw_subject *e = *b; e != NULL; e = e->hnext) {
        if (e->h == h && strcmp(e->key, key) == 0) {
            lru_unlink(s, e);
            lru_push(s, e);
            return e;
        }
    }
    evict(t, s, NULL, 1);
    size_t kl = strlen(key);
    gw_subject *e = calloc(1, sizeof(*e) + kl + 1);
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

gw_subject *gw_subjects_lock(gw_subjects *t, const char *key, gw_subject_stripe **locked)
{
    uint64_t h = gw_fnv1a64_str(key);
    gw_subject_stripe *s = &t->s[(h >> 60) % GW_SUBJECTS_STRIPES];
    pthread_mutex_lock(&s->mu);
    *locked = s;
    return lookup(t, s, key, h);
}

void gw_subjects_unlock(gw_subject_stripe *s)
{
    pthread_mutex_unlock(&s->mu);
}

int gw_subjects_mark(gw_subjects *t, const char *key, long long *mark)
{
    uint64_t h = gw_fnv1a64_str(key);
    gw_subject_stripe *s = &t->s[(h >> 60) % GW_SUBJECTS_STRIPES];
    int found = 0;
    pthread_mutex_lock(&s->mu);
    if (s->buckets != NULL)
        for (gw_subject *e = s->buckets[h & (s->nbuckets - 1)]; e != NULL && !found; e = e->hnext)
            if (e->h == h && strcmp(e->key, key) == 0) {
                *mark = e->mark;
                found = 1;
            }
    pthread_mutex_unlock(&s->mu);
    return found;
}

/* Room for one more time (and id) in <e>: grows the arrays up to the ring
 * size, in order (head 0). 0, or -1 when out of memory. */
static int grow(gw_subjects *t, gw_subject_stripe *s, gw_subject *e)
{
    if (e->n < e->cap)
        return 0;
    uint32_t nc = e->cap == 0 ? 4 : e->cap * 2;
    if (nc > t->ring)
        nc = t->ring;
    if (nc <= e->cap)
        return -1;
    uint64_t *ts = malloc(nc * sizeof(*ts));
    uint64_t *ids = t->kind == GW_SUBJECTS_DISTINCT ? malloc(nc * sizeof(*ids)) : NULL;
    if (ts == NULL || (t->kind == GW_SUBJECTS_DISTINCT && ids == NULL)) {
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

uint32_t gw_subjects_count(gw_subjects *t, gw_subject_stripe *s, gw_subject *e, uint64_t now)
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

/* The pairs are kept in order of insertion without holes (head 0). */
uint32_t gw_subjects_distinct(gw_subjects *t, gw_subject_stripe *s, gw_subject *e, uint64_t id,
                              uint64_t now)
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
