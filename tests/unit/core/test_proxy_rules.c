/* Unit tests for gateway/core/proxy_rules.c: upstream addresses, the
 * outcome names journalled per attempt, the retry rule (once, idempotent,
 * a pooled connection that failed before any byte) and the worker's
 * response-body budget. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "core/proxy_rules.h"

START_TEST(t_addr_parse)
{
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    char buf[64];
    ck_assert_int_eq(gw_upstream_addr_parse("127.0.0.1:9080", &ss, &sl), 0);
    ck_assert_int_eq(ss.ss_family, AF_INET);
    ck_assert_uint_eq(sl, sizeof(struct sockaddr_in));
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    ck_assert_uint_eq(ntohs(a4->sin_port), 9080);
    ck_assert_str_eq(inet_ntop(AF_INET, &a4->sin_addr, buf, sizeof(buf)), "127.0.0.1");

    ck_assert_int_eq(gw_upstream_addr_parse("[2001:db8::5]:443", &ss, &sl), 0);
    ck_assert_int_eq(ss.ss_family, AF_INET6);
    ck_assert_uint_eq(sl, sizeof(struct sockaddr_in6));
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    ck_assert_uint_eq(ntohs(a6->sin6_port), 443);
    ck_assert_str_eq(inet_ntop(AF_INET6, &a6->sin6_addr, buf, sizeof(buf)), "2001:db8::5");
    ck_assert_int_eq(gw_upstream_addr_parse("1.2.3.4:65535", &ss, &sl), 0);

    const char *bad[] = {
        "",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:-1",
        "127.0.0.1:80x",
        "localhost:80",
        "2001:db8::5:443",
        "[2001:db8::5]443",
        "[2001:db8::5:443",
        "[]:80",
        "[1.2.3.4]:80x",
        "256.0.0.1:80",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(gw_upstream_addr_parse(bad[i], &ss, &sl) == -1, "accepted %s", bad[i]);
}
END_TEST

START_TEST(t_outcomes)
{
    ck_assert_str_eq(gw_proxy_fail_outcome(1, GW_ERR_UPSTREAM_DOWN, NULL), "reset");
    ck_assert_str_eq(gw_proxy_fail_outcome(0, GW_ERR_UPSTREAM_DOWN, NULL), "connect_failed");
    ck_assert_str_eq(gw_proxy_fail_outcome(1, GW_ERR_UPSTREAM_TIMEOUT, NULL), "timeout");
    ck_assert_str_eq(gw_proxy_fail_outcome(0, GW_ERR_UPSTREAM_TIMEOUT, NULL), "connect_timeout");
    ck_assert_str_eq(gw_proxy_fail_outcome(1, GW_ERR_UPSTREAM_INVALID, "upstream.too_large"),
                     "too_large");
    ck_assert_str_eq(gw_proxy_fail_outcome(1, GW_ERR_UPSTREAM_INVALID, "upstream.budget_exceeded"),
                     "too_large");
    ck_assert_str_eq(gw_proxy_fail_outcome(1, GW_ERR_UPSTREAM_INVALID, "upstream.bad_status"),
                     "invalid");
    ck_assert_str_eq(gw_proxy_fail_outcome(1, GW_ERR_UPSTREAM_INVALID, NULL), "invalid");
    ck_assert_str_eq(gw_proxy_fail_outcome(1, GW_ERR_INTERNAL, NULL), "error");
}
END_TEST

/* Only one combination retries; flipping any one input stops it. */
START_TEST(t_retry)
{
    ck_assert_int_eq(gw_proxy_may_retry(1, 0, 1, 0, GW_ERR_UPSTREAM_DOWN), 1);
    ck_assert_int_eq(gw_proxy_may_retry(0, 0, 1, 0, GW_ERR_UPSTREAM_DOWN), 0); /* fresh */
    ck_assert_int_eq(gw_proxy_may_retry(1, 1, 1, 0, GW_ERR_UPSTREAM_DOWN), 0); /* bytes seen */
    ck_assert_int_eq(gw_proxy_may_retry(1, 0, 0, 0, GW_ERR_UPSTREAM_DOWN), 0); /* POST */
    ck_assert_int_eq(gw_proxy_may_retry(1, 0, 1, 1, GW_ERR_UPSTREAM_DOWN), 0); /* twice */
    ck_assert_int_eq(gw_proxy_may_retry(1, 0, 1, 0, GW_ERR_UPSTREAM_TIMEOUT), 0);
    ck_assert_int_eq(gw_proxy_may_retry(1, 0, 1, 0, GW_ERR_UPSTREAM_INVALID), 0);
}
END_TEST

START_TEST(t_budget)
{
    gw_resp_budget b = {.limit = 1000, .used = 0, .refused = 0};
    size_t c1 = 0, c2 = 0;
    /* a declared length is charged whole at once */
    ck_assert_int_eq(gw_resp_budget_charge(&b, &c1, 600, 0), 0);
    ck_assert_uint_eq(c1, 600);
    ck_assert_uint_eq(b.used, 600);
    /* received bytes under the declared length: nothing more */
    ck_assert_int_eq(gw_resp_budget_charge(&b, &c1, 600, 300), 0);
    ck_assert_uint_eq(b.used, 600);
    /* a chunked response grows as it is received */
    ck_assert_int_eq(gw_resp_budget_charge(&b, &c2, -1, 100), 0);
    ck_assert_int_eq(gw_resp_budget_charge(&b, &c2, -1, 400), 0);
    ck_assert_uint_eq(c2, 400);
    ck_assert_uint_eq(b.used, 1000);
    /* one byte over: refused, counted, nothing more charged */
    ck_assert_int_eq(gw_resp_budget_charge(&b, &c2, -1, 401), -1);
    ck_assert_uint_eq(c2, 400);
    ck_assert_uint_eq(b.used, 1000);
    ck_assert_uint_eq(b.refused, 1);
    /* released: room again */
    gw_resp_budget_release(&b, &c1);
    ck_assert_uint_eq(c1, 0);
    ck_assert_uint_eq(b.used, 400);
    ck_assert_int_eq(gw_resp_budget_charge(&b, &c2, 0, 900), 0);
    ck_assert_uint_eq(b.used, 900);
    gw_resp_budget_release(&b, &c2);
    gw_resp_budget_release(&b, &c2); /* twice: nothing more */
    ck_assert_uint_eq(b.used, 0);
    /* a declared length above the limit fails before any byte */
    size_t c3 = 0;
    ck_assert_int_eq(gw_resp_budget_charge(&b, &c3, 20000000, 0), -1);
    ck_assert_uint_eq(b.refused, 2);
    /* no budget: always room */
    ck_assert_int_eq(gw_resp_budget_charge(NULL, &c3, 1ll << 40, 0), 0);
    gw_resp_budget_release(NULL, &c3);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("proxy_rules");
    TCase *tc = tcase_create("proxy_rules");
    tcase_add_test(tc, t_addr_parse);
    tcase_add_test(tc, t_outcomes);
    tcase_add_test(tc, t_retry);
    tcase_add_test(tc, t_budget);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
