/* Unit tests for gateway/core/hstable.c: handshakes in progress per source
 * address, bounded by the listener's limit; IPv4 and IPv6 apart; entries
 * leave the table when their count is 0; the no-limit and unknown-family
 * cases count nothing. */
#include <arpa/inet.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "../common.h"
#include "core/hstable.h"

static unsigned char a4[4] = {192, 0, 2, 1};
static unsigned char b4[4] = {192, 0, 2, 2};
static unsigned char a6[16];

static void setup(void)
{
    inet_pton(AF_INET6, "2001:db8::1", a6);
}

START_TEST(t_limit_per_source)
{
    gw_hs_table *t = gw_hs_table_new();
    for (unsigned i = 0; i < 3; i++)
        ck_assert_int_eq(gw_hs_enter(t, AF_INET, a4, 3), 1);
    ck_assert_int_eq(gw_hs_enter(t, AF_INET, a4, 3), 0); /* the 4th */
    ck_assert_uint_eq(gw_hs_count(t, AF_INET, a4), 3);
    /* another address, and the same bytes as IPv6's first four: apart */
    ck_assert_int_eq(gw_hs_enter(t, AF_INET, b4, 3), 1);
    unsigned char a4as6[16] = {192, 0, 2, 1};
    ck_assert_int_eq(gw_hs_enter(t, AF_INET6, a4as6, 3), 1);
    ck_assert_int_eq(gw_hs_enter(t, AF_INET6, a6, 1), 1);
    ck_assert_int_eq(gw_hs_enter(t, AF_INET6, a6, 1), 0);
    ck_assert_uint_eq(gw_hs_sources(t), 4);
    /* one ends: one more may start */
    gw_hs_leave(t, AF_INET, a4);
    ck_assert_uint_eq(gw_hs_count(t, AF_INET, a4), 2);
    ck_assert_int_eq(gw_hs_enter(t, AF_INET, a4, 3), 1);
    ck_assert_int_eq(gw_hs_enter(t, AF_INET, a4, 3), 0);
    gw_hs_table_free(t);
}
END_TEST

START_TEST(t_leave_removes)
{
    gw_hs_table *t = gw_hs_table_new();
    ck_assert_int_eq(gw_hs_enter(t, AF_INET6, a6, 2), 1);
    ck_assert_int_eq(gw_hs_enter(t, AF_INET6, a6, 2), 1);
    gw_hs_leave(t, AF_INET6, a6);
    ck_assert_uint_eq(gw_hs_sources(t), 1);
    gw_hs_leave(t, AF_INET6, a6);
    ck_assert_uint_eq(gw_hs_sources(t), 0);
    ck_assert_uint_eq(gw_hs_count(t, AF_INET6, a6), 0);
    /* leaving more than entered, or an address never seen: ignored */
    gw_hs_leave(t, AF_INET6, a6);
    gw_hs_leave(t, AF_INET, b4);
    ck_assert_uint_eq(gw_hs_sources(t), 0);
    ck_assert_int_eq(gw_hs_enter(t, AF_INET6, a6, 1), 1);
    gw_hs_table_free(t);
}
END_TEST

/* limit 0 (no limit), a NULL table, another family: always let through,
 * nothing counted */
START_TEST(t_untracked)
{
    gw_hs_table *t = gw_hs_table_new();
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(gw_hs_enter(t, AF_INET, a4, 0), 1);
    ck_assert_uint_eq(gw_hs_sources(t), 0);
    ck_assert_int_eq(gw_hs_enter(NULL, AF_INET, a4, 1), 1);
    ck_assert_int_eq(gw_hs_enter(NULL, AF_INET, a4, 1), 1);
    ck_assert_int_eq(gw_hs_enter(t, AF_UNIX, a4, 1), 1);
    ck_assert_int_eq(gw_hs_enter(t, AF_UNIX, a4, 1), 1);
    ck_assert_uint_eq(gw_hs_sources(t), 0);
    gw_hs_leave(NULL, AF_INET, a4);
    gw_hs_table_free(t);
    gw_hs_table_free(NULL);
}
END_TEST

/* Many addresses (more than the buckets): each its own count, and the
 * table empties when all have left (ASan sees a leak otherwise). */
START_TEST(t_many_sources)
{
    gw_hs_table *t = gw_hs_table_new();
    unsigned char ip[4] = {10, 0, 0, 0};
    for (unsigned i = 0; i < 5000; i++) {
        ip[2] = (unsigned char)(i >> 8);
        ip[3] = (unsigned char)i;
        ck_assert_int_eq(gw_hs_enter(t, AF_INET, ip, 2), 1);
        ck_assert_int_eq(gw_hs_enter(t, AF_INET, ip, 2), 1);
        ck_assert_int_eq(gw_hs_enter(t, AF_INET, ip, 2), 0);
    }
    ck_assert_uint_eq(gw_hs_sources(t), 5000);
    for (unsigned i = 0; i < 5000; i++) {
        ip[2] = (unsigned char)(i >> 8);
        ip[3] = (unsigned char)i;
        ck_assert_uint_eq(gw_hs_count(t, AF_INET, ip), 2);
        gw_hs_leave(t, AF_INET, ip);
        gw_hs_leave(t, AF_INET, ip);
    }
    ck_assert_uint_eq(gw_hs_sources(t), 0);
    /* entries still allocated at free are released too */
    ck_assert_int_eq(gw_hs_enter(t, AF_INET, a4, 5), 1);
    gw_hs_table_free(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hstable");
    TCase *tc = tcase_create("hstable");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, t_limit_per_source);
    tcase_add_test(tc, t_leave_removes);
    tcase_add_test(tc, t_untracked);
    tcase_add_test(tc, t_many_sources);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
