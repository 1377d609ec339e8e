/* Unit tests for gateway/journal/checkpoint.c: signed checkpoints at close and on their period. */
#include "journal_fixtures.h"

START_TEST(checkpoint_at_close)
{
    const char *p = tpath("j.log");
    gw_jwk k = test_key("jrn-1");
    gw_keyset ks = {.keys = &k, .n = 1};
    capture_stderr(tpath("stderr"));
    gw_journal *j = open_chain((gw_journal_opts){.path = p, .checkpoint_s = 3600, .signer = &k});
    for (int i = 0; i < 5; i++)
        submit_rec(j, i);
    gw_journal_close(j);

    struct cstate cs;
    cstate_init(&cs);
    check_file_chain(p, &cs);
    ck_assert_uint_eq(cs.records, 6);
    json_t *o5 = line_json(p, 5), *o = line_json(p, 6);
    ck_assert_str_eq(jget_str(o, "type"), "checkpoint");
    ck_assert_int_eq(json_integer_value(json_object_get(o, "head_seq")), 5);
    ck_assert_str_eq(jget_str(o, "head_hash"), jget_str(o5, "hash"));
    ck_assert_str_eq(jget_str(o, "kid"), "jrn-1");
    /* The signature covers the head (checked through jose, not verify.c). */
    const gw_keyset *sets[1] = {&ks};
    const gw_alg algs[] = {GW_ALG_ES256};
    gw_jws_rules rules = {.algs = algs, .nalgs = 1};
    gw_jws jws;
    const char *sig = jget_str(o, "sig");
    ck_assert_ptr_null(gw_jws_verify(sig, strlen(sig), sets, 1, &rules, &jws));
    ck_assert_str_eq(jget_str(jws.payload, "head_hash"), jget_str(o5, "hash"));
    ck_assert_int_eq(json_integer_value(json_object_get(jws.payload, "head_seq")), 5);
    ck_assert_str_eq(jget_str(jws.payload, "ts"), jget_str(o, "ts"));
    gw_jws_clear(&jws);
    json_decref(o5);
    json_decref(o);

    fflush(stderr);
    char *e = slurp(tpath("stderr"), NULL), want[200];
    snprintf(want, sizeof(want), "checkpoint seq=6 hash=%s\n", cs.hash);
    ck_assert_msg(strstr(e, want) != NULL, "no checkpoint line [%s] in [%s]", want, e);
    free(e);

    char *files[] = {(char *)p};
    gw_journal_verify_result res;
    gw_journal_verify_opts vo = {.keys = &ks, .expect_seq = 6, .expect_hash = cs.hash};
    ck_assert_int_eq(verify_files(files, 1, &vo, &res), 0);
    ck_assert_uint_eq(res.checkpoints, 1);
    ck_assert_uint_eq(res.checkpoints_verified, 1);
    ck_assert_uint_eq(res.after_checkpoint, 0);

    j = open_chain((gw_journal_opts){.path = p, .checkpoint_s = 3600, .signer = &k});
    gw_journal_close(j);
    char *s = slurp(p, NULL);
    ck_assert_uint_eq(count_lines(s), 6);
    free(s);
    EVP_PKEY_free(k.pkey);
}
END_TEST

static uint64_t wait_checkpoints(gw_journal *j, uint64_t want, int ms)
{
    gw_journal_stats st;
    for (int i = 0; i < ms / 10; i++) {
        gw_journal_get_stats(j, &st);
        if (st.checkpoints >= want)
            break;
        usleep(10000);
    }
    gw_journal_get_stats(j, &st);
    return st.checkpoints;
}

/* Every checkpoint_s while records are written; none while idle. */
START_TEST(checkpoint_periodic)
{
    const char *p = tpath("j.log");
    gw_jwk k = test_key("jrn-1");
    capture_stderr(tpath("stderr"));
    gw_journal *j = open_chain((gw_journal_opts){.path = p, .checkpoint_s = 1, .signer = &k});
    EVP_PKEY_free(k.pkey); /* the journal holds its own reference */
    submit_rec(j, 0);
    ck_assert_uint_eq(wait_checkpoints(j, 1, 3000), 1);
    usleep(1500 * 1000); /* idle: the head is a checkpoint already */
    ck_assert_uint_eq(wait_checkpoints(j, 1, 0), 1);
    submit_rec(j, 1);
    ck_assert_uint_eq(wait_checkpoints(j, 2, 3000), 2);
    gw_journal_close(j);
    struct cstate cs;
    cstate_init(&cs);
    check_file_chain(p, &cs);
    ck_assert_uint_eq(cs.records, 4); /* rec, cp, rec, cp: nothing more at close */
}
END_TEST

static Suite *checkpoint_suite(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *tc;
    tc = tcase_create("checkpoint");
    tcase_add_checked_fixture(tc, setup_dir, teardown_dir);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, checkpoint_at_close);
    tcase_add_test(tc, checkpoint_periodic);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(checkpoint_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
