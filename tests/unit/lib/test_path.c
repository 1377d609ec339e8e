/* Unit tests for gateway/lib/path.c: a relative path against a directory,
 * leading "." and ".." applied, the rest kept as written. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "lib/path.h"

#include "../common.h"

static const struct {
    const char *dir, *rel, *want;
} cases[] = {
    {"/etc/gw", "pki/ca.crt", "/etc/gw/pki/ca.crt"},
    {"/etc/gw", "/abs/ca.crt", "/abs/ca.crt"},
    {"/etc/gw", "./pki/ca.crt", "/etc/gw/pki/ca.crt"},
    {"/etc/gw", "../policies", "/etc/policies"},
    {"/etc/gw/deploy/sandbox", "../../policies", "/etc/gw/policies"},
    {"/etc/gw", "./../x", "/etc/x"},
    {"/etc/gw", ".//x", "/etc/gw/x"},
    {"/etc", "../../../x", "/x"},
    {"/", "x", "/x"},
    {"/etc/gw", ".", "/etc/gw"},
    {"/etc/gw", "..", "/etc"},
    /* only leading components are applied: inner ones stay as written */
    {"/etc/gw", "pki/../ca.crt", "/etc/gw/pki/../ca.crt"},
    {"/etc/gw/", "pki", "/etc/gw/pki"},
};

START_TEST(t_resolve)
{
    char *got = gw_path_resolve(cases[_i].dir, cases[_i].rel);
    ck_assert_ptr_nonnull(got);
    ck_assert_msg(strcmp(got, cases[_i].want) == 0, "%s + %s: got %s, want %s", cases[_i].dir,
                  cases[_i].rel, got, cases[_i].want);
    free(got);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("path");
    TCase *tc = tcase_create("path");
    tcase_add_loop_test(tc, t_resolve, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
