/*
 * The webhook replay store: the ids of the events already applied, each with
 * its fired_at, kept for the replay window and persisted in one JSON file
 * ({"seen": {"<id>": <fired_at>, ...}}) rewritten atomically after each new
 * id, so that a replay is recognised across a restart. Main thread only.
 */
#ifndef GW_DP_SEEN_H
#define GW_DP_SEEN_H

#include <stddef.h>

typedef struct gw_dp_seen gw_dp_seen;

/* At most this many ids are held; past it a new event is refused (503)
 * until older ones leave the window. */
#define GW_DP_SEEN_MAX 100000

/* Load <path> if it exists (a missing file is an empty store). NULL with a
 * malloc'd "<path>: json.path: message" in <*err> when unreadable. */
gw_dp_seen *gw_dp_seen_open(const char *path, long window_s, char **err);
void gw_dp_seen_free(gw_dp_seen *s);

/* 1 when <id> was recorded and is still within the window at <now>. */
int gw_dp_seen_has(gw_dp_seen *s, const char *id, long long now);

/* Record <id> (fired at <fired_at>), forget the ids fired before
 * <now> - window, then rewrite the file. 0; -1 with <*err> (malloc'd) when
 * the file cannot be written (the id is still held in memory); -2 when the
 * store is full. */
int gw_dp_seen_add(gw_dp_seen *s, const char *id, long long fired_at, long long now, char **err);

size_t gw_dp_seen_count(const gw_dp_seen *s);

#endif
