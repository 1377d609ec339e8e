/* Unit tests for gateway/lib/hash.c: FNV-1a 64 against the published
 * reference values, and the three entry points agreeing. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "lib/hash.h"

/* Reference values of FNV-1a 64 (the FNV authors' test vectors). */
static const struct {
    const char *in;
    unsigned long long want;
} vec[] = {
    {"", 0xcbf29ce484222325ULL},
    {"a", 0xaf63dc4c8601ec8cULL},
    {"foobar", 0x85944171f73967e8ULL},
};

START_TEST(t_reference)
{
    const char *in = vec[_i].in;
    ck_assert_uint_eq(gw_fnv1a64_str(in), vec[_i].want);
    ck_assert_uint_eq(gw_fnv1a64(in, strlen(in)), vec[_i].want);
}
END_TEST

START_TEST(t_incremental)
{
    uint64_t h = gw_fnv1a64_add(GW_FNV1A64_INIT, "foo", 3);
    h = gw_fnv1a64_add(h, "bar", 3);
    ck_assert_uint_eq(h, gw_fnv1a64_str("foobar"));
    /* bytes past a NUL count with the length-taking form */
    ck_assert_uint_ne(gw_fnv1a64("a\0b", 3), gw_fnv1a64_str("a"));
    ck_assert_uint_eq(GW_FNV1A64_INIT, gw_fnv1a64("", 0));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hash");
    TCase *tc = tcase_create("fnv1a64");
    tcase_add_loop_test(tc, t_reference, 0, (int)(sizeof(vec) / sizeof(vec[0])));
    tcase_add_test(tc, t_incremental);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
