/* The snapshot's hash indexes (policy/index.c). Internal to gateway/policy/.
 *
 * Open addressing with linear probing, FNV-1a, at most half full: a lookup
 * costs the same with 1 or 10,000 partners. Keys are borrowed (they point
 * into the policies) and must outlive the index. No deletion: an index is
 * built once for a snapshot and freed with it. */
#ifndef GW_POLICY_INDEX_H
#define GW_POLICY_INDEX_H

#include <stddef.h>

#include "policy/policy.h"

typedef struct gw_policy_index_slot gw_policy_index_slot;

typedef struct gw_policy_index {
    gw_policy_index_slot *slots;
    size_t mask; /* capacity - 1, capacity a power of two */
} gw_policy_index;

/* Room for <n> keys. 0, or -1 when out of memory (<t> then holds nothing). */
int gw_policy_index_init(gw_policy_index *t, size_t n);
void gw_policy_index_free(gw_policy_index *t);

/* Maps <key> to <p> and the caller's number <idx> (a file's position while
 * a snapshot is built), unless <key> is there already: then nothing changes,
 * the holder's number goes to <*held> (when not NULL) and 1 is returned.
 * Never more than the <n> keys of gw_policy_index_init(). */
int gw_policy_index_put(gw_policy_index *t, const char *key, const gw_policy *p, size_t idx,
                        size_t *held);

/* The policy mapped from <key>, or NULL (also for a NULL <key>). */
const gw_policy *gw_policy_index_get(const gw_policy_index *t, const char *key);

#endif
