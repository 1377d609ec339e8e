/*
 * The detectors' subject tables (journal/subjects.c). Internal to
 * gateway/journal/.
 *
 * A table remembers subjects (an IP, a certificate, a consumer, a
 * habilitation) by key, split into GW_SUBJECTS_STRIPES stripes, each with its
 * own mutex, hash buckets and least-recently-seen list. The state is
 * bounded: at most max_subjects subjects and max_slots remembered times per
 * table (split evenly between the stripes); past either, the least recently
 * seen subjects of the stripe are evicted, and counted. No I/O, and no
 * allocation beyond the subjects' own arrays.
 *
 *   counting: the subject keeps the times of its last N occurrences in a
 *     ring (N = the threshold), so "N within the window" is exact: the N-th
 *     newest is less than window ms old.
 *   distinct: the subject keeps up to N (id, last seen) pairs younger than
 *     the window.
 *   once, per slot: no array; the caller uses <next_ok> or <mark>.
 */
#ifndef GW_JOURNAL_SUBJECTS_H
#define GW_JOURNAL_SUBJECTS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define GW_SUBJECTS_STRIPES 16

/* One subject. The caller reads and writes <next_ok> and <mark> while it
 * holds the stripe; the rest belongs to the table. */
typedef struct gw_subject {
    struct gw_subject *hnext;
    struct gw_subject *prev, *next; /* least-recently-seen list: head is the newest */
    uint64_t h;
    uint64_t next_ok; /* ms: may fire again from then */
    long long mark;   /* per slot: the slot end last reported */
    uint64_t *ts;     /* counting: ring of times; distinct: last seen, with ids */
    uint64_t *ids;    /* distinct: the ids */
    uint32_t n, cap, head;
    char key[];
} gw_subject;

typedef struct gw_subject_stripe {
    pthread_mutex_t mu;
    gw_subject **buckets; /* allocated at the first subject */
    size_t nbuckets;
    gw_subject *newest, *oldest;
    size_t nents, nslots;
} gw_subject_stripe;

typedef enum {
    GW_SUBJECTS_ONCE,
    GW_SUBJECTS_COUNT,
    GW_SUBJECTS_DISTINCT,
    GW_SUBJECTS_SLOT
} gw_subjects_kind;

typedef struct gw_subjects {
    gw_subjects_kind kind;
    uint32_t ring;      /* counting/distinct: N */
    uint64_t window_ms; /* counting/distinct */
    size_t max_ents;    /* per stripe */
    size_t max_slots;   /* per stripe */
    atomic_ullong tracked;
    atomic_ullong evicted;
    gw_subject_stripe s[GW_SUBJECTS_STRIPES];
} gw_subjects;

/* 0, or -1 when a mutex cannot be made. <ring> and <window_ms> matter for
 * counting and distinct tables only. */
int gw_subjects_init(gw_subjects *t, gw_subjects_kind kind, uint32_t ring, uint64_t window_ms,
                     size_t max_subjects, size_t max_slots);
void gw_subjects_destroy(gw_subjects *t);

/* Locks the stripe of <key> (its pointer in <*locked>) and returns the
 * subject, created when absent and made the newest of its stripe; NULL when
 * out of memory. Either way the caller ends with gw_subjects_unlock(). */
gw_subject *gw_subjects_lock(gw_subjects *t, const char *key, gw_subject_stripe **locked);
void gw_subjects_unlock(gw_subject_stripe *s);

/* 1 and the <mark> of subject <key> when the table holds it (without making
 * it the newest or creating it), else 0. */
int gw_subjects_mark(gw_subjects *t, const char *key, long long *mark);

/* Counting: one occurrence of <e> at <now>. Returns how many occurrences are
 * less than the window old (at most the ring size). Stripe held. */
uint32_t gw_subjects_count(gw_subjects *t, gw_subject_stripe *s, gw_subject *e, uint64_t now);

/* Distinct: <id> seen by <e> at <now>. Returns the number of distinct ids
 * seen less than the window ago (at most the ring size). Stripe held. */
uint32_t gw_subjects_distinct(gw_subjects *t, gw_subject_stripe *s, gw_subject *e, uint64_t id,
                              uint64_t now);

#endif
