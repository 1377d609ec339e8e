/*
 * Policy directory watch: reload the policies when policies_dir changes
 * ("policies_watch": true), without SIGHUP.
 *
 * Contract: gw_policy_watch_start() watches <dir> itself (not its
 * subdirectories) with inotify for entries written, created, deleted or
 * renamed in or out. That covers a file edited in place, an editor's
 * write-and-rename, and the Kubernetes ConfigMap volume update, which writes
 * a new hidden "..<timestamp>" directory and renames a "..data_tmp" symlink
 * over "..data" (IN_MOVED_TO on <dir>). Each event (re)arms a timer of
 * <debounce_ms>; when it fires, <cb>(<arg>) runs once on <base>'s thread, so a
 * burst of changes gives one reload. The caller's callback does the reload
 * (the same path as SIGHUP, so a broken edit keeps the last good policies).
 * Returns NULL with a malloc'ed message in <*err> when inotify cannot be set
 * up. gw_policy_watch_stop() (NULL accepted) removes the watch and the timer.
 */
#ifndef GW_POLICY_WATCH_H
#define GW_POLICY_WATCH_H

struct event_base;

/* The debounce of the gateway's watch: a burst of changes within it gives one
 * reload (docs/configuration.md, policies_watch). */
#define GW_POLICY_WATCH_DEBOUNCE_MS 500

typedef struct gw_policy_watch gw_policy_watch;
typedef void (*gw_policy_watch_cb)(void *arg);

gw_policy_watch *gw_policy_watch_start(struct event_base *base, const char *dir,
                                       unsigned debounce_ms, gw_policy_watch_cb cb, void *arg,
                                       char **err);
void gw_policy_watch_stop(gw_policy_watch *w);

#endif
