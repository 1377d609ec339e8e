/*
 * opale-loadgen: the command line (docs/loadgen.md, "Options") and URL parsing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "loadgen.h"

struct options lg_opt;

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
        lg_usage_error("%s: expected a number in [%g, %g]: '%s'", opt, lo, hi, s);
    return v;
}

static long parse_int(const char *opt, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        lg_usage_error("%s: expected an integer in [%ld, %ld]: '%s'", opt, lo, hi, s);
    return v;
}

/* "Name: value". Returns the name length, or 0 if malformed. */
size_t lg_header_name_len(const char *h)
{
    size_t n = 0;
    while (lg_is_tchar((unsigned char)h[n]))
        n++;
    if (n == 0 || h[n] != ':')
        return 0;
    for (const unsigned char *v = (const unsigned char *)h + n + 1; *v; v++)
        if ((*v < 0x20 && *v != '\t') || *v == 0x7f)
            return 0;
    return n;
}

int lg_header_is(const char *h, const char *name)
{
    size_t n = strlen(name);
    return strncasecmp(h, name, n) == 0 && h[n] == ':';
}

int lg_have_header(const char *name)
{
    for (int i = 0; i < lg_opt.nheaders; i++)
        if (lg_header_is(lg_opt.headers[i], name))
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
            "      --warmup S         run the load S seconds before the measured -d; the\n"
            "                         requests due meanwhile are sent but not measured\n"
            "      --new-conn         a new connection (TLS handshake) per request\n"
            "      --h2               HTTP/2 (ALPN h2), one stream at a time per connection\n"
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
            "      --partner-certs F  PEM file of certificate + key pairs: connection i\n"
            "                         presents pair i (one partner per connection)\n"
            "      --partner-headers F  one line per partner, its headers separated by\n"
            "                         tabs: connection i adds line i to every request\n"
            "      --timeout S        bounds each connection attempt, each request and the\n"
            "                         connect phase (default 5)\n"
            "      --json FILE        write the results as JSON\n"
            "      --progress         a progress line each second on stderr\n"
            "      --plain            plain HTTP (http:// URL), for cross-checks\n"
            "  -h, --help             this help\n"
            "  -V, --version          version\n",
            SETUP_WINDOW);
}

void lg_parse_options(int argc, char **argv)
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
        OPT_HOLD,
        OPT_PARTNER_CERTS,
        OPT_PARTNER_HEADERS,
        OPT_H2,
        OPT_WARMUP
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
        {"h2", no_argument, NULL, OPT_H2},
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
        {"warmup", required_argument, NULL, OPT_WARMUP},
        {"partner-certs", required_argument, NULL, OPT_PARTNER_CERTS},
        {"partner-headers", required_argument, NULL, OPT_PARTNER_HEADERS},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    struct options *o = &lg_opt;
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
                lg_usage_error("-d: %s s is more than the %g s a run may last", optarg,
                               MAX_DURATION_S);
            o->duration = parse_num("-d", optarg, 0.1, MAX_DURATION_S, 1);
            duration_set = 1;
            break;
        }
        case 'n':
            o->max_requests = (uint64_t)parse_num("-n", optarg, 1, 1e12, 0);
            if ((double)o->max_requests != strtod(optarg, NULL))
                lg_usage_error("-n: expected an integer: '%s'", optarg);
            break;
        case 'H':
            if (o->nheaders >= MAX_HEADERS)
                lg_usage_error("-H: at most %d headers", MAX_HEADERS);
            if (strlen(optarg) > MAX_HEADER_LEN || lg_header_name_len(optarg) == 0)
                lg_usage_error("-H: expected 'Name: value' (token name, no control characters, "
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
        case OPT_H2:
            o->h2 = 1;
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
                lg_usage_error("--sni: expected a DNS name: '%s'", optarg);
            o->sni = optarg;
            break;
        case OPT_CORR:
            o->correlation_id = 1;
            break;
        case OPT_PATH:
            if (o->npaths >= MAX_PATHS)
                lg_usage_error("--path: at most %d paths", MAX_PATHS);
            if (!valid_target(optarg))
                lg_usage_error("--path: must start with '/', printable ASCII without spaces, at "
                               "most %d bytes: '%s'",
                               MAX_PATH_LEN, optarg);
            o->paths[o->npaths++] = optarg;
            break;
        case OPT_TOKEN:
            o->token_url = optarg;
            break;
        case OPT_TOKEN_SCOPE:
            if (!*optarg || strlen(optarg) > 1024)
                lg_usage_error("--token-scope: empty or too long");
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
        case OPT_WARMUP:
            o->warmup = parse_num("--warmup", optarg, 0, MAX_WARMUP_S, 1);
            break;
        case OPT_PARTNER_CERTS:
            o->partner_certs = optarg;
            break;
        case OPT_PARTNER_HEADERS:
            o->partner_headers = optarg;
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
        lg_usage_error("unexpected argument: '%s'", argv[optind]);
    if (!o->url_arg)
        lg_usage_error("-u URL is required");

    char err[512];
    if (parse_url(o->url_arg, &o->url, err, sizeof err) != 0)
        lg_usage_error("-u: %s", err);
    if (o->plain && o->url.tls)
        lg_usage_error("--plain needs an http:// URL");
    if (!o->plain && !o->url.tls)
        lg_usage_error("an http:// URL needs --plain (plain HTTP, no TLS)");
    if (o->threads > o->conns)
        lg_usage_error("-t %ld: more threads than connections (-c %ld)", o->threads, o->conns);
    if ((o->cert == NULL) != (o->key == NULL))
        lg_usage_error("--cert and --key go together");
    if (o->plain && (o->cert || o->cacert || o->insecure || o->sigalgs || o->groups))
        lg_usage_error("--plain takes no TLS option (--cert, --key, --cacert, --insecure, "
                       "--sigalgs, --groups)");
    if (o->partner_certs && (o->plain || o->cert))
        lg_usage_error("--partner-certs needs TLS and excludes --cert/--key");
    if (o->partner_headers && o->token_url)
        lg_usage_error("--partner-headers and --token-url exclude each other");
    if (o->h2 && o->plain)
        lg_usage_error("--h2 needs TLS (ALPN h2; no cleartext HTTP/2)");
    if (o->h2 && o->partner_headers)
        lg_usage_error("--h2 and --partner-headers exclude each other");
    if (o->insecure && o->cacert)
        lg_usage_error("--insecure and --cacert exclude each other");
    if (o->npaths == 0)
        o->paths[o->npaths++] = o->url.path;
    if (o->hold > 0) {
        if (duration_set || o->max_requests || o->rate > 0 || o->new_conn)
            lg_usage_error("--hold excludes -d, -n, --rate and --new-conn (it opens the "
                           "connections, sends one request on each, then holds them)");
        o->duration = o->hold;
    }
    if (o->warmup > 0 && (o->hold > 0 || o->max_requests))
        lg_usage_error("--warmup excludes --hold and -n (it runs the load for S seconds, "
                       "then measures for -d)");
    if (o->max_requests && !duration_set)
        o->duration = MAX_DURATION_S;
    if (o->rate > 0 && o->rate / (double)o->conns > 1e6)
        lg_usage_error("--rate: more than 1e6 requests/s per connection");
    for (int i = 0; i < o->nheaders; i++) {
        const char *h = o->headers[i];
        if (lg_header_is(h, "Content-Length") || lg_header_is(h, "Transfer-Encoding") ||
            lg_header_is(h, "Connection") || lg_header_is(h, "Expect") ||
            lg_header_is(h, "Upgrade") || lg_header_is(h, "TE"))
            lg_usage_error("-H: %.*s is managed by " LG_NAME " (GET, keep-alive, no body)",
                           (int)lg_header_name_len(h), h);
        if (o->correlation_id && lg_header_is(h, "X-Correlation-ID"))
            lg_usage_error("-H X-Correlation-ID and --correlation-id exclude each other");
        if (o->token_url && lg_header_is(h, "Authorization"))
            lg_usage_error("-H Authorization and --token-url exclude each other");
    }
    if (o->token_url) {
        if (parse_url(o->token_url, &o->token, err, sizeof err) != 0)
            lg_usage_error("--token-url: %s", err);
        if (o->token.tls == o->plain)
            lg_usage_error("--token-url: use the same scheme as -u");
    } else if (o->token_scope) {
        lg_usage_error("--token-scope needs --token-url");
    }
}
