/* FNV-1a, 64 bits: the one hash of the gateway's in-memory tables (policy
 * indexes, the kill switch, quota stripes, event detectors, per-source
 * counters). Not for anything an attacker may choose to collide on
 * purpose where a collision costs more than a longer probe: every table
 * using it bounds its chains or its load. */
#ifndef GW_LIB_HASH_H
#define GW_LIB_HASH_H

#include <stddef.h>
#include <stdint.h>

#define GW_FNV1A64_INIT 14695981039346656037ULL

/* Adds <len> bytes to the running hash <h> (start from GW_FNV1A64_INIT). */
uint64_t gw_fnv1a64_add(uint64_t h, const void *data, size_t len);

/* The hash of <len> bytes. */
uint64_t gw_fnv1a64(const void *data, size_t len);

/* The hash of a NUL-terminated string (without its NUL). */
uint64_t gw_fnv1a64_str(const char *s);

#endif
