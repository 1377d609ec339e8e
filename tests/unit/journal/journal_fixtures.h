/* Fixtures shared by the journal writer's unit tests (test_journal.c,
 * test_chain.c, test_lifecycle.c, test_checkpoint.c, test_order.c): a temp
 * directory per test, reading files back, opening journals, and the chain
 * recomputed independently of verify.c (OpenSSL's one-shot SHA256()). */
#ifndef GW_TEST_JOURNAL_FIXTURES_H
#define GW_TEST_JOURNAL_FIXTURES_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "journal/journal.h"
#include "journal/verify.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "token/jose.h"

static char tmpdir[64];

static __attribute__((unused)) void setup_dir(void)
{
    strcpy(tmpdir, "/tmp/test_journal.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static __attribute__((unused)) int rm_one(const char *p, const struct stat *st, int flag,
                                          struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

static __attribute__((unused)) void teardown_dir(void)
{
    nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static __attribute__((unused)) char *tpath(const char *name)
{
    static char buf[4][256];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    return p;
}

/* Whole file, NUL-terminated; <*len> bytes. NULL if it does not exist. */
static __attribute__((unused)) char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    size_t r;
    while ((r = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0)
            b = realloc(b, cap *= 2);
    }
    fclose(f);
    b[n] = '\0';
    if (len)
        *len = n;
    return b;
}

static __attribute__((unused)) size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static __attribute__((unused)) char *mkline(const char *fmt, int a, int b)
{
    char *p = NULL;
    ck_assert_int_ge(asprintf(&p, fmt, a, b), 0);
    return p;
}

static __attribute__((unused)) int submit_str(gw_journal *j, char *line)
{
    return gw_journal_submit(j, line, strlen(line));
}

/* Wait until the writer has handled every accepted line. */
static __attribute__((unused)) int drained(gw_journal *j)
{
    gw_journal_stats st;
    for (int i = 0; i < 10000; i++) {
        gw_journal_get_stats(j, &st);
        if (st.queued == 0)
            return 1;
        usleep(1000);
    }
    return 0;
}

/* The state file of "j.log" shows <pending> records pending within <ms>. */
static __attribute__((unused)) int state_shows(unsigned pending, int ms)
{
    char want[32];
    snprintf(want, sizeof(want), " %020u\n", pending);
    for (int i = 0;; i++) {
        size_t n = 0;
        char *st = slurp(tpath(".j.log.state"), &n);
        int ok = st != NULL && strstr(st, want) != NULL;
        free(st);
        if (ok || i >= ms)
            return ok;
        usleep(1000);
    }
}

/* 1 once the writer thread ("gw-journal", the only one in a test process)
 * sleeps (state S in /proc: its idle wait, nothing else at start-up) within
 * <ms> ms: a test that must reach an idle writer waits for it to get there
 * (its start under TSan on a loaded machine can exceed any fixed sleep). */
static __attribute__((unused)) int writer_asleep(int ms)
{
    for (int i = 0;; i++) {
        DIR *d = opendir("/proc/self/task");
        struct dirent *e;
        int asleep = 0;
        while (d != NULL && !asleep && (e = readdir(d)) != NULL) {
            char path[64], comm[32] = "", *stat = NULL;
            size_t n = 0;
            snprintf(path, sizeof(path), "/proc/self/task/%.20s/comm", e->d_name);
            FILE *f = fopen(path, "r");
            if (f == NULL)
                continue;
            int named = fgets(comm, sizeof(comm), f) != NULL && strcmp(comm, "gw-journal\n") == 0;
            fclose(f);
            snprintf(path, sizeof(path), "/proc/self/task/%.20s/stat", e->d_name);
            if (named && (stat = slurp(path, &n)) != NULL) {
                const char *c = strrchr(stat, ')'); /* "tid (comm) S ..." */
                asleep = c != NULL && c[1] == ' ' && c[2] == 'S';
            }
            free(stat);
        }
        if (d != NULL)
            closedir(d);
        if (asleep || i >= ms)
            return asleep;
        usleep(1000);
    }
}

static __attribute__((unused)) void wait_idle(gw_journal *j)
{
    ck_assert_msg(drained(j), "journal writer did not drain its queue within 10 s");
}

static __attribute__((unused)) gw_journal *open_ok(const char *path, size_t cap, unsigned sync_ms)
{
    char *err = NULL;
    gw_journal *j = gw_journal_open(path, cap, sync_ms, &err);
    ck_assert_msg(j != NULL, "gw_journal_open(%s): %s", path, err ? err : "(no message)");
    ck_assert_ptr_null(err);
    return j;
}

/* Send this test's stderr (Check forks each test) to <path>. */
static __attribute__((unused)) void capture_stderr(const char *path)
{
    fflush(stderr);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_ge(dup2(fd, 2), 0);
    close(fd);
}

static __attribute__((unused)) const char zeros64[] =
    "0000000000000000000000000000000000000000000000000000000000000000";

/* SHA-256 hex, computed here with OpenSSL's one-shot SHA256(), independently
 * of verify.c. */
static __attribute__((unused)) void sha_hex(const void *p, size_t n, char out[65])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(p, n, md);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* One chained line taken apart by the test itself. */
struct tline {
    char body[8192]; /* the object before ,"seq": */
    unsigned long long seq;
    char prev[65];
    char hash[65];
    char recomputed[65]; /* SHA-256 of the bytes up to the closing quote of prev */
};

static __attribute__((unused)) int split_line(const char *l, struct tline *t)
{
    const char *k = NULL, *p = l;
    int used = 0;
    while ((p = strstr(p, ",\"seq\":")) != NULL)
        k = p++;
    if (k == NULL || (size_t)(k - l) >= sizeof(t->body))
        return 0;
    if (sscanf(k, ",\"seq\":%llu,\"prev\":\"%64[0-9a-f]\",\"hash\":\"%64[0-9a-f]\"}%n", &t->seq,
               t->prev, t->hash, &used) != 3 ||
        k[used] != '\0' || strlen(t->prev) != 64 || strlen(t->hash) != 64)
        return 0;
    memcpy(t->body, l, (size_t)(k - l));
    t->body[k - l] = '\0';
    const char *he = strstr(k, ",\"hash\":\"");
    sha_hex(l, (size_t)(he - l), t->recomputed);
    return 1;
}

struct cstate {
    unsigned long long seq;
    char hash[65];
    size_t records;
};

static __attribute__((unused)) void cstate_init(struct cstate *cs)
{
    memset(cs, 0, sizeof(*cs));
    strcpy(cs->hash, zeros64);
}

/* Check every line of <path> continues the chain in <cs>: the hash
 * recomputes, prev is the previous hash, seq the previous + 1. */
static __attribute__((unused)) void check_file_chain(const char *path, struct cstate *cs)
{
    char *s = slurp(path, NULL);
    char *save = NULL;
    ck_assert_msg(s != NULL, "%s: missing", path);
    for (char *l = strtok_r(s, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        struct tline t;
        ck_assert_msg(split_line(l, &t), "%s: not a chained line: %s", path, l);
        ck_assert_msg(strcmp(t.recomputed, t.hash) == 0, "%s: seq %llu: hash does not recompute",
                      path, t.seq);
        ck_assert_uint_eq(t.seq, cs->seq + 1);
        ck_assert_str_eq(t.prev, cs->hash);
        cs->seq = t.seq;
        strcpy(cs->hash, t.hash);
        cs->records++;
    }
    free(s);
}

/* Line <n> (1-based) of <path>, parsed; NULL when absent. Caller frees. */
static __attribute__((unused)) json_t *line_json(const char *path, int n)
{
    char *s = slurp(path, NULL), *save = NULL, *l;
    json_t *o = NULL;
    if (s == NULL)
        return NULL;
    l = strtok_r(s, "\n", &save);
    for (int i = 1; l != NULL && i < n; i++)
        l = strtok_r(NULL, "\n", &save);
    if (l != NULL)
        o = json_loads(l, JSON_REJECT_DUPLICATES, NULL);
    free(s);
    return o;
}

static __attribute__((unused)) const char *jget_str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static __attribute__((unused)) gw_journal *open_chain(gw_journal_opts o)
{
    char *err = NULL;
    if (o.queue_cap == 0)
        o.queue_cap = 1000;
    gw_journal *j = gw_journal_open_opts(&o, &err);
    ck_assert_msg(j != NULL, "gw_journal_open_opts(%s): %s", o.path, err ? err : "(no message)");
    return j;
}

static __attribute__((unused)) void submit_rec(gw_journal *j, int n)
{
    char *l = NULL;
    int len = asprintf(&l, "{\"v\":1,\"n\":%d,\"path\":\"/opale/v1/liasses/732829320/2024\"}\n", n);
    ck_assert_int_gt(len, 0);
    ck_assert_int_eq(gw_journal_submit(j, l, (size_t)len), 0);
}

static __attribute__((unused)) gw_jwk test_key(const char *kid)
{
    gw_jwk k;
    memset(&k, 0, sizeof(k));
    snprintf(k.kid, sizeof(k.kid), "%s", kid);
    k.alg = GW_ALG_ES256;
    k.can_sign = 1;
    k.pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ck_assert_ptr_nonnull(k.pkey);
    return k;
}

static __attribute__((unused)) int
verify_files(char **files, size_t n, const gw_journal_verify_opts *o, gw_journal_verify_result *res)
{
    return gw_journal_verify_ex((const char *const *)files, n, o, stderr, res);
}

static __attribute__((unused)) char **list_ok(const char *path, size_t *n)
{
    char **f = NULL, *err = NULL;
    ck_assert_msg(gw_journal_list_files(path, &f, n, &err) == 0, "list: %s", err ? err : "");
    return f;
}

static __attribute__((unused)) const char *base_of(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* A record with most fields set (the format tests' reference). */
static __attribute__((unused)) gw_journal_rec full_rec(void)
{
    gw_journal_rec r = {
        .ts = "2025-03-21T09:00:00.123Z",
        .request_id = "5b8f0c1e-8c1a-4a47-9c55-0c9b6f7c1a11",
        .correlation_id = "0e4a2b6c-1d3f-4e5a-8b7c-9d0e1f2a3b4c",
        .env = "sandbox",
        .listener = "public",
        .client_ip = "192.0.2.10",
        .client_port = 51234,
        .tls_version = "TLSv1.3",
        .tls_cert_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        .tls_subject = "CN=acme-prod,O=ACME,C=FR",
        .method = "GET",
        .route = "liasse",
        .path = "/opale/v1/liasses/732829320/2024",
        .query = "annee=2024",
        .siren = "732829320",
        .annee = "2024",
        .decision = "deny",
        .reason = "quota",
        .code = "E429",
        .status = 429,
        .upstream_addr = "127.0.0.1:9000",
        .upstream_status = 200,
        .upstream_ms = 12,
        .ms = 15,
        .bytes_in = 0,
        .bytes_out = 321,
    };
    return r;
}

#endif
