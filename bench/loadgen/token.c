/*
 * opale-loadgen: --token-url, one blocking POST (client_credentials) before
 * the run, bounded by timeouts; its JSON answer read with jansson.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>

#include "loadgen.h"

char *lg_bearer; /* from --token-url */

/* The value of the string member "access_token" of the JSON object
 * s[0..len) (no duplicate member names). Returns a malloc'ed string, or
 * NULL. */
static char *json_access_token(const char *s, size_t len)
{
    json_t *root = json_loadb(s, len, JSON_REJECT_DUPLICATES, NULL);
    const char *tok = json_string_value(json_object_get(root, "access_token"));
    char *found = tok ? strdup(tok) : NULL;

    json_decref(root);
    return found;
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
    uint64_t now = lg_now_ns();
    if (now >= deadline)
        return -1;
    struct pollfd pfd = {.fd = fd, .events = events};
    int ms = (int)((deadline - now) / 1000000) + 1;
    int r = poll(&pfd, 1, ms);
    return r == 1 ? 0 : -1;
}

void lg_fetch_token(void)
{
    const struct url *u = &lg_opt.token;
    uint64_t deadline = lg_now_ns() + (uint64_t)(lg_opt.timeout * 3 * (double)NS_PER_S);
    struct evbuffer *body = evbuffer_new(), *req = evbuffer_new(), *in = evbuffer_new(),
                    *cap = evbuffer_new();
    if (!body || !req || !in || !cap)
        lg_die("out of memory");
    evbuffer_add_printf(body, "grant_type=client_credentials");
    if (lg_opt.token_scope) {
        evbuffer_add_printf(body, "&scope=");
        url_encode(body, lg_opt.token_scope);
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
        lg_die("--token-url: socket: %s", strerror(errno));
    if (connect(fd, (const struct sockaddr *)&u->addr, u->addrlen) != 0) {
        if (errno != EINPROGRESS || wait_fd(fd, POLLOUT, deadline) != 0)
            lg_die("--token-url: cannot connect to %s", u->authority);
        int err = 0;
        socklen_t elen = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
        if (err)
            lg_die("--token-url: connect to %s: %s", u->authority, strerror(err));
    }
    SSL *ssl = NULL;
    if (u->tls) {
        ssl = SSL_new(lg_ctx);
        if (!ssl || !SSL_set_tlsext_host_name(ssl, lg_opt.sni) || SSL_set_fd(ssl, fd) != 1)
            lg_tls_die("--token-url: SSL_new");
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
            lg_tls_die("--token-url: TLS handshake");
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
                lg_tls_die("--token-url: write");
            }
            n = r;
        } else {
            n = send(fd, rp + off, rlen - off, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN && wait_fd(fd, POLLOUT, deadline) == 0)
                    continue;
                lg_die("--token-url: write: %s", strerror(errno));
            }
        }
        off += (size_t)n;
    }
    if (off < rlen)
        lg_die("--token-url: cannot send the request");

    struct rparser p;
    memset(&p, 0, sizeof p);
    lg_rp_reset(&p);
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
                    lg_tls_die("--token-url: read");
                lg_die("--token-url: connection closed before a whole response");
            }
            n = r;
        } else {
            n = recv(fd, buf, sizeof buf, 0);
            if (n < 0 && errno == EAGAIN && wait_fd(fd, POLLIN, deadline) == 0)
                continue;
            if (n <= 0)
                lg_die("--token-url: connection closed before a whole response");
        }
        if (evbuffer_get_length(in) + (size_t)n > HEAD_MAX + CAPTURE_MAX * 2)
            lg_die("--token-url: response too large");
        evbuffer_add(in, buf, (size_t)n);
        int r = lg_rp_feed(&p, in);
        if (r < 0)
            lg_die("--token-url: malformed response: %s", p.error);
        done = r == 1;
    }
    if (!done)
        lg_die("--token-url: no whole response in time");
    size_t blen = evbuffer_get_length(cap);
    const char *b = (const char *)evbuffer_pullup(cap, -1);
    if (p.status != 200)
        lg_die("--token-url: HTTP %d: %.*s", p.status, (int)(blen > 300 ? 300 : blen), b ? b : "");
    lg_bearer = json_access_token(b ? b : "", blen);
    if (!lg_bearer || !*lg_bearer || strlen(lg_bearer) > MAX_HEADER_LEN ||
        strspn(lg_bearer,
               "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~+/=") !=
            strlen(lg_bearer))
        lg_die("--token-url: no usable access_token in the response");
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
