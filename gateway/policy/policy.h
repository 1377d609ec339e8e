/*
 * Partner policies: one JSON file per DataPass habilitation, loaded into one
 * immutable, reference-counted snapshot with O(1) indexes by client
 * certificate fingerprint and by client_id. Knows nothing of HTTP or of the
 * event loop.
 *
 * Contract: gw_policy_set_load() reads every "*.json" file of <dir> (sorted by
 * name, other files ignored), validates each one and the set as a whole, and
 * returns a snapshot with refcount 1, or NULL with every problem appended to
 * <errs> as "FILE: json.path: message" (FILE = <dir>/<name> as given). It
 * never prints. A snapshot is never modified after load; readers on any
 * thread take a reference (gw_policy_set_ref) for as long as they use it.
 */
#ifndef GW_POLICY_H
#define GW_POLICY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"
#include "policy/cidr.h"   /* gw_cidr */
#include "policy/siren.h"  /* gw_siret_check, gw_siren_valid */
#include "policy/values.h" /* gw_date_parse, gw_email_valid */

typedef enum { GW_HAB_ACTIVE = 0, GW_HAB_SUSPENDED = 1, GW_HAB_REVOKED = 2 } gw_hab_state;

typedef struct gw_policy {
    char *file;       /* the file it came from */
    char *id;         /* "H456" */
    char *definition; /* "api_opale_sandbox" | "api_opale" */
    gw_env env;
    gw_hab_state state;
    int valid_from; /* yyyymmdd, inclusive */
    int valid_until;
    char *legal_basis;
    int retention_months; /* -1 when absent */
    char *org_siret;
    char *org_name; /* NULL when absent (DataPass's name is nullable) */
    char *client_id;
    char *id_teleservice;
    char (*certs)[65]; /* lowercase hex SHA-256 of the DER certificates */
    size_t ncerts;
    gw_cidr *ips;
    size_t nips;
    char **scopes;
    size_t nscopes;
    int year_from;
    int year_to;
    unsigned quota_per_minute; /* default 50 sandbox / 500 production */
    int has_secret;            /* consumer.client_secret_sha256 given */
    char secret_sha256[65];    /* lowercase hex SHA-256 of the client secret */
    char *contact_technical;   /* contacts.technical: an e-mail address, or NULL */
    /* Snapshots holding this policy (snapshot.c): a reload that keeps a
     * rejected file's previous version shares it with the old snapshot. */
    atomic_uint set_refs;
    uint64_t text_hash; /* FNV-1a of the file's text: "changed" in a reload's diff */
} gw_policy;

typedef struct gw_policy_set gw_policy_set;

typedef struct gw_policy_rules {
    const char *const *known_scopes; /* scopes of the route table */
    size_t nknown_scopes;
} gw_policy_rules;

/* Strict: NULL as soon as one file is rejected (gw_policy_set_build). */
gw_policy_set *gw_policy_set_load(const char *dir, const gw_policy_rules *rules, gw_errlist *errs);

/* A policy file whose version on disk is not served. */
typedef struct gw_policy_rejected {
    char *file;  /* as in the messages: <dir>/<name> */
    char *error; /* its first error, "FILE: json.path: message" */
    int kept;    /* 1: its previous version (from <prev>) serves instead */
} gw_policy_rejected;

/*
 * The unit of failure is the file. Reads every "*.json" file of <dir> like
 * gw_policy_set_load(), but a file that fails its own checks, or a
 * cross-file rule (a habilitation id, client_id or certificate fingerprint
 * also used by another file: every file involved), is left out of the
 * snapshot and listed in its rejected list. With <prev> (a reload), a
 * rejected file keeps the version <prev> held for the same file name, if
 * any. Every error goes to <errs>. Returns NULL only when <dir> cannot be
 * listed or memory runs out; a snapshot may hold no policy at all.
 */
gw_policy_set *gw_policy_set_build(const char *dir, const gw_policy_rules *rules,
                                   const gw_policy_set *prev, gw_errlist *errs);
size_t gw_policy_set_nrejected(const gw_policy_set *s);
const gw_policy_rejected *gw_policy_set_rejected_at(const gw_policy_set *s, size_t i);
/* Parse one policy file's text (for tests and --import-datapass checks). The
 * cross-file rules are not applied. Returns NULL with errors in <errs>. */
gw_policy *gw_policy_parse(const char *file, const char *text, const gw_policy_rules *rules,
                           gw_errlist *errs);
void gw_policy_free(gw_policy *p);

gw_policy_set *gw_policy_set_ref(gw_policy_set *s);
void gw_policy_set_unref(gw_policy_set *s); /* frees at zero; NULL-safe */

size_t gw_policy_set_count(const gw_policy_set *s);
const gw_policy *gw_policy_set_at(const gw_policy_set *s, size_t i);
/* O(1) lookups; NULL when unknown. <sha256hex> is 64 lowercase hex chars. */
const gw_policy *gw_policy_by_cert(const gw_policy_set *s, const char *sha256hex);
const gw_policy *gw_policy_by_client_id(const gw_policy_set *s, const char *client_id);

/* 1 when the client address is in the policy's allowlist. */
int gw_policy_ip_allowed(const gw_policy *p, int family, const unsigned char *addr);
/* 1 when <scope> is granted by the policy. */
int gw_policy_has_scope(const gw_policy *p, const char *scope);

/*
 * DataPass import: <text> is one habilitation in the DataPass public API shape
 * (see OPALE.md). Returns a malloc'd policy skeleton (pretty JSON text, ending
 * in '\n') or NULL with errors "FILE: json.path: message" in <errs>.
 */
char *gw_datapass_import(const char *file, const char *text, gw_errlist *errs);

/* What a reload changes, partner by partner (a partner is a habilitation
 * id). <changed>: same id, different file text. */
typedef struct gw_policy_diff {
    size_t before, after; /* partners in the old and the new set */
    size_t added, changed, removed;
} gw_policy_diff;

/* Compares <old> (may be NULL: nothing loaded) with <new>. */
void gw_policy_set_diff(const gw_policy_set *old, const gw_policy_set *new_set, gw_policy_diff *d);

/* 1 when a reload with <d> would empty the policy set and must be refused
 * unless forced (docs/policies.md "A reload that empties the set"): the old
 * set had partners and the new one has none, or more than half of the old
 * set's partners would be removed at once. */
int gw_policy_diff_empties(const gw_policy_diff *d);

/* An empty snapshot (refcount 1): no policy, every lookup NULL, so every
 * guarded request is refused. For a gateway without policies_dir. */
gw_policy_set *gw_policy_set_empty(void);

#endif
