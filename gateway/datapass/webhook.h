/*
 * DataPass webhooks, the parts without I/O on sockets: the signature check
 * over the raw body, the body parser (fuzzed: tests/fuzz/fuzz_datapass.c),
 * the mapping of an event to an action, and the rewrite of one policy file's
 * DataPass-owned fields (docs/datapass.md, "Who owns which field").
 */
#ifndef GW_DP_WEBHOOK_H
#define GW_DP_WEBHOOK_H

#include <stddef.h>

#include <jansson.h>

#include "conf/conf.h"

/* Webhook outcomes, the "outcome" of the security event and the metric's
 * label. */
typedef enum {
    GW_DP_OUT_APPLIED = 0, /* policy changed (or pending created), reloaded */
    GW_DP_OUT_ACKED,       /* an event without effect, journalled */
    GW_DP_OUT_REPLAY,      /* id seen before: 200 without effect */
    GW_DP_OUT_BAD_SIGNATURE,
    GW_DP_OUT_BAD_ENVIRONMENT,
    GW_DP_OUT_BAD_REQUEST, /* content type, JSON, fields, definition */
    GW_DP_OUT_TOO_LARGE,
    GW_DP_OUT_TOO_OLD, /* fired_at before the replay window */
    GW_DP_OUT_FAILED,  /* could not write the file or the store */
    GW_DP_OUT__COUNT
} gw_dp_outcome;
/* What an event does to the policies. */
typedef enum gw_dp_action {
    GW_DP_OTHER = 0, /* journalled and acknowledged, nothing else */
    GW_DP_REVOKE,    /* revoke, archive: refused at once, state "revoked" */
    GW_DP_UPDATE     /* approve, update, admin_update, update_by_api */
} gw_dp_action;

/* One webhook body, parsed. Owned by the caller: gw_dp_event_clear(). */
typedef struct gw_dp_event {
    json_t *root;        /* the whole body */
    char id[65];         /* the event id ("id", an integer or a string) */
    char name[33];       /* "event": "approve", "revoke", ... */
    long long fired_at;  /* "fired_at", Unix seconds */
    json_t *hab;         /* "data", the habilitation (borrowed from root) or NULL */
    char hab_id[24];     /* "H456" from data.id, "" without data */
    char definition[24]; /* data.definition_id, "" without data */
    gw_dp_action action;
} gw_dp_event;

/*
 * Parse a webhook body (<body>, <len> bytes, not NUL-terminated). Accepted:
 * a JSON object with "id" (integer >= 0 or a string of 1..64 printable ASCII
 * bytes), "event" (a string of 1..32 bytes of [a-z_]), "fired_at" (integer
 * Unix seconds) and, for the events that change a policy (revoke, archive,
 * approve, update, admin_update, update_by_api), "data": an object with
 * "id" (integer >= 1) and "definition_id" (a string); other keys are
 * ignored. Returns 0, or -1 with a constant message in <*why>; <ev> holds
 * nothing to free on -1.
 */
int gw_dp_event_parse(const char *body, size_t len, gw_dp_event *ev, const char **why);
void gw_dp_event_clear(gw_dp_event *ev);

gw_dp_action gw_dp_action_of(const char *event_name);

/*
 * 1 when <header> is "sha256=" followed by the 64 lowercase (or uppercase)
 * hex digits of HMAC-SHA256(<secret>, <body>); the comparison of the digests
 * is in constant time. 0 otherwise (absent header, wrong form, mismatch).
 */
int gw_dp_signature_ok(const unsigned char *secret, size_t secret_len, const char *body, size_t len,
                       const char *header);

/*
 * The policy file <old_text> (may be NULL: a new pending policy) with the
 * DataPass-owned fields taken from <ev>'s habilitation: habilitation.state,
 * legal_basis, retention_months, organization, contacts.technical and
 * quota.per_minute (the mapping of --import-datapass, gw_datapass_import).
 * Every other field is kept as it is. For GW_DP_REVOKE only the state is
 * changed, to "revoked". Without <old_text> the result is the import's
 * skeleton. Returns a malloc'd JSON text ending in '\n', or NULL with errors
 * in <errs> as "<file>: json.path: message".
 */
char *gw_dp_policy_rewrite(const char *file, const char *old_text, const gw_dp_event *ev,
                           gw_errlist *errs);

/*
 * Replace <path> with <text> atomically: a temporary file in the same
 * directory (a hidden name, so the policy loader never reads it), fsync,
 * rename over <path>, fsync of the directory. A crash at any point leaves
 * either the old file or the new one. Returns 0 or -1 with a malloc'd
 * message in <*err>. <crash_before_rename> (tests only, docs/testing.md)
 * ends the process with status 86 once the temporary file is synced.
 */
int gw_dp_write_atomic(const char *path, const char *text, int crash_before_rename, char **err);

struct gw_policy_set;
struct gw_suspensions;

/* Where an event is applied. */
typedef struct gw_dp_apply_ctx {
    const char *policies_dir;        /* absolute */
    const struct gw_policy_set *set; /* the policies in force (habilitation id -> file) */
    struct gw_suspensions *susp;     /* the kill switch; NULL: none (--sync-datapass) */
    int crash_before_rename;         /* tests only: gw_dp_write_atomic */
} gw_dp_apply_ctx;

/* What applying one event did. */
typedef struct gw_dp_applied {
    gw_dp_outcome outcome; /* APPLIED, ACKED or FAILED */
    int status;            /* the webhook's HTTP answer: 200, 422, 500 */
    int written;           /* a file was rewritten */
    int pending;           /* that file is a pending policy (no reload needed) */
    char detail[512];
    char consumer[129];
    char contact[255];
    char file[512];
} gw_dp_applied;

/*
 * Apply <ev> (GW_DP_REVOKE or GW_DP_UPDATE) to the policy files of <c>:
 * a revocation puts the consumer in the kill switch first (when <c>->susp),
 * then writes "revoked"; an update rewrites the DataPass-owned fields (a
 * rewrite the policy loader would refuse is not written: 422), or creates
 * or updates "<id>.json.pending" when no policy has the habilitation; an
 * update to "active" lifts a suspension that a DataPass revocation set.
 * Every file is written with gw_dp_write_atomic. The caller reloads the
 * policies when <out>->written && !<out>->pending.
 */
void gw_dp_apply(const gw_dp_apply_ctx *c, const gw_dp_event *ev, gw_dp_applied *out);

/* Read a whole file; NULL with errno set. */
char *gw_dp_read_file(const char *path, size_t *len);

#endif
