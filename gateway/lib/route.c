#include "lib/route.h"

#include <stdlib.h>
#include <string.h>

/* A path cut into segments, pointing into the caller's buffer. */
typedef struct path_segs {
    size_t n;
    const char *p[GW_ROUTE_MAX_SEGS];
    size_t len[GW_ROUTE_MAX_SEGS];
} path_segs;

static int is_param_char(char c)
{
    return (c >= 'a' && c <= 'z') || c == '_';
}

/* RFC 3986 pchar without pct-encoded: templates hold no '%' because the path
 * is never decoded, so a literal "%41" could only ever match itself. */
static int is_literal_char(char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("-._~!$&'()*+,;=:@", c) != NULL;
}

static int is_dot_segment(const char *s, size_t len)
{
    return (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.');
}

const char *gw_route_compile(gw_route *r, const char *tmpl)
{
    const char *err = NULL;
    char *segs[GW_ROUTE_MAX_SEGS] = {0};
    char *params[GW_ROUTE_MAX_SEGS] = {0};
    size_t nsegs = 0, nparams = 0;

    if (tmpl == NULL || tmpl[0] != '/')
        return "must start with '/'";
    if (strlen(tmpl) > GW_ROUTE_MAX_TEMPLATE)
        return "too long";

    /* "/" alone is the root: zero segments. */
    const char *p = tmpl + 1;
    while (*p != '\0') {
        const char *end = strchr(p, '/');
        if (end == NULL)
            end = p + strlen(p);
        size_t len = (size_t)(end - p);
        if (len == 0) {
            err = "empty segment";
            goto out;
        }
        if (nsegs == GW_ROUTE_MAX_SEGS) {
            err = "too many segments";
            goto out;
        }
        if (memchr(p, '{', len) != NULL || memchr(p, '}', len) != NULL) {
            if (len < 2 || p[0] != '{' || p[len - 1] != '}') {
                err = "parameter must be a whole segment";
                goto out;
            }
            const char *name = p + 1;
            size_t nlen = len - 2;
            if (nlen == 0) {
                err = "bad parameter name";
                goto out;
            }
            for (size_t i = 0; i < nlen; i++) {
                if (!is_param_char(name[i])) {
                    err = "bad parameter name";
                    goto out;
                }
            }
            if (nparams == GW_ROUTE_MAX_PARAMS) {
                err = "too many parameters";
                goto out;
            }
            for (size_t i = 0; i < nsegs; i++) {
                if (params[i] != NULL && strlen(params[i]) == nlen &&
                    memcmp(params[i], name, nlen) == 0) {
                    err = "duplicate parameter name";
                    goto out;
                }
            }
            params[nsegs] = strndup(name, nlen);
            if (params[nsegs] == NULL) {
                err = "out of memory";
                goto out;
            }
            nparams++;
        } else {
            if (is_dot_segment(p, len)) {
                err = "dot segment";
                goto out;
            }
            for (size_t i = 0; i < len; i++) {
                if (!is_literal_char(p[i])) {
                    err = "bad character";
                    goto out;
                }
            }
            segs[nsegs] = strndup(p, len);
            if (segs[nsegs] == NULL) {
                err = "out of memory";
                goto out;
            }
        }
        nsegs++;
        if (*end == '\0')
            break;
        p = end + 1;
        if (*p == '\0') {
            err = "empty segment"; /* trailing slash */
            goto out;
        }
    }

    r->nsegs = nsegs;
    for (size_t i = 0; i < GW_ROUTE_MAX_SEGS; i++) {
        r->segs[i] = segs[i];
        r->seg_len[i] = segs[i] != NULL ? strlen(segs[i]) : 0;
        r->params[i] = params[i];
    }
    return NULL;

out:
    for (size_t i = 0; i < GW_ROUTE_MAX_SEGS; i++) {
        free(segs[i]);
        free(params[i]);
    }
    return err;
}

/* Cut <path>/<len> at '/'. Returns 0, or -1 when no template can match it:
 * not absolute, an empty segment (doubled or trailing slash), a "." or ".."
 * segment, or more segments than any template may have. */
static int split_path(const char *path, size_t len, path_segs *s)
{
    s->n = 0;
    if (path == NULL || len == 0 || path[0] != '/')
        return -1;
    size_t i = 1;
    if (len == 1)
        return 0; /* "/" */
    for (;;) {
        size_t start = i;
        while (i < len && path[i] != '/')
            i++;
        size_t slen = i - start;
        if (slen == 0 || is_dot_segment(path + start, slen) || s->n == GW_ROUTE_MAX_SEGS)
            return -1;
        s->p[s->n] = path + start;
        s->len[s->n] = slen;
        s->n++;
        if (i == len)
            return 0;
        i++; /* the '/' */
    }
}

static int value_ok(const char *v, size_t n)
{
    if (n == 0 || n > GW_ROUTE_MAX_VALUE)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_' || c == '~'))
            return 0;
    }
    return 1;
}

/* The literal segments first, by length then bytes (what tells most routes
 * apart, at the cost of a compare each), the parameters' values only for a
 * route whose literals all match: a request is matched twice (its body
 * limit when the head ends, then the route stage) against every route
 * before its own. */
static int route_fits(const gw_route *r, const path_segs *s)
{
    if (r->nsegs != s->n)
        return 0;
    for (size_t k = 0; k < s->n; k++) {
        if (r->segs[k] != NULL &&
            (r->seg_len[k] != s->len[k] || memcmp(r->segs[k], s->p[k], s->len[k]) != 0))
            return 0;
    }
    for (size_t k = 0; k < s->n; k++) {
        if (r->segs[k] == NULL && !value_ok(s->p[k], s->len[k]))
            return 0;
    }
    return 1;
}

gw_route_result gw_route_match_path(const gw_route_table *t, const char *method, const char *path,
                                    size_t path_len, gw_route_match *m)
{
    path_segs s;
    int other_method = 0;

    if (m != NULL) {
        m->route = NULL;
        m->nparams = 0;
    }
    if (t == NULL || split_path(path, path_len, &s) < 0)
        return GW_ROUTE_NOT_FOUND;

    for (size_t i = 0; i < t->n; i++) {
        const gw_route *r = &t->routes[i];
        if (!route_fits(r, &s))
            continue;
        if (method == NULL || r->method == NULL || strcmp(r->method, method) != 0) {
            other_method = 1;
            continue;
        }
        if (m != NULL) {
            m->route = r;
            for (size_t k = 0; k < s.n && m->nparams < GW_ROUTE_MAX_PARAMS; k++) {
                if (r->segs[k] != NULL)
                    continue;
                m->params[m->nparams].name = r->params[k];
                m->params[m->nparams].value = s.p[k];
                m->params[m->nparams].len = s.len[k];
                m->nparams++;
            }
        }
        return GW_ROUTE_FOUND;
    }
    return other_method ? GW_ROUTE_METHOD_NOT_ALLOWED : GW_ROUTE_NOT_FOUND;
}

size_t gw_route_allowed(const gw_route_table *t, const char *path, size_t path_len, char *out,
                        size_t outsz)
{
    path_segs s;
    size_t count = 0, used = 0;
    int full = out == NULL || outsz == 0;

    if (out != NULL && outsz > 0)
        out[0] = '\0';
    if (t == NULL || split_path(path, path_len, &s) < 0)
        return 0;
    for (size_t i = 0; i < t->n; i++) {
        const gw_route *r = &t->routes[i];
        if (r->method == NULL || !route_fits(r, &s))
            continue;
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) {
            const gw_route *q = &t->routes[j];
            seen = q->method != NULL && strcmp(q->method, r->method) == 0 && route_fits(q, &s);
        }
        if (seen)
            continue;
        count++;
        size_t mlen = strlen(r->method);
        if (full || used + (used ? 2 : 0) + mlen + 1 > outsz) {
            full = 1; /* counted, no longer written: the list stays a prefix */
            continue;
        }
        if (used) {
            memcpy(out + used, ", ", 2);
            used += 2;
        }
        memcpy(out + used, r->method, mlen + 1);
        used += mlen;
    }
    return count;
}

const char *gw_route_param(const gw_route_match *m, const char *name, size_t *len)
{
    if (m == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < m->nparams && i < GW_ROUTE_MAX_PARAMS; i++) {
        if (m->params[i].name != NULL && strcmp(m->params[i].name, name) == 0) {
            if (len != NULL)
                *len = m->params[i].len;
            return m->params[i].value;
        }
    }
    return NULL;
}

size_t gw_route_canonical_path(const gw_route_match *m, char *out, size_t cap)
{
    if (m == NULL || m->route == NULL || out == NULL || cap < 2)
        return 0;
    const gw_route *r = m->route;
    size_t used = 0, pi = 0;
    if (r->nsegs == 0) {
        memcpy(out, "/", 2);
        return 1;
    }
    for (size_t k = 0; k < r->nsegs; k++) {
        const char *v = r->segs[k];
        size_t n = v != NULL ? strlen(v) : 0;
        if (v == NULL) {
            if (pi >= m->nparams)
                return 0;
            v = m->params[pi].value;
            n = m->params[pi].len;
            pi++;
        }
        if (used + 1 + n + 1 > cap)
            return 0;
        out[used++] = '/';
        memcpy(out + used, v, n);
        used += n;
    }
    out[used] = '\0';
    return used;
}

void gw_route_free(gw_route *r)
{
    if (r == NULL)
        return;
    free(r->name);
    free(r->method);
    free(r->path);
    free(r->upstream);
    free(r->scope);
    for (size_t i = 0; i < GW_ROUTE_MAX_SEGS; i++) {
        free(r->segs[i]);
        free(r->params[i]);
    }
    for (size_t i = 0; i < r->nheaders && i < GW_ROUTE_MAX_HEADERS; i++)
        free(r->headers[i]);
    memset(r, 0, sizeof(*r));
}
