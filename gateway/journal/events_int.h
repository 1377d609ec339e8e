/*
 * Inside the security events (events.c: the object, its clock and its
 * records; detectors.c: the detectors; subjects.c: their tables; alerts.c:
 * the alert hook). Internal to gateway/journal/.
 */
#ifndef GW_JOURNAL_EVENTS_INT_H
#define GW_JOURNAL_EVENTS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <jansson.h>

#include "journal/alerts.h"
#include "journal/events.h"
#include "journal/subjects.h"

/* One subject table per detector. */
enum {
    GW_EVTAB_AUTH,
    GW_EVTAB_UNKNOWN,
    GW_EVTAB_EXPIRING,
    GW_EVTAB_ENUM,
    GW_EVTAB_STORM,
    GW_EVTAB_MAINT,
    GW_EVTAB__COUNT
};

struct gw_events {
    gw_journal *j;
    gw_subjects t[GW_EVTAB__COUNT];
    int tables_ok;
    gw_subjects certs; /* certificates seen at a handshake, <mark> = notAfter */
    int certs_ok;
    uint32_t auth_n, enum_n, storm_n;
    uint64_t auth_w, enum_w, storm_w;
    unsigned expiry_days;
    atomic_llong test_ms;
    atomic_ullong by_type[GW_EV__COUNT];
    atomic_ullong refused;
    gw_alerts *alerts;                  /* NULL: no alert hook */
    pthread_mutex_t obs_mu;             /* held while the observer is called or set */
    const gw_events_observer *observer; /* gw_events_set_observer */
};

/* The detectors' clock: monotonic ms, or the test clock when set. */
uint64_t gw_events_now(gw_events *ev);
/* Wall-clock seconds, or the test clock's. */
long long gw_events_wall(gw_events *ev);
/* <t> (Unix seconds) as "2026-11-27T22:00:00Z". */
void gw_events_iso(long long t, char out[32]);

/* A new record {"v", "type", "ts", "event", "severity"}, or NULL with
 * <*fail> set. The put functions add a member and set <*fail> when they
 * cannot; a NULL string or a negative integer adds nothing. Strings from
 * the outside (a certificate subject) are kept: invalid UTF-8 becomes
 * U+FFFD, as in the access journal. */
json_t *gw_events_record(gw_event_type type, gw_event_severity sev, int *fail);
void gw_events_put(json_t *o, const char *k, json_t *v, int *fail);
void gw_events_put_str(json_t *o, const char *k, const char *s, int *fail);
void gw_events_put_int(json_t *o, const char *k, long long v, int *fail);

/* Counts the event, writes its record <o> (taken; NULL or <fail>: counted
 * as refused) and offers it to the alert hook. */
void gw_events_emit(gw_events *ev, gw_event_type type, gw_event_severity sev, json_t *o, int fail);

#endif
