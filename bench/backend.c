/*
 * opale-backend: the bench's upstream, a canned-response HTTP/1.1 server.
 *
 * The bench measures proxies, and every proxy forwards to one backend on the
 * load side's core. opale-mock (evhttp) costs that core 17-24 us a request,
 * so in S1 and S2 the load side saturated before the proxy did and the
 * throughput ratios measured the load side (bench/README.md, "The backend").
 * This server answers each known request target with bytes fixed at start-up
 * (the bench takes them from opale-mock, so a proxy forwards the same bodies),
 * and costs a read and a send per request.
 *
 *   opale-backend [--listen ADDR] [--port N] [--port-file F]
 *                 [--content-type T] TARGET FILE [TARGET FILE ...]
 *
 * TARGET is a request target matched exactly (path and query), FILE the body
 * served for it with 200. Any other target gets a 404 with a JSON error body.
 * Persistent connections and pipelining as HTTP/1.1 says; a request body with
 * Content-Length is read and discarded; Transfer-Encoding gets 501, a method
 * other than GET or HEAD 405, a head over 16 KiB 431, a malformed request line
 * or Content-Length 400, and each of these closes the connection after the
 * response, as does "Connection: close" or HTTP/1.0. No routing, no logging,
 * no checks: the mock does those for the tests.
 *
 * SIGTERM or SIGINT ends it; it prints "opale-backend: R requests on C
 * connections" to stderr. Exit 0, 1 when it cannot listen, 2 for a bad
 * command line or an unreadable FILE.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NAME "opale-backend"
#define MAX_ROUTES 16
#define MAX_HEAD 16384
#define MAX_FILE (1 << 20)
#define MAX_EVENTS 256

struct route {
    const char *target;
    size_t tlen;
    char *body;
    size_t blen;
    char *resp; /* the whole 200 response, rebuilt each second (Date) */
    size_t rlen, hlen;
};

enum canned { C_404, C_400, C_405, C_431, C_501, C_COUNT };

static const struct {
    int status;
    const char *reason, *code, *message;
    bool close;
} canned_def[C_COUNT] = {
    [C_404] = {404, "Not Found", "404000", "Ressource inconnue", false},
    [C_400] = {400, "Bad Request", "400000", "Requête invalide", true},
    [C_405] = {405, "Method Not Allowed", "405000", "Méthode non autorisée", true},
    [C_431] = {431, "Request Header Fields Too Large", "431000", "En-têtes trop grands", true},
    [C_501] = {501, "Not Implemented", "501000", "Transfer-Encoding non pris en charge", true},
};

struct conn {
    struct conn *prev, *next; /* every open connection, freed at exit */
    int fd;
    bool close_after; /* close once <out> is sent */
    bool polling_out; /* registered for EPOLLOUT instead of EPOLLIN: reads wait
                       * until what was queued is sent */
    size_t in_len;
    uint64_t skip; /* request body bytes still to discard */
    char *out;
    size_t out_off, out_len, out_cap;
    char in[MAX_HEAD];
};

static struct route routes[MAX_ROUTES];
static size_t nroutes;
static const char *content_type = "application/json; charset=utf-8";
static char *canned_resp[C_COUNT];
static size_t canned_len[C_COUNT], canned_hlen[C_COUNT];
static time_t built_at = -1;
static volatile sig_atomic_t stopping;
static uint64_t n_requests, n_conns;
static int epfd;
static struct conn *conns;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, NAME ": out of memory\n");
        exit(1);
    }
    return p;
}

/* "HTTP/1.1 <status> <reason>\r\nDate: ...\r\nContent-Type: ...\r\n
 * Content-Length: N\r\n[Connection: close\r\n]\r\n<body>" into a new buffer. */
static char *build(int status, const char *reason, const char *date, const char *body, size_t blen,
                   bool close, size_t *len, size_t *hlen)
{
    char head[512];
    int h =
        snprintf(head, sizeof(head),
                 "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n",
                 status, reason, date, content_type, blen, close ? "Connection: close\r\n" : "");
    if (h < 0 || (size_t)h >= sizeof(head)) {
        fprintf(stderr, NAME ": --content-type too long\n");
        exit(2);
    }
    char *r = xmalloc((size_t)h + blen);
    memcpy(r, head, (size_t)h);
    memcpy(r + h, body, blen);
    *len = (size_t)h + blen;
    *hlen = (size_t)h;
    return r;
}

/* The responses carry a Date (RFC 9110: an origin server with a clock sends
 * one): checked once per loop pass, rebuilt when the second changes. */
static void rebuild_if_stale(void)
{
    time_t now = time(NULL);
    if (now == built_at)
        return;
    built_at = now;
    struct tm tm;
    char date[64];
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    for (size_t i = 0; i < nroutes; i++) {
        free(routes[i].resp);
        routes[i].resp = build(200, "OK", date, routes[i].body, routes[i].blen, false,
                               &routes[i].rlen, &routes[i].hlen);
    }
    for (int c = 0; c < C_COUNT; c++) {
        char body[256];
        int n = snprintf(body, sizeof(body), "{\"erreur\":{\"code\":\"%s\",\"message\":\"%s\"}}",
                         canned_def[c].code, canned_def[c].message);
        free(canned_resp[c]);
        canned_resp[c] = build(canned_def[c].status, canned_def[c].reason, date, body, (size_t)n,
                               canned_def[c].close, &canned_len[c], &canned_hlen[c]);
    }
}

static void conn_close(struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->out);
    free(c);
}

static void append(struct conn *c, const char *p, size_t n)
{
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + n)
            cap *= 2;
        char *o = realloc(c->out, cap);
        if (!o) {
            fprintf(stderr, NAME ": out of memory\n");
            exit(1);
        }
        c->out = o;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
}

static void respond_canned(struct conn *c, enum canned k, bool head_only)
{
    append(c, canned_resp[k], head_only ? canned_hlen[k] : canned_len[k]);
    if (canned_def[k].close)
        c->close_after = true;
}

/* Whether the comma-separated <v> (<n> bytes) holds the token "close". */
static bool has_close_token(const char *v, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == 5 && strncasecmp(v + s, "close", 5) == 0)
            return true;
    }
    return false;
}

/* One complete head (<len> bytes, ending with CRLF CRLF): answers it.
 * Returns false when the connection must take no further request. */
static bool handle_head(struct conn *c, const char *h, size_t len)
{
    const char *end = h + len;
    const char *eol = memchr(h, '\r', len);
    const char *sp1 = memchr(h, ' ', (size_t)(eol - h));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;

    n_requests++;
    if (!sp1 || !sp2 || sp1 == h || sp2 == sp1 + 1 || eol[1] != '\n' ||
        (size_t)(eol - sp2 - 1) != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
        (sp2[8] != '0' && sp2[8] != '1')) {
        respond_canned(c, C_400, false);
        return false;
    }
    bool http10 = sp2[8] == '0';
    bool is_get = sp1 - h == 3 && memcmp(h, "GET", 3) == 0;
    bool is_head = sp1 - h == 4 && memcmp(h, "HEAD", 4) == 0;
    const char *target = sp1 + 1;
    size_t tlen = (size_t)(sp2 - target);
    bool close = http10, chunked = false, bad = false;
    uint64_t clen = 0;

    for (const char *l = eol + 2; l < end - 2;) {
        const char *le = memchr(l, '\r', (size_t)(end - l));
        if (!le || le[1] != '\n')
            break;
        const char *colon = memchr(l, ':', (size_t)(le - l));
        if (!colon || colon == l) {
            bad = true;
            break;
        }
        size_t nlen = (size_t)(colon - l);
        const char *v = colon + 1;
        while (v < le && (*v == ' ' || *v == '\t'))
            v++;
        size_t vlen = (size_t)(le - v);
        if (nlen == 14 && strncasecmp(l, "content-length", 14) == 0) {
            uint64_t x = 0;
            size_t i = 0;
            for (; i < vlen && v[i] >= '0' && v[i] <= '9' && x < (1ULL << 40); i++)
                x = x * 10 + (uint64_t)(v[i] - '0');
            while (i < vlen && (v[i] == ' ' || v[i] == '\t'))
                i++;
            if (i == 0 || i != vlen || (clen != 0 && x != clen))
                bad = true;
            clen = x;
        } else if (nlen == 17 && strncasecmp(l, "transfer-encoding", 17) == 0) {
            chunked = true;
        } else if (nlen == 10 && strncasecmp(l, "connection", 10) == 0) {
            if (has_close_token(v, vlen))
                close = true;
        }
        l = le + 2;
    }
    if (bad) {
        respond_canned(c, C_400, false);
        return false;
    }
    if (chunked) {
        respond_canned(c, C_501, false);
        return false;
    }
    if (!is_get && !is_head) {
        respond_canned(c, C_405, false);
        return false;
    }
    c->skip = clen;
    const struct route *r = NULL;
    for (size_t i = 0; i < nroutes; i++)
        if (routes[i].tlen == tlen && memcmp(routes[i].target, target, tlen) == 0) {
            r = &routes[i];
            break;
        }
    const char *resp = r ? r->resp : canned_resp[C_404];
    size_t hl = r ? r->hlen : canned_hlen[C_404], rl = r ? r->rlen : canned_len[C_404];
    if (close) {
        /* the 200 and the 404 keep the connection: this one says it closes */
        static const char cc[] = "Connection: close\r\n\r\n";
        append(c, resp, hl - 2);
        append(c, cc, sizeof(cc) - 1);
        if (!is_head)
            append(c, resp + hl, rl - hl);
        c->close_after = true;
        return false;
    }
    append(c, resp, is_head ? hl : rl);
    return true;
}

static void set_events(struct conn *c, bool out)
{
    if (c->polling_out == out)
        return;
    struct epoll_event ev = {.events = out ? EPOLLOUT : EPOLLIN, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->polling_out = out;
}

/* Sends what is queued. Returns false when the connection was closed. */
static bool flush_out(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_events(c, true);
            return true;
        }
        conn_close(c);
        return false;
    }
    c->out_off = c->out_len = 0;
    if (c->close_after) {
        shutdown(c->fd, SHUT_WR);
        conn_close(c);
        return false;
    }
    set_events(c, false);
    return true;
}

static void on_readable(struct conn *c)
{
    ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        conn_close(c);
        return;
    }
    if (n < 0)
        return;
    c->in_len += (size_t)n;
    size_t off = 0;
    bool more = true;
    while (more && off < c->in_len) {
        if (c->skip) {
            size_t take = c->in_len - off < c->skip ? c->in_len - off : (size_t)c->skip;
            off += take;
            c->skip -= take;
            continue;
        }
        const char *h = c->in + off;
        const char *e = memmem(h, c->in_len - off, "\r\n\r\n", 4);
        if (!e) {
            if (c->in_len - off == sizeof(c->in)) {
                n_requests++;
                respond_canned(c, C_431, false);
                more = false;
            }
            break;
        }
        size_t len = (size_t)(e - h) + 4;
        more = handle_head(c, h, len);
        off += len;
    }
    if (c->close_after) {
        c->in_len = 0; /* nothing after this response is read */
    } else if (off) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    if (c->out_len > c->out_off)
        flush_out(c);
}

static void on_accept(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or out of descriptors: the next event retries */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct conn *c = xmalloc(sizeof(*c));
        memset(c, 0, offsetof(struct conn, in));
        c->fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
            continue;
        }
        c->next = conns;
        if (conns)
            conns->prev = c;
        conns = c;
        n_conns++;
    }
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *b = xmalloc(MAX_FILE + 1);
    size_t n = fread(b, 1, MAX_FILE + 1, f);
    int err = ferror(f);
    fclose(f);
    if (err || n > MAX_FILE) {
        free(b);
        return NULL;
    }
    *len = n;
    return b;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: " NAME " [--listen ADDR] [--port N] [--port-file F] [--content-type T]\n"
               "                     TARGET FILE [TARGET FILE ...]\n"
               "  TARGET  a request target (path and query), matched exactly\n"
               "  FILE    the body answered with 200 for it (at most 1 MiB)\n"
               "  --listen ADDR     IPv4 address (default 127.0.0.1)\n"
               "  --port N          TCP port, 0 for any free one (default 0)\n"
               "  --port-file F     write the port there once listening\n"
               "  --content-type T  of every 200 (default application/json; charset=utf-8)\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"port", required_argument, NULL, 'p'},
        {"port-file", required_argument, NULL, 'f'},
        {"content-type", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *listen_addr = "127.0.0.1", *port_file = NULL;
    long port = 0;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end;
        switch (o) {
        case 'l':
            listen_addr = optarg;
            break;
        case 'p':
            errno = 0;
            port = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || port < 0 || port > 65535) {
                fprintf(stderr, NAME ": --port: not a port: %s\n", optarg);
                return 2;
            }
            break;
        case 'f':
            port_file = optarg;
            break;
        case 't':
            if (strpbrk(optarg, "\r\n")) {
                fprintf(stderr, NAME ": --content-type: no CR or LF\n");
                return 2;
            }
            content_type = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    int rest = argc - optind;
    if (rest == 0 || rest % 2 || rest / 2 > MAX_ROUTES) {
        fprintf(stderr, NAME ": give 1 to %d TARGET FILE pairs\n", MAX_ROUTES);
        usage(stderr);
        return 2;
    }
    for (int i = optind; i < argc; i += 2) {
        struct route *r = &routes[nroutes++];
        r->target = argv[i];
        r->tlen = strlen(argv[i]);
        if (r->tlen == 0 || argv[i][0] != '/' || strpbrk(argv[i], " \t\r\n")) {
            fprintf(stderr, NAME ": %s: a target starts with / and has no blank\n", argv[i]);
            return 2;
        }
        r->body = read_file(argv[i + 1], &r->blen);
        if (!r->body) {
            fprintf(stderr, NAME ": %s: cannot read (or over 1 MiB)\n", argv[i + 1]);
            return 2;
        }
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, listen_addr, &sa.sin_addr) != 1) {
        fprintf(stderr, NAME ": --listen: not an IPv4 address: %s\n", listen_addr);
        return 2;
    }
    rebuild_if_stale();

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    socklen_t sl = sizeof(sa);
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 4096) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0) {
        fprintf(stderr, NAME ": cannot listen on %s:%ld: %s\n", listen_addr, port, strerror(errno));
        return 1;
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev) < 0) {
        fprintf(stderr, NAME ": epoll: %s\n", strerror(errno));
        return 1;
    }
    struct sigaction sact = {.sa_handler = on_signal}; /* no SA_RESTART: epoll_wait returns */
    sigemptyset(&sact.sa_mask);
    sigaction(SIGTERM, &sact, NULL);
    sigaction(SIGINT, &sact, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%u\n", ntohs(sa.sin_port)) < 0 || fclose(f) != 0 ||
            rename(tmp, port_file) != 0) {
            fprintf(stderr, NAME ": %s: %s\n", port_file, strerror(errno));
            return 1;
        }
    }

    struct epoll_event evs[MAX_EVENTS];
    while (!stopping) {
        int n = epoll_wait(epfd, evs, MAX_EVENTS, -1);
        if (n > 0)
            rebuild_if_stale(); /* once per loop pass, not per read */
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c)
                on_accept(lfd);
            else if (c->polling_out)
                flush_out(c);
            else
                on_readable(c);
        }
    }
    fprintf(stderr, NAME ": %llu requests on %llu connections\n", (unsigned long long)n_requests,
            (unsigned long long)n_conns);
    while (conns)
        conn_close(conns);
    for (size_t i = 0; i < nroutes; i++) {
        free(routes[i].body);
        free(routes[i].resp);
    }
    for (int c = 0; c < C_COUNT; c++)
        free(canned_resp[c]);
    close(epfd);
    close(lfd);
    return 0;
}
