/*
 * Handshakes in progress by source address (listeners[].max_handshakes_per_source):
 * a table of counters, one per address that has at least one. One table per
 * worker, touched by that worker's thread only; no event loop, no lock.
 */
#ifndef GW_CORE_HSTABLE_H
#define GW_CORE_HSTABLE_H

#include <stddef.h>

typedef struct gw_hs_table gw_hs_table;

/* An empty table, NULL when out of memory. */
gw_hs_table *gw_hs_table_new(void);
void gw_hs_table_free(gw_hs_table *t);

/* A handshake from <addr> (4 bytes for AF_INET, 16 for AF_INET6) starts:
 * returns 1 and counts it when the address has fewer than <limit> in
 * progress, else 0 (the caller closes the connection). <limit> 0, a NULL
 * table or another family: always 1, nothing counted. Out of memory: 0
 * (fail closed). */
int gw_hs_enter(gw_hs_table *t, int family, const unsigned char *addr, unsigned limit);

/* A handshake counted by gw_hs_enter() ended (done or failed). An address
 * whose count reaches 0 leaves the table; one never entered is ignored. */
void gw_hs_leave(gw_hs_table *t, int family, const unsigned char *addr);

/* The handshakes in progress from <addr>, and the addresses in the table. */
unsigned gw_hs_count(const gw_hs_table *t, int family, const unsigned char *addr);
size_t gw_hs_sources(const gw_hs_table *t);

#endif
