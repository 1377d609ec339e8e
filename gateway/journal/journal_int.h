/*
 * Inside the access journal (journal.h): the state shared by its files.
 * Not an API: only gateway/journal/{journal,writer,chain,lifecycle,
 * checkpoint}.c include it.
 *
 *   journal.c     the queue: open, submit, reserve, stats, close (any thread)
 *   writer.c      the writer thread: batches, writev, fdatasync, the writer's
 *                 own records (gap, summary), stderr reports
 *   chain.c       the hash chain: chaining a line, reading a file's last
 *                 record, where a chain continues at open
 *   lifecycle.c   the files: rotation, reopen, retention, the state file
 *   checkpoint.c  signed checkpoints
 *   record.c      the access record encoder (gw_journal_format; no state)
 *
 * Threads: fields marked "under <mu>" are shared; "writer thread only"
 * fields are touched by the writer, and by open/close around it. Functions
 * below run on the writer thread unless their comment says otherwise.
 */
#ifndef GW_JOURNAL_INT_H
#define GW_JOURNAL_INT_H

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "journal/journal.h"
#include "journal/verify.h"
#include "token/jose.h"

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

#define OPEN_FLAGS (O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC)
#define OPEN_MODE 0640
/* stderr reports of drops and write errors: at most one of each per second. */
#define REPORT_INTERVAL_MS 1000
/* A batch this long wakes a lingering writer at once (see batch_ms). */
#define JOURNAL_BATCH_LINES 256
/* ,"seq":<20 digits>,"prev":"<64>","hash":"<64>"}\n is 197 bytes. */
#define SUFFIX_MAX 200
/* Lines per writev() in a chained journal: two iovecs each, one spare for
 * the '\n' that ends a torn line. */
#define CHAIN_GROUP ((IOV_MAX - 1) / 2)
/* Retention runs at open and then once per hour. */
#define RETENTION_PERIOD_MS (3600u * 1000u)
/* A rotation that failed (rename, open) is retried after this long. */
#define ROTATE_RETRY_MS (60u * 1000u)
/* How much of a file's end is read, at most, to find its last record. */
#define TAIL_MAX (16u << 20)

struct jline {
    char *p;
    size_t len;
    const char *reason; /* a refusal's reason: may be summarised instead (see reserve) */
    int reserved;       /* queued against a reservation */
};

/* Room the writer keeps for its own records (rotate, checkpoint, gap,
 * summary, retention) besides the reservations. */
#define OWN_RESERVE_BYTES (64u * 1024u)
/* Free space is read again (statvfs) at most this often by reserve. */
#define AVAIL_REFRESH_MS 50
/* A write() or fdatasync() that has not returned after this long makes the
 * journal "stalled": no new reservation until it returns. */
#define STALL_MS 1000
/* Distinct refusal reasons counted in one summary; more share "other". */
#define SUMMARY_REASONS 32

struct gw_journal {
    char *path;
    char *dir;        /* directory of <path> */
    const char *base; /* file name part of <path> */
    size_t cap;
    unsigned sync_ms;
    unsigned batch_ms;
    uint64_t write_us_sum; /* batch write latency (see write_lines) */
    uint64_t write_batches;
    uint64_t write_us_max;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* wakes the writer */

    /* Set at open, read-only afterwards. */
    int chain;
    uint64_t rotate_bytes;
    int rotate_daily;
    unsigned retention_days;
    unsigned checkpoint_s;
    int has_signer;
    gw_jwk signer; /* our own reference to the key */

    /* Under <mu>. */
    struct jline *q;
    size_t qlen;
    size_t inflight; /* taken by the writer, not yet written or dropped */
    int closing;
    int paused;
    int reopen_pending;
    size_t reopen_at; /* lines of <q> queued before the reopen request */
    uint64_t submitted;
    uint64_t written;
    uint64_t write_errors;
    uint64_t dropped_full;   /* queue full */
    uint64_t dropped_closed; /* submitted after close started */
    uint64_t dropped_null;   /* NULL line (the caller's format failed) or not one object */
    uint64_t dropped_write;  /* lost in a failed write */
    int write_ok;
    int sync_ok;
    int last_errno;
    const char *last_op;
    uint64_t st_seq, st_rotations, st_checkpoints, st_deleted;
    long long test_now;
    /* Reservations (gw_journal_reserve): taken and not yet submitted, and
     * held (taken, not yet written or lost: submitted ones included). */
    size_t rsv_pending;
    size_t rsv_held;
    uint64_t avail;         /* free bytes of the journal's filesystem, last read */
    uint64_t avail_ms;      /* when */
    uint64_t io_started_ms; /* a write or fdatasync in progress since; 0 none */
    uint64_t rsv_refused;   /* reservations refused */
    int state_dirty;        /* reservations changed: the writer refreshes the state file */
    int polling;            /* the writer waits batch_ms under load: nobody signals it but a full
                             * batch (or close, reopen, pause) */
    uint64_t wakes;         /* signals sent to the writer by submitters and reservations */
    /* The polling writer sleeps on <kick> (a futex word), not on <cv>: a
     * return from pthread_cond_timedwait leaves <mu> marked contended, and
     * its next unlock is a FUTEX_WAKE system call, one per poll. Set under
     * <mu> while it sleeps there (gw_jn_signal reads it atomically). */
    unsigned kick;
    int poll_sleep;
    int exited;             /* the writer thread returned */
    int check_space;        /* set at open: a regular file, whose free space counts */
    pthread_cond_t done_cv; /* signalled when <exited> is set */
    /* Refusals not written (no room without touching reservations, or a
     * full queue): counted by reason, written as one "summary" record once
     * the journal has room again. */
    const char *sum_reason[SUMMARY_REASONS];
    uint64_t sum_count[SUMMARY_REASONS];
    uint64_t sum_total, sum_other, st_summarised;
    char sum_from[32];
    /* Records lost on a write error since the last gap record: the writer
     * writes a "gap" record as soon as a write succeeds again. */
    uint64_t lost_pending;

    /* Writer thread only (and open/close around it). */
    struct jline *wq;
    int fd;
    int no_sync; /* <fd> cannot be synced (pipe, FIFO, character device) */
    int torn;    /* the last failed write stopped inside a line */
    int dirty;   /* bytes written since the last fdatasync() */
    uint64_t last_sync_ms;
    uint64_t next_drop_report_ms;
    uint64_t next_error_report_ms;
    uint64_t reported_dropped;
    uint64_t reported_errors;
    /* chain */
    int regular;        /* <fd> is a regular file: rotation and retention apply */
    uint64_t seq;       /* head: seq of the last record written, 0 before the first */
    char head[65];      /* head: its hash (the genesis value before the first) */
    int head_is_cp;     /* the head is a checkpoint record */
    uint64_t cur_size;  /* bytes in the current file */
    long long file_day; /* UTC day (days since the epoch) the current file belongs to */
    uint64_t next_cp_ms, next_ret_ms, rotate_retry_ms;
    time_t last_stamp;       /* newest rotation stamp: names never go back in time */
    char *restart_from;      /* rotate record to write first: the chain continues from this file */
    char (*sfx)[SUFFIX_MAX]; /* CHAIN_GROUP suffixes */
    /* The state file DIR/.NAME.state (regular chained journals): while the
     * journal is open it holds the head seq and the reservations held; a
     * clean close removes it. Found at open: the previous process stopped
     * without closing, and a "gap" record says how many may be lost. */
    char *state_path;
    int state_fd;
    uint64_t state_seq;
    size_t state_held;
    int state_written;
    uint64_t prev_state_seq; /* found at open */
    uint64_t prev_state_held;
    int prev_unclean;

    /* Integrity (tail.h) and legal hold. */
    unsigned tail_check_s; /* set at open */
    uint64_t next_tail_ms; /* writer thread only */
    void (*on_cp)(void *, const char *, uint64_t, const char *, const char *);
    void *on_cp_arg;
    int broken;                   /* under <mu>: a tail check failed */
    struct gw_journal_tail *tail; /* under <mu>: where (once broken) */
    uint64_t st_tail_checks;      /* under <mu> */
    int hold;                     /* under <mu>: retention suspended */
    int hold_lifted;              /* under <mu>: run retention at the next pass */
    uint64_t st_ret_held;         /* under <mu> */
};

/* The last chained record of a file (chain.c). */
struct gw_jn_file_end {
    int found; /* <last> is set */
    gw_journal_link last;
    int last_is_cp;   /* the last record is a checkpoint */
    int hash_bad;     /* its hash does not recompute */
    int torn;         /* the file does not end in '\n' */
    int tail_record;  /* ... but its last line is a complete record */
    int foreign;      /* complete lines without the chain members were seen */
    int any_complete; /* the file has at least one complete line */
};

/* ---- shared helpers ---- */

static inline uint64_t gw_jn_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline long long gw_jn_utc_day(time_t t)
{
    long long d = (long long)t / 86400;
    return (long long)t < 0 && (long long)t % 86400 != 0 ? d - 1 : d;
}

static inline void gw_jn_deadline_ts(uint64_t ms, struct timespec *ts)
{
    ts->tv_sec = (time_t)(ms / 1000u);
    ts->tv_nsec = (long)(ms % 1000u) * 1000000L;
}

/* Wake the writer (journal.c): <cv>, and <kick> when it sleeps in a poll.
 * The caller changed what the writer waits for under <mu> before. */
void gw_jn_signal(gw_journal *j);

/* Lines refused or lost so far. <mu> held. */
static inline uint64_t gw_jn_dropped_total(const gw_journal *j)
{
    return j->dropped_full + j->dropped_closed + j->dropped_null + j->dropped_write;
}

/* <*err> = a malloc'd message (journal.c). <err> may be NULL. */
void gw_jn_set_err(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- writer.c ---- */

/* The writer thread (started by gw_journal_open_opts). */
void *gw_jn_writer_main(void *arg);
/* The writer's wall clock: real, or the unit tests' fixed time. Takes <mu>. */
time_t gw_jn_wall(gw_journal *j, int *ms);
/* gw_jn_wall as "2025-03-21T09:00:00.123Z". */
void gw_jn_wall_iso(gw_journal *j, char out[32]);
/* Write the lines <v>[0..<n>), chained, and free them (see writer.c). */
void gw_jn_write_lines(gw_journal *j, struct jline *v, size_t n, int counted);
/* fdatasync the current file: 0, or -1 when it failed (counted). */
int gw_jn_sync_file(gw_journal *j);
/* One of the writer's own records, chained and written at once: 0 when it
 * reached the file. Takes <o>. */
int gw_jn_emit(gw_journal *j, json_t *o);
/* {"v":1,"type":<type>,"ts":<ts>} to which the caller adds its members;
 * NULL on OOM. */
json_t *gw_jn_own_record(const char *type, const char *ts);
/* stderr reports of drops and errors (rate-limited unless <final>). */
void gw_jn_report(gw_journal *j, int final);
/* Free bytes of the journal's file system, UINT64_MAX when unknown. Any
 * thread. */
uint64_t gw_jn_fs_avail(const gw_journal *j);
/* Count one refusal under <reason> for the next summary record. <mu> held;
 * any thread. */
void gw_jn_summary_count(gw_journal *j, const char *reason);

/* ---- chain.c ---- */

/* Chain one line into <sfx> (SUFFIX_MAX bytes): returns the suffix length;
 * the hash is its bytes [len-67, len-3). */
size_t gw_jn_chain_line(const struct jline *l, uint64_t seq, const char *prev, char *sfx);
/* The last chained record of the file open on <fd> (<size> bytes). 0 or an
 * errno value. Any thread (no journal state). */
int gw_jn_read_end(int fd, uint64_t size, struct gw_jn_file_end *fe);
/* seq of the first chained record among the first 64 KiB of <fd>, or 0. */
uint64_t gw_jn_read_first_seq(int fd);
/* Where the chain of a journal being opened continues (before the writer
 * starts). 0 or -1 with <*err>. */
int gw_jn_find_head(gw_journal *j, char **err);

/* ---- lifecycle.c ---- */

void gw_jn_sync_dir(const gw_journal *j);
/* Before a group of lines: rotate if the file is full or from another day. */
void gw_jn_maybe_rotate(gw_journal *j);
/* logrotate renamed the file: open <path> again (SIGUSR1). */
void gw_jn_reopen_file(gw_journal *j);
/* Delete the rotated files past retention_days, each after its record. */
void gw_jn_run_retention(gw_journal *j);
/* Open DIR/.NAME.state, reading what an unclean stop left (at open). */
int gw_jn_open_state(gw_journal *j, char **err);
/* Refresh the state file when the head or the pending count changed. */
void gw_jn_write_state(gw_journal *j);
/* The "gap" record of an unclean stop (first record after open). */
void gw_jn_write_restart_gap(gw_journal *j);

/* ---- tail.c ---- */

/* The periodic tail check (tail_check_s): read the file back, compare with
 * the head; a break sets <broken> and is reported on stderr. */
void gw_jn_check_tail(gw_journal *j);

/* ---- checkpoint.c ---- */

/* A signed checkpoint over the head, unless the head is one already. */
void gw_jn_write_checkpoint(gw_journal *j);

#endif
