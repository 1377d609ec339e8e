/* Unit tests for gateway/admin/operators.c: the operators of admin.token_file
 * and admin.operators, their tokens (read, unique) and the lookup by
 * Authorization header. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <unistd.h>

#include "../common.h"
#include "admin/operators.h"

static char dir[PATH_MAX];

static char *put(const char *name, const char *content)
{
    char *p = malloc(PATH_MAX + 64);
    snprintf(p, PATH_MAX + 64, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(content, f);
    fclose(f);
    return p;
}

static void setup(void)
{
    gw_test_mkdtemp(dir, "ops");
}

static void teardown(void)
{
    gw_test_rmtree(dir);
}

START_TEST(t_load_and_lookup)
{
    char *admin = put("admin.token", "admin-secret\n");
    char *lea = put("lea.token", "lea-secret \r\n");
    char *marc = put("marc.token", "marc-secret");
    gw_conf_operator ops[] = {{"lea.read", lea, GW_ROLE_READ}, {"marc", marc, GW_ROLE_OPERATOR}};
    gw_conf_admin a = {.token_file = admin, .operators = ops, .noperators = 2};
    gw_admin_operators o;
    char *err = NULL;
    ck_assert_int_eq(gw_admin_operators_load(&o, &a, &err), 0);
    ck_assert_uint_eq(o.n, 3);
    ck_assert_str_eq(o.ops[0].name, "admin");
    ck_assert_int_eq(o.ops[0].role, GW_ROLE_OPERATOR);
    const gw_admin_operator *op = gw_admin_operator_by_auth(&o, "Bearer lea-secret");
    ck_assert_ptr_nonnull(op);
    ck_assert_str_eq(op->name, "lea.read");
    ck_assert_str_eq(gw_admin_role_name(op->role), "read");
    op = gw_admin_operator_by_auth(&o, "Bearer marc-secret");
    ck_assert_str_eq(op->name, "marc");
    ck_assert_str_eq(gw_admin_role_name(op->role), "operator");
    ck_assert_str_eq(gw_admin_operator_by_auth(&o, "Bearer admin-secret")->name, "admin");
    ck_assert_ptr_null(gw_admin_operator_by_auth(&o, "Bearer lea-secre"));
    ck_assert_ptr_null(gw_admin_operator_by_auth(&o, "Bearer lea-secret "));
    ck_assert_ptr_null(gw_admin_operator_by_auth(&o, "lea-secret"));
    ck_assert_ptr_null(gw_admin_operator_by_auth(&o, NULL));
    gw_admin_operators_clear(&o);
    ck_assert_uint_eq(o.n, 0);
    /* operators only, no admin.token_file */
    a.token_file = NULL;
    ck_assert_int_eq(gw_admin_operators_load(&o, &a, &err), 0);
    ck_assert_uint_eq(o.n, 2);
    ck_assert_ptr_null(gw_admin_operator_by_auth(&o, "Bearer admin-secret"));
    gw_admin_operators_clear(&o);
    free(admin);
    free(lea);
    free(marc);
}
END_TEST

START_TEST(t_errors)
{
    char *admin = put("admin.token", "same\n");
    char *lea = put("lea.token", "same");
    char *missing = strdup("/nonexistent/opale-token");
    gw_conf_operator ops[] = {{"lea", lea, GW_ROLE_READ}};
    gw_conf_admin a = {.token_file = admin, .operators = ops, .noperators = 1};
    gw_admin_operators o;
    char *err = NULL;
    ck_assert_int_eq(gw_admin_operators_load(&o, &a, &err), -1);
    ck_assert_str_eq(err, "admin.operators[0].token_file: the same token as operator \"admin\"");
    ck_assert_ptr_null(o.ops);
    free(err);
    err = NULL;
    ops[0].token_file = missing;
    ck_assert_int_eq(gw_admin_operators_load(&o, &a, &err), -1);
    ck_assert_str_eq(err, "admin.operators[0].token_file: cannot read a token from "
                          "/nonexistent/opale-token");
    free(err);
    free(admin);
    free(lea);
    free(missing);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("admin_operators");
    TCase *tc = tcase_create("operators");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, t_load_and_lookup);
    tcase_add_test(tc, t_errors);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
