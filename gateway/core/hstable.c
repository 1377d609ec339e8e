/* Handshakes in progress by source address (see hstable.h): a chained hash
 * of counters, FNV-1a over the family and the address bytes. */
#include "core/hstable.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lib/hash.h"

#define HS_BUCKETS 1024

typedef struct hs_entry {
    struct hs_entry *next;
    int family;
    unsigned char addr[16];
    unsigned n;
} hs_entry;

struct gw_hs_table {
    hs_entry *b[HS_BUCKETS];
    size_t n; /* entries */
};

gw_hs_table *gw_hs_table_new(void)
{
    return calloc(1, sizeof(gw_hs_table));
}

void gw_hs_table_free(gw_hs_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < HS_BUCKETS; i++) {
        hs_entry *e = t->b[i];
        while (e != NULL) {
            hs_entry *n = e->next;
            free(e);
            e = n;
        }
    }
    free(t);
}

static hs_entry **hs_find(const gw_hs_table *t, int family, const unsigned char *addr)
{
    size_t al = family == AF_INET ? 4 : 16;
    unsigned char fam = (unsigned char)family;
    uint64_t h = gw_fnv1a64_add(gw_fnv1a64(&fam, 1), addr, al);
    hs_entry *const *pp = &t->b[h % HS_BUCKETS];
    while (*pp != NULL && ((*pp)->family != family || memcmp((*pp)->addr, addr, al) != 0))
        pp = &(*pp)->next;
    return (hs_entry **)pp;
}

int gw_hs_enter(gw_hs_table *t, int family, const unsigned char *addr, unsigned limit)
{
    if (limit == 0 || t == NULL || (family != AF_INET && family != AF_INET6))
        return 1;
    hs_entry **pp = hs_find(t, family, addr);
    if (*pp == NULL) {
        hs_entry *e = calloc(1, sizeof(*e));
        if (e == NULL)
            return 0; /* fail closed: no memory to track it */
        e->family = family;
        memcpy(e->addr, addr, family == AF_INET ? 4 : 16);
        *pp = e;
        t->n++;
    }
    if ((*pp)->n >= limit)
        return 0;
    (*pp)->n++;
    return 1;
}

void gw_hs_leave(gw_hs_table *t, int family, const unsigned char *addr)
{
    if (t == NULL || (family != AF_INET && family != AF_INET6))
        return;
    hs_entry **pp = hs_find(t, family, addr);
    hs_entry *e = *pp;
    if (e == NULL)
        return;
    if (e->n > 0)
        e->n--;
    if (e->n == 0) {
        *pp = e->next;
        free(e);
        t->n--;
    }
}

unsigned gw_hs_count(const gw_hs_table *t, int family, const unsigned char *addr)
{
    if (t == NULL || (family != AF_INET && family != AF_INET6))
        return 0;
    hs_entry *e = *hs_find(t, family, addr);
    return e != NULL ? e->n : 0;
}

size_t gw_hs_sources(const gw_hs_table *t)
{
    return t != NULL ? t->n : 0;
}
