/*
 * Access journal: one writer thread behind a bounded queue.
 *
 * Workers format a record (gw_journal_format) and hand the line over with
 * gw_journal_submit(), which only takes the mutex, appends a pointer and
 * signals. All file I/O, fdatasync() and stderr reports happen on the writer
 * thread, so a slow or full disk never stalls an event loop: the queue fills
 * up and further lines are refused and counted instead.
 *
 * The queue is two arrays of <cap> slots. Workers append to <q>; the writer
 * swaps <q> with its own empty array <wq> under the lock, so it takes every
 * queued line at once and the lock is never held across a system call.
 *
 * Chained journals (gw_journal_open_opts without <raw>): the writer thread is
 * the one place where records get their order, so it assigns "seq" and
 * chains each line to the one written before it, just before the writev().
 * A line goes out as two iovecs: the worker's bytes without their final
 * "}\n", then a suffix ,"seq":N,"prev":"…","hash":"…"}\n built in a writer
 * array, so chaining allocates nothing. The head (seq and hash of the last
 * record written) only moves past lines that reached the file in full: after
 * a failed write the next record links to the last good one. The writer also
 * rotates files, applies retention and writes checkpoints, each as a chained
 * record of its own.
 *
 * See docs/journal.md for the record schema, the chain and the durability
 * model.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* GNU strerror_r, vasprintf, pthread_setname_np, renameat2 */
#endif
#include "journal/journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "lib/util.h"
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
    time_t last_stamp;  /* newest rotation stamp: names never go back in time */
    char *restart_from; /* rotate record to write first: the chain continues from this file */
    EVP_MD_CTX *md;
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
};

static int dump_cb(const char *p, size_t n, void *data);

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void set_err(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(char **err, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL)
        return;
    va_start(ap, fmt);
    if (vasprintf(err, fmt, ap) < 0)
        *err = NULL;
    va_end(ap);
}

static uint64_t dropped_total(const gw_journal *j)
{
    return j->dropped_full + j->dropped_closed + j->dropped_null + j->dropped_write;
}

/* The writer's wall clock: real, or the unit tests' fixed time. */
static time_t wall(gw_journal *j, int *ms)
{
    long long t;
    pthread_mutex_lock(&j->mu);
    t = j->test_now;
    pthread_mutex_unlock(&j->mu);
    if (t != 0) {
        if (ms)
            *ms = 0;
        return (time_t)t;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ms)
        *ms = (int)(ts.tv_nsec / 1000000L);
    return ts.tv_sec;
}

static long long utc_day(time_t t)
{
    long long d = (long long)t / 86400;
    return (long long)t < 0 && (long long)t % 86400 != 0 ? d - 1 : d;
}

/* "2025-03-21T09:00:00.123Z" */
static void wall_iso(gw_journal *j, char out[32])
{
    int ms;
    time_t t = wall(j, &ms);
    struct tm tm;
    char base[24];
    gmtime_r(&t, &tm);
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%.20s.%03dZ", base, ms % 1000);
}

/* ------------------------------------------------------------------------ */
/* Writer side                                                              */
/* ------------------------------------------------------------------------ */

/* Write all of <iov>/<cnt> to <fd>, resuming after partial writes and EINTR,
 * and waiting for POLLOUT if someone made <fd> non-blocking (a shared stdout
 * pipe). <iov> is modified. <*done> gets the bytes written. Returns 0 or an
 * errno value. */
static int writev_all(int fd, struct iovec *iov, int cnt, size_t *done)
{
    *done = 0;
    while (cnt > 0) {
        ssize_t w = writev(fd, iov, cnt);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                struct pollfd pfd = {.fd = fd, .events = POLLOUT};
                if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
                    return errno;
                continue;
            }
            return errno;
        }
        *done += (size_t)w;
        size_t left = (size_t)w;
        /* Skip the iovecs written in full (and empty ones). */
        while (cnt > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
            if (w == 0)
                return EIO; /* no progress on a non-empty write */
        }
    }
    return 0;
}

/* Chain one line: <sfx> gets ,"seq":<seq>,"prev":"<prev>","hash":"<h>"}\n
 * where h = SHA-256(<l> without its "}\n" || the suffix up to the closing
 * quote of prev). Returns the suffix length; the hash is its last 67..3
 * bytes. */
static size_t chain_line(gw_journal *j, const struct jline *l, uint64_t seq, const char *prev,
                         char *sfx)
{
    unsigned char md[EVP_MAX_MD_SIZE] = {0};
    unsigned int mdlen = 0;
    int n = snprintf(sfx, SUFFIX_MAX, ",\"seq\":%" PRIu64 ",\"prev\":\"%.64s\"", seq, prev);

    if (EVP_DigestInit_ex(j->md, gw_sha256_md(), NULL) != 1 ||
        EVP_DigestUpdate(j->md, l->p, l->len - 2) != 1 ||
        EVP_DigestUpdate(j->md, sfx, (size_t)n) != 1 || EVP_DigestFinal_ex(j->md, md, &mdlen) != 1)
        memset(md, 0, sizeof(md)); /* cannot happen with the default provider */
    memcpy(sfx + n, ",\"hash\":\"", 9);
    gw_hex(md, 32, sfx + n + 9);
    memcpy(sfx + n + 9 + 64, "\"}\n", 3);
    return (size_t)n + 9 + 64 + 3;
}

static void maybe_rotate(gw_journal *j);

/* Write the lines <v>[0..<n>) to the current fd in writev() groups of at most
 * IOV_MAX iovecs, then free them. On the first error the rest of <v> is
 * counted as dropped: retrying every group against ENOSPC would only repeat
 * the error. A line cut by a failed write is terminated by a '\n' before the
 * next write, so the fragment cannot corrupt the next good record.
 * In a chained journal each line is chained just before its group is written.
 * <counted>: the lines are workers' (stats.written, dropped), and a rotation
 * may start a group; 0 for the writer's own records, which never trigger a
 * rotation (a checkpoint must follow the head it signs). */
static void write_lines_inner(gw_journal *j, struct jline *v, size_t n, int counted);

/* write_lines_inner, timed: the batch write latency for the metrics. The
 * writer alone updates the three figures, without the mutex (it is not held
 * here); gw_journal_get_stats reads them from another thread: relaxed atomic
 * loads and stores, so the reads are defined (and ThreadSanitizer-clean). */
static void write_lines(gw_journal *j, struct jline *v, size_t n, int counted)
{
    struct timespec a, b;
    if (n == 0)
        return; /* not a batch: keeps the write-latency figures honest */
    clock_gettime(CLOCK_MONOTONIC, &a);
    write_lines_inner(j, v, n, counted);
    clock_gettime(CLOCK_MONOTONIC, &b);
    uint64_t us =
        (uint64_t)(b.tv_sec - a.tv_sec) * 1000000u + (uint64_t)((b.tv_nsec - a.tv_nsec) / 1000);
    __atomic_fetch_add(&j->write_us_sum, us, __ATOMIC_RELAXED);
    __atomic_fetch_add(&j->write_batches, 1, __ATOMIC_RELAXED);
    if (us > __atomic_load_n(&j->write_us_max, __ATOMIC_RELAXED))
        __atomic_store_n(&j->write_us_max, us, __ATOMIC_RELAXED);
}

static void write_lines_inner(gw_journal *j, struct jline *v, size_t n, int counted)
{
    static char nl[] = "\n";
    size_t i = 0;

    while (i < n) {
        struct iovec iov[IOV_MAX];
        size_t wl[IOV_MAX];
        int cnt = 0;

        if (j->chain && counted)
            maybe_rotate(j);
        int prefix = j->torn;
        size_t first = i, acc = 0, done;
        uint64_t seq = j->seq;
        const char *prev = j->head;

        if (prefix)
            iov[cnt++] = (struct iovec){.iov_base = nl, .iov_len = 1};
        while (i < n && (j->chain ? cnt < IOV_MAX - 1 && i - first < CHAIN_GROUP : cnt < IOV_MAX)) {
            size_t g = i - first;
            if (j->chain) {
                char *sfx = j->sfx[g];
                size_t sl = chain_line(j, &v[i], ++seq, prev, sfx);
                prev = sfx + sl - 67;
                iov[cnt++] = (struct iovec){.iov_base = v[i].p, .iov_len = v[i].len - 2};
                iov[cnt++] = (struct iovec){.iov_base = sfx, .iov_len = sl};
                wl[g] = v[i].len - 2 + sl;
            } else {
                iov[cnt++] = (struct iovec){.iov_base = v[i].p, .iov_len = v[i].len};
                wl[g] = v[i].len;
            }
            acc += wl[g];
            i++;
            if (j->chain && j->rotate_bytes > 0 && j->regular &&
                j->cur_size + acc >= j->rotate_bytes)
                break;
        }
        __atomic_store_n(&j->io_started_ms, mono_ms(), __ATOMIC_RELAXED);
        int err = writev_all(j->fd, iov, cnt, &done);
        __atomic_store_n(&j->io_started_ms, 0, __ATOMIC_RELAXED);

        /* Which lines made it in full? */
        size_t rem = done;
        int torn = 0;
        if (prefix) {
            if (rem == 0)
                torn = 1; /* the old fragment is still unterminated */
            else
                rem--;
        }
        size_t k = first;
        while (k < i && rem >= wl[k - first]) {
            rem -= wl[k - first];
            k++;
        }
        if (rem > 0)
            torn = 1;
        if (done > 0)
            j->dirty = 1;
        j->cur_size += done;
        if (j->chain && k > first) {
            /* The head moves past the lines written in full only. */
            const char *h = j->sfx[k - 1 - first] + (wl[k - 1 - first] - (v[k - 1].len - 2)) - 67;
            j->seq += k - first;
            memcpy(j->head, h, 64);
            j->head_is_cp = 0;
        }

        pthread_mutex_lock(&j->mu);
        if (counted) {
            j->written += k - first;
            j->inflight -= k - first;
        }
        j->st_seq = j->seq;
        if (err) {
            j->write_errors++;
            if (counted) {
                j->dropped_write += n - k;
                j->inflight -= n - k;
                j->lost_pending += n - k;
            }
            j->write_ok = 0;
            j->last_errno = err;
            j->last_op = "write";
        } else {
            j->write_ok = 1;
        }
        pthread_mutex_unlock(&j->mu);

        j->torn = err ? torn : 0;
        if (err)
            break;
    }
    size_t held = 0;
    for (i = 0; i < n; i++) {
        held += v[i].reserved != 0;
        free(v[i].p);
        v[i].p = NULL;
    }
    if (held > 0) {
        /* written or lost: either way the reservation's room is free */
        pthread_mutex_lock(&j->mu);
        j->rsv_held -= held;
        pthread_mutex_unlock(&j->mu);
    }
}

/* Returns 0, or -1 when fdatasync() failed. */
static int sync_file(gw_journal *j)
{
    int r = 0, rc = 0;

    if (!j->no_sync) {
        __atomic_store_n(&j->io_started_ms, mono_ms(), __ATOMIC_RELAXED);
        do
            r = fdatasync(j->fd);
        while (r < 0 && errno == EINTR);
        __atomic_store_n(&j->io_started_ms, 0, __ATOMIC_RELAXED);
    }
    if (r < 0 && (errno == EINVAL || errno == EROFS)) {
        /* A pipe, FIFO or character device (journal on stdout, tests on
         * /dev/full): nothing to sync, and not an error. */
        j->no_sync = 1;
    } else if (r < 0) {
        int e = errno;
        pthread_mutex_lock(&j->mu);
        j->write_errors++;
        j->sync_ok = 0;
        j->last_errno = e;
        j->last_op = "fdatasync";
        pthread_mutex_unlock(&j->mu);
        rc = -1;
    } else if (!j->no_sync) {
        pthread_mutex_lock(&j->mu);
        j->sync_ok = 1;
        pthread_mutex_unlock(&j->mu);
    }
    /* Linux reports a writeback error once and marks the pages clean, so a
     * retry would not bring the data back: the file is no longer dirty. */
    j->dirty = 0;
    j->last_sync_ms = mono_ms();
    return rc;
}

static void sync_dir(const gw_journal *j)
{
    int d = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d >= 0) {
        fsync(d);
        close(d);
    }
}

/* One of the writer's own records, chained and written at once: 0 when it
 * reached the file. Takes <o>. */
static int emit(gw_journal *j, json_t *o)
{
    gw_buf b = {0};
    struct jline l = {0};
    uint64_t before = j->seq;

    if (o == NULL)
        return -1;
    if (json_dump_callback(o, dump_cb, &b, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0 || b.oom) {
        gw_buf_free(&b);
        json_decref(o);
        return -1;
    }
    json_decref(o);
    gw_buf_append(&b, "\n", 1);
    l.p = gw_buf_take(&b, &l.len);
    if (l.p == NULL)
        return -1;
    write_lines(j, &l, 1, 0);
    return j->seq == before + 1 ? 0 : -1;
}

/* {"v":1,"type":<type>,"ts":<ts>} to which the caller adds its members. */
static json_t *own_record(const char *type, const char *ts)
{
    json_t *o = json_object();
    if (o != NULL && (json_object_set_new(o, "v", json_integer(GW_JOURNAL_SCHEMA_VERSION)) != 0 ||
                      json_object_set_new(o, "type", json_string(type)) != 0 ||
                      json_object_set_new(o, "ts", json_string(ts)) != 0)) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

/* The name, in <j->dir>, of the file with <st>'s inode (where logrotate or an
 * operator moved the current file). malloc'd, or NULL. */
static char *name_by_inode(const gw_journal *j, const struct stat *st)
{
    DIR *d = opendir(j->dir);
    struct dirent *de;
    char *name = NULL;
    if (d == NULL)
        return NULL;
    while (name == NULL && (de = readdir(d)) != NULL) {
        struct stat s;
        if (de->d_ino == st->st_ino &&
            fstatat(dirfd(d), de->d_name, &s, AT_SYMLINK_NOFOLLOW) == 0 && s.st_dev == st->st_dev &&
            s.st_ino == st->st_ino)
            name = strdup(de->d_name);
    }
    closedir(d);
    return name;
}

/* The chain moves to <fd>, a new file at <path>: end the old file on a line
 * boundary, sync and close it, then write the rotate record, the first record
 * of the new file, naming the old one (<from>, NULL when unknown). */
static void switch_file(gw_journal *j, int fd, const char *reason, const char *from)
{
    struct stat st;
    char ts[32];

    if (j->torn) {
        ssize_t w;
        do
            w = write(j->fd, "\n", 1);
        while (w < 0 && errno == EINTR);
    }
    sync_file(j);
    close(j->fd);
    j->fd = fd;
    j->no_sync = 0;
    j->torn = 0;
    j->dirty = 0;
    j->regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    j->cur_size = j->regular ? (uint64_t)st.st_size : 0;
    j->file_day = utc_day(wall(j, NULL));
    sync_dir(j);
    pthread_mutex_lock(&j->mu);
    j->st_rotations++;
    pthread_mutex_unlock(&j->mu);

    wall_iso(j, ts);
    json_t *o = own_record("rotate", ts);
    if (o != NULL &&
        (json_object_set_new(o, "reason", json_string(reason)) != 0 ||
         json_object_set_new(o, "from", from ? json_string(from) : json_null()) != 0)) {
        json_decref(o);
        o = NULL;
    }
    emit(j, o);
}

/* Rename <path> to <path>.<stamp>[-N] without replacing anything. 0 and the
 * malloc'd new name, or an errno value. */
static int rename_unique(gw_journal *j, char **target)
{
    char stamp[32];
    struct tm tm;
    time_t now = wall(j, NULL);
    int e = 0;

    /* Chain order is name order: a wall clock stepped back must not give a
     * newer file an older name. */
    if (now < j->last_stamp)
        now = j->last_stamp;
    j->last_stamp = now;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    *target = NULL;
    for (unsigned k = 0; k < 100000; k++) {
        char *t = NULL;
        if ((k ? asprintf(&t, "%s.%s-%u", j->path, stamp, k)
               : asprintf(&t, "%s.%s", j->path, stamp)) < 0)
            return ENOMEM;
        int r = renameat2(AT_FDCWD, j->path, AT_FDCWD, t, RENAME_NOREPLACE);
        if (r < 0 && (errno == EINVAL || errno == ENOSYS)) {
            /* A filesystem without RENAME_NOREPLACE: check, then rename. */
            r = access(t, F_OK) == 0 ? (errno = EEXIST, -1) : rename(j->path, t);
        }
        if (r == 0) {
            *target = t;
            return 0;
        }
        e = errno;
        free(t);
        if (e != EEXIST)
            return e;
    }
    return EEXIST;
}

/* Rotate: rename the current file (when it is still at <path>), open a new
 * <path>, switch. A failure leaves the journal writing where it was and is
 * retried after ROTATE_RETRY_MS. */
static void rotate_file(gw_journal *j, const char *reason)
{
    struct stat a, b;
    char *target = NULL, *found = NULL;
    const char *from;
    char ebuf[128];

    if (fstat(j->fd, &a) != 0)
        return;
    if (stat(j->path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
        int e = rename_unique(j, &target);
        if (e != 0) {
            fprintf(stderr, "opale-gateway: journal %s: rotation failed: rename: %s\n", j->path,
                    strerror_r(e, ebuf, sizeof(ebuf)));
            j->rotate_retry_ms = mono_ms() + ROTATE_RETRY_MS;
            return;
        }
        from = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
    } else {
        /* Someone moved it already: keep its new name for the record. */
        found = name_by_inode(j, &a);
        from = found;
    }
    int fd = open(j->path, OPEN_FLAGS, OPEN_MODE);
    if (fd < 0) {
        fprintf(stderr,
                "opale-gateway: journal %s: rotation failed: cannot open a new file: %s; still "
                "writing to %s\n",
                j->path, strerror_r(errno, ebuf, sizeof(ebuf)), from ? from : "the old file");
        j->rotate_retry_ms = mono_ms() + ROTATE_RETRY_MS;
    } else {
        j->rotate_retry_ms = 0;
        switch_file(j, fd, reason, from);
    }
    free(target);
    free(found);
}

/* Before a group of lines: rotate if the file is full or from another day. */
static void maybe_rotate(gw_journal *j)
{
    if (!j->regular || (j->rotate_bytes == 0 && !j->rotate_daily))
        return;
    if (j->rotate_retry_ms != 0 && mono_ms() < j->rotate_retry_ms)
        return;
    const char *why = NULL;
    if (j->rotate_bytes > 0 && j->cur_size >= j->rotate_bytes) {
        why = "size";
    } else if (j->rotate_daily) {
        long long day = utc_day(wall(j, NULL));
        if (day != j->file_day) {
            if (j->cur_size == 0)
                j->file_day = day; /* nothing of the old day to move away */
            else
                why = "day";
        }
    }
    if (why != NULL)
        rotate_file(j, why);
}

/* logrotate renamed the file: open <path> again. The new file is opened
 * before the old one is closed, so a failure leaves the journal writing to
 * the old file (and says so) rather than to nothing. A chained journal
 * continues its chain in the new file after a rotate record; if <path> is
 * still the current file, nothing changes. */
static void reopen_file(gw_journal *j)
{
    int fd = open(j->path, OPEN_FLAGS, OPEN_MODE);
    if (fd < 0) {
        char buf[128];
        fprintf(stderr,
                "opale-gateway: journal %s: reopen failed: %s; still writing to the old file\n",
                j->path, strerror_r(errno, buf, sizeof(buf)));
        return;
    }
    if (j->chain) {
        struct stat a, b;
        if (fstat(j->fd, &a) == 0 && fstat(fd, &b) == 0 && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino) {
            close(fd); /* not rotated: same file */
            return;
        }
        char *from = a.st_nlink > 0 ? name_by_inode(j, &a) : NULL;
        switch_file(j, fd, "reopen", from);
        free(from);
        return;
    }
    if (j->torn) {
        /* Best effort: end the rotated file on a line boundary. */
        ssize_t w;
        do
            w = write(j->fd, "\n", 1);
        while (w < 0 && errno == EINTR);
    }
    sync_file(j);
    close(j->fd);
    j->fd = fd;
    j->no_sync = 0;
    j->torn = 0;
    j->dirty = 0;
}

/* ---- reading a journal file's ends (open, retention) ---- */

struct file_end {
    int found; /* <last> is set */
    gw_journal_link last;
    int last_is_cp;   /* the last record is a checkpoint */
    int hash_bad;     /* its hash does not recompute */
    int torn;         /* the file does not end in '\n' */
    int tail_record;  /* ... but its last line is a complete record */
    int foreign;      /* complete lines without the chain members were seen */
    int any_complete; /* the file has at least one complete line */
};

static int is_cp_line(const char *p, size_t n)
{
    static const char t[] = "\"type\":\"checkpoint\"";
    return memmem(p, n, t, sizeof(t) - 1) != NULL;
}

/* The last chained record of the file open on <fd> (<size> bytes). A final
 * line without '\n' counts when it is a complete record (only the newline is
 * missing). Reads at most TAIL_MAX bytes from the end. Returns 0 or an errno
 * value. */
static int read_end(int fd, uint64_t size, struct file_end *fe)
{
    memset(fe, 0, sizeof(*fe));
    if (size == 0)
        return 0;
    size_t win = 65536;
    for (;;) {
        if (win > size)
            win = (size_t)size;
        uint64_t start = size - win;
        char *buf = malloc(win);
        if (buf == NULL)
            return ENOMEM;
        size_t got = 0;
        while (got < win) {
            ssize_t r = pread(fd, buf + got, win - got, (off_t)(start + got));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                int e = r < 0 ? errno : EIO;
                free(buf);
                return e;
            }
            got += (size_t)r;
        }
        memset(fe, 0, sizeof(*fe));
        size_t end = win; /* lines end before <end> */
        fe->torn = buf[win - 1] != '\n';
        int incomplete = 0;
        if (fe->torn) {
            const char *nl = memrchr(buf, '\n', win);
            size_t ls = nl ? (size_t)(nl - buf) + 1 : 0;
            if (ls == 0 && start > 0)
                incomplete = 1; /* the cut line starts before the window */
            if (ls > 0 || start == 0) {
                gw_journal_link l;
                if (gw_journal_parse_link(buf + ls, win - ls, &l) == 0 &&
                    gw_journal_link_ok(buf + ls, &l)) {
                    fe->found = 1;
                    fe->tail_record = 1;
                    fe->last = l;
                    fe->last_is_cp = is_cp_line(buf + ls, win - ls);
                    free(buf);
                    return 0;
                }
            }
            end = ls;
        }
        /* Complete lines, from the last one back. */
        while (end > 0 && !incomplete) {
            const char *nl = end >= 2 ? memrchr(buf, '\n', end - 1) : NULL;
            size_t ls = nl ? (size_t)(nl - buf) + 1 : 0;
            if (ls == 0 && start > 0) {
                incomplete = 1; /* the line may start before the window */
                break;
            }
            fe->any_complete = 1;
            gw_journal_link l;
            if (gw_journal_parse_link(buf + ls, end - ls, &l) == 0) {
                fe->found = 1;
                fe->last = l;
                fe->last_is_cp = is_cp_line(buf + ls, end - ls);
                fe->hash_bad = !gw_journal_link_ok(buf + ls, &l);
                break;
            }
            fe->foreign = 1;
            end = ls;
        }
        free(buf);
        if (!incomplete || win == size || win >= TAIL_MAX)
            return 0;
        win = win * 4 > TAIL_MAX ? TAIL_MAX : win * 4;
    }
}

/* seq of the first chained record among the first 64 KiB of <fd>, or 0. */
static uint64_t read_first_seq(int fd)
{
    char buf[65536];
    ssize_t n;
    do
        n = pread(fd, buf, sizeof(buf), 0);
    while (n < 0 && errno == EINTR);
    size_t off = 0;
    while (n > 0 && off < (size_t)n) {
        const char *nl = memchr(buf + off, '\n', (size_t)n - off);
        if (nl == NULL)
            break;
        gw_journal_link l;
        if (gw_journal_parse_link(buf + off, (size_t)(nl - (buf + off)), &l) == 0)
            return l.seq;
        off = (size_t)(nl - buf) + 1;
    }
    return 0;
}

/* ---- retention ---- */

/* Delete the rotated files older than retention_days, oldest first. Each
 * deletion is preceded by a chained "retention" record naming the file and
 * the end of the chain it held, synced to disk: a file is never deleted
 * without its record. */
static void run_retention(gw_journal *j)
{
    char **files = NULL;
    size_t n = 0;
    char ebuf[128];
    struct stat cur;

    if (!j->regular || gw_journal_list_files(j->path, &files, &n, NULL) != 0)
        return;
    time_t now = wall(j, NULL);
    time_t limit = now - (time_t)j->retention_days * 86400;
    int have_cur = fstat(j->fd, &cur) == 0;
    int deleted = 0;
    for (size_t i = 0; i < n; i++) {
        time_t stamp;
        if (!gw_journal_rotated_name(files[i], NULL, &stamp, NULL))
            continue;
        if (stamp >= limit)
            break; /* sorted oldest first: the rest are younger */
        int fd = open(files[i], O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) {
            fprintf(stderr, "opale-gateway: journal %s: retention: cannot read %s: %s\n", j->path,
                    files[i], strerror_r(errno, ebuf, sizeof(ebuf)));
            if (fd >= 0)
                close(fd);
            continue;
        }
        if (have_cur && st.st_dev == cur.st_dev && st.st_ino == cur.st_ino) {
            close(fd);
            continue; /* the file being written (a rotation that could not reopen) */
        }
        struct file_end fe;
        uint64_t first = 0;
        int e = read_end(fd, (uint64_t)st.st_size, &fe);
        if (e == 0)
            first = read_first_seq(fd);
        close(fd);
        if (e != 0) {
            fprintf(stderr, "opale-gateway: journal %s: retention: cannot read %s: %s\n", j->path,
                    files[i], strerror_r(e, ebuf, sizeof(ebuf)));
            continue;
        }
        const char *name = strrchr(files[i], '/') ? strrchr(files[i], '/') + 1 : files[i];
        char ts[32];
        maybe_rotate(j);
        wall_iso(j, ts);
        json_t *o = own_record("retention", ts);
        int fail = o == NULL || json_object_set_new(o, "deleted", json_string(name)) != 0;
        if (!fail && first > 0)
            fail = json_object_set_new(o, "first_seq", json_integer((json_int_t)first)) != 0;
        if (!fail && fe.found)
            fail = json_object_set_new(o, "last_seq", json_integer((json_int_t)fe.last.seq)) != 0 ||
                   json_object_set_new(o, "last_hash", json_string(fe.last.hash)) != 0;
        if (fail) {
            json_decref(o);
            break;
        }
        if (emit(j, o) != 0 || sync_file(j) != 0) {
            fprintf(stderr,
                    "opale-gateway: journal %s: retention: the record of %s could not be "
                    "written; not deleted\n",
                    j->path, name);
            break;
        }
        if (unlink(files[i]) != 0) {
            fprintf(stderr, "opale-gateway: journal %s: retention: cannot delete %s: %s\n", j->path,
                    files[i], strerror_r(errno, ebuf, sizeof(ebuf)));
            continue;
        }
        deleted = 1;
        pthread_mutex_lock(&j->mu);
        j->st_deleted++;
        pthread_mutex_unlock(&j->mu);
    }
    if (deleted)
        sync_dir(j);
    gw_journal_free_files(files, n);
}

/* ---- checkpoints ---- */

/* A signed checkpoint over the head, unless the head is one already (an
 * idle journal gets no new checkpoint). */
static void write_checkpoint(gw_journal *j)
{
    char ts[32];

    j->next_cp_ms = mono_ms() + (uint64_t)j->checkpoint_s * 1000u;
    if (!j->has_signer || j->seq == 0 || j->head_is_cp)
        return;
    maybe_rotate(j); /* before the head is read: the checkpoint must follow it */
    wall_iso(j, ts);
    json_t *p = json_pack("{s:s,s:I,s:s,s:s}", "purpose", "journal.checkpoint", "head_seq",
                          (json_int_t)j->seq, "head_hash", j->head, "ts", ts);
    char *sig = p != NULL ? gw_jws_sign(&j->signer, NULL, p) : NULL;
    json_decref(p);
    if (sig == NULL) {
        fprintf(stderr, "opale-gateway: journal %s: checkpoint: signing failed\n", j->path);
        return;
    }
    json_t *o = own_record("checkpoint", ts);
    if (o != NULL && (json_object_set_new(o, "head_seq", json_integer((json_int_t)j->seq)) != 0 ||
                      json_object_set_new(o, "head_hash", json_string(j->head)) != 0 ||
                      json_object_set_new(o, "kid", json_string(j->signer.kid)) != 0 ||
                      json_object_set_new(o, "sig", json_string(sig)) != 0)) {
        json_decref(o);
        o = NULL;
    }
    free(sig);
    if (emit(j, o) == 0) {
        j->head_is_cp = 1;
        pthread_mutex_lock(&j->mu);
        j->st_checkpoints++;
        pthread_mutex_unlock(&j->mu);
        /* A copy of the head outside the file: the anchor that makes a
         * truncation before this checkpoint detectable (--expect-head). */
        fprintf(stderr, "opale-gateway: journal %s: checkpoint seq=%" PRIu64 " hash=%s\n", j->path,
                j->seq, j->head);
    }
}

/* stderr reports, at most one per kind per REPORT_INTERVAL_MS; <final> (from
 * gw_journal_close) reports whatever is left regardless. Messages state
 * totals, so a suppressed report loses no count. */
static void report(gw_journal *j, int final)
{
    uint64_t now = mono_ms();
    uint64_t full, closed, null, wr, errors;
    int last_errno;
    const char *last_op;

    pthread_mutex_lock(&j->mu);
    full = j->dropped_full;
    closed = j->dropped_closed;
    null = j->dropped_null;
    wr = j->dropped_write;
    errors = j->write_errors;
    last_errno = j->last_errno;
    last_op = j->last_op;
    pthread_mutex_unlock(&j->mu);

    if (errors != j->reported_errors && (final || now >= j->next_error_report_ms)) {
        char buf[128];
        fprintf(
            stderr, "opale-gateway: journal %s: %s failed: %s (%" PRIu64 " write errors so far)\n",
            j->path, last_op ? last_op : "write", strerror_r(last_errno, buf, sizeof(buf)), errors);
        j->reported_errors = errors;
        j->next_error_report_ms = now + REPORT_INTERVAL_MS;
    }
    uint64_t dropped = full + closed + null + wr;
    if (dropped != j->reported_dropped && (final || now >= j->next_drop_report_ms)) {
        fprintf(stderr,
                "opale-gateway: journal %s: %" PRIu64 " lines dropped so far (queue full %" PRIu64
                ", write errors %" PRIu64 ", after close %" PRIu64 ", no line %" PRIu64 ")\n",
                j->path, dropped, full, wr, closed, null);
        j->reported_dropped = dropped;
        j->next_drop_report_ms = now + REPORT_INTERVAL_MS;
    }
}

static void deadline_ts(uint64_t ms, struct timespec *ts)
{
    ts->tv_sec = (time_t)(ms / 1000u);
    ts->tv_nsec = (long)(ms % 1000u) * 1000000L;
}

/* When the idle writer must wake up on its own: the next fdatasync() of
 * written data, the next allowed report of unreported drops or errors, the
 * next checkpoint of records not yet covered by one, the next retention
 * pass. UINT64_MAX when nothing is pending: an idle gateway's writer sleeps
 * until signalled. Called with <mu> held. */
static uint64_t next_deadline(const gw_journal *j)
{
    uint64_t d = UINT64_MAX;

    if (j->dirty && j->sync_ms > 0)
        d = j->last_sync_ms + j->sync_ms;
    if (dropped_total(j) != j->reported_dropped && j->next_drop_report_ms < d)
        d = j->next_drop_report_ms;
    if (j->write_errors != j->reported_errors && j->next_error_report_ms < d)
        d = j->next_error_report_ms;
    if (j->has_signer && j->seq > 0 && !j->head_is_cp && j->next_cp_ms < d)
        d = j->next_cp_ms;
    if (j->retention_days > 0 && j->next_ret_ms < d)
        d = j->next_ret_ms;
    return d;
}

/* Free bytes for the journal's file system (UINT64_MAX when unknown: a
 * pipe, or statvfs failed). */
static uint64_t fs_avail(const gw_journal *j)
{
    struct statvfs vs;
    if (statvfs(j->dir, &vs) != 0)
        return UINT64_MAX;
    return (uint64_t)vs.f_bavail * (uint64_t)vs.f_frsize;
}

/* Count one refusal under <reason> for the next summary record. <mu> held. */
static void summary_add(gw_journal *j, const char *reason, uint64_t n)
{
    size_t i = 0;
    if (j->sum_total == 0) {
        gw_time_iso_ms(j->sum_from); /* real clock: <mu> is held, wall() takes it */
        memset(j->sum_reason, 0, sizeof(j->sum_reason));
        memset(j->sum_count, 0, sizeof(j->sum_count));
        j->sum_other = 0;
    }
    j->sum_total += n;
    while (i < SUMMARY_REASONS && j->sum_reason[i] != NULL && strcmp(j->sum_reason[i], reason) != 0)
        i++;
    if (i == SUMMARY_REASONS) {
        j->sum_other += n;
        return;
    }
    j->sum_reason[i] = reason;
    j->sum_count[i] += n;
}

static void summary_count(gw_journal *j, const char *reason)
{
    j->st_summarised++;
    summary_add(j, reason, 1);
}

/* Drop from the batch wq[0..*n) the refusal lines that do not fit in the
 * free space left once the reservations held and the writer's own room are
 * set aside (and the refusals kept before them), counting them for a
 * summary. Keeps the order; moves *split (the reopen point) along. Returns
 * how many were dropped. */
static int summarise_refusals(gw_journal *j, size_t *n, size_t *split)
{
    int any = 0;
    for (size_t i = 0; i < *n; i++)
        any |= j->wq[i].reason != NULL;
    if (!any || !j->check_space)
        return 0;
    uint64_t avail = fs_avail(j);
    pthread_mutex_lock(&j->mu);
    __atomic_store_n(&j->avail, avail, __ATOMIC_RELAXED);
    __atomic_store_n(&j->avail_ms, mono_ms(), __ATOMIC_RELAXED);
    uint64_t need = (uint64_t)j->rsv_held * GW_JOURNAL_LINE_MAX + 2u * OWN_RESERVE_BYTES;
    size_t out = 0, nsplit = *split;
    int skipped = 0;
    for (size_t i = 0; i < *n; i++) {
        struct jline *l = &j->wq[i];
        if (l->reason != NULL) {
            uint64_t cost = l->len + SUFFIX_MAX;
            if (avail < need + cost) {
                summary_count(j, l->reason);
                j->inflight--;
                free(l->p);
                skipped++;
                if (i < *split)
                    nsplit--;
                continue;
            }
            need += cost;
        }
        j->wq[out++] = *l;
    }
    pthread_mutex_unlock(&j->mu);
    *n = out;
    *split = nsplit;
    return skipped;
}

/* After a pass: a "gap" record for the records lost on write errors since
 * the last one, once a write succeeds again; a "summary" of the refusals
 * not written, once the pass had room for all of its refusals. */
static void write_gap_and_summary(gw_journal *j, int skipped)
{
    pthread_mutex_lock(&j->mu);
    uint64_t lost = j->lost_pending;
    int ok = j->write_ok;
    pthread_mutex_unlock(&j->mu);
    if (lost > 0 && ok) {
        char ts[32];
        wall_iso(j, ts);
        json_t *o = own_record("gap", ts);
        if (o != NULL && (json_object_set_new(o, "reason", json_string("write_error")) != 0 ||
                          json_object_set_new(o, "lost", json_integer((json_int_t)lost)) != 0)) {
            json_decref(o);
            o = NULL;
        }
        if (emit(j, o) == 0) {
            pthread_mutex_lock(&j->mu);
            j->lost_pending -= lost;
            pthread_mutex_unlock(&j->mu);
        }
    }
    if (skipped)
        return;
    char ts[32];
    wall_iso(j, ts);
    uint64_t avail = j->check_space ? fs_avail(j) : UINT64_MAX;
    pthread_mutex_lock(&j->mu);
    uint64_t total = j->sum_total;
    int room = avail >= (uint64_t)j->rsv_held * GW_JOURNAL_LINE_MAX + 2u * OWN_RESERVE_BYTES +
                            GW_JOURNAL_LINE_MAX;
    json_t *o = NULL;
    if (total > 0 && room && j->write_ok) {
        o = own_record("summary", ts);
        json_t *r = json_object();
        int bad = o == NULL || r == NULL;
        for (size_t i = 0; !bad && i < SUMMARY_REASONS && j->sum_reason[i] != NULL; i++)
            bad = json_object_set_new(r, j->sum_reason[i],
                                      json_integer((json_int_t)j->sum_count[i])) != 0;
        if (!bad && j->sum_other > 0)
            bad = json_object_set_new(r, "other", json_integer((json_int_t)j->sum_other)) != 0;
        if (bad) {
            json_decref(r);
            json_decref(o);
            o = NULL;
        } else if (json_object_set_new(o, "from", json_string(j->sum_from)) != 0 ||
                   json_object_set_new(o, "unwritten", json_integer((json_int_t)total)) != 0 ||
                   json_object_set_new(o, "reasons", r) != 0) { /* steals <r> in any case */
            json_decref(o);
            o = NULL;
        }
    }
    /* Take the counts out; put them back if the record is not written. */
    const char *reason[SUMMARY_REASONS];
    uint64_t count[SUMMARY_REASONS], other = j->sum_other;
    memcpy(reason, j->sum_reason, sizeof(reason));
    memcpy(count, j->sum_count, sizeof(count));
    char from[32];
    memcpy(from, j->sum_from, sizeof(from));
    if (o != NULL)
        j->sum_total = 0;
    pthread_mutex_unlock(&j->mu);
    if (o == NULL || emit(j, o) == 0)
        return;
    pthread_mutex_lock(&j->mu);
    uint64_t since = j->sum_total;
    for (size_t i = 0; i < SUMMARY_REASONS && reason[i] != NULL; i++)
        summary_add(j, reason[i], count[i]);
    if (other > 0)
        summary_add(j, "other", other);
    if (since == 0)
        memcpy(j->sum_from, from, sizeof(from));
    pthread_mutex_unlock(&j->mu);
}

/* The state file: "<head seq> <records pending>\n", fixed width, rewritten
 * in place when either changed. Pending: reservations taken and lines
 * queued or being written, everything a kill now could lose. */
static void write_state(gw_journal *j)
{
    if (j->state_fd < 0)
        return;
    pthread_mutex_lock(&j->mu);
    size_t pending = j->rsv_pending + j->qlen + j->inflight;
    pthread_mutex_unlock(&j->mu);
    if (j->state_written && j->state_seq == j->seq && j->state_held == pending)
        return;
    char buf[48];
    int len = snprintf(buf, sizeof(buf), "%020" PRIu64 " %020zu\n", j->seq, pending);
    if (pwrite(j->state_fd, buf, (size_t)len, 0) == len) {
        j->state_written = 1;
        j->state_seq = j->seq;
        j->state_held = pending;
    }
}

/* First record after an unclean stop (the state file was there at open). */
static void write_restart_gap(gw_journal *j)
{
    char ts[32];
    wall_iso(j, ts);
    json_t *o = own_record("gap", ts);
    if (o != NULL &&
        (json_object_set_new(o, "reason", json_string("unclean_stop")) != 0 ||
         json_object_set_new(o, "state_seq", json_integer((json_int_t)j->prev_state_seq)) != 0 ||
         json_object_set_new(o, "lost_max", json_integer((json_int_t)j->prev_state_held)) != 0)) {
        json_decref(o);
        o = NULL;
    }
    if (emit(j, o) == 0)
        fprintf(stderr,
                "opale-gateway: journal %s: the previous run stopped without closing the journal "
                "(head seq %" PRIu64 ", up to %" PRIu64 " records pending): gap record seq %" PRIu64
                "\n",
                j->path, j->prev_state_seq, j->prev_state_held, j->seq);
}

static void *writer_main(void *arg)
{
    gw_journal *j = arg;

    if (j->chain) {
        if (j->restart_from != NULL) {
            /* The current file was empty: the chain continues from the
             * newest rotated file, and this record says so. */
            char ts[32];
            wall_iso(j, ts);
            json_t *o = own_record("rotate", ts);
            if (o != NULL && (json_object_set_new(o, "reason", json_string("restart")) != 0 ||
                              json_object_set_new(o, "from", json_string(j->restart_from)) != 0)) {
                json_decref(o);
                o = NULL;
            }
            emit(j, o);
        }
        if (j->prev_unclean)
            write_restart_gap(j);
        if (j->retention_days > 0)
            run_retention(j);
        j->next_ret_ms = mono_ms() + RETENTION_PERIOD_MS;
        j->next_cp_ms = mono_ms() + (uint64_t)j->checkpoint_s * 1000u;
    }
    for (;;) {
        size_t n = 0, split = 0;
        int reopen = 0, closing;

        pthread_mutex_lock(&j->mu);
        while (!j->closing &&
               (j->paused || (j->qlen == 0 && !j->reopen_pending && !j->state_dirty))) {
            uint64_t d = next_deadline(j);
            if (d == UINT64_MAX) {
                pthread_cond_wait(&j->cv, &j->mu);
                continue;
            }
            if (mono_ms() >= d)
                break;
            struct timespec ts;
            deadline_ts(d, &ts);
            if (pthread_cond_timedwait(&j->cv, &j->mu, &ts) == ETIMEDOUT)
                break;
        }
        /* Batching: let more lines arrive, up to batch_ms or a full batch
         * (gw_journal_submit signals then), unless closing or reopening. */
        if (j->batch_ms > 0 && j->qlen > 0 && j->qlen < JOURNAL_BATCH_LINES && !j->closing &&
            !j->paused && !j->reopen_pending) {
            struct timespec ts;
            deadline_ts(mono_ms() + j->batch_ms, &ts);
            while (j->qlen < JOURNAL_BATCH_LINES && !j->closing && !j->reopen_pending)
                if (pthread_cond_timedwait(&j->cv, &j->mu, &ts) == ETIMEDOUT)
                    break;
        }
        closing = j->closing;
        if (closing || !j->paused) {
            struct jline *t = j->q;
            j->q = j->wq;
            j->wq = t;
            n = j->qlen;
            j->qlen = 0;
            j->inflight = n;
            if (j->reopen_pending) {
                reopen = 1;
                split = j->reopen_at < n ? j->reopen_at : n;
                j->reopen_pending = 0;
            }
        }
        j->state_dirty = 0;
        pthread_mutex_unlock(&j->mu);

        /* Refusals that would eat into the reserved room are counted for
         * a summary record instead of written. */
        int skipped = summarise_refusals(j, &n, &split);

        /* Lines queued before the reopen request go to the old file, the
         * rest to the new one. */
        write_lines(j, j->wq, split, 1);
        if (reopen)
            reopen_file(j);
        write_lines(j, j->wq + split, n - split, 1);

        if (j->chain) {
            uint64_t now = mono_ms();
            if (j->retention_days > 0 && now >= j->next_ret_ms) {
                run_retention(j);
                j->next_ret_ms = now + RETENTION_PERIOD_MS;
            }
            if (j->has_signer && (closing || now >= j->next_cp_ms))
                write_checkpoint(j);
        }
        if (j->chain)
            write_gap_and_summary(j, skipped);
        if (closing || (j->dirty && (j->sync_ms == 0 || mono_ms() - j->last_sync_ms >= j->sync_ms)))
            sync_file(j);
        write_state(j);
        if (closing)
            break; /* submit refuses lines once closing is set: nothing is left */
        report(j, 0);
    }
    pthread_mutex_lock(&j->mu);
    j->exited = 1;
    pthread_cond_broadcast(&j->done_cv);
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Public API                                                               */
/* ------------------------------------------------------------------------ */

gw_journal *gw_journal_open(const char *path, size_t queue_cap, unsigned sync_ms, char **err)
{
    gw_journal_opts o = {.path = path, .queue_cap = queue_cap, .sync_ms = sync_ms, .raw = 1};
    return gw_journal_open_opts(&o, err);
}

/* Where the chain of a journal being opened continues. Called before the
 * writer starts, on the open descriptor <j->fd>. Returns 0 or -1 with
 * <*err>. */
static int find_head(gw_journal *j, char **err)
{
    struct stat st;
    struct file_end fe;
    char ebuf[128];

    memcpy(j->head, GW_JOURNAL_GENESIS, 65);
    j->seq = 0;
    if (fstat(j->fd, &st) != 0) {
        set_err(err, "journal %s: cannot stat: %s", j->path, strerror_r(errno, ebuf, sizeof(ebuf)));
        return -1;
    }
    j->regular = S_ISREG(st.st_mode);
    j->file_day = utc_day(st.st_size > 0 ? st.st_mtime : time(NULL));
    if (!j->regular)
        return 0; /* a pipe: nothing to read back, the chain starts here */
    j->cur_size = (uint64_t)st.st_size;
    int rfd = open(j->path, O_RDONLY | O_CLOEXEC);
    struct stat rst;
    if (rfd < 0 || fstat(rfd, &rst) != 0 || rst.st_ino != st.st_ino || rst.st_dev != st.st_dev) {
        set_err(err, "journal %s: cannot read back: %s", j->path,
                rfd < 0 ? strerror_r(errno, ebuf, sizeof(ebuf)) : "the file changed during open");
        if (rfd >= 0)
            close(rfd);
        return -1;
    }
    int e = read_end(rfd, (uint64_t)st.st_size, &fe);
    close(rfd);
    if (e != 0) {
        set_err(err, "journal %s: cannot read back: %s", j->path,
                strerror_r(e, ebuf, sizeof(ebuf)));
        return -1;
    }
    if (!fe.found && fe.foreign)
        fprintf(stderr,
                "opale-gateway: journal %s: the file ends in lines without a chain (written "
                "without the hash chain?); the chain starts after them\n",
                j->path);
    if (fe.torn) {
        /* End the cut line so that the next record starts on its own line. */
        ssize_t w;
        do
            w = write(j->fd, "\n", 1);
        while (w < 0 && errno == EINTR);
        if (w == 1)
            j->cur_size++;
        else
            j->torn = 1; /* the writer retries before its first line */
        if (fe.tail_record)
            fprintf(stderr,
                    "opale-gateway: journal %s: the last record had no newline; added, the chain "
                    "continues from seq %" PRIu64 "\n",
                    j->path, fe.last.seq);
        else
            fprintf(stderr,
                    "opale-gateway: journal %s: the last line is incomplete (a write cut short); "
                    "ended with a newline, the chain continues from the last complete record\n",
                    j->path);
    }
    if (fe.found) {
        if (fe.hash_bad)
            fprintf(stderr,
                    "opale-gateway: journal %s: the last record (seq %" PRIu64
                    ") does not match its hash; continuing from it: run --verify-journal\n",
                    j->path, fe.last.seq);
        j->seq = fe.last.seq;
        memcpy(j->head, fe.last.hash, 65);
        j->head_is_cp = fe.last_is_cp;
    }
    /* The newest rotation stamp; and when there is no record here, the
     * newest rotated file holds the head, if any. */
    char **files = NULL;
    size_t n = 0;
    if (gw_journal_list_files(j->path, &files, &n, NULL) != 0)
        return 0;
    for (size_t i = n; i-- > 0;) {
        if (gw_journal_rotated_name(files[i], NULL, &j->last_stamp, NULL))
            break;
    }
    if (fe.found) {
        gw_journal_free_files(files, n);
        return 0;
    }
    for (size_t i = n; i-- > 0;) {
        if (!gw_journal_rotated_name(files[i], NULL, NULL, NULL))
            continue;
        int fd = open(files[i], O_RDONLY | O_CLOEXEC);
        struct stat fst;
        if (fd >= 0 && fstat(fd, &fst) == 0 && read_end(fd, (uint64_t)fst.st_size, &fe) == 0 &&
            fe.found) {
            j->seq = fe.last.seq;
            memcpy(j->head, fe.last.hash, 65);
            j->head_is_cp = fe.last_is_cp;
            const char *b = strrchr(files[i], '/');
            j->restart_from = strdup(b ? b + 1 : files[i]);
        }
        if (fd >= 0)
            close(fd);
        break; /* only the newest: an older one would skip records */
    }
    gw_journal_free_files(files, n);
    return 0;
}

/* DIR/.NAME.state (hidden, so that a glob NAME* for the journal's files
 * does not take it): read what a previous run left (it did not close the
 * journal), then keep it open for write_state(). 0 or -1 with <*err>. */
static int open_state(gw_journal *j, char **err)
{
    char ebuf[128];
    if (asprintf(&j->state_path, "%s/.%s.state", j->dir, j->base) < 0) {
        j->state_path = NULL;
        set_err(err, "journal %s: out of memory", j->path);
        return -1;
    }
    j->state_fd = open(j->state_path, O_RDWR | O_CREAT | O_CLOEXEC, OPEN_MODE);
    if (j->state_fd < 0) {
        set_err(err, "journal %s: cannot open %s: %s", j->path, j->state_path,
                strerror_r(errno, ebuf, sizeof(ebuf)));
        return -1;
    }
    char buf[64] = {0};
    ssize_t n = pread(j->state_fd, buf, sizeof(buf) - 1, 0);
    if (n > 0) {
        unsigned long long seq = 0, held = 0;
        j->prev_unclean = 1;
        if (sscanf(buf, "%llu %llu", &seq, &held) == 2) {
            j->prev_state_seq = seq;
            j->prev_state_held = held;
        } else {
            j->prev_state_seq = j->seq; /* unreadable: at least the stop is recorded */
        }
    }
    return 0;
}

gw_journal *gw_journal_open_opts(const gw_journal_opts *o, char **err)
{
    gw_journal *j = NULL;
    int mu_ok = 0, cv_ok = 0;
    pthread_condattr_t ca;
    const char *path = o ? o->path : NULL;
    size_t queue_cap = o ? o->queue_cap : 0;

    if (err)
        *err = NULL;
    if (path == NULL || *path == '\0') {
        set_err(err, "journal: empty path");
        goto fail;
    }
    if (queue_cap == 0 || queue_cap > SIZE_MAX / sizeof(struct jline)) {
        set_err(err, "journal %s: queue capacity must be between 1 and %zu", path,
                SIZE_MAX / sizeof(struct jline));
        goto fail;
    }
    if (o->raw && (o->rotate_bytes || o->rotate_daily || o->retention_days || o->checkpoint_s)) {
        set_err(err, "journal %s: rotation, retention and checkpoints need a chained journal",
                path);
        goto fail;
    }
    if (o->checkpoint_s > 0 && (o->signer == NULL || !o->signer->can_sign ||
                                o->signer->pkey == NULL || o->signer->kid[0] == '\0')) {
        set_err(err, "journal %s: checkpoints need a signing key (a private key with a kid)", path);
        goto fail;
    }
    j = calloc(1, sizeof(*j));
    if (j == NULL) {
        set_err(err, "journal %s: out of memory", path);
        goto fail;
    }
    j->fd = -1;
    j->state_fd = -1;
    j->avail = UINT64_MAX;
    j->cap = queue_cap;
    j->sync_ms = o->sync_ms;
    j->batch_ms = o->batch_ms;
    j->chain = !o->raw;
    j->rotate_bytes = o->rotate_bytes;
    j->rotate_daily = o->rotate_daily != 0;
    j->retention_days = o->retention_days;
    j->checkpoint_s = o->checkpoint_s;
    j->write_ok = 1;
    j->sync_ok = 1;
    j->path = strdup(path);
    j->q = calloc(queue_cap, sizeof(*j->q));
    j->wq = calloc(queue_cap, sizeof(*j->wq));
    if (j->path == NULL || j->q == NULL || j->wq == NULL) {
        set_err(err, "journal %s: out of memory", path);
        goto fail;
    }
    char *slash = strrchr(j->path, '/');
    j->dir = slash == NULL      ? strdup(".")
             : slash == j->path ? strdup("/")
                                : strndup(j->path, (size_t)(slash - j->path));
    j->base = slash == NULL ? j->path : slash + 1;
    if (j->dir == NULL) {
        set_err(err, "journal %s: out of memory", path);
        goto fail;
    }
    if (j->chain) {
        j->md = EVP_MD_CTX_new();
        j->sfx = calloc(CHAIN_GROUP, sizeof(*j->sfx));
        if (j->md == NULL || j->sfx == NULL) {
            set_err(err, "journal %s: out of memory", path);
            goto fail;
        }
    }
    if (o->checkpoint_s > 0) {
        j->signer = *o->signer;
        if (EVP_PKEY_up_ref(j->signer.pkey) != 1) {
            j->signer.pkey = NULL;
            set_err(err, "journal %s: cannot take a reference to the signing key", path);
            goto fail;
        }
        j->has_signer = 1;
    }
    j->fd = open(path, OPEN_FLAGS, OPEN_MODE);
    if (j->fd < 0) {
        char buf[128];
        set_err(err, "journal %s: cannot open: %s", path, strerror_r(errno, buf, sizeof(buf)));
        goto fail;
    }
    if (j->chain && find_head(j, err) != 0)
        goto fail;
    if (j->chain && j->regular && open_state(j, err) != 0)
        goto fail;
    j->check_space = j->chain && j->regular;
    j->st_seq = j->seq;
    if (pthread_mutex_init(&j->mu, NULL) != 0) {
        set_err(err, "journal %s: cannot create mutex", path);
        goto fail;
    }
    mu_ok = 1;
    /* Deadlines on the monotonic clock: a wall-clock step must not stall or
     * rush the sync timer. */
    if (pthread_condattr_init(&ca) == 0) {
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        cv_ok = pthread_cond_init(&j->cv, &ca) == 0;
        if (cv_ok && pthread_cond_init(&j->done_cv, &ca) != 0) {
            pthread_cond_destroy(&j->cv);
            cv_ok = 0;
        }
        pthread_condattr_destroy(&ca);
    }
    if (!cv_ok) {
        set_err(err, "journal %s: cannot create condition variable", path);
        goto fail;
    }
    j->last_sync_ms = mono_ms();

    /* OpenSSL's global state for the chain's digest is created here, by the
     * opening thread, not lazily by the writer: a writer still blocked at
     * process exit (a stalled device after a timed-out close) then holds
     * nothing that OpenSSL's exit handler frees behind its back. */
    (void)gw_sha256_md();

    /* The writer blocks every signal: SIGHUP/SIGUSR1/SIGTERM belong to the
     * main loop, and a SIGPIPE on a journal pipe becomes an EPIPE error. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&j->thread, NULL, writer_main, j);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        char buf[128];
        set_err(err, "journal %s: cannot start writer thread: %s", path,
                strerror_r(rc, buf, sizeof(buf)));
        goto fail;
    }
    pthread_setname_np(j->thread, "gw-journal");
    return j;

fail:
    if (j != NULL) {
        if (cv_ok) {
            pthread_cond_destroy(&j->cv);
            pthread_cond_destroy(&j->done_cv);
        }
        if (j->state_fd >= 0)
            close(j->state_fd);
        free(j->state_path);
        if (mu_ok)
            pthread_mutex_destroy(&j->mu);
        if (j->fd >= 0)
            close(j->fd);
        EVP_MD_CTX_free(j->md);
        EVP_PKEY_free(j->signer.pkey);
        free(j->sfx);
        free(j->restart_from);
        free(j->q);
        free(j->wq);
        free(j->dir);
        free(j->path);
        free(j);
    }
    return NULL;
}

/* A chained journal takes one non-empty JSON object on one line: "{...}\n"
 * with no other newline. (Its content is the worker's business.) */
static int object_line(const char *p, size_t len)
{
    if (len < 3 || p[0] != '{' || p[len - 2] != '}' || p[len - 1] != '\n' ||
        memchr(p, '\n', len - 1) != NULL)
        return 0;
    size_t k = len - 2;
    while (k > 1 && (p[k - 1] == ' ' || p[k - 1] == '\t' || p[k - 1] == '\r'))
        k--;
    return p[k - 1] != '{';
}

/* <kind>: 0 a line, 1 against a reservation, 2 a refusal under <reason>. */
static int submit(gw_journal *j, char *line, size_t len, int kind, const char *reason)
{
    int rc = -1;

    if (j == NULL) {
        free(line);
        return -1;
    }
    int bad = line != NULL && j->chain && !object_line(line, len);
    pthread_mutex_lock(&j->mu);
    if (kind == 1) {
        /* the reservation ends here; its room stays held until written */
        j->rsv_pending--;
        if (line == NULL || bad || j->closing)
            j->rsv_held--;
    }
    if (line == NULL || bad) {
        j->dropped_null++;
    } else if (j->closing) {
        j->dropped_closed++;
    } else if (kind != 1 && j->qlen + j->rsv_pending >= j->cap) {
        /* the slots of the reservations are not ours to take */
        if (kind == 2 && j->chain) {
            summary_count(j, reason);
            rc = 0;
        } else {
            j->dropped_full++;
        }
    } else {
        /* The writer waits on an empty queue, or lingers on a short one
         * (batch_ms) until it holds a full batch. */
        if (j->qlen == 0 || j->qlen + 1 == JOURNAL_BATCH_LINES)
            pthread_cond_signal(&j->cv);
        j->q[j->qlen].p = line;
        j->q[j->qlen].len = len;
        j->q[j->qlen].reason = kind == 2 && j->chain ? reason : NULL;
        j->q[j->qlen].reserved = kind == 1;
        j->qlen++;
        j->submitted++;
        line = NULL;
        rc = 0;
    }
    pthread_mutex_unlock(&j->mu);
    free(line); /* refused: still ours to free, outside the lock */
    return rc;
}

int gw_journal_submit(gw_journal *j, char *line, size_t len)
{
    return submit(j, line, len, 0, NULL);
}

int gw_journal_submit_reserved(gw_journal *j, char *line, size_t len)
{
    return submit(j, line, len, 1, NULL);
}

int gw_journal_submit_refusal(gw_journal *j, char *line, size_t len, const char *reason)
{
    return submit(j, line, len, 2, reason != NULL ? reason : "unknown");
}

/* The free space, read again when older than AVAIL_REFRESH_MS (by one
 * caller at a time; the others use the last figure, or the writer's).
 * UINT64_MAX for a journal that is not a regular file. */
static uint64_t cached_avail(gw_journal *j, uint64_t now)
{
    if (!j->check_space)
        return UINT64_MAX;
    uint64_t am = __atomic_load_n(&j->avail_ms, __ATOMIC_RELAXED);
    if (now - am >= AVAIL_REFRESH_MS &&
        __atomic_compare_exchange_n(&j->avail_ms, &am, now, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        __atomic_store_n(&j->avail, fs_avail(j), __ATOMIC_RELAXED);
    return __atomic_load_n(&j->avail, __ATOMIC_RELAXED);
}

int gw_journal_reserve(gw_journal *j)
{
    if (j == NULL)
        return -1;
    uint64_t now = mono_ms();
    uint64_t avail = cached_avail(j, now);
    uint64_t io = __atomic_load_n(&j->io_started_ms, __ATOMIC_RELAXED);
    int rc = -1;
    pthread_mutex_lock(&j->mu);
    size_t used = j->qlen + j->inflight + j->rsv_pending;
    if (!j->closing && j->write_ok && j->sync_ok && !(io != 0 && now - io >= STALL_MS) &&
        used + 1 <= j->cap - j->cap / 10 &&
        avail >= (uint64_t)(j->rsv_held + 1) * GW_JOURNAL_LINE_MAX + OWN_RESERVE_BYTES) {
        j->rsv_pending++;
        j->rsv_held++;
        rc = 0;
        /* the state file must count it before a response can leave: wake an
         * idle writer (a busy one refreshes it at its next pass) */
        if (!j->state_dirty && j->state_fd >= 0) {
            j->state_dirty = 1;
            if (j->qlen == 0)
                pthread_cond_signal(&j->cv);
        }
    } else {
        j->rsv_refused++;
    }
    pthread_mutex_unlock(&j->mu);
    return rc;
}

void gw_journal_release(gw_journal *j)
{
    if (j == NULL)
        return;
    pthread_mutex_lock(&j->mu);
    j->rsv_pending--;
    j->rsv_held--;
    pthread_mutex_unlock(&j->mu);
}

void gw_journal_reopen(gw_journal *j)
{
    if (j == NULL)
        return;
    pthread_mutex_lock(&j->mu);
    if (!j->reopen_pending) {
        j->reopen_pending = 1;
        j->reopen_at = j->qlen;
    }
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

void gw_journal_get_stats(gw_journal *j, gw_journal_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (j == NULL)
        return;
    pthread_mutex_lock(&j->mu);
    st->submitted = j->submitted;
    st->written = j->written;
    st->dropped = dropped_total(j);
    st->write_errors = j->write_errors;
    st->queued = j->qlen + j->inflight;
    st->seq = j->st_seq;
    st->rotations = j->st_rotations;
    st->checkpoints = j->st_checkpoints;
    st->files_deleted = j->st_deleted;
    st->write_us_sum = __atomic_load_n(&j->write_us_sum, __ATOMIC_RELAXED);
    st->write_batches = __atomic_load_n(&j->write_batches, __ATOMIC_RELAXED);
    st->write_us_max = __atomic_load_n(&j->write_us_max, __ATOMIC_RELAXED);
    st->reserved = j->rsv_held;
    st->reserve_refused = j->rsv_refused;
    st->summarised = j->st_summarised;
    st->gap_pending = j->lost_pending;
    pthread_mutex_unlock(&j->mu);
}

int gw_journal_healthy(gw_journal *j)
{
    int ok;

    if (j == NULL)
        return 0;
    uint64_t now = mono_ms();
    uint64_t avail = cached_avail(j, now);
    uint64_t io = __atomic_load_n(&j->io_started_ms, __ATOMIC_RELAXED);
    pthread_mutex_lock(&j->mu);
    ok = j->write_ok && j->sync_ok && !(io != 0 && now - io >= STALL_MS) &&
         avail >= (uint64_t)(j->rsv_held + 1) * GW_JOURNAL_LINE_MAX + OWN_RESERVE_BYTES;
    pthread_mutex_unlock(&j->mu);
    return ok;
}

void gw_journal_test_pause(gw_journal *j, int pause)
{
    if (j == NULL)
        return;
    pthread_mutex_lock(&j->mu);
    j->paused = pause != 0;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

void gw_journal_test_set_time(gw_journal *j, long long t)
{
    if (j == NULL)
        return;
    pthread_mutex_lock(&j->mu);
    j->test_now = t;
    pthread_mutex_unlock(&j->mu);
}

/* The caller must have stopped every submitting thread before this returns:
 * lines that arrive while it drains are refused and counted, but <j> is freed
 * at the end. */
uint64_t gw_journal_close_within(gw_journal *j, unsigned ms, int *timed_out)
{
    if (timed_out)
        *timed_out = 0;
    if (j == NULL)
        return 0;
    uint64_t before;
    pthread_mutex_lock(&j->mu);
    before = dropped_total(j);
    j->closing = 1;
    pthread_cond_signal(&j->cv);
    if (ms > 0) {
        struct timespec ts;
        deadline_ts(mono_ms() + ms, &ts);
        while (!j->exited)
            if (pthread_cond_timedwait(&j->done_cv, &j->mu, &ts) == ETIMEDOUT)
                break;
    }
    if (ms > 0 && !j->exited) {
        /* The writer is stuck in a write or fdatasync (a stalled device):
         * it is left behind, with the journal, for the process exit. The
         * state file stays, so the next start records a gap. */
        uint64_t left = j->qlen + j->inflight + j->rsv_pending + j->lost_pending + j->sum_total;
        pthread_mutex_unlock(&j->mu);
        if (timed_out)
            *timed_out = 1;
        fprintf(stderr,
                "opale-gateway: journal %s: not flushed within %u ms (a write has not returned): "
                "%" PRIu64 " records could not be written\n",
                j->path, ms, left);
        return left;
    }
    pthread_mutex_unlock(&j->mu);
    pthread_join(j->thread, NULL);

    report(j, 1);
    /* records neither written nor accounted for by a gap or summary record */
    uint64_t left = j->lost_pending + j->sum_total + (dropped_total(j) - before);
    close(j->fd);
    if (j->state_fd >= 0) {
        close(j->state_fd);
        if (left == 0)
            unlink(j->state_path); /* a clean stop: nothing to account for */
    }
    for (size_t i = 0; i < j->qlen; i++) /* none: the writer took all */
        free(j->q[i].p);
    pthread_cond_destroy(&j->done_cv);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    EVP_MD_CTX_free(j->md);
    EVP_PKEY_free(j->signer.pkey);
    free(j->sfx);
    free(j->restart_from);
    free(j->state_path);
    free(j->q);
    free(j->wq);
    free(j->dir);
    free(j->path);
    free(j);
    return left;
}

void gw_journal_close(gw_journal *j)
{
    gw_journal_close_within(j, 0, NULL);
}

/* ------------------------------------------------------------------------ */
/* Record formatting                                                        */
/* ------------------------------------------------------------------------ */

/* The access record is written straight into a buffer, not built as a jansson
 * object and dumped: this runs once per request, and jansson's dump (one
 * callback per escaped run, an object per field) cost as much as the rest
 * of the journal path (callgrind, bench S2). The bytes are the ones jansson
 * writes with JSON_COMPACT | JSON_PRESERVE_ORDER, which the unit tests check
 * against jansson itself: '"' and '\\' escaped, \b \f \n \r \t by name,
 * other bytes below 0x20 as \u00XX (upper-case hex), everything else,
 * UTF-8 included, as is. A byte that does not start a well-formed UTF-8
 * sequence becomes U+FFFD (jansson would refuse the string, and the whole
 * record with it). */
static void json_put_strn(gw_buf *b, const char *s, size_t n, const char *tail)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0;

    gw_buf_append(b, "\"", 1);
    while (i < n) {
        unsigned c = u[i];
        const char *esc = NULL;
        char ubuf[6];
        size_t l = 1;
        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c == '\b')
            esc = "\\b";
        else if (c == '\f')
            esc = "\\f";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\r')
            esc = "\\r";
        else if (c == '\t')
            esc = "\\t";
        else if (c >= 0x80 && (l = gw_utf8_len(u + i, n - i)) == 0)
            esc = "\xEF\xBF\xBD";
        if (esc == NULL && c < 0x20) {
            memcpy(ubuf, "\\u00", 4);
            ubuf[4] = hex[c >> 4];
            ubuf[5] = hex[c & 15];
        }
        if (esc == NULL && c >= 0x20) {
            run += l;
            i += l;
            continue;
        }
        gw_buf_append(b, s + i - run, run);
        run = 0;
        if (esc != NULL)
            gw_buf_append(b, esc, strlen(esc));
        else
            gw_buf_append(b, ubuf, 6);
        i++;
    }
    gw_buf_append(b, s + i - run, run);
    if (tail != NULL)
        gw_buf_append(b, tail, strlen(tail));
    gw_buf_append(b, "\"", 1);
}

#define TRUNC_MARK "...[truncated]"

/* How many bytes of <s> (<n> long) fit in <max> bytes once escaped by
 * json_put_strn, cut at a character (never inside an escape or a UTF-8
 * sequence). *<all> = 1 when the whole string fits. */
static size_t escaped_fit(const char *s, size_t n, size_t max, int *all)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, out = 0;
    while (i < n) {
        unsigned c = u[i];
        size_t in = 1, w = 1;
        if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t')
            w = 2;
        else if (c < 0x20)
            w = 6;
        else if (c >= 0x80) {
            in = gw_utf8_len(u + i, n - i);
            w = in == 0 ? 3 : in;
            in = in == 0 ? 1 : in;
        }
        if (out + w > max) {
            *all = 0;
            return i;
        }
        out += w;
        i += in;
    }
    *all = 1;
    return n;
}

/* A string value of at most <max> bytes between its quotes. A longer one is
 * cut (escaped_fit) and ends with TRUNC_MARK; returns its length in bytes
 * then, 0 when it was written whole. */
static size_t json_put_str_max(gw_buf *b, const char *s, size_t max)
{
    size_t n = strlen(s);
    int all = 1;
    /* an escape is at most 6 bytes a byte: short strings need no count */
    if (n <= max / 6 || escaped_fit(s, n, max, &all) == n) {
        json_put_strn(b, s, n, NULL);
        return 0;
    }
    size_t keep = escaped_fit(s, n, max - (sizeof(TRUNC_MARK) - 1), &all);
    json_put_strn(b, s, keep, TRUNC_MARK);
    return n;
}

/* ,"key": (the comma unless first in its object). Keys are ASCII literals. */
static void json_put_key(gw_buf *b, int *first, const char *k)
{
    if (!*first)
        gw_buf_append(b, ",", 1);
    *first = 0;
    gw_buf_append(b, "\"", 1);
    gw_buf_append(b, k, strlen(k));
    gw_buf_append(b, "\":", 2);
}

/* Fields cut by put_str, with their lengths, for the "truncated" member. */
typedef struct cut_list {
    const char *name[32];
    size_t len[32];
    size_t n;
} cut_list;

static void put_str_max(gw_buf *b, int *first, const char *k, const char *s, size_t max,
                        cut_list *cuts, const char *name)
{
    if (s == NULL)
        return;
    json_put_key(b, first, k);
    size_t len = json_put_str_max(b, s, max);
    if (len != 0 && cuts != NULL && cuts->n < 32) {
        cuts->name[cuts->n] = name != NULL ? name : k;
        cuts->len[cuts->n++] = len;
    }
}

static void put_int(gw_buf *b, int *first, const char *k, long long v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%lld", v);
    json_put_key(b, first, k);
    gw_buf_append(b, num, (size_t)n);
}

/* Only when not negative (an unknown figure is left out). */
static void put_num(gw_buf *b, int *first, const char *k, long long v)
{
    if (v >= 0)
        put_int(b, first, k, v);
}

static int dump_cb(const char *p, size_t n, void *data)
{
    gw_buf *b = data;
    gw_buf_append(b, p, n);
    return b->oom ? -1 : 0;
}

char *gw_journal_format(const gw_journal_rec *r, size_t *len)
{
    gw_buf b = {0};
    int f = 1, g;
    cut_list cuts = {.n = 0};
    const size_t M = GW_JOURNAL_FIELD_MAX;

    gw_buf_append(&b, "{", 1);
    /* The order here is the order on the line (docs/journal.md). There is
     * deliberately no field for Authorization, tokens or secrets. */
    put_int(&b, &f, "v", GW_JOURNAL_SCHEMA_VERSION);
    put_str_max(&b, &f, "ts", r->ts, M, &cuts, NULL);
    put_str_max(&b, &f, "request_id", r->request_id, M, &cuts, NULL);
    put_str_max(&b, &f, "correlation_id", r->correlation_id, M, &cuts, NULL);
    put_str_max(&b, &f, "env", r->env, M, &cuts, NULL);
    put_str_max(&b, &f, "listener", r->listener, M, &cuts, NULL);
    put_str_max(&b, &f, "client_ip", r->client_ip, M, &cuts, NULL);
    put_num(&b, &f, "client_port", r->client_port);
    if (r->tls_version || r->tls_cert_sha256 || r->tls_subject) {
        json_put_key(&b, &f, "tls");
        gw_buf_append(&b, "{", 1);
        g = 1;
        put_str_max(&b, &g, "version", r->tls_version, M, &cuts, "tls.version");
        put_str_max(&b, &g, "cert_sha256", r->tls_cert_sha256, M, &cuts, "tls.cert_sha256");
        put_str_max(&b, &g, "subject", r->tls_subject, GW_JOURNAL_SUBJECT_MAX, &cuts,
                    "tls.subject");
        gw_buf_append(&b, "}", 1);
    }
    put_str_max(&b, &f, "consumer", r->consumer, M, &cuts, NULL);
    put_str_max(&b, &f, "habilitation", r->habilitation, M, &cuts, NULL);
    put_str_max(&b, &f, "teleservice", r->teleservice, M, &cuts, NULL);
    put_str_max(&b, &f, "method", r->method, M, &cuts, NULL);
    put_str_max(&b, &f, "route", r->route, M, &cuts, NULL);
    put_str_max(&b, &f, "path", r->path, GW_JOURNAL_PATH_MAX, &cuts, NULL);
    put_str_max(&b, &f, "query", r->query, GW_JOURNAL_PATH_MAX, &cuts, NULL);
    put_str_max(&b, &f, "siren", r->siren, M, &cuts, NULL);
    put_str_max(&b, &f, "annee", r->annee, M, &cuts, NULL);
    put_str_max(&b, &f, "scope", r->scope, M, &cuts, NULL);
    if (r->quota_store != NULL) {
        json_put_key(&b, &f, "quota");
        gw_buf_append(&b, "{", 1);
        g = 1;
        put_int(&b, &g, "limit", r->quota_limit);
        put_int(&b, &g, "remaining", r->quota_remaining);
        put_str_max(&b, &g, "store", r->quota_store, M, &cuts, "quota.store");
        gw_buf_append(&b, "}", 1);
    }
    put_str_max(&b, &f, "token_jti", r->token_jti, M, &cuts, NULL);
    put_str_max(&b, &f, "client_id", r->token_client_id, M, &cuts, NULL);
    put_str_max(&b, &f, "decision", r->decision, M, &cuts, NULL);
    put_str_max(&b, &f, "reason", r->reason, M, &cuts, NULL);
    put_str_max(&b, &f, "code", r->code, M, &cuts, NULL);
    if (r->status > 0)
        put_int(&b, &f, "status", r->status);
    if (r->upstream_addr) {
        json_put_key(&b, &f, "upstream");
        gw_buf_append(&b, "{", 1);
        g = 1;
        put_str_max(&b, &g, "addr", r->upstream_addr, M, &cuts, "upstream.addr");
        if (r->upstream_status > 0)
            put_int(&b, &g, "status", r->upstream_status);
        put_num(&b, &g, "ms", r->upstream_ms);
        if (r->upstream_nattempts > 0) {
            json_put_key(&b, &g, "attempts");
            gw_buf_append(&b, "[", 1);
            for (size_t i = 0; i < r->upstream_nattempts; i++) {
                const gw_journal_attempt *a = &r->upstream_attempts[i];
                int h = 1;
                gw_buf_append(&b, i ? ",{" : "{", i ? 2 : 1);
                put_str_max(&b, &h, "addr", a->addr, M, &cuts, "upstream.attempts.addr");
                put_str_max(&b, &h, "outcome", a->outcome, M, &cuts, "upstream.attempts.outcome");
                if (a->status > 0)
                    put_int(&b, &h, "status", a->status);
                put_num(&b, &h, "ms", a->ms);
                gw_buf_append(&b, "}", 1);
            }
            gw_buf_append(&b, "]", 1);
        }
        gw_buf_append(&b, "}", 1);
    }
    put_num(&b, &f, "ms", r->ms);
    put_num(&b, &f, "bytes_in", r->bytes_in);
    put_num(&b, &f, "bytes_out", r->bytes_out);
    if (cuts.n > 0) {
        /* what was cut, and the length in bytes it had (docs/journal.md) */
        json_put_key(&b, &f, "truncated");
        gw_buf_append(&b, "{", 1);
        g = 1;
        for (size_t i = 0; i < cuts.n; i++)
            put_int(&b, &g, cuts.name[i], (long long)cuts.len[i]);
        gw_buf_append(&b, "}", 1);
    }
    gw_buf_append(&b, "}\n", 2);
    if (b.oom) {
        gw_buf_free(&b);
        return NULL;
    }
    return gw_buf_take(&b, len);
}
