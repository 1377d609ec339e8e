/* The snapshot's hash indexes: contract in policy/index.h. */
#include "policy/index.h"

#include <stdlib.h>
#include <string.h>

#include "lib/hash.h"

struct gw_policy_index_slot {
    const char *key; /* NULL = empty */
    const gw_policy *p;
    size_t idx;
};

int gw_policy_index_init(gw_policy_index *t, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    t->slots = calloc(cap, sizeof(*t->slots));
    t->mask = cap - 1;
    return t->slots == NULL ? -1 : 0;
}

void gw_policy_index_free(gw_policy_index *t)
{
    free(t->slots);
    t->slots = NULL;
}

/* The slot holding <key>, or the empty slot where it would go. */
static gw_policy_index_slot *find(const gw_policy_index *t, const char *key)
{
    size_t i = (size_t)gw_fnv1a64_str(key) & t->mask;
    while (t->slots[i].key != NULL && strcmp(t->slots[i].key, key) != 0)
        i = (i + 1) & t->mask;
    return &t->slots[i];
}

int gw_policy_index_put(gw_policy_index *t, const char *key, const gw_policy *p, size_t idx,
                        size_t *held)
{
    gw_policy_index_slot *s = find(t, key);
    if (s->key != NULL) {
        if (held != NULL)
            *held = s->idx;
        return 1;
    }
    s->key = key;
    s->p = p;
    s->idx = idx;
    return 0;
}

const gw_policy *gw_policy_index_get(const gw_policy_index *t, const char *key)
{
    if (t->slots == NULL || key == NULL)
        return NULL;
    return find(t, key)->p;
}
