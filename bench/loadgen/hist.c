/*
 * opale-loadgen: the latency histogram: log-linear (HDR-style) buckets over
 * microseconds, merge, percentiles, mean and standard deviation (loadgen.h).
 */
#include <math.h>
#include <string.h>

#include "loadgen.h"

static unsigned h_index(uint64_t v)
{
    if (v < 2 * H_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    unsigned s = e - H_SUB_BITS;
    unsigned m = (unsigned)(v >> s);
    return 2 * H_SUB + (s - 1) * H_SUB + (m - H_SUB);
}

uint64_t lg_h_lower(unsigned i)
{
    if (i < 2 * H_SUB)
        return i;
    unsigned s = (i - 2 * H_SUB) / H_SUB + 1, m = (i - 2 * H_SUB) % H_SUB + H_SUB;
    return (uint64_t)m << s;
}

uint64_t lg_h_upper(unsigned i)
{
    if (i < 2 * H_SUB)
        return i;
    unsigned s = (i - 2 * H_SUB) / H_SUB + 1, m = (i - 2 * H_SUB) % H_SUB + H_SUB;
    return (((uint64_t)m + 1) << s) - 1;
}

void lg_h_add(struct hist *h, uint64_t v)
{
    if (v > H_VMAX)
        v = H_VMAX;
    if (h->n == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->n++;
    h->sum += (double)v;
    h->sumsq += (double)v * (double)v;
    h->b[h_index(v)]++;
}

void lg_h_merge(struct hist *dst, const struct hist *src)
{
    if (src->n == 0)
        return;
    if (dst->n == 0 || src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->n += src->n;
    dst->sum += src->sum;
    dst->sumsq += src->sumsq;
    for (unsigned i = 0; i < H_NB; i++)
        dst->b[i] += src->b[i];
}

/* The value at percentile p (0..100): the highest value equivalent to the
 * bucket holding the ceil(p% * n)-th value, never above the exact max. */
uint64_t lg_h_pct(const struct hist *h, double p)
{
    if (h->n == 0)
        return 0;
    if (p <= 0)
        return h->min;
    if (p >= 100)
        return h->max;
    uint64_t target = (uint64_t)ceil(p / 100.0 * (double)h->n);
    if (target < 1)
        target = 1;
    uint64_t cum = 0;
    for (unsigned i = 0; i < H_NB; i++) {
        cum += h->b[i];
        if (cum >= target) {
            uint64_t u = lg_h_upper(i);
            if (u > h->max)
                u = h->max;
            if (u < h->min)
                u = h->min;
            return u;
        }
    }
    return h->max;
}

double lg_h_mean(const struct hist *h)
{
    return h->n ? h->sum / (double)h->n : 0.0;
}

double lg_h_stdev(const struct hist *h)
{
    if (h->n < 2)
        return 0.0;
    double m = lg_h_mean(h), var = h->sumsq / (double)h->n - m * m;
    return var > 0 ? sqrt(var) : 0.0;
}
