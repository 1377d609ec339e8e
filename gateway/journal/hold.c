/*
 * Legal holds (hold.h): a JSON array in DIR/.NAME.holds.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf, strerror_r */
#endif
#include "journal/hold.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "lib/util.h"

struct gw_holds {
    char *path;
    json_t *a; /* the array, as saved */
};

gw_holds *gw_holds_open(const char *journal_path, char **err)
{
    gw_holds *h = calloc(1, sizeof(*h));
    const char *slash = strrchr(journal_path, '/');
    *err = NULL;
    if (h == NULL || (slash ? asprintf(&h->path, "%.*s/.%s.holds", (int)(slash - journal_path),
                                       journal_path, slash + 1)
                            : asprintf(&h->path, "./.%s.holds", journal_path)) < 0) {
        free(h);
        *err = strdup("out of memory");
        return NULL;
    }
    json_error_t je;
    h->a = json_load_file(h->path, JSON_REJECT_DUPLICATES, &je);
    if (h->a == NULL && access(h->path, F_OK) != 0) {
        h->a = json_array(); /* none yet */
    } else if (h->a == NULL || !json_is_array(h->a)) {
        if (asprintf(err, "%s: not a JSON array of holds (%s)", h->path,
                     h->a == NULL ? je.text : "not an array") < 0)
            *err = NULL;
        gw_holds_free(h);
        return NULL;
    }
    return h;
}

void gw_holds_free(gw_holds *h)
{
    if (h == NULL)
        return;
    json_decref(h->a);
    free(h->path);
    free(h);
}

size_t gw_holds_count(const gw_holds *h)
{
    return h != NULL ? json_array_size(h->a) : 0;
}

const char *gw_holds_path(const gw_holds *h)
{
    return h->path;
}

/* Write <a> to a temporary file, sync it, rename it over the holds file. */
static int save(gw_holds *h, json_t *a, char **err)
{
    char *tmp = NULL, eb[96];
    if (asprintf(&tmp, "%s.tmp", h->path) < 0) {
        *err = strdup("out of memory");
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    char *s = json_dumps(a, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    int ok = fd >= 0 && s != NULL && write(fd, s, strlen(s)) == (ssize_t)strlen(s) &&
             write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    int e = errno;
    if (fd >= 0)
        close(fd);
    free(s);
    if (ok && rename(tmp, h->path) != 0) {
        ok = 0;
        e = errno;
    }
    if (!ok) {
        unlink(tmp);
        if (asprintf(err, "%s: cannot save the holds: %s", h->path, strerror_r(e, eb, sizeof(eb))) <
            0)
            *err = NULL;
    }
    free(tmp);
    return ok ? 0 : -1;
}

static size_t find(const gw_holds *h, const char *consumer)
{
    size_t i;
    json_t *v;
    json_array_foreach(h->a, i, v)
    {
        const char *c = json_string_value(json_object_get(v, "consumer"));
        if (consumer == NULL ? c == NULL : c != NULL && strcmp(c, consumer) == 0)
            return i;
    }
    return (size_t)-1;
}

/* Save <a> (taken) and make it the holds in force: 0, or -1 with <*err>
 * and nothing changed. */
static int commit(gw_holds *h, json_t *a, char **err)
{
    if (a == NULL) {
        *err = strdup("out of memory");
        return -1;
    }
    if (save(h, a, err) != 0) {
        json_decref(a);
        return -1;
    }
    json_decref(h->a);
    h->a = a;
    return 0;
}

int gw_holds_set(gw_holds *h, const char *consumer, const char *reason, const char *by, char **err)
{
    char ts[32];
    *err = NULL;
    gw_time_iso_ms(ts);
    json_t *a = json_deep_copy(h->a);
    json_t *o =
        json_pack("{s:o,s:s,s:s,s:s}", "consumer", consumer ? json_string(consumer) : json_null(),
                  "reason", reason, "by", by ? by : "unknown", "since", ts);
    size_t i = find(h, consumer);
    if (a != NULL && (o == NULL || (i == (size_t)-1 ? json_array_append_new(a, o)
                                                    : json_array_set_new(a, i, o)) != 0)) {
        json_decref(a);
        a = NULL;
    }
    if (commit(h, a, err) != 0)
        return -1;
    return i == (size_t)-1;
}

int gw_holds_lift(gw_holds *h, const char *consumer, char **err)
{
    *err = NULL;
    size_t i = find(h, consumer);
    if (i == (size_t)-1)
        return 0;
    json_t *a = json_deep_copy(h->a);
    if (a != NULL && json_array_remove(a, i) != 0) {
        json_decref(a);
        a = NULL;
    }
    return commit(h, a, err) != 0 ? -1 : 1;
}

json_t *gw_holds_json(const gw_holds *h)
{
    return h != NULL ? json_deep_copy(h->a) : json_array();
}
