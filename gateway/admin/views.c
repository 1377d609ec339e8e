/* The console's read views (see views.h). */
#include "admin/views.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "journal/verify.h"

json_t *gw_view_time(int64_t t)
{
    if (t <= 0)
        return json_null();
    char iso[32];
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(iso);
}

/* The yyyymmdd of <t> in UTC. */
static int ymd(int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    return (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
}

const char *gw_view_state(const gw_view_ctx *x, const gw_policy *p)
{
    gw_suspension_info info;
    if (gw_suspensions_is_cut(x->susp, gw_env_name(p->env)))
        return "cut";
    if (p->state != GW_HAB_ACTIVE || gw_suspensions_get(x->susp, p->client_id, &info))
        return "suspended";
    if (p->valid_until > 0 && ymd(x->now) > p->valid_until)
        return "expired";
    return "active";
}

void gw_view_by_operator(const char *by, char *out, size_t len)
{
    const char *mark = strstr(by, " (admin API from ");
    size_t n = mark != NULL && by[strlen(by) - 1] == ')' ? (size_t)(mark - by) : strlen(by);
    snprintf(out, len, "%.*s", (int)n, by);
}

json_t *gw_view_partner(const gw_view_ctx *x, const gw_policy *p)
{
    gw_usage_view u = {0, -1, 0};
    if (x->usage != NULL)
        gw_usage_get(x->usage, p->client_id, x->now, &u);
    /* the certificate that expires first, of those presented at a handshake
     * since the start (or, failing that, named by a cert.expiring event) */
    char na[32] = "", best[32] = "";
    for (size_t i = 0; i < p->ncerts; i++) {
        long long t;
        struct tm tm;
        time_t tt;
        if (x->events != NULL && gw_events_cert_not_after(x->events, p->certs[i], &t) &&
            (tt = (time_t)t, gmtime_r(&tt, &tm) != NULL))
            strftime(na, sizeof(na), "%Y-%m-%dT%H:%M:%SZ", &tm);
        else if (x->log == NULL || !gw_eventlog_cert_not_after(x->log, p->certs[i], na))
            continue;
        if (best[0] == '\0' || strcmp(na, best) < 0)
            memcpy(best, na, sizeof(best));
    }
    char until[32] = "";
    if (p->valid_until > 0)
        snprintf(until, sizeof(until), "%04d-%02d-%02dT23:59:59Z", p->valid_until / 10000,
                 p->valid_until / 100 % 100, p->valid_until % 100);
    json_t *susp = json_null();
    gw_suspension_info info;
    if (gw_suspensions_get(x->susp, p->client_id, &info)) {
        char op[128];
        gw_view_by_operator(info.by, op, sizeof(op));
        susp = json_pack("{s:s?,s:o,s:s,s:o,s:s}", "reason", info.reason[0] ? info.reason : NULL,
                         "until", gw_view_time(info.until), "operator", op, "since",
                         gw_view_time(info.since), "source", info.why);
    }
    json_t *quota = json_pack("{s:I,s:I,s:i}", "used", (json_int_t)u.used, "limit",
                              (json_int_t)p->quota_per_minute, "window_s", GW_USAGE_WINDOW_S);
    json_t *o = json_pack(
        "{s:s,s:s?,s:s?,s:s,s:s,s:s,s:o,s:o,s:f,s:o,s:o,s:o}", "client_id", p->client_id,
        "organisation", p->org_name, "siret", p->org_siret, "habilitation", p->id, "environment",
        gw_env_name(p->env), "state", gw_view_state(x, p), "quota", quota, "last_call",
        gw_view_time(u.last_call), "error_rate", u.error_rate < 0 ? 0.0 : u.error_rate,
        "cert_not_after", best[0] ? json_string(best) : json_null(), "habilitation_until",
        until[0] ? json_string(until) : json_null(), "suspension", susp);
    if (o != NULL && p->org_name == NULL)
        json_object_set_new(o, "organisation", json_null());
    return o;
}

json_t *gw_view_partners(const gw_view_ctx *x, const gw_policy_set *ps)
{
    json_t *arr = json_array();
    size_t n = ps != NULL ? gw_policy_set_count(ps) : 0;
    for (size_t i = 0; arr != NULL && i < n; i++)
        json_array_append_new(arr, gw_view_partner(x, gw_policy_set_at(ps, i)));
    return json_pack("{s:o}", "partners", arr);
}

json_t *gw_view_records(const char *path, const char *client_id, size_t max)
{
    json_t *out = json_array();
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (out == NULL || fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        return out;
    }
    off_t size = st.st_size,
          from = size > (off_t)GW_VIEW_TAIL_BYTES ? size - (off_t)GW_VIEW_TAIL_BYTES : 0;
    size_t len = (size_t)(size - from);
    char *buf = malloc(len + 1);
    ssize_t got = buf != NULL ? pread(fd, buf, len, from) : -1;
    close(fd);
    if (got < 0) {
        free(buf);
        return out;
    }
    len = (size_t)got;
    /* a record is a whole line: skip a partial first line when the read
     * started inside the file */
    size_t pos = 0;
    if (from > 0) {
        char *nl = memchr(buf, '\n', len);
        pos = nl != NULL ? (size_t)(nl - buf) + 1 : len;
    }
    char prev_hash[65] = "";
    char needle[200];
    snprintf(needle, sizeof(needle), "\"consumer\":\"%s\"", client_id);
    while (pos < len) {
        char *nl = memchr(buf + pos, '\n', len - pos);
        if (nl == NULL)
            break; /* a line still being written */
        size_t ll = (size_t)(nl - (buf + pos));
        char *line = buf + pos;
        gw_journal_link lk;
        int linked = gw_journal_parse_link(line, ll, &lk) == 0;
        int ok = linked && gw_journal_link_ok(line, &lk) &&
                 (prev_hash[0] == '\0' || strcmp(lk.prev, prev_hash) == 0);
        line[ll] = '\0';
        if (strstr(line, needle) != NULL) {
            json_t *rec = json_loadb(line, ll, 0, NULL);
            if (json_is_object(rec) && json_is_string(json_object_get(rec, "consumer")) &&
                strcmp(json_string_value(json_object_get(rec, "consumer")), client_id) == 0) {
                json_object_set_new(rec, "verified", json_boolean(ok));
                json_array_append_new(out, rec);
                if (json_array_size(out) > max)
                    json_array_remove(out, 0);
            } else {
                json_decref(rec);
            }
        }
        if (linked)
            memcpy(prev_hash, lk.hash, sizeof(prev_hash));
        else
            prev_hash[0] = '\0';
        pos += ll + 1;
    }
    free(buf);
    return out;
}

json_t *gw_view_maintenance(const gw_maint_conf *m, int64_t now)
{
    json_t *slots = json_array();
    json_t *current = json_null(), *next = json_null();
    int64_t t = now - 86400, end = now + (int64_t)GW_VIEW_MAINT_DAYS * 86400;
    t -= t % 60;
    /* slots start and end on whole minutes (docs/configuration.md): testing
     * each minute finds every one */
    while (m != NULL && slots != NULL && t < end) {
        time_t e;
        if (gw_maintenance_active(m, (time_t)t, &e) && (int64_t)e > t) {
            int64_t a = t, b = (int64_t)e;
            /* merge with the slot before when they touch */
            size_t n = json_array_size(slots);
            json_t *last = n > 0 ? json_array_get(slots, n - 1) : NULL;
            json_t *le = last != NULL ? json_object_get(last, "end") : NULL;
            json_t *at = gw_view_time(a);
            if (le != NULL && json_equal(le, at)) {
                json_object_set_new(last, "end", gw_view_time(b));
                json_decref(at);
            } else if (b > now) {
                json_array_append_new(slots,
                                      json_pack("{s:o,s:o}", "start", at, "end", gw_view_time(b)));
            } else {
                json_decref(at);
            }
            t = b;
        } else {
            t += 60;
        }
    }
    /* current: the slot holding now; next: the first starting after now */
    char nows[32];
    time_t nt = (time_t)now;
    struct tm tm;
    gmtime_r(&nt, &tm);
    strftime(nows, sizeof(nows), "%Y-%m-%dT%H:%M:%SZ", &tm);
    for (size_t i = 0; slots != NULL && i < json_array_size(slots); i++) {
        json_t *s = json_array_get(slots, i);
        const char *a = json_string_value(json_object_get(s, "start"));
        const char *b = json_string_value(json_object_get(s, "end"));
        if (strcmp(a, nows) <= 0 && strcmp(nows, b) < 0 && json_is_null(current)) {
            json_decref(current);
            current = json_deep_copy(s);
        } else if (strcmp(a, nows) > 0 && json_is_null(next)) {
            json_decref(next);
            next = json_deep_copy(s);
        }
    }
    const char *tz = m != NULL && m->tz == GW_TZ_UTC ? "UTC" : "Europe/Paris";
    return json_pack("{s:s,s:o,s:o,s:o}", "timezone", tz, "slots", slots, "current", current,
                     "next", next);
}
