/* Unit tests for gateway/lib/jsonv.c: the error list, the cleaning of
 * untrusted text, path building, the unknown-key check and every typed
 * getter, each with the exact message it must produce. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "lib/jsonv.h"

#include "../common.h"

static gw_errlist errs;
static gw_jsonv v;

static void setup(void)
{
    memset(&errs, 0, sizeof(errs));
    v = gw_jsonv_init("f.json", &errs);
}

static void teardown(void)
{
    gw_errlist_clear(&errs);
}

static json_t *obj(const char *text)
{
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    ck_assert_msg(o != NULL, "fixture: %s", je.text);
    return o;
}

/* The only message reported is <want>. */
static void one(const char *want)
{
    ck_assert_uint_eq(errs.n, 1);
    ck_assert_uint_eq(v.nerrs, 1);
    ck_assert_str_eq(errs.msgs[0], want);
}

START_TEST(t_errlist_caps_and_counts)
{
    for (int i = 0; i < GW_ERRLIST_MAX + 5; i++)
        gw_jsonv_err(&v, "$", "e%d", i);
    ck_assert_uint_eq(errs.n, GW_ERRLIST_MAX);
    ck_assert_uint_eq(errs.dropped, 5);
    ck_assert_uint_eq(v.nerrs, GW_ERRLIST_MAX + 5);
    ck_assert_str_eq(errs.msgs[0], "f.json: $: e0");
    gw_errlist_add(NULL, "ignored"); /* no list: nothing happens */
    gw_errlist_clear(&errs);
    ck_assert_uint_eq(errs.n, 0);
    ck_assert_uint_eq(errs.dropped, 0);
}
END_TEST

START_TEST(t_init_without_file)
{
    gw_jsonv w = gw_jsonv_init(NULL, &errs);
    gw_jsonv_err(&w, "a.b", "bad %s", "thing");
    ck_assert_str_eq(errs.msgs[0], "-: a.b: bad thing");
    /* no list: still counted, so the caller still refuses the file */
    gw_jsonv n = gw_jsonv_init("x", NULL);
    gw_jsonv_err(&n, "$", "x");
    ck_assert_uint_eq(n.nerrs, 1);
}
END_TEST

static const struct {
    const char *in;
    size_t max;
    const char *want;
} cleans[] = {
    {"plain", 64, "plain"},
    {"a\nb\tc\x7f", 64, "a?b?c?"},
    {"abcdefgh", 4, "abcd..."},
    {"abcd", 4, "abcd"},
    /* "é" is 2 bytes: the cut never splits it */
    {"abc\xc3\xa9z", 4, "abc..."},
    {"\xc3\xa9\xc3\xa9", 3, "\xc3\xa9..."},
};

START_TEST(t_clean)
{
    char buf[80];
    ck_assert_str_eq(gw_jsonv_clean(buf, sizeof(buf), cleans[_i].in, cleans[_i].max),
                     cleans[_i].want);
}
END_TEST

START_TEST(t_clean_small_buffer)
{
    char buf[8]; /* room for 4 bytes + "..." + NUL whatever <max> says */
    ck_assert_str_eq(gw_jsonv_clean(buf, sizeof(buf), "0123456789", 64), "0123...");
}
END_TEST

START_TEST(t_paths)
{
    char p[GW_JSONV_PATH], q[GW_JSONV_PATH], big[400];
    gw_jsonv_path_key(p, "$", "listeners");
    ck_assert_str_eq(p, "listeners");
    gw_jsonv_path_idx(q, p, 3);
    ck_assert_str_eq(q, "listeners[3]");
    gw_jsonv_path_key(p, q, "tls");
    ck_assert_str_eq(p, "listeners[3].tls");
    memset(big, 'k', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    gw_jsonv_path_key(p, "a", big);
    ck_assert_uint_eq(strlen(p), GW_JSONV_PATH - 1);
    ck_assert_str_eq(p + GW_JSONV_PATH - 4, "...");
    gw_jsonv_path_idx(q, p, 7);
    ck_assert_str_eq(q + GW_JSONV_PATH - 4, "...");
}
END_TEST

START_TEST(t_parse)
{
    json_t *r = gw_jsonv_parse(&v, "{\"a\": 1}", 8);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(v.nerrs, 0);
    json_decref(r);
    ck_assert_ptr_null(gw_jsonv_parse(&v, "{\"a\": 1, \"a\": 2}", 16));
    one("f.json: $: invalid JSON at line 1, column 12: duplicate object key near '\"a\"'");
}
END_TEST

START_TEST(t_parse_cleans_excerpt)
{
    ck_assert_ptr_null(gw_jsonv_parse(&v, "{\"a\x01\": 1}", 9));
    ck_assert_uint_eq(errs.n, 1);
    ck_assert_ptr_null(strchr(errs.msgs[0], '\x01'));
    ck_assert_str_eq(errs.msgs[0], "f.json: $: invalid JSON at line 1, column 3: control "
                                   "character 0x1 near '\"a'");
}
END_TEST

START_TEST(t_keys)
{
    static const char *const known[] = {"a", "b", NULL};
    json_t *o = obj("{\"a\": 1, \"zz\": 2, \"b\": 3, \"c\\nd\": 4}");
    gw_jsonv_keys(&v, o, "$", known);
    ck_assert_uint_eq(errs.n, 2);
    ck_assert_str_eq(errs.msgs[0], "f.json: zz: unknown key");
    ck_assert_str_eq(errs.msgs[1], "f.json: c?d: unknown key");
    gw_errlist_clear(&errs);
    gw_jsonv_keys(&v, o, "x[0]", known);
    ck_assert_str_eq(errs.msgs[0], "f.json: x[0].zz: unknown key");
    json_decref(o);
}
END_TEST

START_TEST(t_keys_long_key_cut)
{
    static const char *const known[] = {NULL};
    char text[200], want[120];
    memset(want, 0, sizeof(want));
    snprintf(text, sizeof(text), "{\"%0100d\": 1}", 0);
    json_t *o = obj(text);
    gw_jsonv_keys(&v, o, "s", known);
    memcpy(want, "f.json: s.", 10);
    memset(want + 10, '0', 64);
    strcat(want, "...: unknown key");
    one(want);
    json_decref(o);
}
END_TEST

START_TEST(t_member)
{
    json_t *o = obj("{\"a\": null}");
    ck_assert_ptr_nonnull(gw_jsonv_member(&v, o, "$", "a", GW_JSONV_REQUIRED));
    ck_assert_uint_eq(v.nerrs, 0);
    ck_assert_ptr_null(gw_jsonv_member(&v, o, "$", "b", GW_JSONV_OPTIONAL));
    ck_assert_uint_eq(v.nerrs, 0);
    ck_assert_ptr_null(gw_jsonv_member(&v, o, "$", "a", GW_JSONV_REQUIRED | GW_JSONV_NULL_ABSENT));
    one("f.json: $: missing key \"a\"");
    json_decref(o);
}
END_TEST

START_TEST(t_int)
{
    json_t *o = obj("{\"i\": 5, \"s\": \"5\", \"big\": 99}");
    long long n = -1;
    ck_assert_int_eq(gw_jsonv_int(&v, o, "q", "i", GW_JSONV_REQUIRED, 1, 10, &n), GW_JSONV_SET);
    ck_assert_int_eq(n, 5);
    ck_assert_int_eq(gw_jsonv_int(&v, o, "q", "no", GW_JSONV_OPTIONAL, 1, 10, &n), GW_JSONV_ABSENT);
    ck_assert_int_eq(n, 5);
    ck_assert_uint_eq(v.nerrs, 0);
    ck_assert_int_eq(gw_jsonv_int(&v, o, "q", "s", 0, 1, 10, &n), GW_JSONV_BAD);
    one("f.json: q.s: must be an integer");
    gw_errlist_clear(&errs);
    v.nerrs = 0;
    ck_assert_int_eq(gw_jsonv_int(&v, o, "q", "big", 0, 1, 10, &n), GW_JSONV_BAD);
    one("f.json: q.big: must be between 1 and 10");
    gw_errlist_clear(&errs);
    v.nerrs = 0;
    ck_assert_int_eq(gw_jsonv_int(&v, o, "q", "no", GW_JSONV_REQUIRED, 1, 10, &n), GW_JSONV_BAD);
    one("f.json: q: missing key \"no\"");
    ck_assert_int_eq(n, 5);
    json_decref(o);
}
END_TEST

START_TEST(t_int_in)
{
    json_t *o = obj("{\"i\": 5, \"s\": \"5\", \"big\": 99}");
    long long n = 0;
    ck_assert_int_eq(gw_jsonv_int_in(&v, o, "oauth", "i", 0, 1, 10, &n), GW_JSONV_SET);
    ck_assert_int_eq(n, 5);
    ck_assert_int_eq(gw_jsonv_int_in(&v, o, "oauth", "s", 0, 1, 10, &n), GW_JSONV_BAD);
    ck_assert_int_eq(gw_jsonv_int_in(&v, o, "oauth", "big", 0, 1, 10, &n), GW_JSONV_BAD);
    ck_assert_uint_eq(errs.n, 2);
    ck_assert_str_eq(errs.msgs[0], "f.json: oauth.s: must be an integer between 1 and 10");
    ck_assert_str_eq(errs.msgs[1], "f.json: oauth.big: must be an integer between 1 and 10");
    ck_assert_int_eq(n, 5);
    json_decref(o);
}
END_TEST

START_TEST(t_str_bool)
{
    json_t *o = obj("{\"s\": \"x\", \"n\": 1, \"t\": true, \"z\": null}");
    const char *s = NULL;
    int b = 0;
    ck_assert_int_eq(gw_jsonv_str(&v, o, "$", "s", GW_JSONV_REQUIRED, &s), GW_JSONV_SET);
    ck_assert_str_eq(s, "x");
    ck_assert_int_eq(gw_jsonv_bool(&v, o, "$", "t", 0, &b), GW_JSONV_SET);
    ck_assert_int_eq(b, 1);
    ck_assert_int_eq(gw_jsonv_str(&v, o, "$", "z", GW_JSONV_NULL_ABSENT, &s), GW_JSONV_ABSENT);
    ck_assert_uint_eq(v.nerrs, 0);
    ck_assert_int_eq(gw_jsonv_str(&v, o, "$", "n", 0, &s), GW_JSONV_BAD);
    ck_assert_int_eq(gw_jsonv_bool(&v, o, "$", "s", 0, &b), GW_JSONV_BAD);
    ck_assert_int_eq(gw_jsonv_str(&v, o, "$", "z", 0, &s), GW_JSONV_BAD);
    ck_assert_uint_eq(errs.n, 3);
    ck_assert_str_eq(errs.msgs[0], "f.json: n: must be a string");
    ck_assert_str_eq(errs.msgs[1], "f.json: s: must be a boolean");
    ck_assert_str_eq(errs.msgs[2], "f.json: z: must be a string");
    ck_assert_str_eq(s, "x");
    ck_assert_int_eq(b, 1);
    json_decref(o);
}
END_TEST

START_TEST(t_obj_array)
{
    json_t *o = obj("{\"o\": {}, \"a\": [1, 2, 3], \"s\": 1}");
    ck_assert_ptr_nonnull(gw_jsonv_obj(&v, o, "r", "o", GW_JSONV_REQUIRED));
    ck_assert_ptr_nonnull(gw_jsonv_array(&v, o, "r", "a", GW_JSONV_REQUIRED, 1, 3));
    ck_assert_ptr_null(gw_jsonv_obj(&v, o, "r", "none", GW_JSONV_OPTIONAL));
    ck_assert_uint_eq(v.nerrs, 0);
    ck_assert_ptr_null(gw_jsonv_obj(&v, o, "r", "s", 0));
    ck_assert_ptr_null(gw_jsonv_array(&v, o, "r", "s", 0, 1, 3));
    /* out of bounds: reported, and still returned for its entries */
    ck_assert_ptr_nonnull(gw_jsonv_array(&v, o, "r", "a", 0, 1, 2));
    ck_assert_ptr_null(gw_jsonv_array(&v, o, "r", "none", GW_JSONV_REQUIRED, 1, 2));
    ck_assert_uint_eq(errs.n, 4);
    ck_assert_str_eq(errs.msgs[0], "f.json: r.s: must be an object");
    ck_assert_str_eq(errs.msgs[1], "f.json: r.s: must be an array");
    ck_assert_str_eq(errs.msgs[2], "f.json: r.a: must have between 1 and 2 entries");
    ck_assert_str_eq(errs.msgs[3], "f.json: r: missing key \"none\"");
    json_decref(o);
}
END_TEST

START_TEST(t_alloc)
{
    char *d = gw_jsonv_strdup(&v, "$", "abc");
    ck_assert_str_eq(d, "abc");
    free(d);
    int *p = gw_jsonv_calloc(&v, "$", 4, sizeof(int));
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(p[3], 0);
    free(p);
    ck_assert_uint_eq(v.nerrs, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("jsonv");
    TCase *tc = tcase_create("jsonv");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, t_errlist_caps_and_counts);
    tcase_add_test(tc, t_init_without_file);
    tcase_add_loop_test(tc, t_clean, 0, (int)(sizeof(cleans) / sizeof(cleans[0])));
    tcase_add_test(tc, t_clean_small_buffer);
    tcase_add_test(tc, t_paths);
    tcase_add_test(tc, t_parse);
    tcase_add_test(tc, t_parse_cleans_excerpt);
    tcase_add_test(tc, t_keys);
    tcase_add_test(tc, t_keys_long_key_cut);
    tcase_add_test(tc, t_member);
    tcase_add_test(tc, t_int);
    tcase_add_test(tc, t_int_in);
    tcase_add_test(tc, t_str_bool);
    tcase_add_test(tc, t_obj_array);
    tcase_add_test(tc, t_alloc);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
