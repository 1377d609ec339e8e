/*
 * The outcome module (core/outcome.c): turns a finished request, or a
 * connection refused before any request, into its journal record, its
 * security events and its metrics. The only reader of a request's results.
 */
#ifndef GW_OUTCOME_H
#define GW_OUTCOME_H

#include "core/conn.h"

/* A handshake that completed: reported to the detectors. */
void gw_outcome_handshake_done(gw_conn *c);
/* A connection refused before any request (a TLS handshake refused, a
 * PROXY header refused): journalled with <reason>, counted; <handshake>:
 * a TLS refusal (counted as a failed handshake, reported to the detectors). */
void gw_outcome_refused(gw_conn *c, const char *reason, int handshake);

#endif
