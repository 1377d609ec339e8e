/* A worker's journal records in batches (see jbatch.h). */
#include "core/jbatch.h"

#include <stdlib.h>

struct gw_jbatch {
    gw_journal *j;
    struct event *ev; /* activated by the first record of a batch, or a wake */
    int wake;         /* wake the writer at the flush (gw_jbatch_wake) */
    size_t n;
    gw_journal_line v[GW_JBATCH_LINES];
};

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_jbatch_flush(arg);
}

gw_jbatch *gw_jbatch_new(struct event_base *base, gw_journal *j)
{
    gw_jbatch *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->j = j;
    b->ev = event_new(base, -1, 0, flush_cb, b);
    if (b->ev == NULL) {
        free(b);
        return NULL;
    }
    return b;
}

void gw_jbatch_flush(gw_jbatch *b)
{
    if (b == NULL)
        return;
    /* refused lines are counted by the journal (stats.dropped) */
    if (b->n > 0)
        (void)gw_journal_submit_many(b->j, b->v, b->n);
    b->n = 0;
    if (b->wake) {
        b->wake = 0;
        gw_journal_wake(b->j);
    }
}

void gw_jbatch_wake(gw_jbatch *b)
{
    if (!b->wake && b->n == 0)
        event_active(b->ev, EV_READ, 0); /* runs later in this pass of the loop */
    b->wake = 1;
}

void gw_jbatch_free(gw_jbatch *b)
{
    if (b == NULL)
        return;
    gw_jbatch_flush(b);
    event_free(b->ev);
    free(b);
}

void gw_jbatch_add(gw_jbatch *b, gw_jline_kind kind, char *line, size_t len, const char *reason)
{
    b->v[b->n++] = (gw_journal_line){line, len, kind, reason};
    if (b->n == GW_JBATCH_LINES)
        gw_jbatch_flush(b);
    else if (b->n == 1 && !b->wake)
        event_active(b->ev, EV_READ, 0); /* runs later in this pass of the loop */
}
