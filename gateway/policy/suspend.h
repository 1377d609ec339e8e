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

/* Thread-safe, cheap (no lock: the thread's view of the set, taken again
 * only after a change, and a hash lookup): called on every request. A
 * change is seen by every lookup that starts after it returned.
 * A suspension whose "until" has passed no longer counts; when one is due,
 * the first caller after it lifts it (gw_suspensions_sweep), unless a timer
 * sweeps (gw_suspensions_timer_sweeps): then a request never rewrites the
 * file. */
int gw_suspensions_is_suspended(gw_suspensions *s, const char *client_id);

/* Whether environment <env> ("sandbox" | "production") is cut (CGU §8
 * "coupure"): every consumer of it is refused. Same cost and expiry as
 * gw_suspensions_is_suspended. */
int gw_suspensions_is_cut(gw_suspensions *s, const char *env);

/* Suspend (<on> = 1) or resume (<on> = 0) <client_id>. The in-memory change is
 * applied first, so that the very next request sees it, then the file is
 * rewritten atomically (temp file, fsync, rename, fsync of the directory).
 * Returns 0, or -1 with a malloc'd <*err> when persisting failed (the change
 * is then still in effect in memory; the caller reports it). */
int gw_suspensions_set(gw_suspensions *s, const char *client_id, int on, const char *why,
                       char **err);

/* The longest "until" accepted, from now (docs/operations.md). */
#define GW_SUSPEND_MAX_S (366L * 86400L)
#define GW_SUSPEND_REASON_MAX 512

/* Suspend <client_id> with an operator's <reason> (required, 1..512 bytes),
 * <by> (who: "admin API from 127.0.0.1") and <until> (0: until resumed;
 * otherwise the suspension lifts itself then). An existing suspension takes
 * the new reason, by and until (its "since" stays). Same persistence and
 * return as gw_suspensions_set; <why> is the source tag ("admin API"). */
int gw_suspensions_suspend(gw_suspensions *s, const char *client_id, const char *why,
                           const char *reason, const char *by, time_t until, char **err);

/* Cut (<on> 1) or restore (<on> 0) environment <env>, same persistence. */
int gw_suspensions_cut(gw_suspensions *s, const char *env, int on, const char *reason,
                       const char *by, time_t until, char **err);

typedef struct gw_suspension_info {
    char client_id[129]; /* "" for an environment cut */
    char env[16];        /* an environment cut: its name; "" for a consumer */
    time_t since;
    time_t until; /* 0: none */
    char why[128];
    char reason[GW_SUSPEND_REASON_MAX + 1];
    char by[128];
} gw_suspension_info;

/* <client_id>'s suspension into <out>: 1, or 0 when not suspended. */
int gw_suspensions_get(gw_suspensions *s, const char *client_id, gw_suspension_info *out);

/* <env>'s cut into <out>: 1, or 0 when not cut. */
int gw_suspensions_cut_get(gw_suspensions *s, const char *env, gw_suspension_info *out);

/* Called once for every suspension or cut that lifted itself (its "until"
 * passed), after the file is rewritten, outside the locks. */
typedef void (*gw_suspension_expired_fn)(void *arg, const gw_suspension_info *info, int persisted);
void gw_suspensions_on_expired(gw_suspensions *s, gw_suspension_expired_fn fn, void *arg);

/* Lift every suspension and cut whose "until" is at or before <now>:
 * removed under the write lock (so each is reported once, whichever thread
 * gets there first), the file rewritten, then the callback. Returns how many
 * were lifted. Cheap when none is due (one atomic load). */
size_t gw_suspensions_sweep(gw_suspensions *s, time_t now);

/* A timer calls gw_suspensions_sweep() from now on (the admin listener's,
 * once a second): lookups stop sweeping, so no worker thread writes and
 * fsyncs the file on a request's path. */
void gw_suspensions_timer_sweeps(gw_suspensions *s);

/* "YYYY-MM-DDThh:mm:ss[.frac](Z|+hh:mm|-hh:mm)" (RFC 3339) to time_t; 0 or
 * -1 when malformed. */
int gw_rfc3339_parse(const char *str, time_t *out);

/* Copy up to <cap> entries into <out>; returns the total count. */
size_t gw_suspensions_list(gw_suspensions *s, gw_suspension_info *out, size_t cap);

#endif
