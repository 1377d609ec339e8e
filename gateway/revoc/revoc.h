/*
 * Revocation of partner certificates that stays current, and OCSP stapling
 * of the gateway's own certificates (issue 19, part 2; docs/security.md
 * "Revocation", docs/operations.md "Rolling a CRL").
 *
 * One gw_revoc per process. It owns one background thread (gw-revoc) that
 * does every slow thing: re-reading a CRL file when it changes (stat poll,
 * and at once on gw_revoc_reload, i.e. SIGHUP), fetching a CRL from its URL,
 * asking the OCSP responders for the status of every known partner
 * certificate and of the listener's own certificates. The workers only read
 * what the thread published:
 *   - the verify store (client CA + CRL) is swapped under a mutex and handed
 *     to each new handshake with a reference of its own (client hello
 *     callback), so a handshake in progress keeps the store it started with;
 *   - OCSP statuses sit in a table under a read-write lock; a handshake looks
 *     its certificate up and never waits on a responder: an unknown
 *     certificate is queued for the thread and decided now by the listener's
 *     soft/hard-fail policy;
 *   - staples are copied out under a mutex.
 *
 * A "revoked" answer also refuses the next request of every open connection
 * of that certificate: the mtls stage asks gw_revoc_revoked(), which takes
 * no lock and writes nothing shared while no certificate of a listener is
 * revoked (a count the thread keeps, read first).
 */
#ifndef GW_REVOC_H
#define GW_REVOC_H

#include <jansson.h>
#include <openssl/ssl.h>

#include "conf/conf.h"

typedef struct gw_revoc gw_revoc;

/* An alert: <event> is "tls.ocsp_revoked" (a partner certificate newly
 * revoked), "tls.ocsp_soft_fail", "tls.crl_invalid",
 * "tls.crl_expired", "tls.crl_fetch_failed", "tls.ocsp_fetch_failed" or
 * "tls.staple_failed"; <fields> (owned by the callee) has the details. Called
 * from the revocation thread, or from a worker for a soft-fail. */
typedef void (*gw_revoc_alert_fn)(void *arg, const char *event, json_t *fields);

/* Sets up revocation for the listeners of <conf> (<ctxs>[i] is listener i's
 * server context, already built by core/tls.c): reads the CRLs, the partner
 * certificates to prefetch and the certificates to staple, and installs the
 * callbacks on the contexts. Starts no thread (opale-gateway -t uses it).
 * Returns NULL and a malloc'd <*err> ("listeners[0].tls.stapling: ..."). */
gw_revoc *gw_revoc_new(const gw_conf *conf, SSL_CTX *const *ctxs, char **err);

void gw_revoc_set_alert(gw_revoc *r, gw_revoc_alert_fn fn, void *arg);

/* Starts the background thread (no-op when nothing needs it) and makes <r>
 * the one gw_revoc_revoked() answers from. 0, or -1 and <*err>. */
int gw_revoc_start(gw_revoc *r, char **err);

/* SIGHUP: re-read the CRL files and the partner certificate directories
 * now, and ask again for every status. Returns at once. */
void gw_revoc_reload(gw_revoc *r);

/* Stops the thread and frees everything (the stores stay alive as long as
 * a connection holds one). NULL is accepted. */
void gw_revoc_free(gw_revoc *r);

/* 1 when the current OCSP answer for the certificate of fingerprint
 * <sha256_hex> (64 lowercase hex digits) on any listener is "revoked". Any
 * thread. */
int gw_revoc_revoked(const char *sha256_hex);

/* For core/tls.c's verify callback, at depth 0 once the chain verified:
 * the listener's OCSP decision for the leaf. NULL: accept (good, off, or
 * soft-fail, which raises a "tls.ocsp_soft_fail" alert once per certificate
 * and state); else the journal reason of the refusal ("tls.ocsp_revoked",
 * "tls.ocsp_unknown", "tls.ocsp_stale", "tls.ocsp_unavailable"). */
const char *gw_revoc_handshake(SSL *ssl, X509_STORE_CTX *ctx);

/* Verify stores and what a verdict drawn from one depends on. Every store a
 * handshake may verify with (the listener context's, and each one this
 * module builds when a CRL is installed) is marked once, before any
 * handshake sees it, with a generation of its own (never reused in the
 * process) and the earliest nextUpdate of its CRLs (0: none, or no CRL).
 * core/tls.c keys the verdicts it keeps by the generation, so a new CRL
 * is a new generation and every certificate is checked again at its next
 * handshake. gw_revoc_store_mark returns 0, or -1 when out of memory (the
 * store then stays unmarked: nothing is kept for it). */
int gw_revoc_store_mark(X509_STORE *st);

/* 1 and the store's mark, or 0 when it has none. Any thread. */
int gw_revoc_store_info(X509_STORE *st, unsigned long long *gen, time_t *crl_next);

/* For the verify callback: 1 when the listener's CRL is past its nextUpdate
 * but within crl_refresh.grace_s (the expired CRL is then still used). */
int gw_revoc_crl_grace(SSL *ssl);

/* The Prometheus text of the revocation metrics (docs/metrics.md),
 * malloc'd; NULL when out of memory. NULL <r>: an empty string. */
char *gw_revoc_metrics(gw_revoc *r);

#endif
