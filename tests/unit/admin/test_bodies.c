/* Unit tests for gateway/admin/bodies.c: the JSON answers of the admin
 * listener, from a real policy set (one file rejected) and kill switch:
 * /admin/consumers, and /admin/reload for each outcome (200 with rejected
 * files and changes, 409 when it would empty the set, 422). Each body is
 * compared whole, as it is sent (compact, members in order). */
#include <check.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "admin/bodies.h"
#include "../common.h"

static const char *const scopes[] = {"api_opale_declarations"};
static const gw_policy_rules rules = {scopes, 1};
#define FP2 "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

static char dir[PATH_MAX];
static gw_policy_set *set;
static gw_suspensions *susp;

static char *dump(json_t *o)
{
    ck_assert_ptr_nonnull(o);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    ck_assert_ptr_nonnull(s);
    return s;
}

static void setup(void)
{
    gw_test_mkdtemp(dir, "admin-bodies");
    char *pdir = gw_test_path(dir, "policies");
    gw_test_mkdir(pdir);
    gw_test_policy a = {.id = "H1", .client_id = "acme"};
    char *ta = gw_test_policy_json(&a);
    char *fa = gw_test_path(pdir, "acme.json");
    gw_test_write(fa, ta);
    gw_test_policy b = {.id = "H2",
                        .client_id = "beta",
                        .state = "revoked",
                        .certificates = "{\"sha256\": \"" FP2 "\"}"};
    char *tb = gw_test_policy_json(&b);
    char *fb2 = gw_test_path(pdir, "beta.json");
    gw_test_write(fb2, tb);
    free(tb);
    free(fb2);
    char *fb = gw_test_path(pdir, "broken.json");
    gw_test_write(fb, "{\"habilitation\": 1}\n");
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    set = gw_policy_set_build(pdir, &rules, NULL, &errs);
    ck_assert_ptr_nonnull(set);
    ck_assert_uint_eq(gw_policy_set_count(set), 2);
    ck_assert_uint_eq(gw_policy_set_nrejected(set), 1);
    gw_errlist_clear(&errs);
    char *sp = gw_test_path(dir, "suspended.json");
    char *err = NULL;
    susp = gw_suspensions_open(sp, &err);
    ck_assert_msg(susp != NULL, "%s", err ? err : "");
    ck_assert_int_eq(gw_suspensions_set(susp, "acme", 1, "test", &err), 0);
    free(ta);
    free(fa);
    free(fb);
    free(sp);
    free(pdir);
}

static void teardown(void)
{
    gw_policy_set_unref(set);
    gw_suspensions_free(susp);
    gw_test_rmtree(dir);
}

START_TEST(t_consumers)
{
    char *s = dump(gw_admin_consumers_json(set, susp));
    char *since = strstr(s, "\"since\":\"");
    ck_assert_ptr_nonnull(since);
    memset(since + 9, 'X', 20); /* the time of the suspension */
    ck_assert_str_eq(s, "{\"consumers\":["
                        "{\"client_id\":\"acme\",\"habilitation\":\"H1\",\"environment\":"
                        "\"sandbox\",\"state\":\"active\",\"suspended\":true,\"suspension\":"
                        "{\"since\":\"XXXXXXXXXXXXXXXXXXXX\",\"until\":null,\"reason\":null,"
                        "\"by\":null,\"source\":\"test\"},\"environment_cut\":false,"
                        "\"quota_per_minute\":50},"
                        "{\"client_id\":\"beta\",\"habilitation\":\"H2\",\"environment\":"
                        "\"sandbox\",\"state\":\"revoked\",\"suspended\":false,\"suspension\":"
                        "null,\"environment_cut\":false,\"quota_per_minute\":50}]}");
    free(s);
    /* resumed: no longer suspended; no set: an empty list */
    char *err = NULL;
    ck_assert_int_eq(gw_suspensions_set(susp, "acme", 0, "test", &err), 0);
    s = dump(gw_admin_consumers_json(set, susp));
    ck_assert_ptr_null(strstr(s, "true"));
    free(s);
    s = dump(gw_admin_consumers_json(NULL, susp));
    ck_assert_str_eq(s, "{\"consumers\":[]}");
    free(s);
}
END_TEST

START_TEST(t_rejected)
{
    json_t *r = gw_admin_rejected_json(set);
    ck_assert_int_eq(json_array_size(r), 1);
    json_t *e = json_array_get(r, 0);
    ck_assert_uint_eq(json_object_size(e), 3);
    char *file = gw_test_path(dir, "policies/broken.json");
    ck_assert_str_eq(json_string_value(json_object_get(e, "file")), file);
    /* the error is located: "FILE: json.path: message" */
    const char *msg = json_string_value(json_object_get(e, "error"));
    ck_assert_ptr_nonnull(msg);
    ck_assert_msg(strncmp(msg, file, strlen(file)) == 0 && msg[strlen(file)] == ':', "%s", msg);
    ck_assert(json_is_false(json_object_get(e, "kept_previous")));
    free(file);
    json_decref(r);
}
END_TEST

START_TEST(t_reload_ok)
{
    gw_policy_diff d = {.before = 1, .after = 2, .added = 1, .changed = 0, .removed = 0};
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    gw_errlist_add(&errs, "%s", "p/broken.json: habilitation: must be an object");
    ck_assert_int_eq(gw_admin_reload_status(0), 200);
    json_t *o = gw_admin_reload_json(0, set, &d, &errs);
    ck_assert(json_is_true(json_object_get(o, "reloaded")));
    ck_assert_int_eq(json_integer_value(json_object_get(o, "habilitations")), 2);
    ck_assert_int_eq(json_array_size(json_object_get(o, "rejected")), 1);
    json_object_del(o, "rejected"); /* its text holds the temporary path */
    char *s = dump(o);
    ck_assert_str_eq(s, "{\"reloaded\":true,\"habilitations\":2,"
                        "\"errors\":[\"p/broken.json: habilitation: must be an object\"],"
                        "\"changes\":{\"before\":1,\"after\":2,\"added\":1,\"changed\":0,"
                        "\"removed\":0}}");
    free(s);
    gw_errlist_clear(&errs);
}
END_TEST

START_TEST(t_reload_refused)
{
    gw_policy_diff d = {.before = 4, .after = 0, .added = 0, .changed = 0, .removed = 4};
    ck_assert_int_eq(gw_admin_reload_status(-2), 409);
    char *s = dump(gw_admin_reload_json(-2, NULL, &d, NULL));
    ck_assert_str_eq(s, "{\"reloaded\":false,\"refused\":\"empties\",\"message\":\"the reload "
                        "would remove 4 of 4 partners (0 left): refused, the current policies "
                        "stay; POST /admin/reload?force=1 to apply it\",\"habilitations\":4,"
                        "\"changes\":{\"before\":4,\"after\":0,\"added\":0,\"changed\":0,"
                        "\"removed\":4},\"errors\":[]}");
    free(s);
    char msg[256];
    gw_admin_reload_refused_message(&d, msg, sizeof(msg));
    ck_assert_ptr_nonnull(strstr(msg, "remove 4 of 4 partners (0 left)"));
    /* the directory could not be read */
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    gw_errlist_add(&errs, "%s", "/etc/p: cannot read directory: Permission denied");
    ck_assert_int_eq(gw_admin_reload_status(-1), 422);
    s = dump(gw_admin_reload_json(-1, NULL, &d, &errs));
    ck_assert_str_eq(s, "{\"reloaded\":false,"
                        "\"errors\":[\"/etc/p: cannot read directory: Permission denied\"]}");
    free(s);
    gw_errlist_clear(&errs);
}
END_TEST

/* The suspend/resume/cut body: reason required, until optional, checked. */
START_TEST(t_reason_body)
{
    char reason[GW_SUSPEND_REASON_MAX + 1], msg[256], big[600];
    time_t until = -1, now = 1700000000; /* 2023-11-14T22:13:20Z */
    const char *ok = "{\"reason\":\"INC-1\",\"until\":\"2023-11-15T00:13:21+02:00\"}";
    ck_assert_int_eq(gw_admin_reason_body(ok, strlen(ok), 1, now, reason, &until, msg, sizeof(msg)),
                     0);
    ck_assert_str_eq(reason, "INC-1");
    ck_assert_int_eq((long)until, (long)(now + 1)); /* +02:00 taken off */
    (void)until;
    const char *later = "{\"reason\":\"INC-1\",\"until\":\"2023-11-14T22:13:22Z\"}";
    ck_assert_int_eq(
        gw_admin_reason_body(later, strlen(later), 1, now, reason, &until, msg, sizeof(msg)), 0);
    ck_assert_int_eq((long)until, (long)(now + 2));
    const char *plain = "{\"reason\":\"r\"}";
    ck_assert_int_eq(
        gw_admin_reason_body(plain, strlen(plain), 0, now, reason, &until, msg, sizeof(msg)), 0);
    ck_assert_int_eq((long)until, 0);
    memset(big, 'a', 520);
    big[520] = '\0';
    char bigbody[700];
    snprintf(bigbody, sizeof(bigbody), "{\"reason\":\"%s\"}", big);
    static const struct {
        const char *body;
        int allow_until;
        const char *msg;
    } bad[] = {
        {"", 1, "is required"},
        {"[]", 1, "is required"},
        {"{\"reason\":\"a\",\"reason\":\"b\"}", 1, "is required"}, /* duplicate */
        {"{}", 1, "reason: required"},
        {"{\"reason\":\"\"}", 1, "reason: required"},
        {"{\"reason\":\"a\\nb\"}", 1, "reason: required"},
        {"{\"reason\":7}", 1, "reason: required"},
        {"{\"reason\":\"a\",\"x\":1}", 1, "x: unknown member"},
        {"{\"reason\":\"a\",\"until\":\"2099-01-01T00:00:00Z\"}", 0, "until: unknown member"},
        {"{\"reason\":\"a\",\"until\":\"2023-11-14\"}", 1, "until: must be an RFC 3339"},
        {"{\"reason\":\"a\",\"until\":\"2023-11-14T22:13:20+25:00\"}", 1, "until: must be an RFC"},
        {"{\"reason\":\"a\",\"until\":\"2023-11-14T22:13:20Z\"}", 1,
         "until: must be in the future"},
        {"{\"reason\":\"a\",\"until\":\"2024-11-15T22:13:21Z\"}", 1, "until: at most 366 days"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        msg[0] = '\0';
        ck_assert_msg(gw_admin_reason_body(bad[i].body, strlen(bad[i].body), bad[i].allow_until,
                                           now, reason, &until, msg, sizeof(msg)) == -1,
                      "accepted: %s", bad[i].body);
        ck_assert_msg(strstr(msg, bad[i].msg) != NULL, "%s: %s", bad[i].body, msg);
    }
    ck_assert_int_eq(
        gw_admin_reason_body(bigbody, strlen(bigbody), 1, now, reason, &until, msg, sizeof(msg)),
        -1);
    /* exactly 366 days ahead is allowed */
    const char *edge = "{\"reason\":\"a\",\"until\":\"2024-11-14T22:13:20Z\"}";
    ck_assert_int_eq(
        gw_admin_reason_body(edge, strlen(edge), 1, now, reason, &until, msg, sizeof(msg)), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("admin_bodies");
    TCase *tc = tcase_create("bodies");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, t_consumers);
    tcase_add_test(tc, t_rejected);
    tcase_add_test(tc, t_reload_ok);
    tcase_add_test(tc, t_reload_refused);
    tcase_add_test(tc, t_reason_body);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
