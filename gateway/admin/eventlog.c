/* The console's view of the recent security events (see eventlog.h). */
#include "admin/eventlog.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    uint64_t id;
    int sev;
    char *json; /* the record's text, NUL-terminated */
    size_t len;
    char acked_by[40]; /* "" while not acknowledged */
    char acked_at[32];
} entry;

typedef struct cert_seen {
    char sha256[65];
    char not_after[32];
} cert_seen;

struct gw_eventlog {
    pthread_mutex_t mu;
    entry *ring;
    size_t cap, n, head; /* head: the oldest */
    uint64_t last_id;
    cert_seen certs[GW_EVENTLOG_CERTS]; /* from cert.expiring, a ring */
    size_t ncerts, cert_next;
};

/* Remember what a cert.expiring record <json> says (under the lock). */
static void note_cert(gw_eventlog *l, const char *json, size_t len)
{
    json_t *rec = json_loadb(json, len, 0, NULL);
    const char *sha = json_string_value(json_object_get(rec, "cert_sha256"));
    const char *na = json_string_value(json_object_get(rec, "not_after"));
    if (sha != NULL && na != NULL && strlen(sha) == 64) {
        cert_seen *c = NULL;
        for (size_t i = 0; i < l->ncerts && c == NULL; i++)
            if (strcmp(l->certs[i].sha256, sha) == 0)
                c = &l->certs[i];
        if (c == NULL) {
            c = &l->certs[l->cert_next];
            l->cert_next = (l->cert_next + 1) % GW_EVENTLOG_CERTS;
            if (l->ncerts < GW_EVENTLOG_CERTS)
                l->ncerts++;
        }
        snprintf(c->sha256, sizeof(c->sha256), "%s", sha);
        snprintf(c->not_after, sizeof(c->not_after), "%s", na);
    }
    json_decref(rec);
}

int gw_eventlog_cert_not_after(gw_eventlog *l, const char *sha256, char out[32])
{
    int found = 0;
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < l->ncerts && !found; i++)
        if (strcmp(l->certs[i].sha256, sha256) == 0) {
            memcpy(out, l->certs[i].not_after, 32);
            found = 1;
        }
    pthread_mutex_unlock(&l->mu);
    return found;
}

gw_eventlog *gw_eventlog_new(size_t cap)
{
    gw_eventlog *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->cap = cap > 0 ? cap : GW_EVENTLOG_MAX;
    l->ring = calloc(l->cap, sizeof(*l->ring));
    if (l->ring == NULL || pthread_mutex_init(&l->mu, NULL) != 0) {
        free(l->ring);
        free(l);
        return NULL;
    }
    return l;
}

void gw_eventlog_free(gw_eventlog *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->cap; i++)
        free(l->ring[i].json);
    free(l->ring);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

void gw_eventlog_observe(void *arg, gw_event_type type, gw_event_severity sev, const char *json,
                         size_t len)
{
    gw_eventlog *l = arg;
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return;
    memcpy(copy, json, len);
    copy[len] = '\0';
    pthread_mutex_lock(&l->mu);
    entry *e;
    if (l->n < l->cap) {
        e = &l->ring[(l->head + l->n) % l->cap];
        l->n++;
    } else {
        e = &l->ring[l->head];
        l->head = (l->head + 1) % l->cap;
        free(e->json);
    }
    memset(e, 0, sizeof(*e));
    e->id = ++l->last_id;
    e->sev = (int)sev;
    e->json = copy;
    e->len = len;
    if (type == GW_EV_CERT_EXPIRING)
        note_cert(l, json, len);
    pthread_mutex_unlock(&l->mu);
}

uint64_t gw_eventlog_last_id(gw_eventlog *l)
{
    pthread_mutex_lock(&l->mu);
    uint64_t id = l->last_id;
    pthread_mutex_unlock(&l->mu);
    return id;
}

static const char *str_or_null(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* The console's shape of entry <e> (its record parsed), or NULL when it
 * does not match <q> (or cannot be parsed). */
static json_t *shape(const entry *e, const gw_eventlog_query *q)
{
    if (e->sev < q->min_severity)
        return NULL;
    json_t *rec = json_loadb(e->json, e->len, 0, NULL);
    if (!json_is_object(rec)) {
        json_decref(rec);
        return NULL;
    }
    const char *type = str_or_null(rec, "event");
    const char *consumer = str_or_null(rec, "consumer");
    if ((q->type != NULL && (type == NULL || strcmp(type, q->type) != 0)) ||
        (q->consumer != NULL && (consumer == NULL || strcmp(consumer, q->consumer) != 0))) {
        json_decref(rec);
        return NULL;
    }
    json_t *detail = json_object();
    const char *k;
    json_t *v;
    static const char *const skip[] = {"v",        "type",     "ts",  "event", "severity",
                                       "consumer", "operator", "seq", "prev",  "hash"};
    json_object_foreach(rec, k, v)
    {
        int drop = 0;
        for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
            drop |= strcmp(k, skip[i]) == 0;
        if (!drop)
            json_object_set(detail, k, v);
    }
    json_t *acked = e->acked_by[0]
                        ? json_pack("{s:s,s:s}", "operator", e->acked_by, "time", e->acked_at)
                        : json_null();
    json_t *o =
        json_pack("{s:I,s:O,s:O,s:O,s:O,s:O,s:o,s:o}", "id", (json_int_t)e->id, "time",
                  json_object_get(rec, "ts") ? json_object_get(rec, "ts") : json_null(), "type",
                  type ? json_object_get(rec, "event") : json_null(), "severity",
                  json_object_get(rec, "severity") ? json_object_get(rec, "severity") : json_null(),
                  "consumer", consumer ? json_object_get(rec, "consumer") : json_null(), "operator",
                  json_object_get(rec, "operator") ? json_object_get(rec, "operator") : json_null(),
                  "detail", detail, "acked", acked);
    json_decref(rec);
    return o;
}

json_t *gw_eventlog_query_json(gw_eventlog *l, const gw_eventlog_query *q)
{
    json_t *arr = json_array();
    if (arr == NULL)
        return NULL;
    size_t limit = q->limit > 0 && q->limit <= GW_EVENTLOG_LIMIT_MAX ? q->limit : GW_EVENTLOG_LIMIT;
    uint64_t next = q->after;
    pthread_mutex_lock(&l->mu);
    if (q->after > 0) {
        /* oldest first, the first <limit> after <after> */
        for (size_t i = 0; i < l->n && json_array_size(arr) < limit; i++) {
            const entry *e = &l->ring[(l->head + i) % l->cap];
            if (e->id <= q->after)
                continue;
            next = e->id;
            json_t *o = shape(e, q);
            if (o != NULL)
                json_array_append_new(arr, o);
        }
    } else {
        /* newest first until <limit>, then put back in increasing order */
        for (size_t i = l->n; i > 0 && json_array_size(arr) < limit; i--) {
            const entry *e = &l->ring[(l->head + i - 1) % l->cap];
            json_t *o = shape(e, q);
            if (o != NULL)
                json_array_insert_new(arr, 0, o);
        }
        next = l->last_id;
    }
    pthread_mutex_unlock(&l->mu);
    return json_pack("{s:o,s:I}", "events", arr, "next", (json_int_t)next);
}

int gw_eventlog_ack(gw_eventlog *l, uint64_t id, const char *operator_name, const char *time,
                    char type[64])
{
    int rc = -1;
    if (type != NULL)
        type[0] = '\0';
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < l->n; i++) {
        entry *e = &l->ring[(l->head + i) % l->cap];
        if (e->id != id)
            continue;
        if (type != NULL) {
            json_t *rec = json_loadb(e->json, e->len, 0, NULL);
            const char *t = str_or_null(rec, "event");
            snprintf(type, 64, "%s", t != NULL ? t : "");
            json_decref(rec);
        }
        if (e->acked_by[0]) {
            rc = 1;
        } else {
            snprintf(e->acked_by, sizeof(e->acked_by), "%s", operator_name);
            snprintf(e->acked_at, sizeof(e->acked_at), "%s", time);
            rc = 0;
        }
        break;
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}
