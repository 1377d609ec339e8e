/* Unit tests for gateway/policy/cidr.c: parsing (IPv4, IPv6, IPv4-mapped
 * networks stored as IPv4, every refusal with its message) and matching. */
#include <arpa/inet.h>
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "policy/cidr.h"

#include "../common.h"

static const struct {
    const char *s, *err;
    int family;
    unsigned prefix;
    const char *net; /* the stored network, printed back */
} cidrs[] = {
    {"192.0.2.0/24", NULL, AF_INET, 24, "192.0.2.0"},
    {"192.0.2.7", NULL, AF_INET, 32, "192.0.2.7"},
    {"0.0.0.0/0", NULL, AF_INET, 0, "0.0.0.0"},
    {"10.1.2.3/32", NULL, AF_INET, 32, "10.1.2.3"},
    {"2001:db8::/32", NULL, AF_INET6, 32, "2001:db8::"},
    {"::/0", NULL, AF_INET6, 0, "::"},
    {"::1", NULL, AF_INET6, 128, "::1"},
    {"2001:db8::1/128", NULL, AF_INET6, 128, "2001:db8::1"},
    {"::ffff:192.0.2.0/120", NULL, AF_INET, 24, "192.0.2.0"},
    {"::ffff:c000:200/120", NULL, AF_INET, 24, "192.0.2.0"},
    {"::ffff:192.0.2.1", NULL, AF_INET, 32, "192.0.2.1"},
    {"::ffff:0.0.0.0/96", NULL, AF_INET, 0, "0.0.0.0"},
    {"::ffff:0:0/95", "host bits set", 0, 0, NULL},
    {"::ffff:192.0.3.0/119", "host bits set", 0, 0, NULL},
    {"10.0.0.1/8", "host bits set", 0, 0, NULL},
    {"192.0.2.128/24", "host bits set", 0, 0, NULL},
    {"2001:db8::1/64", "host bits set", 0, 0, NULL},
    {"10.0.0.0/33", "prefix out of range", 0, 0, NULL},
    {"::/129", "prefix out of range", 0, 0, NULL},
    {"::ffff:10.0.0.0/129", "prefix out of range", 0, 0, NULL},
    {"10.0.0.0/", "not a CIDR", 0, 0, NULL},
    {"10.0.0.0/08", "not a CIDR", 0, 0, NULL},
    {"10.0.0.0/-1", "not a CIDR", 0, 0, NULL},
    {"10.0.0.0/8/9", "not a CIDR", 0, 0, NULL},
    {"10.0.0.0 /8", "not a CIDR", 0, 0, NULL},
    {"10.0.0/8", "not a CIDR", 0, 0, NULL},
    {"010.0.0.0/8", "not a CIDR", 0, 0, NULL},
    {"fe80::1%eth0", "not a CIDR", 0, 0, NULL},
    {"/24", "not a CIDR", 0, 0, NULL},
    {"", "not a CIDR", 0, 0, NULL},
    {"localhost", "not a CIDR", 0, 0, NULL},
    {"1.2.3.4/1000", "not a CIDR", 0, 0, NULL},
};

START_TEST(t_cidr_parse)
{
    gw_cidr c;
    memset(&c, 0xAB, sizeof(c));
    const char *e = gw_cidr_parse(cidrs[_i].s, &c);
    if (cidrs[_i].err != NULL) {
        ck_assert_msg(e != NULL && strcmp(e, cidrs[_i].err) == 0, "%s: got %s", cidrs[_i].s,
                      e != NULL ? e : "(ok)");
        ck_assert_int_eq(c.addr[0], 0xAB); /* untouched on error */
        return;
    }
    ck_assert_msg(e == NULL, "%s: %s", cidrs[_i].s, e);
    ck_assert_int_eq(c.family, cidrs[_i].family);
    ck_assert_uint_eq(c.prefix, cidrs[_i].prefix);
    char buf[INET6_ADDRSTRLEN];
    ck_assert_ptr_nonnull(inet_ntop(c.family, c.addr, buf, sizeof(buf)));
    ck_assert_str_eq(buf, cidrs[_i].net);
    if (c.family == AF_INET) {
        for (int k = 4; k < 16; k++)
            ck_assert_int_eq(c.addr[k], 0);
    }
}
END_TEST

static const struct {
    const char *cidr, *addr;
    int want;
} matches[] = {
    {"192.0.2.0/24", "192.0.2.0", 1},
    {"192.0.2.0/24", "192.0.2.255", 1},
    {"192.0.2.0/24", "192.0.3.0", 0},
    {"192.0.2.0/24", "192.0.1.255", 0},
    {"192.0.2.0/24", "::ffff:192.0.2.9", 1}, /* mapped client, IPv4 network */
    {"192.0.2.0/24", "::ffff:192.0.3.9", 0},
    {"192.0.2.0/24", "::192.0.2.9", 0}, /* IPv4-compatible is not mapped */
    {"192.0.2.0/24", "2001:db8::1", 0},
    {"::ffff:192.0.2.0/120", "192.0.2.9", 1},
    {"0.0.0.0/0", "255.255.255.255", 1},
    {"0.0.0.0/0", "::ffff:1.2.3.4", 1},
    {"0.0.0.0/0", "::1", 0},
    {"::/0", "2001:db8::1", 1},
    {"::/0", "::1", 1},
    {"::/0", "1.2.3.4", 0},
    {"::/0", "::ffff:1.2.3.4", 0}, /* mapped is matched as IPv4 */
    {"10.1.2.3/32", "10.1.2.3", 1},
    {"10.1.2.3/32", "10.1.2.2", 0},
    {"10.128.0.0/9", "10.200.0.1", 1},
    {"10.128.0.0/9", "10.127.255.255", 0},
    {"2001:db8::/32", "2001:db8:ffff:ffff::1", 1},
    {"2001:db8::/32", "2001:db9::", 0},
    {"2001:db8::1/128", "2001:db8::1", 1},
    {"2001:db8::1/128", "2001:db8::2", 0},
    {"2001:db8:8000::/33", "2001:db8:7fff::1", 0},
    {"2001:db8:8000::/33", "2001:db8:8000::1", 1},
    {"::1/128", "::1", 1},
    {"::1/128", "127.0.0.1", 0},
};

START_TEST(t_cidr_match)
{
    gw_cidr c;
    unsigned char a[16];
    ck_assert_ptr_null(gw_cidr_parse(matches[_i].cidr, &c));
    int fam = strchr(matches[_i].addr, ':') != NULL ? AF_INET6 : AF_INET;
    ck_assert_int_eq(inet_pton(fam, matches[_i].addr, a), 1);
    ck_assert_msg(gw_cidr_match(&c, fam, a) == matches[_i].want, "%s in %s: want %d",
                  matches[_i].addr, matches[_i].cidr, matches[_i].want);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cidr");
    TCase *tc = tcase_create("cidr");
    tcase_add_loop_test(tc, t_cidr_parse, 0, (int)(sizeof(cidrs) / sizeof(cidrs[0])));
    tcase_add_loop_test(tc, t_cidr_match, 0, (int)(sizeof(matches) / sizeof(matches[0])));
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
