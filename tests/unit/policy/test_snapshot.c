/* Unit tests for gateway/policy/snapshot.c (with files.c and index.c
 * underneath): the set-level rules, the unit of failure being the file at
 * start and at reload, the reload diff, the "file" certificate extension
 * (against a certificate made at test time and its fingerprint from the
 * openssl tool), the example policies of policies/, a 10,000-policy set and
 * the snapshot's reference count. Every fixture lives in a mkdtemp
 * directory (policy_fixtures.h). */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "policy/policy.h"

#include "policy_fixtures.h"

/* ---- the set ---- */

/* The base policy with its identity changed: habilitation <id>, client_id
 * <cid>, one certificate entry <certjson>. */
static char *variant(const char *id, const char *cid, const char *certjson)
{
    char a[64], b[160];
    snprintf(a, sizeof(a), "\"id\": \"%s\"", id);
    snprintf(b, sizeof(b), "\"client_id\": \"%s\"", cid);
    char *t1 = edit(base, "\"id\": \"H456\"", a);
    char *t2 = edit(t1, "\"client_id\": \"commune-exemple-sandbox\"", b);
    char *t3 = edit(t2, "{\"sha256\": \"" FP2_COLONS "\"}, {\"sha256\": \"" FP1 "\"}", certjson);
    free(t1);
    free(t2);
    return t3;
}

static void put_variant(const char *rel, const char *id, const char *cid, const char *certjson)
{
    char *t = variant(id, cid, certjson);
    write_t(rel, t);
    free(t);
}

static void assert_errs(const gw_errlist *e, const char *want_fmt)
{
    char *want = NULL;
    ck_assert_int_ge(asprintf(&want, want_fmt, tmp_root, tmp_root, tmp_root, tmp_root, tmp_root,
                              tmp_root, tmp_root, tmp_root),
                     0);
    char *got = gw_test_errs_join(e);
    ck_assert_msg(strcmp(got, want) == 0, "\n got: %s\nwant: %s", got, want);
    free(got);
    free(want);
}

#define C1 "{\"sha256\": \"1111111111111111111111111111111111111111111111111111111111111111\"}"
#define C2 "{\"sha256\": \"2222222222222222222222222222222222222222222222222222222222222222\"}"
#define C3 "{\"sha256\": \"3333333333333333333333333333333333333333333333333333333333333333\"}"

START_TEST(t_set_good)
{
    gw_errlist errs = {0};
    mkdir_t("p");
    put_variant("p/b.json", "H2", "bbb-sandbox", C2);
    put_variant("p/a.json", "H1", "aaa-sandbox", C1 ", " C3);
    write_t("p/README.md", "not a policy");
    write_t("p/.hidden.json", "not JSON at all");
    write_t("p/c.json.bak", "not JSON at all");
    char *dir = tpath("p");
    gw_policy_set *s = gw_policy_set_load(dir, &rules, &errs);
    ck_assert_msg(s != NULL, "first error: %s", errs.n ? errs.msgs[0] : "(none)");
    ck_assert_uint_eq(errs.n, 0);
    ck_assert_uint_eq(gw_policy_set_count(s), 2);
    const gw_policy *a = gw_policy_set_at(s, 0), *b = gw_policy_set_at(s, 1);
    ck_assert_str_eq(a->id, "H1"); /* sorted by file name */
    ck_assert_str_eq(b->id, "H2");
    ck_assert_ptr_null(gw_policy_set_at(s, 2));
    char *af = tpath("p/a.json");
    ck_assert_str_eq(a->file, af);
    free(af);
    ck_assert_ptr_eq(gw_policy_by_client_id(s, "aaa-sandbox"), a);
    ck_assert_ptr_eq(gw_policy_by_client_id(s, "bbb-sandbox"), b);
    ck_assert_ptr_null(gw_policy_by_client_id(s, "ccc-sandbox"));
    ck_assert_ptr_null(gw_policy_by_client_id(s, NULL));
    ck_assert_ptr_eq(
        gw_policy_by_cert(s, "1111111111111111111111111111111111111111111111111111111111111111"),
        a);
    ck_assert_ptr_eq(
        gw_policy_by_cert(s, "3333333333333333333333333333333333333333333333333333333333333333"),
        a);
    ck_assert_ptr_eq(
        gw_policy_by_cert(s, "2222222222222222222222222222222222222222222222222222222222222222"),
        b);
    ck_assert_ptr_null(
        gw_policy_by_cert(s, "4444444444444444444444444444444444444444444444444444444444444444"));
    gw_policy_set_unref(s);

    /* A trailing slash does not double in the file names. */
    char *dirslash = NULL;
    ck_assert_int_ge(asprintf(&dirslash, "%s/", dir), 0);
    s = gw_policy_set_load(dirslash, &rules, &errs);
    ck_assert_ptr_nonnull(s);
    af = tpath("p/a.json");
    ck_assert_str_eq(gw_policy_set_at(s, 0)->file, af);
    free(af);
    gw_policy_set_unref(s);
    free(dirslash);
    free(dir);
}
END_TEST

START_TEST(t_set_empty)
{
    gw_errlist errs = {0};
    mkdir_t("p");
    char *dir = tpath("p");
    gw_policy_set *s = gw_policy_set_load(dir, &rules, &errs);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(errs.n, 0);
    ck_assert_uint_eq(gw_policy_set_count(s), 0);
    ck_assert_ptr_null(gw_policy_by_client_id(s, "aaa-sandbox"));
    ck_assert_ptr_null(gw_policy_by_cert(s, FP1));
    gw_policy_set_unref(s);
    s = gw_policy_set_empty();
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(gw_policy_set_count(s), 0);
    ck_assert_ptr_null(gw_policy_by_cert(s, FP1));
    gw_policy_set_unref(s);
    ck_assert_uint_eq(gw_policy_set_count(NULL), 0);
    ck_assert_ptr_null(gw_policy_by_cert(NULL, FP1));
    gw_policy_set_unref(NULL);
    free(dir);
}
END_TEST

/* Set-level errors: each case writes a.json (and b.json), expects messages
 * with %1$s the temp root. */
static const struct {
    const char *a_id, *a_cid, *a_cert;
    const char *b_id, *b_cid, *b_cert;
    const char *want;
} set_bad[] = {
    {"H1", "aaa-sandbox", C1, "H2", "bbb-sandbox", C2 ", " C1,
     "%1$s/p/a.json: consumer.certificates[0]: fingerprint also used by %1$s/p/b.json\n"
     "%1$s/p/b.json: consumer.certificates[1]: fingerprint also used by %1$s/p/a.json"},
    {"H1", "aaa-sandbox", C1, "H2", "aaa-sandbox", C2,
     "%1$s/p/a.json: consumer.client_id: also used by %1$s/p/b.json\n"
     "%1$s/p/b.json: consumer.client_id: also used by %1$s/p/a.json"},
    {"H1", "aaa-sandbox", C1, "H1", "bbb-sandbox", C2,
     "%1$s/p/a.json: habilitation.id: also used by %1$s/p/b.json\n"
     "%1$s/p/b.json: habilitation.id: also used by %1$s/p/a.json"},
    {"H1", "aaa-sandbox", C1 ", " C2, "H1", "aaa-sandbox", C3 ", " C2,
     "%1$s/p/a.json: habilitation.id: also used by %1$s/p/b.json\n"
     "%1$s/p/a.json: consumer.client_id: also used by %1$s/p/b.json\n"
     "%1$s/p/a.json: consumer.certificates[1]: fingerprint also used by %1$s/p/b.json\n"
     "%1$s/p/b.json: habilitation.id: also used by %1$s/p/a.json\n"
     "%1$s/p/b.json: consumer.client_id: also used by %1$s/p/a.json\n"
     "%1$s/p/b.json: consumer.certificates[1]: fingerprint also used by %1$s/p/a.json"},
    /* A bad file: its own errors only; left out, it takes no part in the
     * cross-file rules, so the good file is not touched. */
    {"H1", "aaa-sandbox", C1, "H0", "aaa-sandbox", C1,
     "%1$s/p/b.json: habilitation.id: must match H[1-9][0-9]{0,9}"},
};

START_TEST(t_set_bad)
{
    gw_errlist errs = {0};
    mkdir_t("p");
    put_variant("p/a.json", set_bad[_i].a_id, set_bad[_i].a_cid, set_bad[_i].a_cert);
    put_variant("p/b.json", set_bad[_i].b_id, set_bad[_i].b_cid, set_bad[_i].b_cert);
    char *dir = tpath("p");
    ck_assert_ptr_null(gw_policy_set_load(dir, &rules, &errs));
    assert_errs(&errs, set_bad[_i].want);
    gw_errlist_clear(&errs);
    free(dir);
}
END_TEST

START_TEST(t_set_unreadable)
{
    gw_errlist errs = {0};
    char *dir = tpath("nope");
    ck_assert_ptr_null(gw_policy_set_load(dir, &rules, &errs));
    assert_errs(&errs, "%s/nope: $: cannot read: No such file or directory");
    gw_errlist_clear(&errs);
    free(dir);

    write_t("file", "x");
    dir = tpath("file");
    ck_assert_ptr_null(gw_policy_set_load(dir, &rules, &errs));
    assert_errs(&errs, "%s/file: $: cannot read: Not a directory");
    gw_errlist_clear(&errs);
    free(dir);

    /* A directory named *.json, a file that is not JSON, and a good one. */
    mkdir_t("p");
    mkdir_t("p/sub.json");
    write_t("p/bad.json", "{\"habilitation\": ");
    put_variant("p/good.json", "H1", "aaa-sandbox", C1);
    dir = tpath("p");
    ck_assert_ptr_null(gw_policy_set_load(dir, &rules, &errs));
    assert_errs(&errs, "%1$s/p/bad.json: $: invalid JSON at line 1, column 17: unexpected "
                       "token near end of file\n"
                       "%1$s/p/sub.json: $: cannot read: Is a directory");
    gw_errlist_clear(&errs);
    free(dir);
}
END_TEST

/* ---- the unit of failure is the file (gw_policy_set_build) ---- */

static const gw_policy_rejected *rejected(const gw_policy_set *s, size_t i, const char *rel)
{
    const gw_policy_rejected *r = gw_policy_set_rejected_at(s, i);
    ck_assert_ptr_nonnull(r);
    char *f = tpath(rel);
    ck_assert_str_eq(r->file, f);
    free(f);
    return r;
}

/* At start: a broken file is left out, the others serve. */
START_TEST(t_build_start)
{
    gw_errlist errs = {0};
    mkdir_t("p");
    put_variant("p/a.json", "H1", "aaa-sandbox", C1);
    write_t("p/b.json", "{\"habilitation\": ");
    put_variant("p/c.json", "H3", "ccc-sandbox", C3);
    char *dir = tpath("p");
    gw_policy_set *s = gw_policy_set_build(dir, &rules, NULL, &errs);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(gw_policy_set_count(s), 2);
    ck_assert_ptr_nonnull(gw_policy_by_client_id(s, "aaa-sandbox"));
    ck_assert_ptr_nonnull(gw_policy_by_client_id(s, "ccc-sandbox"));
    ck_assert_uint_eq(gw_policy_set_nrejected(s), 1);
    const gw_policy_rejected *r = rejected(s, 0, "p/b.json");
    ck_assert_int_eq(r->kept, 0);
    assert_errs(&errs, "%1$s/p/b.json: $: invalid JSON at line 1, column 17: unexpected token "
                       "near end of file");
    char *want = NULL;
    ck_assert_int_ge(asprintf(&want, "%s", errs.msgs[0]), 0);
    ck_assert_str_eq(r->error, want);
    free(want);
    ck_assert_ptr_null(gw_policy_set_rejected_at(s, 1));
    gw_errlist_clear(&errs);
    /* the strict load refuses the same directory */
    ck_assert_ptr_null(gw_policy_set_load(dir, &rules, &errs));
    ck_assert_uint_eq(errs.n, 1);
    gw_errlist_clear(&errs);
    gw_policy_set_unref(s);

    /* every file broken: an empty set that lists them */
    write_t("p/a.json", "[]");
    write_t("p/c.json", "{}");
    s = gw_policy_set_build(dir, &rules, NULL, &errs);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(gw_policy_set_count(s), 0);
    ck_assert_uint_eq(gw_policy_set_nrejected(s), 3);
    ck_assert_ptr_null(gw_policy_by_client_id(s, "aaa-sandbox"));
    gw_policy_set_unref(s);
    gw_errlist_clear(&errs);
    free(dir);

    /* a directory that cannot be listed: no set at all */
    dir = tpath("nope");
    ck_assert_ptr_null(gw_policy_set_build(dir, &rules, NULL, &errs));
    ck_assert_uint_eq(errs.n, 1);
    gw_errlist_clear(&errs);
    free(dir);
}
END_TEST

/* At reload: a broken file keeps its previous version (the very same
 * policy, shared with the old snapshot, which may go first); the others
 * take their edits; a removed file is gone; a new broken file is left out. */
START_TEST(t_build_reload)
{
    gw_errlist errs = {0};
    mkdir_t("p");
    put_variant("p/a.json", "H1", "aaa-sandbox", C1);
    put_variant("p/b.json", "H2", "bbb-sandbox", C2);
    put_variant("p/c.json", "H3", "ccc-sandbox", C3);
    char *dir = tpath("p");
    gw_policy_set *s1 = gw_policy_set_build(dir, &rules, NULL, &errs);
    ck_assert_ptr_nonnull(s1);
    ck_assert_uint_eq(errs.n, 0);
    const gw_policy *a1 = gw_policy_by_client_id(s1, "aaa-sandbox");

    write_t("p/a.json", "{\"habilitation\": 1}");      /* broken edit */
    put_variant("p/b.json", "H22", "bbb-sandbox", C2); /* good edit */
    char *cf = tpath("p/c.json");
    ck_assert_int_eq(remove(cf), 0);
    free(cf);
    write_t("p/d.json", "{}"); /* new and broken */
    gw_policy_set *s2 = gw_policy_set_build(dir, &rules, s1, &errs);
    ck_assert_ptr_nonnull(s2);
    ck_assert_uint_eq(gw_policy_set_count(s2), 2);
    ck_assert_ptr_eq(gw_policy_by_client_id(s2, "aaa-sandbox"), a1);
    ck_assert_ptr_eq(
        gw_policy_by_cert(s2, "1111111111111111111111111111111111111111111111111111111111111111"),
        a1);
    ck_assert_str_eq(gw_policy_by_client_id(s2, "bbb-sandbox")->id, "H22");
    ck_assert_ptr_null(gw_policy_by_client_id(s2, "ccc-sandbox"));
    ck_assert_uint_eq(gw_policy_set_nrejected(s2), 2);
    const gw_policy_rejected *r = rejected(s2, 0, "p/a.json");
    ck_assert_int_eq(r->kept, 1);
    ck_assert_str_eq(r->error, errs.msgs[0]);
    r = rejected(s2, 1, "p/d.json");
    ck_assert_int_eq(r->kept, 0);
    gw_errlist_clear(&errs);
    /* the old snapshot goes first: the kept policy lives on in the new one */
    gw_policy_set_unref(s1);
    ck_assert_str_eq(gw_policy_by_client_id(s2, "aaa-sandbox")->id, "H1");

    /* a third load: a still broken, its version from s2 (from s1) is kept */
    gw_policy_set *s3 = gw_policy_set_build(dir, &rules, s2, &errs);
    ck_assert_ptr_eq(gw_policy_by_client_id(s3, "aaa-sandbox"), a1);
    gw_policy_set_unref(s2);
    gw_errlist_clear(&errs);

    /* a fixed: its new version */
    put_variant("p/a.json", "H11", "aaa-sandbox", C1);
    gw_policy_set *s4 = gw_policy_set_build(dir, &rules, s3, &errs);
    ck_assert_uint_eq(errs.n, 4); /* d.json: "{}" misses its 4 sections */
    ck_assert_str_eq(gw_policy_by_client_id(s4, "aaa-sandbox")->id, "H11");
    ck_assert_uint_eq(gw_policy_set_nrejected(s4), 1);
    gw_policy_set_unref(s3);
    gw_policy_set_unref(s4);
    gw_errlist_clear(&errs);
    free(dir);
}
END_TEST

/* Issue 13: what a reload changes, partner by partner, and when it empties
 * the set (more than half of the partners removed, or all of them). */
#define C4 "{\"sha256\": \"4444444444444444444444444444444444444444444444444444444444444444\"}"

START_TEST(t_reload_diff)
{
    gw_errlist errs = {0};
    gw_policy_diff d;
    mkdir_t("p");
    put_variant("p/a.json", "H1", "aaa-sandbox", C1);
    put_variant("p/b.json", "H2", "bbb-sandbox", C2);
    put_variant("p/c.json", "H3", "ccc-sandbox", C3);
    char *dir = tpath("p");
    gw_policy_set *s1 = gw_policy_set_build(dir, &rules, NULL, &errs);
    ck_assert_ptr_nonnull(s1);
    gw_policy_set_diff(NULL, s1, &d);
    ck_assert_uint_eq(d.before, 0);
    ck_assert_uint_eq(d.added, 3);
    ck_assert_int_eq(gw_policy_diff_empties(&d), 0);

    /* b: same partner, other text (one more space); c gone; d new */
    char *bf = tpath("p/b.json");
    FILE *f = fopen(bf, "a");
    ck_assert_ptr_nonnull(f);
    fputs(" ", f);
    fclose(f);
    free(bf);
    char *cf = tpath("p/c.json");
    ck_assert_int_eq(remove(cf), 0);
    free(cf);
    put_variant("p/d.json", "H4", "ddd-sandbox", C4);
    gw_policy_set *s2 = gw_policy_set_build(dir, &rules, s1, &errs);
    ck_assert_uint_eq(errs.n, 0);
    gw_policy_set_diff(s1, s2, &d);
    ck_assert_uint_eq(d.before, 3);
    ck_assert_uint_eq(d.after, 3);
    ck_assert_uint_eq(d.added, 1);
    ck_assert_uint_eq(d.changed, 1);
    ck_assert_uint_eq(d.removed, 1);
    ck_assert_int_eq(gw_policy_diff_empties(&d), 0);
    gw_policy_set_diff(s2, s2, &d);
    ck_assert_uint_eq(d.added + d.changed + d.removed, 0);

    /* an empty set empties; so does removing 2 of 3; 1 of 2 does not */
    gw_policy_set *none = gw_policy_set_empty();
    gw_policy_set_diff(s2, none, &d);
    ck_assert_uint_eq(d.removed, 3);
    ck_assert_int_eq(gw_policy_diff_empties(&d), 1);
    gw_policy_set_diff(none, none, &d);
    ck_assert_int_eq(gw_policy_diff_empties(&d), 0);
    gw_policy_diff half = {.before = 2, .after = 1, .removed = 1};
    ck_assert_int_eq(gw_policy_diff_empties(&half), 0);
    gw_policy_diff most = {.before = 3, .after = 1, .removed = 2};
    ck_assert_int_eq(gw_policy_diff_empties(&most), 1);
    gw_policy_diff swap = {.before = 2, .after = 2, .added = 2, .removed = 2};
    ck_assert_int_eq(gw_policy_diff_empties(&swap), 1);

    gw_policy_set_unref(none);
    gw_policy_set_unref(s1);
    gw_policy_set_unref(s2);
    gw_errlist_clear(&errs);
    free(dir);
}
END_TEST

/* Set-level rules reject every file involved, not the set; at a reload the
 * files involved keep their previous versions. */
START_TEST(t_build_conflicts)
{
    gw_errlist errs = {0};
    mkdir_t("p");
    put_variant("p/a.json", "H1", "aaa-sandbox", C1);
    put_variant("p/b.json", "H2", "aaa-sandbox", C2);
    put_variant("p/c.json", "H3", "ccc-sandbox", C3);
    char *dir = tpath("p");
    /* start: both duplicates left out, c serves */
    gw_policy_set *s = gw_policy_set_build(dir, &rules, NULL, &errs);
    ck_assert_uint_eq(gw_policy_set_count(s), 1);
    ck_assert_str_eq(gw_policy_set_at(s, 0)->id, "H3");
    ck_assert_ptr_null(gw_policy_by_client_id(s, "aaa-sandbox"));
    ck_assert_ptr_null(
        gw_policy_by_cert(s, "1111111111111111111111111111111111111111111111111111111111111111"));
    ck_assert_uint_eq(gw_policy_set_nrejected(s), 2);
    ck_assert_int_eq(rejected(s, 0, "p/a.json")->kept, 0);
    ck_assert_int_eq(rejected(s, 1, "p/b.json")->kept, 0);
    assert_errs(&errs, "%1$s/p/a.json: consumer.client_id: also used by %1$s/p/b.json\n"
                       "%1$s/p/b.json: consumer.client_id: also used by %1$s/p/a.json");
    gw_errlist_clear(&errs);
    gw_policy_set_unref(s);

    /* a good set, then c takes b's client_id and certificate: b and c both
     * keep their previous versions, a is untouched */
    put_variant("p/b.json", "H2", "bbb-sandbox", C2);
    s = gw_policy_set_build(dir, &rules, NULL, &errs);
    ck_assert_uint_eq(gw_policy_set_count(s), 3);
    ck_assert_uint_eq(errs.n, 0);
    const gw_policy *b1 = gw_policy_by_client_id(s, "bbb-sandbox");
    const gw_policy *c1 = gw_policy_by_client_id(s, "ccc-sandbox");
    put_variant("p/c.json", "H3", "bbb-sandbox", C2);
    put_variant("p/a.json", "H10", "aaa-sandbox", C1);
    gw_policy_set *s2 = gw_policy_set_build(dir, &rules, s, &errs);
    ck_assert_uint_eq(gw_policy_set_count(s2), 3);
    ck_assert_ptr_eq(gw_policy_by_client_id(s2, "bbb-sandbox"), b1);
    ck_assert_ptr_eq(gw_policy_by_client_id(s2, "ccc-sandbox"), c1);
    ck_assert_str_eq(gw_policy_by_client_id(s2, "aaa-sandbox")->id, "H10");
    ck_assert_uint_eq(gw_policy_set_nrejected(s2), 2);
    ck_assert_int_eq(rejected(s2, 0, "p/b.json")->kept, 1);
    ck_assert_int_eq(rejected(s2, 1, "p/c.json")->kept, 1);
    assert_errs(&errs,
                "%1$s/p/b.json: consumer.client_id: also used by %1$s/p/c.json\n"
                "%1$s/p/b.json: consumer.certificates[0]: fingerprint also used by %1$s/p/c.json\n"
                "%1$s/p/c.json: consumer.client_id: also used by %1$s/p/b.json\n"
                "%1$s/p/c.json: consumer.certificates[0]: fingerprint also used by %1$s/p/b.json");
    gw_errlist_clear(&errs);

    /* b broken (kept) and a new file d takes b's client_id: d gives way,
     * b's previous version stays */
    write_t("p/b.json", "{}");
    put_variant("p/c.json", "H3", "ccc-sandbox", C3);
    put_variant(
        "p/d.json", "H4", "bbb-sandbox",
        "{\"sha256\": \"4444444444444444444444444444444444444444444444444444444444444444\"}");
    gw_policy_set *s3 = gw_policy_set_build(dir, &rules, s2, &errs);
    ck_assert_uint_eq(gw_policy_set_count(s3), 3);
    ck_assert_ptr_eq(gw_policy_by_client_id(s3, "bbb-sandbox"), b1);
    ck_assert_str_eq(gw_policy_by_client_id(s3, "aaa-sandbox")->id, "H10");
    ck_assert_ptr_nonnull(gw_policy_by_client_id(s3, "ccc-sandbox"));
    ck_assert_uint_eq(gw_policy_set_nrejected(s3), 2);
    ck_assert_int_eq(rejected(s3, 0, "p/b.json")->kept, 1);
    ck_assert_int_eq(rejected(s3, 1, "p/d.json")->kept, 0);
    assert_errs(&errs, "%1$s/p/b.json: $: missing key \"habilitation\"\n"
                       "%1$s/p/b.json: $: missing key \"organization\"\n"
                       "%1$s/p/b.json: $: missing key \"consumer\"\n"
                       "%1$s/p/b.json: $: missing key \"rights\"\n"
                       "%1$s/p/d.json: consumer.client_id: also used by %1$s/p/b.json");
    gw_errlist_clear(&errs);
    gw_policy_set_unref(s);
    gw_policy_set_unref(s2);
    gw_policy_set_unref(s3);
    free(dir);
}
END_TEST

/* ---- the "file" certificate extension ---- */

START_TEST(t_cert_file)
{
    gw_errlist errs = {0};
    mkdir_t("pki");
    mkdir_t("policies");
    char *fp = make_cert("pki/client.crt", "client-a");
    write_t("pki/garbage.crt", "-----BEGIN CERTIFICATE-----\nnot base64\n");
    write_t("pki/key-only.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");

    /* relative to the policy file's directory, with "../" */
    put_variant("policies/a.json", "H1", "aaa-sandbox", "{\"file\": \"../pki/client.crt\"}");
    char *dir = tpath("policies");
    gw_policy_set *s = gw_policy_set_load(dir, &rules, &errs);
    ck_assert_msg(s != NULL, "first error: %s", errs.n ? errs.msgs[0] : "(none)");
    ck_assert_str_eq(gw_policy_set_at(s, 0)->certs[0], fp);
    ck_assert_ptr_eq(gw_policy_by_cert(s, fp), gw_policy_set_at(s, 0));
    gw_policy_set_unref(s);

    /* the same certificate by "sha256" in another file: a duplicate */
    char upper[96];
    for (size_t k = 0; k < 64; k++)
        upper[k] = (char)(fp[k] >= 'a' ? fp[k] - 'a' + 'A' : fp[k]);
    upper[64] = '\0';
    char entry[160];
    snprintf(entry, sizeof(entry), "{\"sha256\": \"%s\"}", upper);
    put_variant("policies/b.json", "H2", "bbb-sandbox", entry);
    ck_assert_ptr_null(gw_policy_set_load(dir, &rules, &errs));
    assert_errs(&errs, "%1$s/policies/a.json: consumer.certificates[0]: fingerprint also used "
                       "by %1$s/policies/b.json\n"
                       "%1$s/policies/b.json: consumer.certificates[0]: fingerprint also used "
                       "by %1$s/policies/a.json");
    gw_errlist_clear(&errs);

    /* gw_policy_parse: relative to the named file's directory; absolute */
    char *pa = tpath("policies/c.json");
    char *t = variant("H3", "ccc-sandbox", "{\"file\": \"./../pki/client.crt\"}");
    gw_policy *p = gw_policy_parse(pa, t, &rules, &errs);
    ck_assert_msg(p != NULL, "first error: %s", errs.n ? errs.msgs[0] : "(none)");
    ck_assert_str_eq(p->certs[0], fp);
    gw_policy_free(p);
    free(t);
    char abs[PATH_MAX + 64];
    snprintf(abs, sizeof(abs), "{\"file\": \"%s/pki/client.crt\"}", tmp_root);
    t = variant("H3", "ccc-sandbox", abs);
    p = gw_policy_parse("elsewhere/c.json", t, &rules, &errs);
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(p->certs[0], fp);
    gw_policy_free(p);
    free(t);

    /* errors, at the "file" path, with the resolved absolute path */
    static const struct {
        const char *entry, *want;
    } fbad[] = {
        {"{\"file\": \"../pki/missing.crt\"}",
         "%1$s/policies/c.json: consumer.certificates[0].file: cannot read "
         "\"%1$s/pki/missing.crt\": No such file or directory"},
        {"{\"file\": \"../pki\"}", "%1$s/policies/c.json: consumer.certificates[0].file: cannot "
                                   "read \"%1$s/pki\": Is a directory"},
        {"{\"file\": \"../pki/garbage.crt\"}",
         "%1$s/policies/c.json: consumer.certificates[0].file: \"%1$s/pki/garbage.crt\" is not "
         "a PEM certificate"},
        {"{\"file\": \"../pki/key-only.pem\"}",
         "%1$s/policies/c.json: consumer.certificates[0].file: \"%1$s/pki/key-only.pem\" is not "
         "a PEM certificate"},
        {"{\"file\": \"../pki/client.crt.key\"}",
         "%1$s/policies/c.json: consumer.certificates[0].file: \"%1$s/pki/client.crt.key\" is "
         "not a PEM certificate"},
        {"{\"file\": 7}", "%1$s/policies/c.json: consumer.certificates[0].file: must be a string"},
    };
    for (size_t k = 0; k < sizeof(fbad) / sizeof(fbad[0]); k++) {
        t = variant("H3", "ccc-sandbox", fbad[k].entry);
        ck_assert_ptr_null(gw_policy_parse(pa, t, &rules, &errs));
        assert_errs(&errs, fbad[k].want);
        gw_errlist_clear(&errs);
        free(t);
    }
    free(pa);
    free(dir);
    free(fp);
}
END_TEST

/* ---- the example policies of policies/ ---- */

START_TEST(t_examples)
{
    gw_errlist errs = {0};
    char *p = NULL;

    /* The route table's scopes, from the sandbox config. */
    ck_assert_int_ge(asprintf(&p, "%s/deploy/sandbox/gateway.json", gw_test_srcdir()), 0);
    json_error_t je;
    json_t *conf = json_load_file(p, 0, &je);
    ck_assert_msg(conf != NULL, "%s: %s", p, je.text);
    free(p);
    const char *known[64];
    size_t nknown = 0;
    json_t *r;
    size_t k;
    json_array_foreach(json_object_get(conf, "routes"), k, r)
    {
        const char *sc = json_string_value(json_object_get(r, "scope"));
        if (sc != NULL && nknown < 64)
            known[nknown++] = sc;
    }
    ck_assert_uint_eq(nknown, 7);
    gw_policy_rules sandbox = {known, nknown};

    /* policies/ and the dev PKI next to it, as in the source tree. */
    mkdir_t("policies");
    mkdir_t("deploy");
    mkdir_t("deploy/sandbox");
    mkdir_t("deploy/sandbox/pki");
    static const char *const names[] = {"commune-exemple", "caisse-secu", "organisme-prive"};
    static const char *const certs[] = {"client-commune", "client-secu", "client-prive"};
    char *fps[3];
    for (int i = 0; i < 3; i++) {
        char rel[128];
        snprintf(rel, sizeof(rel), "deploy/sandbox/pki/%s.crt", certs[i]);
        fps[i] = make_cert(rel, certs[i]);
        ck_assert_int_ge(asprintf(&p, "%s/policies/%s.json", gw_test_srcdir(), names[i]), 0);
        char *text = gw_test_read(p);
        free(p);
        snprintf(rel, sizeof(rel), "policies/%s.json", names[i]);
        write_t(rel, text);
        free(text);
    }
    char *dir = tpath("policies");
    gw_policy_set *s = gw_policy_set_load(dir, &sandbox, &errs);
    ck_assert_msg(s != NULL, "first error: %s", errs.n ? errs.msgs[0] : "(none)");
    ck_assert_uint_eq(gw_policy_set_count(s), 3);

    const gw_policy *c = gw_policy_by_cert(s, fps[0]);
    const gw_policy *secu = gw_policy_by_cert(s, fps[1]);
    const gw_policy *prive = gw_policy_by_cert(s, fps[2]);
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(secu);
    ck_assert_ptr_nonnull(prive);
    ck_assert_str_eq(c->id, "H456");
    ck_assert_str_eq(c->client_id, "commune-exemple-sandbox");
    ck_assert_str_eq(c->id_teleservice, "TS-0001");
    ck_assert_int_eq(c->env, GW_ENV_SANDBOX);
    ck_assert_int_eq(c->state, GW_HAB_ACTIVE);
    ck_assert_uint_eq(c->nscopes, 2);
    ck_assert(gw_policy_has_scope(c, "api_opale_declarations"));
    ck_assert(gw_policy_has_scope(c, "api_opale_creances"));
    ck_assert_int_eq(c->year_from, 2019);
    ck_assert_int_eq(c->year_to, 2025);
    ck_assert_uint_eq(c->quota_per_minute, 50);
    ck_assert_str_eq(secu->id, "H457");
    ck_assert_str_eq(secu->client_id, "caisse-secu-sandbox");
    ck_assert_str_eq(secu->id_teleservice, "TS-0002");
    ck_assert_uint_eq(secu->nscopes, 4);
    ck_assert(gw_policy_has_scope(secu, "api_opale_bancaires"));
    ck_assert(gw_policy_has_scope(secu, "api_opale_paiements"));
    ck_assert(gw_policy_has_scope(secu, "api_opale_remboursements"));
    ck_assert(gw_policy_has_scope(secu, "api_opale_obligations_fiscales"));
    ck_assert_int_eq(secu->year_from, 2021);
    ck_assert_int_eq(secu->year_to, 2025);
    ck_assert_str_eq(prive->id, "H458");
    ck_assert_str_eq(prive->client_id, "organisme-prive-sandbox");
    ck_assert_str_eq(prive->id_teleservice, "TS-0003");
    ck_assert_uint_eq(prive->nscopes, 1);
    ck_assert(gw_policy_has_scope(prive, "api_opale_habilitations"));
    ck_assert_int_eq(prive->year_from, 2023);
    ck_assert_int_eq(prive->year_to, 2024);

    unsigned char lo4[4], lo6[16], lo4b[4], doc[4];
    inet_pton(AF_INET, "127.0.0.1", lo4);
    inet_pton(AF_INET, "127.0.0.2", lo4b);
    inet_pton(AF_INET6, "::1", lo6);
    inet_pton(AF_INET, "192.0.2.10", doc);
    ck_assert_int_eq(gw_policy_ip_allowed(c, AF_INET, lo4), 1);
    ck_assert_int_eq(gw_policy_ip_allowed(c, AF_INET, lo4b), 0);
    ck_assert_int_eq(gw_policy_ip_allowed(c, AF_INET6, lo6), 1);
    ck_assert_int_eq(gw_policy_ip_allowed(secu, AF_INET, lo4b), 1);
    ck_assert_int_eq(gw_policy_ip_allowed(secu, AF_INET6, lo6), 1);
    ck_assert_int_eq(gw_policy_ip_allowed(prive, AF_INET, lo4), 0); /* the demo's IP denial */
    ck_assert_int_eq(gw_policy_ip_allowed(prive, AF_INET6, lo6), 0);
    ck_assert_int_eq(gw_policy_ip_allowed(prive, AF_INET, doc), 1);
    /* distinct SIRETs, all valid */
    ck_assert_str_ne(c->org_siret, secu->org_siret);
    ck_assert_str_ne(secu->org_siret, prive->org_siret);
    gw_policy_set_unref(s);
    for (int i = 0; i < 3; i++)
        free(fps[i]);
    free(dir);
    json_decref(conf);
}
END_TEST

/* ---- 10,000 policies ---- */

#define NBIG 10000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

START_TEST(t_big_set)
{
    gw_errlist errs = {0};
    mkdir_t("p");
    char *tmpl = variant("H@", "partner-@-sandbox", "{\"sha256\": \"~\"}");
    for (int i = 0; i < NBIG; i++) {
        char rel[64], id[16], fp[65], *text = NULL;
        snprintf(id, sizeof(id), "%d", 100000 + i);
        snprintf(fp, sizeof(fp), "%064x", i * 7919 + 1);
        size_t len = 0;
        FILE *m = open_memstream(&text, &len);
        for (const char *q = tmpl; *q != '\0'; q++) {
            if (*q == '@')
                fputs(id, m);
            else if (*q == '~')
                fputs(fp, m);
            else
                fputc(*q, m);
        }
        fclose(m);
        snprintf(rel, sizeof(rel), "p/h%05d.json", i);
        write_t(rel, text);
        free(text);
    }
    free(tmpl);
    char *dir = tpath("p");
    double t0 = now_s();
    gw_policy_set *s = gw_policy_set_load(dir, &rules, &errs);
    double t1 = now_s();
    ck_assert_msg(s != NULL, "first error: %s", errs.n ? errs.msgs[0] : "(none)");
    ck_assert_uint_eq(gw_policy_set_count(s), NBIG);
    fprintf(stderr, "test_snapshot: %d policies loaded and indexed in %.3f s\n", NBIG, t1 - t0);

    /* every policy is found by both keys, and is the right one */
    static char fps[NBIG][65], cids[NBIG][64];
    for (int i = 0; i < NBIG; i++) {
        snprintf(fps[i], sizeof(fps[i]), "%064x", i * 7919 + 1);
        snprintf(cids[i], sizeof(cids[i]), "partner-%d-sandbox", 100000 + i);
    }
    size_t found = 0;
    double t2 = now_s();
    for (int i = 0; i < NBIG; i++) {
        const gw_policy *a = gw_policy_by_cert(s, fps[i]);
        found += a != NULL && a == gw_policy_by_client_id(s, cids[i]) &&
                 a == gw_policy_set_at(s, (size_t)i);
    }
    double t3 = now_s();
    ck_assert_uint_eq(found, NBIG);
    fprintf(stderr, "test_snapshot: %d lookups (by certificate, then client_id) in %.3f ms\n",
            2 * NBIG, (t3 - t2) * 1e3);
    ck_assert_ptr_null(gw_policy_by_cert(s, FP1));
    ck_assert_ptr_null(gw_policy_by_client_id(s, "partner-99-sandbox"));
    gw_policy_set_unref(s);
    free(dir);
}
END_TEST

/* ---- reference count ---- */

static void *reader(void *arg)
{
    gw_policy_set *s = arg;
    for (int i = 0; i < 20000; i++) {
        gw_policy_set *r = gw_policy_set_ref(s);
        if (gw_policy_by_client_id(r, "aaa-sandbox") == NULL)
            return (void *)1;
        gw_policy_set_unref(r);
    }
    gw_policy_set_unref(s); /* the reference the thread was given */
    return NULL;
}

START_TEST(t_refcount)
{
    gw_errlist errs = {0};
    mkdir_t("p");
    put_variant("p/a.json", "H1", "aaa-sandbox", C1);
    char *dir = tpath("p");
    gw_policy_set *s = gw_policy_set_load(dir, &rules, &errs);
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_eq(gw_policy_set_ref(s), s);
    gw_policy_set_unref(s); /* back to 1: still usable */
    ck_assert_ptr_nonnull(gw_policy_by_client_id(s, "aaa-sandbox"));
    ck_assert_ptr_null(gw_policy_set_ref(NULL));

    /* Threads hold their own references; the loader drops its one first,
     * as a reload does. The last unref frees (LeakSanitizer checks that). */
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, reader, gw_policy_set_ref(s)), 0);
    gw_policy_set_unref(s);
    for (int i = 0; i < 4; i++) {
        void *rv = (void *)2;
        ck_assert_int_eq(pthread_join(th[i], &rv), 0);
        ck_assert_ptr_null(rv);
    }
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("snapshot");
    TCase *tc = tcase_create("snapshot");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, t_set_good);
    tcase_add_test(tc, t_set_empty);
    tcase_add_loop_test(tc, t_set_bad, 0, (int)(sizeof(set_bad) / sizeof(set_bad[0])));
    tcase_add_test(tc, t_set_unreadable);
    tcase_add_test(tc, t_build_start);
    tcase_add_test(tc, t_build_reload);
    tcase_add_test(tc, t_reload_diff);
    tcase_add_test(tc, t_build_conflicts);
    tcase_add_test(tc, t_cert_file);
    tcase_add_test(tc, t_examples);
    tcase_add_test(tc, t_big_set);
    tcase_add_test(tc, t_refcount);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
