/* maintenance: during a configured slot every guarded route answers 503 with
 * Retry-After pointing at the slot's end; etatSante (the route without scope)
 * answers it too, with a body that reports the slot, without reaching the
 * backend. Needs route (the scope). Its result: the slot's end.
 *
 * Its settings, "access.maintenance":
 *   {"timezone": "Europe/Paris", "force": false,
 *    "slots": [{"daily": "02:00-03:00"},
 *              {"from": "2026-12-24T23:00", "until": "2026-12-25T00:00"}]}
 * The CGU allow 2 hours of maintenance a night (23:00-06:00 local): each slot
 * must lie in that band, and the slots of one night (the daily ones plus the
 * dated ones of that night, overlaps counted once) must not exceed 2 hours,
 * unless "force" is true. The time zone is also the gateway's "today" (the
 * habilitation's validity dates, gw_stage_lists_tz). */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stages/stages.h"

static const char *const needs[] = {"route", NULL};

/* CGU: one maintenance slot placed between 23:00 and 06:00, two hours long. */
#define BAND_START (23 * 60)
#define BAND_END (6 * 60)
#define MAX_SLOT_MIN 120
#define NIGHT_MIN ((BAND_END - BAND_START + 1440) % 1440) /* 420 minutes, 23:00-06:00 */

static int parse_hhmm(const char *s, int *min)
{
    if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) || s[2] != ':' ||
        !isdigit((unsigned char)s[3]) || !isdigit((unsigned char)s[4]))
        return -1;
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    if (h > 23 || m > 59)
        return -1;
    *min = h * 60 + m;
    return 0;
}

/* "YYYY-MM-DDTHH:MM" as local seconds (seconds since epoch as if UTC). */
static int parse_local(const char *s, long *out, int *minute_of_day)
{
    int y, mo, d, h, mi;
    char tail;
    if (strlen(s) != 16 || sscanf(s, "%4d-%2d-%2dT%2d:%2d%c", &y, &mo, &d, &h, &mi, &tail) != 5)
        return -1;
    if (s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':')
        return -1;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 2000 || y > 2200 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 ||
        mi > 59)
        return -1;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap)
        return -1;
    *out = gw_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400L + h * 3600L + mi * 60L;
    *minute_of_day = h * 60 + mi;
    return 0;
}

static int in_band(int start, int end)
{
    /* the whole [start, end) must lie within 23:00-06:00 */
    int s = (start - BAND_START + 1440) % 1440; /* minutes after 23:00 */
    int len = (end - start + 1440) % 1440;
    int band_len = (BAND_END - BAND_START + 1440) % 1440; /* 420 */
    return len > 0 && s + len <= band_len;
}

/* Minutes of [start, end) (minutes of the day, may cross midnight) marked in
 * <night>, indexed by minutes after 23:00; only for slots within the band. */
static void mark_night(unsigned char night[NIGHT_MIN], int start, int end)
{
    int s = (start - BAND_START + 1440) % 1440, len = (end - start + 1440) % 1440;
    for (int i = s; i < s + len && i < NIGHT_MIN; i++)
        night[i] = 1;
}

static int night_total(const unsigned char night[NIGHT_MIN])
{
    int n = 0;
    for (int i = 0; i < NIGHT_MIN; i++)
        n += night[i];
    return n;
}

/* The CGU's budget is per night: overlapping slots count once, and a dated
 * slot adds to the daily ones of its night. Every slot is known to lie in
 * the band (<s->slots[i]> is the JSON's slots[i]). The first slot that takes
 * a night past MAX_SLOT_MIN is named, with the night's total. */
static void check_nights(gw_jsonv *jv, const gw_maint_conf *s)
{
    static const char rule[] = "; the CGU allow at most 2 hours a night (23:00-06:00), unless "
                               "maintenance.force is true";
    unsigned char daily[NIGHT_MIN], night[NIGHT_MIN];
    char p[96], msg[256];
    size_t first = SIZE_MAX;

    memset(daily, 0, sizeof(daily));
    for (size_t i = 0; i < s->nslots; i++) {
        if (!s->slots[i].daily)
            continue;
        mark_night(daily, s->slots[i].start_min, s->slots[i].end_min);
        if (first == SIZE_MAX && night_total(daily) > MAX_SLOT_MIN)
            first = i;
    }
    if (first != SIZE_MAX) {
        snprintf(p, sizeof(p), "access.maintenance.slots[%zu].daily", first);
        snprintf(msg, sizeof(msg), "the daily slots take %d minutes a night%s", night_total(daily),
                 rule);
        gw_jsonv_err(jv, p, "%s", msg);
        return;
    }
    for (size_t i = 0; i < s->nslots; i++) {
        const gw_maint_slot *si = &s->slots[i];
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = !s->slots[j].daily && s->slots[j].night == si->night;
        if (si->daily || seen)
            continue;
        memcpy(night, daily, sizeof(night));
        first = SIZE_MAX;
        for (size_t j = i; j < s->nslots; j++) {
            if (s->slots[j].daily || s->slots[j].night != si->night)
                continue;
            mark_night(night, s->slots[j].start_min, s->slots[j].end_min);
            if (first == SIZE_MAX && night_total(night) > MAX_SLOT_MIN)
                first = j;
        }
        if (first == SIZE_MAX)
            continue;
        struct tm tm;
        time_t day = (time_t)(si->night * 86400L);
        gmtime_r(&day, &tm);
        snprintf(p, sizeof(p), "access.maintenance.slots[%zu]", first);
        snprintf(msg, sizeof(msg),
                 "the night of %04d-%02d-%02d has %d minutes of maintenance (daily slots "
                 "included)%s",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, night_total(night), rule);
        gw_jsonv_err(jv, p, "%s", msg);
    }
}

static void parse_maintenance(gw_jsonv *jv, json_t *m, gw_maint_conf *s)
{
    static const char *const keys[] = {"timezone", "force", "slots", NULL};
    if (!json_is_object(m)) {
        gw_jsonv_err(jv, "access.maintenance", "%s", "must be an object");
        return;
    }
    gw_jsonv_keys(jv, m, "access.maintenance", keys);
    json_t *v = json_object_get(m, "timezone");
    if (v != NULL) {
        if (json_is_string(v) && strcmp(json_string_value(v), "Europe/Paris") == 0)
            s->tz = GW_TZ_PARIS;
        else if (json_is_string(v) && strcmp(json_string_value(v), "UTC") == 0)
            s->tz = GW_TZ_UTC;
        else
            gw_jsonv_err(jv, "access.maintenance.timezone", "%s",
                         "must be \"Europe/Paris\" or \"UTC\"");
    }
    v = json_object_get(m, "force");
    if (v != NULL) {
        if (json_is_boolean(v))
            s->force = json_is_true(v);
        else
            gw_jsonv_err(jv, "access.maintenance.force", "%s", "must be a boolean");
    }
    json_t *slots = json_object_get(m, "slots");
    if (slots == NULL)
        return;
    if (!json_is_array(slots) || json_array_size(slots) > 64) {
        gw_jsonv_err(jv, "access.maintenance.slots", "%s", "must be an array of at most 64 slots");
        return;
    }
    s->slots = calloc(json_array_size(slots) + 1, sizeof(*s->slots));
    if (s->slots == NULL) {
        gw_jsonv_err(jv, "access.maintenance.slots", "%s", "out of memory");
        return;
    }
    size_t i;
    json_t *sl;
    json_array_foreach(slots, i, sl)
    {
        char p[128], pk[160];
        snprintf(p, sizeof(p), "access.maintenance.slots[%zu]", i);
        static const char *const skeys[] = {"daily", "from", "until", NULL};
        if (!json_is_object(sl)) {
            gw_jsonv_err(jv, p, "%s", "must be an object");
            continue;
        }
        size_t before = jv->nerrs;
        gw_jsonv_keys(jv, sl, p, skeys);
        if (jv->nerrs > before)
            continue;
        gw_maint_slot *ms = &s->slots[s->nslots];
        json_t *daily = json_object_get(sl, "daily");
        json_t *from = json_object_get(sl, "from"), *until = json_object_get(sl, "until");
        if (daily != NULL && (from != NULL || until != NULL)) {
            gw_jsonv_err(jv, p, "%s", "either \"daily\" or \"from\"/\"until\", not both");
            continue;
        }
        if (daily != NULL) {
            snprintf(pk, sizeof(pk), "%s.daily", p);
            const char *d = json_string_value(daily);
            if (d == NULL || strlen(d) != 11 || d[5] != '-' || parse_hhmm(d, &ms->start_min) ||
                parse_hhmm(d + 6, &ms->end_min) || ms->start_min == ms->end_min) {
                gw_jsonv_err(jv, pk, "%s", "must be \"HH:MM-HH:MM\" with different times");
                continue;
            }
            int len = (ms->end_min - ms->start_min + 1440) % 1440;
            if (!s->force && (!in_band(ms->start_min, ms->end_min) || len > MAX_SLOT_MIN)) {
                gw_jsonv_err(jv, pk, "%s",
                             "must lie within 23:00-06:00 and last at most 2 hours (CGU), "
                             "unless maintenance.force is true");
                continue;
            }
            ms->daily = 1;
            s->nslots++;
            continue;
        }
        if (from == NULL || until == NULL) {
            gw_jsonv_err(jv, p, "%s", "missing key \"daily\" or \"from\"+\"until\"");
            continue;
        }
        long lf = 0, lu = 0;
        int mf = 0, mu = 0;
        snprintf(pk, sizeof(pk), "%s.from", p);
        if (!json_is_string(from) || parse_local(json_string_value(from), &lf, &mf)) {
            gw_jsonv_err(jv, pk, "%s", "must be a local date-time \"YYYY-MM-DDTHH:MM\"");
            continue;
        }
        snprintf(pk, sizeof(pk), "%s.until", p);
        if (!json_is_string(until) || parse_local(json_string_value(until), &lu, &mu)) {
            gw_jsonv_err(jv, pk, "%s", "must be a local date-time \"YYYY-MM-DDTHH:MM\"");
            continue;
        }
        if (lu <= lf) {
            gw_jsonv_err(jv, pk, "%s", "must be after \"from\"");
            continue;
        }
        if (!s->force && (lu - lf > MAX_SLOT_MIN * 60 || !in_band(mf, mu))) {
            gw_jsonv_err(jv, p, "%s",
                         "must lie within 23:00-06:00 and last at most 2 hours (CGU), "
                         "unless maintenance.force is true");
            continue;
        }
        /* local -> UTC with the offset in force an hour before (the slots sit
         * in the night band, away from the 02:00/03:00 switch in practice) */
        ms->from = (time_t)(lf - gw_tz_offset(s->tz, (time_t)(lf - 3600)));
        ms->until = (time_t)(lu - gw_tz_offset(s->tz, (time_t)(lu - 3600)));
        ms->start_min = mf;
        ms->end_min = mu;
        /* the night is named by its evening: 01:00 belongs to the day before */
        ms->night = lf / 86400 - (mf < BAND_START ? 1 : 0);
        s->nslots++;
    }
    if (!s->force && s->nslots == json_array_size(slots))
        check_nights(jv, s);
}

int gw_maintenance_active(const gw_maint_conf *s, time_t now, time_t *end)
{
    long off = gw_tz_offset(s->tz, now);
    long local = (long)now + off;
    long day_start = local - ((local % 86400) + 86400) % 86400;
    int m = (int)((local - day_start) / 60);
    for (size_t i = 0; i < s->nslots; i++) {
        const gw_maint_slot *sl = &s->slots[i];
        if (!sl->daily) {
            if (now >= sl->from && now < sl->until) {
                *end = sl->until;
                return 1;
            }
            continue;
        }
        long end_local;
        if (sl->start_min < sl->end_min) {
            if (m < sl->start_min || m >= sl->end_min)
                continue;
            end_local = day_start + sl->end_min * 60L;
        } else if (m >= sl->start_min) {
            end_local = day_start + 86400L + sl->end_min * 60L;
        } else if (m < sl->end_min) {
            end_local = day_start + sl->end_min * 60L;
        } else {
            continue;
        }
        *end = (time_t)(end_local - off);
        return 1;
    }
    return 0;
}

static void free_conf(void *p)
{
    gw_maint_conf *s = p;
    if (s == NULL)
        return;
    free(s->slots);
    free(s);
}

static int parse(const gw_conf *c, json_t *m, gw_jsonv *jv, void **out)
{
    (void)c;
    size_t before = jv->nerrs;
    gw_maint_conf *s = gw_jsonv_calloc(jv, "access.maintenance", 1, sizeof(*s));
    *out = s;
    if (s == NULL)
        return -1;
    if (m != NULL)
        parse_maintenance(jv, m, s);
    return jv->nerrs > before ? -1 : 0;
}

gw_tz gw_stage_lists_tz(const gw_stage_lists *l)
{
    const gw_maint_conf *m = gw_stage_lists_conf(l, &gw_stage_maintenance);
    return m != NULL ? m->tz : GW_TZ_PARIS;
}

static gw_verdict run(const gw_stage_call *c)
{
    const gw_maint_conf *m = c->conf;
    gw_maintenance_out *o = c->out;
    time_t now = c->req->now, end = 0;
    if (m == NULL || !gw_maintenance_active(m, now, &end))
        return GW_STAGE_NEXT;
    o->active = 1;
    o->until = end;
    long secs = (long)(end - now);
    if (secs < 1)
        secs = 1;
    if (secs > 31 * 86400L)
        secs = 31 * 86400L;
    snprintf(o->retry_after, sizeof(o->retry_after), "%d", (int)secs);
    gw_reply_header(c->reply, "Retry-After", o->retry_after);
    if (c->res->route.route->scope == NULL) {
        char until[64];
        time_t local = end + gw_tz_offset(m->tz, end);
        struct tm tm;
        gmtime_r(&local, &tm);
        int off = (int)(gw_tz_offset(m->tz, end) / 60);
        snprintf(until, sizeof(until), "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 off < 0 ? '-' : '+', abs(off) / 60 % 100, abs(off) % 60);
        o->body = malloc(256);
        if (o->body != NULL) {
            snprintf(o->body, 256,
                     "{\"message\":\"L'API est en maintenance programmée\","
                     "\"maintenance\":{\"fin\":\"%s\",\"retryAfter\":%d}}",
                     until, (int)secs);
            c->reply->body = o->body;
            c->reply->status = 503;
        }
    }
    return gw_reply_reject(c->reply, GW_ERR_MAINTENANCE, NULL);
}

static void done(const gw_stage_call *c)
{
    gw_maintenance_out *o = c->out;
    free(o->body); /* the reply that pointed at it is on the wire */
    o->body = NULL;
}

const gw_stage gw_stage_maintenance = {
    .name = "maintenance",
    .needs = needs,
    .out = offsetof(gw_results, maintenance),
    .key = "maintenance",
    .parse = parse,
    .free_conf = free_conf,
    .run = run,
    .done = done,
};
