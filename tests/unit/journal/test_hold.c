/* Unit tests for gateway/journal/hold.c: legal holds kept in DIR/.NAME.holds. */
#include "journal_fixtures.h"

#include "journal/hold.h"

static gw_holds *open_holds(const char *journal)
{
    char *err = NULL;
    gw_holds *h = gw_holds_open(journal, &err);
    ck_assert_msg(h != NULL, "gw_holds_open: %s", err ? err : "");
    return h;
}

START_TEST(set_replace_lift_and_persist)
{
    const char *j = tpath("access.jsonl");
    char *err = NULL;
    gw_holds *h = open_holds(j);
    ck_assert_uint_eq(gw_holds_count(h), 0);
    ck_assert_str_eq(gw_holds_path(h), tpath(".access.jsonl.holds"));
    ck_assert_int_eq(access(gw_holds_path(h), F_OK), -1); /* nothing written yet */
    ck_assert_int_eq(gw_holds_set(h, "acme", "case 17", "admin API", &err), 1);
    ck_assert_int_eq(gw_holds_set(h, NULL, "audit", "admin API", &err), 1);
    ck_assert_int_eq(gw_holds_set(h, "acme", "case 17, widened", "admin API", &err), 0);
    ck_assert_uint_eq(gw_holds_count(h), 2);
    gw_holds_free(h);

    /* a restart finds them, in order, the replaced reason kept */
    h = open_holds(j);
    ck_assert_uint_eq(gw_holds_count(h), 2);
    json_t *a = gw_holds_json(h);
    ck_assert_str_eq(jget_str(json_array_get(a, 0), "consumer"), "acme");
    ck_assert_str_eq(jget_str(json_array_get(a, 0), "reason"), "case 17, widened");
    ck_assert(json_is_null(json_object_get(json_array_get(a, 1), "consumer")));
    ck_assert_str_eq(jget_str(json_array_get(a, 1), "by"), "admin API");
    ck_assert_ptr_nonnull(jget_str(json_array_get(a, 1), "since"));
    json_decref(a);

    ck_assert_int_eq(gw_holds_lift(h, "nobody", &err), 0);
    ck_assert_int_eq(gw_holds_lift(h, "acme", &err), 1);
    ck_assert_int_eq(gw_holds_lift(h, "acme", &err), 0);
    ck_assert_uint_eq(gw_holds_count(h), 1);
    ck_assert_int_eq(gw_holds_lift(h, NULL, &err), 1);
    ck_assert_uint_eq(gw_holds_count(h), 0);
    gw_holds_free(h);
    h = open_holds(j);
    ck_assert_uint_eq(gw_holds_count(h), 0);
    gw_holds_free(h);
}
END_TEST

/* A holds file that is not what gw_holds_set writes is refused (the start
 * must not run retention on a hold it cannot read); a save that fails
 * changes nothing. */
START_TEST(bad_file_and_failed_save)
{
    const char *j = tpath("access.jsonl");
    char *err = NULL;
    FILE *f = fopen(tpath(".access.jsonl.holds"), "w");
    fputs("{\"not\":\"an array\"}", f);
    fclose(f);
    ck_assert_ptr_null(gw_holds_open(j, &err));
    ck_assert_ptr_nonnull(strstr(err, "not a JSON array"));
    free(err);
    unlink(tpath(".access.jsonl.holds"));

    gw_holds *h = open_holds(j);
    ck_assert_int_eq(mkdir(tpath(".access.jsonl.holds.tmp"), 0700),
                     0); /* the temporary name is taken */
    ck_assert_int_eq(gw_holds_set(h, "acme", "case", "admin API", &err), -1);
    ck_assert_ptr_nonnull(strstr(err, "cannot save the holds"));
    free(err);
    ck_assert_uint_eq(gw_holds_count(h), 0);
    gw_holds_free(h);
}
END_TEST

static Suite *hold_suite(void)
{
    Suite *s = suite_create("hold");
    TCase *tc = tcase_create("hold");
    tcase_add_checked_fixture(tc, setup_dir, teardown_dir);
    tcase_add_test(tc, set_replace_lift_and_persist);
    tcase_add_test(tc, bad_file_and_failed_save);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(hold_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
