/* Unit tests for gateway/lib/errors.c: the one table of refusals. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/errors.h"
#include "lib/util.h"

START_TEST(table_complete_and_unique)
{
    for (int i = 1; i < GW_ERR__COUNT; i++) {
        const gw_err_def *d = gw_err((gw_err_id)i);
        ck_assert_int_eq(d->id, i);
        ck_assert_uint_eq(strlen(d->code), 6);
        ck_assert(d->status >= 400 && d->status <= 599);
        ck_assert(strlen(d->message) > 0);
        ck_assert_ptr_nonnull(strchr(d->reason, '.'));
        for (int j = 1; j < i; j++) {
            ck_assert_str_ne(d->code, gw_err((gw_err_id)j)->code);
            ck_assert_str_ne(d->reason, gw_err((gw_err_id)j)->reason);
        }
    }
}
END_TEST

START_TEST(dgfip_codes)
{
    ck_assert_str_eq(gw_err(GW_ERR_CORRELATION_MISSING)->code, "910000");
    ck_assert_int_eq(gw_err(GW_ERR_CORRELATION_MISSING)->status, 400);
    ck_assert_str_eq(gw_err(GW_ERR_TOKEN_INVALID)->code, "900901");
    ck_assert_int_eq(gw_err(GW_ERR_TOKEN_INVALID)->status, 401);
    ck_assert_str_eq(gw_err(GW_ERR_TOKEN_MISSING)->code, "900902");
    ck_assert_str_eq(gw_err(GW_ERR_SCOPE)->code, "900910");
    ck_assert_int_eq(gw_err(GW_ERR_SCOPE)->status, 403);
    ck_assert_str_eq(gw_err(GW_ERR_THROTTLED)->code, "900804");
    ck_assert_int_eq(gw_err(GW_ERR_THROTTLED)->status, 429);
    /* out of range falls back to the internal error, never NULL */
    ck_assert_int_eq(gw_err((gw_err_id)9999)->status, 500);
}
END_TEST

START_TEST(body_shape)
{
    size_t len = 0;
    char *s = gw_err_body(GW_ERR_UPSTREAM_TIMEOUT, &len);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(strlen(s), len);
    json_error_t e;
    json_t *o = json_loads(s, 0, &e);
    ck_assert_ptr_nonnull(o);
    ck_assert_uint_eq(json_object_size(o), 1);
    json_t *err = json_object_get(o, "erreur");
    ck_assert_uint_eq(json_object_size(err), 3);
    ck_assert_str_eq(json_string_value(json_object_get(err, "code")), "910514");
    ck_assert_str_eq(json_string_value(json_object_get(err, "message")),
                     gw_err(GW_ERR_UPSTREAM_TIMEOUT)->message);
    const char *ts = json_string_value(json_object_get(err, "horodatage"));
    ck_assert_uint_eq(strlen(ts), 20);
    ck_assert_int_eq(ts[10], 'T');
    ck_assert_int_eq(ts[19], 'Z');
    json_decref(o);
    free(s);
}
END_TEST

START_TEST(uuid_and_buf)
{
    char a[37], b[37];
    gw_uuid4(a);
    gw_uuid4(b);
    ck_assert(gw_is_uuid(a, 36));
    ck_assert_str_ne(a, b);
    ck_assert_int_eq(a[14], '4');
    ck_assert(strchr("89ab", a[19]) != NULL);
    ck_assert(!gw_is_uuid("3f1c2a4e-1b2c-4d5e-8f90-123456789ab", 35));
    ck_assert(!gw_is_uuid("3f1c2a4e-1b2c-4d5e-8f90-123456789abg", 36));
    ck_assert(!gw_is_uuid("3f1c2a4e11b2c-4d5e-8f90-123456789abc", 36));
    gw_buf buf = {0};
    for (int i = 0; i < 1000; i++)
        gw_buf_printf(&buf, "%d,", i);
    size_t n = 0;
    char *s = gw_buf_take(&buf, &n);
    ck_assert_uint_eq(strlen(s), n);
    ck_assert(strncmp(s, "0,1,2,", 6) == 0);
    ck_assert(strcmp(s + n - 4, "999,") == 0);
    ck_assert_ptr_null(buf.data);
    free(s);
}
END_TEST

/* Reads <path> whole (NUL-terminated); NULL when it cannot be read. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, cap + 1);
            ck_assert_ptr_nonnull(nb);
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        if (n == 0)
            break;
        len += n;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* docs/errors.md documents every row of the table: a Markdown table line
 * "| CODE | STATUS | MESSAGE | ... `REASON` ..." with the exact message and
 * status (499, journal only, is written as such). The doc cannot drift from
 * the program: a code added to errors.c without its row fails here. */
START_TEST(every_code_documented)
{
    const char *src = getenv("SRCDIR");
    ck_assert_msg(src != NULL, "SRCDIR is not set (ctest sets it)");
    char path[4096];
    snprintf(path, sizeof path, "%s/docs/errors.md", src);
    char *doc = slurp(path);
    ck_assert_msg(doc != NULL, "cannot read %s", path);
    for (int i = 1; i < GW_ERR__COUNT; i++) {
        const gw_err_def *d = gw_err((gw_err_id)i);
        char head[96];
        snprintf(head, sizeof head, "\n| %s | %d | ", d->code, d->status);
        const char *row = strstr(doc, head);
        ck_assert_msg(row != NULL, "docs/errors.md: no row \"| %s | %d | ...\" for %s", d->code,
                      d->status, d->reason);
        const char *eol = strchr(row + 1, '\n');
        size_t rowlen = eol ? (size_t)(eol - row) : strlen(row);
        char *line = strndup(row + 1, rowlen - 1);
        ck_assert_ptr_nonnull(line);
        const char *msg = line + strlen(head) - 1;
        ck_assert_msg(strncmp(msg, d->message, strlen(d->message)) == 0 &&
                          strncmp(msg + strlen(d->message), " |", 2) == 0,
                      "docs/errors.md: row %s: message differs from errors.c (\"%s\")", d->code,
                      d->message);
        char reason[96];
        snprintf(reason, sizeof reason, "`%s`", d->reason);
        ck_assert_msg(strstr(line, reason) != NULL,
                      "docs/errors.md: row %s does not name the journal reason %s", d->code,
                      reason);
        free(line);
        /* one row per code */
        ck_assert_msg(strstr(row + 1, head) == NULL, "docs/errors.md: two rows for %s", d->code);
    }
    free(doc);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("errors");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, table_complete_and_unique);
    tcase_add_test(tc, dgfip_codes);
    tcase_add_test(tc, body_shape);
    tcase_add_test(tc, uuid_and_buf);
    tcase_add_test(tc, every_code_documented);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
