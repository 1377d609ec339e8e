/* Unit tests for gateway/policy/suspend.c: suspend, resume and list; the
 * file written, read back after a "restart", and left without temp files;
 * bad files with their exact messages; a write that fails (its directory
 * replaced by a regular file) keeps the change in memory and a retry
 * persists it; readers on several threads while a writer toggles. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "policy/suspend.h"

#include "../common.h"

static char tmp_root[PATH_MAX];

static void setup(void)
{
    gw_test_mkdtemp(tmp_root, "suspend");
}

static void teardown(void)
{
    gw_test_rmtree(tmp_root);
}

static char *tpath(const char *rel)
{
    return gw_test_path(tmp_root, rel);
}

static void write_t(const char *rel, const char *text)
{
    char *p = tpath(rel);
    gw_test_write(p, text);
    free(p);
}

static json_t *load_t(const char *rel)
{
    char *p = tpath(rel);
    json_error_t je;
    json_t *j = json_load_file(p, JSON_REJECT_DUPLICATES, &je);
    ck_assert_msg(j != NULL, "%s: %s", p, je.text);
    free(p);
    return j;
}

/* Entries of the directory whose name contains ".tmp." */
static int temp_files(const char *rel)
{
    char *p = tpath(rel);
    DIR *d = opendir(p);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += strstr(de->d_name, ".tmp.") != NULL;
    closedir(d);
    free(p);
    return n;
}

START_TEST(t_set_list_persist)
{
    char *err = NULL;
    char *path = tpath("suspensions.json");
    gw_suspensions *s = gw_suspensions_open(path, &err);
    ck_assert_msg(s != NULL, "%s", err);
    ck_assert_ptr_null(err);
    ck_assert_uint_eq(gw_suspensions_list(s, NULL, 0), 0);
    ck_assert_int_eq(gw_suspensions_is_suspended(s, "commune-exemple-sandbox"), 0);
    ck_assert_int_eq(access(path, F_OK), -1); /* nothing written until a change */

    time_t t0 = time(NULL);
    ck_assert_int_eq(gw_suspensions_set(s, "commune-exemple-sandbox", 1, "incident #42", &err), 0);
    time_t t1 = time(NULL);
    ck_assert_ptr_null(err);
    ck_assert_int_eq(gw_suspensions_is_suspended(s, "commune-exemple-sandbox"), 1);
    ck_assert_int_eq(gw_suspensions_is_suspended(s, "caisse-secu-sandbox"), 0);
    ck_assert_int_eq(gw_suspensions_is_suspended(s, NULL), 0);
    ck_assert_int_eq(gw_suspensions_is_suspended(NULL, "commune-exemple-sandbox"), 0);

    gw_suspension_info info[4];
    memset(info, 0, sizeof(info));
    ck_assert_uint_eq(gw_suspensions_list(s, info, 4), 1);
    ck_assert_str_eq(info[0].client_id, "commune-exemple-sandbox");
    ck_assert_str_eq(info[0].why, "incident #42");
    ck_assert_int_ge(info[0].since, t0);
    ck_assert_int_le(info[0].since, t1);

    /* the file */
    json_t *j = load_t("suspensions.json");
    json_t *a = json_object_get(j, "suspended");
    ck_assert_uint_eq(json_object_size(j), 1);
    ck_assert_uint_eq(json_array_size(a), 1);
    json_t *e = json_array_get(a, 0);
    ck_assert_str_eq(json_string_value(json_object_get(e, "client_id")), "commune-exemple-sandbox");
    ck_assert_str_eq(json_string_value(json_object_get(e, "why")), "incident #42");
    char since[32];
    struct tm tm;
    gmtime_r(&info[0].since, &tm);
    strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &tm);
    ck_assert_str_eq(json_string_value(json_object_get(e, "since")), since);
    json_decref(j);

    /* suspending again changes nothing (first since and why kept) */
    time_t first = info[0].since;
    ck_assert_int_eq(gw_suspensions_set(s, "commune-exemple-sandbox", 1, "other", &err), 0);
    ck_assert_uint_eq(gw_suspensions_list(s, info, 4), 1);
    ck_assert_str_eq(info[0].why, "incident #42");
    ck_assert_int_eq(info[0].since, first);

    /* two more, in order; NULL why is "" */
    ck_assert_int_eq(gw_suspensions_set(s, "caisse-secu-sandbox", 1, NULL, &err), 0);
    ck_assert_int_eq(gw_suspensions_set(s, "organisme-prive-sandbox", 1, "audit", &err), 0);
    ck_assert_uint_eq(gw_suspensions_list(s, info, 4), 3);
    ck_assert_str_eq(info[1].client_id, "caisse-secu-sandbox");
    ck_assert_str_eq(info[1].why, "");
    ck_assert_str_eq(info[2].client_id, "organisme-prive-sandbox");
    /* a short buffer: the total is still returned, only <cap> copied */
    memset(info, 0, sizeof(info));
    ck_assert_uint_eq(gw_suspensions_list(s, info, 1), 3);
    ck_assert_str_eq(info[0].client_id, "commune-exemple-sandbox");
    ck_assert_str_eq(info[1].client_id, "");

    /* resume the middle one; resuming an unknown one is a no-op */
    ck_assert_int_eq(gw_suspensions_set(s, "caisse-secu-sandbox", 0, NULL, &err), 0);
    ck_assert_int_eq(gw_suspensions_set(s, "never-suspended", 0, NULL, &err), 0);
    ck_assert_int_eq(gw_suspensions_is_suspended(s, "caisse-secu-sandbox"), 0);
    ck_assert_int_eq(gw_suspensions_is_suspended(s, "organisme-prive-sandbox"), 1);
    ck_assert_uint_eq(gw_suspensions_list(s, info, 4), 2);
    ck_assert_str_eq(info[1].client_id, "organisme-prive-sandbox");
    ck_assert_int_eq(temp_files(""), 0);
    gw_suspensions_free(s);

    /* "restart": the same set from the file */
    s = gw_suspensions_open(path, &err);
    ck_assert_msg(s != NULL, "%s", err);
    ck_assert_int_eq(gw_suspensions_is_suspended(s, "commune-exemple-sandbox"), 1);
    ck_assert_int_eq(gw_suspensions_is_suspended(s, "organisme-prive-sandbox"), 1);
    ck_assert_int_eq(gw_suspensions_is_suspended(s, "caisse-secu-sandbox"), 0);
    ck_assert_uint_eq(gw_suspensions_list(s, info, 4), 2);
    ck_assert_int_eq(info[0].since, first);
    ck_assert_str_eq(info[0].why, "incident #42");
    ck_assert_str_eq(info[1].why, "audit");

    /* resume all: the file holds an empty list */
    ck_assert_int_eq(gw_suspensions_set(s, "commune-exemple-sandbox", 0, NULL, &err), 0);
    ck_assert_int_eq(gw_suspensions_set(s, "organisme-prive-sandbox", 0, NULL, &err), 0);
    ck_assert_uint_eq(gw_suspensions_list(s, info, 4), 0);
    j = load_t("suspensions.json");
    ck_assert(json_is_array(json_object_get(j, "suspended")));
    ck_assert_uint_eq(json_array_size(json_object_get(j, "suspended")), 0);
    json_decref(j);
    gw_suspensions_free(s);
    gw_suspensions_free(NULL);
    free(path);
}
END_TEST

START_TEST(t_read_given_file)
{
    char *err = NULL;
    write_t("s.json", "{\"suspended\": [\n"
                      " {\"client_id\": \"commune-exemple-sandbox\", \"since\": "
                      "\"2026-11-27T22:00:00Z\", \"why\": \"CGU 8\"},\n"
                      " {\"client_id\": \"x.y_z-1\", \"since\": \"2024-02-29T00:00:59Z\"}]}\n");
    char *path = tpath("s.json");
    gw_suspensions *s = gw_suspensions_open(path, &err);
    ck_assert_msg(s != NULL, "%s", err);
    gw_suspension_info info[2];
    ck_assert_uint_eq(gw_suspensions_list(s, info, 2), 2);
    ck_assert_str_eq(info[0].client_id, "commune-exemple-sandbox");
    ck_assert_int_eq(info[0].since, 1795816800);
    ck_assert_str_eq(info[0].why, "CGU 8");
    ck_assert_str_eq(info[1].client_id, "x.y_z-1");
    ck_assert_int_eq(info[1].since, 1709164859);
    ck_assert_str_eq(info[1].why, "");
    ck_assert_int_eq(gw_suspensions_is_suspended(s, "x.y_z-1"), 1);
    gw_suspensions_free(s);
    free(path);
}
END_TEST

START_TEST(t_long_values)
{
    char *err = NULL;
    char *path = tpath("s.json");
    gw_suspensions *s = gw_suspensions_open(path, &err);
    ck_assert_ptr_nonnull(s);
    /* a 128-byte client_id is valid; a 129-byte one is not */
    char id[130];
    memset(id, 'a', 129);
    id[129] = '\0';
    ck_assert_int_eq(gw_suspensions_set(s, id, 1, NULL, &err), -1);
    ck_assert_str_eq(err, "client_id must match [A-Za-z0-9._-]{3,128}");
    free(err);
    ck_assert_uint_eq(gw_suspensions_list(s, NULL, 0), 0);
    ck_assert_int_eq(gw_suspensions_set(s, "a b", 1, NULL, &err), -1);
    free(err);
    ck_assert_int_eq(gw_suspensions_set(s, "ab", 1, NULL, &err), -1);
    free(err);
    ck_assert_uint_eq(gw_suspensions_list(s, NULL, 0), 0);
    id[128] = '\0';
    /* a long why: kept in full up to 512 bytes in the file, cut in the info */
    char why[700];
    for (size_t i = 0; i < sizeof(why) - 1; i++)
        why[i] = (char)('a' + i % 26);
    why[sizeof(why) - 1] = '\0';
    ck_assert_int_eq(gw_suspensions_set(s, id, 1, why, &err), 0);
    ck_assert_int_eq(gw_suspensions_is_suspended(s, id), 1);
    gw_suspension_info info[1];
    ck_assert_uint_eq(gw_suspensions_list(s, info, 1), 1);
    ck_assert_uint_eq(strlen(info[0].client_id), 128); /* the longest client_id fits */
    ck_assert_str_eq(info[0].client_id, id);
    ck_assert_uint_eq(strlen(info[0].why), 127);
    ck_assert_int_eq(strncmp(info[0].why, why, 127), 0);
    json_t *j = load_t("s.json");
    json_t *e = json_array_get(json_object_get(j, "suspended"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(e, "client_id")), id);
    ck_assert_uint_eq(strlen(json_string_value(json_object_get(e, "why"))), 512);
    json_decref(j);
    gw_suspensions_free(s);
    free(path);
}
END_TEST

/* Bad files: the exact message ("%s" is the file's path). */
static const struct {
    const char *text, *want;
} bad[] = {
    {"not json", "%s: $: invalid JSON at line 1, column 3: '[' or '{' expected near 'not'"},
    {"", "%s: $: invalid JSON at line 1, column 0: '[' or '{' expected near end of file"},
    {"{\"suspended\": [], \"suspended\": []}",
     "%s: $: invalid JSON at line 1, column 29: duplicate object key near '\"suspended\"'"},
    {"[]", "%s: $: must be an object"},
    {"{}", "%s: $: missing key \"suspended\""},
    {"{\"suspended\": [], \"x\": 1}", "%s: x: unknown key"},
    {"{\"suspended\": [], \"a\\u0001b\": 1}", "%s: a?b: unknown key"},
    {"{\"suspended\": {}}", "%s: suspended: must be an array"},
    {"{\"suspended\": [1]}", "%s: suspended[0]: must be an object"},
    {"{\"suspended\": [{\"since\": \"2026-11-27T22:00:00Z\"}]}",
     "%s: suspended[0]: missing key \"client_id\""},
    {"{\"suspended\": [{\"client_id\": 5, \"since\": \"2026-11-27T22:00:00Z\"}]}",
     "%s: suspended[0].client_id: must be a string"},
    {"{\"suspended\": [{\"client_id\": \"a b\", \"since\": \"2026-11-27T22:00:00Z\"}]}",
     "%s: suspended[0].client_id: must match [A-Za-z0-9._-]{3,128}"},
    {"{\"suspended\": [{\"client_id\": \"abc\", \"since\": \"2026-11-27T22:00:00Z\"},"
     " {\"client_id\": \"abc\", \"since\": \"2026-11-27T22:00:00Z\"}]}",
     "%s: suspended[1].client_id: duplicate of suspended[0].client_id"},
    {"{\"suspended\": [{\"client_id\": \"abc\"}]}", "%s: suspended[0]: missing key \"since\""},
    {"{\"suspended\": [{\"client_id\": \"abc\", \"since\": 1795816800}]}",
     "%s: suspended[0].since: must be a string"},
    {"{\"suspended\": [{\"client_id\": \"abc\", \"since\": \"2026-11-27 22:00:00Z\"}]}",
     "%s: suspended[0].since: must be a UTC date-time YYYY-MM-DDThh:mm:ssZ"},
    {"{\"suspended\": [{\"client_id\": \"abc\", \"since\": \"2026-11-27T22:00:00+01:00\"}]}",
     "%s: suspended[0].since: must be a UTC date-time YYYY-MM-DDThh:mm:ssZ"},
    {"{\"suspended\": [{\"client_id\": \"abc\", \"since\": \"2026-02-30T22:00:00Z\"}]}",
     "%s: suspended[0].since: must be a UTC date-time YYYY-MM-DDThh:mm:ssZ"},
    {"{\"suspended\": [{\"client_id\": \"abc\", \"since\": \"2026-11-27T24:00:00Z\"}]}",
     "%s: suspended[0].since: must be a UTC date-time YYYY-MM-DDThh:mm:ssZ"},
    {"{\"suspended\": [{\"client_id\": \"abc\", \"since\": \"2026-11-27T22:00:00Z\", "
     "\"why\": 1}]}",
     "%s: suspended[0].why: must be a string"},
    {"{\"suspended\": [{\"client_id\": \"abc\", \"since\": \"2026-11-27T22:00:00Z\", "
     "\"who\": \"me\"}]}",
     "%s: suspended[0].who: unknown key"},
    {"{\"suspended\": [{\"client_id\": \"abc\", \"since\": \"2026-11-27T22:00:00Z\", "
     "\"reason\": 1}]}",
     "%s: suspended[0].reason: must be a string"},
    {"{\"suspended\": [{\"client_id\": \"abc\", \"since\": \"2026-11-27T22:00:00Z\", "
     "\"until\": \"tomorrow\"}]}",
     "%s: suspended[0].until: must be a UTC date-time YYYY-MM-DDThh:mm:ssZ"},
    /* a cut is checked like a suspension: since, why, reason, by, until */
    {"{\"suspended\": [], \"cuts\": [{\"environment\": \"sandbox\"}]}",
     "%s: cuts[0]: missing key \"since\""},
    {"{\"suspended\": [], \"cuts\": [{\"environment\": \"sandbox\", \"since\": \"2026-11-27\"}]}",
     "%s: cuts[0].since: must be a UTC date-time YYYY-MM-DDThh:mm:ssZ"},
    {"{\"suspended\": [], \"cuts\": [{\"environment\": \"sandbox\", \"since\": "
     "\"2026-11-27T22:00:00Z\", \"why\": 1}]}",
     "%s: cuts[0].why: must be a string"},
    {"{\"suspended\": [], \"cuts\": [{\"environment\": \"sandbox\", \"since\": "
     "\"2026-11-27T22:00:00Z\", \"by\": [], \"until\": \"x\"}]}",
     "%s: cuts[0].by: must be a string"},
    {"{\"suspended\": [], \"cuts\": [{\"environment\": \"sandbox\", \"since\": "
     "\"2026-11-27T22:00:00Z\", \"until\": \"2026-11-27T22:00:00\"}]}",
     "%s: cuts[0].until: must be a UTC date-time YYYY-MM-DDThh:mm:ssZ"},
};

START_TEST(t_bad_file)
{
    char *err = NULL, *want = NULL;
    write_t("s.json", bad[_i].text);
    char *path = tpath("s.json");
    ck_assert_ptr_null(gw_suspensions_open(path, &err));
    ck_assert_int_ge(asprintf(&want, bad[_i].want, path), 0);
    ck_assert_ptr_nonnull(err);
    ck_assert_str_eq(err, want);
    free(err);
    free(want);
    free(path);
}
END_TEST

START_TEST(t_unreadable)
{
    char *err = NULL, *want = NULL;
    char *path = tpath("");
    ck_assert_ptr_null(gw_suspensions_open(path, &err));
    ck_assert_int_ge(asprintf(&want, "%s: $: cannot read: Is a directory", path), 0);
    ck_assert_str_eq(err, want);
    free(err);
    free(want);
    free(path);

    write_t("file", "x");
    path = tpath("file/s.json");
    ck_assert_ptr_null(gw_suspensions_open(path, &err));
    ck_assert_int_ge(asprintf(&want, "%s: $: cannot read: Not a directory", path), 0);
    ck_assert_str_eq(err, want);
    free(err);
    free(want);
    free(path);

    ck_assert_ptr_null(gw_suspensions_open(NULL, &err));
    ck_assert_str_eq(err, "-: $: cannot read: Invalid argument");
    free(err);
}
END_TEST

/* The file's directory becomes a regular file after open (root ignores
 * permission bits, so chmod would not make it fail): the write fails, the
 * suspension is in effect anyway; once the directory is back, the next call
 * (even one that changes nothing) writes the whole set. */
START_TEST(t_persist_failure)
{
    char *err = NULL, *want = NULL;
    char *sub = tpath("sub");
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    char *path = tpath("sub/s.json");
    gw_suspensions *s = gw_suspensions_open(path, &err);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(rmdir(sub), 0);
    write_t("sub", "now a regular file\n");

    ck_assert_int_eq(gw_suspensions_set(s, "commune-exemple-sandbox", 1, "incident", &err), -1);
    ck_assert_int_ge(asprintf(&want, "%s: cannot create a temporary file: Not a directory", path),
                     0);
    ck_assert_ptr_nonnull(err);
    ck_assert_str_eq(err, want);
    free(err);
    free(want);
    ck_assert_int_eq(gw_suspensions_is_suspended(s, "commune-exemple-sandbox"), 1);

    ck_assert_int_eq(unlink(sub), 0);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    ck_assert_int_eq(gw_suspensions_set(s, "commune-exemple-sandbox", 1, NULL, &err), 0);
    ck_assert_ptr_null(err);
    json_t *j = load_t("sub/s.json");
    json_t *e = json_array_get(json_object_get(j, "suspended"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(e, "client_id")), "commune-exemple-sandbox");
    ck_assert_str_eq(json_string_value(json_object_get(e, "why")), "incident");
    json_decref(j);
    ck_assert_int_eq(temp_files("sub"), 0);

    /* the target is a directory: rename fails, the temp file is removed */
    gw_suspensions_free(s);
    char *dpath = tpath("sub/d.json");
    s = gw_suspensions_open(dpath, &err);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(mkdir(dpath, 0755), 0);
    ck_assert_int_eq(gw_suspensions_set(s, "abc", 1, NULL, &err), -1);
    ck_assert_int_ge(asprintf(&want, "%s: cannot rename the temporary file: Is a directory", dpath),
                     0);
    ck_assert_str_eq(err, want);
    free(err);
    free(want);
    ck_assert_int_eq(temp_files("sub"), 0);
    ck_assert_int_eq(gw_suspensions_is_suspended(s, "abc"), 1);
    gw_suspensions_free(s);
    free(dpath);
    free(path);
    free(sub);
}
END_TEST

/* ---- readers while a writer toggles ---- */

static gw_suspensions *shared;
static atomic_int stop;
static atomic_long seen_on, seen_off;

static void *reader(void *arg)
{
    (void)arg;
    long nbad = 0;
    gw_suspension_info info[8];
    while (!atomic_load(&stop)) {
        if (gw_suspensions_is_suspended(shared, "always-sandbox") != 1)
            nbad++;
        if (gw_suspensions_is_suspended(shared, "never-sandbox") != 0)
            nbad++;
        if (gw_suspensions_is_suspended(shared, "toggled-sandbox"))
            atomic_fetch_add(&seen_on, 1);
        else
            atomic_fetch_add(&seen_off, 1);
        size_t n = gw_suspensions_list(shared, info, 8);
        if (n < 1 || n > 2 || strcmp(info[0].client_id, "always-sandbox") != 0)
            nbad++;
        if (n == 2 && strcmp(info[1].client_id, "toggled-sandbox") != 0)
            nbad++;
    }
    return (void *)nbad;
}

START_TEST(t_concurrent)
{
    char *err = NULL;
    char *path = tpath("s.json");
    shared = gw_suspensions_open(path, &err);
    ck_assert_ptr_nonnull(shared);
    ck_assert_int_eq(gw_suspensions_set(shared, "always-sandbox", 1, "x", &err), 0);
    atomic_store(&stop, 0);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, reader, NULL), 0);
    for (int k = 0; k < 100; k++) {
        ck_assert_int_eq(gw_suspensions_set(shared, "toggled-sandbox", k % 2 == 0, "t", &err), 0);
        /* the writer's own next read sees its change */
        ck_assert_int_eq(gw_suspensions_is_suspended(shared, "toggled-sandbox"), k % 2 == 0);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 4; i++) {
        void *rv = (void *)-1;
        ck_assert_int_eq(pthread_join(th[i], &rv), 0);
        ck_assert_msg(rv == NULL, "reader %d saw %ld inconsistent states", i, (long)rv);
    }
    fprintf(stderr, "test_suspend: readers saw toggled-sandbox on %ld and off %ld times\n",
            atomic_load(&seen_on), atomic_load(&seen_off));
    ck_assert_int_gt(atomic_load(&seen_on) + atomic_load(&seen_off), 0);
    /* last toggle (k = 99) resumed it; the file agrees */
    gw_suspensions_free(shared);
    shared = gw_suspensions_open(path, &err);
    ck_assert_ptr_nonnull(shared);
    ck_assert_int_eq(gw_suspensions_is_suspended(shared, "toggled-sandbox"), 0);
    ck_assert_int_eq(gw_suspensions_is_suspended(shared, "always-sandbox"), 1);
    gw_suspensions_free(shared);
    ck_assert_int_eq(temp_files(""), 0);
    free(path);
}
END_TEST

/* Ping-pong between the test and a reader thread that keeps its view of the
 * set between rounds: after each change, the reader's very next lookup
 * (from a thread that read the old state just before) sees it. */
static atomic_int pp_round, pp_done, pp_bad;

static int wait_for(atomic_int *v, int want)
{
    for (int i = 0; i < 5000 && atomic_load(v) != want; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return atomic_load(v) == want;
}

static void *pp_reader(void *arg)
{
    (void)arg;
    for (int k = 1; k <= 200; k++) {
        if (!wait_for(&pp_round, k))
            break;
        /* round k: suspended when k is odd, cut when k % 4 == 1 */
        if (gw_suspensions_is_suspended(shared, "pp-sandbox") != (k % 2))
            atomic_fetch_add(&pp_bad, 1);
        if (gw_suspensions_is_cut(shared, "production") != (k % 4 == 1))
            atomic_fetch_add(&pp_bad, 1);
        if (gw_suspensions_is_suspended(shared, "other-sandbox") != 0)
            atomic_fetch_add(&pp_bad, 1);
        atomic_store(&pp_done, k);
    }
    return NULL;
}

START_TEST(t_next_lookup_other_thread)
{
    char *err = NULL;
    char *path = tpath("pp.json");
    shared = gw_suspensions_open(path, &err);
    ck_assert_ptr_nonnull(shared);
    atomic_store(&pp_round, 0);
    atomic_store(&pp_done, 0);
    atomic_store(&pp_bad, 0);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, pp_reader, NULL), 0);
    for (int k = 1; k <= 200; k++) {
        ck_assert_int_eq(gw_suspensions_set(shared, "pp-sandbox", k % 2, "t", &err), 0);
        if (k % 4 == 1 || k % 4 == 2)
            ck_assert_int_eq(
                gw_suspensions_cut(shared, "production", k % 4 == 1, "r", "t", 0, &err), 0);
        atomic_store(&pp_round, k);
        ck_assert_msg(wait_for(&pp_done, k), "reader stuck at round %d", k);
    }
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_eq(atomic_load(&pp_bad), 0);
    gw_suspensions_free(shared);
    shared = NULL;
    free(path);
}
END_TEST

static int expired_calls;
static gw_suspension_info expired_last;

static void on_expired_cb(void *arg, const gw_suspension_info *info, int persisted)
{
    (void)arg;
    ck_assert_int_eq(persisted, 1);
    expired_calls++;
    expired_last = *info;
}

/* Reasons, until, expiry (once), and the environment cuts, persisted. */
START_TEST(t_until_expiry_and_cuts)
{
    char *path = tpath("s.json"), *err = NULL;
    gw_suspensions *s = gw_suspensions_open(path, &err);
    ck_assert_ptr_nonnull(s);
    gw_suspensions_on_expired(s, on_expired_cb, NULL);
    expired_calls = 0;
    time_t now = time(NULL);
    ck_assert_int_eq(gw_suspensions_suspend(s, "acme-sandbox", "admin API", "INC-1",
                                            "admin API from ::1", now + 100, &err),
                     0);
    ck_assert_int_eq(gw_suspensions_is_suspended(s, "acme-sandbox"), 1);
    gw_suspension_info info;
    ck_assert_int_eq(gw_suspensions_get(s, "acme-sandbox", &info), 1);
    ck_assert_str_eq(info.reason, "INC-1");
    ck_assert_str_eq(info.by, "admin API from ::1");
    ck_assert_str_eq(info.why, "admin API");
    ck_assert_int_eq((long)info.until, (long)(now + 100));
    /* re-suspending replaces the reason and the end, keeps since */
    time_t since = info.since;
    ck_assert_int_eq(
        gw_suspensions_suspend(s, "acme-sandbox", "admin API", "INC-2", "x", now + 200, &err), 0);
    ck_assert_int_eq(gw_suspensions_get(s, "acme-sandbox", &info), 1);
    ck_assert_str_eq(info.reason, "INC-2");
    ck_assert_int_eq((long)info.since, (long)since);
    /* a DataPass-style set keeps what is there */
    ck_assert_int_eq(gw_suspensions_set(s, "acme-sandbox", 1, "datapass revoke H1", &err), 0);
    ck_assert_int_eq(gw_suspensions_get(s, "acme-sandbox", &info), 1);
    ck_assert_str_eq(info.why, "admin API");
    /* the file carries reason, by, until; a reopen reads them back */
    json_t *f = load_t("s.json");
    json_t *e = json_array_get(json_object_get(f, "suspended"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(e, "reason")), "INC-2");
    ck_assert_ptr_nonnull(json_string_value(json_object_get(e, "until")));
    ck_assert_ptr_null(json_object_get(f, "cuts"));
    json_decref(f);
    /* cuts: by environment, unknown ones refused */
    ck_assert_int_eq(gw_suspensions_cut(s, "sandbox", 1, "CGU 8", "op", now + 300, &err), 0);
    ck_assert_int_eq(gw_suspensions_cut(s, "staging", 1, "x", "op", 0, &err), -1);
    free(err);
    err = NULL;
    ck_assert_int_eq(gw_suspensions_is_cut(s, "sandbox"), 1);
    ck_assert_int_eq(gw_suspensions_is_cut(s, "production"), 0);
    ck_assert_int_eq(gw_suspensions_is_cut(s, NULL), 0);
    gw_suspensions_free(s);
    s = gw_suspensions_open(path, &err);
    ck_assert_msg(s != NULL, "%s", err ? err : "");
    gw_suspensions_on_expired(s, on_expired_cb, NULL);
    ck_assert_int_eq(gw_suspensions_cut_get(s, "sandbox", &info), 1);
    ck_assert_str_eq(info.env, "sandbox");
    ck_assert_str_eq(info.reason, "CGU 8");
    ck_assert_int_eq((long)info.until, (long)(now + 300));
    ck_assert_int_eq(gw_suspensions_get(s, "acme-sandbox", &info), 1);
    ck_assert_str_eq(info.reason, "INC-2");
    /* expiry: nothing before its time, each entry once */
    ck_assert_uint_eq(gw_suspensions_sweep(s, now + 199), 0);
    ck_assert_uint_eq(gw_suspensions_sweep(s, now + 200), 1);
    ck_assert_int_eq(expired_calls, 1);
    ck_assert_str_eq(expired_last.client_id, "acme-sandbox");
    ck_assert_str_eq(expired_last.reason, "INC-2");
    ck_assert_uint_eq(gw_suspensions_sweep(s, now + 250), 0);
    ck_assert_int_eq(expired_calls, 1);
    ck_assert_int_eq(gw_suspensions_is_suspended(s, "acme-sandbox"), 0);
    ck_assert_uint_eq(gw_suspensions_sweep(s, now + 300), 1);
    ck_assert_int_eq(expired_calls, 2);
    ck_assert_str_eq(expired_last.env, "sandbox");
    ck_assert_int_eq(gw_suspensions_is_cut(s, "sandbox"), 0);
    f = load_t("s.json");
    ck_assert_uint_eq(json_array_size(json_object_get(f, "suspended")), 0);
    ck_assert_ptr_null(json_object_get(f, "cuts"));
    json_decref(f);
    /* a past end: the next lookup lifts it and reports it */
    ck_assert_int_eq(
        gw_suspensions_suspend(s, "late-sandbox", "admin API", "r", "op", now - 1, &err), 0);
    ck_assert_int_eq(gw_suspensions_is_suspended(s, "late-sandbox"), 0);
    ck_assert_int_eq(expired_calls, 3);
    /* with a timer sweeping, a lookup hides a past entry but leaves the
     * lifting (the file's rewrite, the report) to the timer */
    gw_suspensions_timer_sweeps(s);
    ck_assert_int_eq(
        gw_suspensions_suspend(s, "timer-sandbox", "admin API", "r", "op", now - 1, &err), 0);
    ck_assert_int_eq(gw_suspensions_is_suspended(s, "timer-sandbox"), 0);
    ck_assert_int_eq(expired_calls, 3);
    f = load_t("s.json");
    ck_assert_uint_eq(json_array_size(json_object_get(f, "suspended")), 1);
    json_decref(f);
    ck_assert_uint_eq(gw_suspensions_sweep(s, now), 1);
    ck_assert_int_eq(expired_calls, 4);
    ck_assert_str_eq(expired_last.client_id, "timer-sandbox");
    /* no until: never swept */
    ck_assert_int_eq(gw_suspensions_suspend(s, "keep-sandbox", "admin API", "r", "op", 0, &err), 0);
    ck_assert_uint_eq(gw_suspensions_sweep(s, now + 10 * 366 * 86400L), 0);
    ck_assert_int_eq(gw_suspensions_is_suspended(s, "keep-sandbox"), 1);
    gw_suspensions_free(s);
    free(path);
}
END_TEST

/* RFC 3339 with offsets and fractions; malformed ones refused. */
START_TEST(t_rfc3339)
{
    time_t t;
    ck_assert_int_eq(gw_rfc3339_parse("2026-12-24T18:00:00Z", &t), 0);
    ck_assert_int_eq((long)t, 1798135200L);
    ck_assert_int_eq(gw_rfc3339_parse("2026-12-24T19:00:00+01:00", &t), 0);
    ck_assert_int_eq((long)t, 1798135200L);
    ck_assert_int_eq(gw_rfc3339_parse("2026-12-24T17:30:00.123-00:30", &t), 0);
    ck_assert_int_eq((long)t, 1798135200L);
    static const char *const badt[] = {"",
                                       "2026-12-24",
                                       "2026-12-24T18:00:00",
                                       "2026-12-24 18:00:00Z",
                                       "2026-13-24T18:00:00Z",
                                       "2026-12-24T24:00:00Z",
                                       "2026-12-24T18:00:00+0100",
                                       "2026-12-24T18:00:00.Z",
                                       "2026-12-24T18:00:00Zjunk"};
    for (size_t i = 0; i < sizeof(badt) / sizeof(badt[0]); i++)
        ck_assert_msg(gw_rfc3339_parse(badt[i], &t) == -1, "accepted %s", badt[i]);
    ck_assert_int_eq(gw_rfc3339_parse(NULL, &t), -1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("suspend");
    TCase *tc = tcase_create("suspend");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, t_set_list_persist);
    tcase_add_test(tc, t_read_given_file);
    tcase_add_test(tc, t_long_values);
    tcase_add_loop_test(tc, t_bad_file, 0, (int)(sizeof(bad) / sizeof(bad[0])));
    tcase_add_test(tc, t_unreadable);
    tcase_add_test(tc, t_persist_failure);
    tcase_add_test(tc, t_concurrent);
    tcase_add_test(tc, t_next_lookup_other_thread);
    tcase_add_test(tc, t_until_expiry_and_cuts);
    tcase_add_test(tc, t_rfc3339);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
