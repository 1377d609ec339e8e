/*
 * The trace an admin action leaves: its access-journal record ("decision":
 * "admin") and its security event (journal/events.h), with the operator and
 * the caller's address, never a token.
 */
#ifndef GW_ADMIN_TRAIL_H
#define GW_ADMIN_TRAIL_H

#include <stddef.h>

#include "admin/state.h"

/* One "admin" record in the access journal: POST <path>, <reason> (the
 * journal reason, e.g. "admin.suspend"), <consumer> (NULL: none), the
 * answer's <status>. */
void gw_admin_journal(gw_admin *a, const char *path, const char *reason, const char *consumer,
                      int status);

/* The security event <type> of an admin call: <e> completed with "admin
 * API", the caller's address and the current operator. */
void gw_admin_event(gw_admin *a, struct evhttp_request *req, gw_event_type type, gw_event_admin *e);

/* "<operator> (admin API from <address>)": who acted, as the suspensions
 * file records it (gw_admin_by_operator reads the name back). */
void gw_admin_operator_of(gw_admin *a, struct evhttp_request *req, char *by, size_t len);

#endif
