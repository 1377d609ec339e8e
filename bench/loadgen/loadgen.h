/*
 * opale-loadgen: an HTTP/1.1 load generator for the opale-gateway bench
 * (docs/loadgen.md). Shared declarations of its files:
 *
 *   main.c    the run: workers started, connect phase, clock, results merged
 *   cli.c     the command line and URL parsing
 *   tls.c     the client TLS context
 *   conn.c    one connection: TCP, TLS handshake, request out, response in
 *   request.c the requests' bytes, built once
 *   http.c    the response parser
 *   sched.c   the workers: closed loop, open loop (fixed rate), --hold
 *   hist.c    the latency histogram and its percentiles
 *   report.c  the summary on stdout and the --json file (jansson)
 *   token.c   --token-url: one blocking POST before the run
 *   partners.c --partner-certs, --partner-headers: a certificate and headers
 *             per connection
 *   h2.c      --h2: the same requests over HTTP/2 (nghttp2's client API)
 *   util.c    clock, exits, PRNG, UUIDs
 *
 * It shares no code with the gateway on purpose: a bug in the gateway's HTTP
 * code must not be hidden by the same bug in the tool that measures it. It
 * includes no gateway header and links no gw_* library.
 */
#ifndef LOADGEN_H
#define LOADGEN_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include <openssl/ssl.h>

#define LG_NAME "opale-loadgen"
#define LG_VERSION "1.0"

enum {
    MAX_HEADERS = 64,
    MAX_PATHS = 1024,
    MAX_PATH_LEN = 4096,
    MAX_HEADER_LEN = 8192,
    MAX_CONNS = 100000,
    MAX_THREADS = 256,
    HEAD_MAX = 64 * 1024,   /* status line + headers of one response */
    CHUNK_LINE_MAX = 1024,  /* one chunk-size line */
    CAPTURE_MAX = 64 * 1024 /* body kept for --token-url */
};

#define NS_PER_S 1000000000ULL
#define TICK_MS 100
#define BACKOFF_NS (10ULL * 1000 * 1000) /* after a failed connection attempt */
#define MAX_DURATION_S 3600.0
#define MAX_WARMUP_S 600.0
#define SETUP_WINDOW 256 /* connect phase: connections being set up at once, all threads */

/* Latency histogram (hist.c): log-linear (HDR-style) over microseconds.
 * Values below 2*H_SUB are exact. Above, a value v with its highest bit at
 * position e falls in one of H_SUB linear sub-buckets of width 2^(e-7):
 * relative error below 1/128 (0.78%). Values up to 2^40 us (12.7 days). */
#define H_SUB_BITS 7
#define H_SUB (1u << H_SUB_BITS)
#define H_SHIFTS 32
#define H_NB (2 * H_SUB + H_SHIFTS * H_SUB)
#define H_VMAX ((UINT64_C(1) << (H_SUB_BITS + 1 + H_SHIFTS)) - 1)

struct hist {
    uint64_t n, min, max;
    double sum, sumsq;
    uint64_t b[H_NB];
};

struct url {
    int tls;
    char host[256];      /* as written, without the IPv6 brackets */
    char authority[300]; /* host[:port] as written: the Host header */
    char path[MAX_PATH_LEN + 1];
    unsigned port;
    struct sockaddr_storage addr;
    socklen_t addrlen;
};

/* The command line (cli.c), read-only once parsed. */
struct options {
    const char *url_arg;
    struct url url;
    long conns, threads;
    double duration, rate, timeout;
    double warmup;         /* --warmup: seconds of load before the measured window */
    double hold;           /* --hold S: hold the connections idle for S s (0: off) */
    uint64_t max_requests; /* 0: no bound but the duration */
    const char *cert, *key, *cacert, *sni, *sigalgs, *groups;
    int insecure, plain, new_conn, correlation_id, progress;
    int h2; /* --h2: HTTP/2 (ALPN h2), one stream in flight per connection */
    const char *headers[MAX_HEADERS];
    int nheaders;
    const char *paths[MAX_PATHS];
    int npaths;
    const char *token_url, *token_scope;
    struct url token;
    const char *json;
    const char *partner_certs, *partner_headers;
};

/* Response parser (http.c): HTTP/1.1 status line, headers, Content-Length
 * or chunked body. Anything else (1xx, a body delimited by the close, an
 * unknown transfer coding, malformed syntax, sizes over the limits) is an
 * error. */
enum rp_state { RP_HEAD, RP_BODY, RP_CHUNK_SIZE, RP_CHUNK_DATA, RP_CHUNK_CRLF, RP_TRAILER };

struct rparser {
    enum rp_state st;
    int status;
    int close;
    uint64_t remaining;
    size_t scanned; /* bytes of the input already searched for the end of the head */
    size_t trailer_bytes;
    uint64_t consumed;        /* bytes taken from the input, all responses */
    struct evbuffer *capture; /* NULL, or where the body goes (--token-url) */
    const char *error;        /* why the last parse failed */
};

enum err_kind { E_CONNECT, E_TLS, E_CLOSED, E_PARSE, E_TIMEOUT, E_N, E_NONE = E_N };

extern const char *const lg_err_name[E_N]; /* "connect", "tls", ... */

struct stats {
    uint64_t claimed;                      /* requests started (counted against -n) */
    uint64_t sent;                         /* requests written */
    uint64_t completed;                    /* whole responses read */
    uint64_t failed;                       /* requests that ended in an error */
    uint64_t warm_started, warm_completed; /* --warmup: due before the window, not measured */
    uint64_t status[6];                    /* by class: [2] 2xx ... [5] 5xx */
    uint64_t err[E_N];                     /* error events by kind */
    uint64_t conn_attempts, conn_established, handshakes, server_closes, idle_closes;
    uint64_t handshakes_run; /* during the measured run (the rate's numerator) */
    uint64_t bytes_in;
    struct hist lat;      /* request latency, us */
    struct hist conn;     /* TCP connect (+ TLS handshake), us */
    struct hist warm_lat; /* --warmup: latency of the warm-up requests, us */
};

enum conn_state { CS_DOWN, CS_TCP, CS_TLS, CS_READY };

struct worker;
struct lg_h2;

struct conn {
    struct worker *w;
    struct bufferevent *bev;
    struct event *tcp_ev; /* waiting for the TCP connect */
    struct event *timer;  /* open-loop schedule, backoff */
    int fd;               /* during CS_TCP */
    enum conn_state state;
    int busy;       /* a request is claimed */
    int inflight;   /* written, response not complete */
    int phase_seen; /* up at least once during the connect phase */
    int warm;       /* the claimed request is a --warmup one (not measured) */
    uint64_t gid;   /* global connection number */
    uint64_t backoff_until;
    uint64_t t_connect, t_origin, t_sent;
    uint64_t responses_here; /* on the current connection */
    uint64_t sched_k;
    uint64_t next_sched;
    struct rparser rp;
    struct lg_h2 *h2; /* --h2: the HTTP/2 session, once the handshake is done */
};

struct worker {
    int index;
    pthread_t tid;
    struct event_base *base;
    struct event *tick, *deadline;
    struct conn *conns;
    unsigned nconns;
    unsigned busy;
    int stopping, exhausted;
    uint64_t rng[4];
    unsigned path_next;
    char *scratch;
    struct stats st;
    uint64_t t_end;
    uint64_t missed;        /* open loop: due before the end, never started */
    int running;            /* the measured run has started (after the connect phase) */
    unsigned phase_ready;   /* connect phase: connections that have been up */
    unsigned up_at_start;   /* connections up when the clock started */
    struct event *phase_ev; /* end of the connect phase */
    unsigned setup_next;    /* connect phase: next connection to open */
    unsigned setup_active;  /* connect phase: connections being set up */
    unsigned setup_max;     /* connect phase: the most set up at once */
    unsigned held_end;      /* --hold: connections still open at the end */
    int setup_filling;      /* inside lg_setup_fill (no recursion) */
    _Atomic uint64_t pub_completed, pub_errors;
};

/* The run's results, all workers merged (main.c), for report.c. */
struct totals {
    struct stats st;
    uint64_t unfinished, missed, up_at_start, held_end, warm_unfinished;
    uint64_t setup_max; /* connect phase: the most set up at once, summed over the threads */
    double connect_phase;
    double elapsed;
    char started[32];
};

/* util.c */

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t lg_now_ns(void);
struct timeval lg_ns_to_tv(uint64_t ns);
/* "opale-loadgen: <message>" on stderr, then exit 1 (runtime failure). */
void lg_die(const char *fmt, ...);
/* The same for a bad command line: exit 2, with a pointer to --help. */
void lg_usage_error(const char *fmt, ...);
int lg_is_tchar(unsigned char ch);
/* A UUID version 4 (RFC 9562), 36 characters, lower case, no NUL. */
void lg_uuid_v4(uint64_t s[4], char out[36]);

/* hist.c */

/* The smallest and largest value of bucket <i> (0 <= i < H_NB). */
uint64_t lg_h_lower(unsigned i);
uint64_t lg_h_upper(unsigned i);
/* Records <v> (clamped to H_VMAX). */
void lg_h_add(struct hist *h, uint64_t v);
void lg_h_merge(struct hist *dst, const struct hist *src);
/* The value at percentile p (0..100): the highest value equivalent to the
 * bucket holding the ceil(p% * n)-th value, never above the exact max. */
uint64_t lg_h_pct(const struct hist *h, double p);
double lg_h_mean(const struct hist *h);
double lg_h_stdev(const struct hist *h);

/* cli.c */

extern struct options lg_opt;
/* "Name: value". Returns the name length, or 0 if malformed. */
size_t lg_header_name_len(const char *h);
int lg_header_is(const char *h, const char *name);
int lg_have_header(const char *name);
/* Fills lg_opt (URL resolved, defaults applied); a bad command line exits 2. */
void lg_parse_options(int argc, char **argv);

/* http.c */

/* Ready for the next response (keeps <consumed> and <capture>). */
void lg_rp_reset(struct rparser *p);
/* Consume from IN. Returns 1 when a whole response has been read (the
 * parser must then be reset), 0 when more input is needed, -1 on error.
 * Every iteration consumes input or returns: bounded by the input length. */
int lg_rp_feed(struct rparser *p, struct evbuffer *in);

/* request.c */

extern char *lg_req[MAX_PATHS]; /* "GET path HTTP/1.1\r\n" + fixed headers */
extern size_t lg_req_len[MAX_PATHS];
extern size_t lg_req_max;
/* Builds lg_req from lg_opt and lg_bearer; exits on failure. */
void lg_build_requests(void);

/* conn.c */

/* Describes the first error of kind <k> on stderr (the later ones are only
 * counted); any thread. */
void lg_report_first(enum err_kind k, const char *fmt, ...);
/* Publishes <w>'s counters for the main thread's progress line. */
void lg_publish(struct worker *w);
void lg_arm_timer(struct conn *c, uint64_t delay_ns);
void lg_conn_close(struct conn *c);
/* Closes <c> after an error of <kind> (E_NONE: a normal close), fails its
 * request if one was claimed, then reopens it (after a back-off if it never
 * answered) unless the worker is stopping or --hold is on. */
void lg_conn_fail(struct conn *c, enum err_kind kind);
/* Writes the next request (path rotation, X-Correlation-ID) on ready <c>. */
void lg_send_request(struct conn *c);
/* Starts a non-blocking connect for <c> (then the TLS handshake). */
void lg_conn_open(struct conn *c);

/* sched.c */

extern uint64_t lg_t0, lg_deadline, lg_ns_per_req;
/* Start of the measured window: lg_t0 + --warmup. A request whose origin
 * (its scheduled time, or its start in a closed loop) is before it is a
 * warm-up request: it runs like any other but is not measured. */
extern uint64_t lg_mstart;
extern atomic_int lg_stop;
extern atomic_int lg_running;
extern atomic_int lg_ready; /* workers done with their connect phase */
extern atomic_int lg_go;    /* the clock has started (lg_t0, lg_deadline set) */
extern _Atomic uint64_t lg_claimed;
void lg_check_done(struct worker *w);
/* The slot is free and its connection is down (no backoff): keep-alive
 * reconnects at once; --new-conn connects when the next request is due. */
void lg_reopen_or_next(struct conn *c);
/* Start the next request on this slot if it is free and due. */
void lg_slot_next(struct conn *c);
/* --hold: connection c is done with its setup (answered once, or failed),
 * or, once the hold has started, was closed. Nothing is reopened. */
void lg_hold_settled(struct conn *c);
/* Connect phase: open connections while fewer than the window are being
 * set up. */
void lg_setup_fill(struct worker *w);
/* Connect phase: a connection is set up (its first time up; --hold: also
 * answered once, or failed). */
void lg_setup_done(struct worker *w);
void lg_on_timer(evutil_socket_t fd, short what, void *arg);
void lg_on_deadline(evutil_socket_t fd, short what, void *arg);
/* Every TICK_MS: the stop flag (SIGINT) and the timeouts. */
void lg_on_tick(evutil_socket_t fd, short what, void *arg);
/* End of this worker's connect phase: wait until every worker is there and
 * the main thread has started the clock, then start the requests. Blocking
 * in a callback is fine: there is nothing else to do meanwhile. Bounded: the
 * main thread starts the clock at the latest when the slowest connect phase
 * (bounded by --timeout) is over. */
void lg_phase_done(struct worker *w);
void lg_on_phase_end(evutil_socket_t fd, short what, void *arg);
/* A worker thread (<arg>: its struct worker): runs its event loop until the
 * deadline, -n or a stop. */
void *lg_worker_main(void *arg);

/* tls.c */

extern SSL_CTX *lg_ctx;
void lg_tls_die(const char *what);
/* Builds lg_ctx from lg_opt (certificate, CA, SNI check, groups); exits 1
 * on failure. */
void lg_tls_setup(void);
/* The chain the auto-chain would send above <cert> (partners.c). */
STACK_OF(X509) * lg_tls_chain_of(X509 *cert);

/* token.c */

extern char *lg_bearer; /* from --token-url */
/* --token-url: sets lg_bearer from one POST, or exits 1. */
void lg_fetch_token(void);

/* partners.c */

extern size_t lg_partner_hdr_max; /* the longest partner header block */
/* Reads --partner-certs / --partner-headers; exits 1 on a bad file or when
 * -c exceeds the partners. */
void lg_load_partners(void);
/* Puts partner <gid>'s certificate and key on <ssl> (nothing without
 * --partner-certs). Returns 0, or -1. */
int lg_partner_ssl(SSL *ssl, uint64_t gid);
/* Copies partner <gid>'s header lines (each ending in CRLF) to <out>, which
 * holds lg_partner_hdr_max bytes; returns their length (0 without
 * --partner-headers). */
size_t lg_partner_headers(uint64_t gid, char *out);
void lg_free_partners(void);

/* h2.c (--h2) */

/* Rewrites lg_req into HTTP/2 fields, once, after lg_build_requests(). */
void lg_h2_build(void);
/* The handshake is done: check ALPN h2, start the session. 0 or -1. */
int lg_h2_start(struct conn *c);
void lg_h2_free(struct conn *c);
/* Sends the request of path <pi> as a new stream. 0 or -1. */
int lg_h2_send(struct conn *c, unsigned pi);
/* Reads IN into the session. 1 when the stream in flight was answered
 * (<*status>, <*close>: the server sent a GOAWAY), 0 when more input is
 * needed, -1 on a protocol error or a reset stream. */
int lg_h2_read(struct conn *c, struct evbuffer *in, int *status, int *close);

/* report.c */

/* Writes the --json document of <t> to <path> atomically (temp + rename).
 * Returns 0, or -1 with errno set. */
int lg_write_json(const char *path, const struct totals *t);
void lg_print_summary(const struct totals *t);

#endif
