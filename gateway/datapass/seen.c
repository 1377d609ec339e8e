#include "datapass/seen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "datapass/webhook.h"

typedef struct seen_id {
    char *id;
    long long fired_at;
} seen_id;

struct gw_dp_seen {
    char *path;
    long window_s;
    seen_id *v;
    size_t n, cap;
};

static int push(gw_dp_seen *s, const char *id, long long fired_at)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        seen_id *t = realloc(s->v, nc * sizeof(*t));
        if (t == NULL)
            return -1;
        s->v = t;
        s->cap = nc;
    }
    char *d = strdup(id);
    if (d == NULL)
        return -1;
    s->v[s->n].id = d;
    s->v[s->n].fired_at = fired_at;
    s->n++;
    return 0;
}

gw_dp_seen *gw_dp_seen_open(const char *path, long window_s, char **err)
{
    gw_dp_seen *s = calloc(1, sizeof(*s));
    json_t *root = NULL;
    *err = NULL;
    if (s == NULL || (s->path = strdup(path)) == NULL)
        goto oom;
    s->window_s = window_s;
    size_t len = 0;
    char *text = gw_dp_read_file(path, &len);
    if (text == NULL)
        return s; /* no file yet: nothing seen */
    json_error_t je;
    root = json_loadb(text, len, 0, &je);
    free(text);
    json_t *seen = json_object_get(root, "seen");
    if (!json_is_object(seen)) {
        if (asprintf(err, "%s: seen: must be an object of event ids", path) < 0)
            *err = NULL;
        goto fail;
    }
    const char *k;
    json_t *v;
    json_object_foreach(seen, k, v)
    {
        if (!json_is_integer(v)) {
            if (asprintf(err, "%s: seen.%.64s: must be an integer (fired_at)", path, k) < 0)
                *err = NULL;
            goto fail;
        }
        if (s->n < GW_DP_SEEN_MAX && push(s, k, (long long)json_integer_value(v)) < 0)
            goto oom;
    }
    json_decref(root);
    return s;
oom:
    if (asprintf(err, "%s: $: out of memory", path) < 0)
        *err = NULL;
fail:
    json_decref(root);
    gw_dp_seen_free(s);
    return NULL;
}

void gw_dp_seen_free(gw_dp_seen *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i].id);
    free(s->v);
    free(s->path);
    free(s);
}

int gw_dp_seen_has(gw_dp_seen *s, const char *id, long long now)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].fired_at >= now - s->window_s && strcmp(s->v[i].id, id) == 0)
            return 1;
    return 0;
}

size_t gw_dp_seen_count(const gw_dp_seen *s)
{
    return s->n;
}

static int save(gw_dp_seen *s, char **err)
{
    json_t *seen = json_object();
    json_t *root = json_pack("{s:o}", "seen", seen);
    int rc = -1;
    char *text = NULL;
    if (root == NULL)
        goto out;
    for (size_t i = 0; i < s->n; i++)
        if (json_object_set_new(seen, s->v[i].id, json_integer(s->v[i].fired_at)) < 0)
            goto out;
    text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    if (text == NULL)
        goto out;
    rc = gw_dp_write_atomic(s->path, text, 0, err);
out:
    if (rc < 0 && *err == NULL && asprintf(err, "%s: out of memory", s->path) < 0)
        *err = NULL;
    free(text);
    json_decref(root);
    return rc;
}

int gw_dp_seen_add(gw_dp_seen *s, const char *id, long long fired_at, long long now, char **err)
{
    *err = NULL;
    size_t j = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (s->v[i].fired_at < now - s->window_s || strcmp(s->v[i].id, id) == 0)
            free(s->v[i].id);
        else
            s->v[j++] = s->v[i];
    }
    s->n = j;
    if (s->n >= GW_DP_SEEN_MAX)
        return -2;
    if (push(s, id, fired_at) < 0) {
        if (asprintf(err, "%s: out of memory", s->path) < 0)
            *err = NULL;
        return -1;
    }
    return save(s, err);
}
