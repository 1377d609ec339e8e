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

/* Read a whole file; NULL with errno set. */
char *gw_dp_read_file(const char *path, size_t *len);

#endif
