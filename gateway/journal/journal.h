/*
 * Access journal: JSON Lines written by one writer thread.
 *
 * Workers never touch the file: they format a record (gw_journal_format) and
 * hand the line to gw_journal_submit(), which only takes a mutex to append to
 * a bounded in-memory queue. The writer thread takes the whole queue at once,
 * writes it with writev() and fdatasync()s at most once per sync interval and
 * on close. A full queue refuses the line (counted in stats.dropped and
 * reported on stderr) instead of blocking the event loop.
 *
 * A journal opened with gw_journal_open_opts() is hash-chained: the writer,
 * the single ordering point, appends "seq", "prev" and "hash" to every line
 * (verify.h has the exact bytes), rotates by size and by UTC day with the
 * chain continuing in the new file, deletes rotated files past the retention
 * period with a record of each deletion, and writes signed checkpoints.
 * gw_journal_open() keeps the first version's behaviour: lines verbatim.
 */
#ifndef GW_JOURNAL_H
#define GW_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

typedef struct gw_journal gw_journal;

typedef struct gw_journal_stats {
    uint64_t submitted;    /* lines accepted into the queue */
    uint64_t written;      /* lines written to the file */
    uint64_t dropped;      /* lines refused (queue full) or lost on write error */
    uint64_t write_errors; /* failed write()/fdatasync() calls */
    uint64_t queued;       /* lines waiting now */
    /* Chained journals (0 otherwise). */
    uint64_t seq;             /* seq of the last record written (the head) */
    uint64_t rotations;       /* files switched by the writer (size, day, reopen) */
    uint64_t checkpoints;     /* checkpoint records written */
    uint64_t files_deleted;   /* rotated files deleted by retention */
    uint64_t write_us_sum;    /* time spent writing batches (writev), microseconds */
    uint64_t write_batches;   /* batches written */
    uint64_t write_us_max;    /* the slowest batch */
    uint64_t reserved;        /* reservations held (taken, record not yet written) */
    uint64_t reserve_refused; /* gw_journal_reserve() refusals */
    uint64_t summarised;      /* refusals counted in summary records instead of written */
    uint64_t gap_pending;     /* records lost on write errors, gap record not yet written */
    uint64_t tail_checks;     /* periodic tail checks run (tail_check_s) */
    uint64_t broken;          /* 1 once a tail check found the file broken */
    uint64_t retention_held;  /* retention passes that deleted nothing: a legal hold */
    uint64_t hold;            /* 1 while retention is suspended (gw_journal_set_hold) */
    uint64_t writer_wakes;    /* signals sent to the writer by lines and reservations */
} gw_journal_stats;

/* Open (append, create 0640) <path> and start the writer thread. Returns NULL
 * and sets <*err> to a malloc'd message on failure. */
gw_journal *gw_journal_open(const char *path, size_t queue_cap, unsigned sync_ms, char **err);

struct gw_jwk; /* token/jose.h */

/* Options of gw_journal_open_opts(). A zeroed struct plus path and queue_cap
 * is a chained journal without rotation, retention or checkpoints. */
typedef struct gw_journal_opts {
    const char *path;
    size_t queue_cap;
    unsigned sync_ms;
    /* Batching: once a line is queued, the writer waits up to this many
     * milliseconds (or until JOURNAL_BATCH_LINES lines are queued) before it
     * takes the batch, so that a busy gateway wakes it once per batch rather
     * than once per record. 0: take every line at once. */
    unsigned batch_ms;
    /* 1: write lines verbatim, no chain (what gw_journal_open does). The four
     * options below need a chained journal. */
    int raw;
    /* Rotate when the file has reached this many bytes (checked before each
     * batch of lines, so a file ends at most one batch past it). 0: never. */
    uint64_t rotate_bytes;
    /* Rotate at the first write of each new UTC day. */
    int rotate_daily;
    /* At open and every hour, delete the rotated files <path>.<stamp> whose
     * stamp is more than this many days old, oldest first, each after a
     * chained "retention" record. 0: keep everything. */
    unsigned retention_days;
    /* Write a signed "checkpoint" record every this many seconds while
     * records are written, and at close. 0: none. Needs <signer>. */
    unsigned checkpoint_s;
    /* The checkpoint signing key (a private key). The journal keeps its own
     * reference to the key: the caller may free <signer> after open. */
    const struct gw_jwk *signer;
    /* Every this many seconds, the writer reads the end of its file back and
     * checks it against the head it holds (tail.h): the records must chain
     * and the last one must be its head. 0: never. A break makes the journal
     * broken for good (gw_journal_broken): gw_journal_healthy() 0, every
     * reservation refused, until a restart (whose start check then refuses
     * to serve until the break is acknowledged). */
    unsigned tail_check_s;
    /* Called on the writer thread after each checkpoint record is written,
     * with the journal's path and the checkpoint record's own seq, hash and
     * ts (what --verify-journal --expect-head takes). Must not block
     * (anchor.h only queues). NULL: none. */
    void (*on_checkpoint)(void *arg, const char *path, uint64_t seq, const char *hash,
                          const char *ts);
    void *on_checkpoint_arg;
    /* Retention starts suspended (a legal hold kept from an earlier run). */
    int hold;
} gw_journal_opts;

/* Open <o->path> as gw_journal_open() does and start the writer. A chained
 * journal continues the chain found at the end of the file (or, when the
 * file is empty, at the end of its newest rotated file): seq and prev carry
 * on across restarts. A last line cut by a crash is reported on stderr and
 * ended with a newline; the chain continues from the last complete record.
 * Refused (NULL, <*err>) when the file holds lines but no chained record at
 * its end (written by gw_journal_open or another program), and for option
 * errors. */
gw_journal *gw_journal_open_opts(const gw_journal_opts *o, char **err);

/* Queue one line. Takes ownership of <line> (malloc'd, <len> bytes, ending
 * in '\n') in every case. Returns 0 when queued, -1 when refused. Thread-safe;
 * never blocks on I/O. A chained journal also refuses (and counts as "no
 * line") a line that is not one non-empty JSON object "{...}\n" on one line. */
int gw_journal_submit(gw_journal *j, char *line, size_t len);

/* Reserve room for the record of a request about to be forwarded (or a
 * token about to be issued): a queue slot and GW_JOURNAL_LINE_MAX bytes of
 * the file system's free space, held until that record is written. 0 when
 * reserved: the record is then submitted with gw_journal_submit_reserved(),
 * which never refuses it for room, or the reservation is given back with
 * gw_journal_release(). -1 (nothing to give back) while the journal cannot
 * write (a failed write or fdatasync, one not returned after 1 s), when the
 * queue is 90 % taken, or when the free space does not cover the
 * reservations held plus this one plus 64 KiB for the writer's own records.
 * Thread-safe; a statvfs() at most every 50 ms, otherwise no I/O. */
int gw_journal_reserve(gw_journal *j);

/* gw_journal_reserve() that leaves waking the writer to the caller: where
 * the reservation must be counted in the state file by an idle writer,
 * sets <*wake> to 1 instead of waking it, and the caller calls
 * gw_journal_wake() before it waits for I/O again (a worker: at the end of
 * its event-loop pass, core/jbatch.c), so that the reservations of one
 * pass cost one wake (and one context switch) instead of one each.
 * Otherwise leaves <*wake> alone. Returns as gw_journal_reserve(). */
int gw_journal_reserve_deferred(gw_journal *j, int *wake);

/* Wake the writer if it waits (it then refreshes the state file). */
void gw_journal_wake(gw_journal *j);
int gw_journal_submit_reserved(gw_journal *j, char *line, size_t len);
void gw_journal_release(gw_journal *j);

/* Queue a refusal's record (nothing was forwarded). It never takes the
 * room of a reservation: when the queue has no free slot besides the
 * reservations', or when writing it would leave less free space than the
 * reservations held need (plus 128 KiB), it is not written but counted
 * under <reason> (a constant string), and a chained journal writes one
 * "summary" record of these counts once it has room again. Returns 0 when
 * queued or counted, -1 when refused (raw journal, closing, bad line). */
int gw_journal_submit_refusal(gw_journal *j, char *line, size_t len, const char *reason);

/* Several records handed over under one acquisition of the queue's mutex
 * (a worker's records of one event-loop pass: core/jbatch.c). Each is
 * treated exactly as the call its <kind> names, in the order of <v>:
 * GW_JLINE_PLAIN gw_journal_submit, GW_JLINE_RESERVED
 * gw_journal_submit_reserved, GW_JLINE_REFUSAL gw_journal_submit_refusal
 * (<reason> a constant string). The lines are the journal's afterwards
 * (queued or freed). Returns how many were refused. Thread-safe. */
typedef enum { GW_JLINE_PLAIN, GW_JLINE_RESERVED, GW_JLINE_REFUSAL } gw_jline_kind;
typedef struct gw_journal_line {
    char *line;
    size_t len;
    gw_jline_kind kind;
    const char *reason;
} gw_journal_line;
size_t gw_journal_submit_many(gw_journal *j, gw_journal_line *v, size_t n);

/* Ask the writer to reopen the file at its next pass (logrotate, SIGUSR1).
 * Async-signal-safe is NOT required: call it from the main loop. */
void gw_journal_reopen(gw_journal *j);

void gw_journal_get_stats(gw_journal *j, gw_journal_stats *st);

/* Write everything queued, fdatasync, stop the thread, close, free. */
void gw_journal_close(gw_journal *j);

/* gw_journal_close(), waiting at most <ms> milliseconds (0: no limit) for
 * the writer. Returns the records that could not be written: lost or
 * refused during the close, counted but not yet in a gap or summary record,
 * and, when the writer did not finish in time (*timed_out set to 1), those
 * still queued or reserved. A timed-out journal is left to the process exit
 * (the writer may be blocked in the kernel), not freed, and its state file
 * stays so that the next start records the gap. A clean close (0 returned)
 * removes the state file. */
uint64_t gw_journal_close_within(gw_journal *j, unsigned ms, int *timed_out);

/* One attempt at the upstream for the record's request (a retry on a fresh
 * connection makes two). <outcome> is a constant label: "ok", "reset",
 * "connect_failed", "timeout", "connect_timeout", "invalid", "error"
 * (docs/journal.md); <status> <= 0 and <ms> < 0 are omitted. */
typedef struct gw_journal_attempt {
    const char *addr;
    const char *outcome;
    int status;
    long ms;
} gw_journal_attempt;

/* One record. Strings may be NULL (field omitted); numbers < 0 are omitted. */
typedef struct gw_journal_rec {
    const char *ts; /* ISO 8601 UTC with ms */
    const char *request_id;
    const char *correlation_id;
    const char *env;
    const char *listener;
    const char *client_ip;
    int client_port;
    const char *tls_version;
    const char *tls_cert_sha256;
    const char *tls_subject;
    const char *protocol;     /* "h2" for an HTTP/2 stream; NULL: HTTP/1.1 (left out) */
    const char *consumer;     /* client_id of the habilitation, once identified */
    const char *habilitation; /* its id, "H456" */
    const char *teleservice;  /* the ID_Teleservice sent */
    const char *method;
    const char *route; /* route name, or NULL when none matched */
    const char *path;  /* canonical path sent upstream (the raw one when no route matched) */
    const char *query; /* query sent upstream, re-serialised; NULL when none */
    const char *siren;
    const char *annee;
    const char *scope;           /* the route's scope */
    const char *token_jti;       /* jti of the verified access token (never the token) */
    const char *token_client_id; /* client_id claim of that token */
    long quota_limit;            /* with quota_store: the quota decision */
    long quota_remaining;
    const char *quota_store; /* "memory", ...; NULL when the quota stage did not run */
    const char *decision;    /* "allow" | "deny" | "error" */
    const char *reason;      /* denial/err label, NULL when allowed */
    const char *code;        /* error code sent, NULL when none */
    int status;
    const char *upstream_addr;
    int upstream_status;
    long upstream_ms;
    const gw_journal_attempt *upstream_attempts; /* "upstream.attempts" when n > 0 */
    size_t upstream_nattempts;
    long ms;
    long bytes_in;
    long bytes_out;
} gw_journal_rec;

/* Bounded lines (docs/journal.md, "Line size"): a string value holds at
 * most this many bytes between its quotes, escapes included; a longer one is
 * cut at a character, ends with "...[truncated]", and the record gets a
 * "truncated" object giving each cut field's length in bytes. So a caller
 * cannot grow the journal by the size of its request. */
#define GW_JOURNAL_FIELD_MAX 192u
#define GW_JOURNAL_PATH_MAX 1024u
#define GW_JOURNAL_SUBJECT_MAX 512u
/* Hence no formatted record, with the writer's seq/prev/hash, is longer. */
#define GW_JOURNAL_LINE_MAX 8192u

/* Format <r> as one JSON object + '\n'. Returns malloc'd line or NULL (OOM).
 * Never emits "seq", "prev", "hash" or "type": the writer owns those. */
char *gw_journal_format(const gw_journal_rec *r, size_t *len);

/* Schema version written in every record's "v" field. */
#define GW_JOURNAL_SCHEMA_VERSION 1

/* 1 while the journal writes normally; 0 after a failed write() or
 * fdatasync(), until a later call of the same kind succeeds. Meant for
 * /readyz, metrics and the coming fail-closed mode. Thread-safe. */
int gw_journal_healthy(gw_journal *j);

struct gw_journal_tail; /* journal/tail.h */

/* 1 once a periodic tail check found the file broken (then <*out>, when not
 * NULL, says where), 0 otherwise. Thread-safe. */
int gw_journal_broken(gw_journal *j, struct gw_journal_tail *out);

/* Legal hold: <hold> != 0 suspends retention (no rotated file is deleted,
 * each pass that would have deleted one is counted in stats.retention_held);
 * 0 lifts it and runs a retention pass at once. Thread-safe. */
void gw_journal_set_hold(gw_journal *j, int hold);

/* FOR UNIT TESTS ONLY. <pause> != 0 stops the writer from taking queued
 * lines (and from acting on a pending reopen) until it is called again with
 * 0, or until gw_journal_close(), which always drains. A write already in
 * progress finishes. Lets a test fill the queue deterministically. */
void gw_journal_test_pause(gw_journal *j, int pause);

/* FOR UNIT TESTS ONLY. The writer's wall clock (rotation stamps and days,
 * retention ages, "ts" of the writer's own records) reads <t> instead of the
 * real time; 0 restores the real clock. */
void gw_journal_test_set_time(gw_journal *j, long long t);

#endif
