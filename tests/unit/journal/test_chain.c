/* Unit tests for gateway/journal/chain.c: the hash chain as the writer produces it (seq, prev,
 * hash), where it continues at open, and a failed write that must not move the head. */
#include "journal_fixtures.h"

#include "journal/tail.h"

/* Known answer: the hashes below were computed with Python's hashlib over the
 * exact canonical bytes, e.g. {"v":1,"seq":1,"prev":"000…0"} for the first. */
START_TEST(chain_known_answer)
{
    const char *p = tpath("j.log");
    gw_journal *j = open_chain((gw_journal_opts){.path = p});
    ck_assert_int_eq(submit_str(j, strdup("{\"v\":1}\n")), 0);
    ck_assert_int_eq(submit_str(j, strdup("{\"v\":1,\"ts\":\"2025-03-21T09:00:00.123Z\"}\n")), 0);
    gw_journal_close(j);
    char *s = slurp(p, NULL);
    ck_assert_str_eq(
        s, "{\"v\":1,\"seq\":1,\"prev\":\"0000000000000000000000000000000000000000000000000000000"
           "000000000\",\"hash\":\"c4932dffa24f7fc636c1321fc46ccd133450723f91a7dfdb2baa4d8441abd2"
           "51\"}\n"
           "{\"v\":1,\"ts\":\"2025-03-21T09:00:00.123Z\",\"seq\":2,\"prev\":\"c4932dffa24f7fc636c1"
           "321fc46ccd133450723f91a7dfdb2baa4d8441abd251\",\"hash\":\"e9d7cac9155fa1bff4629317716a"
           "07d6a476f7cd61cdc22912799c2926438550\"}\n");
    free(s);
}
END_TEST

/* Real records from gw_journal_format: each line is the worker's line with
 * the chain members inserted before its final brace, and the chain holds. */
START_TEST(chain_values_recomputed)
{
    enum { N = 50 };
    const char *p = tpath("j.log");
    char *sent[N];
    gw_journal *j = open_chain((gw_journal_opts){.path = p});
    for (int i = 0; i < N; i++) {
        gw_journal_rec r = full_rec();
        r.status = 200 + i;
        r.path = i % 2 ? "/opale/v1/\xC3\xA9t\xC3\xA9\"\\" : "/x";
        size_t len;
        char *l = gw_journal_format(&r, &len);
        ck_assert_ptr_nonnull(l);
        sent[i] = strndup(l, len - 2); /* without "}\n" */
        ck_assert_int_eq(gw_journal_submit(j, l, len), 0);
    }
    gw_journal_close(j);

    struct cstate cs;
    cstate_init(&cs);
    check_file_chain(p, &cs);
    ck_assert_uint_eq(cs.records, N);
    char *s = slurp(p, NULL), *save = NULL;
    int i = 0;
    for (char *l = strtok_r(s, "\n", &save); l; l = strtok_r(NULL, "\n", &save), i++) {
        struct tline t;
        ck_assert(split_line(l, &t));
        ck_assert_str_eq(t.body, sent[i]);
        ck_assert_uint_eq(t.seq, (unsigned long long)i + 1);
        json_t *o = json_loads(l, JSON_REJECT_DUPLICATES, NULL);
        ck_assert_msg(o != NULL, "line %d is not JSON without duplicates", i + 1);
        ck_assert_int_eq(json_integer_value(json_object_get(o, "status")), 200 + i);
        json_decref(o);
        free(sent[i]);
    }
    ck_assert_int_eq(i, N);
    free(s);
}
END_TEST

/* A chained journal only takes single JSON objects on one line. */
static const char *const bad_lines[] = {
    "first\n",      "{}\n", "{ \t}\n", "{\"a\":1}\n{\"b\":2}\n", "{\"a\":1}", "[1]\n",
    "{\"a\":1} \n", "\n",   "}\n",
};
#define N_BAD_LINES (sizeof(bad_lines) / sizeof(bad_lines[0]))

START_TEST(chain_refuses_non_objects)
{
    const char *p = tpath("j.log");
    gw_journal *j = open_chain((gw_journal_opts){.path = p});
    ck_assert_int_eq(submit_str(j, strdup(bad_lines[_i])), -1);
    ck_assert_int_eq(submit_str(j, strdup("{\"ok\":1}\n")), 0);
    gw_journal_stats st;
    gw_journal_get_stats(j, &st);
    ck_assert_uint_eq(st.submitted, 1);
    ck_assert_uint_eq(st.dropped, 1);
    gw_journal_close(j);
    char *s = slurp(p, NULL);
    ck_assert_uint_eq(count_lines(s), 1);
    ck_assert_ptr_nonnull(strstr(s, "{\"ok\":1,\"seq\":1,"));
    free(s);
}
END_TEST

START_TEST(chain_continues_across_restart)
{
    const char *p = tpath("j.log");
    gw_journal_stats st;
    gw_journal *j = open_chain((gw_journal_opts){.path = p});
    for (int i = 0; i < 3; i++)
        submit_rec(j, i);
    gw_journal_close(j);

    j = open_chain((gw_journal_opts){.path = p});
    gw_journal_get_stats(j, &st);
    ck_assert_uint_eq(st.seq, 3); /* read back from the file */
    for (int i = 3; i < 5; i++)
        submit_rec(j, i);
    wait_idle(j);
    gw_journal_get_stats(j, &st);
    ck_assert_uint_eq(st.seq, 5);
    gw_journal_close(j);

    struct cstate cs;
    cstate_init(&cs);
    check_file_chain(p, &cs);
    ck_assert_uint_eq(cs.records, 5);
    ck_assert_uint_eq(cs.seq, 5);
}
END_TEST

/* _i == 0: a crash cut the last record: the fragment is ended with a newline
 * and the chain continues from the last complete record.
 * _i == 1: only the final newline is missing: the record is complete and the
 * chain continues from it. */
START_TEST(chain_torn_last_line)
{
    const char *p = tpath("j.log");
    gw_journal *j = open_chain((gw_journal_opts){.path = p});
    for (int i = 0; i < 3; i++)
        submit_rec(j, i);
    gw_journal_close(j);
    struct cstate cs;
    cstate_init(&cs);
    check_file_chain(p, &cs);
    char head3[65];
    strcpy(head3, cs.hash);

    if (_i == 0) {
        FILE *f = fopen(p, "a");
        fputs("{\"v\":1,\"n\":99,\"seq\":4,\"pr", f);
        fclose(f);
    } else {
        struct stat st;
        ck_assert_int_eq(stat(p, &st), 0);
        ck_assert_int_eq(truncate(p, st.st_size - 1), 0);
    }
    capture_stderr(tpath("stderr"));
    j = open_chain((gw_journal_opts){.path = p});
    submit_rec(j, 3);
    gw_journal_close(j);

    fflush(stderr);
    char *e = slurp(tpath("stderr"), NULL);
    ck_assert_msg(strstr(e, _i == 0 ? "the last line is incomplete" : "had no newline") != NULL,
                  "no report of the cut line: [%s]", e);
    free(e);

    char *s = slurp(p, NULL), *save = NULL;
    ck_assert_ptr_nonnull(strtok_r(s, "\n", &save)); /* records 1 to 3 */
    for (int i = 1; i < 3; i++)
        ck_assert_ptr_nonnull(strtok_r(NULL, "\n", &save));
    char *l = strtok_r(NULL, "\n", &save);
    if (_i == 0) {
        ck_assert_str_eq(l, "{\"v\":1,\"n\":99,\"seq\":4,\"pr"); /* the fragment, on its own */
        l = strtok_r(NULL, "\n", &save);
    }
    struct tline t;
    ck_assert_ptr_nonnull(l);
    ck_assert(split_line(l, &t));
    ck_assert_uint_eq(t.seq, 4);
    ck_assert_str_eq(t.prev, head3);
    ck_assert_str_eq(t.hash, t.recomputed);
    ck_assert_ptr_null(strtok_r(NULL, "\n", &save));
    free(s);

    gw_journal_verify_result res;
    char *files[] = {(char *)p};
    ck_assert_int_eq(verify_files(files, 1, NULL, &res), 0);
    ck_assert_uint_eq(res.records, 4);
    ck_assert_uint_eq(res.warnings, _i == 0 ? 1 : 0);
}
END_TEST

/* Records lost to a write error never take a seq: the chain continues from
 * the last record that reached the file. */
START_TEST(chain_write_error_keeps_head)
{
    if (access("/dev/full", W_OK) != 0) {
        fprintf(stderr, "chain_write_error_keeps_head: SKIPPED: /dev/full is not writable here\n");
        return;
    }
    const char *p = tpath("j.log");
    ck_assert_int_eq(symlink("/dev/full", p), 0);
    capture_stderr(tpath("stderr"));
    gw_journal *j = open_chain((gw_journal_opts){.path = p});
    for (int i = 0; i < 3; i++)
        submit_rec(j, i);
    wait_idle(j);
    gw_journal_stats st;
    gw_journal_get_stats(j, &st);
    ck_assert_uint_eq(st.dropped, 3);
    ck_assert_uint_eq(st.seq, 0);
    ck_assert_int_eq(unlink(p), 0);
    gw_journal_reopen(j);
    submit_rec(j, 3);
    submit_rec(j, 4);
    gw_journal_close(j);

    struct cstate cs;
    cstate_init(&cs);
    check_file_chain(p, &cs); /* starts at the genesis */
    ck_assert_uint_eq(cs.records, 4);
    json_t *o = line_json(p, 1);
    ck_assert_str_eq(jget_str(o, "type"), "rotate");
    ck_assert(json_is_null(json_object_get(o, "from")));
    json_decref(o);
    /* once a write succeeds again (after the rotate record, before or
     * after records 3 and 4 depending on the writer's passes), one gap
     * record counts the three lost */
    int gaps = 0;
    for (int ln = 2; ln <= 4; ln++) {
        o = line_json(p, ln);
        ck_assert_ptr_nonnull(o);
        const char *t = jget_str(o, "type");
        if (t != NULL && strcmp(t, "gap") == 0) {
            gaps++;
            ck_assert_str_eq(jget_str(o, "reason"), "write_error");
            ck_assert_int_eq(json_integer_value(json_object_get(o, "lost")), 3);
        }
        json_decref(o);
    }
    ck_assert_int_eq(gaps, 1);
}
END_TEST

/* RLIMIT_FSIZE cuts a batch inside its third record: two records are in, the
 * head is the second, the fragment is ended by the next write, and the next
 * records link to the second. */
START_TEST(chain_partial_write_rolls_back_head)
{
    const char *p = tpath("j.log");
    struct rlimit old, lim;
    char body[300];
    memset(body, 'x', sizeof(body));
    body[sizeof(body) - 1] = '\0';

    signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    capture_stderr(tpath("stderr"));
    gw_journal *j = open_chain((gw_journal_opts){.path = p});
    gw_journal_test_pause(j, 1);
    size_t wlen = 0;
    for (int i = 0; i < 5; i++) {
        char *l = NULL;
        int n = asprintf(&l, "{\"v\":1,\"n\":%d,\"pad\":\"%s\"}\n", i, body);
        wlen = (size_t)n - 2 + 158; /* ,"seq":N (one digit),"prev":"…","hash":"…"}\n */
        ck_assert_int_eq(gw_journal_submit(j, l, (size_t)n), 0);
    }
    lim = old;
    lim.rlim_cur = 2 * wlen + 100;
    int set_rc = setrlimit(RLIMIT_FSIZE, &lim);
    gw_journal_test_pause(j, 0);
    int idle = drained(j);
    gw_journal_stats st;
    gw_journal_get_stats(j, &st);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);

    ck_assert_int_eq(set_rc, 0);
    ck_assert(idle);
    ck_assert_uint_eq(st.written, 2);
    ck_assert_uint_eq(st.dropped, 3);
    ck_assert_uint_eq(st.seq, 2);
    submit_rec(j, 5);
    submit_rec(j, 6);
    gw_journal_close(j);

    char *files[] = {(char *)p};
    gw_journal_verify_result res;
    /* intact, but the gap record of the three lost lines is reported: 3 */
    ck_assert_int_eq(verify_files(files, 1, NULL, &res), 3);
    ck_assert_uint_eq(res.records, 5); /* 1, 2, then 5, 6 and the gap record */
    ck_assert_uint_eq(res.last_seq, 5);
    ck_assert_uint_eq(res.gaps, 1);
    ck_assert_uint_eq(res.gap_records, 3);
    ck_assert_uint_eq(res.warnings, 1); /* the 100-byte fragment */
}
END_TEST

/* The writer's periodic tail check: intact while the file is its own, then
 * broken for good once records are cut behind its back: not healthy, every
 * reservation refused, and the break says where. */
START_TEST(periodic_tail_check)
{
    const char *p = tpath("j.log");
    capture_stderr(tpath("stderr"));
    gw_journal *j = open_chain((gw_journal_opts){.path = p, .tail_check_s = 1});
    for (int i = 0; i < 4; i++)
        submit_rec(j, i);
    wait_idle(j);
    gw_journal_stats st;
    for (int i = 0; i < 300; i++) {
        gw_journal_get_stats(j, &st);
        if (st.tail_checks >= 1)
            break;
        usleep(10000);
    }
    ck_assert_uint_ge(st.tail_checks, 1);
    ck_assert_int_eq(gw_journal_broken(j, NULL), 0);
    ck_assert_int_eq(gw_journal_healthy(j), 1);
    /* cut the last record */
    size_t len = 0;
    char *s = slurp(p, &len);
    ck_assert_ptr_nonnull(s);
    char *last = memrchr(s, '\n', len - 1);
    ck_assert_ptr_nonnull(last);
    ck_assert_int_eq(truncate(p, (off_t)(last - s + 1)), 0);
    free(s);
    gw_journal_tail t;
    int broken = 0;
    for (int i = 0; i < 300 && !broken; i++) {
        broken = gw_journal_broken(j, &t);
        if (!broken)
            usleep(10000);
    }
    ck_assert_int_eq(broken, 1);
    ck_assert_uint_eq(t.seq, 3);
    ck_assert_ptr_nonnull(strstr(t.what, "writer's head"));
    ck_assert_int_eq(gw_journal_healthy(j), 0);
    ck_assert_int_eq(gw_journal_reserve(j), -1);
    gw_journal_get_stats(j, &st);
    ck_assert_uint_eq(st.broken, 1);
    gw_journal_close(j);
    s = slurp(tpath("stderr"), NULL);
    ck_assert_ptr_nonnull(strstr(s, "tail check: BROKEN at seq 3"));
    free(s);
}
END_TEST

static Suite *chain_suite(void)
{
    Suite *s = suite_create("chain");
    TCase *tc;
    tc = tcase_create("chain");
    tcase_add_checked_fixture(tc, setup_dir, teardown_dir);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, chain_known_answer);
    tcase_add_test(tc, chain_values_recomputed);
    tcase_add_loop_test(tc, chain_refuses_non_objects, 0, N_BAD_LINES);
    tcase_add_test(tc, chain_continues_across_restart);
    tcase_add_loop_test(tc, chain_torn_last_line, 0, 2);
    tcase_add_test(tc, chain_write_error_keeps_head);
    tcase_add_test(tc, chain_partial_write_rolls_back_head);
    tcase_add_test(tc, periodic_tail_check);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(chain_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
