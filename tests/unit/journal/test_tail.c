/* Unit tests for gateway/journal/tail.c: the tail check of a chained
 * journal (what the writer produced, then edited by the test) and the
 * acknowledgement of a break. */
#include "journal_fixtures.h"

#include "journal/tail.h"

/* A journal of <n> records and a final checkpoint signed with <k>. */
static void make_journal(const char *p, int n, gw_jwk *k)
{
    gw_journal *j = open_chain((gw_journal_opts){.path = p, .checkpoint_s = 3600, .signer = k});
    for (int i = 0; i < n; i++)
        submit_rec(j, i);
    gw_journal_close(j);
}

/* Replace the file's line <n> (1-based) with <line> (no '\n'). */
static void set_line(const char *p, int n, const char *line)
{
    char *s = slurp(p, NULL), *save = NULL;
    FILE *f = fopen(p, "wb");
    int i = 1;
    for (char *l = strtok_r(s, "\n", &save); l; l = strtok_r(NULL, "\n", &save), i++)
        if (i != n || line != NULL)
            fprintf(f, "%s\n", i == n ? line : l);
    fclose(f);
    free(s);
}

static char *get_line(const char *p, int n)
{
    char *s = slurp(p, NULL), *save = NULL, *out = NULL;
    int i = 1;
    for (char *l = strtok_r(s, "\n", &save); l; l = strtok_r(NULL, "\n", &save), i++)
        if (i == n)
            out = strdup(l);
    free(s);
    return out;
}

START_TEST(intact_tail)
{
    const char *p = tpath("j.log");
    gw_jwk k = test_key("tail-1");
    gw_keyset ks = {.keys = &k, .n = 1};
    gw_journal_tail t;
    make_journal(p, 5, &k);
    ck_assert_int_eq(gw_journal_check_tail(p, &ks, 0, NULL, &t), 0);
    ck_assert_int_eq(t.broken, 0);
    ck_assert_uint_eq(t.records, 6);
    ck_assert_uint_eq(t.last_seq, 6);
    ck_assert_uint_eq(t.checkpoint, 6);
    ck_assert_str_eq(t.file, p);
    /* the head the writer would hold */
    struct tline tl;
    char *last = get_line(p, 6);
    ck_assert(split_line(last, &tl));
    ck_assert_str_eq(t.last_hash, tl.hash);
    ck_assert_int_eq(gw_journal_check_tail(p, &ks, 6, tl.hash, &t), 0);
    free(last);
    /* no journal yet: nothing to check */
    ck_assert_int_eq(gw_journal_check_tail(tpath("none.log"), &ks, 0, NULL, &t), 0);
    EVP_PKEY_free(k.pkey);
}
END_TEST

/* One byte of record 3 changed: its hash no longer recomputes. */
START_TEST(modified_record)
{
    const char *p = tpath("j.log");
    gw_jwk k = test_key("tail-1");
    gw_journal_tail t;
    make_journal(p, 5, &k);
    char *l = get_line(p, 3);
    struct tline before;
    ck_assert(split_line(l, &before));
    char *at = strstr(l, "liasses");
    ck_assert_ptr_nonnull(at);
    at[0] = 'L';
    set_line(p, 3, l);
    struct tline after;
    ck_assert(split_line(l, &after));
    ck_assert_int_eq(gw_journal_check_tail(p, NULL, 0, NULL, &t), 1);
    ck_assert_uint_eq(t.seq, 3);
    ck_assert_uint_eq(t.line, 3);
    ck_assert_str_eq(t.actual, before.hash);
    ck_assert_str_eq(t.expected, after.recomputed);
    ck_assert_ptr_nonnull(strstr(t.what, "does not match its hash"));
    free(l);
    EVP_PKEY_free(k.pkey);
}
END_TEST

/* Record 3 deleted: record 4 does not follow record 2. */
START_TEST(deleted_record)
{
    const char *p = tpath("j.log");
    gw_jwk k = test_key("tail-1");
    gw_journal_tail t;
    make_journal(p, 5, &k);
    char *l2 = get_line(p, 2), *l3 = get_line(p, 3);
    struct tline t2, t3;
    ck_assert(split_line(l2, &t2) && split_line(l3, &t3));
    set_line(p, 3, NULL);
    ck_assert_int_eq(gw_journal_check_tail(p, NULL, 0, NULL, &t), 1);
    ck_assert_uint_eq(t.seq, 4);
    ck_assert_str_eq(t.expected, t2.hash);
    ck_assert_str_eq(t.actual, t3.hash); /* record 4's prev */
    ck_assert_ptr_nonnull(strstr(t.what, "does not follow"));
    free(l2);
    free(l3);
    EVP_PKEY_free(k.pkey);
}
END_TEST

/* A crash's torn last line and a write error's fragment are not breaks. */
START_TEST(torn_lines_are_not_breaks)
{
    const char *p = tpath("j.log");
    gw_jwk k = test_key("tail-1");
    gw_journal_tail t;
    make_journal(p, 3, &k);
    FILE *f = fopen(p, "ab");
    fputs("{\"v\":1,\"n\":99,\"pa", f);
    fclose(f);
    ck_assert_int_eq(gw_journal_check_tail(p, NULL, 0, NULL, &t), 0);
    ck_assert_uint_eq(t.last_seq, 4);
    EVP_PKEY_free(k.pkey);
}
END_TEST

/* The writer's head tells a cut after the last record, and a rewrite of
 * the last record with its hash recomputed. */
START_TEST(expected_head)
{
    const char *p = tpath("j.log");
    gw_jwk k = test_key("tail-1");
    gw_journal_tail t;
    make_journal(p, 5, &k);
    char *l6 = get_line(p, 6);
    struct tline h;
    ck_assert(split_line(l6, &h));
    set_line(p, 6, NULL); /* cut the checkpoint */
    ck_assert_int_eq(gw_journal_check_tail(p, NULL, 6, h.hash, &t), 1);
    ck_assert_uint_eq(t.seq, 5);
    ck_assert_str_eq(t.expected, h.hash);
    ck_assert_ptr_nonnull(strstr(t.what, "writer's head"));
    /* alone, the shorter file is intact: the head is what tells */
    ck_assert_int_eq(gw_journal_check_tail(p, NULL, 0, NULL, &t), 0);
    free(l6);
    EVP_PKEY_free(k.pkey);
}
END_TEST

/* A checkpoint signed with another key (re-signed by someone else). */
START_TEST(checkpoint_signature)
{
    const char *p = tpath("j.log");
    gw_jwk k = test_key("tail-1"), other = test_key("tail-1");
    gw_keyset ks = {.keys = &other, .n = 1};
    gw_journal_tail t;
    make_journal(p, 2, &k);
    ck_assert_int_eq(gw_journal_check_tail(p, &ks, 0, NULL, &t), 1);
    ck_assert_uint_eq(t.seq, 3);
    ck_assert_ptr_nonnull(strstr(t.what, "signature does not verify"));
    EVP_PKEY_free(k.pkey);
    EVP_PKEY_free(other.pkey);
}
END_TEST

/* A key retired from the configuration: the checkpoint's head is still
 * checked, its signature cannot be; not a break, the kid is reported. A
 * known kid whose signature fails stays a break (above). */
START_TEST(checkpoint_retired_key)
{
    const char *p = tpath("j.log");
    gw_jwk k = test_key("tail-old"), now = test_key("tail-new");
    gw_keyset ks = {.keys = &now, .n = 1};
    gw_journal_tail t;
    make_journal(p, 2, &k);
    ck_assert_int_eq(gw_journal_check_tail(p, &ks, 0, NULL, &t), 0);
    ck_assert_int_eq(t.broken, 0);
    ck_assert_uint_eq(t.checkpoint, 3);
    ck_assert_str_eq(t.unknown_kid, "tail-old");
    /* with the old key configured, nothing to report */
    gw_keyset both = {.keys = &k, .n = 1};
    ck_assert_int_eq(gw_journal_check_tail(p, &both, 0, NULL, &t), 0);
    ck_assert_str_eq(t.unknown_kid, "");
    /* a checkpoint changed under an unknown kid is still a break */
    char *cp = get_line(p, 3);
    char *at = strstr(cp, "\"head_seq\":2");
    ck_assert_ptr_nonnull(at);
    at[11] = '1';
    set_line(p, 3, cp);
    free(cp);
    ck_assert_int_eq(gw_journal_check_tail(p, &ks, 0, NULL, &t), 1);
    EVP_PKEY_free(k.pkey);
    EVP_PKEY_free(now.pkey);
}
END_TEST

/* The acknowledgement: chained to the last record, naming the break; the
 * tail check then passes, and the writer goes on after it. */
START_TEST(ack_break)
{
    const char *p = tpath("j.log");
    gw_jwk k = test_key("tail-1");
    gw_keyset ks = {.keys = &k, .n = 1};
    gw_journal_tail t;
    char *err = NULL;
    make_journal(p, 5, &k);
    char *l = get_line(p, 2);
    *strstr(l, "liasses") = 'X';
    set_line(p, 2, l);
    free(l);
    ck_assert_int_eq(gw_journal_check_tail(p, &ks, 0, NULL, &t), 1);
    ck_assert_int_eq(gw_journal_ack_break(&t, "INC-42 \"quoted\"", "alice", &err), 0);
    ck_assert_ptr_null(err);
    json_t *o = line_json(p, 7);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(jget_str(o, "type"), "break_ack");
    ck_assert_str_eq(jget_str(o, "reason"), "INC-42 \"quoted\"");
    ck_assert_str_eq(jget_str(o, "by"), "alice");
    json_t *b = json_object_get(o, "break");
    ck_assert_int_eq(json_integer_value(json_object_get(b, "seq")), 2);
    ck_assert_str_eq(jget_str(b, "file"), p);
    ck_assert_str_eq(jget_str(b, "expected"), t.expected);
    ck_assert_str_eq(jget_str(b, "actual"), t.actual);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "seq")), 7);
    ck_assert_str_eq(jget_str(o, "prev"), t.last_hash);
    json_decref(o);
    char *al = get_line(p, 7);
    struct tline at;
    ck_assert(split_line(al, &at));
    ck_assert_str_eq(at.hash, at.recomputed);
    free(al);
    gw_journal_tail t2;
    ck_assert_int_eq(gw_journal_check_tail(p, &ks, 0, NULL, &t2), 0);
    ck_assert_uint_eq(t2.ack_seq, 7);
    /* the writer continues from the acknowledgement */
    gw_journal *j = open_chain((gw_journal_opts){.path = p});
    submit_rec(j, 100);
    gw_journal_close(j);
    o = line_json(p, 8);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "seq")), 8);
    ck_assert_str_eq(jget_str(o, "prev"), at.hash);
    json_decref(o);
    ck_assert_int_eq(gw_journal_check_tail(p, &ks, 0, NULL, &t2), 0);
    /* a break after the acknowledgement is a break again */
    l = get_line(p, 8);
    *strstr(l, "liasses") = 'Y';
    set_line(p, 8, l);
    free(l);
    ck_assert_int_eq(gw_journal_check_tail(p, &ks, 0, NULL, &t2), 1);
    ck_assert_uint_eq(t2.seq, 8);
    EVP_PKEY_free(k.pkey);
}
END_TEST

/* A tail longer than the first window: the check reaches back to the last
 * checkpoint, and a break just after it is found. */
START_TEST(window_reaches_the_checkpoint)
{
    const char *p = tpath("j.log");
    gw_jwk k = test_key("tail-1");
    gw_journal *j = open_chain((gw_journal_opts){.path = p, .checkpoint_s = 3600, .signer = &k});
    submit_rec(j, 0);
    gw_journal_close(j); /* records 1, 2 (checkpoint) */
    j = open_chain((gw_journal_opts){.path = p, .queue_cap = 100000});
    /* about 1.5 MiB after the checkpoint */
    for (int i = 0; i < 12000; i++)
        submit_rec(j, i);
    gw_journal_close(j);
    char *l = get_line(p, 3);
    *strstr(l, "liasses") = 'Z';
    set_line(p, 3, l);
    free(l);
    gw_journal_tail t;
    ck_assert_int_eq(gw_journal_check_tail(p, NULL, 0, NULL, &t), 1);
    ck_assert_uint_eq(t.seq, 3);
    ck_assert_uint_eq(t.offset, 0);
    EVP_PKEY_free(k.pkey);
}
END_TEST

static Suite *tail_suite(void)
{
    Suite *s = suite_create("tail");
    TCase *tc = tcase_create("tail");
    tcase_add_checked_fixture(tc, setup_dir, teardown_dir);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, intact_tail);
    tcase_add_test(tc, modified_record);
    tcase_add_test(tc, deleted_record);
    tcase_add_test(tc, torn_lines_are_not_breaks);
    tcase_add_test(tc, expected_head);
    tcase_add_test(tc, checkpoint_signature);
    tcase_add_test(tc, checkpoint_retired_key);
    tcase_add_test(tc, ack_break);
    tcase_add_test(tc, window_reaches_the_checkpoint);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(tail_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
