/* Unit tests for gateway/journal/order.c: journal files put in chain order
 * by the seq of their first record, whatever their names. */
#include "journal_fixtures.h"

#include "journal/order.h"

static void write_file(const char *path, const char *content)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(content, f) >= 0, 1);
    fclose(f);
}

/* A chained-looking line (the framing only: order.c reads seq, not hashes). */
static char *rec_line(unsigned seq)
{
    char *l = NULL;
    ck_assert_int_gt(asprintf(&l, "{\"v\":1,\"seq\":%u,\"prev\":\"%s\",\"hash\":\"%s\"}\n", seq,
                              zeros64, zeros64),
                     0);
    return l;
}

/* Names that sort the wrong way (logrotate's .1 is newer than .2, a copy
 * named "a") come out in seq order; files without a chained record keep
 * their relative order at the end. */
START_TEST(order_by_first_seq)
{
    const char *names[] = {"j.log", "j.log.1", "j.log.2", "a-copy", "notes", "empty"};
    unsigned first[] = {301, 201, 101, 1, 0, 0};
    char paths[6][256];
    for (int i = 0; i < 6; i++) {
        snprintf(paths[i], sizeof(paths[i]), "%s", tpath(names[i]));
        if (first[i] > 0) {
            char *a = rec_line(first[i]), *b = rec_line(first[i] + 1);
            char *both = NULL;
            ck_assert_int_gt(asprintf(&both, "%s%s", a, b), 0);
            write_file(paths[i], both);
            free(a), free(b), free(both);
        } else {
            write_file(paths[i], i == 4 ? "not a record\n" : "");
        }
    }
    const char *files[] = {paths[0], paths[4], paths[1], paths[5], paths[2], paths[3]};
    gw_journal_order_by_first_seq(files, 6);
    ck_assert_str_eq(files[0], paths[3]); /* seq 1 */
    ck_assert_str_eq(files[1], paths[2]); /* 101 */
    ck_assert_str_eq(files[2], paths[1]); /* 201 */
    ck_assert_str_eq(files[3], paths[0]); /* 301 */
    ck_assert_str_eq(files[4], paths[4]); /* no record: given order kept */
    ck_assert_str_eq(files[5], paths[5]);
}
END_TEST

/* The first chained record counts even after foreign lines (up to 16), a
 * record past the 16th line does not, and a missing file has none. */
START_TEST(first_seq_reads_past_foreign_lines)
{
    uint64_t seq = 0;
    char *l = rec_line(77);
    char *content = NULL;
    ck_assert_int_gt(asprintf(&content, "junk\n{\"no\":\"chain\"}\n%s", l), 0);
    write_file(tpath("f"), content);
    ck_assert_int_eq(gw_journal_first_seq(tpath("f"), 16, &seq), 1);
    ck_assert_uint_eq(seq, 77);
    ck_assert_int_eq(gw_journal_first_seq(tpath("f"), 2, &seq), 0);
    ck_assert_int_eq(gw_journal_first_seq(tpath("missing"), 16, &seq), 0);
    free(l);
    free(content);
}
END_TEST

/* Copies of one file (equal first seq) keep their given order; a journal
 * the writer produced, rotated by size, comes out in chain order even when
 * given backwards. */
START_TEST(order_writer_files_and_copies)
{
    gw_journal *j =
        open_chain((gw_journal_opts){.path = tpath("w.log"), .rotate_bytes = 400, .queue_cap = 8});
    for (int i = 0; i < 12; i++) {
        submit_rec(j, i);
        wait_idle(j);
    }
    gw_journal_close(j);
    size_t n = 0;
    char **listed = list_ok(tpath("w.log"), &n);
    ck_assert_uint_ge(n, 3);
    const char **files = calloc(n, sizeof(*files));
    for (size_t i = 0; i < n; i++)
        files[i] = listed[n - 1 - i];
    gw_journal_order_by_first_seq(files, n);
    uint64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t s = 0;
        ck_assert_int_eq(gw_journal_first_seq(files[i], 16, &s), 1);
        ck_assert_uint_gt(s, prev);
        prev = s;
    }
    ck_assert_str_eq(files[n - 1], tpath("w.log"));
    free(files);
    gw_journal_free_files(listed, n);

    char *l = rec_line(5);
    write_file(tpath("c1"), l);
    write_file(tpath("c2"), l);
    const char *copies[] = {tpath("c2"), tpath("c1")};
    const char *c2 = copies[0], *c1 = copies[1];
    gw_journal_order_by_first_seq(copies, 2);
    ck_assert_ptr_eq(copies[0], c2);
    ck_assert_ptr_eq(copies[1], c1);
    free(l);
}
END_TEST

static Suite *order_suite(void)
{
    Suite *s = suite_create("order");
    TCase *tc = tcase_create("order");
    tcase_add_checked_fixture(tc, setup_dir, teardown_dir);
    tcase_add_test(tc, order_by_first_seq);
    tcase_add_test(tc, first_seq_reads_past_foreign_lines);
    tcase_add_test(tc, order_writer_files_and_copies);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(order_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
