/* CIDR networks (policy/cidr.c). Pure functions. */
#ifndef GW_POLICY_CIDR_H
#define GW_POLICY_CIDR_H

typedef struct gw_cidr {
    int family;             /* AF_INET or AF_INET6 */
    unsigned char addr[16]; /* network address, host bits zero */
    unsigned prefix;
} gw_cidr;

/* Parse "192.0.2.0/24", "2001:db8::/32", or a bare address (= /32, /128).
 * An IPv4-mapped IPv6 network ::ffff:a.b.c.d/N (N >= 96) is stored as IPv4.
 * Host bits set ("10.0.0.1/8") are an error. Returns NULL or a constant
 * message ("not a CIDR", "prefix out of range", "host bits set"). */
const char *gw_cidr_parse(const char *s, gw_cidr *out);

/* 1 when <addr> (4 or 16 bytes of <family>; IPv4-mapped IPv6 is matched as
 * IPv4) lies in <c>. */
int gw_cidr_match(const gw_cidr *c, int family, const unsigned char *addr);

#endif
