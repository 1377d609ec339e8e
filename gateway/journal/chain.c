/*
 * Access journal: the hash chain (journal_int.h lists the files).
 *
 * The writer chains each line (gw_jn_chain_line; verify.h has the exact
 * bytes); at open, the end of the current file (or of its newest rotated
 * file) says where the chain continues (gw_jn_find_head).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* GNU strerror_r, memrchr */
#endif
#include "journal/journal_int.h"
#include "journal/tail.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "lib/util.h"

/* Chain one line: <sfx> gets ,"seq":<seq>,"prev":"<prev>","hash":"<h>"}\n
 * where h = SHA-256(<l> without its "}\n" || the suffix up to the closing
 * quote of prev). Returns the suffix length; the hash is its last 67..3
 * bytes.
 * The digest goes through OpenSSL's low-level SHA256_CTX (deprecated in 3.0,
 * not removed; token/assertion.c does the same): the same block function as
 * EVP's SHA-256, SHA-NI included, without what EVP adds per record in 3.0
 * (EVP_DigestInit_ex frees and allocates the provider context, Final
 * cleanses it): about 700 of the writer's ~19,000 instructions per record
 * (callgrind, bench/callgrind_s1.py; the rest is mostly the hash itself). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
size_t gw_jn_chain_line(const struct jline *l, uint64_t seq, const char *prev, char *sfx)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256_CTX c;
    /* ,"seq":<seq>,"prev":"<prev>" without snprintf (once per record, on
     * the writer thread): the same bytes as "%" PRIu64 and "%.64s" */
    size_t pl = strnlen(prev, 64), n;
    memcpy(sfx, ",\"seq\":", 7);
    n = 7 + gw_fmt_ull(sfx + 7, seq);
    memcpy(sfx + n, ",\"prev\":\"", 9);
    memcpy(sfx + n + 9, prev, pl);
    n += 9 + pl;
    sfx[n++] = '"';

    if (SHA256_Init(&c) != 1 || SHA256_Update(&c, l->p, l->len - 2) != 1 ||
        SHA256_Update(&c, sfx, n) != 1 || SHA256_Final(md, &c) != 1)
        memset(md, 0, sizeof(md)); /* cannot happen: these only fail on a NULL argument */
    memcpy(sfx + n, ",\"hash\":\"", 9);
    gw_hex(md, 32, sfx + n + 9);
    memcpy(sfx + n + 9 + 64, "\"}\n", 3);
    return n + 9 + 64 + 3;
}
#pragma GCC diagnostic pop

static int is_cp_line(const char *p, size_t n)
{
    static const char t[] = "\"type\":\"checkpoint\"";
    return memmem(p, n, t, sizeof(t) - 1) != NULL;
}

/* The last chained record of the file open on <fd> (<size> bytes). A final
 * line without '\n' counts when it is a complete record (only the newline is
 * missing). Reads at most TAIL_MAX bytes from the end. Returns 0 or an errno
 * value. */
int gw_jn_read_end(int fd, uint64_t size, struct gw_jn_file_end *fe)
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
uint64_t gw_jn_read_first_seq(int fd)
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

/* Where the chain of a journal being opened continues. Called before the
 * writer starts, on the open descriptor <j->fd>. Returns 0 or -1 with
 * <*err>. */
int gw_jn_find_head(gw_journal *j, char **err)
{
    struct stat st;
    struct gw_jn_file_end fe;
    char ebuf[128];

    memcpy(j->head, GW_JOURNAL_GENESIS, 65);
    j->seq = 0;
    if (fstat(j->fd, &st) != 0) {
        gw_jn_set_err(err, "journal %s: cannot stat: %s", j->path,
                      strerror_r(errno, ebuf, sizeof(ebuf)));
        return -1;
    }
    j->regular = S_ISREG(st.st_mode);
    j->file_day = gw_jn_utc_day(st.st_size > 0 ? st.st_mtime : time(NULL));
    if (!j->regular)
        return 0; /* a pipe: nothing to read back, the chain starts here */
    j->cur_size = (uint64_t)st.st_size;
    int rfd = open(j->path, O_RDONLY | O_CLOEXEC);
    struct stat rst;
    if (rfd < 0 || fstat(rfd, &rst) != 0 || rst.st_ino != st.st_ino || rst.st_dev != st.st_dev) {
        gw_jn_set_err(err, "journal %s: cannot read back: %s", j->path,
                      rfd < 0 ? strerror_r(errno, ebuf, sizeof(ebuf))
                              : "the file changed during open");
        if (rfd >= 0)
            close(rfd);
        return -1;
    }
    int e = gw_jn_read_end(rfd, (uint64_t)st.st_size, &fe);
    close(rfd);
    if (e != 0) {
        gw_jn_set_err(err, "journal %s: cannot read back: %s", j->path,
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
        if (fd >= 0 && fstat(fd, &fst) == 0 &&
            gw_jn_read_end(fd, (uint64_t)fst.st_size, &fe) == 0 && fe.found) {
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

void gw_jn_check_tail(gw_journal *j)
{
    struct stat a, b;
    if (!j->regular || j->seq == 0 || fstat(j->fd, &a) != 0 || stat(j->path, &b) != 0 ||
        a.st_dev != b.st_dev || a.st_ino != b.st_ino)
        return; /* a pipe, nothing written yet, or moved away (a reopen is coming) */
    gw_journal_tail *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return;
    /* no keys: this writer signed the checkpoints it compares; the head it
     * holds is the stronger check */
    int rc = gw_journal_check_tail(j->path, NULL, j->seq, j->head, t);
    pthread_mutex_lock(&j->mu);
    j->st_tail_checks++;
    if (rc == 1 && !j->broken) {
        j->broken = 1;
        j->tail = t;
        t = NULL;
    }
    pthread_mutex_unlock(&j->mu);
    if (t == NULL)
        fprintf(stderr,
                "opale-gateway: journal %s: tail check: BROKEN at seq %" PRIu64 " (%s): %s; "
                "expected %s, found %s; no more exchanges are served (docs/journal.md, \"Tail "
                "check\")\n",
                j->path, j->tail->seq, j->tail->file, j->tail->what,
                j->tail->expected[0] ? j->tail->expected : "-",
                j->tail->actual[0] ? j->tail->actual : "-");
    free(t);
}
