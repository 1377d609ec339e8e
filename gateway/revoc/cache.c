#include "revoc/cache.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

#define MIN_GAP_S 5
#define MAX_BACKOFF_S 300

gw_rv_state gw_rv_decide(const gw_rv_status *s, time_t now, unsigned refresh_s)
{
    if (s->answer == GW_RV_ANS_NONE)
        return GW_RV_UNAVAILABLE;
    if (s->answer == GW_RV_ANS_REVOKED)
        return GW_RV_REVOKED;
    if (s->next_update != 0) {
        if (now > s->next_update + GW_RV_LEEWAY_S)
            return GW_RV_STALE;
    } else if (now > s->fetched_at + 2 * (time_t)refresh_s) {
        return GW_RV_STALE;
    }
    return s->answer == GW_RV_ANS_GOOD ? GW_RV_GOOD : GW_RV_UNKNOWN;
}

gw_rv_verdict gw_rv_policy(gw_rv_state st, gw_ocsp_mode mode, const char **reason)
{
    static const char *const reasons[] = {
        [GW_RV_GOOD] = NULL,
        [GW_RV_REVOKED] = "tls.ocsp_revoked",
        [GW_RV_UNKNOWN] = "tls.ocsp_unknown",
        [GW_RV_STALE] = "tls.ocsp_stale",
        [GW_RV_UNAVAILABLE] = "tls.ocsp_unavailable",
    };
    *reason = NULL;
    if (mode == GW_OCSP_OFF || st == GW_RV_GOOD)
        return GW_RV_ACCEPT;
    *reason = reasons[st];
    if (st == GW_RV_REVOKED || mode == GW_OCSP_HARD)
        return GW_RV_REFUSE;
    return GW_RV_ACCEPT_SOFT;
}

const char *gw_rv_state_name(gw_rv_state st)
{
    static const char *const names[] = {"good", "revoked", "unknown", "stale", "unavailable"};
    return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "unavailable";
}

static time_t min_t(time_t a, time_t b)
{
    return a < b ? a : b;
}

static time_t backoff(unsigned failures, time_t base, time_t cap)
{
    time_t d = base;
    for (unsigned i = 1; i < failures && d < cap; i++)
        d *= 2;
    return min_t(d, cap);
}

time_t gw_rv_next_fetch(const gw_rv_status *s, time_t now, unsigned refresh_s, int failed)
{
    time_t cap = min_t((time_t)refresh_s, MAX_BACKOFF_S);
    if (cap < MIN_GAP_S)
        cap = MIN_GAP_S;
    if (failed)
        return now + backoff(s->failures, MIN_GAP_S, cap);
    time_t at = now + (time_t)refresh_s;
    if (s->next_update != 0 && s->answer != GW_RV_ANS_REVOKED) {
        time_t life = s->next_update - s->this_update;
        time_t margin = life > 0 ? min_t(life / 10, 300) : 0;
        at = min_t(at, s->next_update - margin);
    }
    return at < now + MIN_GAP_S ? now + MIN_GAP_S : at;
}

gw_crl_state gw_crl_decide(time_t next_update, time_t now, unsigned grace_s)
{
    if (next_update == 0 || now <= next_update)
        return GW_CRL_CURRENT;
    return now <= next_update + (time_t)grace_s ? GW_CRL_GRACE : GW_CRL_EXPIRED;
}

time_t gw_crl_next_fetch(time_t next_update, time_t now, unsigned fetch_s, unsigned failures)
{
    time_t at;
    if (failures > 0) {
        at = now + backoff(failures, 30, fetch_s > 30 ? (time_t)fetch_s : 30);
    } else {
        at = now + (time_t)fetch_s;
        if (next_update > now)
            at = min_t(at, next_update);
    }
    return at < now + MIN_GAP_S ? now + MIN_GAP_S : at;
}

/* ---- the table ---- */

static size_t hash_fp(const unsigned char fp[32])
{
    uint64_t h;
    memcpy(&h, fp, sizeof(h)); /* a SHA-256 is already uniform */
    return (size_t)h;
}

long gw_rv_table_find(const gw_rv_table *t, const unsigned char fp[32])
{
    if (t->nslots == 0)
        return -1;
    for (size_t i = hash_fp(fp) & (t->nslots - 1);; i = (i + 1) & (t->nslots - 1)) {
        long k = t->slots[i];
        if (k < 0)
            return -1;
        if (memcmp(t->keys[k], fp, 32) == 0)
            return k;
    }
}

static void place(gw_rv_table *t, long k)
{
    size_t i = hash_fp(t->keys[k]) & (t->nslots - 1);
    while (t->slots[i] >= 0)
        i = (i + 1) & (t->nslots - 1);
    t->slots[i] = k;
}

long gw_rv_table_add(gw_rv_table *t, const unsigned char fp[32])
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        void *k = realloc(t->keys, cap * sizeof(*t->keys));
        if (k == NULL)
            return -1;
        t->keys = k;
        t->cap = cap;
    }
    if (2 * (t->n + 1) >= t->nslots) {
        size_t ns = t->nslots ? t->nslots * 2 : 64;
        long *s = malloc(ns * sizeof(*s));
        if (s == NULL)
            return -1;
        for (size_t i = 0; i < ns; i++)
            s[i] = -1;
        free(t->slots);
        t->slots = s;
        t->nslots = ns;
        for (size_t k = 0; k < t->n; k++)
            place(t, (long)k);
    }
    memcpy(t->keys[t->n], fp, 32);
    place(t, (long)t->n);
    return (long)t->n++;
}

void gw_rv_table_free(gw_rv_table *t)
{
    free(t->keys);
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

int gw_rv_fp_from_hex(const char *hex, unsigned char fp[32])
{
    for (size_t i = 0; i < 32; i++) {
        int hi = gw_hexval((unsigned char)hex[2 * i]);
        int lo = hi < 0 ? -1 : gw_hexval((unsigned char)hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        fp[i] = (unsigned char)(hi << 4 | lo);
    }
    return hex[64] == '\0' ? 0 : -1;
}
