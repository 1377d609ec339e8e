/*
 * opale-mock: a mock of the API OPALE backend, with fictitious data.
 *
 * It serves the OPALE routes with data that is deterministic per SIREN (and
 * per year on year-bound routes), plus a few /__mock/ endpoints that tests use
 * to observe it (request and connection counters, last request seen) and to
 * inject faults at run time (latency, 500 errors, connection resets). With
 * --jwks, it also verifies the JWT that the gateway signs for the backend
 * (X-JWT-Assertion), so that a request which bypasses the gateway gets
 * nothing.
 *
 * This file: the command line, the listener, signals and the event loop.
 * mock.h lists the other files. See docs/mock-opale.md for the contract.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "mock.h"

struct options {
    const char *listen;
    long port;
    const char *port_file;
    long latency_ms;
    double error_rate;
    double reset_rate;
    uint64_t seed;
    const char *jwks;
    const char *assertion_aud;
    const char *assertion_iss;
    const char *mac_key;
    bool quiet;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: " MOCK_NAME " [--listen ADDR] --port N [--port-file FILE]\n"
               "                  [--latency-ms N] [--error-rate P] [--reset-rate P]\n"
               "                  [--seed S] [--quiet]\n"
               "                  [--jwks FILE [--assertion-aud AUD] [--assertion-iss ISS]\n"
               "                   [--mac-key FILE]]\n"
               "  --listen ADDR     IPv4 or IPv6 literal to bind (default 127.0.0.1)\n"
               "  --port N          TCP port, 0 for an ephemeral one\n"
               "  --port-file FILE  write the bound port there (atomically)\n"
               "  --latency-ms N    delay every OPALE reply by N ms (0..600000)\n"
               "  --error-rate P    fraction of OPALE requests answered 500 (0..1)\n"
               "  --reset-rate P    fraction of OPALE requests reset without reply (0..1)\n"
               "  --seed S          seed of the fault-injection PRNG, 0..2^63-1 (default 1)\n"
               "  --quiet           no access log on stderr\n"
               "  --jwks FILE       require a valid X-JWT-Assertion signed by a key of this\n"
               "                    JWKS file (re-read on SIGHUP and on an unknown kid)\n"
               "  --assertion-aud AUD  audience the assertion must name (default " MOCK_DEFAULT_AUD
               ")\n"
               "  --assertion-iss ISS  issuer the assertion must name (default: not checked)\n"
               "  --mac-key FILE    the gateway's oauth.assertion_mac_key_file: require its\n"
               "                    grant + X-Gateway-Request-MAC, refuse replayed request ids\n");
}

static bool parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_rate(const char *s, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0.0 && v <= 1.0))
        return false;
    *out = v;
    return true;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (*s == '-')
        return false;
    errno = 0;
    v = strtoull(s, &end, 0);
    if (errno || end == s || *end || v > (unsigned long long)INT64_MAX)
        return false;
    *out = v;
    return true;
}

/* Returns 0, 1 for --help, or -1 with a message on stderr. */
static int parse_args(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"port", required_argument, NULL, 'p'},
        {"port-file", required_argument, NULL, 'f'},
        {"latency-ms", required_argument, NULL, 'L'},
        {"error-rate", required_argument, NULL, 'e'},
        {"reset-rate", required_argument, NULL, 'r'},
        {"seed", required_argument, NULL, 's'},
        {"quiet", no_argument, NULL, 'q'},
        {"jwks", required_argument, NULL, 'J'},
        {"assertion-aud", required_argument, NULL, 'A'},
        {"assertion-iss", required_argument, NULL, 'I'},
        {"mac-key", required_argument, NULL, 'K'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    *o = (struct options){.listen = "127.0.0.1", .port = -1, .seed = 1};
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:", longopts, NULL)) != -1) {
        switch (c) {
        case 'l':
            o->listen = optarg;
            break;
        case 'p':
            if (!parse_long(optarg, 0, 65535, &o->port)) {
                fprintf(stderr, MOCK_NAME ": --port: expected an integer in 0..65535\n");
                return -1;
            }
            break;
        case 'f':
            if (!*optarg) {
                fprintf(stderr, MOCK_NAME ": --port-file: empty file name\n");
                return -1;
            }
            o->port_file = optarg;
            break;
        case 'L':
            if (!parse_long(optarg, 0, MOCK_MAX_LATENCY_MS, &o->latency_ms)) {
                fprintf(stderr, MOCK_NAME ": --latency-ms: expected an integer in 0..%ld\n",
                        MOCK_MAX_LATENCY_MS);
                return -1;
            }
            break;
        case 'e':
        case 'r':
            if (!parse_rate(optarg, c == 'e' ? &o->error_rate : &o->reset_rate)) {
                fprintf(stderr, MOCK_NAME ": --%s: expected a number in [0, 1]\n",
                        c == 'e' ? "error-rate" : "reset-rate");
                return -1;
            }
            break;
        case 's':
            if (!parse_u64(optarg, &o->seed)) {
                fprintf(stderr, MOCK_NAME ": --seed: expected an integer in 0..2^63-1\n");
                return -1;
            }
            break;
        case 'q':
            o->quiet = true;
            break;
        case 'J':
        case 'A':
        case 'I':
        case 'K':
            if (!*optarg) {
                fprintf(stderr, MOCK_NAME ": --%s: empty value\n",
                        c == 'J'   ? "jwks"
                        : c == 'A' ? "assertion-aud"
                        : c == 'I' ? "assertion-iss"
                                   : "mac-key");
                return -1;
            }
            *(c == 'J'   ? &o->jwks
              : c == 'A' ? &o->assertion_aud
              : c == 'I' ? &o->assertion_iss
                         : &o->mac_key) = optarg;
            break;
        case 'h':
            return 1;
        case ':':
            fprintf(stderr, MOCK_NAME ": %s: missing value\n", argv[optind - 1]);
            return -1;
        default:
            fprintf(stderr, MOCK_NAME ": unknown option: %s\n", argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, MOCK_NAME ": unexpected argument: %s\n", argv[optind]);
        return -1;
    }
    if (o->port < 0) {
        fprintf(stderr, MOCK_NAME ": --port is required\n");
        return -1;
    }
    if (!o->jwks && (o->assertion_aud || o->assertion_iss || o->mac_key)) {
        fprintf(stderr, MOCK_NAME ": --assertion-aud, --assertion-iss and --mac-key need --jwks\n");
        return -1;
    }
    return 0;
}

/* Fills <ss> from an IPv4 or IPv6 literal (brackets allowed around IPv6). */
static int parse_addr(const char *addr, long port, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(addr);
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_PASSIVE, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;

    if (n >= sizeof(host))
        return -1;
    if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']') {
        memcpy(host, addr + 1, n - 2);
        host[n - 2] = '\0';
    } else {
        memcpy(host, addr, n + 1);
    }
    if (getaddrinfo(host, NULL, &hints, &ai) != 0 || !ai)
        return -1;
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *len = ai->ai_addrlen;
    freeaddrinfo(ai);
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    else
        return -1;
    return 0;
}

static int write_port_file(const char *path, unsigned port)
{
    size_t n = strlen(path) + 5;
    char *tmp = malloc(n);
    FILE *f = NULL;
    int rc = -1;

    if (!tmp)
        goto out;
    snprintf(tmp, n, "%s.tmp", path);
    f = fopen(tmp, "w");
    if (!f)
        goto out;
    if (fprintf(f, "%u\n", port) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fclose(f);
        goto out;
    }
    if (fclose(f) != 0)
        goto out;
    if (rename(tmp, path) != 0)
        goto out;
    rc = 0;
out:
    if (rc != 0)
        fprintf(stderr, MOCK_NAME ": %s: %s\n", path, strerror(errno));
    free(tmp);
    return rc;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct mock *m = arg;

    event_base_loopexit(m->base, NULL);
}

static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
    struct mock *m = arg;

    mock_verifier_reload(&m->v, "SIGHUP");
}

int main(int argc, char **argv)
{
    struct options opt;
    struct mock m = {0};
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    struct evconnlistener *lev = NULL;
    struct event *sigterm = NULL, *sigint = NULL, *sighup = NULL;
    char host[INET6_ADDRSTRLEN];
    unsigned port;
    int rc = 1;

    switch (parse_args(argc, argv, &opt)) {
    case 1:
        usage(stdout);
        return 0;
    case -1:
        usage(stderr);
        return 2;
    }
    if (parse_addr(opt.listen, opt.port, &ss, &sslen) != 0) {
        fprintf(stderr, MOCK_NAME ": --listen: not an IPv4 or IPv6 literal: %s\n", opt.listen);
        return 2;
    }

    if (opt.jwks) {
        char err[256];
        if (mock_verifier_open(&m.v, opt.jwks, opt.assertion_aud, opt.assertion_iss, opt.quiet, err,
                               sizeof(err)) != 0) {
            fprintf(stderr, MOCK_NAME ": --jwks %s: %s\n", opt.jwks, err);
            return 2;
        }
        if (opt.mac_key && mock_verifier_set_mac_key(&m.v, opt.mac_key, err, sizeof(err)) != 0) {
            fprintf(stderr, MOCK_NAME ": --mac-key %s: %s\n", opt.mac_key, err);
            mock_verifier_close(&m.v);
            return 2;
        }
    }

    signal(SIGPIPE, SIG_IGN);
    m.fault = (struct fault){opt.latency_ms, opt.error_rate, opt.reset_rate};
    m.seed = opt.seed;
    m.rng = opt.seed;
    m.quiet = opt.quiet;
    m.by_path = json_object();
    /* The epoll changelist folds the event changes evhttp makes while it
     * handles a request (read disabled, then enabled, then writing) into
     * one epoll_ctl() at the next wait, or none: four epoll_ctl() per
     * request without it. The changelist's caveat is a descriptor that
     * dup() leaves registered twice; the reset's dup3() (server.c) instead
     * puts an unregistered socket on the connection's descriptor, whose
     * socket leaves epoll as it closes: the later EPOLL_CTL_DEL gets ENOENT,
     * which libevent ignores. */
    struct event_config *ec = event_config_new();
    if (ec) {
        event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        m.base = event_base_new_with_config(ec);
        event_config_free(ec);
    }
    m.http = m.base ? evhttp_new(m.base) : NULL;
    if (!m.by_path || !m.http) {
        fprintf(stderr, MOCK_NAME ": out of memory\n");
        goto out;
    }
    evhttp_set_allowed_methods(m.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                           EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                           EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT |
                                           EVHTTP_REQ_PATCH);
    evhttp_set_max_body_size(m.http, MOCK_MAX_BODY);
    evhttp_set_max_headers_size(m.http, MOCK_MAX_HEADERS);
    evhttp_set_timeout(m.http, MOCK_CONN_TIMEOUT_S);
    evhttp_set_gencb(m.http, mock_on_request, &m);
    evhttp_set_bevcb(m.http, mock_on_new_conn, &m);

    /* Backlog SOMAXCONN (the kernel caps it at net.core.somaxconn): a
     * gateway that opens hundreds of upstream connections at once (a burst
     * of requests with an empty pool) must not see SYNs dropped, each of
     * which costs its request the 1 s SYN retransmission (bench S8). */
    lev = evconnlistener_new_bind(m.base, NULL, NULL,
                                  LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                                  SOMAXCONN, (struct sockaddr *)&ss, (int)sslen);
    if (!lev) {
        fprintf(stderr, MOCK_NAME ": cannot listen on %s port %ld: %s\n", opt.listen, opt.port,
                strerror(errno));
        goto out;
    }
    /* Replies leave at once (no Nagle delay behind an unacknowledged
     * segment); Linux copies the option to each accepted socket. */
    int one = 1;
    setsockopt(evconnlistener_get_fd(lev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* evhttp takes the listener over (and frees it with the evhttp); it
     * accepts on it, and mock_on_new_conn counts each accepted connection. */
    if (!evhttp_bind_listener(m.http, lev)) {
        evconnlistener_free(lev);
        fprintf(stderr, MOCK_NAME ": cannot attach the listener\n");
        goto out;
    }

    sslen = sizeof(ss);
    if (getsockname(evconnlistener_get_fd(lev), (struct sockaddr *)&ss, &sslen) != 0) {
        fprintf(stderr, MOCK_NAME ": getsockname: %s\n", strerror(errno));
        goto out;
    }
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        evutil_inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        port = ntohs(s6->sin6_port);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        evutil_inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        port = ntohs(s4->sin_port);
    }

    sigterm = evsignal_new(m.base, SIGTERM, on_signal, &m);
    sigint = evsignal_new(m.base, SIGINT, on_signal, &m);
    if (!sigterm || !sigint || evsignal_add(sigterm, NULL) || evsignal_add(sigint, NULL)) {
        fprintf(stderr, MOCK_NAME ": cannot install signal handlers\n");
        goto out;
    }
    if (m.v.jwks_path) { /* without --jwks, SIGHUP keeps its default action */
        sighup = evsignal_new(m.base, SIGHUP, on_sighup, &m);
        if (!sighup || evsignal_add(sighup, NULL)) {
            fprintf(stderr, MOCK_NAME ": cannot install signal handlers\n");
            goto out;
        }
    }

    if (opt.port_file && write_port_file(opt.port_file, port) != 0)
        goto out;
    if (ss.ss_family == AF_INET6)
        printf(MOCK_NAME " listening on [%s]:%u\n", host, port);
    else
        printf(MOCK_NAME " listening on %s:%u\n", host, port);
    fflush(stdout);

    if (event_base_dispatch(m.base) < 0) {
        fprintf(stderr, MOCK_NAME ": event loop failed\n");
        goto out;
    }
    rc = 0;
out:
    /* evhttp_free() closes every connection; the close callback drops the
     * pending replies of those connections, so the list ends up empty. */
    if (m.http)
        evhttp_free(m.http);
    mock_pending_free_all(&m);
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    if (sighup)
        event_free(sighup);
    if (m.base)
        event_base_free(m.base);
    json_decref(m.by_path);
    mock_last_clear(&m.last);
    free(m.last.buf);
    mock_verifier_close(&m.v);
    return rc;
}
