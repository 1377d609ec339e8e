/* Unit tests for gateway/admin/recette.c: the console's recette report is
 * not made from a journal that cannot be read or verified (the reason is
 * said), and the last answer is kept for its partner for
 * GW_ADMIN_RECETTE_TTL_S seconds. The report itself (a verified journal,
 * checkpoints signed) is checked by tests/integration/test_console_api.py. */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "admin/recette.h"
#include "journal/verify.h"

static const char *markdown(json_t *a)
{
    return json_string_value(json_object_get(a, "markdown"));
}

START_TEST(t_unavailable_and_cached)
{
    gw_admin_recette c;
    memset(&c, 0, sizeof(c));
    json_t *a = gw_admin_recette_json(&c, "/nonexistent/access.jsonl", NULL, "c1", 1000);
    ck_assert(json_is_false(json_object_get(a, "available")));
    ck_assert_str_eq(markdown(a), "The journal cannot be read.");
    /* kept for the same partner within the TTL, made again for another */
    json_t *b = gw_admin_recette_json(&c, "/nonexistent/access.jsonl", NULL, "c1", 1010);
    ck_assert_ptr_eq(a, b);
    json_decref(b);
    b = gw_admin_recette_json(&c, "/nonexistent/access.jsonl", NULL, "c2", 1010);
    ck_assert_ptr_ne(a, b);
    json_decref(b);
    json_decref(a);
    a = gw_admin_recette_json(&c, "/nonexistent/access.jsonl", NULL, "c2",
                              1010 + GW_ADMIN_RECETTE_TTL_S);
    ck_assert_ptr_eq(c.answer, a);
    json_decref(a);
    /* a journal whose checkpoints cannot be verified (no keys): no report */
    char dir[PATH_MAX], path[PATH_MAX + 32];
    gw_test_mkdtemp(dir, "recette");
    snprintf(path, sizeof(path), "%s/access.jsonl", dir);
    FILE *f = fopen(path, "w");
    char canon[256], hash[65];
    int n = snprintf(canon, sizeof(canon), "{\"consumer\":\"c1\",\"seq\":1,\"prev\":\"%s\"",
                     GW_JOURNAL_GENESIS);
    gw_journal_sha256_hex(canon, (size_t)n, hash);
    fprintf(f, "%s,\"hash\":\"%s\"}\n", canon, hash);
    fclose(f);
    a = gw_admin_recette_json(&c, path, NULL, "c1", 5000);
    ck_assert(json_is_false(json_object_get(a, "available")));
    ck_assert_ptr_nonnull(strstr(markdown(a), "No report"));
    json_decref(a);
    gw_admin_recette_clear(&c);
    ck_assert_ptr_null(c.answer);
    gw_test_rmtree(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("admin_recette");
    TCase *tc = tcase_create("recette");
    tcase_add_test(tc, t_unavailable_and_cached);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
