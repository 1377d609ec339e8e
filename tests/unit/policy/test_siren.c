/* Unit tests for gateway/policy/siren.c: SIRET (Luhn, La Poste's digit
 * sum, SIREN 000000000, length) with its messages, and SIREN. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "policy/siren.h"

#include "../common.h"

static const struct {
    const char *s;
    const char *want;
} sirets[] = {
    {"21990000800018", NULL},
    {"21920023500014", NULL},
    {"77990000000018", NULL},
    {"35600000000010", NULL}, /* La Poste: digit sum 15, Luhn would refuse it */
    {"35600000000048", "invalid SIRET (La Poste: digit sum not a multiple of 5)"},
    {"21990000800019", "invalid SIRET (Luhn checksum)"},
    {"00000000000000", "invalid SIRET (SIREN 000000000)"},
    {"2199000080001", "must be 14 digits"},
    {"219900008000180", "must be 14 digits"},
    {"2199000080001 ", "must be 14 digits"},
    {"", "must be 14 digits"},
};

START_TEST(t_sirets)
{
    const char *got = gw_siret_check(sirets[_i].s);
    if (sirets[_i].want == NULL)
        ck_assert_msg(got == NULL, "%s: %s", sirets[_i].s, got);
    else
        ck_assert_msg(got != NULL && strcmp(got, sirets[_i].want) == 0, "%s: %s", sirets[_i].s,
                      got != NULL ? got : "(valid)");
}
END_TEST

START_TEST(t_sirens)
{
    ck_assert_int_eq(gw_siren_valid("732829320", 9), 1);
    ck_assert_int_eq(gw_siren_valid("404833048", 9), 1);
    ck_assert_int_eq(gw_siren_valid("356000000", 9), 1);
    ck_assert_int_eq(gw_siren_valid("404833047", 9), 0);
    ck_assert_int_eq(gw_siren_valid("000000000", 9), 0);
    ck_assert_int_eq(gw_siren_valid("73282932", 8), 0);
    ck_assert_int_eq(gw_siren_valid("7328293200", 10), 0);
    ck_assert_int_eq(gw_siren_valid("73282932a", 9), 0);
    ck_assert_int_eq(gw_siren_valid("7328293201", 9), 1); /* only <len> bytes count */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("siren");
    TCase *tc = tcase_create("siren");
    tcase_add_loop_test(tc, t_sirets, 0, (int)(sizeof(sirets) / sizeof(sirets[0])));
    tcase_add_test(tc, t_sirens);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
