/*
 * The upstream pool's decisions, without sockets or event loop
 * (core/proxy.c applies them): the server address syntax, the name of a
 * failed attempt's outcome, when a failed request is tried again, and the
 * worker's response-body budget.
 */
#ifndef GW_CORE_PROXY_RULES_H
#define GW_CORE_PROXY_RULES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lib/errors.h"

/* The bytes of upstream response bodies a worker may hold while they are
 * being received (limits.max_buffered_response_bytes, issue 13). One per
 * worker, shared by its pools, touched by that worker's thread only. A
 * response charges max(its declared Content-Length, the bytes received so
 * far) and gives it back when it is delivered or fails; a response that
 * would take the total over <limit> fails at once (502 910512). */
typedef struct gw_resp_budget {
    size_t limit;
    size_t used;
    unsigned long refused; /* responses failed for the budget */
} gw_resp_budget;

/* Parse "A.B.C.D:port" or "[v6]:port" (numeric addresses only, an IPv6
 * one always in brackets, port 1..65535 in decimal and nothing after) into
 * <ss>/<sl>. Returns 0, or -1 when it is not that. */
int gw_upstream_addr_parse(const char *s, struct sockaddr_storage *ss, socklen_t *sl);

/* The journal's name for a failed attempt (gw_proxy_attempt.outcome):
 * <on_wire> says whether the request could have reached the backend (the
 * connection was established, or was a pooled one). "reset",
 * "connect_failed", "timeout", "connect_timeout", "too_large" (the route's
 * or the worker's bound, <detail> "upstream.too_large" or
 * "upstream.budget_exceeded"), "invalid" or "error". */
const char *gw_proxy_fail_outcome(int on_wire, gw_err_id err, const char *detail);

/* Whether a failed attempt is tried again on a fresh connection: only a
 * pooled connection (<reused>) that failed as "down" (closed or reset)
 * before any response byte, for an idempotent request not yet retried
 * (the backend closed an idle connection under our feet). */
int gw_proxy_may_retry(int reused, int got_bytes, int idempotent, int retried, gw_err_id err);

/* Charge <b> for a response that declared <declared> bytes (-1: none) and
 * has <received> body bytes so far, of which <*charged> are already
 * charged. Returns 0 (and raises <*charged>) when the budget holds it, -1
 * (counted in b->refused, nothing more charged) when not. NULL <b>: 0. */
int gw_resp_budget_charge(gw_resp_budget *b, size_t *charged, int64_t declared, size_t received);

/* Give back what <*charged> holds (then 0). */
void gw_resp_budget_release(gw_resp_budget *b, size_t *charged);

#endif
