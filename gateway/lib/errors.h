/*
 * The one table of refusals. A code, an HTTP status, a message and a journal
 * reason live here; the error body, the journal record and metrics labels all
 * come from it. docs/errors.md documents the same table.
 */
#ifndef GW_ERRORS_H
#define GW_ERRORS_H

#include <stddef.h>

typedef enum gw_err_id {
    GW_OK = 0,
    /* DGFIP gateway codes */
    GW_ERR_CORRELATION_MISSING, /* 910000 */
    GW_ERR_TOKEN_INVALID,       /* 900901 */
    GW_ERR_TOKEN_MISSING,       /* 900902 */
    GW_ERR_SCOPE,               /* 900910 */
    GW_ERR_THROTTLED,           /* 900804 */
    /* HTTP layer (ours) */
    GW_ERR_BAD_REQUEST,
    GW_ERR_NOT_FOUND,
    GW_ERR_METHOD_NOT_ALLOWED,
    GW_ERR_REQUEST_TIMEOUT,
    GW_ERR_BODY_TOO_LARGE,
    GW_ERR_HEADERS_TOO_LARGE,
    GW_ERR_NOT_IMPLEMENTED,
    GW_ERR_OVERLOADED,
    GW_ERR_SHUTTING_DOWN,
    GW_ERR_INTERNAL,
    /* upstream (ours) */
    GW_ERR_UPSTREAM_DOWN,
    GW_ERR_UPSTREAM_TIMEOUT,
    GW_ERR_UPSTREAM_INVALID,
    /* access stages (ours) */
    GW_ERR_CERT_UNKNOWN,
    GW_ERR_IP_DENIED,
    GW_ERR_TELESERVICE_MISSING,
    GW_ERR_TELESERVICE_MISMATCH,
    GW_ERR_HAB_SUSPENDED,
    GW_ERR_HAB_REVOKED,
    GW_ERR_HAB_NOT_YET_VALID,
    GW_ERR_HAB_EXPIRED,
    GW_ERR_ENVIRONMENT,
    GW_ERR_YEAR_NOT_GRANTED,
    GW_ERR_YEAR_INVALID,
    GW_ERR_SIREN_INVALID,
    GW_ERR_QUERY_INVALID,
    GW_ERR_CONSUMER_SUSPENDED,
    GW_ERR_MAINTENANCE,
    GW_ERR_QUOTA_UNAVAILABLE,
    GW_ERR_JOURNAL_UNAVAILABLE,
    GW_ERR_CERT_REVOKED,
    /* never sent: the client left before its answer (journal only) */
    GW_ERR_CLIENT_CLOSED,
    GW_ERR__COUNT
} gw_err_id;

typedef struct gw_err_def {
    gw_err_id id;
    const char *code;    /* "910400" */
    int status;          /* HTTP status */
    const char *message; /* fixed text; never built from request input */
    const char *reason;  /* journal/metrics label, e.g. "http.bad_request" */
} gw_err_def;

const gw_err_def *gw_err(gw_err_id id);
const char *gw_http_reason_phrase(int status);

/* The DGFIP error body {"erreur":{"code":..,"message":..,"horodatage":..}}
 * as a malloc'd NUL-terminated string (caller frees); NULL on OOM. */
char *gw_err_body(gw_err_id id, size_t *len);

#endif
