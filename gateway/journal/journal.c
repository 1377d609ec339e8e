/*
 * Access journal, first version: one writer thread behind a bounded queue.
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
 * See docs/journal.md for the record schema and the durability model.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* GNU strerror_r, vasprintf, pthread_setname_np */
#endif
#include "journal/journal.h"

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
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "core/util.h"

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

#define OPEN_FLAGS (O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC)
#define OPEN_MODE 0640
/* stderr reports of drops and write errors: at most one of each per second. */
#define REPORT_INTERVAL_MS 1000

struct jline {
    char *p;
    size_t len;
};

struct gw_journal {
    char *path;
    size_t cap;
    unsigned sync_ms;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* wakes the writer */

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
    uint64_t dropped_null;   /* NULL line (the caller's format failed) */
    uint64_t dropped_write;  /* lost in a failed write */
    int write_ok;
    int sync_ok;
    int last_errno;
    const char *last_op;

    /* Writer thread only (and gw_journal_close() after the join). */
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
};

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

/* Write the lines <v>[0..<n>) to the current fd in writev() groups of at most
 * IOV_MAX, then free them. On the first error the rest of <v> is counted as
 * dropped: retrying every group against ENOSPC would only repeat the error.
 * A line cut by a failed write is terminated by a '\n' before the next write,
 * so the fragment cannot corrupt the next good record. */
static void write_lines(gw_journal *j, struct jline *v, size_t n)
{
    static char nl[] = "\n";
    size_t i = 0;

    while (i < n) {
        struct iovec iov[IOV_MAX];
        int cnt = 0;
        int prefix = j->torn;
        size_t first = i;
        size_t done;

        if (prefix)
            iov[cnt++] = (struct iovec){.iov_base = nl, .iov_len = 1};
        while (i < n && cnt < IOV_MAX) {
            iov[cnt++] = (struct iovec){.iov_base = v[i].p, .iov_len = v[i].len};
            i++;
        }
        int err = writev_all(j->fd, iov, cnt, &done);

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
        while (k < i && rem >= v[k].len) {
            rem -= v[k].len;
            k++;
        }
        if (rem > 0)
            torn = 1;
        if (done > 0)
            j->dirty = 1;

        pthread_mutex_lock(&j->mu);
        j->written += k - first;
        j->inflight -= k - first;
        if (err) {
            j->write_errors++;
            j->dropped_write += n - k;
            j->inflight -= n - k;
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
    for (i = 0; i < n; i++) {
        free(v[i].p);
        v[i].p = NULL;
    }
}

static void sync_file(gw_journal *j)
{
    int r = 0;

    if (!j->no_sync) {
        do
            r = fdatasync(j->fd);
        while (r < 0 && errno == EINTR);
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
    } else if (!j->no_sync) {
        pthread_mutex_lock(&j->mu);
        j->sync_ok = 1;
        pthread_mutex_unlock(&j->mu);
    }
    /* Linux reports a writeback error once and marks the pages clean, so a
     * retry would not bring the data back: the file is no longer dirty. */
    j->dirty = 0;
    j->last_sync_ms = mono_ms();
}

/* logrotate renamed the file: open <path> again. The new file is opened
 * before the old one is closed, so a failure leaves the journal writing to
 * the old file (and says so) rather than to nothing. */
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
 * written data, or the next allowed report of unreported drops or errors.
 * UINT64_MAX when nothing is pending: an idle gateway's writer sleeps until
 * signalled. Called with <mu> held. */
static uint64_t next_deadline(const gw_journal *j)
{
    uint64_t d = UINT64_MAX;

    if (j->dirty && j->sync_ms > 0)
        d = j->last_sync_ms + j->sync_ms;
    if (dropped_total(j) != j->reported_dropped && j->next_drop_report_ms < d)
        d = j->next_drop_report_ms;
    if (j->write_errors != j->reported_errors && j->next_error_report_ms < d)
        d = j->next_error_report_ms;
    return d;
}

static void *writer_main(void *arg)
{
    gw_journal *j = arg;

    for (;;) {
        size_t n = 0, split = 0;
        int reopen = 0, closing;

        pthread_mutex_lock(&j->mu);
        while (!j->closing && (j->paused || (j->qlen == 0 && !j->reopen_pending))) {
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
        pthread_mutex_unlock(&j->mu);

        /* Lines queued before the reopen request go to the old file, the
         * rest to the new one. */
        write_lines(j, j->wq, split);
        if (reopen)
            reopen_file(j);
        write_lines(j, j->wq + split, n - split);

        if (closing || (j->dirty && (j->sync_ms == 0 || mono_ms() - j->last_sync_ms >= j->sync_ms)))
            sync_file(j);
        if (closing)
            break; /* submit refuses lines once closing is set: nothing is left */
        report(j, 0);
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Public API                                                               */
/* ------------------------------------------------------------------------ */

gw_journal *gw_journal_open(const char *path, size_t queue_cap, unsigned sync_ms, char **err)
{
    gw_journal *j = NULL;
    int mu_ok = 0, cv_ok = 0;
    pthread_condattr_t ca;

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
    j = calloc(1, sizeof(*j));
    if (j == NULL) {
        set_err(err, "journal %s: out of memory", path);
        goto fail;
    }
    j->fd = -1;
    j->cap = queue_cap;
    j->sync_ms = sync_ms;
    j->write_ok = 1;
    j->sync_ok = 1;
    j->path = strdup(path);
    j->q = calloc(queue_cap, sizeof(*j->q));
    j->wq = calloc(queue_cap, sizeof(*j->wq));
    if (j->path == NULL || j->q == NULL || j->wq == NULL) {
        set_err(err, "journal %s: out of memory", path);
        goto fail;
    }
    j->fd = open(path, OPEN_FLAGS, OPEN_MODE);
    if (j->fd < 0) {
        char buf[128];
        set_err(err, "journal %s: cannot open: %s", path, strerror_r(errno, buf, sizeof(buf)));
        goto fail;
    }
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
        pthread_condattr_destroy(&ca);
    }
    if (!cv_ok) {
        set_err(err, "journal %s: cannot create condition variable", path);
        goto fail;
    }
    j->last_sync_ms = mono_ms();

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
        if (cv_ok)
            pthread_cond_destroy(&j->cv);
        if (mu_ok)
            pthread_mutex_destroy(&j->mu);
        if (j->fd >= 0)
            close(j->fd);
        free(j->q);
        free(j->wq);
        free(j->path);
        free(j);
    }
    return NULL;
}

int gw_journal_submit(gw_journal *j, char *line, size_t len)
{
    int rc = -1;

    if (j == NULL) {
        free(line);
        return -1;
    }
    pthread_mutex_lock(&j->mu);
    if (line == NULL) {
        j->dropped_null++;
    } else if (j->closing) {
        j->dropped_closed++;
    } else if (j->qlen == j->cap) {
        j->dropped_full++;
    } else {
        /* The writer only waits on an empty queue. */
        if (j->qlen == 0)
            pthread_cond_signal(&j->cv);
        j->q[j->qlen].p = line;
        j->q[j->qlen].len = len;
        j->qlen++;
        j->submitted++;
        line = NULL;
        rc = 0;
    }
    pthread_mutex_unlock(&j->mu);
    free(line); /* refused: still ours to free, outside the lock */
    return rc;
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
    pthread_mutex_unlock(&j->mu);
}

int gw_journal_healthy(gw_journal *j)
{
    int ok;

    if (j == NULL)
        return 0;
    pthread_mutex_lock(&j->mu);
    ok = j->write_ok && j->sync_ok;
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

/* The caller must have stopped every submitting thread before this returns:
 * lines that arrive while it drains are refused and counted, but <j> is freed
 * at the end. */
void gw_journal_close(gw_journal *j)
{
    if (j == NULL)
        return;
    pthread_mutex_lock(&j->mu);
    j->closing = 1;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
    pthread_join(j->thread, NULL);

    report(j, 1);
    close(j->fd);
    for (size_t i = 0; i < j->qlen; i++) /* none: the writer took all */
        free(j->q[i].p);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j->q);
    free(j->wq);
    free(j->path);
    free(j);
}

/* ------------------------------------------------------------------------ */
/* Record formatting                                                        */
/* ------------------------------------------------------------------------ */

/* Length (1..4) of the well-formed UTF-8 sequence at <s>, which has <n> bytes
 * left, or 0. As strict as jansson: no overlong forms, no surrogates, nothing
 * above U+10FFFF. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    uint32_t cp, min;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* A JSON string from untrusted bytes. jansson refuses invalid UTF-8, which
 * would make the whole record disappear; instead each byte that does not
 * start a well-formed sequence becomes U+FFFD. */
static json_t *json_str(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s), i = 0, l;

    while (i < n && (l = utf8_len(u + i, n - i)) != 0)
        i += l;
    if (i == n)
        return json_stringn(s, n);

    gw_buf b = {0};
    gw_buf_append(&b, s, i);
    while (i < n) {
        l = utf8_len(u + i, n - i);
        if (l == 0) {
            gw_buf_append(&b, "\xEF\xBF\xBD", 3);
            i++;
        } else {
            gw_buf_append(&b, s + i, l);
            i += l;
        }
    }
    json_t *v = b.oom ? NULL : json_stringn(b.data, b.len);
    gw_buf_free(&b);
    return v;
}

/* json_object_set_new() takes <v> in every case, NULL included. */
static void put(json_t *o, const char *k, json_t *v, int *fail)
{
    if (json_object_set_new(o, k, v) != 0)
        *fail = 1;
}

static void put_str(json_t *o, const char *k, const char *s, int *fail)
{
    if (s != NULL)
        put(o, k, json_str(s), fail);
}

static void put_num(json_t *o, const char *k, long long v, int *fail)
{
    if (v >= 0)
        put(o, k, json_integer(v), fail);
}

static int dump_cb(const char *p, size_t n, void *data)
{
    gw_buf *b = data;
    gw_buf_append(b, p, n);
    return b->oom ? -1 : 0;
}

char *gw_journal_format(const gw_journal_rec *r, size_t *len)
{
    int fail = 0;
    char *line = NULL;
    gw_buf b = {0};
    json_t *o = json_object();

    if (o == NULL)
        return NULL;
    /* The order here is the order on the line (docs/journal.md). There is
     * deliberately no field for Authorization, tokens or secrets. */
    put(o, "v", json_integer(GW_JOURNAL_SCHEMA_VERSION), &fail);
    put_str(o, "ts", r->ts, &fail);
    put_str(o, "request_id", r->request_id, &fail);
    put_str(o, "correlation_id", r->correlation_id, &fail);
    put_str(o, "env", r->env, &fail);
    put_str(o, "listener", r->listener, &fail);
    put_str(o, "client_ip", r->client_ip, &fail);
    put_num(o, "client_port", r->client_port, &fail);
    if (r->tls_version || r->tls_cert_sha256 || r->tls_subject) {
        json_t *t = json_object();
        put_str(t, "version", r->tls_version, &fail);
        put_str(t, "cert_sha256", r->tls_cert_sha256, &fail);
        put_str(t, "subject", r->tls_subject, &fail);
        put(o, "tls", t, &fail);
    }
    put_str(o, "consumer", r->consumer, &fail);
    put_str(o, "habilitation", r->habilitation, &fail);
    put_str(o, "teleservice", r->teleservice, &fail);
    put_str(o, "method", r->method, &fail);
    put_str(o, "route", r->route, &fail);
    put_str(o, "path", r->path, &fail);
    put_str(o, "siren", r->siren, &fail);
    put_str(o, "annee", r->annee, &fail);
    put_str(o, "scope", r->scope, &fail);
    if (r->quota_store != NULL) {
        json_t *qo = json_object();
        put(qo, "limit", json_integer(r->quota_limit), &fail);
        put(qo, "remaining", json_integer(r->quota_remaining), &fail);
        put_str(qo, "store", r->quota_store, &fail);
        put(o, "quota", qo, &fail);
    }
    put_str(o, "token_jti", r->token_jti, &fail);
    put_str(o, "client_id", r->token_client_id, &fail);
    put_str(o, "decision", r->decision, &fail);
    put_str(o, "reason", r->reason, &fail);
    put_str(o, "code", r->code, &fail);
    if (r->status > 0)
        put(o, "status", json_integer(r->status), &fail);
    if (r->upstream_addr) {
        json_t *u = json_object();
        put_str(u, "addr", r->upstream_addr, &fail);
        if (r->upstream_status > 0)
            put(u, "status", json_integer(r->upstream_status), &fail);
        put_num(u, "ms", r->upstream_ms, &fail);
        put(o, "upstream", u, &fail);
    }
    put_num(o, "ms", r->ms, &fail);
    put_num(o, "bytes_in", r->bytes_in, &fail);
    put_num(o, "bytes_out", r->bytes_out, &fail);

    if (!fail && json_dump_callback(o, dump_cb, &b, JSON_COMPACT | JSON_PRESERVE_ORDER) == 0) {
        gw_buf_append(&b, "\n", 1);
        line = gw_buf_take(&b, len);
    }
    gw_buf_free(&b);
    json_decref(o);
    return line;
}
