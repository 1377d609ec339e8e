/*
 * Gateway configuration: one JSON file -> one validated, immutable struct.
 *
 * Contract: gw_conf_load() reads <path>, checks every key (unknown keys are
 * errors), resolves relative file paths against the directory of <path>, and
 * either returns a complete gw_conf (caller owns it, gw_conf_free()) or NULL
 * with every problem found appended to <errs> as "file: json.path: message".
 * It never prints.
 */
#ifndef GW_CONF_H
#define GW_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "lib/jsonv.h" /* gw_errlist */
#include "lib/route.h"

#define GW_CONF_MAX_ERRORS GW_ERRLIST_MAX

typedef enum { GW_ENV_SANDBOX = 0, GW_ENV_PRODUCTION = 1 } gw_env;
const char *gw_env_name(gw_env env); /* "sandbox" / "production" */

typedef enum { GW_CLIENT_AUTH_REQUIRED = 0, GW_CLIENT_AUTH_NONE = 1 } gw_client_auth;

typedef struct gw_conf_certpair {
    char *cert; /* absolute path, PEM chain */
    char *key;  /* absolute path, PEM private key */
} gw_conf_certpair;

/* Revocation of client certificates and stapling of ours (issue 19, part 2;
 * docs/configuration.md "listeners[].tls.crl_refresh / ocsp / stapling",
 * parsed by conf/revocation.c). Durations in seconds unless named _ms. */
typedef enum { GW_OCSP_OFF = 0, GW_OCSP_SOFT = 1, GW_OCSP_HARD = 2 } gw_ocsp_mode;

typedef struct gw_conf_revocation {
    /* CRL: the file (gw_conf_listener.crl) re-read when it changes (stat
     * poll every crl_poll_s, and on SIGHUP), or fetched from crl_url every
     * crl_fetch_s at most and before its nextUpdate. */
    unsigned crl_poll_s;  /* default 5 */
    char *crl_url;        /* NULL: none */
    unsigned crl_fetch_s; /* default 3600 */
    unsigned crl_grace_s; /* a CRL past nextUpdate is still used this long; default 0 */
    unsigned crl_timeout_ms;
    /* OCSP for client certificates */
    gw_ocsp_mode ocsp_mode;   /* default off */
    char *ocsp_responder;     /* NULL: the certificate's AIA */
    unsigned ocsp_refresh_s;  /* default 300 */
    unsigned ocsp_timeout_ms; /* default 3000 */
    int ocsp_nonce;           /* default 0 */
    char *ocsp_certs_dir;     /* partner certificates to prefetch, NULL: none */
    /* OCSP stapling of the listener's own certificates */
    int stapling;
    char *staple_responder;    /* NULL: the certificate's AIA */
    char *staple_issuer;       /* NULL: from the chain file, then client_ca */
    unsigned staple_refresh_s; /* default 3600 */
    unsigned staple_timeout_ms;
} gw_conf_revocation;

/* listeners[].http2 (docs/configuration.md): ALPN h2 and the per-connection
 * bounds of an HTTP/2 connection. */
typedef struct gw_conf_http2 {
    int enabled;                       /* ALPN "h2" offered; default 1 */
    unsigned max_concurrent_streams;   /* SETTINGS_MAX_CONCURRENT_STREAMS, default 100 */
    unsigned max_header_list_bytes;    /* decoded header block, default 32768 */
    unsigned initial_window_bytes;     /* SETTINGS_INITIAL_WINDOW_SIZE, default 65535 */
    unsigned max_resets_per_s;         /* RST_STREAM received per second, default 100 */
    unsigned max_control_frames_per_s; /* SETTINGS, PING, PRIORITY per second, default 100 */
    unsigned max_empty_frames_per_s;   /* frames without payload nor END_STREAM, default 100 */
    unsigned max_continuation_frames;  /* CONTINUATION frames per header block, default 16 */
    unsigned stall_ms;                 /* a response blocked by flow control, default 10000 */
} gw_conf_http2;

typedef struct gw_conf_listener {
    char *name;
    char *address; /* numeric IPv4 or IPv6 literal */
    uint16_t port;
    gw_env env;
    gw_conf_certpair *certs; /* 1..4 server certificates (ECDSA and/or RSA) */
    size_t ncerts;
    char *client_ca;            /* required when client_auth == REQUIRED */
    char *crl;                  /* optional; enables X509_V_FLAG_CRL_CHECK */
    gw_client_auth client_auth; /* "required" (default) or "none" (bench only) */
    int session_tickets;        /* default 1 */
    int proxy_protocol;         /* expect a PROXY protocol v2 header (trusted proxies only) */
    int access_off;             /* "access": "off": bench pass-through, route stage only */
    /* TLS handshakes one source address may have in progress on one worker
     * (the PROXY header's address on proxy_protocol listeners); beyond it a
     * connection is closed at once. Default 32, 0: no limit. */
    unsigned max_handshakes_per_source;
    gw_conf_revocation revoc; /* CRL refresh, OCSP, stapling */
    gw_conf_http2 http2;
} gw_conf_listener;

typedef struct gw_conf_upstream_server {
    char *host; /* numeric address */
    uint16_t port;
} gw_conf_upstream_server;

typedef struct gw_conf_upstream {
    char *name;
    gw_conf_upstream_server *servers;
    size_t nservers;
    int tls;                      /* 0 plain HTTP, 1 TLS */
    char *tls_ca;                 /* CA bundle to verify the upstream (required with tls) */
    char *tls_cert;               /* optional client certificate for upstream mTLS */
    char *tls_key;                /* with tls_cert */
    char *tls_server_name;        /* SNI + name to verify; default: host */
    unsigned pool_size;           /* idle keep-alive connections kept per worker */
    unsigned max_connections;     /* open connections per worker, idle ones included; 0: no
                                   * limit (default). At the limit a request waits for one. */
    unsigned queue_timeout_ms;    /* the longest such a wait, default 2000 */
    unsigned connect_timeout_ms;  /* default 2000 */
    unsigned response_timeout_ms; /* default 10000 */
    size_t max_response_bytes;    /* default 8 MiB */
} gw_conf_upstream;

typedef struct gw_conf_limits {
    size_t max_header_bytes;   /* request line + headers, default 16384 */
    size_t max_headers;        /* header count, default 100 */
    size_t max_body_bytes;     /* default 1 MiB */
    size_t max_connections;    /* per worker, default 10000 (or what RLIMIT_NOFILE allows) */
    int max_connections_set;   /* given in the file (else main.c may lower the default) */
    size_t max_pipeline_bytes; /* bytes buffered beyond the current request, default 65536 */
    size_t max_buffered_response_bytes; /* upstream bodies held per worker, default 64 MiB */
    size_t listen_backlog; /* listen() backlog of each public socket, default 4096 (the kernel
                            * caps it at net.core.somaxconn) */
} gw_conf_limits;

typedef struct gw_conf_timeouts {
    unsigned handshake_ms; /* TLS handshake, default 10000 */
    unsigned header_ms;    /* whole header block, from its first byte, default 10000 */
    unsigned body_ms;      /* whole body, default 30000 */
    unsigned keepalive_ms; /* idle between requests, default 60000 */
    unsigned send_ms;      /* writing a response to a slow client, default 30000 */
    unsigned drain_ms;     /* SIGTERM drain deadline, default 30000 */
    unsigned dormant_ms;   /* idle keep-alive before going dormant, default 1000, 0: never */
} gw_conf_timeouts;

/* journal.events: the security-events stream (journal/events.h). */
typedef struct gw_conf_events {
    char *path;                    /* absolute; default <journal.path's directory>/events.jsonl */
    unsigned auth_threshold;       /* auth_failures.threshold, default 10 */
    unsigned auth_window_s;        /* auth_failures.window_s, default 60 */
    unsigned enum_distinct;        /* enumeration.distinct_sirens, default 100 */
    unsigned enum_window_s;        /* enumeration.window_s, default 300 */
    unsigned storm_refusals;       /* quota_storm.refusals, default 100 */
    unsigned storm_window_s;       /* quota_storm.window_s, default 60 */
    unsigned cert_expiry_days;     /* default 30, 0: no cert.expiring events */
    char *alert_command;           /* alert.command, absolute; NULL: no hook */
    int alert_min_severity;        /* alert.min_severity: 0 low .. 3 critical, default 2 high */
    unsigned alert_max_per_minute; /* alert.max_per_minute, default 10 */
} gw_conf_events;

/* "journal.anchor" (gateway/journal/anchor.h). */
typedef struct gw_conf_anchor {
    int kind;                  /* 0 none, 1 redis, 2 http, 3 command (gw_anchor_kind) */
    char *redis_host;          /* redis.host */
    uint16_t redis_port;       /* redis.port, default 6379 */
    char *redis_key;           /* redis.key, default "opale:journal:anchors" */
    char *redis_password_file; /* redis.password_file, absolute; NULL: no AUTH */
    char *url;                 /* http.url */
    char *ca_file;             /* http.ca_file, absolute; NULL: the system's CAs */
    char *command;             /* command, absolute, executable */
    unsigned timeout_ms;       /* one attempt, default 5000 */
    unsigned retry_s;          /* first retry delay, default 10 */
} gw_conf_anchor;

typedef struct gw_conf_journal {
    char *path;              /* absolute path of the JSON Lines journal */
    size_t queue_size;       /* records queued before submit fails, default 65536 */
    uint64_t rotate_bytes;   /* rotate past this size, 0: never (default) */
    int rotate_daily;        /* rotate at each new UTC day, default 1 */
    unsigned retention_days; /* delete rotated files older than this (default 365), 0: keep */
    unsigned checkpoint_s;   /* signed checkpoint interval, default 60, 0: none */
    int on_failure_continue; /* 0 "deny" (default): no exchange without a record */
    unsigned sync_ms;        /* fdatasync period of the writer, default 1000 */
    unsigned batch_ms;       /* writer batching linger, default 2, 0: none */
    unsigned tail_check_s;   /* periodic tail check, default 300, 0: none */
    gw_conf_anchor anchor;   /* "anchor": checkpoint hashes sent off the host */
    gw_conf_events events;   /* "events": the security-events stream */
} gw_conf_journal;

/* Roles of the admin API's operators (docs/console.md). */
#define GW_ROLE_READ 0     /* GET only */
#define GW_ROLE_OPERATOR 1 /* every action */
#define GW_CONF_OPERATOR_NAME_MAX 32

typedef struct gw_conf_operator {
    char *name;       /* [a-z0-9._-]{1,32}, unique */
    char *token_file; /* its bearer token (a token unique among operators) */
    int role;         /* GW_ROLE_* */
} gw_conf_operator;

typedef struct gw_conf_admin {
    int enabled;
    char *address; /* must be a loopback address unless allow_non_loopback */
    uint16_t port;
    char *token_file; /* file holding the admin bearer token: operator "admin", role operator */
    gw_conf_operator *operators; /* "operators": named operators */
    size_t noperators;
} gw_conf_admin;

typedef struct gw_conf {
    char *path;       /* the file this came from, as given (messages name it so) */
    char *dir;        /* its directory, for relative paths */
    unsigned workers; /* 0 in the file means "number of cores", resolved at load */
    gw_conf_listener *listeners;
    size_t nlisteners;
    gw_conf_upstream *upstreams;
    size_t nupstreams;
    gw_route_table routes; /* routes reference upstreams by index */
    gw_conf_limits limits;
    gw_conf_timeouts timeouts;
    gw_conf_journal journal;
    gw_conf_admin admin;
    char *policies_dir; /* optional, absolute; used by later stages */
    int policies_watch; /* reload on a change in policies_dir (policy/watch.h), default 0 */
    /* "access": the access stages' settings, validated by the stages module
     * (gateway/stages/pipeline.c and the stage that owns each key); NULL when absent.
     * A private deep copy, owned by the conf. */
    struct json_t *access;
    /* "oauth": token endpoint, bearer validation and backend assertion
     * settings, validated by gateway/token/oauth.c; NULL when absent. */
    struct json_t *oauth;
    /* "quota": the quota store settings (gateway/quota/quota.c); NULL: defaults */
    struct json_t *quota;
    /* "datapass": webhook receiver and sync (gateway/datapass/dpconf.c);
     * NULL when absent. */
    struct json_t *datapass;
    /* Errors found by the load; non-zero only in a conf from
     * gw_conf_load_check(), which keeps what could be read so that the
     * sections checked elsewhere (access, oauth, quota, policies) are checked
     * in the same pass. Such a conf only serves that check. */
    size_t nerrs;
    int routes_bad;       /* upstreams or routes had errors: the route scopes are incomplete */
    int policies_dir_bad; /* policies_dir given but unusable (already reported) */
} gw_conf;

gw_conf *gw_conf_load(const char *path, gw_errlist *errs);
/* Like gw_conf_load(), but a file that could be read and holds a JSON object
 * always gives a conf, errors or not: <*nerrs> (and the conf's nerrs) count
 * the errors appended to <errs>. With errors, the conf is only good for the
 * checks of the other sections (gw_access_load), never to run. */
gw_conf *gw_conf_load_check(const char *path, gw_errlist *errs, size_t *nerrs);
/* Same as gw_conf_load but from an in-memory JSON text; <path> only names it
 * in messages and anchors relative paths. */
gw_conf *gw_conf_parse(const char *path, const char *text, gw_errlist *errs);
void gw_conf_free(gw_conf *c);
const gw_conf_upstream *gw_conf_find_upstream(const gw_conf *c, const char *name);

#endif
