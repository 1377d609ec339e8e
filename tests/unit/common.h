/*
 * Fixtures shared by the unit tests (Check): a temporary directory per test,
 * files in it, a shell command's output, a self-signed certificate with its
 * fingerprint, a policy file's text, an error list as one string, and the
 * suite runner. Header-only: each test program is one file, and a helper it
 * does not call costs nothing.
 *
 * Every helper fails the running test (ck_assert) instead of returning an
 * error, and every string it returns is malloc'd for the caller to free.
 */
#ifndef GW_TESTS_UNIT_COMMON_H
#define GW_TESTS_UNIT_COMMON_H

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/http1.h"
#include "lib/jsonv.h" /* gw_errlist */

#define GW_TEST_FN static __attribute__((unused))

/* ---- the temporary directory ---- */

/* Makes a fresh directory /tmp/gw-test-<tag>.XXXXXX and writes its
 * canonical path (links resolved) into <out>. */
GW_TEST_FN void gw_test_mkdtemp(char out[PATH_MAX], const char *tag)
{
    char tmpl[PATH_MAX];
    snprintf(tmpl, sizeof(tmpl), "/tmp/gw-test-%s.XXXXXX", tag);
    ck_assert_ptr_nonnull(mkdtemp(tmpl));
    ck_assert_ptr_nonnull(realpath(tmpl, out));
}

static int gw_test_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* Removes the tree <dir> (when set) and clears <dir>. */
GW_TEST_FN void gw_test_rmtree(char dir[PATH_MAX])
{
    if (dir[0] != '\0')
        nftw(dir, gw_test_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    dir[0] = '\0';
}

/* "<dir>/<rel>". */
GW_TEST_FN char *gw_test_path(const char *dir, const char *rel)
{
    char *p = NULL;
    ck_assert_int_ge(asprintf(&p, "%s/%s", dir, rel), 0);
    return p;
}

/* ---- files ---- */

GW_TEST_FN void gw_test_mkdir(const char *path)
{
    ck_assert_msg(mkdir(path, 0755) == 0, "mkdir %s: %s", path, strerror(errno));
}

/* Writes <text> as the whole of <path> (created or truncated). */
GW_TEST_FN void gw_test_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "fopen %s: %s", path, strerror(errno));
    ck_assert_int_ge(fputs(text, f), 0);
    ck_assert_int_eq(fclose(f), 0);
}

/* The whole of <path>, NUL-terminated. */
GW_TEST_FN char *gw_test_read(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "fopen %s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
        size_t r = fread(buf + n, 1, 4096, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* The source tree (ctest sets SRCDIR), else ".". */
GW_TEST_FN const char *gw_test_srcdir(void)
{
    const char *s = getenv("SRCDIR");
    return s != NULL && s[0] != '\0' ? s : ".";
}

/* ---- commands and certificates ---- */

/* Runs the shell command <cmd>, which must succeed; its stdout (at most
 * 4 KiB), trailing spaces and newlines cut. */
GW_TEST_FN char *gw_test_sh(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    char buf[4096];
    size_t n = fread(buf, 1, sizeof(buf) - 1, p);
    int st = pclose(p);
    ck_assert_msg(st == 0, "command failed (%d): %s", st, cmd);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    return strdup(buf);
}

/* A self-signed P-256 certificate for CN=<cn> at <crt> (PEM; its key at
 * "<crt>.key"), made by the openssl tool. Returns the SHA-256 of its DER in
 * lowercase hex, as `openssl x509 -outform DER | sha256sum` computes it:
 * independent of the gateway's own code. */
GW_TEST_FN char *gw_test_make_cert(const char *crt, const char *cn)
{
    char *cmd = NULL;
    ck_assert_int_ge(asprintf(&cmd,
                              "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
                              "-nodes -keyout '%s.key' -out '%s' -subj '/CN=%s' -days 2 "
                              ">/dev/null 2>&1 && openssl x509 -in '%s' -outform DER | sha256sum "
                              "| cut -d' ' -f1",
                              crt, crt, cn, crt),
                     0);
    char *fp = gw_test_sh(cmd);
    ck_assert_uint_eq(strlen(fp), 64);
    free(cmd);
    return fp;
}

/* ---- error lists ---- */

/* The messages of <e>, one a line, without a final newline ("" when none). */
GW_TEST_FN char *gw_test_errs_join(const gw_errlist *e)
{
    char *got = NULL;
    size_t glen = 0;
    FILE *m = open_memstream(&got, &glen);
    ck_assert_ptr_nonnull(m);
    for (size_t k = 0; k < e->n; k++)
        fprintf(m, "%s%s", k ? "\n" : "", e->msgs[k]);
    fclose(m);
    return got;
}

/* ---- a policy file ---- */

/* The fields of a policy that tests vary; NULL (or 0) takes the default in
 * brackets. <certificates>, <ip_allowlist> and <scopes> are the JSON text
 * inside the array's brackets; <extra> is more top-level members, with
 * their leading comma (",\"quota\": {\"per_minute\": 5}"). */
typedef struct gw_test_policy {
    const char *id;             /* "H456" */
    const char *definition;     /* "api_opale_sandbox" */
    const char *state;          /* "active" */
    const char *valid_from;     /* "2025-01-01" */
    const char *valid_until;    /* "2027-12-31" */
    const char *siret;          /* "21920023500014" */
    const char *client_id;      /* "commune-sandbox" */
    const char *id_teleservice; /* "TS-0001" */
    const char *certificates;   /* {"sha256": "0123456789abcdef" x 4} */
    const char *ip_allowlist;   /* "127.0.0.1/32" */
    const char *scopes;         /* "api_opale_declarations" */
    int year_from, year_to;     /* 2019, 2025 */
    const char *extra;          /* "" */
} gw_test_policy;

#define GW_TEST_FP "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

#define GW_TEST_OR(a, b) ((a) != NULL ? (a) : (b))

/* A valid policy file's text for <p> (unless a field makes it invalid). */
GW_TEST_FN char *gw_test_policy_json(const gw_test_policy *p)
{
    char *t = NULL;
    ck_assert_int_ge(
        asprintf(&t,
                 "{\"habilitation\": {\"id\": \"%s\", \"definition\": \"%s\", \"state\": \"%s\", "
                 "\"valid_from\": \"%s\", \"valid_until\": \"%s\"},\n"
                 " \"organization\": {\"siret\": \"%s\"},\n"
                 " \"consumer\": {\"client_id\": \"%s\", \"id_teleservice\": \"%s\", "
                 "\"certificates\": [%s], \"ip_allowlist\": [%s]},\n"
                 " \"rights\": {\"scopes\": [%s], \"years\": {\"from\": %d, \"to\": %d}}%s}\n",
                 GW_TEST_OR(p->id, "H456"), GW_TEST_OR(p->definition, "api_opale_sandbox"),
                 GW_TEST_OR(p->state, "active"), GW_TEST_OR(p->valid_from, "2025-01-01"),
                 GW_TEST_OR(p->valid_until, "2027-12-31"), GW_TEST_OR(p->siret, "21920023500014"),
                 GW_TEST_OR(p->client_id, "commune-sandbox"),
                 GW_TEST_OR(p->id_teleservice, "TS-0001"),
                 GW_TEST_OR(p->certificates, "{\"sha256\": \"" GW_TEST_FP "\"}"),
                 GW_TEST_OR(p->ip_allowlist, "\"127.0.0.1/32\""),
                 GW_TEST_OR(p->scopes, "\"api_opale_declarations\""),
                 p->year_from != 0 ? p->year_from : 2019, p->year_to != 0 ? p->year_to : 2025,
                 GW_TEST_OR(p->extra, "")),
        0);
    return t;
}

/* ---- requests ---- */

/* <raw> (one complete request) parsed by the gateway's parser; free it with
 * gw_http_request_free. */
GW_TEST_FN gw_http_request *gw_test_request(const char *raw)
{
    gw_http_limits lim = {16384, 100, 4096};
    gw_http_parser *p = gw_http_parser_new(0, &lim);
    ck_assert_ptr_nonnull(p);
    size_t used = 0;
    ck_assert_int_eq(gw_http_parser_feed(p, raw, strlen(raw), &used), GW_HTTP_COMPLETE);
    gw_http_request *http = gw_http_parser_take_request(p);
    gw_http_parser_free(p);
    ck_assert_ptr_nonnull(http);
    return http;
}

/* ---- the runner ---- */

/* Runs <s> (normal verbosity) and frees it; EXIT_SUCCESS when all passed. */
GW_TEST_FN int gw_test_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
