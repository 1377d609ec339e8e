/*
 * A worker's journal records, handed to the journal in batches: the records
 * made during one pass of the worker's event loop go to the journal's queue
 * under one acquisition of its mutex (gw_journal_submit_many), at the end of
 * that pass (an event activated by the first record), or as soon as
 * GW_JBATCH_LINES are waiting. The order of one worker's records is kept;
 * the guarantees of each record (reservation, refusal, plain line) are the
 * journal's, unchanged. The wake a reservation asks for (the writer counts
 * it in the state file) is made at the same point: one per pass, not one
 * per request. One per worker; not thread-safe (its worker only).
 */
#ifndef GW_CORE_JBATCH_H
#define GW_CORE_JBATCH_H

#include <event2/event.h>

#include "journal/journal.h"

#define GW_JBATCH_LINES 64

typedef struct gw_jbatch gw_jbatch;

/* A batch for records to <j> (NULL: records are freed, as the journal's
 * calls do with no journal), flushed on <base>. NULL when out of memory. */
gw_jbatch *gw_jbatch_new(struct event_base *base, gw_journal *j);

/* Hand over every waiting record, then free. */
void gw_jbatch_free(gw_jbatch *b);

/* Add a record (the line is the batch's from now on). */
void gw_jbatch_add(gw_jbatch *b, gw_jline_kind kind, char *line, size_t len, const char *reason);

/* Wake the journal's writer at the flush, with the records of this pass
 * (gw_journal_reserve_deferred asked for it). */
void gw_jbatch_wake(gw_jbatch *b);

/* Hand over every waiting record now (the worker's loop is ending), then
 * wake the writer if gw_jbatch_wake() asked for it. */
void gw_jbatch_flush(gw_jbatch *b);

#endif
