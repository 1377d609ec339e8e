/*
 * Access journal: the writer thread (journal_int.h lists the files).
 *
 * All file I/O, fdatasync() and stderr reports happen here, so a slow or
 * full disk never stalls an event loop. The writer swaps the workers' queue
 * with its own empty array under the lock (journal.c), so it takes every
 * queued line at once and the lock is never held across a system call.
 *
 * Chained journals: the writer is the one place where records get their
 * order, so it assigns "seq" and chains each line (chain.c) just before the
 * writev(). A line goes out as two iovecs: the worker's bytes without their
 * final "}\n", then a suffix ,"seq":N,"prev":"…","hash":"…"}\n built in a
 * writer array, so chaining allocates nothing. The head (seq and hash of
 * the last record written) only moves past lines that reached the file in
 * full: after a failed write the next record links to the last good one.
 * Between batches it rotates and applies retention (lifecycle.c), writes
 * checkpoints (checkpoint.c), and writes its "gap" and "summary" records.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* GNU strerror_r */
#endif
#include "journal/journal_int.h"

#include <errno.h>
#include <linux/futex.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lib/util.h"

/* The writer's wall clock: real, or the unit tests' fixed time. */
time_t gw_jn_wall(gw_journal *j, int *ms)
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

/* "2025-03-21T09:00:00.123Z" */
void gw_jn_wall_iso(gw_journal *j, char out[32])
{
    int ms;
    time_t t = gw_jn_wall(j, &ms);
    struct tm tm;
    char base[24];
    gmtime_r(&t, &tm);
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%.20s.%03dZ", base, ms % 1000);
}

static int dump_cb(const char *p, size_t n, void *data)
{
    gw_buf *b = data;
    gw_buf_append(b, p, n);
    return b->oom ? -1 : 0;
}

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
void gw_jn_write_lines(gw_journal *j, struct jline *v, size_t n, int counted)
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
            gw_jn_maybe_rotate(j);
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
                size_t sl = gw_jn_chain_line(&v[i], ++seq, prev, sfx);
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
        __atomic_store_n(&j->io_started_ms, gw_jn_mono_ms(), __ATOMIC_RELAXED);
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
int gw_jn_sync_file(gw_journal *j)
{
    int r = 0, rc = 0;

    if (!j->no_sync) {
        __atomic_store_n(&j->io_started_ms, gw_jn_mono_ms(), __ATOMIC_RELAXED);
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
    j->last_sync_ms = gw_jn_mono_ms();
    return rc;
}

/* One of the writer's own records, chained and written at once: 0 when it
 * reached the file. Takes <o>. */
int gw_jn_emit(gw_journal *j, json_t *o)
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
    gw_jn_write_lines(j, &l, 1, 0);
    return j->seq == before + 1 ? 0 : -1;
}

/* {"v":1,"type":<type>,"ts":<ts>} to which the caller adds its members. */
json_t *gw_jn_own_record(const char *type, const char *ts)
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

/* stderr reports, at most one per kind per REPORT_INTERVAL_MS; <final> (from
 * gw_journal_close) reports whatever is left regardless. Messages state
 * totals, so a suppressed report loses no count. */
void gw_jn_report(gw_journal *j, int final)
{
    uint64_t now = gw_jn_mono_ms();
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
    if (gw_jn_dropped_total(j) != j->reported_dropped && j->next_drop_report_ms < d)
        d = j->next_drop_report_ms;
    if (j->write_errors != j->reported_errors && j->next_error_report_ms < d)
        d = j->next_error_report_ms;
    if (j->tail_check_s > 0 && j->seq > 0 && j->next_tail_ms < d)
        d = j->next_tail_ms;
    if (j->has_signer && j->seq > 0 && !j->head_is_cp && j->next_cp_ms < d)
        d = j->next_cp_ms;
    if (j->retention_days > 0 && j->next_ret_ms < d)
        d = j->next_ret_ms;
    return d;
}

/* Free bytes for the journal's file system (UINT64_MAX when unknown: a
 * pipe, or statvfs failed). */
uint64_t gw_jn_fs_avail(const gw_journal *j)
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
        gw_time_iso_ms(j->sum_from); /* real clock: <mu> is held, gw_jn_wall() takes it */
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

void gw_jn_summary_count(gw_journal *j, const char *reason)
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
    uint64_t avail = gw_jn_fs_avail(j);
    pthread_mutex_lock(&j->mu);
    __atomic_store_n(&j->avail, avail, __ATOMIC_RELAXED);
    __atomic_store_n(&j->avail_ms, gw_jn_mono_ms(), __ATOMIC_RELAXED);
    uint64_t need = (uint64_t)j->rsv_held * GW_JOURNAL_LINE_MAX + 2u * OWN_RESERVE_BYTES;
    size_t out = 0, nsplit = *split;
    int skipped = 0;
    for (size_t i = 0; i < *n; i++) {
        struct jline *l = &j->wq[i];
        if (l->reason != NULL) {
            uint64_t cost = l->len + SUFFIX_MAX;
            if (avail < need + cost) {
                gw_jn_summary_count(j, l->reason);
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
    uint64_t refusals = j->sum_total;
    pthread_mutex_unlock(&j->mu);
    if (lost > 0 && ok) {
        char ts[32];
        gw_jn_wall_iso(j, ts);
        json_t *o = gw_jn_own_record("gap", ts);
        if (o != NULL && (json_object_set_new(o, "reason", json_string("write_error")) != 0 ||
                          json_object_set_new(o, "lost", json_integer((json_int_t)lost)) != 0)) {
            json_decref(o);
            o = NULL;
        }
        if (gw_jn_emit(j, o) == 0) {
            pthread_mutex_lock(&j->mu);
            j->lost_pending -= lost;
            pthread_mutex_unlock(&j->mu);
        }
    }
    /* no refusal counted: no summary, and no statvfs() per pass (one
     * counted after this read is seen at the next pass) */
    if (skipped || refusals == 0)
        return;
    char ts[32];
    gw_jn_wall_iso(j, ts);
    uint64_t avail = j->check_space ? gw_jn_fs_avail(j) : UINT64_MAX;
    pthread_mutex_lock(&j->mu);
    uint64_t total = j->sum_total;
    int room = avail >= (uint64_t)j->rsv_held * GW_JOURNAL_LINE_MAX + 2u * OWN_RESERVE_BYTES +
                            GW_JOURNAL_LINE_MAX;
    json_t *o = NULL;
    if (total > 0 && room && j->write_ok) {
        o = gw_jn_own_record("summary", ts);
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
    if (o == NULL || gw_jn_emit(j, o) == 0)
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

void *gw_jn_writer_main(void *arg)
{
    gw_journal *j = arg;

    if (j->chain) {
        if (j->restart_from != NULL) {
            /* The current file was empty: the chain continues from the
             * newest rotated file, and this record says so. */
            char ts[32];
            gw_jn_wall_iso(j, ts);
            json_t *o = gw_jn_own_record("rotate", ts);
            if (o != NULL && (json_object_set_new(o, "reason", json_string("restart")) != 0 ||
                              json_object_set_new(o, "from", json_string(j->restart_from)) != 0)) {
                json_decref(o);
                o = NULL;
            }
            gw_jn_emit(j, o);
        }
        if (j->prev_unclean)
            gw_jn_write_restart_gap(j);
        if (j->retention_days > 0)
            gw_jn_run_retention(j);
        j->next_ret_ms = gw_jn_mono_ms() + RETENTION_PERIOD_MS;
        j->next_cp_ms = gw_jn_mono_ms() + (uint64_t)j->checkpoint_s * 1000u;
        j->next_tail_ms = gw_jn_mono_ms() + (uint64_t)j->tail_check_s * 1000u;
    }
    int polls = 0;
    for (;;) {
        size_t n = 0, split = 0;
        int reopen = 0, closing, fresh = 1;

        pthread_mutex_lock(&j->mu);
        /* Polling: after a batch of several lines, the writer waits batch_ms
         * whatever arrives, then takes the queue (nobody signals it meanwhile
         * but a full batch, close, reopen or pause): under load, one wake-up
         * per batch_ms instead of one for the first line of each batch and
         * one at the end of its linger. A line still waits at most batch_ms
         * after the writer's pass (as one queued during a pass did); a poll
         * that finds nothing queued goes back to the idle wait. <polling>
         * (under <mu>) stays set from the batch's swap to that idle wait. */
        if (polls && j->batch_ms > 0 && !j->closing && !j->paused && !j->reopen_pending) {
            struct timespec ts;
            gw_jn_deadline_ts(gw_jn_mono_ms() + j->batch_ms, &ts);
            while (j->qlen < JOURNAL_BATCH_LINES && !j->closing && !j->paused &&
                   !j->reopen_pending) {
                /* on <kick>, not <cv>: <mu> is then taken back uncontended
                 * and released without a system call (gw_jn_signal) */
                unsigned k = __atomic_load_n(&j->kick, __ATOMIC_SEQ_CST);
                __atomic_store_n(&j->poll_sleep, 1, __ATOMIC_SEQ_CST);
                pthread_mutex_unlock(&j->mu);
                long r = syscall(SYS_futex, &j->kick, FUTEX_WAIT_BITSET_PRIVATE, k, &ts, NULL,
                                 FUTEX_BITSET_MATCH_ANY);
                int e = r < 0 ? errno : 0;
                pthread_mutex_lock(&j->mu);
                __atomic_store_n(&j->poll_sleep, 0, __ATOMIC_SEQ_CST);
                if (e == ETIMEDOUT)
                    break;
            }
            fresh = 0;
        }
        while (!j->closing && (j->paused || (j->qlen == 0 && !j->reopen_pending &&
                                             !j->state_dirty && !j->hold_lifted))) {
            j->polling = 0; /* idle: the next line or reservation signals */
            fresh = 1;
            uint64_t d = next_deadline(j);
            if (d == UINT64_MAX) {
                pthread_cond_wait(&j->cv, &j->mu);
                continue;
            }
            if (gw_jn_mono_ms() >= d)
                break;
            struct timespec ts;
            gw_jn_deadline_ts(d, &ts);
            if (pthread_cond_timedwait(&j->cv, &j->mu, &ts) == ETIMEDOUT)
                break;
        }
        /* Batching: let more lines arrive, up to batch_ms or a full batch
         * (gw_journal_submit signals then), unless closing or reopening. */
        if (fresh && j->batch_ms > 0 && j->qlen > 0 && j->qlen < JOURNAL_BATCH_LINES &&
            !j->closing && !j->paused && !j->reopen_pending) {
            struct timespec ts;
            gw_jn_deadline_ts(gw_jn_mono_ms() + j->batch_ms, &ts);
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
            /* a busy gateway: take the next batch at the end of a poll,
             * with no signal from the lines that arrive meanwhile */
            j->polling = polls = n > 1 && j->batch_ms > 0;
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
        gw_jn_write_lines(j, j->wq, split, 1);
        if (reopen)
            gw_jn_reopen_file(j);
        gw_jn_write_lines(j, j->wq + split, n - split, 1);

        if (j->chain) {
            uint64_t now = gw_jn_mono_ms();
            pthread_mutex_lock(&j->mu);
            int lifted = j->hold_lifted;
            j->hold_lifted = 0;
            pthread_mutex_unlock(&j->mu);
            if (j->retention_days > 0 && (lifted || now >= j->next_ret_ms)) {
                gw_jn_run_retention(j);
                j->next_ret_ms = now + RETENTION_PERIOD_MS;
            }
            if (j->has_signer && (closing || now >= j->next_cp_ms))
                gw_jn_write_checkpoint(j);
        }
        if (j->chain)
            write_gap_and_summary(j, skipped);
        if (j->chain && j->tail_check_s > 0 && !closing && gw_jn_mono_ms() >= j->next_tail_ms) {
            gw_jn_check_tail(j);
            j->next_tail_ms = gw_jn_mono_ms() + (uint64_t)j->tail_check_s * 1000u;
        }
        if (closing ||
            (j->dirty && (j->sync_ms == 0 || gw_jn_mono_ms() - j->last_sync_ms >= j->sync_ms)))
            gw_jn_sync_file(j);
        gw_jn_write_state(j);
        if (closing)
            break; /* submit refuses lines once closing is set: nothing is left */
        gw_jn_report(j, 0);
    }
    pthread_mutex_lock(&j->mu);
    j->exited = 1;
    pthread_cond_broadcast(&j->done_cv);
    pthread_mutex_unlock(&j->mu);
    return NULL;
}
