/*
 * The security events as the console lists them (GET /admin/events,
 * docs/console.md): the last GW_EVENTLOG_MAX events raised since the
 * gateway started, each numbered (1, 2, ... in the order they were
 * written) and acknowledgeable by an operator. Fed by the events stream's
 * observer (gw_events_set_observer), from any thread: one mutex. The
 * chained file (events.jsonl) stays the record; this is a view of its
 * recent part, lost on restart.
 */
#ifndef GW_ADMIN_EVENTLOG_H
#define GW_ADMIN_EVENTLOG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "journal/events.h"

#define GW_EVENTLOG_MAX 2000
#define GW_EVENTLOG_LIMIT 100     /* events per answer by default */
#define GW_EVENTLOG_LIMIT_MAX 500 /* ... and at most */

typedef struct gw_eventlog gw_eventlog;

/* A log of at most <cap> events (0: GW_EVENTLOG_MAX); NULL when out of
 * memory. */
gw_eventlog *gw_eventlog_new(size_t cap);
void gw_eventlog_free(gw_eventlog *l);

/* The observer to give gw_events_set_observer ({gw_eventlog_observe, l}):
 * keeps a copy of the record <json>/<len>. */
void gw_eventlog_observe(void *l, gw_event_type type, gw_event_severity sev, const char *json,
                         size_t len);

typedef struct gw_eventlog_query {
    const char *type;     /* exact event type, NULL: any */
    int min_severity;     /* 0..3: this severity and above */
    const char *consumer; /* exact client_id, NULL: any */
    uint64_t after;       /* only events with a greater id; 0: the last <limit> */
    size_t limit;         /* 1..GW_EVENTLOG_LIMIT_MAX */
} gw_eventlog_query;

/* {"events": [...], "next": id} (docs/openapi/admin.json, Events): the
 * matching events in increasing id; with <after>, the first <limit> after
 * it, else the last <limit>. "next" is the id to poll after: the last one
 * returned, or the last one looked at. Each event: {"id", "time", "type",
 * "severity", "consumer", "operator", "detail": the other members of the
 * record (chain members left out), "acked": null | {"operator", "time"}}. */
json_t *gw_eventlog_query_json(gw_eventlog *l, const gw_eventlog_query *q);

/* Acknowledge event <id> by <operator> at <time> (ISO). 0 done, 1 already
 * acknowledged (kept as it was), -1 no such event (never was, or no longer
 * held). <type> (may be NULL) receives the event's type (64 bytes). */
int gw_eventlog_ack(gw_eventlog *l, uint64_t id, const char *operator_name, const char *time,
                    char type[64]);

/* The notAfter (ISO) of the certificate <sha256> (hex) as the last
 * cert.expiring event about it said: 1 with <out> filled, 0 when none was
 * seen. The last GW_EVENTLOG_CERTS certificates are remembered. */
#define GW_EVENTLOG_CERTS 4096
int gw_eventlog_cert_not_after(gw_eventlog *l, const char *sha256, char out[32]);

/* The id of the last event logged (0: none yet). */
uint64_t gw_eventlog_last_id(gw_eventlog *l);

#endif
