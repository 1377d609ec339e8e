/* Unit tests for gateway/admin/auth.c: the bearer token comparison, the
 * token file, and the back-off of failed authentications (20 failures in
 * 60 s block a source for 300 s, the right token included; the table of
 * sources is bounded). Time is given, never read. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common.h"
#include "admin/auth.h"

static const char TOKEN[] = "s3cret-admin-token";
#define T0 1000000000ull /* an arbitrary start, in ms */

START_TEST(t_token_ok)
{
    size_t n = strlen(TOKEN);
    ck_assert_int_eq(gw_admin_token_ok("Bearer s3cret-admin-token", TOKEN, n), 1);
    ck_assert_int_eq(gw_admin_token_ok(NULL, TOKEN, n), 0);
    ck_assert_int_eq(gw_admin_token_ok("", TOKEN, n), 0);
    ck_assert_int_eq(gw_admin_token_ok("s3cret-admin-token", TOKEN, n), 0);
    ck_assert_int_eq(gw_admin_token_ok("bearer s3cret-admin-token", TOKEN, n), 0);
    ck_assert_int_eq(gw_admin_token_ok("Basic s3cret-admin-token", TOKEN, n), 0);
    ck_assert_int_eq(gw_admin_token_ok("Bearer  s3cret-admin-token", TOKEN, n), 0);
    ck_assert_int_eq(gw_admin_token_ok("Bearer s3cret-admin-toke", TOKEN, n), 0);
    ck_assert_int_eq(gw_admin_token_ok("Bearer s3cret-admin-tokenX", TOKEN, n), 0);
    ck_assert_int_eq(gw_admin_token_ok("Bearer s3cret-admin-tokeN", TOKEN, n), 0);
    ck_assert_int_eq(gw_admin_token_ok("Bearer ", TOKEN, n), 0);
    ck_assert_int_eq(gw_admin_token_ok("Bearer ", "", 0),
                     1); /* never configured: read refuses "" */
}
END_TEST

static char *write_tmp(const char *content, size_t len)
{
    char *path = strdup("/tmp/test_admin_auth.XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, content, len), (ssize_t)len);
    close(fd);
    return path;
}

START_TEST(t_token_read)
{
    struct {
        const char *content;
        const char *want; /* NULL: refused */
    } cases[] = {
        {"abc\n", "abc"}, {"abc \r\n\n", "abc"}, {"abc", "abc"}, {"\n", NULL},
        {"", NULL},       {"  \r\n", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *p = write_tmp(cases[i].content, strlen(cases[i].content));
        size_t n = 0;
        char *t = gw_admin_token_read(p, &n);
        if (cases[i].want == NULL) {
            ck_assert_ptr_null(t);
        } else {
            ck_assert_str_eq(t, cases[i].want);
            ck_assert_uint_eq(n, strlen(cases[i].want));
        }
        free(t);
        unlink(p);
        free(p);
    }
    /* the longest token, with its newline: accepted whole; one byte more:
     * refused, not cut */
    char big[GW_ADMIN_TOKEN_MAX + 3];
    memset(big, 'k', sizeof(big));
    big[GW_ADMIN_TOKEN_MAX] = '\n';
    char *p = write_tmp(big, GW_ADMIN_TOKEN_MAX + 1);
    size_t n = 0;
    char *t = gw_admin_token_read(p, &n);
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(n, GW_ADMIN_TOKEN_MAX);
    free(t);
    unlink(p);
    free(p);
    memset(big, 'k', sizeof(big));
    p = write_tmp(big, GW_ADMIN_TOKEN_MAX + 1);
    ck_assert_ptr_null(gw_admin_token_read(p, &n));
    unlink(p);
    free(p);
    ck_assert_ptr_null(gw_admin_token_read("/nonexistent/token", &n));
}
END_TEST

/* 19 failures are 401s that count; the 20th blocks for 300 s; during the
 * block even the right token gets 429 with the seconds left; after it the
 * right token passes. Another address is never affected. */
START_TEST(t_backoff)
{
    gw_admin_auth *t = calloc(1, sizeof(*t));
    uint64_t now = T0;
    for (unsigned i = 1; i < GW_ADMIN_AUTH_MAX_FAILURES; i++) {
        gw_admin_auth_verdict v = gw_admin_auth_decide(t, "127.0.0.9", 0, now);
        ck_assert_int_eq(v.status, 401);
        ck_assert_uint_eq(v.failures, i);
        ck_assert_uint_eq(v.blocked_s, 0);
        now += 1000;
    }
    gw_admin_auth_verdict v = gw_admin_auth_decide(t, "127.0.0.9", 0, now);
    ck_assert_int_eq(v.status, 401);
    ck_assert_uint_eq(v.failures, GW_ADMIN_AUTH_MAX_FAILURES);
    ck_assert_uint_eq(v.blocked_s, GW_ADMIN_AUTH_BLOCK_S);
    uint64_t blocked_at = now;

    v = gw_admin_auth_decide(t, "127.0.0.9", 1, now + 1);
    ck_assert_int_eq(v.status, 429);
    ck_assert_uint_eq(v.retry_after_s, GW_ADMIN_AUTH_BLOCK_S);
    v = gw_admin_auth_decide(t, "127.0.0.9", 0, blocked_at + 299001);
    ck_assert_int_eq(v.status, 429);
    ck_assert_uint_eq(v.retry_after_s, 1);
    /* another address: served meanwhile */
    ck_assert_int_eq(gw_admin_auth_decide(t, "127.0.0.8", 1, now + 2).status, 0);
    ck_assert_int_eq(gw_admin_auth_decide(t, "::1", 0, now + 2).status, 401);
    /* the block ends */
    v = gw_admin_auth_decide(t, "127.0.0.9", 1, blocked_at + GW_ADMIN_AUTH_BLOCK_S * 1000ull);
    ck_assert_int_eq(v.status, 0);
    /* and counting starts again from 1 */
    v = gw_admin_auth_decide(t, "127.0.0.9", 0, blocked_at + GW_ADMIN_AUTH_BLOCK_S * 1000ull + 1);
    ck_assert_int_eq(v.status, 401);
    ck_assert_uint_eq(v.failures, 1);
    free(t);
}
END_TEST

/* Failures older than the 60 s window do not add up; a success resets. */
START_TEST(t_window_and_reset)
{
    gw_admin_auth *t = calloc(1, sizeof(*t));
    uint64_t now = T0;
    for (unsigned i = 0; i < GW_ADMIN_AUTH_MAX_FAILURES - 1; i++)
        gw_admin_auth_decide(t, "10.0.0.1", 0, now + i);
    /* 60 s after the window opened: a new window */
    gw_admin_auth_verdict v =
        gw_admin_auth_decide(t, "10.0.0.1", 0, now + GW_ADMIN_AUTH_WINDOW_S * 1000ull);
    ck_assert_int_eq(v.status, 401);
    ck_assert_uint_eq(v.failures, 1);
    ck_assert_uint_eq(v.blocked_s, 0);
    /* 59.999 s after: still the same window */
    gw_admin_auth *u = calloc(1, sizeof(*u));
    for (unsigned i = 0; i < GW_ADMIN_AUTH_MAX_FAILURES - 1; i++)
        gw_admin_auth_decide(u, "10.0.0.1", 0, now + i);
    v = gw_admin_auth_decide(u, "10.0.0.1", 0, now + GW_ADMIN_AUTH_WINDOW_S * 1000ull - 1);
    ck_assert_uint_eq(v.blocked_s, GW_ADMIN_AUTH_BLOCK_S);
    /* a success in between resets the count */
    gw_admin_auth *w = calloc(1, sizeof(*w));
    for (unsigned i = 0; i < GW_ADMIN_AUTH_MAX_FAILURES - 1; i++)
        gw_admin_auth_decide(w, "10.0.0.1", 0, now + i);
    ck_assert_int_eq(gw_admin_auth_decide(w, "10.0.0.1", 1, now + 100).status, 0);
    v = gw_admin_auth_decide(w, "10.0.0.1", 0, now + 101);
    ck_assert_uint_eq(v.failures, 1);
    ck_assert_uint_eq(v.blocked_s, 0);
    free(t);
    free(u);
    free(w);
}
END_TEST

static void block(gw_admin_auth *t, const char *ip, uint64_t now)
{
    gw_admin_auth_verdict v = {0, 0, 0, 0};
    for (unsigned i = 0; i < GW_ADMIN_AUTH_MAX_FAILURES; i++)
        v = gw_admin_auth_decide(t, ip, 0, now);
    ck_assert_uint_eq(v.blocked_s, GW_ADMIN_AUTH_BLOCK_S);
}

/* The table holds GW_ADMIN_AUTH_SOURCES addresses: a new one evicts the
 * least recently seen that is not blocked; a blocked one is never
 * forgotten early; with every slot blocked a new address is not tracked
 * (401s, never 429, never a block). */
START_TEST(t_sources_bounded)
{
    gw_admin_auth *t = calloc(1, sizeof(*t));
    char ip[64];
    uint64_t now = T0;
    block(t, "192.0.2.1", now);
    for (unsigned i = 0; i < GW_ADMIN_AUTH_SOURCES + 50; i++) {
        snprintf(ip, sizeof(ip), "10.1.%u.%u", i / 256, i % 256);
        gw_admin_auth_decide(t, ip, 0, now + 1 + i);
        ck_assert_uint_le(t->n, GW_ADMIN_AUTH_SOURCES);
    }
    ck_assert_uint_eq(t->n, GW_ADMIN_AUTH_SOURCES);
    /* the blocked source survived the churn */
    ck_assert_int_eq(gw_admin_auth_decide(t, "192.0.2.1", 1, now + 1000).status, 429);

    /* every slot blocked */
    gw_admin_auth *f = calloc(1, sizeof(*f));
    for (unsigned i = 0; i < GW_ADMIN_AUTH_SOURCES; i++) {
        snprintf(ip, sizeof(ip), "10.2.%u.%u", i / 256, i % 256);
        block(f, ip, now);
    }
    for (unsigned i = 0; i < GW_ADMIN_AUTH_MAX_FAILURES + 5; i++) {
        gw_admin_auth_verdict v = gw_admin_auth_decide(f, "203.0.113.1", 0, now + 10);
        ck_assert_int_eq(v.status, 401);
        ck_assert_uint_eq(v.failures, 0);
        ck_assert_uint_eq(v.blocked_s, 0);
    }
    ck_assert_int_eq(gw_admin_auth_decide(f, "203.0.113.1", 1, now + 10).status, 0);
    /* once the blocks end, the slots are reused */
    uint64_t later = now + GW_ADMIN_AUTH_BLOCK_S * 1000ull;
    ck_assert_int_eq(gw_admin_auth_decide(f, "203.0.113.1", 0, later).failures, 1);
    free(t);
    free(f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("admin_auth");
    TCase *tc = tcase_create("auth");
    tcase_add_test(tc, t_token_ok);
    tcase_add_test(tc, t_token_read);
    tcase_add_test(tc, t_backoff);
    tcase_add_test(tc, t_window_and_reset);
    tcase_add_test(tc, t_sources_bounded);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
