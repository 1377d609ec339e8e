/*
 * Anchoring off the host (anchor.h): one sender thread, three destinations.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strerror_r, strndup, pipe2 */
#endif
#include "journal/anchor.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

struct gw_anchors {
    gw_anchor_opts o; /* strings owned below */
    char *own[6];
    char host[256];
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char **q; /* ring of JSON lines */
    size_t cap, head, len;
    int stopping;
    uint64_t sent, failed, dropped, last_seq, streaks;
    int failing;
    char last_error[256];
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- destinations ---- */

/* A connection to <o>'s Redis, authenticated when a password is set; NULL
 * with <err> set. */
static redisContext *redis_open(const gw_anchor_opts *o, char *err, size_t el)
{
    unsigned t = o->timeout_ms ? o->timeout_ms : GW_ANCHOR_TIMEOUT_MS;
    struct timeval tv = {.tv_sec = t / 1000, .tv_usec = (t % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(o->redis_host, (int)o->redis_port, tv);
    if (c == NULL || c->err) {
        snprintf(err, el, "redis %s:%u: %s", o->redis_host, o->redis_port,
                 c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (o->redis_password != NULL) {
        redisReply *r = redisCommand(c, "AUTH %s", o->redis_password);
        int bad = r == NULL || r->type == REDIS_REPLY_ERROR;
        if (bad)
            snprintf(err, el, "redis AUTH: %s", r ? r->str : c->errstr);
        if (r != NULL)
            freeReplyObject(r);
        if (bad) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

/* The reply's error text for a message. */
static const char *redis_why(const redisContext *c, const redisReply *r, const char *other)
{
    return r == NULL ? c->errstr : r->type == REDIS_REPLY_ERROR ? r->str : other;
}

static int send_redis(const gw_anchor_opts *o, const char *line, char *err, size_t el)
{
    redisContext *c = redis_open(o, err, el);
    if (c == NULL)
        return -1;
    redisReply *r = redisCommand(c, "RPUSH %s %s", o->redis_key, line);
    int rc = r != NULL && r->type == REDIS_REPLY_INTEGER ? 0 : -1;
    if (rc != 0)
        snprintf(err, el, "redis RPUSH %s: %s", o->redis_key, redis_why(c, r, "unexpected reply"));
    if (r != NULL)
        freeReplyObject(r);
    redisFree(c);
    return rc;
}

int gw_anchor_redis_read(const gw_anchor_opts *o, char ***lines, size_t *n, char *err, size_t el)
{
    *lines = NULL;
    *n = 0;
    redisContext *c = redis_open(o, err, el);
    if (c == NULL)
        return -1;
    int rc = -1;
    redisReply *r = redisCommand(c, "LRANGE %s 0 -1", o->redis_key);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        snprintf(err, el, "redis LRANGE %s: %s", o->redis_key, redis_why(c, r, "not a list"));
    } else if ((*lines = calloc(r->elements + 1, sizeof(char *))) == NULL) {
        snprintf(err, el, "out of memory");
    } else {
        for (size_t i = 0; i < r->elements; i++)
            if (r->element[i]->type == REDIS_REPLY_STRING)
                (*lines)[(*n)++] = strndup(r->element[i]->str, r->element[i]->len);
        rc = 0;
    }
    if (r != NULL)
        freeReplyObject(r);
    redisFree(c);
    return rc;
}

/* http[s]://host[:port]/path into its parts. 0 or -1. */
static int parse_url(const char *url, int *tls, char host[256], char port[8], const char **path)
{
    const char *p;
    if (strncmp(url, "https://", 8) == 0)
        *tls = 1, p = url + 8;
    else if (strncmp(url, "http://", 7) == 0)
        *tls = 0, p = url + 7;
    else
        return -1;
    size_t hl = strcspn(p, ":/");
    if (hl == 0 || hl >= 256)
        return -1;
    memcpy(host, p, hl);
    host[hl] = '\0';
    p += hl;
    snprintf(port, 8, "%s", *tls ? "443" : "80");
    if (*p == ':') {
        size_t pl = strcspn(p + 1, "/");
        if (pl == 0 || pl >= 6)
            return -1;
        memcpy(port, p + 1, pl);
        port[pl] = '\0';
        p += 1 + pl;
    }
    *path = *p == '/' ? p : "/";
    return 0;
}

/* A TCP connection to host:port within <ms>, with send/receive timeouts. */
static int tcp_connect(const char *host, const char *port, unsigned ms, char *err, size_t el)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int g = getaddrinfo(host, port, &hints, &res);
    if (g != 0) {
        snprintf(err, el, "%s: %s", host, gai_strerror(g));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = res; a != NULL && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0)
            continue;
        int r = connect(fd, a->ai_addr, a->ai_addrlen);
        if (r < 0 && errno == EINPROGRESS) {
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            int e = 0;
            socklen_t sl = sizeof(e);
            r = poll(&pf, 1, (int)ms) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) == 0 &&
                        e == 0
                    ? 0
                    : -1;
            if (r < 0)
                errno = e ? e : ETIMEDOUT;
        }
        if (r < 0) {
            char eb[96];
            snprintf(err, el, "connect %s:%s: %s", host, port, strerror_r(errno, eb, sizeof(eb)));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd >= 0) {
        struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    return fd;
}

static int send_http(const gw_anchor_opts *o, const char *line, char *err, size_t el)
{
    char host[256], port[8];
    const char *path;
    int tls;
    unsigned ms = o->timeout_ms ? o->timeout_ms : GW_ANCHOR_TIMEOUT_MS;
    if (parse_url(o->url, &tls, host, port, &path) != 0) {
        snprintf(err, el, "bad url");
        return -1;
    }
    int fd = tcp_connect(host, port, ms, err, el);
    if (fd < 0)
        return -1;
    SSL_CTX *ctx = NULL;
    SSL *ssl = NULL;
    int rc = -1;
    if (tls) {
        ctx = SSL_CTX_new(TLS_client_method());
        if (ctx == NULL || (o->ca_file ? SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL)
                                       : SSL_CTX_set_default_verify_paths(ctx)) != 1) {
            snprintf(err, el, "TLS: cannot load the CA certificates");
            goto out;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        ssl = SSL_new(ctx);
        if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 || SSL_set_tlsext_host_name(ssl, host) != 1 ||
            SSL_set1_host(ssl, host) != 1 || SSL_connect(ssl) != 1) {
            unsigned long e = ERR_peek_last_error();
            snprintf(err, el, "TLS handshake with %s: %s", host,
                     e ? ERR_reason_error_string(e) : "failed");
            ERR_clear_error();
            goto out;
        }
    }
    char *req = NULL;
    size_t bl = strlen(line);
    int n = asprintf(&req,
                     "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
                     path, host, bl + 1, line);
    if (n < 0) {
        snprintf(err, el, "out of memory");
        goto out;
    }
    int w = ssl ? SSL_write(ssl, req, n) : (int)write(fd, req, (size_t)n);
    free(req);
    if (w != n) {
        snprintf(err, el, "POST %s: write failed", o->url);
        goto out;
    }
    char resp[64] = {0};
    int got = 0;
    while (got < (int)sizeof(resp) - 1) {
        int r = ssl ? SSL_read(ssl, resp + got, (int)sizeof(resp) - 1 - got)
                    : (int)read(fd, resp + got, sizeof(resp) - 1 - (size_t)got);
        if (r <= 0)
            break;
        got += r;
        if (memchr(resp, '\n', (size_t)got) != NULL)
            break;
    }
    int status = 0;
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1)
        snprintf(err, el, "POST %s: no HTTP answer", o->url);
    else if (status < 200 || status > 299)
        snprintf(err, el, "POST %s: HTTP %d", o->url, status);
    else
        rc = 0;
out:
    if (ssl != NULL) {
        SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    SSL_CTX_free(ctx);
    close(fd);
    return rc;
}

static int send_command(const gw_anchor_opts *o, const char *line, char *err, size_t el)
{
    unsigned ms = o->timeout_ms ? o->timeout_ms : GW_ANCHOR_TIMEOUT_MS;
    int p[2];
    char eb[96];
    if (pipe2(p, O_CLOEXEC) != 0) {
        snprintf(err, el, "pipe: %s", strerror_r(errno, eb, sizeof(eb)));
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        /* the child: only async-signal-safe calls before exec */
        sigset_t none;
        sigemptyset(&none);
        pthread_sigmask(SIG_SETMASK, &none, NULL);
        if (dup2(p[0], 0) < 0)
            _exit(126);
        char *argv[] = {(char *)o->command, NULL};
        execv(o->command, argv);
        _exit(127);
    }
    close(p[0]);
    if (pid < 0) {
        close(p[1]);
        snprintf(err, el, "fork: %s", strerror_r(errno, eb, sizeof(eb)));
        return -1;
    }
    size_t len = strlen(line);
    ssize_t w = write(p[1], line, len);
    ssize_t w2 = write(p[1], "\n", 1);
    close(p[1]);
    int status = 0;
    uint64_t until = mono_ms() + ms;
    pid_t r;
    while ((r = waitpid(pid, &status, WNOHANG)) == 0 && mono_ms() < until)
        usleep(10000);
    if (r == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        snprintf(err, el, "%s: killed after %u ms", o->command, ms);
        return -1;
    }
    /* the exit status first: a command that could not run (exit 127) or
     * failed also left its stdin unread, and its status says why */
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(err, el, "%s: %s %d", o->command, WIFEXITED(status) ? "exit" : "signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        return -1;
    }
    if (w != (ssize_t)len || w2 != 1) {
        snprintf(err, el, "%s: did not read the anchor", o->command);
        return -1;
    }
    return 0;
}

int gw_anchor_send(const gw_anchor_opts *o, const char *line, char *err, size_t el)
{
    switch (o->kind) {
    case GW_ANCHOR_REDIS:
        return send_redis(o, line, err, el);
    case GW_ANCHOR_HTTP:
        return send_http(o, line, err, el);
    case GW_ANCHOR_COMMAND:
        return send_command(o, line, err, el);
    default:
        snprintf(err, el, "no anchor destination");
        return -1;
    }
}

/* ---- the sender thread ---- */

static void *anchor_main(void *arg)
{
    gw_anchors *a = arg;
    unsigned base = a->o.retry_s ? a->o.retry_s : GW_ANCHOR_RETRY_S, delay = base;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (a->len == 0 && !a->stopping)
            pthread_cond_wait(&a->cv, &a->mu);
        if (a->len == 0)
            break; /* stopping, nothing left */
        char *line = a->q[a->head];
        pthread_mutex_unlock(&a->mu);
        char err[256] = "";
        int rc = gw_anchor_send(&a->o, line, err, sizeof(err));
        pthread_mutex_lock(&a->mu);
        if (rc == 0) {
            /* the line may have been dropped meanwhile: still the head? */
            if (a->len > 0 && a->q[a->head] == line) {
                json_t *o = json_loads(line, 0, NULL);
                a->last_seq = (uint64_t)json_integer_value(json_object_get(o, "seq"));
                json_decref(o);
                free(line);
                a->q[a->head] = NULL;
                a->head = (a->head + 1) % a->cap;
                a->len--;
            }
            a->sent++;
            a->failing = 0;
            delay = base;
            continue;
        }
        a->failed++;
        a->streaks += !a->failing;
        a->failing = 1;
        snprintf(a->last_error, sizeof(a->last_error), "%s", err);
        pthread_mutex_unlock(&a->mu);
        fprintf(stderr, "opale-gateway: journal anchor: %s (retry in %u s)\n", err, delay);
        pthread_mutex_lock(&a->mu);
        if (a->stopping)
            break; /* no retries once stopping: gw_anchors_stop counts the rest */
        struct timespec ts;
        uint64_t until = mono_ms() + (uint64_t)delay * 1000u;
        ts.tv_sec = (time_t)(until / 1000u);
        ts.tv_nsec = (long)(until % 1000u) * 1000000L;
        while (!a->stopping && pthread_cond_timedwait(&a->cv, &a->mu, &ts) != ETIMEDOUT)
            ;
        delay = delay * 2 > GW_ANCHOR_RETRY_MAX_S ? GW_ANCHOR_RETRY_MAX_S : delay * 2;
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

static char *dup_or_null(const char *s, char **slot)
{
    *slot = s != NULL ? strdup(s) : NULL;
    return *slot;
}

/* Frees <a> and the anchors still queued; its thread is not running (never
 * started, or joined). */
static void anchors_free(gw_anchors *a)
{
    for (size_t i = 0; i < a->len; i++)
        free(a->q[(a->head + i) % a->cap]);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    for (int i = 0; i < 6; i++)
        free(a->own[i]);
    free(a->q);
    free(a);
}

gw_anchors *gw_anchors_start(const gw_anchor_opts *o, char **err)
{
    gw_anchors *a = calloc(1, sizeof(*a));
    int tls;
    char h[256], p[8];
    const char *path;
    *err = NULL;
    if (a == NULL) {
        *err = strdup("out of memory");
        return NULL;
    }
    if (o->kind == GW_ANCHOR_HTTP &&
        (o->url == NULL || parse_url(o->url, &tls, h, p, &path) != 0)) {
        *err = strdup("anchor: the url must be http://host[:port]/path or https://...");
        free(a);
        return NULL;
    }
    a->o = *o;
    a->o.redis_host = dup_or_null(o->redis_host, &a->own[0]);
    a->o.redis_key = dup_or_null(o->redis_key, &a->own[1]);
    a->o.redis_password = dup_or_null(o->redis_password, &a->own[2]);
    a->o.url = dup_or_null(o->url, &a->own[3]);
    a->o.ca_file = dup_or_null(o->ca_file, &a->own[4]);
    a->o.command = dup_or_null(o->command, &a->own[5]);
    a->cap = o->queue_max >= 2 ? o->queue_max : GW_ANCHOR_QUEUE; /* the head is being sent */
    a->q = calloc(a->cap, sizeof(char *));
    if (gethostname(a->host, sizeof(a->host) - 1) != 0)
        snprintf(a->host, sizeof(a->host), "unknown");
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = a->q != NULL ? pthread_create(&a->thread, NULL, anchor_main, a) : ENOMEM;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        *err = strdup("anchor: cannot start the sender thread");
        anchors_free(a);
        return NULL;
    }
    pthread_setname_np(a->thread, "gw-anchor");
    return a;
}

void gw_anchors_submit(void *anchors, const char *journal, uint64_t seq, const char *hash,
                       const char *ts)
{
    gw_anchors *a = anchors;
    if (a == NULL)
        return;
    json_t *o =
        json_pack("{s:i,s:s,s:s,s:s,s:I,s:s,s:s}", "v", 1, "type", "journal.anchor", "host",
                  a->host, "journal", journal, "seq", (json_int_t)seq, "hash", hash, "ts", ts);
    char *line = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (line == NULL)
        return;
    pthread_mutex_lock(&a->mu);
    if (a->len == a->cap) {
        /* the oldest goes: a newer anchor covers its records (unless it is
         * being sent right now, then the line after it) */
        size_t k = (a->head + (a->len > 1 ? 1 : 0)) % a->cap;
        free(a->q[k]);
        if (k != a->head)
            for (size_t i = 1; i + 1 < a->len; i++)
                a->q[(a->head + i) % a->cap] = a->q[(a->head + i + 1) % a->cap];
        else
            a->head = (a->head + 1) % a->cap;
        a->len--;
        a->dropped++;
    }
    a->q[(a->head + a->len) % a->cap] = line;
    a->len++;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

void gw_anchors_get_stats(gw_anchors *a, gw_anchor_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (a == NULL)
        return;
    pthread_mutex_lock(&a->mu);
    st->sent = a->sent;
    st->failed = a->failed;
    st->dropped = a->dropped;
    st->pending = a->len;
    st->failing = a->failing;
    st->last_seq = a->last_seq;
    st->streaks = a->streaks;
    memcpy(st->last_error, a->last_error, sizeof(st->last_error));
    pthread_mutex_unlock(&a->mu);
}

uint64_t gw_anchors_stop(gw_anchors *a, unsigned ms)
{
    if (a == NULL)
        return 0;
    uint64_t until = mono_ms() + ms;
    pthread_mutex_lock(&a->mu);
    while (a->len > 0 && !a->failing && mono_ms() < until) {
        pthread_mutex_unlock(&a->mu);
        usleep(10000);
        pthread_mutex_lock(&a->mu);
    }
    a->stopping = 1;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    uint64_t left = a->len;
    anchors_free(a);
    return left;
}
