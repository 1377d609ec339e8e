/*
 * Console sessions of the admin API (docs/console.md, "API and security"),
 * without libevent. POST /admin/session with a bearer token opens one: a
 * random session id (the gw_session cookie, HttpOnly, SameSite=Strict) and
 * a random CSRF token the page sends back in X-CSRF-Token on every request
 * that is not a GET. Sessions live in memory: they end after
 * GW_ADMIN_SESSION_IDLE_S without a request, GW_ADMIN_SESSION_MAX_S after
 * they opened whatever the activity, or on DELETE /admin/session. At most
 * GW_ADMIN_SESSIONS sessions: a new one replaces an ended one, else the
 * least recently used. One table per admin listener, main thread only.
 *
 * The access decision (gw_admin_access) is here too: which credential,
 * Origin, CSRF and role checks a request passes.
 */
#ifndef GW_ADMIN_SESSION_H
#define GW_ADMIN_SESSION_H

#include <stddef.h>
#include <stdint.h>

#define GW_ADMIN_SESSION_IDLE_S 900
#define GW_ADMIN_SESSION_MAX_S 28800
#define GW_ADMIN_SESSIONS 64
/* 32 random bytes in base64url without padding: 43 characters. */
#define GW_ADMIN_SECRET_LEN 43
#define GW_ADMIN_COOKIE "gw_session"

typedef struct gw_admin_session {
    char id[GW_ADMIN_SECRET_LEN + 1];   /* the cookie's value */
    char csrf[GW_ADMIN_SECRET_LEN + 1]; /* X-CSRF-Token */
    size_t op;                          /* the operator's index (admin/operators.h) */
    uint64_t opened_ms, last_ms;
    int live;
} gw_admin_session;

typedef struct gw_admin_sessions {
    gw_admin_session s[GW_ADMIN_SESSIONS];
    unsigned idle_s; /* 0: GW_ADMIN_SESSION_IDLE_S (a test sets less) */
} gw_admin_sessions;

/* 32 random bytes (the CSPRNG) as 43 base64url characters into <out>.
 * 0, or -1 when the generator fails. */
int gw_admin_secret(char out[GW_ADMIN_SECRET_LEN + 1]);

/* Open a session for operator <op> at <now_ms>; the session (owned by the
 * table), or NULL when the generator failed. */
gw_admin_session *gw_admin_session_open(gw_admin_sessions *t, size_t op, uint64_t now_ms);

/* The live session whose id is <id> (compared in constant time) at
 * <now_ms>, its last use moved to now; NULL when none, or when it has
 * ended (idle or absolute expiry: then it is wiped). */
gw_admin_session *gw_admin_session_find(gw_admin_sessions *t, const char *id, uint64_t now_ms);

/* End the session <s> (wiped). */
void gw_admin_session_end(gw_admin_session *s);

/* Seconds the session <s> of <t> has left at <now_ms>, rounded up: the
 * idle limit, or less near the absolute one. */
unsigned gw_admin_session_expires_in(const gw_admin_sessions *t, const gw_admin_session *s,
                                     uint64_t now_ms);

/* The value of cookie <name> in a Cookie header <header> (NULL: none) into
 * <out> (<outlen> bytes); 1 when found and it fits, else 0. */
int gw_admin_cookie_get(const char *header, const char *name, char *out, size_t outlen);

/* 1 when <origin> (an Origin header's value) is the admin listener's own:
 * "http://<address>:<port>" (an IPv6 address in brackets), or
 * "http://localhost:<port>" for a loopback address. */
int gw_admin_origin_ok(const char *origin, const char *address, unsigned port);

/* What a request to the admin API is refused for, once its credential is
 * known: */
typedef struct gw_admin_access_in {
    int is_get;         /* GET or HEAD */
    int by_session;     /* authenticated by the cookie (else by a bearer token) */
    int origin_present; /* an Origin header was sent */
    int origin_ok;      /* ... and gw_admin_origin_ok */
    int csrf_ok;        /* X-CSRF-Token equals the session's */
    int role;           /* GW_ROLE_READ or GW_ROLE_OPERATOR */
    int ep_is_action;   /* a known endpoint that changes something (not a session's own) */
} gw_admin_access_in;

/* 0: go on; else 403 with the admin error "origin" (a foreign Origin),
 * "csrf" (a session's request other than GET without the right
 * X-CSRF-Token) or "forbidden" (an action by a "read" operator), in that
 * order; <*error> names it. */
int gw_admin_access(const gw_admin_access_in *in, const char **error);

/* 1 when <got> (NULL: absent) equals <want>, in constant time. */
int gw_admin_csrf_ok(const char *got, const char *want);

#endif
