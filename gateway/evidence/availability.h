/*
 * Availability as CGU §11 measures it, from verified journals and the
 * maintenance calendar (docs/availability.md).
 */
#ifndef GW_EVIDENCE_AVAILABILITY_H
#define GW_EVIDENCE_AVAILABILITY_H

#include "evidence/calendar.h"
#include "evidence/evidence.h"

/* CGU §11 target, percent. */
#define GW_AVAIL_TARGET 97.16

/* The unavailable intervals found in <recs>/<n> (chain order), by cause:
 * <upstream> (the backend failing: from a forwarded request that got no
 * answer to the next one that did) and <down> (the gateway not running:
 * from the record before an unclean_stop gap or a restart rotation to that
 * record). Both normalized. 0 or -1 (OOM). */
int gw_avail_from_records(const gw_ev_rec *recs, size_t n, gw_ivals *upstream, gw_ivals *down);

/* The figures over [from, to): total and unavailable ms over the opening
 * hours (0-24) and over the coverage hours (7:00-20:00 Europe/Paris).
 * <unavail> normalized. */
typedef struct gw_avail_figure {
    int64_t total_ms, unavail_ms;
    int64_t cov_total_ms, cov_unavail_ms;
} gw_avail_figure;
void gw_avail_compute(const gw_ivals *unavail, int64_t from, int64_t to, gw_avail_figure *f);

#endif
