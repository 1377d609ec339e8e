/*
 * opale-mock: a mock of the API OPALE backend, with fictitious data
 * (docs/mock-opale.md). Shared declarations of its files:
 *
 *   main.c       command line, listener, signals, event loop
 *   server.c     request entry point, fault injection (latency, 500, reset)
 *   reply.c      JSON replies, error bodies, access log
 *   routes.c     the OPALE routes and their deterministic fictitious data
 *   control.c    the /__mock/ endpoints (stats, reset, last, config)
 *   assertion.c  verification of the gateway's X-JWT-Assertion (--jwks)
 *
 * It shares no code with the gateway. It is built on libevent's evhttp, which
 * is lenient as an HTTP parser; that is acceptable here because the mock only
 * ever sits behind the gateway or is called directly by tests.
 */
#ifndef MOCK_H
#define MOCK_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

#include "assertion.h"

#define MOCK_NAME "opale-mock"
#define MOCK_MAX_LATENCY_MS 600000L /* 10 minutes */
#define MOCK_MAX_BODY 65536
#define MOCK_MAX_HEADERS 65536
#define MOCK_MAX_PATHS 1024 /* distinct keys kept in stats.by_path */
#define MOCK_OTHER_PATHS "(autres)"
#define MOCK_CONN_TIMEOUT_S 60 /* evhttp read/write/idle timeout per connection */

/* The mock's error codes; docs/mock-opale.md lists them. Messages are
 * constants: an error body never echoes request input. */
#define E400_REQUEST 400, "400000", "Requête invalide"
#define E400_SIREN 400, "400001", "Le SIREN doit comporter 9 chiffres"
#define E400_ANNEE 400, "400002", "Le paramètre annee est obligatoire (format AAAA)"
#define E400_CONFIG 400, "400003", "Configuration invalide"
#define E401_ASSERTION 401, "401001", "Assertion de la passerelle absente ou invalide"
#define E409_REPLAY 409, "409001", "Requête déjà reçue : rejeu refusé"
#define E404_PATH 404, "404000", "Ressource inconnue"
#define E404_SIREN 404, "404001", "Entreprise inconnue"
#define E404_NOLAST 404, "404002", "Aucune requête reçue"
#define E405 405, "405000", "Méthode non autorisée"
#define E500 500, "500000", "Erreur interne du service OPALE"

struct fault {
    long latency_ms;
    double error_rate;
    double reset_rate;
};

struct pending;

/* The last non-/__mock/ request, kept raw and turned into JSON only when
 * GET /__mock/last asks for it: its strings (URI, then each header's name and
 * value) copied end to end, NUL-terminated, into one buffer reused from
 * request to request. Building the JSON for every request (a json_t and a
 * UTF-8 check per header name and value) was a third of the mock's CPU in the
 * bench, where the mock shares the load generator's core. */
struct mock_last {
    bool set;
    const char *method; /* a constant */
    int major, minor;
    size_t nheaders;
    size_t body_len;
    char *buf; /* uri\0 (name\0 value\0)* */
    size_t len, cap;
    json_t *claims;    /* the verified assertion, or NULL */
    bool mac_verified; /* --mac-key: this very request's MAC was checked */
};

struct mock {
    struct event_base *base;
    struct evhttp *http;
    struct fault fault;
    uint64_t seed;     /* fault-injection seed: --seed, or "seed" in /__mock/config */
    uint64_t rng;      /* fault-injection PRNG state (splitmix64) */
    uint64_t requests; /* served: with --jwks, refused assertions are not counted */
    uint64_t connections;
    uint64_t assertion_refused; /* replays included */
    uint64_t assertion_replayed;
    json_t *by_path;       /* path -> count */
    struct mock_last last; /* last non-/__mock/ request */
    struct pending *pending;
    struct mock_verifier v; /* v.jwks_path NULL: no --jwks */
    bool quiet;
};

/* splitmix64: the PRNG of both the fault injection and the data. */
static inline uint64_t mock_splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* server.c */

/* evhttp's callbacks: every request, and every accepted connection (counted
 * there, before its first byte). <arg> is the struct mock. */
void mock_on_request(struct evhttp_request *req, void *arg);
struct bufferevent *mock_on_new_conn(struct event_base *base, void *arg);
/* Frees the replies still held back (at exit, after evhttp_free()). */
void mock_pending_free_all(struct mock *m);

/* reply.c */

/* How every body is serialised (reply.c, and the cached ones of routes.c). */
#define JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

const char *mock_method_name(enum evhttp_cmd_type t);
/* A JSON string of <s>, with each non-ASCII byte replaced by '?' if <s> is
 * not valid UTF-8 (mock_utf8_copy: the same as a malloc'd C string). */
json_t *mock_jstr(const char *s);
char *mock_utf8_copy(const char *s);
void mock_access_log(struct mock *m, struct evhttp_request *req, const char *what);
/* Sends <body> (consumed; NULL for an empty 204) with status <code>, echoing
 * X-Request-ID and X-Correlation-ID; <note>, if any, goes to the access log
 * only. */
void mock_send_json_note(struct mock *m, struct evhttp_request *req, int code, json_t *body,
                         const char *note);
void mock_send_json(struct mock *m, struct evhttp_request *req, int code, json_t *body);
/* The same with a body already serialised (<len> bytes of JSON, copied). */
void mock_send_text(struct mock *m, struct evhttp_request *req, int code, const char *text,
                    size_t len);
/* The error body of <code>/<message> (use the E* macros), 405s with Allow. */
void mock_send_error_note(struct mock *m, struct evhttp_request *req, int status, const char *code,
                          const char *message, const char *note);
void mock_send_error(struct mock *m, struct evhttp_request *req, int status, const char *code,
                     const char *message);

/* routes.c */

/* Answers an OPALE request (404, 405, 400, 404 for 999 SIRENs, or data). */
void mock_serve_opale(struct mock *m, struct evhttp_request *req);

/* control.c */

/* Counts a served request and keeps it as "last", with <claims> (consumed;
 * NULL without --jwks) as its verified assertion. */
void mock_record(struct mock *m, struct evhttp_request *req, const char *path, json_t *claims);
/* Forgets the last request (reset) and frees what it held (exit). */
void mock_last_clear(struct mock_last *l);
/* Answers /__mock/<what>. */
void mock_serve_control(struct mock *m, struct evhttp_request *req, const char *what);

#endif
