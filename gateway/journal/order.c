/*
 * The chain order of journal files: by the seq of their first record
 * (order.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* getline */
#endif
#include "journal/order.h"

#include <stdio.h>
#include <stdlib.h>

#include "journal/verify.h"

int gw_journal_first_seq(const char *path, unsigned max_lines, uint64_t *seq)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned lines = 0;
    int found = 0;

    while (f != NULL && !found && lines++ < max_lines && (len = getline(&line, &cap, f)) > 0) {
        gw_journal_link l;
        if (gw_journal_parse_link(line, (size_t)len, &l) == 0) {
            *seq = l.seq;
            found = 1;
        }
    }
    free(line);
    if (f != NULL)
        fclose(f);
    return found;
}

typedef struct seqfile {
    const char *name;
    uint64_t seq;
    int has;
    size_t pos;
} seqfile;

static int cmp_seqfile(const void *pa, const void *pb)
{
    const seqfile *a = pa, *b = pb;
    if (a->has != b->has)
        return a->has ? -1 : 1;
    if (a->has && a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return a->pos < b->pos ? -1 : a->pos > b->pos;
}

void gw_journal_order_by_first_seq(const char **files, size_t n)
{
    seqfile *sf = n > 0 ? calloc(n, sizeof(*sf)) : NULL;
    if (sf == NULL) {
        gw_journal_sort_files(files, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        sf[i].name = files[i];
        sf[i].pos = i;
        sf[i].has = gw_journal_first_seq(files[i], 16, &sf[i].seq);
    }
    qsort(sf, n, sizeof(*sf), cmp_seqfile);
    for (size_t i = 0; i < n; i++)
        files[i] = sf[i].name;
    free(sf);
}
