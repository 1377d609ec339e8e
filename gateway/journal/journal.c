/*
 * Access journal: the queue and the public API (journal_int.h lists the
 * files).
 *
 * Workers format a record (gw_journal_format, record.c) and hand the line
 * over with gw_journal_submit(), which only takes the mutex, appends a
 * pointer and signals the writer thread (writer.c). The queue is two arrays
 * of <cap> slots: workers append to <q>; the writer swaps <q> with its own
 * empty array <wq> under the lock. A full queue refuses the line instead of
 * blocking the event loop.
 *
 * See docs/journal.md for the record schema, the chain and the durability
 * model.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* GNU strerror_r, vasprintf, pthread_setname_np */
#endif
#include "journal/journal_int.h"
#include "journal/tail.h"

#include <errno.h>
#include <linux/futex.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/util.h"

void gw_jn_set_err(char **err, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL)
        return;
    va_start(ap, fmt);
    if (vasprintf(err, fmt, ap) < 0)
        *err = NULL;
    va_end(ap);
}

gw_journal *gw_journal_open(const char *path, size_t queue_cap, unsigned sync_ms, char **err)
{
    gw_journal_opts o = {.path = path, .queue_cap = queue_cap, .sync_ms = sync_ms, .raw = 1};
    return gw_journal_open_opts(&o, err);
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
        gw_jn_set_err(err, "journal: empty path");
        goto fail;
    }
    if (queue_cap == 0 || queue_cap > SIZE_MAX / sizeof(struct jline)) {
        gw_jn_set_err(err, "journal %s: queue capacity must be between 1 and %zu", path,
                      SIZE_MAX / sizeof(struct jline));
        goto fail;
    }
    if (o->raw && (o->rotate_bytes || o->rotate_daily || o->retention_days || o->checkpoint_s ||
                   o->tail_check_s)) {
        gw_jn_set_err(
            err,
            "journal %s: rotation, retention, checkpoints and tail checks need a chained journal",
            path);
        goto fail;
    }
    if (o->checkpoint_s > 0 && (o->signer == NULL || !o->signer->can_sign ||
                                o->signer->pkey == NULL || o->signer->kid[0] == '\0')) {
        gw_jn_set_err(err, "journal %s: checkpoints need a signing key (a private key with a kid)",
                      path);
        goto fail;
    }
    j = calloc(1, sizeof(*j));
    if (j == NULL) {
        gw_jn_set_err(err, "journal %s: out of memory", path);
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
    j->tail_check_s = o->tail_check_s;
    j->on_cp = o->on_checkpoint;
    j->on_cp_arg = o->on_checkpoint_arg;
    j->hold = o->hold != 0;
    j->write_ok = 1;
    j->sync_ok = 1;
    j->path = strdup(path);
    j->q = calloc(queue_cap, sizeof(*j->q));
    j->wq = calloc(queue_cap, sizeof(*j->wq));
    if (j->path == NULL || j->q == NULL || j->wq == NULL) {
        gw_jn_set_err(err, "journal %s: out of memory", path);
        goto fail;
    }
    char *slash = strrchr(j->path, '/');
    j->dir = slash == NULL      ? strdup(".")
             : slash == j->path ? strdup("/")
                                : strndup(j->path, (size_t)(slash - j->path));
    j->base = slash == NULL ? j->path : slash + 1;
    if (j->dir == NULL) {
        gw_jn_set_err(err, "journal %s: out of memory", path);
        goto fail;
    }
    if (j->chain) {
        j->sfx = calloc(CHAIN_GROUP, sizeof(*j->sfx));
        if (j->sfx == NULL) {
            gw_jn_set_err(err, "journal %s: out of memory", path);
            goto fail;
        }
    }
    if (o->checkpoint_s > 0) {
        j->signer = *o->signer;
        if (EVP_PKEY_up_ref(j->signer.pkey) != 1) {
            j->signer.pkey = NULL;
            gw_jn_set_err(err, "journal %s: cannot take a reference to the signing key", path);
            goto fail;
        }
        j->has_signer = 1;
    }
    j->fd = open(path, OPEN_FLAGS, OPEN_MODE);
    if (j->fd < 0) {
        char buf[128];
        gw_jn_set_err(err, "journal %s: cannot open: %s", path,
                      strerror_r(errno, buf, sizeof(buf)));
        goto fail;
    }
    if (j->chain && gw_jn_find_head(j, err) != 0)
        goto fail;
    if (j->chain && j->regular && gw_jn_open_state(j, err) != 0)
        goto fail;
    j->check_space = j->chain && j->regular;
    j->st_seq = j->seq;
    if (pthread_mutex_init(&j->mu, NULL) != 0) {
        gw_jn_set_err(err, "journal %s: cannot create mutex", path);
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
        gw_jn_set_err(err, "journal %s: cannot create condition variable", path);
        goto fail;
    }
    j->last_sync_ms = gw_jn_mono_ms();

    /* OpenSSL's global state for SHA-256 (the writer's tail checks; the
     * chain hashes through the low-level SHA256_CTX, chain.c) is created
     * here, by the opening thread, not lazily by the writer: a writer still
     * blocked at process exit (a stalled device after a timed-out close)
     * then holds nothing that OpenSSL's exit handler frees behind its back. */
    (void)gw_sha256_md();

    /* The writer blocks every signal: SIGHUP/SIGUSR1/SIGTERM belong to the
     * main loop, and a SIGPIPE on a journal pipe becomes an EPIPE error. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&j->thread, NULL, gw_jn_writer_main, j);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        char buf[128];
        gw_jn_set_err(err, "journal %s: cannot start writer thread: %s", path,
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

/* One line of <kind> (0 a line, 1 against a reservation, 2 a refusal under
 * <reason>) under <mu>, held by the caller; <bad>: not one JSON object. 0
 * when queued (the line is the queue's); 1 when counted for a summary and
 * -1 when refused (both: the line is still the caller's to free, outside
 * the lock). Sets <*wake> when the writer
 * must be signalled: the queue was empty, or now holds a full batch. */
static int submit_locked(gw_journal *j, char *line, size_t len, int bad, int kind,
                         const char *reason, int *wake)
{
    if (kind == 1) {
        /* the reservation ends here; its room stays held until written */
        j->rsv_pending--;
        if (line == NULL || bad || j->closing)
            j->rsv_held--;
    }
    if (line == NULL || bad) {
        j->dropped_null++;
        return -1;
    }
    if (j->closing) {
        j->dropped_closed++;
        return -1;
    }
    if (kind != 1 && j->qlen + j->rsv_pending >= j->cap) {
        /* the slots of the reservations are not ours to take */
        if (kind == 2 && j->chain) {
            gw_jn_summary_count(j, reason);
            return 1;
        }
        j->dropped_full++;
        return -1;
    }
    /* The writer waits on an empty queue, or lingers on a short one
     * (batch_ms) until it holds a full batch; a polling writer takes the
     * queue at the end of its batch_ms whatever it holds. */
    if ((j->qlen == 0 && !j->polling) || j->qlen + 1 == JOURNAL_BATCH_LINES) {
        if (!*wake)
            j->wakes++;
        *wake = 1;
    }
    j->q[j->qlen].p = line;
    j->q[j->qlen].len = len;
    j->q[j->qlen].reason = kind == 2 && j->chain ? reason : NULL;
    j->q[j->qlen].reserved = kind == 1;
    j->qlen++;
    j->submitted++;
    return 0;
}

/* <kind>: 0 a line, 1 against a reservation, 2 a refusal under <reason>. */
static int submit(gw_journal *j, char *line, size_t len, int kind, const char *reason)
{
    if (j == NULL) {
        free(line);
        return -1;
    }
    int bad = line != NULL && j->chain && !object_line(line, len);
    int wake = 0;
    pthread_mutex_lock(&j->mu);
    int rc = submit_locked(j, line, len, bad, kind, reason, &wake);
    pthread_mutex_unlock(&j->mu);
    /* after the unlock: a writer woken while we still held <mu> would
     * preempt us on a shared CPU only to wait for it */
    if (wake)
        gw_jn_signal(j);
    if (rc != 0)
        free(line); /* counted or refused: still ours to free, outside the lock */
    return rc < 0 ? -1 : 0;
}

size_t gw_journal_submit_many(gw_journal *j, gw_journal_line *v, size_t n)
{
    if (j == NULL) {
        for (size_t i = 0; i < n; i++)
            free(v[i].line);
        return n;
    }
    /* checked before the lock, as submit() does */
    for (size_t i = 0; i < n; i++)
        if (v[i].line != NULL && j->chain && !object_line(v[i].line, v[i].len)) {
            free(v[i].line);
            v[i].line = NULL; /* counted as "no line" below */
        }
    size_t refused = 0;
    int wake = 0;
    pthread_mutex_lock(&j->mu);
    for (size_t i = 0; i < n; i++) {
        const char *reason =
            v[i].kind == GW_JLINE_REFUSAL ? (v[i].reason != NULL ? v[i].reason : "unknown") : NULL;
        int rc = submit_locked(j, v[i].line, v[i].len, 0, (int)v[i].kind, reason, &wake);
        if (rc < 0)
            refused++;
        else if (rc == 0)
            v[i].line = NULL;
    }
    pthread_mutex_unlock(&j->mu);
    if (wake)
        gw_jn_signal(j); /* after the unlock, as in submit() */
    for (size_t i = 0; i < n; i++) {
        free(v[i].line);
        v[i].line = NULL;
    }
    return refused;
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
        __atomic_store_n(&j->avail, gw_jn_fs_avail(j), __ATOMIC_RELAXED);
    return __atomic_load_n(&j->avail, __ATOMIC_RELAXED);
}

/* Whether the writer's write or fdatasync, in progress since <io> (0:
 * none), has run STALL_MS or more by <now>. The caller reads <now> before
 * <io>: a writer that started its I/O in between has <io> after <now>,
 * which is no stall (now - io would wrap around and refuse a request for a
 * device that had just been written to). */
static int io_stalled(uint64_t io, uint64_t now)
{
    return io != 0 && now >= io + STALL_MS;
}

/* A reservation (gw_journal_reserve); <wake> NULL: wake an idle writer
 * now, otherwise set *wake for the caller to do it (gw_journal_wake). */
static int reserve(gw_journal *j, int *wake)
{
    if (j == NULL)
        return -1;
    uint64_t now = gw_jn_mono_ms();
    uint64_t avail = cached_avail(j, now);
    uint64_t io = __atomic_load_n(&j->io_started_ms, __ATOMIC_RELAXED);
    int rc = -1, signal_now = 0;
    pthread_mutex_lock(&j->mu);
    size_t used = j->qlen + j->inflight + j->rsv_pending;
    if (!j->closing && !j->broken && j->write_ok && j->sync_ok && !io_stalled(io, now) &&
        used + 1 <= j->cap - j->cap / 10 &&
        avail >= (uint64_t)(j->rsv_held + 1) * GW_JOURNAL_LINE_MAX + OWN_RESERVE_BYTES) {
        j->rsv_pending++;
        j->rsv_held++;
        rc = 0;
        /* the state file must count it before a response can leave: wake an
         * idle writer (a busy one refreshes it at its next pass, a lingering
         * or polling one at the end of its batch_ms) */
        if (!j->state_dirty && j->state_fd >= 0) {
            j->state_dirty = 1;
            if (j->qlen == 0 && !j->polling) {
                j->wakes++;
                if (wake != NULL)
                    *wake = 1;
                else
                    signal_now = 1;
            }
        }
    } else {
        j->rsv_refused++;
    }
    pthread_mutex_unlock(&j->mu);
    if (signal_now)
        gw_jn_signal(j); /* after the unlock, as in submit() */
    return rc;
}

int gw_journal_reserve(gw_journal *j)
{
    return reserve(j, NULL);
}

int gw_journal_reserve_deferred(gw_journal *j, int *wake)
{
    return reserve(j, wake);
}

void gw_jn_signal(gw_journal *j)
{
    pthread_cond_signal(&j->cv);
    /* A writer that set <poll_sleep> (under <mu>) before our change to its
     * wait condition (under <mu> too) is seen here, and either sleeps on
     * the old <kick> value, which the increment makes the kernel refuse, or
     * is woken; one that sets it later checks the condition first. */
    if (__atomic_load_n(&j->poll_sleep, __ATOMIC_SEQ_CST)) {
        __atomic_fetch_add(&j->kick, 1u, __ATOMIC_SEQ_CST);
        syscall(SYS_futex, &j->kick, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
}

void gw_journal_wake(gw_journal *j)
{
    if (j == NULL)
        return;
    /* state_dirty (or the lines) was set under <mu>: a writer that checked
     * its wait condition before that is in pthread_cond_wait by now, so the
     * signal needs no lock */
    gw_jn_signal(j);
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
    gw_jn_signal(j);
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
    st->dropped = gw_jn_dropped_total(j);
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
    st->tail_checks = j->st_tail_checks;
    st->broken = (uint64_t)j->broken;
    st->retention_held = j->st_ret_held;
    st->hold = (uint64_t)j->hold;
    st->writer_wakes = j->wakes;
    pthread_mutex_unlock(&j->mu);
}

int gw_journal_healthy(gw_journal *j)
{
    int ok;

    if (j == NULL)
        return 0;
    uint64_t now = gw_jn_mono_ms();
    uint64_t avail = cached_avail(j, now);
    uint64_t io = __atomic_load_n(&j->io_started_ms, __ATOMIC_RELAXED);
    pthread_mutex_lock(&j->mu);
    ok = !j->broken && j->write_ok && j->sync_ok && !io_stalled(io, now) &&
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
    gw_jn_signal(j);
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
    before = gw_jn_dropped_total(j);
    j->closing = 1;
    gw_jn_signal(j);
    if (ms > 0) {
        struct timespec ts;
        gw_jn_deadline_ts(gw_jn_mono_ms() + ms, &ts);
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

    gw_jn_report(j, 1);
    /* records neither written nor accounted for by a gap or summary record */
    uint64_t left = j->lost_pending + j->sum_total + (gw_jn_dropped_total(j) - before);
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
    EVP_PKEY_free(j->signer.pkey);
    free(j->sfx);
    free(j->restart_from);
    free(j->tail);
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

int gw_journal_broken(gw_journal *j, struct gw_journal_tail *out)
{
    if (j == NULL)
        return 0;
    pthread_mutex_lock(&j->mu);
    int b = j->broken;
    if (b && out != NULL)
        *out = *j->tail;
    pthread_mutex_unlock(&j->mu);
    return b;
}

void gw_journal_set_hold(gw_journal *j, int hold)
{
    if (j == NULL)
        return;
    pthread_mutex_lock(&j->mu);
    if (j->hold && !hold)
        j->hold_lifted = 1; /* retention runs at the writer's next pass */
    j->hold = hold != 0;
    gw_jn_signal(j);
    pthread_mutex_unlock(&j->mu);
}
