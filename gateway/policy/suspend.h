/*
 * Kill switch (CGU §8: isolate or cut off a consumer). A small mutable set of
 * suspended client_ids, shared by every worker and independent of the
 * immutable policy snapshots (a reload keeps it), persisted in one JSON file
 * so that a suspension survives a restart.
 */
#ifndef GW_SUSPEND_H
#define GW_SUSPEND_H

#include <stddef.h>
#include <time.h>

typedef struct gw_suspensions gw_suspensions;

/* Load <path> if it exists (a missing file is an empty set); NULL and a
 * malloc'd "<path>: json.path: message" in <*err> when it is unreadable or
 * malformed. */
gw_suspensions *gw_suspensions_open(const char *path, char **err);
void gw_suspensions_free(gw_suspensions *s);

/* Thread-safe, cheap (read lock + hash lookup): called on every request. */
int gw_suspensions_is_suspended(gw_suspensions *s, const char *client_id);

/* Suspend (<on> = 1) or resume (<on> = 0) <client_id>. The in-memory change is
 * applied first, so that the very next request sees it, then the file is
 * rewritten atomically (temp file, fsync, rename, fsync of the directory).
 * Returns 0, or -1 with a malloc'd <*err> when persisting failed (the change
 * is then still in effect in memory; the caller reports it). */
int gw_suspensions_set(gw_suspensions *s, const char *client_id, int on, const char *why,
                       char **err);

typedef struct gw_suspension_info {
    char client_id[129];
    time_t since;
    char why[128];
} gw_suspension_info;

/* Copy up to <cap> entries into <out>; returns the total count. */
size_t gw_suspensions_list(gw_suspensions *s, gw_suspension_info *out, size_t cap);

#endif
