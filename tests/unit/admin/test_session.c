/* Unit tests for gateway/admin/session.c: console sessions (random ids and
 * CSRF tokens, idle and absolute expiry, the bounded table), the Cookie
 * header, the Origin check and the access decision (Origin, CSRF, role).
 * Time is given, never read. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "admin/session.h"
#include "conf/conf.h"

#define T0 1000000000ull

static int b64url(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_'))
            return 0;
    return 1;
}

START_TEST(t_open_find)
{
    gw_admin_sessions *t = calloc(1, sizeof(*t));
    gw_admin_session *s = gw_admin_session_open(t, 2, T0);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(strlen(s->id), GW_ADMIN_SECRET_LEN);
    ck_assert_uint_eq(strlen(s->csrf), GW_ADMIN_SECRET_LEN);
    ck_assert(b64url(s->id) && b64url(s->csrf));
    ck_assert_str_ne(s->id, s->csrf);
    ck_assert_uint_eq(s->op, 2);
    char id[GW_ADMIN_SECRET_LEN + 1];
    strcpy(id, s->id);
    ck_assert_ptr_eq(gw_admin_session_find(t, id, T0 + 1000), s);
    /* another id, a prefix, a longer one, NULL: none */
    char other[GW_ADMIN_SECRET_LEN + 2];
    strcpy(other, id);
    other[0] = other[0] == 'A' ? 'B' : 'A';
    ck_assert_ptr_null(gw_admin_session_find(t, other, T0 + 1000));
    other[0] = id[0];
    other[GW_ADMIN_SECRET_LEN] = 'x';
    other[GW_ADMIN_SECRET_LEN + 1] = '\0';
    ck_assert_ptr_null(gw_admin_session_find(t, other, T0 + 1000));
    id[GW_ADMIN_SECRET_LEN - 1] = '\0';
    ck_assert_ptr_null(gw_admin_session_find(t, id, T0 + 1000));
    ck_assert_ptr_null(gw_admin_session_find(t, NULL, T0 + 1000));
    /* two sessions never share their secrets */
    gw_admin_session *s2 = gw_admin_session_open(t, 0, T0);
    ck_assert_ptr_ne(s, s2);
    ck_assert_str_ne(s->id, s2->id);
    ck_assert_str_ne(s->csrf, s2->csrf);
    free(t);
}
END_TEST

START_TEST(t_idle_expiry_slides)
{
    gw_admin_sessions *t = calloc(1, sizeof(*t));
    gw_admin_session *s = gw_admin_session_open(t, 0, T0);
    char id[GW_ADMIN_SECRET_LEN + 1];
    strcpy(id, s->id);
    ck_assert_uint_eq(gw_admin_session_expires_in(t, s, T0), GW_ADMIN_SESSION_IDLE_S);
    /* a millisecond later it still says the whole idle time (rounded up) */
    ck_assert_uint_eq(gw_admin_session_expires_in(t, s, T0 + 1), GW_ADMIN_SESSION_IDLE_S);
    uint64_t now = T0;
    /* used every 14 minutes: alive for an hour */
    for (int i = 0; i < 4; i++) {
        now += (GW_ADMIN_SESSION_IDLE_S - 60) * 1000ull;
        ck_assert_ptr_eq(gw_admin_session_find(t, id, now), s);
    }
    ck_assert_uint_eq(gw_admin_session_expires_in(t, s, now + 1000), GW_ADMIN_SESSION_IDLE_S - 1);
    /* then 15 minutes idle: ended, and wiped */
    now += GW_ADMIN_SESSION_IDLE_S * 1000ull;
    ck_assert_ptr_null(gw_admin_session_find(t, id, now));
    ck_assert_int_eq(s->live, 0);
    ck_assert_ptr_null(gw_admin_session_find(t, id, now));
    /* a shorter idle time (tests) */
    t->idle_s = 3;
    s = gw_admin_session_open(t, 0, now);
    strcpy(id, s->id);
    ck_assert_uint_eq(gw_admin_session_expires_in(t, s, now), 3);
    ck_assert_ptr_eq(gw_admin_session_find(t, id, now + 2999), s);
    ck_assert_ptr_null(gw_admin_session_find(t, id, now + 2999 + 3000));
    free(t);
}
END_TEST

START_TEST(t_absolute_expiry)
{
    gw_admin_sessions *t = calloc(1, sizeof(*t));
    gw_admin_session *s = gw_admin_session_open(t, 0, T0);
    char id[GW_ADMIN_SECRET_LEN + 1];
    strcpy(id, s->id);
    uint64_t now = T0, end = T0 + GW_ADMIN_SESSION_MAX_S * 1000ull;
    while (now + 600000 < end) {
        now += 600000;
        ck_assert_ptr_eq(gw_admin_session_find(t, id, now), s);
    }
    /* near the 8 h, the time left is what remains of them */
    ck_assert_uint_eq(gw_admin_session_expires_in(t, s, end - 5000), 5);
    ck_assert_ptr_null(gw_admin_session_find(t, id, end));
    free(t);
}
END_TEST

START_TEST(t_end_and_table_bound)
{
    gw_admin_sessions *t = calloc(1, sizeof(*t));
    char ids[GW_ADMIN_SESSIONS + 1][GW_ADMIN_SECRET_LEN + 1];
    for (int i = 0; i < GW_ADMIN_SESSIONS; i++)
        strcpy(ids[i], gw_admin_session_open(t, 0, T0 + (uint64_t)i)->id);
    for (int i = 0; i < GW_ADMIN_SESSIONS; i++)
        ck_assert_ptr_nonnull(gw_admin_session_find(t, ids[i], T0 + 100 + (uint64_t)i));
    /* full: the least recently used (the first) makes room */
    strcpy(ids[GW_ADMIN_SESSIONS], gw_admin_session_open(t, 1, T0 + 1000)->id);
    ck_assert_ptr_null(gw_admin_session_find(t, ids[0], T0 + 1001));
    ck_assert_ptr_nonnull(gw_admin_session_find(t, ids[1], T0 + 1001));
    ck_assert_ptr_nonnull(gw_admin_session_find(t, ids[GW_ADMIN_SESSIONS], T0 + 1001));
    /* an ended session is not found again */
    gw_admin_session *s = gw_admin_session_find(t, ids[5], T0 + 1002);
    gw_admin_session_end(s);
    ck_assert_ptr_null(gw_admin_session_find(t, ids[5], T0 + 1003));
    free(t);
}
END_TEST

START_TEST(t_cookie)
{
    char v[64];
    ck_assert_int_eq(gw_admin_cookie_get("gw_session=abc", "gw_session", v, sizeof(v)), 1);
    ck_assert_str_eq(v, "abc");
    ck_assert_int_eq(gw_admin_cookie_get("a=1; gw_session=xyz; b=2", "gw_session", v, sizeof(v)),
                     1);
    ck_assert_str_eq(v, "xyz");
    ck_assert_int_eq(gw_admin_cookie_get("a=1;gw_session=q ", "gw_session", v, sizeof(v)), 1);
    ck_assert_str_eq(v, "q");
    ck_assert_int_eq(
        gw_admin_cookie_get("xgw_session=1; gw_sessionx=2", "gw_session", v, sizeof(v)), 0);
    ck_assert_int_eq(gw_admin_cookie_get(NULL, "gw_session", v, sizeof(v)), 0);
    ck_assert_int_eq(gw_admin_cookie_get("", "gw_session", v, sizeof(v)), 0);
    ck_assert_int_eq(gw_admin_cookie_get("gw_session", "gw_session", v, sizeof(v)), 0);
    ck_assert_int_eq(gw_admin_cookie_get("gw_session=0123456789", "gw_session", v, 5), 0);
    ck_assert_int_eq(gw_admin_cookie_get("gw_session=", "gw_session", v, sizeof(v)), 0);
}
END_TEST

START_TEST(t_origin)
{
    ck_assert_int_eq(gw_admin_origin_ok("http://127.0.0.1:9901", "127.0.0.1", 9901), 1);
    ck_assert_int_eq(gw_admin_origin_ok("http://localhost:9901", "127.0.0.1", 9901), 1);
    ck_assert_int_eq(gw_admin_origin_ok("http://[::1]:9901", "::1", 9901), 1);
    ck_assert_int_eq(gw_admin_origin_ok("http://127.0.0.1:9902", "127.0.0.1", 9901), 0);
    ck_assert_int_eq(gw_admin_origin_ok("https://127.0.0.1:9901", "127.0.0.1", 9901), 0);
    ck_assert_int_eq(gw_admin_origin_ok("http://127.0.0.1:9901/", "127.0.0.1", 9901), 0);
    ck_assert_int_eq(gw_admin_origin_ok("http://evil.example", "127.0.0.1", 9901), 0);
    ck_assert_int_eq(gw_admin_origin_ok("http://127.0.0.1", "127.0.0.1", 9901), 0);
    ck_assert_int_eq(gw_admin_origin_ok("null", "127.0.0.1", 9901), 0);
    ck_assert_int_eq(gw_admin_origin_ok(NULL, "127.0.0.1", 9901), 0);
}
END_TEST

START_TEST(t_csrf)
{
    ck_assert_int_eq(gw_admin_csrf_ok("abc", "abc"), 1);
    ck_assert_int_eq(gw_admin_csrf_ok("abd", "abc"), 0);
    ck_assert_int_eq(gw_admin_csrf_ok("ab", "abc"), 0);
    ck_assert_int_eq(gw_admin_csrf_ok("abcd", "abc"), 0);
    ck_assert_int_eq(gw_admin_csrf_ok(NULL, "abc"), 0);
    ck_assert_int_eq(gw_admin_csrf_ok("", ""), 0);
}
END_TEST

/* The access decision, table-driven. */
static const struct {
    gw_admin_access_in in;
    int status;
    const char *error;
} access_cases[] = {
    /* by token: no CSRF needed */
    {{.is_get = 0, .role = GW_ROLE_OPERATOR, .ep_is_action = 1}, 0, NULL},
    {{.is_get = 1, .role = GW_ROLE_READ}, 0, NULL},
    {{.is_get = 0, .role = GW_ROLE_READ, .ep_is_action = 1}, 403, "forbidden"},
    {{.is_get = 0, .role = GW_ROLE_READ, .ep_is_action = 0}, 0, NULL}, /* its own session */
    /* by session: CSRF on everything but GET */
    {{.is_get = 1, .by_session = 1, .role = GW_ROLE_READ}, 0, NULL},
    {{.is_get = 0, .by_session = 1, .csrf_ok = 0, .role = GW_ROLE_OPERATOR, .ep_is_action = 1},
     403,
     "csrf"},
    {{.is_get = 0, .by_session = 1, .csrf_ok = 1, .role = GW_ROLE_OPERATOR, .ep_is_action = 1},
     0,
     NULL},
    {{.is_get = 0, .by_session = 1, .csrf_ok = 0, .role = GW_ROLE_READ, .ep_is_action = 0},
     403,
     "csrf"},
    {{.is_get = 0, .by_session = 1, .csrf_ok = 1, .role = GW_ROLE_READ, .ep_is_action = 1},
     403,
     "forbidden"},
    /* Origin first, whatever else */
    {{.is_get = 1, .origin_present = 1, .origin_ok = 0, .role = GW_ROLE_OPERATOR}, 403, "origin"},
    {{.is_get = 0,
      .by_session = 1,
      .origin_present = 1,
      .origin_ok = 0,
      .csrf_ok = 0,
      .role = GW_ROLE_READ,
      .ep_is_action = 1},
     403,
     "origin"},
    {{.is_get = 0,
      .by_session = 1,
      .origin_present = 1,
      .origin_ok = 1,
      .csrf_ok = 1,
      .role = GW_ROLE_OPERATOR,
      .ep_is_action = 1},
     0,
     NULL},
};

START_TEST(t_access)
{
    const char *err = "unset";
    int st = gw_admin_access(&access_cases[_i].in, &err);
    ck_assert_int_eq(st, access_cases[_i].status);
    if (access_cases[_i].error == NULL)
        ck_assert_ptr_null(err);
    else
        ck_assert_str_eq(err, access_cases[_i].error);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("admin_session");
    TCase *tc = tcase_create("session");
    tcase_add_test(tc, t_open_find);
    tcase_add_test(tc, t_idle_expiry_slides);
    tcase_add_test(tc, t_absolute_expiry);
    tcase_add_test(tc, t_end_and_table_bound);
    tcase_add_test(tc, t_cookie);
    tcase_add_test(tc, t_origin);
    tcase_add_test(tc, t_csrf);
    tcase_add_loop_test(tc, t_access, 0, sizeof(access_cases) / sizeof(access_cases[0]));
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
