/* Unit tests for gateway/stages/rights.c (scope, year, SIREN) and
 * gateway/stages/habilitation.c (through the guarded list). */
#include "fixture.h"

START_TEST(siren_table)
{
    ck_assert(gw_siren_valid("732829320", 9));
    ck_assert(gw_siren_valid("404833048", 9));
    ck_assert(gw_siren_valid("356000000", 9));
    ck_assert(!gw_siren_valid("404833047", 9));
    ck_assert(!gw_siren_valid("000000000", 9));
    ck_assert(!gw_siren_valid("73282932", 8));
    ck_assert(!gw_siren_valid("73282932 ", 9));
    ck_assert(!gw_siren_valid("-73282932", 9));
}
END_TEST

/* The rights stage's result: the values it checked, nothing for a public
 * route; its refusals come after the habilitation's. */
START_TEST(rights_results)
{
    outcome o = run(REQ(DECL, ""), FP_A, "127.0.0.1", GW_ENV_SANDBOX, NULL, 0);
    ck_assert_int_eq(o.v, GW_STAGE_NEXT);
    ck_assert_str_eq(o.siren, "732829320");
    ck_assert_str_eq(o.annee, "2021");
    o = run(ETAT "\r\n", FP_A, "127.0.0.1", GW_ENV_SANDBOX, NULL, 0);
    ck_assert_int_eq(o.v, GW_STAGE_NEXT);
    ck_assert_str_eq(o.siren, "");
    ck_assert_str_eq(o.annee, "");
    /* a suspended habilitation asking for a year it lacks: the habilitation
     * stage refuses first */
    o = run(REQ("/opale/v1/entreprises/732829320/declarations?annee=2024", ""), FP_C, "127.0.0.1",
            GW_ENV_SANDBOX, NULL, 0);
    ck_assert_int_eq(o.err, GW_ERR_HAB_SUSPENDED);
    o = run(REQ("/opale/v1/entreprises/732829320/declarations?annee=2024", ""), FP_A, "127.0.0.1",
            GW_ENV_SANDBOX, NULL, 0);
    ck_assert_int_eq(o.err, GW_ERR_YEAR_NOT_GRANTED);
    ck_assert_str_eq(o.annee, "2024"); /* checked, then refused */
}
END_TEST

static void add(TCase *tc)
{
    tcase_add_test(tc, siren_table);
    tcase_add_test(tc, rights_results);
}

int main(void)
{
    return run_suite("rights", add);
}
