/*
 * Security events: a second chained JSON Lines stream (CGU §8, issue 6
 * point 7), next to the access journal and written by the same writer
 * (gw_journal_open_opts: same chain, rotation, retention and checkpoints,
 * verifiable with `opale-gateway --verify-journal`).
 *
 * The workers report what they see when a request or a TLS handshake ends
 * (gw_events_request, gw_events_handshake); the main thread reports admin
 * actions (gw_events_admin). Detectors keep small bounded state shared by the
 * workers (16 mutex-striped hash tables per detector, least recently seen
 * subject evicted past the caps, evictions counted) and write one record per
 * event:
 *
 *   {"v":1,"type":"security_event","ts":"…","event":"auth.failures",
 *    "severity":"high", …details…,"seq":N,"prev":"…","hash":"…"}
 *
 * Events at or above a severity can run an alert command, from a dedicated
 * thread (posix_spawn, rate-limited, children reaped): a worker only appends
 * to a bounded queue. docs/journal.md, "Security events", has the types,
 * their details, the detectors' exact rules and the hook's contract.
 *
 * Every function accepts a NULL gw_events and then does nothing, so a server
 * without an events stream needs no checks at the call sites.
 */
#ifndef GW_JOURNAL_EVENTS_H
#define GW_JOURNAL_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "journal/journal.h"

typedef struct gw_events gw_events;

/* Stable type names (gw_event_type_name): part of the record format. */
typedef enum gw_event_type {
    GW_EV_AUTH_FAILURES = 0,     /* "auth.failures" */
    GW_EV_CERT_UNKNOWN,          /* "cert.unknown" */
    GW_EV_SIREN_ENUMERATION,     /* "siren.enumeration" */
    GW_EV_QUOTA_STORM,           /* "quota.storm" */
    GW_EV_MAINTENANCE_ACCESS,    /* "maintenance.access" */
    GW_EV_CERT_EXPIRING,         /* "cert.expiring" */
    GW_EV_ADMIN_RELOAD,          /* "admin.reload" */
    GW_EV_ADMIN_RELOAD_REFUSED,  /* "admin.reload_refused" */
    GW_EV_ADMIN_SUSPEND,         /* "admin.suspend" */
    GW_EV_ADMIN_RESUME,          /* "admin.resume" */
    GW_EV_POLICY_REJECTED,       /* "policy.rejected" */
    GW_EV_ADMIN_AUTH_FAILED,     /* "admin.auth_failed" */
    GW_EV_ADMIN_AUTH_BLOCKED,    /* "admin.auth_blocked" */
    GW_EV_DATAPASS_WEBHOOK,      /* "datapass.webhook" */
    GW_EV_DATAPASS_SYNC,         /* "datapass.sync" */
    GW_EV_HABILITATION_EXPIRING, /* "habilitation.expiring" */
    GW_EV_JOURNAL_BROKEN,        /* "journal.broken" (gw_events_integrity) */
    GW_EV_JOURNAL_BREAK_ACK,     /* "journal.break_ack" */
    GW_EV_JOURNAL_ANCHOR,        /* "journal.anchor_failed" */
    GW_EV_ADMIN_HOLD,            /* "admin.journal_hold" */
    GW_EV_ADMIN_HOLD_LIFTED,     /* "admin.journal_hold_lifted" */
    GW_EV_SUSPENSION_EXPIRED,    /* "suspension.expired" (gw_events_integrity) */
    GW_EV_ADMIN_CUT,             /* "admin.environment_cut" */
    GW_EV_ADMIN_CUT_LIFTED,      /* "admin.environment_restored" */
    GW_EV_REVOCATION,            /* "tls.revocation" (gw_events_integrity) */
    GW_EV_ADMIN_EVENT_ACK,       /* "admin.event_ack" (gw_events_integrity, medium) */
    GW_EV_H2_ABUSE,              /* "h2.abuse" (gw_events_integrity) */
    GW_EV__COUNT
} gw_event_type;

/* In increasing order; the config's journal.events.alert.min_severity stores
 * the same numbers (0 low .. 3 critical). */
typedef enum gw_event_severity {
    GW_SEV_LOW = 0,
    GW_SEV_MEDIUM = 1,
    GW_SEV_HIGH = 2,
    GW_SEV_CRITICAL = 3
} gw_event_severity;

const char *gw_event_type_name(gw_event_type t);         /* NULL when out of range */
const char *gw_event_severity_name(gw_event_severity s); /* NULL when out of range */
/* "low" .. "critical" -> 0..3; -1 for anything else. */
int gw_event_severity_parse(const char *s);

/* Defaults, used for the zero members of gw_events_opts. */
#define GW_EVENTS_AUTH_THRESHOLD 10
#define GW_EVENTS_AUTH_WINDOW_S 60
#define GW_EVENTS_ENUM_DISTINCT 100
#define GW_EVENTS_ENUM_WINDOW_S 300
#define GW_EVENTS_STORM_REFUSALS 100
#define GW_EVENTS_STORM_WINDOW_S 60
#define GW_EVENTS_CERT_EXPIRY_DAYS 30
#define GW_EVENTS_ALERT_PER_MINUTE 10
#define GW_EVENTS_MAX_SUBJECTS 100000    /* per detector */
#define GW_EVENTS_MAX_SLOTS 2000000      /* remembered timestamps per detector */
#define GW_EVENTS_ALERT_TIMEOUT_MS 30000 /* an alert command running longer is killed */

typedef struct gw_events_opts {
    /* The stream: path, queue, rotation, retention, checkpoints and signer,
     * exactly as for the access journal. Must be chained (raw = 0). */
    gw_journal_opts journal;
    /* auth.failures: >= auth_threshold failures from one IP, or with one
     * certificate, within auth_window_s. */
    unsigned auth_threshold, auth_window_s;
    /* siren.enumeration: one consumer, >= enum_distinct SIRENs in enum_window_s. */
    unsigned enum_distinct, enum_window_s;
    /* quota.storm: >= storm_refusals 429s for one habilitation in storm_window_s. */
    unsigned storm_refusals, storm_window_s;
    /* cert.expiring: a certificate expiring within this many days; 0 uses
     * the default, cert_expiry_off disables the check. */
    unsigned cert_expiry_days;
    int cert_expiry_off;
    /* Alert hook: NULL or "" for none. Run as: command TYPE SEVERITY, with the
     * event's JSON in OPALE_EVENT, for events >= alert_min_severity, at most
     * alert_max_per_minute per minute (sliding). */
    const char *alert_command;
    gw_event_severity alert_min_severity;
    unsigned alert_max_per_minute;
    unsigned alert_timeout_ms; /* 0: GW_EVENTS_ALERT_TIMEOUT_MS */
    /* Memory caps per detector; 0: the defaults above. */
    size_t max_subjects;
    size_t max_slots;
} gw_events_opts;

/* Open the stream (gw_journal_open_opts) and start the alert thread when a
 * command is set. NULL and a malloc'd <*err> on failure. */
gw_events *gw_events_open(const gw_events_opts *o, char **err);

/* Stop the alert thread (queued alerts still run; running commands get a few
 * seconds, then are killed; every child is reaped), then close the stream
 * (drain, fdatasync). The callers of the report functions must have stopped. */
void gw_events_close(gw_events *ev);

/* SIGUSR1: reopen the stream's file (gw_journal_reopen). Main loop only. */
void gw_events_reopen(gw_events *ev);

/* The underlying chained journal (stats, health), or NULL. */
gw_journal *gw_events_journal(gw_events *ev);

/* A request has ended (its access record is being written). Strings may be
 * NULL. Thread-safe; takes at most one stripe lock per detector concerned and
 * never does I/O. */
typedef struct gw_event_request {
    const char *client_ip;       /* effective client address */
    const char *cert_sha256;     /* presented certificate (hex), NULL when none */
    const char *cert_subject;    /* its subject DN */
    const char *consumer;        /* client_id of the identified habilitation */
    const char *habilitation;    /* its id */
    const char *contact;         /* its technical contact (contacts.technical), or NULL */
    int valid_until;             /* its last valid day, yyyymmdd (UTC); 0: unknown */
    const char *siren;           /* SIREN of the path, when the route has one */
    const char *reason;          /* journal reason of a refusal */
    int auth_failure;            /* mtls.*, bearer.* (900901/900902), token.invalid_client */
    int cert_unknown;            /* a verified certificate bound to no habilitation */
    int throttled;               /* answered 429 */
    long long maintenance_until; /* > 0: refused by a maintenance slot ending then (Unix s) */
} gw_event_request;

void gw_events_request(gw_events *ev, const gw_event_request *r);

/* A TLS handshake has ended: refused (<refused> = the journal reason, an
 * authentication failure) or completed (<refused> NULL: the certificate's
 * expiry is checked). Thread-safe, no I/O. */
typedef struct gw_event_handshake {
    const char *client_ip;
    const char *cert_sha256; /* NULL when no certificate was presented */
    const char *cert_subject;
    long long not_after; /* the certificate's notAfter (Unix s), 0 when unknown */
    const char *refused;
} gw_event_handshake;

void gw_events_handshake(gw_events *ev, const gw_event_handshake *h);

/* 1 and <*not_after> (Unix s) when a completed handshake presented the
 * certificate <sha256> (hex) since the start, else 0. The table is bounded
 * like the detectors' (the least recently presented are forgotten first).
 * Thread-safe. */
int gw_events_cert_not_after(gw_events *ev, const char *sha256, long long *not_after);

/* An admin action (type GW_EV_ADMIN_*): written at once. Members that do not
 * apply: NULL, or -1 for the numbers. */
typedef struct gw_event_admin {
    const char *by;           /* "admin API" or "SIGHUP" */
    const char *client_ip;    /* the admin API caller */
    const char *who;          /* its operator's name (admin.operators), NULL: none */
    const char *consumer;     /* suspend/resume: the client_id */
    const char *habilitation; /* its habilitation id */
    const char *contact;      /* suspend/resume: its technical contact, or NULL */
    long habilitations;       /* reload: habilitations now loaded */
    long errors;              /* reload refused: number of errors */
    const char *error;        /* reload refused: the first error; suspend: why not persisted */
    int persisted;            /* suspend/resume: 1 saved to the suspensions file, 0 not */
    const char *method;       /* auth_failed/blocked: the request refused */
    const char *path;         /* its path (without the query) */
    const char *reason;       /* auth_failed: "admin.no_token" | "admin.bad_token";
                                 suspend/resume: the operator's reason */
    const char *until;        /* suspend: its end (UTC), NULL: until resumed */
    long failures;            /* auth_failed/blocked: failures of the source in the window */
    long blocked_s;           /* auth_blocked: how long the source is refused (429) */
} gw_event_admin;

void gw_events_admin(gw_events *ev, gw_event_type type, const gw_event_admin *a);

/* A policy file was rejected at start or at a reload (<by>: "start",
 * "SIGHUP", "admin API"): its partner is refused (<kept> 0) or keeps its
 * previous version (<kept> 1). <error> is the file's first error. Written at
 * once, severity high. */
void gw_events_policy_rejected(gw_events *ev, const char *by, const char *file, const char *error,
                               int kept);

/* A DataPass webhook accepted or refused, or a sync's outcome
 * (docs/datapass.md). Members that do not apply: NULL, or -1. */
typedef struct gw_event_datapass {
    const char *outcome;      /* gw_dp_outcome's name, or the sync's "ok" | "failed" */
    const char *event;        /* the DataPass event name ("approve", ...) */
    const char *event_id;     /* its id */
    const char *habilitation; /* "H456" */
    const char *environment;  /* X-App-Environment */
    const char *client_ip;    /* the webhook's source address */
    const char *consumer;     /* the client_id of the policy concerned */
    const char *contact;      /* its technical contact (contacts.technical) */
    const char *file;         /* the policy file written */
    const char *detail;       /* why refused, or what changed */
    long changed;             /* sync: policy files written */
    long differences;         /* sync: differences found */
    int high;                 /* 1: severity high (refused signature, revocation) */
} gw_event_datapass;

void gw_events_datapass(gw_events *ev, gw_event_type type, const gw_event_datapass *d);

/* The journal's integrity (docs/journal.md, "Tail check", "Anchoring",
 * "Legal hold"): <type> one of GW_EV_JOURNAL_BROKEN (critical),
 * GW_EV_JOURNAL_BREAK_ACK, GW_EV_JOURNAL_ANCHOR, GW_EV_ADMIN_HOLD,
 * GW_EV_ADMIN_HOLD_LIFTED, GW_EV_SUSPENSION_EXPIRED, GW_EV_ADMIN_CUT,
 * GW_EV_ADMIN_CUT_LIFTED, GW_EV_REVOCATION, GW_EV_H2_ABUSE (high),
 * GW_EV_ADMIN_EVENT_ACK (medium). The members of <fields> (a JSON object,
 * taken in every case; NULL: none) are added to the event. Written at once. */
struct json_t;
void gw_events_integrity(gw_events *ev, gw_event_type type, struct json_t *fields);

/* Called with every event record as it is written (its compact JSON text,
 * <len> bytes, no newline, not NUL-terminated), from whichever thread
 * raised it: must be quick, thread-safe and must not raise an event. The
 * console's event list (admin/eventlog.h). */
typedef void (*gw_events_observer_fn)(void *arg, gw_event_type type, gw_event_severity sev,
                                      const char *json, size_t len);
typedef struct gw_events_observer {
    gw_events_observer_fn fn;
    void *arg;
} gw_events_observer;

/* Set (NULL: remove) the one observer. Once this returns, the previous
 * observer is no longer being called and will not be again. */
void gw_events_set_observer(gw_events *ev, const gw_events_observer *o);

typedef struct gw_events_stats {
    uint64_t by_type[GW_EV__COUNT]; /* events raised, by type */
    uint64_t refused;               /* records the stream refused (queue full, OOM) */
    uint64_t tracked;               /* subjects held now, all detectors */
    uint64_t evicted;               /* subjects evicted to stay within the caps */
    uint64_t alerts_run;            /* alert commands started */
    uint64_t alerts_failed;         /* could not start, exited non-zero, signalled, timed out */
    uint64_t alerts_rate_limited;   /* not run: over max_per_minute */
    uint64_t alerts_dropped;        /* not run: queue full or closing */
    uint64_t alerts_running;        /* children not reaped yet */
} gw_events_stats;

/* Consistent enough for metrics (each counter exact, read one by one). */
void gw_events_get_stats(gw_events *ev, gw_events_stats *st);

/* FOR UNIT TESTS ONLY: the detectors' clock reads <ms> (milliseconds; the
 * wall clock for certificate expiry is ms / 1000); 0 restores the real
 * clocks. */
void gw_events_test_set_time(gw_events *ev, long long ms);

#endif
