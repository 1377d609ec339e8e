/* Unit tests for gateway/lib/file.c: a file read whole within a cap, the
 * errno values the callers word ("cannot read: ..."), and the two flags
 * (a FIFO never hangs a non-blocking read; GW_FILE_REGULAR refuses it). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/file.h"

#include "../common.h"

#define BOTH (GW_FILE_NONBLOCK | GW_FILE_REGULAR)

static char dir[PATH_MAX];

static void setup(void)
{
    gw_test_mkdtemp(dir, "file");
}

static void teardown(void)
{
    gw_test_rmtree(dir);
}

START_TEST(reads_whole_file)
{
    char *p = gw_test_path(dir, "a.json");
    gw_test_write(p, "{\"a\": 1}\n");
    for (unsigned flags = 0; flags <= BOTH; flags++) {
        char *out = NULL;
        size_t len = 0;
        ck_assert_int_eq(gw_file_read(p, 1024, flags, &out, &len), 0);
        ck_assert_uint_eq(len, 9);
        ck_assert_str_eq(out, "{\"a\": 1}\n"); /* NUL-terminated */
        free(out);
    }
    free(p);
}
END_TEST

START_TEST(empty_file_is_empty_string)
{
    char *p = gw_test_path(dir, "empty");
    gw_test_write(p, "");
    char *out = NULL;
    size_t len = 7;
    ck_assert_int_eq(gw_file_read(p, 1024, BOTH, &out, &len), 0);
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(len, 0);
    ck_assert_str_eq(out, "");
    free(out);
    free(p);
}
END_TEST

/* The cap is inclusive, and larger than the 8 KiB read chunk here. */
START_TEST(cap_inclusive)
{
    size_t cap = 20000;
    char *text = malloc(cap + 2);
    ck_assert_ptr_nonnull(text);
    memset(text, 'x', cap + 1);
    text[cap] = '\0';
    char *p = gw_test_path(dir, "big");
    gw_test_write(p, text);
    char *out = NULL;
    size_t len = 0;
    ck_assert_int_eq(gw_file_read(p, cap, 0, &out, &len), 0);
    ck_assert_uint_eq(len, cap);
    free(out);
    out = NULL;
    ck_assert_int_eq(gw_file_read(p, cap - 1, 0, &out, &len), EFBIG);
    ck_assert_int_eq(gw_file_read(p, cap - 1, BOTH, &out, &len), EFBIG);
    ck_assert_ptr_null(out);
    free(text);
    free(p);
}
END_TEST

START_TEST(errors)
{
    char *out = NULL;
    size_t len = 0;
    char *missing = gw_test_path(dir, "missing");
    for (unsigned flags = 0; flags <= BOTH; flags++) {
        ck_assert_int_eq(gw_file_read(missing, 1024, flags, &out, &len), ENOENT);
        ck_assert_int_eq(gw_file_read(dir, 1024, flags, &out, &len), EISDIR);
    }
    char *file = gw_test_path(dir, "f");
    gw_test_write(file, "x");
    char *under = gw_test_path(dir, "f/x");
    ck_assert_int_eq(gw_file_read(under, 1024, 0, &out, &len), ENOTDIR);
    ck_assert_ptr_null(out);
    free(missing);
    free(file);
    free(under);
}
END_TEST

/* A FIFO with no writer: refused by GW_FILE_REGULAR, read as empty (not
 * waited on) by GW_FILE_NONBLOCK alone. */
START_TEST(fifo)
{
    char *p = gw_test_path(dir, "fifo");
    ck_assert_int_eq(mkfifo(p, 0600), 0);
    char *out = NULL;
    size_t len = 9;
    ck_assert_int_eq(gw_file_read(p, 1024, BOTH, &out, &len), EINVAL);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(gw_file_read(p, 1024, GW_FILE_NONBLOCK, &out, &len), 0);
    ck_assert_str_eq(out, "");
    ck_assert_uint_eq(len, 0);
    free(out);
    free(p);
}
END_TEST

/* Without GW_FILE_REGULAR a pipe is read to its end (-c /dev/stdin), and
 * the cap holds on the bytes read, there being no size to check first. */
START_TEST(pipe_read_to_end)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    ck_assert_int_eq(write(fds[1], "hello pipe", 10), 10);
    close(fds[1]);
    char p[64];
    snprintf(p, sizeof(p), "/dev/fd/%d", fds[0]);
    char *out = NULL;
    size_t len = 0;
    ck_assert_int_eq(gw_file_read(p, 1024, GW_FILE_REGULAR, &out, &len), EINVAL);
    ck_assert_int_eq(gw_file_read(p, 1024, 0, &out, &len), 0);
    ck_assert_str_eq(out, "hello pipe");
    ck_assert_uint_eq(len, 10);
    free(out);
    close(fds[0]);

    ck_assert_int_eq(pipe(fds), 0);
    ck_assert_int_eq(write(fds[1], "0123456789", 10), 10);
    close(fds[1]);
    snprintf(p, sizeof(p), "/dev/fd/%d", fds[0]);
    out = NULL;
    ck_assert_int_eq(gw_file_read(p, 9, 0, &out, &len), EFBIG);
    ck_assert_ptr_null(out);
    close(fds[0]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("file");
    TCase *tc = tcase_create("file");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, reads_whole_file);
    tcase_add_test(tc, empty_file_is_empty_string);
    tcase_add_test(tc, cap_inclusive);
    tcase_add_test(tc, errors);
    tcase_add_test(tc, fifo);
    tcase_add_test(tc, pipe_read_to_end);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
