/* Per-consumer counters (see consumers.h): one mutex, a chained hash. */
#include "core/consumers.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/hash.h"

#define CSTATS_BUCKETS 4096

typedef struct centry {
    struct centry *next;
    char id[129];
    gw_consumer_counts c;
} centry;

struct gw_consumer_stats {
    pthread_mutex_t mu;
    centry *b[CSTATS_BUCKETS];
    size_t n, max;
    gw_consumer_counts other;
};

gw_consumer_stats *gw_consumer_stats_new(size_t max)
{
    gw_consumer_stats *cs = calloc(1, sizeof(*cs));
    if (cs == NULL)
        return NULL;
    pthread_mutex_init(&cs->mu, NULL);
    cs->max = max;
    return cs;
}

void gw_consumer_stats_free(gw_consumer_stats *cs)
{
    if (cs == NULL)
        return;
    for (size_t i = 0; i < CSTATS_BUCKETS; i++) {
        centry *e = cs->b[i];
        while (e != NULL) {
            centry *n = e->next;
            free(e);
            e = n;
        }
    }
    pthread_mutex_destroy(&cs->mu);
    free(cs);
}

void gw_consumer_stats_count(gw_consumer_stats *cs, const char *client_id, int status,
                             int quota_outcome)
{
    if (cs == NULL || client_id == NULL)
        return;
    uint64_t h = gw_fnv1a64_str(client_id);
    pthread_mutex_lock(&cs->mu);
    centry *e = cs->b[h % CSTATS_BUCKETS];
    while (e != NULL && strcmp(e->id, client_id) != 0)
        e = e->next;
    if (e == NULL && cs->n < cs->max && strlen(client_id) < sizeof(e->id)) {
        e = calloc(1, sizeof(*e));
        if (e != NULL) {
            strcpy(e->id, client_id);
            e->next = cs->b[h % CSTATS_BUCKETS];
            cs->b[h % CSTATS_BUCKETS] = e;
            cs->n++;
        }
    }
    gw_consumer_counts *c = e ? &e->c : &cs->other;
    int cls = status / 100;
    if (cls >= 0 && cls < 6)
        c->by_class[cls]++;
    if (quota_outcome > 0)
        c->quota_admitted++;
    else if (quota_outcome < 0)
        c->quota_refused++;
    pthread_mutex_unlock(&cs->mu);
}

void gw_consumer_stats_each(gw_consumer_stats *cs,
                            void (*cb)(void *arg, const char *client_id,
                                       const gw_consumer_counts *c),
                            void *arg)
{
    if (cs == NULL)
        return;
    pthread_mutex_lock(&cs->mu);
    for (size_t i = 0; i < CSTATS_BUCKETS; i++)
        for (centry *e = cs->b[i]; e != NULL; e = e->next)
            cb(arg, e->id, &e->c);
    if (cs->n >= cs->max)
        cb(arg, "(other)", &cs->other);
    pthread_mutex_unlock(&cs->mu);
}

size_t gw_consumer_stats_size(gw_consumer_stats *cs)
{
    if (cs == NULL)
        return 0;
    pthread_mutex_lock(&cs->mu);
    size_t n = cs->n;
    pthread_mutex_unlock(&cs->mu);
    return n;
}
