/*
 * Security events: the object (open, close, statistics), its clock and its
 * records, and the records of admin actions and rejected policy files. The
 * detectors are in journal/detectors.c (with their tables in
 * journal/subjects.c), the alert hook in journal/alerts.c.
 */
#include "journal/events_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/util.h"

static const char *const type_names[GW_EV__COUNT] = {
    [GW_EV_AUTH_FAILURES] = "auth.failures",
    [GW_EV_CERT_UNKNOWN] = "cert.unknown",
    [GW_EV_SIREN_ENUMERATION] = "siren.enumeration",
    [GW_EV_QUOTA_STORM] = "quota.storm",
    [GW_EV_MAINTENANCE_ACCESS] = "maintenance.access",
    [GW_EV_CERT_EXPIRING] = "cert.expiring",
    [GW_EV_ADMIN_RELOAD] = "admin.reload",
    [GW_EV_ADMIN_RELOAD_REFUSED] = "admin.reload_refused",
    [GW_EV_ADMIN_SUSPEND] = "admin.suspend",
    [GW_EV_ADMIN_RESUME] = "admin.resume",
    [GW_EV_POLICY_REJECTED] = "policy.rejected",
    [GW_EV_ADMIN_AUTH_FAILED] = "admin.auth_failed",
    [GW_EV_ADMIN_AUTH_BLOCKED] = "admin.auth_blocked",
    [GW_EV_DATAPASS_WEBHOOK] = "datapass.webhook",
    [GW_EV_DATAPASS_SYNC] = "datapass.sync",
    [GW_EV_HABILITATION_EXPIRING] = "habilitation.expiring",
    [GW_EV_JOURNAL_BROKEN] = "journal.broken",
    [GW_EV_JOURNAL_BREAK_ACK] = "journal.break_ack",
    [GW_EV_JOURNAL_ANCHOR] = "journal.anchor_failed",
    [GW_EV_ADMIN_HOLD] = "admin.journal_hold",
    [GW_EV_ADMIN_HOLD_LIFTED] = "admin.journal_hold_lifted",
    [GW_EV_SUSPENSION_EXPIRED] = "suspension.expired",
    [GW_EV_ADMIN_CUT] = "admin.environment_cut",
    [GW_EV_ADMIN_CUT_LIFTED] = "admin.environment_restored",
    [GW_EV_REVOCATION] = "tls.revocation",
    [GW_EV_ADMIN_EVENT_ACK] = "admin.event_ack",
    [GW_EV_H2_ABUSE] = "h2.abuse",
};

static const char *const sev_names[] = {"low", "medium", "high", "critical"};

const char *gw_event_type_name(gw_event_type t)
{
    return (unsigned)t < GW_EV__COUNT ? type_names[t] : NULL;
}

const char *gw_event_severity_name(gw_event_severity s)
{
    return (unsigned)s < 4 ? sev_names[s] : NULL;
}

int gw_event_severity_parse(const char *s)
{
    for (int i = 0; s != NULL && i < 4; i++)
        if (strcmp(s, sev_names[i]) == 0)
            return i;
    return -1;
}

uint64_t gw_events_now(gw_events *ev)
{
    long long t = atomic_load_explicit(&ev->test_ms, memory_order_relaxed);
    return t != 0 ? (uint64_t)t : gw_now_ms();
}

long long gw_events_wall(gw_events *ev)
{
    long long t = atomic_load_explicit(&ev->test_ms, memory_order_relaxed);
    return t != 0 ? t / 1000 : (long long)time(NULL);
}

void gw_events_test_set_time(gw_events *ev, long long ms)
{
    if (ev != NULL)
        atomic_store(&ev->test_ms, ms);
}

/* ---- records ---- */

/* A JSON string from untrusted bytes (a certificate subject): invalid UTF-8
 * becomes U+FFFD, as in the access journal, so the record is never lost. */
static json_t *jstr(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s), i = 0, l;
    gw_buf b = {0};

    while (i < n) {
        l = gw_utf8_len(u + i, n - i);
        if (l == 0) {
            gw_buf_append(&b, "\xEF\xBF\xBD", 3);
            i++;
        } else {
            gw_buf_append(&b, s + i, l);
            i += l;
        }
    }
    json_t *v = b.oom ? NULL : json_stringn(b.data ? b.data : "", b.len);
    gw_buf_free(&b);
    return v;
}

void gw_events_put(json_t *o, const char *k, json_t *v, int *fail)
{
    if (json_object_set_new(o, k, v) != 0)
        *fail = 1;
}

void gw_events_put_str(json_t *o, const char *k, const char *s, int *fail)
{
    if (s != NULL)
        gw_events_put(o, k, jstr(s), fail);
}

void gw_events_put_int(json_t *o, const char *k, long long v, int *fail)
{
    if (v >= 0)
        gw_events_put(o, k, json_integer(v), fail);
}

void gw_events_iso(long long t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

json_t *gw_events_record(gw_event_type type, gw_event_severity sev, int *fail)
{
    char ts[32];
    json_t *o = json_object();
    if (o == NULL) {
        *fail = 1;
        return NULL;
    }
    gw_time_iso_ms(ts);
    gw_events_put(o, "v", json_integer(1), fail);
    gw_events_put(o, "type", json_string("security_event"), fail);
    gw_events_put(o, "ts", json_string(ts), fail);
    gw_events_put(o, "event", json_string(type_names[type]), fail);
    gw_events_put(o, "severity", json_string(sev_names[sev]), fail);
    return o;
}

static int dump_cb(const char *p, size_t n, void *data)
{
    gw_buf *b = data;
    gw_buf_append(b, p, n);
    return b->oom ? -1 : 0;
}

void gw_events_emit(gw_events *ev, gw_event_type type, gw_event_severity sev, json_t *o, int fail)
{
    gw_buf b = {0};
    atomic_fetch_add_explicit(&ev->by_type[type], 1, memory_order_relaxed);
    if (o == NULL || fail ||
        json_dump_callback(o, dump_cb, &b, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0) {
        json_decref(o);
        gw_buf_free(&b);
        atomic_fetch_add_explicit(&ev->refused, 1, memory_order_relaxed);
        return;
    }
    json_decref(o);
    size_t jl = b.len;
    gw_buf_append(&b, "\n", 1);
    if (b.oom) {
        gw_buf_free(&b);
        atomic_fetch_add_explicit(&ev->refused, 1, memory_order_relaxed);
        return;
    }
    gw_alerts_offer(ev->alerts, b.data, jl, type, sev, gw_events_now(ev));
    pthread_mutex_lock(&ev->obs_mu);
    if (ev->observer != NULL)
        ev->observer->fn(ev->observer->arg, type, sev, b.data, jl);
    pthread_mutex_unlock(&ev->obs_mu);
    size_t len = 0;
    char *line = gw_buf_take(&b, &len);
    if (gw_journal_submit(ev->j, line, len) < 0)
        atomic_fetch_add_explicit(&ev->refused, 1, memory_order_relaxed);
}

void gw_events_admin(gw_events *ev, gw_event_type type, const gw_event_admin *a)
{
    gw_event_severity sev;
    switch (type) {
    case GW_EV_ADMIN_RELOAD:
    case GW_EV_ADMIN_RESUME:
    case GW_EV_ADMIN_AUTH_FAILED:
        sev = GW_SEV_MEDIUM;
        break;
    case GW_EV_ADMIN_RELOAD_REFUSED:
    case GW_EV_ADMIN_SUSPEND:
    case GW_EV_ADMIN_AUTH_BLOCKED:
        sev = GW_SEV_HIGH;
        break;
    default:
        return;
    }
    if (ev == NULL || a == NULL)
        return;
    int fail = 0;
    json_t *o = gw_events_record(type, sev, &fail);
    if (o != NULL) {
        gw_events_put_str(o, "by", a->by, &fail);
        gw_events_put_str(o, "client_ip", a->client_ip, &fail);
        gw_events_put_str(o, "operator", a->who, &fail);
        gw_events_put_str(o, "consumer", a->consumer, &fail);
        gw_events_put_str(o, "habilitation", a->habilitation, &fail);
        gw_events_put_str(o, "contact", a->contact, &fail);
        if (type == GW_EV_ADMIN_RELOAD)
            gw_events_put_int(o, "habilitations", a->habilitations, &fail);
        if (type == GW_EV_ADMIN_RELOAD_REFUSED)
            gw_events_put_int(o, "errors", a->errors, &fail);
        if (a->error != NULL) {
            char cut[512];
            snprintf(cut, sizeof(cut), "%s", a->error);
            gw_events_put_str(o, "error", cut, &fail);
        }
        if (type == GW_EV_ADMIN_SUSPEND || type == GW_EV_ADMIN_RESUME) {
            gw_events_put(o, "persisted", json_boolean(a->persisted > 0), &fail);
            gw_events_put_str(o, "reason", a->reason, &fail);
            if (type == GW_EV_ADMIN_SUSPEND)
                gw_events_put_str(o, "until", a->until, &fail);
        }
        if (type == GW_EV_ADMIN_AUTH_FAILED || type == GW_EV_ADMIN_AUTH_BLOCKED) {
            /* the request line comes from the caller: bounded here */
            char cut[257];
            gw_events_put_str(o, "method", a->method, &fail);
            if (a->path != NULL) {
                snprintf(cut, sizeof(cut), "%s", a->path);
                gw_events_put_str(o, "path", cut, &fail);
            }
            gw_events_put_str(o, "reason", a->reason, &fail);
            gw_events_put_int(o, "failures", a->failures, &fail);
            if (type == GW_EV_ADMIN_AUTH_BLOCKED)
                gw_events_put_int(o, "blocked_s", a->blocked_s, &fail);
        }
    }
    gw_events_emit(ev, type, sev, o, fail);
}

void gw_events_datapass(gw_events *ev, gw_event_type type, const gw_event_datapass *d)
{
    if (ev == NULL || d == NULL || (type != GW_EV_DATAPASS_WEBHOOK && type != GW_EV_DATAPASS_SYNC))
        return;
    gw_event_severity sev = d->high ? GW_SEV_HIGH : GW_SEV_MEDIUM;
    int fail = 0;
    char cut[512];
    json_t *o = gw_events_record(type, sev, &fail);
    if (o != NULL) {
        gw_events_put_str(o, "outcome", d->outcome, &fail);
        gw_events_put_str(o, "datapass_event", d->event, &fail);
        gw_events_put_str(o, "event_id", d->event_id, &fail);
        gw_events_put_str(o, "habilitation", d->habilitation, &fail);
        gw_events_put_str(o, "environment", d->environment, &fail);
        gw_events_put_str(o, "client_ip", d->client_ip, &fail);
        gw_events_put_str(o, "consumer", d->consumer, &fail);
        gw_events_put_str(o, "contact", d->contact, &fail);
        gw_events_put_str(o, "file", d->file, &fail);
        if (d->detail != NULL) {
            snprintf(cut, sizeof(cut), "%s", d->detail);
            gw_events_put_str(o, "detail", cut, &fail);
        }
        if (type == GW_EV_DATAPASS_SYNC) {
            gw_events_put_int(o, "changed", d->changed, &fail);
            gw_events_put_int(o, "differences", d->differences, &fail);
        }
    }
    gw_events_emit(ev, type, sev, o, fail);
}

void gw_events_policy_rejected(gw_events *ev, const char *by, const char *file, const char *error,
                               int kept)
{
    if (ev == NULL)
        return;
    int fail = 0;
    json_t *o = gw_events_record(GW_EV_POLICY_REJECTED, GW_SEV_HIGH, &fail);
    if (o != NULL) {
        char cut[512];
        gw_events_put_str(o, "by", by, &fail);
        gw_events_put_str(o, "file", file, &fail);
        snprintf(cut, sizeof(cut), "%s", error != NULL ? error : "");
        gw_events_put_str(o, "error", cut, &fail);
        gw_events_put(o, "kept_previous", json_boolean(kept), &fail);
    }
    gw_events_emit(ev, GW_EV_POLICY_REJECTED, GW_SEV_HIGH, o, fail);
}

void gw_events_integrity(gw_events *ev, gw_event_type type, json_t *fields)
{
    gw_event_severity sev = type == GW_EV_JOURNAL_BROKEN    ? GW_SEV_CRITICAL
                            : type == GW_EV_ADMIN_EVENT_ACK ? GW_SEV_MEDIUM
                                                            : GW_SEV_HIGH;
    if (ev == NULL || type < GW_EV_JOURNAL_BROKEN || type > GW_EV_H2_ABUSE) {
        json_decref(fields);
        return;
    }
    int fail = 0;
    json_t *o = gw_events_record(type, sev, &fail);
    if (o != NULL && fields != NULL && json_object_update(o, fields) != 0)
        fail = 1;
    json_decref(fields);
    gw_events_emit(ev, type, sev, o, fail);
}

void gw_events_set_observer(gw_events *ev, const gw_events_observer *o)
{
    if (ev == NULL)
        return;
    pthread_mutex_lock(&ev->obs_mu);
    ev->observer = o;
    pthread_mutex_unlock(&ev->obs_mu);
}

/* ------------------------------------------------------------------------ */
/* Open, close, stats                                                       */
/* ------------------------------------------------------------------------ */

static unsigned dflt(unsigned v, unsigned d)
{
    return v != 0 ? v : d;
}

gw_events *gw_events_open(const gw_events_opts *o, char **err)
{
    if (o == NULL || o->journal.path == NULL || o->journal.raw) {
        if (err)
            *err = strdup("the events stream needs a path and a chained journal");
        return NULL;
    }
    gw_events *ev = calloc(1, sizeof(*ev));
    if (ev == NULL)
        goto oom;
    pthread_mutex_init(&ev->obs_mu, NULL);
    ev->auth_n = dflt(o->auth_threshold, GW_EVENTS_AUTH_THRESHOLD);
    ev->auth_w = 1000ull * dflt(o->auth_window_s, GW_EVENTS_AUTH_WINDOW_S);
    ev->enum_n = dflt(o->enum_distinct, GW_EVENTS_ENUM_DISTINCT);
    ev->enum_w = 1000ull * dflt(o->enum_window_s, GW_EVENTS_ENUM_WINDOW_S);
    ev->storm_n = dflt(o->storm_refusals, GW_EVENTS_STORM_REFUSALS);
    ev->storm_w = 1000ull * dflt(o->storm_window_s, GW_EVENTS_STORM_WINDOW_S);
    ev->expiry_days =
        o->cert_expiry_off ? 0 : dflt(o->cert_expiry_days, GW_EVENTS_CERT_EXPIRY_DAYS);
    size_t subj = o->max_subjects ? o->max_subjects : GW_EVENTS_MAX_SUBJECTS;
    size_t slots = o->max_slots ? o->max_slots : GW_EVENTS_MAX_SLOTS;
    if (gw_subjects_init(&ev->t[GW_EVTAB_AUTH], GW_SUBJECTS_COUNT, ev->auth_n, ev->auth_w, subj,
                         slots) < 0 ||
        gw_subjects_init(&ev->t[GW_EVTAB_UNKNOWN], GW_SUBJECTS_ONCE, 0, 0, subj, slots) < 0 ||
        gw_subjects_init(&ev->t[GW_EVTAB_EXPIRING], GW_SUBJECTS_ONCE, 0, 0, subj, slots) < 0 ||
        gw_subjects_init(&ev->t[GW_EVTAB_ENUM], GW_SUBJECTS_DISTINCT, ev->enum_n, ev->enum_w, subj,
                         slots) < 0 ||
        gw_subjects_init(&ev->t[GW_EVTAB_STORM], GW_SUBJECTS_COUNT, ev->storm_n, ev->storm_w, subj,
                         slots) < 0 ||
        gw_subjects_init(&ev->t[GW_EVTAB_MAINT], GW_SUBJECTS_SLOT, 0, 0, subj, slots) < 0)
        goto oom;
    ev->tables_ok = 1;
    if (gw_subjects_init(&ev->certs, GW_SUBJECTS_SLOT, 0, 0, subj, slots) < 0)
        goto oom;
    ev->certs_ok = 1;
    ev->j = gw_journal_open_opts(&o->journal, err);
    if (ev->j == NULL)
        goto fail;
    if (o->alert_command != NULL && o->alert_command[0]) {
        ev->alerts = gw_alerts_start(o->alert_command, o->alert_min_severity,
                                     dflt(o->alert_max_per_minute, GW_EVENTS_ALERT_PER_MINUTE),
                                     dflt(o->alert_timeout_ms, GW_EVENTS_ALERT_TIMEOUT_MS), err);
        if (ev->alerts == NULL)
            goto fail;
    }
    return ev;
oom:
    if (err)
        *err = strdup("out of memory");
fail:
    gw_events_close(ev);
    return NULL;
}

void gw_events_close(gw_events *ev)
{
    if (ev == NULL)
        return;
    gw_alerts_stop(ev->alerts);
    if (ev->j != NULL)
        gw_journal_close(ev->j);
    if (ev->tables_ok) {
        for (int i = 0; i < GW_EVTAB__COUNT; i++)
            gw_subjects_destroy(&ev->t[i]);
    }
    if (ev->certs_ok)
        gw_subjects_destroy(&ev->certs);
    pthread_mutex_destroy(&ev->obs_mu);
    free(ev);
}

int gw_events_cert_not_after(gw_events *ev, const char *sha256, long long *not_after)
{
    if (ev == NULL || !ev->certs_ok || sha256 == NULL)
        return 0;
    return gw_subjects_mark(&ev->certs, sha256, not_after);
}

void gw_events_reopen(gw_events *ev)
{
    if (ev != NULL)
        gw_journal_reopen(ev->j);
}

gw_journal *gw_events_journal(gw_events *ev)
{
    return ev != NULL ? ev->j : NULL;
}

void gw_events_get_stats(gw_events *ev, gw_events_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (ev == NULL)
        return;
    for (int i = 0; i < GW_EV__COUNT; i++)
        st->by_type[i] = atomic_load(&ev->by_type[i]);
    st->refused = atomic_load(&ev->refused);
    for (int i = 0; i < GW_EVTAB__COUNT; i++) {
        st->tracked += atomic_load(&ev->t[i].tracked);
        st->evicted += atomic_load(&ev->t[i].evicted);
    }
    gw_alerts_stats(ev->alerts, st);
}
