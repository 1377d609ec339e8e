/*
 * Interval sets, Paris days, maintenance calendar (calendar.h).
 */
#include "evidence/calendar.h"

#include <stdlib.h>

int gw_ivals_add(gw_ivals *s, int64_t a, int64_t b)
{
    if (b <= a)
        return 0;
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 16;
        gw_ival *nv = realloc(s->v, nc * sizeof(*nv));
        if (nv == NULL)
            return -1;
        s->v = nv;
        s->cap = nc;
    }
    s->v[s->n].a = a;
    s->v[s->n].b = b;
    s->n++;
    return 0;
}

static int cmp_ival(const void *pa, const void *pb)
{
    const gw_ival *x = pa, *y = pb;
    if (x->a != y->a)
        return x->a < y->a ? -1 : 1;
    return (x->b > y->b) - (x->b < y->b);
}

void gw_ivals_normalize(gw_ivals *s)
{
    if (s->n < 2)
        return;
    qsort(s->v, s->n, sizeof(*s->v), cmp_ival);
    size_t k = 0;
    for (size_t i = 1; i < s->n; i++) {
        if (s->v[i].a <= s->v[k].b) {
            if (s->v[i].b > s->v[k].b)
                s->v[k].b = s->v[i].b;
        } else {
            s->v[++k] = s->v[i];
        }
    }
    s->n = k + 1;
}

int64_t gw_ivals_within(const gw_ivals *s, int64_t a, int64_t b)
{
    int64_t total = 0;
    for (size_t i = 0; i < s->n; i++) {
        int64_t x = s->v[i].a > a ? s->v[i].a : a;
        int64_t y = s->v[i].b < b ? s->v[i].b : b;
        if (y > x)
            total += y - x;
    }
    return total;
}

void gw_ivals_clear(gw_ivals *s)
{
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

long gw_paris_day(int64_t ms)
{
    time_t t = (time_t)floor_div(ms, 1000);
    return (long)floor_div((int64_t)t + gw_tz_offset(GW_TZ_PARIS, t), 86400);
}

int64_t gw_paris_local(long day, int minute)
{
    int64_t local = (int64_t)day * 86400 + (int64_t)minute * 60;
    /* the offset in force at that instant: try the winter one, then the
     * summer one; the right one maps back to the same local time */
    for (long off = 3600; off <= 7200; off += 3600) {
        int64_t t = local - off;
        if (gw_tz_offset(GW_TZ_PARIS, (time_t)t) == off)
            return t * 1000;
    }
    return (local - 3600) * 1000;
}

int gw_maint_intervals(const gw_maint_conf *c, int64_t from, int64_t to, gw_ivals *out)
{
    /* Slots start and end on local minutes, and the offsets of the supported
     * zones are whole hours: testing each UTC minute finds every slot. */
    int64_t t = floor_div(from, 60000) * 60;
    int64_t end_s = floor_div(to + 59999, 60000) * 60;
    while (t < end_s) {
        time_t e;
        if (gw_maintenance_active(c, (time_t)t, &e) && (int64_t)e > t) {
            int64_t a = t * 1000 < from ? from : t * 1000;
            int64_t b = (int64_t)e * 1000 > to ? to : (int64_t)e * 1000;
            if (gw_ivals_add(out, a, b) < 0)
                return -1;
            t = (int64_t)e;
        } else {
            t += 60;
        }
    }
    gw_ivals_normalize(out);
    return 0;
}
