/* journal: the space gate. No exchange without a record (journal.on_failure
 * "deny", the default): a request that would be answered (forwarded, or a
 * token issued, or the JWKS served) gets a journal reservation first, held
 * until its record is written, so that the record cannot be dropped for
 * room once the backend has answered (docs/journal.md, "No exchange without
 * a record"). None: 503 910240, nothing forwarded. With "continue", a
 * request that finds no room goes on without one. Last of its lists; needs
 * nothing. The writer's wake that counts the reservation in the state file
 * is the worker's to make, once per event-loop pass (svc->journal_wake).
 * Its result says whether it holds a reservation: the outcome
 * module (core/outcome.c) consumes it with the record; done() gives back one
 * that was not consumed. */
#include "journal/journal.h"
#include "stages/stages.h"

static gw_verdict run(const gw_stage_call *c)
{
    gw_journal_out *o = c->out;
    if (o->reserved)
        return GW_STAGE_NEXT;
    int wake = 0;
    if (c->svc->journal == NULL || gw_journal_reserve_deferred(c->svc->journal, &wake) == 0) {
        o->reserved = c->svc->journal != NULL;
        if (wake && c->svc->journal_wake != NULL)
            c->svc->journal_wake(c->svc->journal_wake_arg);
        else if (wake)
            gw_journal_wake(c->svc->journal);
        return GW_STAGE_NEXT;
    }
    if (!c->svc->journal_continue)
        return gw_reply_reject(c->reply, GW_ERR_JOURNAL_UNAVAILABLE, NULL);
    o->unreserved = 1;
    return GW_STAGE_NEXT;
}

static void done(const gw_stage_call *c)
{
    gw_journal_out *o = c->out;
    if (o->reserved)
        gw_journal_release(c->svc->journal);
    o->reserved = 0;
}

const gw_stage gw_stage_journal = {
    .name = "journal",
    .out = offsetof(gw_results, journal),
    .run = run,
    .done = done,
};
