/*
 * opale-loadgen: an HTTP/1.1 load generator for the opale-gateway bench.
 *
 * HTTPS with a client certificate (mTLS) or plain HTTP, keep-alive or a new
 * connection per request, closed loop (as fast as the target answers) or open
 * loop at a fixed rate (latency measured from the scheduled time, as wrk2
 * does). C connections over T threads, one libevent event_base per thread,
 * bufferevent_openssl for TLS, its own minimal response parser.
 *
 * It shares no code with the gateway on purpose: a bug in the gateway's HTTP
 * code must not be hidden by the same bug in the tool that measures it.
 *
 * Documentation: docs/loadgen.md.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <openssl/err.h>
#include <openssl/rand.h>
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
#define HOLD_WINDOW 256 /* --hold: connections being set up at once, all threads */

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static struct timeval ns_to_tv(uint64_t ns)
{
    struct timeval tv;
    tv.tv_sec = (time_t)(ns / NS_PER_S);
    tv.tv_usec = (suseconds_t)((ns % NS_PER_S) / 1000);
    return tv;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    fputs(LG_NAME ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs(LG_NAME ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry '" LG_NAME " --help'.\n", stderr);
    exit(2);
}

static int is_tchar(unsigned char ch)
{
    if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
        return 1;
    return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* xoshiro256** (per thread; seeded from the OpenSSL DRBG). Good enough for
 * correlation identifiers, which need to be unique, not unpredictable. */
static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(uint64_t s[4])
{
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* A UUID version 4 (RFC 9562), 36 characters, lower case, no NUL. */
static void uuid_v4(uint64_t s[4], char out[36])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    uint64_t a = rng_next(s), c = rng_next(s);
    for (int i = 0; i < 8; i++) {
        b[i] = (unsigned char)(a >> (56 - 8 * i));
        b[8 + i] = (unsigned char)(c >> (56 - 8 * i));
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
}

/* ------------------------------------------------------------------------ */
/* Latency histogram: log-linear (HDR-style) over microseconds.             */
/*                                                                          */
/* Values below 2*H_SUB are exact. Above, a value v with its highest bit at */
/* position e falls in one of H_SUB linear sub-buckets of width 2^(e-7):    */
/* relative error below 1/128 (0.78%). Values up to 2^40 us (12.7 days).    */

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

static unsigned h_index(uint64_t v)
{
    if (v < 2 * H_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    unsigned s = e - H_SUB_BITS;
    unsigned m = (unsigned)(v >> s);
    return 2 * H_SUB + (s - 1) * H_SUB + (m - H_SUB);
}

static uint64_t h_lower(unsigned i)
{
    if (i < 2 * H_SUB)
        return i;
    unsigned s = (i - 2 * H_SUB) / H_SUB + 1, m = (i - 2 * H_SUB) % H_SUB + H_SUB;
    return (uint64_t)m << s;
}

static uint64_t h_upper(unsigned i)
{
    if (i < 2 * H_SUB)
        return i;
    unsigned s = (i - 2 * H_SUB) / H_SUB + 1, m = (i - 2 * H_SUB) % H_SUB + H_SUB;
    return (((uint64_t)m + 1) << s) - 1;
}

static void h_add(struct hist *h, uint64_t v)
{
    if (v > H_VMAX)
        v = H_VMAX;
    if (h->n == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->n++;
    h->sum += (double)v;
    h->sumsq += (double)v * (double)v;
    h->b[h_index(v)]++;
}

static void h_merge(struct hist *dst, const struct hist *src)
{
    if (src->n == 0)
        return;
    if (dst->n == 0 || src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->n += src->n;
    dst->sum += src->sum;
    dst->sumsq += src->sumsq;
    for (unsigned i = 0; i < H_NB; i++)
        dst->b[i] += src->b[i];
}

/* The value at percentile p (0..100): the highest value equivalent to the
 * bucket holding the ceil(p% * n)-th value, never above the exact max. */
static uint64_t h_pct(const struct hist *h, double p)
{
    if (h->n == 0)
        return 0;
    if (p <= 0)
        return h->min;
    if (p >= 100)
        return h->max;
    uint64_t target = (uint64_t)ceil(p / 100.0 * (double)h->n);
    if (target < 1)
        target = 1;
    uint64_t cum = 0;
    for (unsigned i = 0; i < H_NB; i++) {
        cum += h->b[i];
        if (cum >= target) {
            uint64_t u = h_upper(i);
            if (u > h->max)
                u = h->max;
            if (u < h->min)
                u = h->min;
            return u;
        }
    }
    return h->max;
}

static double h_mean(const struct hist *h)
{
    return h->n ? h->sum / (double)h->n : 0.0;
}

static double h_stdev(const struct hist *h)
{
    if (h->n < 2)
        return 0.0;
    double m = h_mean(h), var = h->sumsq / (double)h->n - m * m;
    return var > 0 ? sqrt(var) : 0.0;
}

/* ------------------------------------------------------------------------ */
/* Options                                                                  */

struct url {
    int tls;
    char host[256];      /* as written, without the IPv6 brackets */
    char authority[300]; /* host[:port] as written: the Host header */
    char path[MAX_PATH_LEN + 1];
    unsigned port;
    struct sockaddr_storage addr;
    socklen_t addrlen;
};

struct options {
    const char *url_arg;
    struct url url;
    long conns, threads;
    double duration, rate, timeout;
    double hold;           /* --hold S: hold the connections idle for S s (0: off) */
    uint64_t max_requests; /* 0: no bound but the duration */
    const char *cert, *key, *cacert, *sni, *sigalgs, *groups;
    int insecure, plain, new_conn, correlation_id, progress;
    const char *headers[MAX_HEADERS];
    int nheaders;
    const char *paths[MAX_PATHS];
    int npaths;
    const char *token_url, *token_scope;
    struct url token;
    const char *json;
};

static struct options g_opt;

static int valid_target(const char *p)
{
    if (p[0] != '/' || strlen(p) > MAX_PATH_LEN)
        return 0;
    for (const unsigned char *s = (const unsigned char *)p; *s; s++)
        if (*s <= 0x20 || *s >= 0x7f || *s == '#')
            return 0;
    return 1;
}

/* https://HOST[:PORT][/PATH] or http://...; HOST is an IPv4 literal, an IPv6
 * literal in brackets, or "localhost" (127.0.0.1). */
static int parse_url(const char *s, struct url *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    const char *p;
    if (strncasecmp(s, "https://", 8) == 0) {
        u->tls = 1;
        p = s + 8;
    } else if (strncasecmp(s, "http://", 7) == 0) {
        u->tls = 0;
        p = s + 7;
    } else {
        snprintf(err, errlen, "URL must start with https:// or http://: %s", s);
        return -1;
    }
    const char *auth_end = p + strcspn(p, "/?#");
    if (*auth_end == '?' || *auth_end == '#') {
        snprintf(err, errlen, "URL: a path must start with '/': %s", s);
        return -1;
    }
    size_t alen = (size_t)(auth_end - p);
    if (alen == 0 || alen >= sizeof u->authority) {
        snprintf(err, errlen, "URL: empty or too long host: %s", s);
        return -1;
    }
    memcpy(u->authority, p, alen);
    u->authority[alen] = '\0';

    const char *hs = p, *he, *rest;
    if (*p == '[') {
        he = memchr(p, ']', alen);
        if (!he) {
            snprintf(err, errlen, "URL: unterminated IPv6 literal: %s", s);
            return -1;
        }
        hs = p + 1;
        rest = he + 1;
    } else {
        he = memchr(p, ':', alen);
        if (!he)
            he = auth_end;
        rest = he;
    }
    size_t hlen = (size_t)(he - hs);
    if (hlen == 0 || hlen >= sizeof u->host) {
        snprintf(err, errlen, "URL: empty host: %s", s);
        return -1;
    }
    memcpy(u->host, hs, hlen);
    u->host[hlen] = '\0';
    u->port = u->tls ? 443 : 80;
    if (rest < auth_end) {
        if (*rest != ':' || rest + 1 == auth_end) {
            snprintf(err, errlen, "URL: bad port: %s", s);
            return -1;
        }
        unsigned long port = 0;
        for (const char *q = rest + 1; q < auth_end; q++) {
            if (*q < '0' || *q > '9' || port > 65535) {
                snprintf(err, errlen, "URL: bad port: %s", s);
                return -1;
            }
            port = port * 10 + (unsigned long)(*q - '0');
        }
        if (port == 0 || port > 65535) {
            snprintf(err, errlen, "URL: port out of range: %s", s);
            return -1;
        }
        u->port = (unsigned)port;
    }

    struct sockaddr_in *a4 = (struct sockaddr_in *)&u->addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&u->addr;
    const char *h = strcasecmp(u->host, "localhost") == 0 ? "127.0.0.1" : u->host;
    if (*p == '[') {
        if (inet_pton(AF_INET6, h, &a6->sin6_addr) != 1) {
            snprintf(err, errlen, "URL: not an IPv6 literal: %s", u->host);
            return -1;
        }
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)u->port);
        u->addrlen = sizeof *a6;
    } else if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)u->port);
        u->addrlen = sizeof *a4;
    } else {
        snprintf(err, errlen,
                 "URL: the host must be an IPv4 literal, an IPv6 literal in brackets or "
                 "localhost (no name resolution): %s",
                 u->host);
        return -1;
    }

    const char *path = *auth_end ? auth_end : "/";
    if (!valid_target(path)) {
        snprintf(err, errlen, "URL: bad path (printable ASCII without spaces, at most %d bytes)",
                 MAX_PATH_LEN);
        return -1;
    }
    snprintf(u->path, sizeof u->path, "%s", path);
    return 0;
}

static double parse_num(const char *opt, const char *s, double lo, double hi, int allow_s_suffix)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (allow_s_suffix && end != s && *end == 's')
        end++;
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
        usage_error("%s: expected a number in [%g, %g]: '%s'", opt, lo, hi, s);
    return v;
}

static long parse_int(const char *opt, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        usage_error("%s: expected an integer in [%ld, %ld]: '%s'", opt, lo, hi, s);
    return v;
}

/* "Name: value". Returns the name length, or 0 if malformed. */
static size_t header_name_len(const char *h)
{
    size_t n = 0;
    while (is_tchar((unsigned char)h[n]))
        n++;
    if (n == 0 || h[n] != ':')
        return 0;
    for (const unsigned char *v = (const unsigned char *)h + n + 1; *v; v++)
        if ((*v < 0x20 && *v != '\t') || *v == 0x7f)
            return 0;
    return n;
}

static int header_is(const char *h, const char *name)
{
    size_t n = strlen(name);
    return strncasecmp(h, name, n) == 0 && h[n] == ':';
}

static int have_header(const char *name)
{
    for (int i = 0; i < g_opt.nheaders; i++)
        if (header_is(g_opt.headers[i], name))
            return 1;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " LG_NAME " -u URL [options]\n"
            "\n"
            "  -u, --url URL          https://HOST:PORT[/PATH] (or http:// with --plain); HOST is\n"
            "                         an IPv4 literal, [IPv6] or localhost\n"
            "  -c, --connections N    connections (default 10)\n"
            "  -t, --threads N        threads, one event loop each (default 1, at most -c)\n"
            "  -d, --duration S       measure for S seconds (default 10, or 3600 with -n;\n"
            "                         at most 3600), after the connections are open\n"
            "  -n, --requests N       stop after N requests (-d still bounds the run)\n"
            "      --rate R           open loop: R requests/s in total, on a timetable; latency\n"
            "                         is measured from the scheduled time (default: closed loop)\n"
            "      --new-conn         a new connection (TLS handshake) per request\n"
            "      --hold S           open -c connections (one request each, at most %d\n"
            "                         being set up at once), then keep them open and idle\n"
            "                         for S seconds, then exit (memory per connection)\n"
            "      --cert F --key F   client certificate and key (PEM)\n"
            "      --cacert F         verify the server against these CA certificates (PEM)\n"
            "      --insecure         do not verify the server certificate\n"
            "      --sni NAME         SNI and name checked in the server certificate\n"
            "                         (default localhost)\n"
            "      --sigalgs LIST     TLS signature algorithms offered (OpenSSL syntax, e.g.\n"
            "                         rsa_pss_rsae_sha256 to get an RSA server certificate)\n"
            "      --groups LIST      TLS key-exchange groups offered (e.g. P-256:X25519)\n"
            "  -H, --header 'N: v'    add a request header (repeatable)\n"
            "      --correlation-id   a fresh UUID v4 X-Correlation-ID per request\n"
            "      --path P           request path; repeatable: rotate through them\n"
            "      --token-url URL    POST grant_type=client_credentials there once (with the\n"
            "                         client certificate) and send the access_token as\n"
            "                         'Authorization: Bearer'\n"
            "      --token-scope S    add scope=S to that POST\n"
            "      --timeout S        bounds each connection attempt, each request and the\n"
            "                         connect phase (default 5)\n"
            "      --json FILE        write the results as JSON\n"
            "      --progress         a progress line each second on stderr\n"
            "      --plain            plain HTTP (http:// URL), for cross-checks\n"
            "  -h, --help             this help\n"
            "  -V, --version          version\n",
            HOLD_WINDOW);
}

static void parse_options(int argc, char **argv)
{
    enum {
        OPT_RATE = 256,
        OPT_NEWCONN,
        OPT_CERT,
        OPT_KEY,
        OPT_CACERT,
        OPT_INSECURE,
        OPT_SNI,
        OPT_CORR,
        OPT_PATH,
        OPT_TOKEN,
        OPT_TOKEN_SCOPE,
        OPT_TIMEOUT,
        OPT_JSON,
        OPT_PROGRESS,
        OPT_PLAIN,
        OPT_SIGALGS,
        OPT_GROUPS,
        OPT_HOLD
    };
    static const struct option lo[] = {
        {"url", required_argument, NULL, 'u'},
        {"connections", required_argument, NULL, 'c'},
        {"threads", required_argument, NULL, 't'},
        {"duration", required_argument, NULL, 'd'},
        {"requests", required_argument, NULL, 'n'},
        {"header", required_argument, NULL, 'H'},
        {"rate", required_argument, NULL, OPT_RATE},
        {"new-conn", no_argument, NULL, OPT_NEWCONN},
        {"cert", required_argument, NULL, OPT_CERT},
        {"key", required_argument, NULL, OPT_KEY},
        {"cacert", required_argument, NULL, OPT_CACERT},
        {"insecure", no_argument, NULL, OPT_INSECURE},
        {"sni", required_argument, NULL, OPT_SNI},
        {"correlation-id", no_argument, NULL, OPT_CORR},
        {"path", required_argument, NULL, OPT_PATH},
        {"token-url", required_argument, NULL, OPT_TOKEN},
        {"token-scope", required_argument, NULL, OPT_TOKEN_SCOPE},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"json", required_argument, NULL, OPT_JSON},
        {"progress", no_argument, NULL, OPT_PROGRESS},
        {"plain", no_argument, NULL, OPT_PLAIN},
        {"sigalgs", required_argument, NULL, OPT_SIGALGS},
        {"groups", required_argument, NULL, OPT_GROUPS},
        {"hold", required_argument, NULL, OPT_HOLD},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    struct options *o = &g_opt;
    int duration_set = 0;
    memset(o, 0, sizeof *o);
    o->conns = 10;
    o->threads = 1;
    o->duration = 10;
    o->timeout = 5;
    o->sni = "localhost";

    int ch;
    while ((ch = getopt_long(argc, argv, "u:c:t:d:n:H:hV", lo, NULL)) != -1) {
        switch (ch) {
        case 'u':
            o->url_arg = optarg;
            break;
        case 'c':
            o->conns = parse_int("-c", optarg, 1, MAX_CONNS);
            break;
        case 't':
            o->threads = parse_int("-t", optarg, 1, MAX_THREADS);
            break;
        case 'd': {
            char *end;
            double d = strtod(optarg, &end);
            if (end != optarg && *end == 's')
                end++;
            if (end != optarg && !*end && isfinite(d) && d > MAX_DURATION_S)
                usage_error("-d: %s s is more than the %g s a run may last", optarg,
                            MAX_DURATION_S);
            o->duration = parse_num("-d", optarg, 0.1, MAX_DURATION_S, 1);
            duration_set = 1;
            break;
        }
        case 'n':
            o->max_requests = (uint64_t)parse_num("-n", optarg, 1, 1e12, 0);
            if ((double)o->max_requests != strtod(optarg, NULL))
                usage_error("-n: expected an integer: '%s'", optarg);
            break;
        case 'H':
            if (o->nheaders >= MAX_HEADERS)
                usage_error("-H: at most %d headers", MAX_HEADERS);
            if (strlen(optarg) > MAX_HEADER_LEN || header_name_len(optarg) == 0)
                usage_error("-H: expected 'Name: value' (token name, no control characters, "
                            "at most %d bytes): '%s'",
                            MAX_HEADER_LEN, optarg);
            o->headers[o->nheaders++] = optarg;
            break;
        case OPT_RATE:
            o->rate = parse_num("--rate", optarg, 0.001, 1e7, 0);
            break;
        case OPT_NEWCONN:
            o->new_conn = 1;
            break;
        case OPT_CERT:
            o->cert = optarg;
            break;
        case OPT_KEY:
            o->key = optarg;
            break;
        case OPT_CACERT:
            o->cacert = optarg;
            break;
        case OPT_INSECURE:
            o->insecure = 1;
            break;
        case OPT_SNI:
            if (!*optarg || strlen(optarg) > 253 ||
                strspn(optarg, "abcdefghijklmnopqrstuvwxyz"
                               "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               "0123456789-.") != strlen(optarg))
                usage_error("--sni: expected a DNS name: '%s'", optarg);
            o->sni = optarg;
            break;
        case OPT_CORR:
            o->correlation_id = 1;
            break;
        case OPT_PATH:
            if (o->npaths >= MAX_PATHS)
                usage_error("--path: at most %d paths", MAX_PATHS);
            if (!valid_target(optarg))
                usage_error("--path: must start with '/', printable ASCII without spaces, at "
                            "most %d bytes: '%s'",
                            MAX_PATH_LEN, optarg);
            o->paths[o->npaths++] = optarg;
            break;
        case OPT_TOKEN:
            o->token_url = optarg;
            break;
        case OPT_TOKEN_SCOPE:
            if (!*optarg || strlen(optarg) > 1024)
                usage_error("--token-scope: empty or too long");
            o->token_scope = optarg;
            break;
        case OPT_TIMEOUT:
            o->timeout = parse_num("--timeout", optarg, 0.01, 600, 1);
            break;
        case OPT_JSON:
            o->json = optarg;
            break;
        case OPT_PROGRESS:
            o->progress = 1;
            break;
        case OPT_PLAIN:
            o->plain = 1;
            break;
        case OPT_SIGALGS:
            o->sigalgs = optarg;
            break;
        case OPT_GROUPS:
            o->groups = optarg;
            break;
        case OPT_HOLD:
            o->hold = parse_num("--hold", optarg, 0.1, MAX_DURATION_S, 1);
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case 'V':
            printf(LG_NAME " " LG_VERSION "\n");
            exit(0);
        default:
            fputs("Try '" LG_NAME " --help'.\n", stderr);
            exit(2);
        }
    }
    if (optind < argc)
        usage_error("unexpected argument: '%s'", argv[optind]);
    if (!o->url_arg)
        usage_error("-u URL is required");

    char err[512];
    if (parse_url(o->url_arg, &o->url, err, sizeof err) != 0)
        usage_error("-u: %s", err);
    if (o->plain && o->url.tls)
        usage_error("--plain needs an http:// URL");
    if (!o->plain && !o->url.tls)
        usage_error("an http:// URL needs --plain (plain HTTP, no TLS)");
    if (o->threads > o->conns)
        usage_error("-t %ld: more threads than connections (-c %ld)", o->threads, o->conns);
    if ((o->cert == NULL) != (o->key == NULL))
        usage_error("--cert and --key go together");
    if (o->plain && (o->cert || o->cacert || o->insecure || o->sigalgs || o->groups))
        usage_error("--plain takes no TLS option (--cert, --key, --cacert, --insecure, "
                    "--sigalgs, --groups)");
    if (o->insecure && o->cacert)
        usage_error("--insecure and --cacert exclude each other");
    if (o->npaths == 0)
        o->paths[o->npaths++] = o->url.path;
    if (o->hold > 0) {
        if (duration_set || o->max_requests || o->rate > 0 || o->new_conn)
            usage_error("--hold excludes -d, -n, --rate and --new-conn (it opens the "
                        "connections, sends one request on each, then holds them)");
        o->duration = o->hold;
    }
    if (o->max_requests && !duration_set)
        o->duration = MAX_DURATION_S;
    if (o->rate > 0 && o->rate / (double)o->conns > 1e6)
        usage_error("--rate: more than 1e6 requests/s per connection");
    for (int i = 0; i < o->nheaders; i++) {
        const char *h = o->headers[i];
        if (header_is(h, "Content-Length") || header_is(h, "Transfer-Encoding") ||
            header_is(h, "Connection") || header_is(h, "Expect") || header_is(h, "Upgrade") ||
            header_is(h, "TE"))
            usage_error("-H: %.*s is managed by " LG_NAME " (GET, keep-alive, no body)",
                        (int)header_name_len(h), h);
        if (o->correlation_id && header_is(h, "X-Correlation-ID"))
            usage_error("-H X-Correlation-ID and --correlation-id exclude each other");
        if (o->token_url && header_is(h, "Authorization"))
            usage_error("-H Authorization and --token-url exclude each other");
    }
    if (o->token_url) {
        if (parse_url(o->token_url, &o->token, err, sizeof err) != 0)
            usage_error("--token-url: %s", err);
        if (o->token.tls == o->plain)
            usage_error("--token-url: use the same scheme as -u");
    } else if (o->token_scope) {
        usage_error("--token-scope needs --token-url");
    }
}

/* ------------------------------------------------------------------------ */
/* Response parser: HTTP/1.1 status line, headers, Content-Length or        */
/* chunked body. Anything else (1xx, a body delimited by the close, an      */
/* unknown transfer coding, malformed syntax, sizes over the limits) is an  */
/* error.                                                                   */

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

static void rp_reset(struct rparser *p)
{
    p->st = RP_HEAD;
    p->status = 0;
    p->close = 0;
    p->remaining = 0;
    p->scanned = 0;
    p->trailer_bytes = 0;
    p->error = NULL;
}

static int rp_fail(struct rparser *p, const char *why)
{
    p->error = why;
    return -1;
}

static int ci_eq(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    return alen == blen && strncasecmp(a, b, blen) == 0;
}

/* The head: h[0..len), ending with CRLF CRLF. */
static int rp_head(struct rparser *p, const char *h, size_t len)
{
    const char *end = h + len - 2; /* the final empty line's CRLF */
    const char *line = h;
    const char *eol = memchr(line, '\r', (size_t)(end - line) + 1);
    if (!eol || eol[1] != '\n')
        return rp_fail(p, "status line");
    size_t ll = (size_t)(eol - line);
    /* HTTP/1.x SP 3DIGIT [SP reason] */
    if (ll < 12 || memcmp(line, "HTTP/1.", 7) != 0 || (line[7] != '0' && line[7] != '1') ||
        line[8] != ' ' || line[9] < '1' || line[9] > '9' || line[10] < '0' || line[10] > '9' ||
        line[11] < '0' || line[11] > '9' || (ll > 12 && line[12] != ' '))
        return rp_fail(p, "status line");
    for (size_t i = 12; i < ll; i++) {
        unsigned char c = (unsigned char)line[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return rp_fail(p, "control character in the reason phrase");
    }
    int http10 = line[7] == '0';
    p->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    if (p->status < 200 || p->status > 599)
        return rp_fail(p, "status code outside 200..599 (1xx unsupported)");

    int have_cl = 0, chunked = 0, keep_alive = 0;
    uint64_t cl = 0;
    int nheaders = 0;
    for (line = eol + 2; line < end; line = eol + 2) {
        eol = memchr(line, '\r', (size_t)(end - line) + 1);
        if (!eol || eol[1] != '\n')
            return rp_fail(p, "bare CR in the head");
        if (++nheaders > 1000)
            return rp_fail(p, "more than 1000 header fields");
        if (memchr(line, '\n', (size_t)(eol - line)))
            return rp_fail(p, "bare LF in the head");
        if (*line == ' ' || *line == '\t')
            return rp_fail(p, "obsolete line folding");
        const char *colon = line;
        while (colon < eol && is_tchar((unsigned char)*colon))
            colon++;
        if (colon == line || colon == eol || *colon != ':')
            return rp_fail(p, "malformed header field");
        size_t nlen = (size_t)(colon - line);
        const char *v = colon + 1, *ve = eol;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        for (const char *q = v; q < ve; q++) {
            unsigned char c = (unsigned char)*q;
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return rp_fail(p, "control character in a field value");
        }
        size_t vlen = (size_t)(ve - v);
        if (ci_eq(line, nlen, "content-length")) {
            if (vlen == 0 || vlen > 15)
                return rp_fail(p, "bad Content-Length");
            uint64_t n = 0;
            for (size_t i = 0; i < vlen; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return rp_fail(p, "bad Content-Length");
                n = n * 10 + (uint64_t)(v[i] - '0');
            }
            if (have_cl && n != cl)
                return rp_fail(p, "conflicting Content-Length");
            have_cl = 1;
            cl = n;
        } else if (ci_eq(line, nlen, "transfer-encoding")) {
            if (chunked || !ci_eq(v, vlen, "chunked"))
                return rp_fail(p, "Transfer-Encoding other than a single 'chunked'");
            chunked = 1;
        } else if (ci_eq(line, nlen, "connection")) {
            const char *t = v;
            while (t < ve) {
                const char *te = memchr(t, ',', (size_t)(ve - t));
                if (!te)
                    te = ve;
                const char *a = t, *b = te;
                while (a < b && (*a == ' ' || *a == '\t'))
                    a++;
                while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
                    b--;
                if (ci_eq(a, (size_t)(b - a), "close"))
                    p->close = 1;
                else if (ci_eq(a, (size_t)(b - a), "keep-alive"))
                    keep_alive = 1;
                t = te + 1;
            }
        }
    }
    if (http10 && !keep_alive)
        p->close = 1;
    if (p->status == 204 || p->status == 304)
        return 1;
    if (chunked && have_cl)
        return rp_fail(p, "both Content-Length and Transfer-Encoding");
    if (chunked) {
        if (http10)
            return rp_fail(p, "chunked HTTP/1.0 response");
        p->st = RP_CHUNK_SIZE;
        return 0;
    }
    if (!have_cl)
        return rp_fail(p, "no Content-Length nor chunked (close-delimited bodies unsupported)");
    if (cl == 0)
        return 1;
    p->remaining = cl;
    p->st = RP_BODY;
    return 0;
}

static int rp_take(struct rparser *p, struct evbuffer *in, size_t n, int body)
{
    if (body && p->capture) {
        if (evbuffer_get_length(p->capture) + n > CAPTURE_MAX)
            return rp_fail(p, "body too large");
        if (evbuffer_remove_buffer(in, p->capture, n) != (int)n)
            return rp_fail(p, "out of memory");
    } else {
        evbuffer_drain(in, n);
    }
    p->consumed += n;
    return 0;
}

/* Consume from IN. Returns 1 when a whole response has been read (the
 * parser must then be reset), 0 when more input is needed, -1 on error.
 * Every iteration consumes input or returns: bounded by the input length. */
static int rp_feed(struct rparser *p, struct evbuffer *in)
{
    for (;;) {
        size_t avail = evbuffer_get_length(in);
        switch (p->st) {
        case RP_HEAD: {
            if (avail == 0)
                return 0;
            struct evbuffer_ptr start, pos;
            if (evbuffer_ptr_set(in, &start, p->scanned, EVBUFFER_PTR_SET) != 0)
                return rp_fail(p, "internal: search offset");
            pos = evbuffer_search(in, "\r\n\r\n", 4, &start);
            if (pos.pos < 0) {
                if (avail > HEAD_MAX)
                    return rp_fail(p, "response head over 64 KiB");
                p->scanned = avail > 3 ? avail - 3 : 0;
                return 0;
            }
            size_t hlen = (size_t)pos.pos + 4;
            if (hlen > HEAD_MAX)
                return rp_fail(p, "response head over 64 KiB");
            const char *h = (const char *)evbuffer_pullup(in, (ev_ssize_t)hlen);
            if (!h)
                return rp_fail(p, "out of memory");
            int r = rp_head(p, h, hlen);
            if (r < 0)
                return -1;
            rp_take(p, in, hlen, 0);
            if (r == 1)
                return 1;
            break;
        }
        case RP_BODY: {
            if (avail == 0)
                return 0;
            size_t n = avail < p->remaining ? avail : (size_t)p->remaining;
            if (rp_take(p, in, n, 1) != 0)
                return -1;
            p->remaining -= n;
            if (p->remaining == 0)
                return 1;
            return 0;
        }
        case RP_CHUNK_SIZE:
        case RP_TRAILER: {
            size_t eol_len = 0;
            struct evbuffer_ptr pos =
                evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF_STRICT);
            size_t limit = p->st == RP_CHUNK_SIZE ? CHUNK_LINE_MAX : HEAD_MAX - p->trailer_bytes;
            if (pos.pos < 0) {
                if (avail > limit)
                    return rp_fail(p, p->st == RP_CHUNK_SIZE ? "chunk-size line too long"
                                                             : "trailers too long");
                return 0;
            }
            size_t ll = (size_t)pos.pos;
            if (ll > limit)
                return rp_fail(p, p->st == RP_CHUNK_SIZE ? "chunk-size line too long"
                                                         : "trailers too long");
            if (p->st == RP_TRAILER) {
                rp_take(p, in, ll + 2, 0);
                if (ll == 0)
                    return 1;
                p->trailer_bytes += ll + 2;
                break;
            }
            char line[CHUNK_LINE_MAX + 1];
            evbuffer_copyout(in, line, ll);
            line[ll] = '\0';
            uint64_t size = 0;
            size_t i = 0;
            for (; i < ll; i++) {
                int d;
                char c = line[i];
                if (c >= '0' && c <= '9')
                    d = c - '0';
                else if (c >= 'a' && c <= 'f')
                    d = c - 'a' + 10;
                else if (c >= 'A' && c <= 'F')
                    d = c - 'A' + 10;
                else
                    break;
                if (i >= 15)
                    return rp_fail(p, "chunk size too large");
                size = size * 16 + (uint64_t)d;
            }
            if (i == 0)
                return rp_fail(p, "bad chunk size");
            while (i < ll && (line[i] == ' ' || line[i] == '\t'))
                i++;
            if (i < ll && line[i] != ';')
                return rp_fail(p, "bad chunk size");
            for (; i < ll; i++)
                if (((unsigned char)line[i] < 0x20 && line[i] != '\t') || line[i] == 0x7f)
                    return rp_fail(p, "control character in a chunk extension");
            rp_take(p, in, ll + 2, 0);
            if (size == 0) {
                p->st = RP_TRAILER;
            } else {
                p->remaining = size;
                p->st = RP_CHUNK_DATA;
            }
            break;
        }
        case RP_CHUNK_DATA: {
            if (avail == 0)
                return 0;
            size_t n = avail < p->remaining ? avail : (size_t)p->remaining;
            if (rp_take(p, in, n, 1) != 0)
                return -1;
            p->remaining -= n;
            if (p->remaining > 0)
                return 0;
            p->st = RP_CHUNK_CRLF;
            break;
        }
        case RP_CHUNK_CRLF: {
            if (avail < 2)
                return 0;
            char crlf[2];
            evbuffer_copyout(in, crlf, 2);
            if (crlf[0] != '\r' || crlf[1] != '\n')
                return rp_fail(p, "chunk data not followed by CRLF");
            rp_take(p, in, 2, 0);
            p->st = RP_CHUNK_SIZE;
            break;
        }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Run state                                                                */

enum err_kind { E_CONNECT, E_TLS, E_CLOSED, E_PARSE, E_TIMEOUT, E_N, E_NONE = E_N };
static const char *const err_name[E_N] = {"connect", "tls", "closed", "parse", "timeout"};

struct stats {
    uint64_t claimed;   /* requests started (counted against -n) */
    uint64_t sent;      /* requests written */
    uint64_t completed; /* whole responses read */
    uint64_t failed;    /* requests that ended in an error */
    uint64_t status[6]; /* by class: [2] 2xx ... [5] 5xx */
    uint64_t err[E_N];  /* error events by kind */
    uint64_t conn_attempts, conn_established, handshakes, server_closes, idle_closes;
    uint64_t handshakes_run; /* during the measured run (the rate's numerator) */
    uint64_t bytes_in;
    struct hist lat;  /* request latency, us */
    struct hist conn; /* TCP connect (+ TLS handshake), us */
};

enum conn_state { CS_DOWN, CS_TCP, CS_TLS, CS_READY };

struct worker;

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
    uint64_t gid;   /* global connection number */
    uint64_t backoff_until;
    uint64_t t_connect, t_origin, t_sent;
    uint64_t responses_here; /* on the current connection */
    uint64_t sched_k;
    uint64_t next_sched;
    struct rparser rp;
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
    unsigned hold_next;     /* --hold: next connection to open */
    unsigned hold_active;   /* --hold: connections being set up */
    unsigned held_end;      /* --hold: connections still open at the end */
    int hold_filling;       /* --hold: inside hold_fill (no recursion) */
    _Atomic uint64_t pub_completed, pub_errors;
};

static SSL_CTX *g_ctx;
static uint64_t g_t0, g_deadline, g_ns_per_req;
static atomic_int g_stop;
static atomic_int g_running;
static atomic_int g_ready; /* workers done with their connect phase */
static atomic_int g_go;    /* the clock has started (g_t0, g_deadline set) */
static _Atomic uint64_t g_claimed;
static atomic_int g_reported[E_N]; /* first error of each kind described on stderr */
static volatile sig_atomic_t g_signal;

static char *g_req[MAX_PATHS]; /* "GET path HTTP/1.1\r\n" + fixed headers */
static size_t g_req_len[MAX_PATHS];
static size_t g_req_max;
static char *g_bearer; /* from --token-url */

static void report_first(enum err_kind k, const char *fmt, ...)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&g_reported[k], &expected, 1))
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, LG_NAME ": first %s error: %s\n", err_name[k], msg);
}

static void publish(struct worker *w)
{
    uint64_t e = 0;
    for (int i = 0; i < E_N; i++)
        e += w->st.err[i];
    atomic_store_explicit(&w->pub_completed, w->st.completed, memory_order_relaxed);
    atomic_store_explicit(&w->pub_errors, e, memory_order_relaxed);
}

static int claim_request(void)
{
    if (g_opt.max_requests == 0)
        return 1;
    uint64_t n = atomic_fetch_add_explicit(&g_claimed, 1, memory_order_relaxed);
    return n < g_opt.max_requests;
}

/* Whether -n still allows a request (without claiming one). */
static int requests_left(void)
{
    return g_opt.max_requests == 0 ||
           atomic_load_explicit(&g_claimed, memory_order_relaxed) < g_opt.max_requests;
}

static void conn_open(struct conn *c);
static void slot_next(struct conn *c);
static void phase_done(struct worker *w);
static void hold_settled(struct conn *c);

static void check_done(struct worker *w)
{
    if (w->exhausted && w->busy == 0 && !w->stopping) {
        w->stopping = 1;
        event_base_loopbreak(w->base);
    }
}

static void arm_timer(struct conn *c, uint64_t delay_ns)
{
    struct timeval tv = ns_to_tv(delay_ns);
    event_add(c->timer, &tv);
}

static void conn_close(struct conn *c)
{
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    if (c->tcp_ev) {
        event_free(c->tcp_ev);
        c->tcp_ev = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    c->state = CS_DOWN;
    c->inflight = 0;
    c->responses_here = 0;
}

/* The slot is free and its connection is down (no backoff): keep-alive
 * reconnects at once; --new-conn connects when the next request is due. */
static void reopen_or_next(struct conn *c)
{
    struct worker *w = c->w;
    if (w->stopping)
        return;
    if (!requests_left()) {
        w->exhausted = 1;
        check_done(w);
        return;
    }
    if (!g_opt.new_conn)
        conn_open(c);
    slot_next(c);
}

static void conn_fail(struct conn *c, enum err_kind kind)
{
    struct worker *w = c->w;
    int never_answered = c->responses_here == 0;
    if (kind != E_NONE)
        w->st.err[kind]++;
    if (c->busy) {
        c->busy = 0;
        w->busy--;
        w->st.failed++;
    }
    conn_close(c);
    publish(w);
    if (g_opt.hold > 0) {
        hold_settled(c); /* --hold: never reopened */
        return;
    }
    if (w->stopping)
        return;
    if (kind != E_NONE && never_answered) {
        /* Refused, TLS failure, timeout before any answer: try again after a
         * pause instead of spinning on a dead target. */
        c->backoff_until = now_ns() + BACKOFF_NS;
        arm_timer(c, BACKOFF_NS);
    } else {
        reopen_or_next(c);
    }
    check_done(w);
}

static void send_request(struct conn *c)
{
    struct worker *w = c->w;
    unsigned pi = g_opt.npaths > 1 ? w->path_next++ % (unsigned)g_opt.npaths : 0;
    char *b = w->scratch;
    size_t n = g_req_len[pi];
    memcpy(b, g_req[pi], n);
    if (g_opt.correlation_id) {
        memcpy(b + n, "X-Correlation-ID: ", 18);
        n += 18;
        uuid_v4(w->rng, b + n);
        n += 36;
        b[n++] = '\r';
        b[n++] = '\n';
    }
    b[n++] = '\r';
    b[n++] = '\n';
    rp_reset(&c->rp);
    c->inflight = 1;
    c->t_sent = now_ns();
    w->st.sent++;
    /* Write at once rather than through the bufferevent's output, which
     * waits for a write event (two epoll_ctl and a loop iteration per
     * request). What the socket does not take goes to the output, and
     * libevent finishes the job (and reports any error through on_event). */
    size_t done = 0;
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        if (g_opt.url.tls) {
            SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
            ERR_clear_error();
            int r = SSL_write(ssl, b, (int)n);
            if (r > 0)
                done = (size_t)r;
            ERR_clear_error();
        } else {
            ssize_t r = send(bufferevent_getfd(c->bev), b, n, MSG_NOSIGNAL);
            if (r > 0)
                done = (size_t)r;
        }
    }
    if (done < n) {
        if (bufferevent_write(c->bev, b + done, n - done) != 0) {
            report_first(E_CLOSED, "cannot queue the request (out of memory)");
            conn_fail(c, E_CLOSED);
            return;
        }
        if (!g_opt.url.tls)
            bufferevent_enable(c->bev, EV_WRITE);
    }
}

/* Plain HTTP: the output is drained, stop watching for writability. */
static void on_write(struct bufferevent *bev, void *arg)
{
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        bufferevent_disable(bev, EV_WRITE);
}

/* Start the next request on this slot if it is free and due. */
static void slot_next(struct conn *c)
{
    struct worker *w = c->w;
    if (!w->running || w->stopping || w->exhausted || c->busy || c->backoff_until)
        return;
    uint64_t now = now_ns();
    if (g_opt.rate > 0) {
        if (c->next_sched > now) {
            arm_timer(c, c->next_sched - now);
            return;
        }
    } else if (!g_opt.new_conn && c->state != CS_READY) {
        return; /* closed loop: the request goes when the connection is up */
    }
    if (!claim_request()) {
        w->exhausted = 1;
        check_done(w);
        return;
    }
    c->busy = 1;
    w->busy++;
    w->st.claimed++;
    if (g_opt.rate > 0) {
        c->t_origin = c->next_sched;
        c->sched_k++;
        c->next_sched = g_t0 + (uint64_t)((double)(c->gid + c->sched_k * (uint64_t)g_opt.conns) *
                                          (double)g_ns_per_req);
    } else {
        c->t_origin = now;
    }
    if (c->state == CS_READY)
        send_request(c);
    else if (c->state == CS_DOWN)
        conn_open(c);
    /* CS_TCP, CS_TLS: sent once connected */
}

static void conn_ready(struct conn *c)
{
    struct worker *w = c->w;
    uint64_t now = now_ns();
    c->state = CS_READY;
    w->st.conn_established++;
    if (g_opt.url.tls) {
        w->st.handshakes++;
        if (w->running)
            w->st.handshakes_run++;
    }
    h_add(&w->st.conn, (now - c->t_connect) / 1000);
    if (g_opt.hold > 0) {
        /* --hold: one request on the new connection, then it stays idle. */
        if (!w->running && !c->phase_seen && !c->busy) {
            c->busy = 1;
            w->busy++;
            w->st.claimed++;
            c->t_origin = now;
            send_request(c);
        }
        return;
    }
    if (!w->running) {
        /* Connect phase: over once every connection has been up once. */
        if (!c->phase_seen) {
            c->phase_seen = 1;
            if (++w->phase_ready >= w->nconns)
                phase_done(w);
        }
        return;
    }
    if (c->busy)
        send_request(c);
    else
        slot_next(c);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct worker *w = c->w;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (!c->inflight) {
        if (evbuffer_get_length(in) == 0)
            return;
        report_first(E_PARSE, "data from the server with no request outstanding");
        conn_fail(c, E_PARSE);
        return;
    }
    uint64_t before = c->rp.consumed;
    int r = rp_feed(&c->rp, in);
    w->st.bytes_in += c->rp.consumed - before;
    if (r == 0)
        return;
    if (r < 0) {
        report_first(E_PARSE, "%s", c->rp.error ? c->rp.error : "malformed response");
        conn_fail(c, E_PARSE);
        return;
    }
    uint64_t now = now_ns();
    h_add(&w->st.lat, (now - c->t_origin) / 1000);
    w->st.completed++;
    w->st.status[c->rp.status / 100]++;
    c->responses_here++;
    c->inflight = 0;
    c->busy = 0;
    w->busy--;
    publish(w);
    if (evbuffer_get_length(in) > 0) {
        report_first(E_PARSE, "data after the end of a response (no pipelining here)");
        conn_fail(c, E_PARSE);
        return;
    }
    if (g_opt.hold > 0) {
        if (c->rp.close) {
            w->st.server_closes++;
            conn_close(c);
        }
        hold_settled(c);
    } else if (c->rp.close || g_opt.new_conn) {
        if (c->rp.close)
            w->st.server_closes++;
        conn_close(c);
        reopen_or_next(c);
    } else {
        slot_next(c);
    }
    check_done(w);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    struct worker *w = c->w;
    if (what & BEV_EVENT_CONNECTED) {
        conn_ready(c);
        return;
    }
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)))
        return;
    int sockerr = errno;
    /* libevent stores SSL_get_error()'s code (library 0: SSL_ERROR_SSL,
     * SSL_ERROR_SYSCALL...) and then the OpenSSL error queue. Only a real
     * OpenSSL error or SSL_ERROR_SSL is a TLS failure; SSL_ERROR_SYSCALL is
     * the socket closing or failing under TLS, judged like plain HTTP. */
    unsigned long ssl_err = 0, e;
    int protocol_error = 0;
    for (int i = 0; i < 64 && (e = bufferevent_get_openssl_error(bev)) != 0; i++) {
        if (ERR_GET_LIB(e) != 0) {
            if (!ssl_err)
                ssl_err = e;
        } else if (e == SSL_ERROR_SSL) {
            protocol_error = 1;
        }
    }
    ERR_clear_error();
    enum err_kind kind;
    char buf[256];
    if (ssl_err)
        ERR_error_string_n(ssl_err, buf, sizeof buf);
    else if (protocol_error)
        snprintf(buf, sizeof buf, "TLS protocol error");
    else if (what & BEV_EVENT_EOF)
        snprintf(buf, sizeof buf, "connection closed by the server%s",
                 c->state == CS_TLS ? " during the TLS handshake" : "");
    else
        snprintf(buf, sizeof buf, "%s%s", strerror(sockerr),
                 c->state == CS_TLS ? " during the TLS handshake" : "");
    if (c->state == CS_TLS || ssl_err || protocol_error) {
        kind = E_TLS;
    } else if (g_opt.url.tls && c->responses_here == 0 && c->inflight) {
        /* In TLS 1.3 the server's verdict on the client certificate comes
         * after the client's handshake is over: a refusal often shows as a
         * close or a reset (the alert lost) at the first request. */
        kind = E_TLS;
        size_t n = strlen(buf);
        snprintf(buf + n, sizeof buf - n,
                 " before the first response (client certificate refused?)");
    } else if (c->inflight) {
        kind = E_CLOSED;
    } else {
        w->st.idle_closes++; /* the server closed an idle keep-alive connection */
        kind = E_NONE;
    }
    if (kind != E_NONE)
        report_first(kind, "%s", buf);
    conn_fail(c, kind);
}

static void on_tcp(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct worker *w = c->w;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    event_free(c->tcp_ev);
    c->tcp_ev = NULL;
    if (err) {
        report_first(E_CONNECT, "%s", strerror(err));
        conn_fail(c, E_CONNECT);
        return;
    }
    c->fd = -1; /* owned by the bufferevent from now on */
    if (g_opt.url.tls) {
        SSL *ssl = SSL_new(g_ctx);
        if (!ssl || !SSL_set_tlsext_host_name(ssl, g_opt.sni)) {
            SSL_free(ssl);
            close(fd);
            report_first(E_TLS, "SSL_new failed");
            conn_fail(c, E_TLS);
            return;
        }
        c->bev = bufferevent_openssl_socket_new(w->base, fd, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                BEV_OPT_CLOSE_ON_FREE);
        if (!c->bev) {
            SSL_free(ssl);
            close(fd);
            report_first(E_TLS, "bufferevent_openssl_socket_new failed");
            conn_fail(c, E_TLS);
            return;
        }
        bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
        c->state = CS_TLS;
        bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    } else {
        c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
        if (!c->bev) {
            close(fd);
            report_first(E_CONNECT, "bufferevent_socket_new failed");
            conn_fail(c, E_CONNECT);
            return;
        }
        bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
        bufferevent_enable(c->bev, EV_READ);
        conn_ready(c);
    }
}

static void conn_open(struct conn *c)
{
    struct worker *w = c->w;
    const struct url *u = &g_opt.url;
    if (c->state != CS_DOWN || w->stopping)
        return;
    c->t_connect = now_ns();
    c->responses_here = 0;
    w->st.conn_attempts++;
    int fd = socket(u->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        report_first(E_CONNECT, "socket: %s", strerror(errno));
        conn_fail(c, E_CONNECT);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->state = CS_TCP;
    if (connect(fd, (const struct sockaddr *)&u->addr, u->addrlen) != 0 && errno != EINPROGRESS) {
        report_first(E_CONNECT, "connect: %s", strerror(errno));
        conn_fail(c, E_CONNECT);
        return;
    }
    c->tcp_ev = event_new(w->base, fd, EV_WRITE, on_tcp, c);
    if (!c->tcp_ev || event_add(c->tcp_ev, NULL) != 0) {
        report_first(E_CONNECT, "event_new failed");
        conn_fail(c, E_CONNECT);
    }
}

/* --hold: open connections while fewer than the window are being set up
 * (HOLD_WINDOW over all threads), so that the target is not flooded. */
static void hold_fill(struct worker *w)
{
    unsigned window = HOLD_WINDOW / (unsigned)g_opt.threads;
    if (window == 0)
        window = 1;
    if (w->hold_filling)
        return; /* a failed conn_open below settles at once: the loop goes on */
    w->hold_filling = 1;
    while (!w->running && !w->stopping && w->hold_active < window && w->hold_next < w->nconns) {
        struct conn *c = &w->conns[w->hold_next++];
        w->hold_active++;
        conn_open(c); /* may settle c at once (socket or connect failure) */
    }
    w->hold_filling = 0;
}

/* --hold: connection c is done with its setup (answered once, or failed),
 * or, once the hold has started, was closed. Nothing is reopened. */
static void hold_settled(struct conn *c)
{
    struct worker *w = c->w;
    if (w->running || c->phase_seen)
        return;
    c->phase_seen = 1;
    w->hold_active--;
    if (++w->phase_ready >= w->nconns)
        phase_done(w);
    else
        hold_fill(w);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    if (c->w->stopping)
        return;
    if (c->backoff_until) {
        uint64_t now = now_ns();
        if (now < c->backoff_until) {
            arm_timer(c, c->backoff_until - now);
            return;
        }
        c->backoff_until = 0;
        reopen_or_next(c);
        return;
    }
    slot_next(c);
}

static void stop_worker(struct worker *w)
{
    if (!w->stopping) {
        w->stopping = 1;
        event_base_loopbreak(w->base);
    }
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    stop_worker(arg);
}

/* Every TICK_MS: the stop flag (SIGINT) and the timeouts. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    if (atomic_load(&g_stop)) {
        stop_worker(w);
        return;
    }
    uint64_t now = now_ns(), limit = (uint64_t)(g_opt.timeout * (double)NS_PER_S);
    for (unsigned i = 0; i < w->nconns && !w->stopping; i++) {
        struct conn *c = &w->conns[i];
        int late = 0;
        if ((c->state == CS_TCP || c->state == CS_TLS) && now - c->t_connect > limit)
            late = 1;
        else if (c->state == CS_READY && c->inflight && now - c->t_sent > limit)
            late = 1;
        if (late) {
            report_first(E_TIMEOUT, "no %s within %g s",
                         c->state == CS_READY ? "response" : "connection", g_opt.timeout);
            conn_fail(c, E_TIMEOUT);
        }
    }
}

/* End of this worker's connect phase: wait until every worker is there and
 * the main thread has started the clock, then start the requests. Blocking
 * in a callback is fine: there is nothing else to do meanwhile. Bounded: the
 * main thread starts the clock at the latest when the slowest connect phase
 * (bounded by --timeout) is over. */
static void phase_done(struct worker *w)
{
    if (w->running || w->stopping)
        return;
    event_del(w->phase_ev);
    if (g_opt.hold > 0) {
        /* Setup over (or its --timeout expired): what is not up and idle by
         * now is given up, counted as a timeout, and nothing more opens. */
        w->hold_next = w->nconns;
        for (unsigned i = 0; i < w->nconns; i++) {
            struct conn *c = &w->conns[i];
            if (c->state != CS_DOWN && (c->state != CS_READY || c->inflight)) {
                w->st.err[E_TIMEOUT]++;
                if (c->busy) {
                    c->busy = 0;
                    w->busy--;
                    w->st.failed++;
                }
                conn_close(c);
            }
        }
        publish(w);
    }
    for (unsigned i = 0; i < w->nconns; i++)
        w->up_at_start += w->conns[i].state == CS_READY;
    atomic_fetch_add(&g_ready, 1);
    struct timespec ms = {0, 1000 * 1000};
    for (long i = 0; i < 1000L * 1000 && !atomic_load(&g_go); i++)
        nanosleep(&ms, NULL);
    if (!atomic_load(&g_go) || atomic_load(&g_stop)) {
        stop_worker(w);
        return;
    }
    w->running = 1;
    uint64_t now = now_ns();
    struct timeval tv = ns_to_tv(g_deadline > now ? g_deadline - now : 0);
    event_add(w->deadline, &tv);
    if (g_opt.hold > 0)
        return; /* --hold: the connections stay idle until the deadline */
    for (unsigned i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        if (g_opt.rate > 0)
            c->next_sched = g_t0 + (uint64_t)((double)c->gid * (double)g_ns_per_req);
        slot_next(c);
    }
}

static void on_phase_end(evutil_socket_t fd, short what, void *arg)
{
    phase_done(arg);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct timeval tick = {0, TICK_MS * 1000};
    event_add(w->tick, &tick);
    if (g_opt.new_conn) {
        phase_done(w); /* a connection per request: no connect phase */
    } else if (g_opt.hold > 0) {
        /* --hold: open the connections a window at a time, one request
         * each; the whole setup is bounded by --timeout. */
        struct timeval tv = ns_to_tv((uint64_t)(g_opt.timeout * (double)NS_PER_S));
        event_add(w->phase_ev, &tv);
        hold_fill(w);
    } else {
        /* Keep-alive: open every connection before the clock starts, so
         * that the handshakes do not weigh on the first requests. */
        struct timeval tv = ns_to_tv((uint64_t)(g_opt.timeout * (double)NS_PER_S));
        event_add(w->phase_ev, &tv);
        for (unsigned i = 0; i < w->nconns; i++)
            conn_open(&w->conns[i]);
    }
    if (!w->stopping)
        event_base_dispatch(w->base);
    w->stopping = 1;
    w->t_end = now_ns();
    for (unsigned i = 0; i < w->nconns; i++)
        w->held_end += w->conns[i].state == CS_READY;
    if (g_opt.rate > 0 && w->running) {
        /* Open loop: requests whose scheduled time came before the end but
         * that never started (the slot was still busy with earlier ones). */
        uint64_t end = w->t_end < g_deadline ? w->t_end : g_deadline;
        for (unsigned i = 0; i < w->nconns; i++) {
            struct conn *c = &w->conns[i];
            double lim = ((double)(end - g_t0) / (double)g_ns_per_req - (double)c->gid) /
                         (double)g_opt.conns;
            uint64_t k = lim > 0 ? (uint64_t)ceil(lim) : 0;
            if (k > c->sched_k)
                w->missed += k - c->sched_k;
        }
    }
    atomic_fetch_sub(&g_running, 1);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Setup                                                                    */

static void tls_die(const char *what)
{
    char buf[256];
    unsigned long e = ERR_get_error();
    ERR_error_string_n(e, buf, sizeof buf);
    die("%s: %s", what, e ? buf : "failed");
}

static void tls_setup(void)
{
    g_ctx = SSL_CTX_new(TLS_client_method());
    if (!g_ctx)
        tls_die("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(g_ctx, TLS1_2_VERSION);
    SSL_CTX_set_session_cache_mode(g_ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(g_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(g_ctx, SSL_MODE_RELEASE_BUFFERS);
    if (g_opt.sigalgs && SSL_CTX_set1_sigalgs_list(g_ctx, g_opt.sigalgs) != 1)
        tls_die("--sigalgs");
    if (g_opt.groups && SSL_CTX_set1_groups_list(g_ctx, g_opt.groups) != 1)
        tls_die("--groups");
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(g_ctx, alpn, sizeof alpn - 1);
    if (g_opt.cert) {
        if (SSL_CTX_use_certificate_chain_file(g_ctx, g_opt.cert) != 1)
            tls_die(g_opt.cert);
        if (SSL_CTX_use_PrivateKey_file(g_ctx, g_opt.key, SSL_FILETYPE_PEM) != 1)
            tls_die(g_opt.key);
        if (SSL_CTX_check_private_key(g_ctx) != 1)
            tls_die("--key does not match --cert");
    }
    if (g_opt.insecure) {
        SSL_CTX_set_verify(g_ctx, SSL_VERIFY_NONE, NULL);
    } else {
        if (g_opt.cacert) {
            if (SSL_CTX_load_verify_locations(g_ctx, g_opt.cacert, NULL) != 1)
                tls_die(g_opt.cacert);
        } else if (SSL_CTX_set_default_verify_paths(g_ctx) != 1) {
            tls_die("default CA paths");
        }
        SSL_CTX_set_verify(g_ctx, SSL_VERIFY_PEER, NULL);
        if (X509_VERIFY_PARAM_set1_host(SSL_CTX_get0_param(g_ctx), g_opt.sni, 0) != 1)
            tls_die("--sni");
    }
}

static void raise_nofile(void)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)g_opt.conns + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur >= need)
        return;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
        die("-c %ld needs %lu file descriptors, the hard limit is %lu (ulimit -Hn)", g_opt.conns,
            (unsigned long)need, (unsigned long)rl.rlim_max);
    rl.rlim_cur = need;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        die("setrlimit(RLIMIT_NOFILE, %lu): %s", (unsigned long)need, strerror(errno));
}

static void build_requests(void)
{
    struct evbuffer *fixed = evbuffer_new();
    if (!fixed)
        die("out of memory");
    if (!have_header("Host"))
        evbuffer_add_printf(fixed, "Host: %s\r\n", g_opt.url.authority);
    for (int i = 0; i < g_opt.nheaders; i++) {
        const char *h = g_opt.headers[i];
        size_t n = header_name_len(h);
        const char *v = h + n + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        evbuffer_add_printf(fixed, "%.*s: %s\r\n", (int)n, h, v);
    }
    if (g_bearer)
        evbuffer_add_printf(fixed, "Authorization: Bearer %s\r\n", g_bearer);
    if (g_opt.new_conn)
        evbuffer_add_printf(fixed, "Connection: close\r\n");
    size_t flen = evbuffer_get_length(fixed);
    const char *f = (const char *)evbuffer_pullup(fixed, -1);
    for (int i = 0; i < g_opt.npaths; i++) {
        size_t plen = strlen(g_opt.paths[i]);
        size_t n = 4 + plen + 11 + flen;
        g_req[i] = malloc(n + 1);
        if (!g_req[i])
            die("out of memory");
        memcpy(g_req[i], "GET ", 4);
        memcpy(g_req[i] + 4, g_opt.paths[i], plen);
        memcpy(g_req[i] + 4 + plen, " HTTP/1.1\r\n", 11);
        if (flen)
            memcpy(g_req[i] + 4 + plen + 11, f, flen);
        g_req[i][n] = '\0';
        g_req_len[i] = n;
        if (n > g_req_max)
            g_req_max = n;
    }
    evbuffer_free(fixed);
}

/* ------------------------------------------------------------------------ */
/* --token-url: one blocking POST before the run, bounded by timeouts.       */

/* The value of "access_token" in a JSON object (flat, or with nested values
 * that are skipped). Returns a malloc'ed string, or NULL. */
static char *json_access_token(const char *s, size_t len)
{
    size_t i = 0;
    char *found = NULL;
#define WS()                                                                                       \
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))               \
    i++
    WS();
    if (i >= len || s[i] != '{')
        return NULL;
    i++;
    for (int members = 0; members < 1000; members++) {
        WS();
        if (i < len && s[i] == '}' && members == 0)
            return found;
        if (i >= len || s[i] != '"')
            goto bad;
        size_t ks = ++i;
        while (i < len && s[i] != '"') {
            if (s[i] == '\\')
                i++;
            i++;
        }
        if (i >= len)
            goto bad;
        size_t ke = i++;
        WS();
        if (i >= len || s[i] != ':')
            goto bad;
        i++;
        WS();
        if (i >= len)
            goto bad;
        int is_token = ke - ks == 12 && memcmp(s + ks, "access_token", 12) == 0;
        if (s[i] == '"') {
            size_t vs = ++i;
            while (i < len && s[i] != '"') {
                if (s[i] == '\\')
                    i++;
                i++;
            }
            if (i >= len)
                goto bad;
            if (is_token) {
                if (found)
                    goto bad;
                found = strndup(s + vs, i - vs);
                if (!found)
                    return NULL;
            }
            i++;
        } else if (s[i] == '{' || s[i] == '[') {
            if (is_token)
                goto bad;
            int depth = 0, in_str = 0;
            for (; i < len; i++) {
                char ch = s[i];
                if (in_str) {
                    if (ch == '\\')
                        i++;
                    else if (ch == '"')
                        in_str = 0;
                } else if (ch == '"') {
                    in_str = 1;
                } else if (ch == '{' || ch == '[') {
                    depth++;
                } else if (ch == '}' || ch == ']') {
                    if (--depth == 0) {
                        i++;
                        break;
                    }
                }
            }
            if (depth != 0)
                goto bad;
        } else {
            if (is_token)
                goto bad;
            while (i < len && s[i] != ',' && s[i] != '}' && s[i] != ' ' && s[i] != '\t' &&
                   s[i] != '\r' && s[i] != '\n')
                i++;
        }
        WS();
        if (i < len && s[i] == ',') {
            i++;
            continue;
        }
        if (i < len && s[i] == '}')
            return found;
        goto bad;
    }
bad:
    free(found);
    return NULL;
#undef WS
}

static void url_encode(struct evbuffer *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
            strchr("-._~", *p))
            evbuffer_add(b, p, 1);
        else if (*p == ' ')
            evbuffer_add(b, "+", 1);
        else
            evbuffer_add_printf(b, "%%%02X", *p);
    }
}

static int wait_fd(int fd, short events, uint64_t deadline)
{
    uint64_t now = now_ns();
    if (now >= deadline)
        return -1;
    struct pollfd pfd = {.fd = fd, .events = events};
    int ms = (int)((deadline - now) / 1000000) + 1;
    int r = poll(&pfd, 1, ms);
    return r == 1 ? 0 : -1;
}

static void fetch_token(void)
{
    const struct url *u = &g_opt.token;
    uint64_t deadline = now_ns() + (uint64_t)(g_opt.timeout * 3 * (double)NS_PER_S);
    struct evbuffer *body = evbuffer_new(), *req = evbuffer_new(), *in = evbuffer_new(),
                    *cap = evbuffer_new();
    if (!body || !req || !in || !cap)
        die("out of memory");
    evbuffer_add_printf(body, "grant_type=client_credentials");
    if (g_opt.token_scope) {
        evbuffer_add_printf(body, "&scope=");
        url_encode(body, g_opt.token_scope);
    }
    evbuffer_add_printf(req,
                        "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: " LG_NAME "/" LG_VERSION
                        "\r\nAccept: application/json\r\n"
                        "Content-Type: application/x-www-form-urlencoded\r\n"
                        "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                        u->path, u->authority, evbuffer_get_length(body));
    evbuffer_add_buffer(req, body);

    int fd = socket(u->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("--token-url: socket: %s", strerror(errno));
    if (connect(fd, (const struct sockaddr *)&u->addr, u->addrlen) != 0) {
        if (errno != EINPROGRESS || wait_fd(fd, POLLOUT, deadline) != 0)
            die("--token-url: cannot connect to %s", u->authority);
        int err = 0;
        socklen_t elen = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
        if (err)
            die("--token-url: connect to %s: %s", u->authority, strerror(err));
    }
    SSL *ssl = NULL;
    if (u->tls) {
        ssl = SSL_new(g_ctx);
        if (!ssl || !SSL_set_tlsext_host_name(ssl, g_opt.sni) || SSL_set_fd(ssl, fd) != 1)
            tls_die("--token-url: SSL_new");
        /* Non-blocking handshake, bounded by the deadline. */
        for (int i = 0; i < 10000; i++) {
            int r = SSL_connect(ssl);
            if (r == 1)
                break;
            int e = SSL_get_error(ssl, r);
            if (e == SSL_ERROR_WANT_READ && wait_fd(fd, POLLIN, deadline) == 0)
                continue;
            if (e == SSL_ERROR_WANT_WRITE && wait_fd(fd, POLLOUT, deadline) == 0)
                continue;
            tls_die("--token-url: TLS handshake");
        }
    }
    size_t rlen = evbuffer_get_length(req);
    const unsigned char *rp = evbuffer_pullup(req, -1);
    size_t off = 0;
    for (int i = 0; off < rlen && i < 10000; i++) {
        ssize_t n;
        if (ssl) {
            int r = SSL_write(ssl, rp + off, (int)(rlen - off));
            if (r <= 0) {
                int e = SSL_get_error(ssl, r);
                if ((e == SSL_ERROR_WANT_WRITE && wait_fd(fd, POLLOUT, deadline) == 0) ||
                    (e == SSL_ERROR_WANT_READ && wait_fd(fd, POLLIN, deadline) == 0))
                    continue;
                tls_die("--token-url: write");
            }
            n = r;
        } else {
            n = send(fd, rp + off, rlen - off, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN && wait_fd(fd, POLLOUT, deadline) == 0)
                    continue;
                die("--token-url: write: %s", strerror(errno));
            }
        }
        off += (size_t)n;
    }
    if (off < rlen)
        die("--token-url: cannot send the request");

    struct rparser p;
    memset(&p, 0, sizeof p);
    rp_reset(&p);
    p.capture = cap;
    int done = 0;
    for (int i = 0; !done && i < 100000; i++) {
        char buf[16384];
        ssize_t n;
        if (ssl) {
            int r = SSL_read(ssl, buf, sizeof buf);
            if (r <= 0) {
                int e = SSL_get_error(ssl, r);
                if ((e == SSL_ERROR_WANT_READ && wait_fd(fd, POLLIN, deadline) == 0) ||
                    (e == SSL_ERROR_WANT_WRITE && wait_fd(fd, POLLOUT, deadline) == 0))
                    continue;
                if (e == SSL_ERROR_SSL)
                    tls_die("--token-url: read");
                die("--token-url: connection closed before a whole response");
            }
            n = r;
        } else {
            n = recv(fd, buf, sizeof buf, 0);
            if (n < 0 && errno == EAGAIN && wait_fd(fd, POLLIN, deadline) == 0)
                continue;
            if (n <= 0)
                die("--token-url: connection closed before a whole response");
        }
        if (evbuffer_get_length(in) + (size_t)n > HEAD_MAX + CAPTURE_MAX * 2)
            die("--token-url: response too large");
        evbuffer_add(in, buf, (size_t)n);
        int r = rp_feed(&p, in);
        if (r < 0)
            die("--token-url: malformed response: %s", p.error);
        done = r == 1;
    }
    if (!done)
        die("--token-url: no whole response in time");
    size_t blen = evbuffer_get_length(cap);
    const char *b = (const char *)evbuffer_pullup(cap, -1);
    if (p.status != 200)
        die("--token-url: HTTP %d: %.*s", p.status, (int)(blen > 300 ? 300 : blen), b ? b : "");
    g_bearer = json_access_token(b ? b : "", blen);
    if (!g_bearer || !*g_bearer || strlen(g_bearer) > MAX_HEADER_LEN ||
        strspn(g_bearer, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~+/=") !=
            strlen(g_bearer))
        die("--token-url: no usable access_token in the response");
    if (ssl) {
        SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    close(fd);
    evbuffer_free(body);
    evbuffer_free(req);
    evbuffer_free(in);
    evbuffer_free(cap);
}

/* ------------------------------------------------------------------------ */
/* Results                                                                  */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static int secret_header(const char *h)
{
    return header_is(h, "Authorization") || header_is(h, "Proxy-Authorization") ||
           header_is(h, "Cookie") || header_is(h, "X-API-Key");
}

static const double k_curve[] = {0,     10,     20,    30,     40,     50,      60,   70,    75,
                                 80,    85,     90,    95,     97.5,   99,      99.5, 99.75, 99.9,
                                 99.95, 99.975, 99.99, 99.995, 99.999, 99.9999, 100};

static void json_hist(FILE *f, const struct hist *h, int full)
{
    fprintf(f,
            "{\"count\": %" PRIu64 ", \"min\": %" PRIu64 ", \"mean\": %.1f, \"stdev\": %.1f, "
            "\"p50\": %" PRIu64 ", \"p90\": %" PRIu64 ", \"p99\": %" PRIu64 ", \"p99_9\": %" PRIu64
            ", \"p99_99\": %" PRIu64 ", \"max\": %" PRIu64,
            h->n, h->n ? h->min : 0, h_mean(h), h_stdev(h), h_pct(h, 50), h_pct(h, 90),
            h_pct(h, 99), h_pct(h, 99.9), h_pct(h, 99.99), h->max);
    if (full) {
        fprintf(f, ",\n      \"percentiles\": [");
        for (size_t i = 0; i < sizeof k_curve / sizeof k_curve[0]; i++)
            fprintf(f, "%s[%g, %" PRIu64 "]", i ? ", " : "", k_curve[i], h_pct(h, k_curve[i]));
        fprintf(f, "],\n      \"histogram\": [");
        int first = 1;
        for (unsigned i = 0; i < H_NB; i++) {
            if (!h->b[i])
                continue;
            fprintf(f, "%s[%" PRIu64 ", %" PRIu64 ", %" PRIu64 "]", first ? "" : ", ", h_lower(i),
                    h_upper(i), h->b[i]);
            first = 0;
        }
        fprintf(f, "]");
    }
    fprintf(f, "}");
}

struct totals {
    struct stats st;
    uint64_t unfinished, missed, up_at_start, held_end;
    double connect_phase;
    double elapsed;
    char started[32];
};

static int write_json(const char *path, const struct totals *t)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -1;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    const struct stats *s = &t->st;
    const struct options *o = &g_opt;
    uint64_t errs = 0;
    for (int i = 0; i < E_N; i++)
        errs += s->err[i];
    fprintf(f, "{\n  \"tool\": \"" LG_NAME "\",\n  \"version\": \"" LG_VERSION "\",\n");
    fprintf(f, "  \"config\": {\n    \"url\": ");
    json_str(f, o->url_arg);
    fprintf(f,
            ",\n    \"tls\": %s,\n    \"client_cert\": %s,\n    \"verify\": %s,\n"
            "    \"connections\": %ld,\n    \"threads\": %ld,\n    \"duration_s\": %.3f,\n"
            "    \"max_requests\": %" PRIu64 ",\n    \"mode\": \"%s\",\n    \"rate\": %.3f,\n"
            "    \"new_conn\": %s,\n    \"timeout_s\": %.3f,\n    \"correlation_id\": %s,\n"
            "    \"bearer_from_token_url\": %s,\n    \"paths\": [",
            o->url.tls ? "true" : "false", o->cert ? "true" : "false",
            o->url.tls ? (o->insecure ? "false" : "true") : "false", o->conns, o->threads,
            o->duration, o->max_requests,
            o->hold > 0   ? "hold"
            : o->rate > 0 ? "open"
                          : "closed",
            o->rate, o->new_conn ? "true" : "false", o->timeout,
            o->correlation_id ? "true" : "false", g_bearer ? "true" : "false");
    for (int i = 0; i < o->npaths; i++) {
        fputs(i ? ", " : "", f);
        json_str(f, o->paths[i]);
    }
    fprintf(f, "],\n    \"headers\": [");
    for (int i = 0; i < o->nheaders; i++) {
        fputs(i ? ", " : "", f);
        if (secret_header(o->headers[i])) {
            char red[128];
            snprintf(red, sizeof red, "%.*s: (redacted)", (int)header_name_len(o->headers[i]),
                     o->headers[i]);
            json_str(f, red);
        } else {
            json_str(f, o->headers[i]);
        }
    }
    fprintf(f,
            "]\n  },\n  \"started_at\": \"%s\",\n  \"connect_phase_s\": %.6f,\n"
            "  \"elapsed_s\": %.6f,\n",
            t->started, t->connect_phase, t->elapsed);
    fprintf(f,
            "  \"requests\": {\"started\": %" PRIu64 ", \"sent\": %" PRIu64
            ", \"completed\": %" PRIu64 ", \"failed\": %" PRIu64 ", \"unfinished\": %" PRIu64
            ", \"missed\": %" PRIu64 "},\n",
            s->claimed, s->sent, s->completed, s->failed, t->unfinished, t->missed);
    fprintf(f,
            "  \"responses\": {\"2xx\": %" PRIu64 ", \"3xx\": %" PRIu64 ", \"4xx\": %" PRIu64
            ", \"5xx\": %" PRIu64 "},\n",
            s->status[2], s->status[3], s->status[4], s->status[5]);
    fprintf(f, "  \"errors\": {");
    for (int i = 0; i < E_N; i++)
        fprintf(f, "\"%s\": %" PRIu64 ", ", err_name[i], s->err[i]);
    fprintf(f, "\"total\": %" PRIu64 "},\n", errs);
    double el = t->elapsed > 0 ? t->elapsed : 1e-9;
    fprintf(f, "  \"throughput_rps\": %.3f,\n  \"bytes_in\": %" PRIu64 ",\n", s->completed / el,
            s->bytes_in);
    fprintf(f, "  \"latency_us\": ");
    json_hist(f, &s->lat, 1);
    fprintf(f,
            ",\n  \"connections\": {\"attempts\": %" PRIu64 ", \"established\": %" PRIu64
            ", \"up_at_start\": %" PRIu64 ", \"tls_handshakes\": %" PRIu64
            ", \"tls_handshakes_in_run\": %" PRIu64
            ", \"handshake_rate\": %.3f, \"server_closes\": %" PRIu64 ", \"idle_closes\": %" PRIu64
            ",\n    \"connect_us\": ",
            s->conn_attempts, s->conn_established, t->up_at_start, s->handshakes, s->handshakes_run,
            s->handshakes_run / el, s->server_closes, s->idle_closes);
    json_hist(f, &s->conn, 0);
    fprintf(f, "}");
    if (o->hold > 0)
        fprintf(f,
                ",\n  \"hold\": {\"seconds\": %.3f, \"setup_s\": %.6f, \"held\": %" PRIu64
                ", \"held_at_end\": %" PRIu64 ", \"closed_during_hold\": %" PRIu64 "}",
                o->hold, t->connect_phase, t->up_at_start, t->held_end,
                t->up_at_start > t->held_end ? t->up_at_start - t->held_end : 0);
    fprintf(f, "\n}\n");
    int bad = ferror(f) != 0;
    if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static void fmt_us(char *buf, size_t len, uint64_t us)
{
    if (us < 1000)
        snprintf(buf, len, "%" PRIu64 "us", us);
    else if (us < 1000000)
        snprintf(buf, len, "%.2fms", (double)us / 1e3);
    else
        snprintf(buf, len, "%.2fs", (double)us / 1e6);
}

static void print_summary(const struct totals *t)
{
    const struct stats *s = &t->st;
    const struct options *o = &g_opt;
    double el = t->elapsed > 0 ? t->elapsed : 1e-9;
    uint64_t errs = 0;
    for (int i = 0; i < E_N; i++)
        errs += s->err[i];
    printf(LG_NAME " %s: %ld connections, %ld threads, %.1f s, ", o->url_arg, o->conns, o->threads,
           t->elapsed);
    if (o->hold > 0)
        printf("hold, ");
    else if (o->rate > 0)
        printf("open loop at %.1f req/s, ", o->rate);
    else
        printf("closed loop, ");
    printf("%s, %s\n", o->new_conn ? "new connection per request" : "keep-alive",
           !o->url.tls ? "plain HTTP"
           : o->cert   ? "mTLS"
                       : "TLS");
    printf("  requests     %" PRIu64 " completed, %" PRIu64 " failed, %" PRIu64
           " unfinished at the end",
           s->completed, s->failed, t->unfinished);
    if (o->rate > 0)
        printf(", %" PRIu64 " due but never started (behind schedule)", t->missed);
    printf("\n");
    printf("  responses    2xx %" PRIu64 "  3xx %" PRIu64 "  4xx %" PRIu64 "  5xx %" PRIu64 "\n",
           s->status[2], s->status[3], s->status[4], s->status[5]);
    printf("  errors       %" PRIu64 ":", errs);
    for (int i = 0; i < E_N; i++)
        printf(" %s %" PRIu64, err_name[i], s->err[i]);
    printf("\n  throughput   %.1f req/s, %.2f MB/s in\n", s->completed / el,
           (double)s->bytes_in / el / 1e6);
    char a[6][32];
    const double pts[] = {50, 90, 99, 99.9};
    for (int i = 0; i < 4; i++)
        fmt_us(a[i], sizeof a[i], h_pct(&s->lat, pts[i]));
    fmt_us(a[4], sizeof a[4], s->lat.max);
    fmt_us(a[5], sizeof a[5], (uint64_t)h_mean(&s->lat));
    printf("  latency      p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s)%s\n", a[0], a[1],
           a[2], a[3], a[4], a[5], o->rate > 0 ? ", from the scheduled time" : "");
    fmt_us(a[0], sizeof a[0], h_pct(&s->conn, 50));
    fmt_us(a[1], sizeof a[1], h_pct(&s->conn, 99));
    printf("  connections  %" PRIu64 " attempts, %" PRIu64 " established", s->conn_attempts,
           s->conn_established);
    if (o->url.tls)
        printf(", %" PRIu64 " TLS handshakes (%.1f/s during the run)", s->handshakes,
               s->handshakes_run / el);
    printf(", connect p50 %s p99 %s\n", a[0], a[1]);
    if (o->hold > 0)
        printf("  hold         %" PRIu64 " connections held idle for %.1f s (%" PRIu64
               " still open at the end), set up in %.2f s\n",
               t->up_at_start, t->elapsed, t->held_end, t->connect_phase);
}

static void on_signal(int sig)
{
    g_signal = sig;
}

int main(int argc, char **argv)
{
    parse_options(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    if (g_opt.url.tls)
        tls_setup();
    if (g_opt.token_url)
        fetch_token();
    build_requests();

    int nt = (int)g_opt.threads;
    struct worker *ws = calloc((size_t)nt, sizeof *ws);
    if (!ws)
        die("out of memory");
    g_ns_per_req = g_opt.rate > 0 ? (uint64_t)((double)NS_PER_S / g_opt.rate) : 0;
    if (g_opt.rate > 0 && g_ns_per_req == 0)
        g_ns_per_req = 1;
    for (int i = 0; i < nt; i++) {
        struct worker *w = &ws[i];
        w->index = i;
        struct event_config *cfg = event_config_new();
        if (!cfg)
            die("out of memory");
        if (g_opt.rate > 0)
            event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
        /* Timers from the real time, not from the time cached at the start
         * of the loop iteration: the open-loop timetable and the deadline
         * stay exact even after a long callback (e.g. the connect phase). */
        event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK | EVENT_BASE_FLAG_NO_CACHE_TIME);
        w->base = event_base_new_with_config(cfg);
        event_config_free(cfg);
        if (!w->base)
            die("event_base_new failed");
        w->nconns = (unsigned)(g_opt.conns / nt + (i < g_opt.conns % nt));
        w->conns = calloc(w->nconns, sizeof *w->conns);
        w->scratch = malloc(g_req_max + 64);
        w->tick = event_new(w->base, -1, EV_PERSIST, on_tick, w);
        w->deadline = evtimer_new(w->base, on_deadline, w);
        w->phase_ev = evtimer_new(w->base, on_phase_end, w);
        if (!w->conns || !w->scratch || !w->tick || !w->deadline || !w->phase_ev ||
            RAND_bytes((unsigned char *)w->rng, sizeof w->rng) != 1)
            die("out of memory");
        for (unsigned j = 0; j < w->nconns; j++) {
            struct conn *c = &w->conns[j];
            c->w = w;
            c->fd = -1;
            c->gid = (uint64_t)j * (uint64_t)nt + (uint64_t)i;
            c->timer = evtimer_new(w->base, on_timer, c);
            if (!c->timer)
                die("out of memory");
        }
    }

    /* SIGINT/SIGTERM stop the run early (results are still reported); the
     * workers block them so that the main thread gets them. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct totals t;
    memset(&t, 0, sizeof t);
    atomic_store(&g_running, nt);
    uint64_t t_phase = now_ns();
    for (int i = 0; i < nt; i++)
        if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) != 0)
            die("pthread_create: %s", strerror(errno));
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    /* Connect phase (keep-alive): the workers open their connections; the
     * clock starts when all are done (bounded by --timeout in each). */
    uint64_t phase_end = t_phase + (uint64_t)(g_opt.timeout * (double)NS_PER_S) + 5 * NS_PER_S;
    for (;;) {
        if (g_signal && !atomic_load(&g_stop)) {
            fprintf(stderr, LG_NAME ": signal %d, stopping\n", (int)g_signal);
            atomic_store(&g_stop, 1);
        }
        int gone = nt - atomic_load(&g_running);
        if (atomic_load(&g_ready) + gone >= nt || atomic_load(&g_stop) || now_ns() > phase_end)
            break;
        struct timespec ms = {0, 1000 * 1000};
        nanosleep(&ms, NULL);
    }
    time_t wall = time(NULL);
    struct tm tm;
    gmtime_r(&wall, &tm);
    strftime(t.started, sizeof t.started, "%Y-%m-%dT%H:%M:%SZ", &tm);
    g_t0 = now_ns();
    g_deadline = g_t0 + (uint64_t)(g_opt.duration * (double)NS_PER_S);
    t.connect_phase = (double)(g_t0 - t_phase) / 1e9;
    atomic_store(&g_go, 1);
    if (g_opt.hold > 0) {
        /* Each worker counted its connections up before it reported ready;
         * a worker that stopped early (signal) counts what it had. */
        uint64_t up = 0;
        for (int i = 0; i < nt; i++)
            up += ws[i].up_at_start;
        fprintf(stderr, LG_NAME ": holding %" PRIu64 " connections for %g s (set up in %.2f s)\n",
                up, g_opt.hold, t.connect_phase);
    }

    /* Wait, with a progress line each second; bounded by the deadline plus
     * a grace period even if a worker were stuck. */
    uint64_t hard_end = g_deadline + 5 * NS_PER_S;
    uint64_t next_progress = g_t0 + NS_PER_S, last_done = 0, last_t = g_t0;
    while (atomic_load(&g_running) > 0) {
        uint64_t now = now_ns();
        if (g_signal && !atomic_load(&g_stop)) {
            fprintf(stderr, LG_NAME ": signal %d, stopping\n", (int)g_signal);
            atomic_store(&g_stop, 1);
        }
        if (now > hard_end) {
            atomic_store(&g_stop, 1);
            hard_end = now + 5 * NS_PER_S;
            if (now > g_deadline + 30 * NS_PER_S)
                die("workers did not stop");
        }
        if (g_opt.progress && now >= next_progress) {
            uint64_t done = 0, errs = 0;
            for (int i = 0; i < nt; i++) {
                done += atomic_load_explicit(&ws[i].pub_completed, memory_order_relaxed);
                errs += atomic_load_explicit(&ws[i].pub_errors, memory_order_relaxed);
            }
            double dt = (double)(now - last_t) / 1e9;
            fprintf(stderr,
                    LG_NAME ": %6.1fs  requests %" PRIu64 "  rps %.0f  errors %" PRIu64 "\n",
                    (double)(now - g_t0) / 1e9, done, dt > 0 ? (double)(done - last_done) / dt : 0,
                    errs);
            last_done = done;
            last_t = now;
            next_progress += NS_PER_S;
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }

    uint64_t t_end = g_t0;
    for (int i = 0; i < nt; i++) {
        struct worker *w = &ws[i];
        pthread_join(w->tid, NULL);
        if (w->t_end > t_end)
            t_end = w->t_end;
        struct stats *s = &w->st;
        t.st.claimed += s->claimed;
        t.st.sent += s->sent;
        t.st.completed += s->completed;
        t.st.failed += s->failed;
        for (int k = 0; k < 6; k++)
            t.st.status[k] += s->status[k];
        for (int k = 0; k < E_N; k++)
            t.st.err[k] += s->err[k];
        t.st.conn_attempts += s->conn_attempts;
        t.st.conn_established += s->conn_established;
        t.st.handshakes += s->handshakes;
        t.st.handshakes_run += s->handshakes_run;
        t.st.server_closes += s->server_closes;
        t.st.idle_closes += s->idle_closes;
        t.st.bytes_in += s->bytes_in;
        h_merge(&t.st.lat, &s->lat);
        h_merge(&t.st.conn, &s->conn);
        t.unfinished += w->busy;
        t.up_at_start += w->up_at_start;
        t.held_end += w->held_end;
        t.missed += w->missed;
    }
    /* A run stopped by its deadline lasted exactly the duration (a worker
     * notices the deadline a little after it); one ended by -n, SIGINT, as
     * long as its last worker. */
    if (g_opt.max_requests) {
        uint64_t claimed = atomic_load(&g_claimed);
        uint64_t left = claimed >= g_opt.max_requests ? 0 : g_opt.max_requests - claimed;
        if (t.missed > left)
            t.missed = left;
    }
    if (t_end > g_deadline)
        t_end = g_deadline;
    t.elapsed = (double)(t_end - g_t0) / 1e9;

    print_summary(&t);
    fflush(stdout);
    int rc = t.st.completed > 0 ? 0 : 1;
    if (g_opt.json && write_json(g_opt.json, &t) != 0) {
        fprintf(stderr, LG_NAME ": cannot write %s: %s\n", g_opt.json, strerror(errno));
        rc = 1;
    }

    for (int i = 0; i < nt; i++) {
        struct worker *w = &ws[i];
        for (unsigned j = 0; j < w->nconns; j++) {
            conn_close(&w->conns[j]);
            event_free(w->conns[j].timer);
        }
        event_free(w->tick);
        event_free(w->deadline);
        event_free(w->phase_ev);
        event_base_free(w->base);
        free(w->conns);
        free(w->scratch);
    }
    free(ws);
    for (int i = 0; i < g_opt.npaths; i++)
        free(g_req[i]);
    if (g_bearer) {
        OPENSSL_cleanse(g_bearer, strlen(g_bearer));
        free(g_bearer);
    }
    SSL_CTX_free(g_ctx);
    if (t.st.completed == 0)
        fprintf(stderr, LG_NAME ": no response completed\n");
    return rc;
}
