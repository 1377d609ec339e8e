/*
 * The alert hook of the security events (journal/alerts.c). Internal to
 * gateway/journal/.
 *
 * gw_alerts_offer() copies a record into a bounded queue (rate limit checked
 * there, with a sliding minute of start times); the alert thread
 * posix_spawn()s the command with a clean environment and every descriptor
 * above 2 closed, polls its children with waitpid(pid, WNOHANG) (never
 * waitpid(-1): other children of the process are not ours), kills those that
 * overrun the timeout and reports failures on stderr.
 */
#ifndef GW_JOURNAL_ALERTS_H
#define GW_JOURNAL_ALERTS_H

#include <stddef.h>
#include <stdint.h>

#include "journal/events.h"

typedef struct gw_alerts gw_alerts;

/* Starts the alert thread for <cmd> (run for records of at least <min_sev>,
 * at most <per_minute> starts a minute, each killed after <timeout_ms>).
 * NULL with <*err> (malloc'd) when out of memory or the thread cannot
 * start. */
gw_alerts *gw_alerts_start(const char *cmd, gw_event_severity min_sev, unsigned per_minute,
                           unsigned timeout_ms, char **err);

/* Queues the record <json>/<len> of an event of <type> and <sev>, unless
 * below the minimum severity, over the rate limit (counted) or the queue is
 * full (counted as dropped). <now_ms> is the events' clock, for the rate
 * limit. Any thread. <a> may be NULL (no hook: nothing happens). */
void gw_alerts_offer(gw_alerts *a, const char *json, size_t len, gw_event_type type,
                     gw_event_severity sev, uint64_t now_ms);

/* Stops taking alerts, gives the running commands a little time (at most
 * the timeout, at most 5 s), kills the rest, joins the thread and frees
 * <a>. NULL-safe. */
void gw_alerts_stop(gw_alerts *a);

/* The alert counters into <st> (alerts_run, alerts_failed, alerts_running,
 * alerts_rate_limited, alerts_dropped). NULL-safe (nothing set). */
void gw_alerts_stats(gw_alerts *a, gw_events_stats *st);

#endif
