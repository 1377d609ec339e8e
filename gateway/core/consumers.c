/* Per-consumer counters (see consumers.h): a chained hash written by one
 * thread without a lock, its entries published with release stores. */
#include "core/consumers.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/hash.h"

#define CSTATS_BUCKETS 4096

typedef struct counts {
    atomic_ulong by_class[6];
    atomic_ulong quota_admitted, quota_refused;
} counts;

typedef struct centry {
    struct centry *next; /* set before the entry is published, never after */
    char id[129];
    counts c;
} centry;

struct gw_consumer_stats {
    _Atomic(centry *) b[CSTATS_BUCKETS];
    atomic_size_t n;
    size_t max;
    counts other;
};

gw_consumer_stats *gw_consumer_stats_new(size_t max)
{
    gw_consumer_stats *cs = calloc(1, sizeof(*cs));
    if (cs == NULL)
        return NULL;
    cs->max = max;
    return cs;
}

void gw_consumer_stats_free(gw_consumer_stats *cs)
{
    if (cs == NULL)
        return;
    for (size_t i = 0; i < CSTATS_BUCKETS; i++) {
        centry *e = atomic_load_explicit(&cs->b[i], memory_order_relaxed);
        while (e != NULL) {
            centry *n = e->next;
            free(e);
            e = n;
        }
    }
    free(cs);
}

/* The writer's own counters: a relaxed load and store, nobody else writes. */
static void bump(atomic_ulong *c, unsigned long n)
{
    if (n != 0)
        atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                              memory_order_relaxed);
}

/* The writer's entry for <client_id>, created while the table has room;
 * NULL: counted under "(other)". */
static centry *entry(gw_consumer_stats *cs, const char *client_id)
{
    size_t len = strlen(client_id);
    _Atomic(centry *) *head = &cs->b[gw_fnv1a64_str(client_id) % CSTATS_BUCKETS];
    centry *first = atomic_load_explicit(head, memory_order_relaxed);
    for (centry *e = first; e != NULL; e = e->next)
        if (memcmp(e->id, client_id, len + 1) == 0)
            return e;
    size_t n = atomic_load_explicit(&cs->n, memory_order_relaxed);
    if (n >= cs->max || len >= sizeof(((centry *)0)->id))
        return NULL;
    centry *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    memcpy(e->id, client_id, len + 1);
    e->next = first;
    atomic_store_explicit(head, e, memory_order_release);
    atomic_store_explicit(&cs->n, n + 1, memory_order_relaxed);
    return e;
}

static void add_counts(counts *c, const gw_consumer_counts *by)
{
    for (int i = 0; i < 6; i++)
        bump(&c->by_class[i], by->by_class[i]);
    bump(&c->quota_admitted, by->quota_admitted);
    bump(&c->quota_refused, by->quota_refused);
}

static void add(gw_consumer_stats *cs, const char *client_id, const gw_consumer_counts *by)
{
    centry *e = entry(cs, client_id);
    add_counts(e ? &e->c : &cs->other, by);
}

void gw_consumer_stats_count(gw_consumer_stats *cs, const char *client_id, int status,
                             int quota_outcome)
{
    if (cs == NULL || client_id == NULL)
        return;
    gw_consumer_counts one;
    memset(&one, 0, sizeof(one));
    int cls = status / 100;
    if (cls >= 0 && cls < 6)
        one.by_class[cls] = 1;
    if (quota_outcome > 0)
        one.quota_admitted = 1;
    else if (quota_outcome < 0)
        one.quota_refused = 1;
    add(cs, client_id, &one);
}

static void snap(const counts *c, gw_consumer_counts *out)
{
    for (int i = 0; i < 6; i++)
        out->by_class[i] = atomic_load_explicit(&c->by_class[i], memory_order_relaxed);
    out->quota_admitted = atomic_load_explicit(&c->quota_admitted, memory_order_relaxed);
    out->quota_refused = atomic_load_explicit(&c->quota_refused, memory_order_relaxed);
}

/* <cb> for each entry of the table (not "(other)"), with its counts. */
static void walk(gw_consumer_stats *cs,
                 void (*cb)(void *arg, const char *client_id, const gw_consumer_counts *c),
                 void *arg)
{
    gw_consumer_counts c;
    for (size_t i = 0; i < CSTATS_BUCKETS; i++)
        for (centry *e = atomic_load_explicit(&cs->b[i], memory_order_acquire); e != NULL;
             e = e->next) {
            snap(&e->c, &c);
            cb(arg, e->id, &c);
        }
}

void gw_consumer_stats_each(gw_consumer_stats *cs,
                            void (*cb)(void *arg, const char *client_id,
                                       const gw_consumer_counts *c),
                            void *arg)
{
    if (cs == NULL)
        return;
    walk(cs, cb, arg);
    if (atomic_load_explicit(&cs->n, memory_order_relaxed) >= cs->max) {
        gw_consumer_counts c;
        snap(&cs->other, &c);
        cb(arg, "(other)", &c);
    }
}

static void merge_cb(void *arg, const char *client_id, const gw_consumer_counts *c)
{
    add(arg, client_id, c);
}

void gw_consumer_stats_merge(gw_consumer_stats *dst, gw_consumer_stats *src)
{
    if (dst == NULL || src == NULL)
        return;
    walk(src, merge_cb, dst);
    gw_consumer_counts c;
    snap(&src->other, &c);
    add_counts(&dst->other, &c);
}

size_t gw_consumer_stats_size(gw_consumer_stats *cs)
{
    if (cs == NULL)
        return 0;
    return atomic_load_explicit(&cs->n, memory_order_relaxed);
}
