/*
 * The detectors of the security events. A worker reports what happened;
 * the detector updates the subject under its stripe lock (journal/
 * subjects.h), decides, and unlocks before the record is formatted and
 * queued.
 *
 *   auth.failures, quota.storm: counting tables (N within the window);
 *   siren.enumeration: a distinct table (N SIRENs within the window);
 *   cert.unknown, cert.expiring: once per period per subject;
 *   maintenance.access: once per maintenance slot per subject.
 *
 * A subject that fired is silent until a full window after it fired ("once
 * per window per subject"); a new record then needs the threshold reached
 * again within the window.
 */
#include "journal/events_int.h"

#include <stdio.h>
#include <string.h>

#include "lib/civil.h"
#include "lib/hash.h"

#define KEY_MAX 200
#define HOUR_MS 3600000ull
#define DAY_MS 86400000ull
#define EXPIRY_HIGH_DAYS 7 /* cert.expiring is "high" from this close */

/* Counting detector on <key>; 1 when the subject fires now (threshold
 * reached, silent period over), with the count in <*count>. */
static int count_fire(gw_events *ev, gw_subjects *t, const char *key, uint32_t *count)
{
    gw_subject_stripe *s;
    int fire = 0;
    gw_subject *e = gw_subjects_lock(t, key, &s);
    uint64_t now = gw_events_now(ev);
    if (e != NULL) {
        uint32_t n = gw_subjects_count(t, s, e, now);
        if (n >= t->ring && now >= e->next_ok) {
            e->next_ok = now + t->window_ms;
            fire = 1;
            *count = n;
        }
    }
    gw_subjects_unlock(s);
    return fire;
}

/* Once-per-period detector: 1 when <key> was not reported in the last
 * <period_ms>. */
static int once_fire(gw_events *ev, gw_subjects *t, const char *key, uint64_t period_ms)
{
    gw_subject_stripe *s;
    int fire = 0;
    gw_subject *e = gw_subjects_lock(t, key, &s);
    uint64_t now = gw_events_now(ev);
    if (e != NULL && now >= e->next_ok) {
        e->next_ok = now + period_ms;
        fire = 1;
    }
    gw_subjects_unlock(s);
    return fire;
}

static void auth_failure(gw_events *ev, const char *what, const char *value, const char *reason,
                         const char *client_ip, const char *cert, const char *subject)
{
    char key[KEY_MAX];
    uint32_t n = 0;
    snprintf(key, sizeof(key), "%s:%s", what, value);
    if (!count_fire(ev, &ev->t[GW_EVTAB_AUTH], key, &n))
        return;
    int fail = 0;
    json_t *o = gw_events_record(GW_EV_AUTH_FAILURES, GW_SEV_HIGH, &fail);
    if (o != NULL) {
        gw_events_put_str(o, "subject", what, &fail);
        gw_events_put_str(o, "client_ip", client_ip, &fail);
        gw_events_put_str(o, "cert_sha256", cert, &fail);
        gw_events_put_str(o, "cert_subject", subject, &fail);
        gw_events_put_int(o, "failures", n, &fail);
        gw_events_put_int(o, "threshold", ev->auth_n, &fail);
        gw_events_put_int(o, "window_s", (long long)(ev->auth_w / 1000), &fail);
        gw_events_put_str(o, "last_reason", reason, &fail);
    }
    gw_events_emit(ev, GW_EV_AUTH_FAILURES, GW_SEV_HIGH, o, fail);
}

/* One authentication failure: counted for the IP and for the certificate. */
static void auth_failed(gw_events *ev, const char *ip, const char *cert, const char *subject,
                        const char *reason)
{
    if (ip != NULL && ip[0])
        auth_failure(ev, "ip", ip, reason, ip, cert, subject);
    if (cert != NULL && cert[0])
        auth_failure(ev, "cert", cert, reason, ip, cert, subject);
}

static void cert_unknown(gw_events *ev, const gw_event_request *r)
{
    if (r->cert_sha256 == NULL || !once_fire(ev, &ev->t[GW_EVTAB_UNKNOWN], r->cert_sha256, HOUR_MS))
        return;
    int fail = 0;
    json_t *o = gw_events_record(GW_EV_CERT_UNKNOWN, GW_SEV_MEDIUM, &fail);
    if (o != NULL) {
        gw_events_put_str(o, "cert_sha256", r->cert_sha256, &fail);
        gw_events_put_str(o, "cert_subject", r->cert_subject, &fail);
        gw_events_put_str(o, "client_ip", r->client_ip, &fail);
        gw_events_put_str(o, "reason", r->reason, &fail);
    }
    gw_events_emit(ev, GW_EV_CERT_UNKNOWN, GW_SEV_MEDIUM, o, fail);
}

static void enumeration(gw_events *ev, const gw_event_request *r)
{
    gw_subjects *t = &ev->t[GW_EVTAB_ENUM];
    gw_subject_stripe *s;
    uint32_t n = 0;
    int fire = 0;
    gw_subject *e = gw_subjects_lock(t, r->consumer, &s);
    uint64_t now = gw_events_now(ev);
    if (e != NULL) {
        n = gw_subjects_distinct(t, s, e, gw_fnv1a64_str(r->siren), now);
        if (n >= t->ring && now >= e->next_ok) {
            e->next_ok = now + t->window_ms;
            fire = 1;
        }
    }
    gw_subjects_unlock(s);
    if (!fire)
        return;
    int fail = 0;
    json_t *o = gw_events_record(GW_EV_SIREN_ENUMERATION, GW_SEV_HIGH, &fail);
    if (o != NULL) {
        gw_events_put_str(o, "consumer", r->consumer, &fail);
        gw_events_put_str(o, "habilitation", r->habilitation, &fail);
        gw_events_put_str(o, "contact", r->contact, &fail);
        gw_events_put_str(o, "client_ip", r->client_ip, &fail);
        gw_events_put_str(o, "cert_sha256", r->cert_sha256, &fail);
        gw_events_put_int(o, "distinct_sirens", n, &fail);
        gw_events_put_int(o, "threshold", ev->enum_n, &fail);
        gw_events_put_int(o, "window_s", (long long)(ev->enum_w / 1000), &fail);
        gw_events_put_str(o, "last_siren", r->siren, &fail);
    }
    gw_events_emit(ev, GW_EV_SIREN_ENUMERATION, GW_SEV_HIGH, o, fail);
}

static void quota_storm(gw_events *ev, const gw_event_request *r)
{
    uint32_t n = 0;
    if (!count_fire(ev, &ev->t[GW_EVTAB_STORM], r->habilitation, &n))
        return;
    int fail = 0;
    json_t *o = gw_events_record(GW_EV_QUOTA_STORM, GW_SEV_MEDIUM, &fail);
    if (o != NULL) {
        gw_events_put_str(o, "habilitation", r->habilitation, &fail);
        gw_events_put_str(o, "contact", r->contact, &fail);
        gw_events_put_str(o, "consumer", r->consumer, &fail);
        gw_events_put_str(o, "client_ip", r->client_ip, &fail);
        gw_events_put_int(o, "refusals", n, &fail);
        gw_events_put_int(o, "threshold", ev->storm_n, &fail);
        gw_events_put_int(o, "window_s", (long long)(ev->storm_w / 1000), &fail);
    }
    gw_events_emit(ev, GW_EV_QUOTA_STORM, GW_SEV_MEDIUM, o, fail);
}

static void maintenance(gw_events *ev, const gw_event_request *r)
{
    char key[KEY_MAX];
    if (r->consumer != NULL)
        snprintf(key, sizeof(key), "consumer:%s", r->consumer);
    else if (r->cert_sha256 != NULL)
        snprintf(key, sizeof(key), "cert:%s", r->cert_sha256);
    else if (r->client_ip != NULL)
        snprintf(key, sizeof(key), "ip:%s", r->client_ip);
    else
        return;
    gw_subject_stripe *s;
    int fire = 0;
    gw_subject *e = gw_subjects_lock(&ev->t[GW_EVTAB_MAINT], key, &s);
    if (e != NULL && e->mark != r->maintenance_until) {
        e->mark = r->maintenance_until;
        fire = 1;
    }
    gw_subjects_unlock(s);
    if (!fire)
        return;
    char until[32];
    gw_events_iso(r->maintenance_until, until);
    int fail = 0;
    json_t *o = gw_events_record(GW_EV_MAINTENANCE_ACCESS, GW_SEV_LOW, &fail);
    if (o != NULL) {
        gw_events_put_str(o, "consumer", r->consumer, &fail);
        gw_events_put_str(o, "habilitation", r->habilitation, &fail);
        gw_events_put_str(o, "contact", r->contact, &fail);
        gw_events_put_str(o, "client_ip", r->client_ip, &fail);
        gw_events_put_str(o, "cert_sha256", r->cert_sha256, &fail);
        gw_events_put_str(o, "slot_end", until, &fail);
    }
    gw_events_emit(ev, GW_EV_MAINTENANCE_ACCESS, GW_SEV_LOW, o, fail);
}

/*
 * Expiry ahead of time, one mechanism for certificates and habilitations:
 * <subject> expires in <left> seconds; <milestones> are day counts in
 * decreasing order. Returns the smallest milestone that <left> is below
 * when it has not been reported for <subject> within <repeat_ms> (so once
 * per milestone and subject for a long <repeat_ms>, daily for a day), else
 * 0. Certificates: one milestone, cert_expiry_days, daily. Habilitations:
 * 90, 30 and 7 days (the annex's three months ahead), once each.
 */
static unsigned expiry_due(gw_events *ev, gw_subjects *t, const char *subject, long long left,
                           const unsigned *milestones, size_t n, uint64_t repeat_ms)
{
    unsigned m = 0;
    if (left <= 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (left < (long long)milestones[i] * 86400)
            m = milestones[i];
    if (m == 0)
        return 0;
    char key[KEY_MAX];
    snprintf(key, sizeof(key), "%s#%u", subject, m);
    return once_fire(ev, t, key, repeat_ms) ? m : 0;
}

static const unsigned hab_milestones[] = {90, 30, 7};
#define HAB_REPEAT_MS (400ull * DAY_MS) /* once per milestone: longer than any of them */

static void habilitation_expiring(gw_events *ev, const gw_event_request *r)
{
    int y = r->valid_until / 10000, mo = r->valid_until / 100 % 100, d = r->valid_until % 100;
    /* valid through its last day: it expires at the next midnight (UTC) */
    long long end = (gw_days_from_civil(y, (unsigned)mo, (unsigned)d) + 1) * 86400LL;
    long long left = end - gw_events_wall(ev);
    unsigned m = expiry_due(ev, &ev->t[GW_EVTAB_EXPIRING], r->habilitation, left, hab_milestones,
                            sizeof(hab_milestones) / sizeof(hab_milestones[0]), HAB_REPEAT_MS);
    if (m == 0)
        return;
    gw_event_severity sev = m <= EXPIRY_HIGH_DAYS ? GW_SEV_HIGH : GW_SEV_MEDIUM;
    char until[32];
    snprintf(until, sizeof(until), "%04d-%02d-%02d", y, mo, d);
    int fail = 0;
    json_t *o = gw_events_record(GW_EV_HABILITATION_EXPIRING, sev, &fail);
    if (o != NULL) {
        gw_events_put_str(o, "habilitation", r->habilitation, &fail);
        gw_events_put_str(o, "contact", r->contact, &fail);
        gw_events_put_str(o, "consumer", r->consumer, &fail);
        gw_events_put_str(o, "valid_until", until, &fail);
        gw_events_put_int(o, "days_left", left / 86400, &fail);
        gw_events_put_int(o, "threshold_days", m, &fail);
    }
    gw_events_emit(ev, GW_EV_HABILITATION_EXPIRING, sev, o, fail);
}

void gw_events_request(gw_events *ev, const gw_event_request *r)
{
    if (ev == NULL || r == NULL)
        return;
    if (r->auth_failure)
        auth_failed(ev, r->client_ip, r->cert_sha256, r->cert_subject, r->reason);
    if (r->cert_unknown)
        cert_unknown(ev, r);
    if (r->consumer != NULL && r->siren != NULL && r->siren[0])
        enumeration(ev, r);
    if (r->throttled && r->habilitation != NULL)
        quota_storm(ev, r);
    if (r->maintenance_until > 0)
        maintenance(ev, r);
    if (r->habilitation != NULL && r->valid_until > 0)
        habilitation_expiring(ev, r);
}

void gw_events_handshake(gw_events *ev, const gw_event_handshake *hs)
{
    if (ev == NULL || hs == NULL)
        return;
    if (hs->refused != NULL) {
        auth_failed(ev, hs->client_ip, hs->cert_sha256, hs->cert_subject, hs->refused);
        return;
    }
    if (ev->certs_ok && hs->cert_sha256 != NULL && hs->not_after > 0) {
        gw_subject_stripe *s;
        gw_subject *e = gw_subjects_lock(&ev->certs, hs->cert_sha256, &s);
        if (e != NULL)
            e->mark = hs->not_after;
        gw_subjects_unlock(s);
    }
    if (ev->expiry_days == 0 || hs->cert_sha256 == NULL || hs->not_after <= 0)
        return;
    long long now = gw_events_wall(ev);
    long long left = hs->not_after - now;
    if (expiry_due(ev, &ev->t[GW_EVTAB_EXPIRING], hs->cert_sha256, left, &ev->expiry_days, 1,
                   DAY_MS) == 0)
        return;
    long long days = left / 86400;
    gw_event_severity sev = days < EXPIRY_HIGH_DAYS ? GW_SEV_HIGH : GW_SEV_MEDIUM;
    char na[32];
    gw_events_iso(hs->not_after, na);
    int fail = 0;
    json_t *o = gw_events_record(GW_EV_CERT_EXPIRING, sev, &fail);
    if (o != NULL) {
        gw_events_put_str(o, "cert_sha256", hs->cert_sha256, &fail);
        gw_events_put_str(o, "cert_subject", hs->cert_subject, &fail);
        gw_events_put_str(o, "client_ip", hs->client_ip, &fail);
        gw_events_put_str(o, "not_after", na, &fail);
        gw_events_put_int(o, "days_left", days, &fail);
        gw_events_put_int(o, "threshold_days", ev->expiry_days, &fail);
    }
    gw_events_emit(ev, GW_EV_CERT_EXPIRING, sev, o, fail);
}
