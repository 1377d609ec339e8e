/*
 * The pure part of revocation checking (no I/O, no locks, no OpenSSL):
 * what a cached OCSP answer means now, what a listener's failure policy
 * makes of it, when to ask again, what a CRL's age means, and the table
 * that finds a certificate's entry by its SHA-256 fingerprint.
 *
 * docs/security.md "Revocation" has the rules these functions implement.
 */
#ifndef GW_REVOC_CACHE_H
#define GW_REVOC_CACHE_H

#include <stddef.h>
#include <time.h>

#include "conf/conf.h"

/* Leeway on thisUpdate/nextUpdate (clock skew between us and a responder). */
#define GW_RV_LEEWAY_S 60

/* The last answer held for one certificate. */
typedef enum {
    GW_RV_ANS_NONE = 0, /* nothing yet */
    GW_RV_ANS_GOOD,
    GW_RV_ANS_REVOKED,
    GW_RV_ANS_UNKNOWN /* the responder does not know the certificate */
} gw_rv_answer;

typedef struct gw_rv_status {
    gw_rv_answer answer;
    time_t this_update; /* of the answer held */
    time_t next_update; /* 0: the responder gave none */
    time_t fetched_at;  /* when the answer held was received, 0: never */
    unsigned failures;  /* consecutive failed fetches since then */
} gw_rv_status;

/* What the status means at <now>. */
typedef enum {
    GW_RV_GOOD = 0,
    GW_RV_REVOKED,
    GW_RV_UNKNOWN,    /* the responder answered "unknown" */
    GW_RV_STALE,      /* the answer is past its nextUpdate (or too old) */
    GW_RV_UNAVAILABLE /* no answer was ever received */
} gw_rv_state;

/* <s> at <now>. "revoked" is final: it stays revoked even past nextUpdate.
 * An answer without nextUpdate is stale after 2 * <refresh_s>. */
gw_rv_state gw_rv_decide(const gw_rv_status *s, time_t now, unsigned refresh_s);

/* A handshake's verdict. */
typedef enum { GW_RV_ACCEPT = 0, GW_RV_ACCEPT_SOFT, GW_RV_REFUSE } gw_rv_verdict;

/* The listener's policy applied to <st>: good accepts; revoked refuses in
 * every mode; unknown, stale and unavailable refuse in "hard" mode and are
 * accepted (soft-fail, journalled) in "soft" mode. <*reason> gets the journal
 * reason ("tls.ocsp_revoked", "tls.ocsp_unknown", "tls.ocsp_stale",
 * "tls.ocsp_unavailable"), NULL for good. Mode "off" accepts everything. */
gw_rv_verdict gw_rv_policy(gw_rv_state st, gw_ocsp_mode mode, const char **reason);

/* Name of a state for metrics: "good", "revoked", "unknown", "stale",
 * "unavailable". */
const char *gw_rv_state_name(gw_rv_state st);

/* When to fetch the status again, after the fetch at <now> succeeded
 * (<failed> 0) or failed (1; s->failures already counted): on success, at
 * <refresh_s> at most and a little before nextUpdate (a tenth of the
 * answer's validity, at most 5 minutes), never sooner than 5 s; on failure,
 * 5 s doubled per consecutive failure, at most <refresh_s> and 5 minutes. */
time_t gw_rv_next_fetch(const gw_rv_status *s, time_t now, unsigned refresh_s, int failed);

/* A CRL's age. */
typedef enum { GW_CRL_CURRENT = 0, GW_CRL_GRACE, GW_CRL_EXPIRED } gw_crl_state;

/* A CRL whose earliest nextUpdate is <next_update> (0: none, always
 * current) at <now>, with <grace_s> of grace past it. */
gw_crl_state gw_crl_decide(time_t next_update, time_t now, unsigned grace_s);

/* When to fetch a CRL from its URL again: <fetch_s> at most, and at its
 * nextUpdate when that comes sooner; after a failure, 30 s doubled per
 * consecutive failure (at most <fetch_s>). Never sooner than 5 s. */
time_t gw_crl_next_fetch(time_t next_update, time_t now, unsigned fetch_s, unsigned failures);

/* A table from a 32-byte fingerprint to an index (the position an entry was
 * added at: 0, 1, 2, ...), open addressing. Not thread-safe. */
typedef struct gw_rv_table {
    unsigned char (*keys)[32]; /* by index */
    size_t n, cap;             /* entries, capacity of keys */
    long *slots;               /* hash slots: index or -1 */
    size_t nslots;             /* power of two, > 2 * n */
} gw_rv_table;

/* The index of <fp>, or -1. */
long gw_rv_table_find(const gw_rv_table *t, const unsigned char fp[32]);
/* Adds <fp> (not present) and returns its index, or -1 (out of memory). */
long gw_rv_table_add(gw_rv_table *t, const unsigned char fp[32]);
void gw_rv_table_free(gw_rv_table *t);

/* 64 hex digits to 32 bytes: 0, or -1 when <hex> is not that. */
int gw_rv_fp_from_hex(const char *hex, unsigned char fp[32]);

#endif
