/* Unit tests for the pure parts of gateway/core/server.c: the refused-
 * handshake reason index (the metric labels) and the descriptor budget
 * (gw_fd_need_of, docs/configuration.md "File descriptors"). */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "core/server.h"

START_TEST(t_reason_index)
{
    /* every name maps to its own index, in the table's order */
    for (size_t i = 0; i < GW_TLS_REASONS; i++)
        ck_assert_uint_eq(gw_tls_reason_index(gw_tls_reason_names[i]), i);
    ck_assert_str_eq(gw_tls_reason_names[GW_TLS_REASONS - 1], "other");
    ck_assert_str_eq(gw_tls_reason_names[gw_tls_reason_index("proxy.bad_header")],
                     "proxy.bad_header");
    ck_assert_str_eq(gw_tls_reason_names[gw_tls_reason_index("tls.cert_expired")],
                     "tls.cert_expired");
    /* anything else is "other" */
    ck_assert_uint_eq(gw_tls_reason_index(NULL), GW_TLS_REASONS - 1);
    ck_assert_uint_eq(gw_tls_reason_index(""), GW_TLS_REASONS - 1);
    ck_assert_uint_eq(gw_tls_reason_index("tls."), GW_TLS_REASONS - 1);
    ck_assert_uint_eq(gw_tls_reason_index("TLS.NO_CERT"), GW_TLS_REASONS - 1);
    /* names are unique */
    for (size_t i = 0; i < GW_TLS_REASONS; i++)
        for (size_t j = i + 1; j < GW_TLS_REASONS; j++)
            ck_assert_str_ne(gw_tls_reason_names[i], gw_tls_reason_names[j]);
}
END_TEST

START_TEST(t_fd_need)
{
    gw_conf c;
    memset(&c, 0, sizeof(c));
    gw_conf_upstream ups[2];
    memset(ups, 0, sizeof(ups));
    ups[0].pool_size = 16;
    ups[1].pool_size = 4;
    c.workers = 3;
    c.limits.max_connections = 1000;
    c.nlisteners = 2;
    c.upstreams = ups;
    c.nupstreams = 2;
    gw_fd_need p;
    unsigned long total = gw_fd_need_of(&c, 0, &p);
    ck_assert_uint_eq(p.connections, 3ul * 1000 * GW_FDS_PER_CONNECTION);
    ck_assert_uint_eq(p.listeners, 3ul * 2);
    ck_assert_uint_eq(p.pools, 3ul * 20);
    ck_assert_uint_eq(p.redis, 0); /* memory store */
    ck_assert_uint_eq(p.loops, 3ul * GW_FDS_LOOP_PER_WORKER);
    ck_assert_uint_eq(p.fixed, GW_FDS_JOURNAL + GW_FDS_SLACK); /* no admin */
    ck_assert_uint_eq(total, p.total);
    ck_assert_uint_eq(total, 6000 + 6 + 60 + 12 + GW_FDS_JOURNAL + GW_FDS_SLACK);

    /* an explicit max_connections wins over the configuration's */
    ck_assert_uint_eq(gw_fd_need_of(&c, 10, NULL), total - 3ul * 990 * GW_FDS_PER_CONNECTION);

    /* the Redis store and the admin listener add their share */
    c.quota = json_pack("{s:s}", "store", "redis");
    c.admin.enabled = 1;
    gw_fd_need_of(&c, 0, &p);
    ck_assert_uint_eq(p.redis, 3ul * GW_FDS_REDIS_PER_WORKER);
    ck_assert_uint_eq(p.fixed, GW_FDS_JOURNAL + GW_FDS_ADMIN + GW_FDS_SLACK);
    ck_assert_uint_eq(p.total, total + p.redis + GW_FDS_ADMIN);
    json_decref(c.quota);
    c.quota = json_pack("{s:s}", "store", "memory");
    gw_fd_need_of(&c, 0, &p);
    ck_assert_uint_eq(p.redis, 0);
    json_decref(c.quota);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("server");
    TCase *tc = tcase_create("server");
    tcase_add_test(tc, t_reason_index);
    tcase_add_test(tc, t_fd_need);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
