/*
 * The tail check of a chained journal (tail.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem, memrchr, strerror_r, asprintf */
#endif
#include "journal/tail.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "journal/journal.h"
#include "journal/verify.h"
#include "lib/util.h"

static const char CP_TYPE[] = "\"type\":\"checkpoint\"";
static const char ACK_TYPE[] = "\"type\":\"break_ack\"";

static int has(const char *p, size_t n, const char *what, size_t wl)
{
    return memmem(p, n, what, wl) != NULL;
}

/* Read <len> bytes of <fd> at <off> into a malloc'd buffer. */
static char *read_at(int fd, uint64_t off, size_t len, int *e)
{
    char *buf = malloc(len + 1);
    size_t got = 0;
    if (buf == NULL) {
        *e = ENOMEM;
        return NULL;
    }
    while (got < len) {
        ssize_t r = pread(fd, buf + got, len - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            *e = r < 0 ? errno : EIO;
            free(buf);
            return NULL;
        }
        got += (size_t)r;
    }
    buf[len] = '\0';
    return buf;
}

static void broken(gw_journal_tail *t, uint64_t seq, size_t line, const char *expected,
                   const char *actual, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void broken(gw_journal_tail *t, uint64_t seq, size_t line, const char *expected,
                   const char *actual, const char *fmt, ...)
{
    va_list ap;
    t->broken = 1;
    t->seq = seq;
    t->line = line;
    snprintf(t->expected, sizeof(t->expected), "%s", expected ? expected : "");
    snprintf(t->actual, sizeof(t->actual), "%s", actual ? actual : "");
    va_start(ap, fmt);
    vsnprintf(t->what, sizeof(t->what), fmt, ap);
    va_end(ap);
}

/* One line of the window: [p, p + n) without its '\n'. */
typedef struct wline {
    const char *p;
    size_t n;
} wline;

/* Check the records of <lines>[0..<nl>). 1 broken, 0 intact. */
static int check_lines(const wline *lines, size_t nl, const gw_keyset *keys, gw_journal_tail *t)
{
    size_t from = 0;
    /* the last acknowledged break: only what follows it is checked */
    for (size_t i = nl; i-- > 0;) {
        gw_journal_link l;
        if (has(lines[i].p, lines[i].n, ACK_TYPE, sizeof(ACK_TYPE) - 1) &&
            gw_journal_parse_link(lines[i].p, lines[i].n, &l) == 0 &&
            gw_journal_link_ok(lines[i].p, &l)) {
            from = i;
            t->ack_seq = l.seq;
            break;
        }
    }
    /* the last record, where the chain continues (as the writer's open
     * finds it: its written hash, even when the record is at fault) */
    for (size_t i = nl; i-- > 0;) {
        gw_journal_link l;
        if (gw_journal_parse_link(lines[i].p, lines[i].n, &l) == 0) {
            t->last_seq = l.seq;
            memcpy(t->last_hash, l.hash, sizeof(t->last_hash));
            break;
        }
    }
    int have = 0;
    gw_journal_link prev;
    memset(&prev, 0, sizeof(prev));
    for (size_t i = from; i < nl; i++) {
        gw_journal_link l;
        const char *p = lines[i].p;
        size_t n = lines[i].n;
        if (gw_journal_parse_link(p, n, &l) != 0)
            continue; /* a fragment left by a failed write, or a foreign line */
        if (!gw_journal_link_ok(p, &l)) {
            char h[65];
            gw_journal_sha256_hex(p, l.canon_len, h);
            broken(t, l.seq, i + 1, h, l.hash, "record seq %" PRIu64 " does not match its hash",
                   l.seq);
            return 1;
        }
        int restart = l.seq == 1 && strcmp(l.prev, GW_JOURNAL_GENESIS) == 0;
        if (have && !restart && (l.seq != prev.seq + 1 || strcmp(l.prev, prev.hash) != 0)) {
            broken(t, l.seq, i + 1, prev.hash, l.prev,
                   "record seq %" PRIu64 " does not follow the record before it (seq %" PRIu64 ")",
                   l.seq, prev.seq);
            return 1;
        }
        if (has(p, n, CP_TYPE, sizeof(CP_TYPE) - 1)) {
            json_t *o = json_loadb(p, n, JSON_REJECT_DUPLICATES, NULL);
            const char *ty = json_string_value(json_object_get(o, "type"));
            if (ty != NULL && strcmp(ty, "checkpoint") == 0) {
                char why[200];
                /* a kid no configured key has (retired since): the head is
                 * checked, the signature cannot be; the caller warns */
                const char *kid = json_string_value(json_object_get(o, "kid"));
                int known = keys == NULL || kid == NULL || gw_keyset_find(keys, kid) != NULL;
                gw_jv_kind k =
                    gw_journal_check_checkpoint(o, &l, known ? keys : NULL, why, sizeof(why));
                if (k == GW_JV_OK)
                    snprintf(t->unknown_kid, sizeof(t->unknown_kid), "%s", known ? "" : kid);
                if (k != GW_JV_OK) {
                    json_decref(o);
                    broken(t, l.seq, i + 1, NULL, NULL, "%s", why);
                    return 1;
                }
                t->checkpoint = l.seq;
            }
            json_decref(o);
        }
        t->records++;
        prev = l;
        have = 1;
    }
    return 0;
}

/* Check the window [start, size) of <fd>. 0/1, or 2 with <e>. <*more>: the
 * window should reach further back (no checkpoint in it yet). */
static int check_window(int fd, uint64_t start, uint64_t size, const gw_keyset *keys,
                        gw_journal_tail *t, int *more, int *e)
{
    size_t len = (size_t)(size - start);
    char *buf = read_at(fd, start, len, e);
    if (buf == NULL)
        return 2;
    size_t cap = 1024, nl = 0, off = 0;
    wline *lines = malloc(cap * sizeof(*lines));
    if (lines == NULL) {
        free(buf);
        *e = ENOMEM;
        return 2;
    }
    if (start > 0) {
        /* the first line may begin before the window */
        const char *nlp = memchr(buf, '\n', len);
        off = nlp ? (size_t)(nlp - buf) + 1 : len;
    }
    while (off < len) {
        const char *nlp = memchr(buf + off, '\n', len - off);
        size_t end = nlp ? (size_t)(nlp - buf) : len;
        if (nlp == NULL) {
            /* cut by a crash: counts only when it is a whole record */
            gw_journal_link l;
            if (gw_journal_parse_link(buf + off, end - off, &l) != 0 ||
                !gw_journal_link_ok(buf + off, &l))
                break;
        }
        if (nl == cap) {
            wline *nw = realloc(lines, 2 * cap * sizeof(*lines));
            if (nw == NULL) {
                free(lines);
                free(buf);
                *e = ENOMEM;
                return 2;
            }
            lines = nw;
            cap *= 2;
        }
        lines[nl].p = buf + off;
        lines[nl].n = end - off;
        nl++;
        off = end + 1;
    }
    memset((char *)t + offsetof(gw_journal_tail, offset), 0,
           sizeof(*t) - offsetof(gw_journal_tail, offset));
    t->offset = start;
    int rc = check_lines(lines, nl, keys, t);
    *more = rc == 0 && t->checkpoint == 0 && t->ack_seq == 0 && start > 0;
    free(lines);
    free(buf);
    return rc;
}

/* The file whose end holds the head: <path> when it has a chained record,
 * else its newest rotated file. malloc'd, or NULL when there is none. */
static char *head_file(const char *path)
{
    char **files = NULL;
    size_t n = 0;
    char *out = NULL;
    struct stat st;
    if (stat(path, &st) == 0 && st.st_size > 0) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            /* a record anywhere in the last 64 KiB */
            uint64_t from = (uint64_t)st.st_size > 65536 ? (uint64_t)st.st_size - 65536 : 0;
            int e = 0;
            char *b = read_at(fd, from, (size_t)((uint64_t)st.st_size - from), &e);
            close(fd);
            if (b != NULL && strstr(b, ",\"hash\":\"") != NULL) {
                free(b);
                return strdup(path);
            }
            free(b);
        }
    }
    if (gw_journal_list_files(path, &files, &n, NULL) != 0)
        return NULL;
    for (size_t i = n; i-- > 0;)
        if (gw_journal_rotated_name(files[i], NULL, NULL, NULL)) {
            out = strdup(files[i]);
            break;
        }
    gw_journal_free_files(files, n);
    return out;
}

int gw_journal_check_tail(const char *path, const gw_keyset *keys, uint64_t expect_seq,
                          const char *expect_hash, gw_journal_tail *t)
{
    char ebuf[128];
    memset(t, 0, sizeof(*t));
    char *file = head_file(path);
    if (file == NULL) {
        snprintf(t->file, sizeof(t->file), "%s", path);
        if (expect_seq > 0) {
            broken(t, expect_seq, 0, expect_hash, NULL,
                   "the journal holds no record, the writer's head is seq %" PRIu64, expect_seq);
            return 1;
        }
        return 0; /* no journal yet */
    }
    snprintf(t->file, sizeof(t->file), "%s", file);
    free(file);
    int fd = open(t->file, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(t->what, sizeof(t->what), "cannot read: %s",
                 strerror_r(errno, ebuf, sizeof(ebuf)));
        if (fd >= 0)
            close(fd);
        return 2;
    }
    uint64_t size = (uint64_t)st.st_size, win = GW_JOURNAL_TAIL_BYTES;
    int rc, more, e = 0;
    for (;;) {
        uint64_t start = size > win ? size - win : 0;
        rc = check_window(fd, start, size, keys, t, &more, &e);
        if (rc != 0 || !more || win >= GW_JOURNAL_TAIL_MAX)
            break;
        win *= 4;
    }
    close(fd);
    if (rc == 2) {
        snprintf(t->what, sizeof(t->what), "cannot read: %s", strerror_r(e, ebuf, sizeof(ebuf)));
        return 2;
    }
    if (rc == 0 && expect_seq > 0) {
        if (t->last_seq != expect_seq || expect_hash == NULL ||
            strcmp(t->last_hash, expect_hash) != 0) {
            broken(t, t->last_seq, 0, expect_hash, t->last_hash,
                   "the file ends at seq %" PRIu64 ", the writer's head is seq %" PRIu64
                   " (records cut, rewritten or added behind the writer)",
                   t->last_seq, expect_seq);
            rc = 1;
        }
    }
    return rc;
}

int gw_journal_ack_break(const gw_journal_tail *t, const char *reason, const char *by, char **err)
{
    char ebuf[128], ts[32];
    *err = NULL;
    gw_time_iso_ms(ts);
    json_t *o = json_pack("{s:i,s:s,s:s,s:{s:s,s:I,s:I,s:s,s:s,s:s},s:s,s:s}", "v",
                          GW_JOURNAL_SCHEMA_VERSION, "type", "break_ack", "ts", ts, "break", "file",
                          t->file, "seq", (json_int_t)t->seq, "line", (json_int_t)t->line,
                          "expected", t->expected, "actual", t->actual, "what", t->what, "reason",
                          reason, "by", by != NULL ? by : "unknown");
    char *body = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (body == NULL) {
        *err = strdup("out of memory");
        return -1;
    }
    /* linked to the file's last record, as the writer would continue */
    const char *prev = t->last_seq > 0 ? t->last_hash : GW_JOURNAL_GENESIS;
    char *canon = NULL, *line = NULL, hash[65];
    size_t bl = strlen(body);
    body[bl - 1] = '\0'; /* drop the closing brace */
    int cl =
        asprintf(&canon, "%s,\"seq\":%" PRIu64 ",\"prev\":\"%s\"", body, t->last_seq + 1, prev);
    free(body);
    if (cl < 0) {
        *err = strdup("out of memory");
        return -1;
    }
    gw_journal_sha256_hex(canon, (size_t)cl, hash);
    int ll = asprintf(&line, "%s,\"hash\":\"%s\"}\n", canon, hash);
    free(canon);
    if (ll < 0) {
        *err = strdup("out of memory");
        return -1;
    }
    int fd = open(t->file, O_WRONLY | O_APPEND | O_CLOEXEC);
    int rc = -1;
    if (fd >= 0) {
        /* a torn last line is ended first, as the writer does at open */
        struct stat st;
        char c = '\n';
        int rfd = open(t->file, O_RDONLY | O_CLOEXEC);
        if (rfd >= 0 && fstat(rfd, &st) == 0 && st.st_size > 0 &&
            pread(rfd, &c, 1, st.st_size - 1) == 1 && c != '\n' && write(fd, "\n", 1) != 1)
            c = 0;
        if (rfd >= 0)
            close(rfd);
        if (write(fd, line, (size_t)ll) == ll && fsync(fd) == 0)
            rc = 0;
    }
    if (rc != 0 && asprintf(err, "%s: cannot append the acknowledgement: %s", t->file,
                            strerror_r(errno, ebuf, sizeof(ebuf))) < 0)
        *err = NULL;
    if (fd >= 0)
        close(fd);
    free(line);
    return rc;
}
