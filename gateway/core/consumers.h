/*
 * Per-consumer counters for /metrics (requests by status class, quota
 * decisions): a table bounded to <max> consumers, those beyond it counted
 * together under "(other)". No lock: a table has one writer (the thread
 * that calls gw_consumer_stats_count on it, or the one that merges into
 * it), and any number of readers (gw_consumer_stats_each, _merge from it)
 * at the same time, who see each count whole (relaxed atomics: a reader may
 * be a request behind). No event loop.
 */
#ifndef GW_CORE_CONSUMERS_H
#define GW_CORE_CONSUMERS_H

#include <stddef.h>

typedef struct gw_consumer_counts {
    unsigned long by_class[6]; /* index status/100 */
    unsigned long quota_admitted, quota_refused;
} gw_consumer_counts;

typedef struct gw_consumer_stats gw_consumer_stats;

/* A table for at most <max> consumers; NULL when out of memory. */
gw_consumer_stats *gw_consumer_stats_new(size_t max);
void gw_consumer_stats_free(gw_consumer_stats *cs);

/* Count one answer of <status> (the table's writer only) to <client_id> and, when <quota_outcome>
 * is not 0, one quota decision (> 0 admitted, < 0 refused). A status whose status/100 is not 0..5
 * is not counted by class. A consumer past the table's bound, or a client_id of 129 bytes or more,
 * is counted under "(other)"; a NULL <client_id> or table is not counted at all. */
void gw_consumer_stats_count(gw_consumer_stats *cs, const char *client_id, int status,
                             int quota_outcome);

/* Call <cb> for each consumer in the table, then for "(other)" once the
 * table is full. Any thread. */
void gw_consumer_stats_each(gw_consumer_stats *cs,
                            void (*cb)(void *arg, const char *client_id,
                                       const gw_consumer_counts *c),
                            void *arg);

/* Add every count of <src> (read as gw_consumer_stats_each does) to <dst>,
 * whose writer the caller is: a consumer <dst> has no room for, and <src>'s
 * "(other)", go to <dst>'s "(other)". */
void gw_consumer_stats_merge(gw_consumer_stats *dst, gw_consumer_stats *src);

/* The consumers in the table ("(other)" not included). */
size_t gw_consumer_stats_size(gw_consumer_stats *cs);

#endif
