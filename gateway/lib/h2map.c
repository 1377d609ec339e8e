#include "lib/h2map.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* RFC 9113 8.2.2: fields that are specific to an HTTP/1.x connection. */
static const char *const connection_specific[] = {"connection", "keep-alive", "proxy-connection",
                                                  "transfer-encoding", "upgrade"};
#define NCONN (sizeof(connection_specific) / sizeof(connection_specific[0]))

static int is_lower_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int eq(const char *a, size_t an, const char *b)
{
    return an == strlen(b) && memcmp(a, b, an) == 0;
}

/* A pseudo-header's value goes into the request line or Host: visible
 * ASCII only, never empty. */
static int pseudo_value_ok(const char *v, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x21 || (unsigned char)v[i] > 0x7e)
            return 0;
    return 1;
}

static const char *set_pseudo(gw_h2map *m, const char *name, size_t nlen, const char *value,
                              size_t vlen)
{
    char **slot = NULL;
    if (eq(name, nlen, ":method"))
        slot = &m->method;
    else if (eq(name, nlen, ":path"))
        slot = &m->path;
    else if (eq(name, nlen, ":scheme"))
        slot = &m->scheme;
    else if (eq(name, nlen, ":authority"))
        slot = &m->authority;
    if (slot == NULL || *slot != NULL || m->regular_seen || !pseudo_value_ok(value, vlen))
        return "h2.bad_pseudo_header";
    *slot = strndup(value, vlen);
    return *slot == NULL ? "http.out_of_memory" : NULL;
}

static const char *check_value(const char *v, size_t n)
{
    if (n > 0 && (v[0] == ' ' || v[0] == '\t' || v[n - 1] == ' ' || v[n - 1] == '\t'))
        return "h2.bad_header_value";
    for (size_t i = 0; i < n; i++)
        if (v[i] == '\0' || v[i] == '\r' || v[i] == '\n')
            return "h2.bad_header_value";
    return NULL;
}

static const char *check_name(const char *name, size_t nlen)
{
    if (nlen == 0)
        return "h2.bad_header_name";
    for (size_t i = 0; i < nlen; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c >= 'A' && c <= 'Z')
            return "h2.uppercase_header";
        if (!is_lower_tchar(c))
            return "h2.bad_header_name";
    }
    return NULL;
}

const char *gw_h2map_field(gw_h2map *m, const char *name, size_t nlen, const char *value,
                           size_t vlen)
{
    if (m->err != NULL)
        return m->err;
    m->nfields++;
    if (nlen > 0 && name[0] == ':') {
        m->err = set_pseudo(m, name, nlen, value, vlen);
        return m->err;
    }
    m->regular_seen = 1;
    const char *e = check_name(name, nlen);
    if (e == NULL)
        e = check_value(value, vlen);
    for (size_t i = 0; e == NULL && i < NCONN; i++)
        if (eq(name, nlen, connection_specific[i]))
            e = "h2.connection_header";
    if (e == NULL && eq(name, nlen, "te") && !eq(value, vlen, "trailers"))
        e = "h2.bad_te";
    if (e != NULL) {
        m->err = e;
        return e;
    }
    if (eq(name, nlen, "host")) {
        /* compared with :authority once the block is complete */
        if (m->host != NULL) {
            /* a second Host: the HTTP/1.1 rule refuses it (http.dup_host) */
            gw_buf_append(&m->fields, "host: ", 6);
            gw_buf_append(&m->fields, value, vlen);
            gw_buf_append(&m->fields, "\r\n", 2);
            return NULL;
        }
        m->host = strndup(value, vlen);
        if (m->host == NULL)
            m->err = "http.out_of_memory";
        return m->err;
    }
    if (eq(name, nlen, "content-length"))
        m->has_content_length = 1;
    gw_buf_append(&m->fields, name, nlen);
    gw_buf_append(&m->fields, ": ", 2);
    gw_buf_append(&m->fields, value, vlen);
    gw_buf_append(&m->fields, "\r\n", 2);
    return NULL;
}

const char *gw_h2map_head(gw_h2map *m, int body_unknown, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (m->err != NULL)
        return m->err;
    if (m->method == NULL || m->path == NULL || m->scheme == NULL)
        return "h2.bad_pseudo_header";
    /* only TLS listeners speak h2 (ALPN): the scheme is https */
    if (strcmp(m->scheme, "https") != 0)
        return "h2.bad_pseudo_header";
    const char *host = m->authority != NULL ? m->authority : m->host;
    if (m->authority != NULL && m->host != NULL && strcasecmp(m->authority, m->host) != 0)
        return "h2.authority_mismatch";
    if (m->fields.oom)
        return "http.out_of_memory";
    gw_buf b = {0};
    gw_buf_printf(&b, "%s %s HTTP/1.1\r\n", m->method, m->path);
    if (host != NULL)
        gw_buf_printf(&b, "host: %s\r\n", host);
    if (m->fields.len > 0)
        gw_buf_append(&b, m->fields.data, m->fields.len);
    if (body_unknown && !m->has_content_length)
        gw_buf_puts(&b, "transfer-encoding: chunked\r\n");
    gw_buf_append(&b, "\r\n", 2);
    if (b.oom) {
        gw_buf_free(&b);
        return "http.out_of_memory";
    }
    *out = gw_buf_take(&b, len);
    return *out == NULL ? "http.out_of_memory" : NULL;
}

void gw_h2map_free(gw_h2map *m)
{
    gw_buf_free(&m->fields);
    free(m->method);
    free(m->path);
    free(m->scheme);
    free(m->authority);
    free(m->host);
    memset(m, 0, sizeof(*m));
}

size_t gw_h2map_chunk(size_t n, char *hdr)
{
    int k = snprintf(hdr, 20, "%zx\r\n", n);
    return k > 0 ? (size_t)k : 0;
}

/* A response line "Name: value" of our own making: name, value. */
static int split_line(const char *s, size_t n, gw_h2_field *f)
{
    const char *colon = memchr(s, ':', n);
    if (colon == NULL || colon == s)
        return -1;
    size_t nl = (size_t)(colon - s);
    if (nl >= sizeof(f->name))
        return 0; /* left out */
    for (size_t i = 0; i < nl; i++) {
        char c = s[i];
        f->name[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    f->name[nl] = '\0';
    f->name_len = nl;
    for (size_t i = 0; i < NCONN; i++)
        if (strcmp(f->name, connection_specific[i]) == 0)
            return 0;
    const char *v = colon + 1;
    const char *end = s + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    f->value = v;
    f->value_len = (size_t)(end - v);
    return 1;
}

int gw_h2map_response(const char *bytes, size_t len, int *status, gw_h2_field *f, size_t max,
                      const char **body, size_t *body_len)
{
    *body = NULL;
    *body_len = 0;
    if (len < 12 || memcmp(bytes, "HTTP/1.", 7) != 0 || bytes[8] != ' ')
        return -1;
    int st = 0;
    for (int i = 9; i < 12; i++) {
        if (bytes[i] < '0' || bytes[i] > '9')
            return -1;
        st = st * 10 + (bytes[i] - '0');
    }
    if (st < 200 || st > 599)
        return -1;
    *status = st;
    const char *p = memchr(bytes, '\n', len);
    if (p == NULL)
        return -1;
    p++;
    const char *end = bytes + len;
    size_t n = 0;
    for (;;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL || nl == p || nl[-1] != '\r')
            return -1;
        size_t ll = (size_t)(nl - 1 - p);
        if (ll == 0) {
            p = nl + 1;
            break;
        }
        if (n < max) {
            int r = split_line(p, ll, &f[n]);
            if (r < 0)
                return -1;
            n += (size_t)r;
        }
        p = nl + 1;
    }
    if (p < end) {
        *body = p;
        *body_len = (size_t)(end - p);
    }
    return (int)n;
}
