/*
 * The sandbox acceptance report ("recette", CGU §3.1.2) for one consumer,
 * computed from a verified journal (docs/recette.md).
 */
#ifndef GW_EVIDENCE_RECETTE_H
#define GW_EVIDENCE_RECETTE_H

#include <jansson.h>
#include <stdio.h>

#include "evidence/evidence.h"
#include "lib/jsonv.h"

/* The refusal cases, in report order. */
typedef enum {
    GW_RC_QUOTA = 0,
    GW_RC_SIREN,
    GW_RC_YEAR,
    GW_RC_CORRELATION,
    GW_RC_EXPIRED_TOKEN,
    GW_RC_MAINTENANCE,
    GW_RC_BACKEND,
    GW_RC_NCASES
} gw_rc_case;

/* Stable name of a case ("quota", "invalid_siren", ...). */
const char *gw_recette_case_name(gw_rc_case c);

typedef struct gw_recette_criteria {
    struct {
        int required;          /* must be met (and handled) for the overall pass */
        long long min_wait_ms; /* a retry sooner than this that meets the same case
                                * again is a retry "at once" */
    } cases[GW_RC_NCASES];
    double min_calls_per_token; /* token hygiene */
    long long max_duplicate_correlation_ids;
    int require_teleservice; /* ID_Teleservice on every data call */
    long long min_allowed_calls;
} gw_recette_criteria;

/* The documented defaults (docs/recette.md, "Criteria"). */
void gw_recette_criteria_default(gw_recette_criteria *c);

/* Read a criteria file over the defaults in <c> (lib/jsonv.h: every
 * problem as "FILE: json.path: message" in <errs>). Returns 0 or -1. */
int gw_recette_criteria_load(const char *path, gw_recette_criteria *c, gw_errlist *errs);

/* The report (a JSON object, caller owns it) for <consumer> from the
 * verified records <recs>/<n> in chain order: routes, cases, hygiene,
 * criteria with verdicts, overall verdict, timeline. NULL on OOM. */
json_t *gw_recette_analyse(const gw_ev_rec *recs, size_t n, const char *consumer,
                           const gw_recette_criteria *c);

/* The report <r> (gw_recette_analyse of the verified journal <j>) as
 * Markdown, written to <o>, as `--recette --format md` prints it before it
 * is signed, "generated" (now) and "journal" (<j>'s verification) added
 * to <r> (the console's partner page). */
void gw_recette_render_md(FILE *o, json_t *r, const gw_ev_journal *j);

#endif
