/*
 * Interval arithmetic and calendars for the availability figure
 * (docs/availability.md): sets of half-open intervals [a, b) in milliseconds
 * since the epoch, local days and hours in Europe/Paris, the maintenance
 * calendar of the configuration as intervals. Pure functions: unit tested in
 * tests/unit/evidence/test_calendar.c.
 */
#ifndef GW_EVIDENCE_CALENDAR_H
#define GW_EVIDENCE_CALENDAR_H

#include <stddef.h>
#include <stdint.h>

#include "lib/civil.h"
#include "stages/stages.h"

typedef struct gw_ival {
    int64_t a, b; /* [a, b) */
} gw_ival;

typedef struct gw_ivals {
    gw_ival *v;
    size_t n, cap;
} gw_ivals;

/* Add [a, b) (ignored when empty). 0 or -1 (OOM). */
int gw_ivals_add(gw_ivals *s, int64_t a, int64_t b);
/* Sort and merge overlapping or touching intervals. */
void gw_ivals_normalize(gw_ivals *s);
/* Length of (s ∩ [a, b)); <s> normalized. */
int64_t gw_ivals_within(const gw_ivals *s, int64_t a, int64_t b);
void gw_ivals_clear(gw_ivals *s);

/* Europe/Paris local day number (days since 1970-01-01 local) of <ms>. */
long gw_paris_day(int64_t ms);
/* UTC ms of local time <minute> minutes after the local midnight of <day>
 * (0 <= minute <= 1440; the local hours 7:00 and 20:00 never fall in a DST
 * transition, midnight neither). */
int64_t gw_paris_local(long day, int minute);

/* Every maintenance slot of <c> that meets [from, to), clipped to it, into
 * <out> (normalized). 0 or -1. */
int gw_maint_intervals(const gw_maint_conf *c, int64_t from, int64_t to, gw_ivals *out);

#endif
