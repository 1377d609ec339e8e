/*
 * Access journal: the files' lifecycle (journal_int.h lists the files).
 *
 * Rotation (by size, by UTC day, and the reopen asked by SIGUSR1), the
 * chain continuing in the new file after a "rotate" record; retention, each
 * deletion after a chained "retention" record; the state file that lets the
 * next start record an unclean stop.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* GNU strerror_r, asprintf, renameat2 */
#endif
#include "journal/journal_int.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/util.h"

void gw_jn_sync_dir(const gw_journal *j)
{
    int d = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d >= 0) {
        fsync(d);
        close(d);
    }
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

/* Leave the current file for <fd>: end it on a line boundary (best effort:
 * a torn last line gets its '\n'), sync and close it. */
static void leave_file(gw_journal *j, int fd)
{
    if (j->torn) {
        ssize_t w;
        do
            w = write(j->fd, "\n", 1);
        while (w < 0 && errno == EINTR);
    }
    gw_jn_sync_file(j);
    close(j->fd);
    j->fd = fd;
    j->no_sync = 0;
    j->torn = 0;
    j->dirty = 0;
}

/* The chain moves to <fd>, a new file at <path>: end the old file on a line
 * boundary, sync and close it, then write the rotate record, the first record
 * of the new file, naming the old one (<from>, NULL when unknown). */
static void switch_file(gw_journal *j, int fd, const char *reason, const char *from)
{
    struct stat st;
    char ts[32];

    leave_file(j, fd);
    j->regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    j->cur_size = j->regular ? (uint64_t)st.st_size : 0;
    j->file_day = gw_jn_utc_day(gw_jn_wall(j, NULL));
    gw_jn_sync_dir(j);
    pthread_mutex_lock(&j->mu);
    j->st_rotations++;
    pthread_mutex_unlock(&j->mu);

    gw_jn_wall_iso(j, ts);
    json_t *o = gw_jn_own_record("rotate", ts);
    if (o != NULL &&
        (json_object_set_new(o, "reason", json_string(reason)) != 0 ||
         json_object_set_new(o, "from", from ? json_string(from) : json_null()) != 0)) {
        json_decref(o);
        o = NULL;
    }
    gw_jn_emit(j, o);
}

/* Rename <path> to <path>.<stamp>[-N] without replacing anything. 0 and the
 * malloc'd new name, or an errno value. */
static int rename_unique(gw_journal *j, char **target)
{
    char stamp[32];
    struct tm tm;
    time_t now = gw_jn_wall(j, NULL);
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
            j->rotate_retry_ms = gw_jn_mono_ms() + ROTATE_RETRY_MS;
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
        j->rotate_retry_ms = gw_jn_mono_ms() + ROTATE_RETRY_MS;
    } else {
        j->rotate_retry_ms = 0;
        switch_file(j, fd, reason, from);
    }
    free(target);
    free(found);
}

/* Before a group of lines: rotate if the file is full or from another day. */
void gw_jn_maybe_rotate(gw_journal *j)
{
    if (!j->regular || (j->rotate_bytes == 0 && !j->rotate_daily))
        return;
    if (j->rotate_retry_ms != 0 && gw_jn_mono_ms() < j->rotate_retry_ms)
        return;
    const char *why = NULL;
    if (j->rotate_bytes > 0 && j->cur_size >= j->rotate_bytes) {
        why = "size";
    } else if (j->rotate_daily) {
        long long day = gw_jn_utc_day(gw_jn_wall(j, NULL));
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
void gw_jn_reopen_file(gw_journal *j)
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
    leave_file(j, fd);
}

/* Delete the rotated files older than retention_days, oldest first. Each
 * deletion is preceded by a chained "retention" record naming the file and
 * the end of the chain it held, synced to disk: a file is never deleted
 * without its record. */
void gw_jn_run_retention(gw_journal *j)
{
    char **files = NULL;
    size_t n = 0;
    char ebuf[128];
    struct stat cur;

    pthread_mutex_lock(&j->mu);
    int hold = j->hold;
    j->st_ret_held += hold != 0;
    pthread_mutex_unlock(&j->mu);
    if (hold)
        return; /* a legal hold: nothing is deleted until it is lifted */
    if (!j->regular || gw_journal_list_files(j->path, &files, &n, NULL) != 0)
        return;
    time_t now = gw_jn_wall(j, NULL);
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
        struct gw_jn_file_end fe;
        uint64_t first = 0;
        int e = gw_jn_read_end(fd, (uint64_t)st.st_size, &fe);
        if (e == 0)
            first = gw_jn_read_first_seq(fd);
        close(fd);
        if (e != 0) {
            fprintf(stderr, "opale-gateway: journal %s: retention: cannot read %s: %s\n", j->path,
                    files[i], strerror_r(e, ebuf, sizeof(ebuf)));
            continue;
        }
        const char *name = strrchr(files[i], '/') ? strrchr(files[i], '/') + 1 : files[i];
        char ts[32];
        gw_jn_maybe_rotate(j);
        gw_jn_wall_iso(j, ts);
        json_t *o = gw_jn_own_record("retention", ts);
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
        if (gw_jn_emit(j, o) != 0 || gw_jn_sync_file(j) != 0) {
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
        gw_jn_sync_dir(j);
    gw_journal_free_files(files, n);
}

/* The state file: "<head seq> <records pending>\n", fixed width, rewritten
 * in place when either changed. Pending: reservations taken and lines
 * queued or being written, everything a kill now could lose. */
void gw_jn_write_state(gw_journal *j)
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
void gw_jn_write_restart_gap(gw_journal *j)
{
    char ts[32];
    gw_jn_wall_iso(j, ts);
    json_t *o = gw_jn_own_record("gap", ts);
    if (o != NULL &&
        (json_object_set_new(o, "reason", json_string("unclean_stop")) != 0 ||
         json_object_set_new(o, "state_seq", json_integer((json_int_t)j->prev_state_seq)) != 0 ||
         json_object_set_new(o, "lost_max", json_integer((json_int_t)j->prev_state_held)) != 0)) {
        json_decref(o);
        o = NULL;
    }
    if (gw_jn_emit(j, o) == 0)
        fprintf(stderr,
                "opale-gateway: journal %s: the previous run stopped without closing the journal "
                "(head seq %" PRIu64 ", up to %" PRIu64 " records pending): gap record seq %" PRIu64
                "\n",
                j->path, j->prev_state_seq, j->prev_state_held, j->seq);
}

/* DIR/.NAME.state (hidden, so that a glob NAME* for the journal's files
 * does not take it): read what a previous run left (it did not close the
 * journal), then keep it open for gw_jn_write_state(). 0 or -1 with <*err>. */
int gw_jn_open_state(gw_journal *j, char **err)
{
    char ebuf[128];
    if (asprintf(&j->state_path, "%s/.%s.state", j->dir, j->base) < 0) {
        j->state_path = NULL;
        gw_jn_set_err(err, "journal %s: out of memory", j->path);
        return -1;
    }
    j->state_fd = open(j->state_path, O_RDWR | O_CREAT | O_CLOEXEC, OPEN_MODE);
    if (j->state_fd < 0) {
        gw_jn_set_err(err, "journal %s: cannot open %s: %s", j->path, j->state_path,
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
