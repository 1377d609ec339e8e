/*
 * The JSON validation toolkit (jsonv.h). One wording for every file the
 * gateway validates; docs/configuration.md and docs/policies.md quote it.
 */
#include "lib/jsonv.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the error list ---- */

void gw_errlist_add(gw_errlist *e, const char *fmt, ...)
{
    char *msg = NULL;
    va_list ap;

    if (e == NULL)
        return;
    if (e->n >= GW_ERRLIST_MAX) {
        e->dropped++;
        return;
    }
    va_start(ap, fmt);
    int r = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (r < 0) {
        e->dropped++;
        return;
    }
    e->msgs[e->n++] = msg;
}

void gw_errlist_clear(gw_errlist *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->n; i++)
        free(e->msgs[i]);
    memset(e, 0, sizeof(*e));
}

/* ---- the collector ---- */

gw_jsonv gw_jsonv_init(const char *file, gw_errlist *errs)
{
    gw_jsonv v = {.file = file != NULL ? file : "-", .errs = errs, .nerrs = 0};
    return v;
}

void gw_jsonv_err(gw_jsonv *v, const char *path, const char *fmt, ...)
{
    char *msg = NULL;
    va_list ap;

    v->nerrs++;
    va_start(ap, fmt);
    int r = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (r < 0) {
        gw_errlist_add(v->errs, "%s: %s: out of memory", v->file, path);
        return;
    }
    gw_errlist_add(v->errs, "%s: %s: %s", v->file, path, msg);
    free(msg);
}

char *gw_jsonv_strdup(gw_jsonv *v, const char *path, const char *s)
{
    char *d = strdup(s);
    if (d == NULL)
        gw_jsonv_err(v, path, "out of memory");
    return d;
}

void *gw_jsonv_calloc(gw_jsonv *v, const char *path, size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL)
        gw_jsonv_err(v, path, "out of memory");
    return p;
}

/* ---- untrusted text ---- */

const char *gw_jsonv_clean(char *buf, size_t bufsz, const char *s, size_t max)
{
    size_t n = strlen(s), cut = n;
    if (max > bufsz - 4)
        max = bufsz - 4;
    if (n > max) {
        cut = max;
        while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
            cut--;
    }
    for (size_t i = 0; i < cut; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (cut < n)
        memcpy(buf + cut, "...", 4);
    else
        buf[cut] = '\0';
    return buf;
}

/* ---- paths ---- */

void gw_jsonv_path_key(char out[GW_JSONV_PATH], const char *parent, const char *key)
{
    int r;
    if (strcmp(parent, "$") == 0)
        r = snprintf(out, GW_JSONV_PATH, "%s", key);
    else
        r = snprintf(out, GW_JSONV_PATH, "%s.%s", parent, key);
    if (r < 0 || r >= GW_JSONV_PATH)
        memcpy(out + GW_JSONV_PATH - 4, "...", 4);
}

void gw_jsonv_path_idx(char out[GW_JSONV_PATH], const char *parent, size_t i)
{
    int r = snprintf(out, GW_JSONV_PATH, "%s[%zu]", parent, i);
    if (r < 0 || r >= GW_JSONV_PATH)
        memcpy(out + GW_JSONV_PATH - 4, "...", 4);
}

/* ---- parsing ---- */

json_t *gw_jsonv_parse(gw_jsonv *v, const char *text, size_t len)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        char cb[256];
        gw_jsonv_err(v, "$", "invalid JSON at line %d, column %d: %s", je.line, je.column,
                     gw_jsonv_clean(cb, sizeof(cb), je.text, 160));
    }
    return root;
}

/* ---- members ---- */

void gw_jsonv_keys(gw_jsonv *v, json_t *obj, const char *path, const char *const *known)
{
    const char *key;
    json_t *m;
    char kb[80], p[GW_JSONV_PATH];

    json_object_foreach(obj, key, m)
    {
        size_t i = 0;
        while (known[i] != NULL && strcmp(known[i], key) != 0)
            i++;
        if (known[i] == NULL) {
            gw_jsonv_path_key(p, path, gw_jsonv_clean(kb, sizeof(kb), key, 64));
            gw_jsonv_err(v, p, "unknown key");
        }
    }
}

json_t *gw_jsonv_member(gw_jsonv *v, json_t *obj, const char *path, const char *key, int flags)
{
    json_t *m = json_object_get(obj, key);
    if (m != NULL && json_is_null(m) && (flags & GW_JSONV_NULL_ABSENT))
        m = NULL;
    if (m == NULL && (flags & GW_JSONV_REQUIRED))
        gw_jsonv_err(v, path, "missing key \"%s\"", key);
    return m;
}

/* The member, or NULL with <*r> ABSENT or BAD (missing and required). */
static json_t *lookup(gw_jsonv *v, json_t *obj, const char *path, const char *key, int flags,
                      int *r)
{
    json_t *m = gw_jsonv_member(v, obj, path, key, flags);
    *r = m != NULL ? GW_JSONV_SET : (flags & GW_JSONV_REQUIRED) ? GW_JSONV_BAD : GW_JSONV_ABSENT;
    return m;
}

/* Reports <msg> at <path>.<key> and returns BAD. */
static int bad(gw_jsonv *v, const char *path, const char *key, const char *msg)
{
    char p[GW_JSONV_PATH];
    gw_jsonv_path_key(p, path, key);
    gw_jsonv_err(v, p, "%s", msg);
    return GW_JSONV_BAD;
}

/* An integer in <min>..<max>; <one> selects the one-message wording. */
static int get_int(gw_jsonv *v, json_t *obj, const char *path, const char *key, int flags,
                   long long min, long long max, long long *out, int one)
{
    char p[GW_JSONV_PATH];
    int r;
    json_t *m = lookup(v, obj, path, key, flags, &r);
    if (m == NULL)
        return r;
    gw_jsonv_path_key(p, path, key);
    int is_int = json_is_integer(m);
    long long i = is_int ? json_integer_value(m) : 0;
    if (one && (!is_int || i < min || i > max)) {
        gw_jsonv_err(v, p, "must be an integer between %lld and %lld", min, max);
        return GW_JSONV_BAD;
    }
    if (!is_int) {
        gw_jsonv_err(v, p, "must be an integer");
        return GW_JSONV_BAD;
    }
    if (i < min || i > max) {
        gw_jsonv_err(v, p, "must be between %lld and %lld", min, max);
        return GW_JSONV_BAD;
    }
    *out = i;
    return GW_JSONV_SET;
}

int gw_jsonv_int(gw_jsonv *v, json_t *obj, const char *path, const char *key, int flags,
                 long long min, long long max, long long *out)
{
    return get_int(v, obj, path, key, flags, min, max, out, 0);
}

int gw_jsonv_int_in(gw_jsonv *v, json_t *obj, const char *path, const char *key, int flags,
                    long long min, long long max, long long *out)
{
    return get_int(v, obj, path, key, flags, min, max, out, 1);
}

int gw_jsonv_str(gw_jsonv *v, json_t *obj, const char *path, const char *key, int flags,
                 const char **out)
{
    int r;
    json_t *m = lookup(v, obj, path, key, flags, &r);
    if (m == NULL)
        return r;
    if (!json_is_string(m))
        return bad(v, path, key, "must be a string");
    *out = json_string_value(m);
    return GW_JSONV_SET;
}

int gw_jsonv_bool(gw_jsonv *v, json_t *obj, const char *path, const char *key, int flags, int *out)
{
    int r;
    json_t *m = lookup(v, obj, path, key, flags, &r);
    if (m == NULL)
        return r;
    if (!json_is_boolean(m))
        return bad(v, path, key, "must be a boolean");
    *out = json_is_true(m);
    return GW_JSONV_SET;
}

json_t *gw_jsonv_obj(gw_jsonv *v, json_t *obj, const char *path, const char *key, int flags)
{
    int r;
    json_t *m = lookup(v, obj, path, key, flags, &r);
    if (m == NULL)
        return NULL;
    if (!json_is_object(m)) {
        bad(v, path, key, "must be an object");
        return NULL;
    }
    return m;
}

json_t *gw_jsonv_array(gw_jsonv *v, json_t *obj, const char *path, const char *key, int flags,
                       size_t min, size_t max)
{
    char p[GW_JSONV_PATH];
    int r;
    json_t *m = lookup(v, obj, path, key, flags, &r);
    if (m == NULL)
        return NULL;
    if (!json_is_array(m)) {
        bad(v, path, key, "must be an array");
        return NULL;
    }
    size_t n = json_array_size(m);
    if (n < min || n > max) {
        gw_jsonv_path_key(p, path, key);
        gw_jsonv_err(v, p, "must have between %zu and %zu entries", min, max);
    }
    return m;
}
