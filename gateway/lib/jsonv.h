/*
 * JSON validation toolkit: the one way the gateway checks a JSON file it
 * reads (gateway config, policy files, the kill-switch file, a DataPass
 * export, the "oauth" and "quota" sections).
 *
 * Every problem becomes one line "FILE: JSON.PATH: MESSAGE" in a gw_errlist,
 * and every problem is collected, not just the first. The JSON path of the
 * root is "$"; its members are plain names ("listeners"), deeper ones are
 * joined by '.' and array entries by "[i]" ("listeners[0].tls.cert").
 * Text taken from the file (a key, a value, a parser excerpt) goes through
 * gw_jsonv_clean() before it reaches a message: a message may end up on a
 * terminal (-t) or in a log, so it never carries raw control bytes.
 *
 * The wording is fixed here for all callers; docs/configuration.md and
 * docs/policies.md list the messages and tests check them byte for byte.
 *
 * No I/O: the caller reads the file and hands over its text.
 */
#ifndef GW_LIB_JSONV_H
#define GW_LIB_JSONV_H

#include <stddef.h>

#include <jansson.h>

/* ---- the error list ---- */

#define GW_ERRLIST_MAX 64

/* Up to GW_ERRLIST_MAX messages, in the order found; the rest are counted in
 * <dropped>. Zero-initialise; gw_errlist_clear() frees the messages. */
typedef struct gw_errlist {
    char *msgs[GW_ERRLIST_MAX];
    size_t n;
    size_t dropped;
} gw_errlist;

/* Appends one formatted message; <e> may be NULL (the message is dropped).
 * Out of memory counts the message as dropped. */
void gw_errlist_add(gw_errlist *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gw_errlist_clear(gw_errlist *e);

/* ---- the collector ---- */

/* One file being checked. <file> (as the user named it) and <errs> are
 * borrowed; <nerrs> counts the errors reported through this collector,
 * including those dropped by a full list, so "nerrs > 0" means "refused". */
typedef struct gw_jsonv {
    const char *file;
    gw_errlist *errs;
    size_t nerrs;
} gw_jsonv;

/* A collector for <file> (NULL: "-") appending to <errs> (may be NULL). */
gw_jsonv gw_jsonv_init(const char *file, gw_errlist *errs);

/* Reports "FILE: <path>: <message>". */
void gw_jsonv_err(gw_jsonv *v, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* strdup()/calloc() that report "<path>: out of memory" on failure. */
char *gw_jsonv_strdup(gw_jsonv *v, const char *path, const char *s);
void *gw_jsonv_calloc(gw_jsonv *v, const char *path, size_t n, size_t size);

/* ---- untrusted text ---- */

/* Copies <s> into <buf> (<bufsz> >= 5) for a message and returns <buf>:
 * control bytes (< 0x20, 0x7f) become '?', and a text longer than <max>
 * bytes (or than <bufsz> - 4) is cut on a UTF-8 boundary and ends in "...". */
const char *gw_jsonv_clean(char *buf, size_t bufsz, const char *s, size_t max);

/* ---- paths ---- */

#define GW_JSONV_PATH 256 /* a JSON path in a message, NUL included */

/* <out> = <parent>.<key> (just <key> under "$"); <out> = <parent>[<i>].
 * A path that does not fit ends in "...". <key> is used as given: clean a
 * key that comes from the file first (gw_jsonv_keys() does). */
void gw_jsonv_path_key(char out[GW_JSONV_PATH], const char *parent, const char *key);
void gw_jsonv_path_idx(char out[GW_JSONV_PATH], const char *parent, size_t i);

/* ---- parsing ---- */

/* <text>/<len> parsed with duplicate keys refused, or NULL after reporting
 * "$: invalid JSON at line L, column C: <excerpt>". Caller owns the root. */
json_t *gw_jsonv_parse(gw_jsonv *v, const char *text, size_t len);

/* ---- members ---- */

/* Reports "<path>.<key>: unknown key" for every member of the object <obj>
 * not named in the NULL-terminated list <known>, in the object's order. */
void gw_jsonv_keys(gw_jsonv *v, json_t *obj, const char *path, const char *const *known);

/* How a member is looked up (the <flags> of the getters below). */
enum {
    GW_JSONV_OPTIONAL = 0,
    GW_JSONV_REQUIRED = 1,   /* absent: "<path>: missing key \"<key>\"" */
    GW_JSONV_NULL_ABSENT = 2 /* a JSON null counts as absent */
};

/* What a getter found. */
enum { GW_JSONV_BAD = -1, GW_JSONV_ABSENT = 0, GW_JSONV_SET = 1 };

/* The member <key> of <obj> at <path>, or NULL (reported when required). */
json_t *gw_jsonv_member(gw_jsonv *v, json_t *obj, const char *path, const char *key, int flags);

/* Typed members. Each returns SET with <*out> filled, ABSENT (optional and
 * not there; <*out> untouched), or BAD (reported; <*out> untouched):
 *   int    "must be an integer", "must be between MIN and MAX"
 *   str    "must be a string" (<*out> borrowed from <obj>)
 *   bool   "must be a boolean"
 * A required member that is missing is BAD. */
int gw_jsonv_int(gw_jsonv *v, json_t *obj, const char *path, const char *key, int flags,
                 long long min, long long max, long long *out);
int gw_jsonv_str(gw_jsonv *v, json_t *obj, const char *path, const char *key, int flags,
                 const char **out);
int gw_jsonv_bool(gw_jsonv *v, json_t *obj, const char *path, const char *key, int flags, int *out);

/* An integer in one message, "must be an integer between MIN and MAX", the
 * wording of the "oauth" and "quota" sections. */
int gw_jsonv_int_in(gw_jsonv *v, json_t *obj, const char *path, const char *key, int flags,
                    long long min, long long max, long long *out);

/* A nested object, or NULL when absent or not one ("must be an object"). */
json_t *gw_jsonv_obj(gw_jsonv *v, json_t *obj, const char *path, const char *key, int flags);

/* An array, or NULL when absent or not one ("must be an array"). A size
 * outside <min>..<max> is reported ("must have between MIN and MAX
 * entries") and the array still returned, so that its entries get checked. */
json_t *gw_jsonv_array(gw_jsonv *v, json_t *obj, const char *path, const char *key, int flags,
                       size_t min, size_t max);

#endif
