/* Unit tests for gateway/policy/values.c: calendar dates, e-mail addresses
 * and client_ids. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "policy/values.h"

#include "../common.h"

static const struct {
    const char *s;
    int r, ymd;
} dates[] = {
    {"2025-01-01", 0, 20250101}, {"2024-02-29", 0, 20240229}, {"2000-02-29", 0, 20000229},
    {"1900-02-29", -2, 0},       {"2025-02-29", -2, 0},       {"2025-04-31", -2, 0},
    {"2025-00-10", -2, 0},       {"2025-12-32", -2, 0},       {"0000-01-01", -2, 0},
    {"2025-1-01", -1, 0},        {"2025/01/01", -1, 0},       {"2025-01-01T", -1, 0},
    {"20250101", -1, 0},         {"2025-0a-01", -1, 0},       {"", -1, 0},
};

START_TEST(t_dates)
{
    int ymd = 0;
    ck_assert_int_eq(gw_date_parse(dates[_i].s, &ymd), dates[_i].r);
    if (dates[_i].r == 0)
        ck_assert_int_eq(ymd, dates[_i].ymd);
}
END_TEST

static const struct {
    const char *s;
    int ok;
} emails[] = {
    {"tech@exemple.fr", 1},
    {"Jean.Dupont+opale@mairie-exemple.gouv.fr", 1},
    {"a@b.co", 1},
    {"tech@exemple", 0},
    {"@exemple.fr", 0},
    {"tech@", 0},
    {"tech@@exemple.fr", 0},
    {"te ch@exemple.fr", 0},
    {"tech@exemple..fr", 0},
    {"tech@-exemple.fr", 0},
    {"tech@exemple-.fr", 0},
    {"tech@exem_ple.fr", 0},
    {"te<ch>@exemple.fr", 0},
    {"tech@exemple.fr.", 0},
    {"", 0},
    {"x@y.z\n", 0},
};

START_TEST(t_email)
{
    ck_assert_msg(gw_email_valid(emails[_i].s) == emails[_i].ok, "\"%s\"", emails[_i].s);
}
END_TEST

static const struct {
    const char *s;
    int ok;
} client_ids[] = {
    {"abc", 1},  {"commune-exemple_sandbox.v2", 1},
    {"ab", 0},   {"a b", 0},
    {"abc/", 0}, {"abc\xc3\xa9", 0},
    {"", 0},
};

START_TEST(t_client_ids)
{
    ck_assert_msg(gw_client_id_valid(client_ids[_i].s) == client_ids[_i].ok, "\"%s\"",
                  client_ids[_i].s);
}
END_TEST

START_TEST(t_client_id_length)
{
    char s[130];
    memset(s, 'a', 128);
    s[128] = '\0';
    ck_assert_int_eq(gw_client_id_valid(s), 1);
    s[128] = 'a';
    s[129] = '\0';
    ck_assert_int_eq(gw_client_id_valid(s), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("values");
    TCase *tc = tcase_create("values");
    tcase_add_loop_test(tc, t_dates, 0, (int)(sizeof(dates) / sizeof(dates[0])));
    tcase_add_loop_test(tc, t_email, 0, (int)(sizeof(emails) / sizeof(emails[0])));
    tcase_add_loop_test(tc, t_client_ids, 0, (int)(sizeof(client_ids) / sizeof(client_ids[0])));
    tcase_add_test(tc, t_client_id_length);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
