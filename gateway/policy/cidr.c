/*
 * CIDR networks: parsing (IPv4, IPv6, IPv4-mapped IPv6 stored as IPv4) and
 * matching an address. Used by the policy parser (consumer.ip_allowlist)
 * and the stages (trusted proxies).
 */
#include "policy/cidr.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static int is_v4mapped(const unsigned char *a)
{
    static const unsigned char pfx[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(a, pfx, 12) == 0;
}

/* 1 when the first <bits> bits of <a> and <b> are equal. */
static int prefix_eq(const unsigned char *a, const unsigned char *b, unsigned bits)
{
    unsigned full = bits / 8, rest = bits % 8;
    if (memcmp(a, b, full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

const char *gw_cidr_parse(const char *s, gw_cidr *out)
{
    char buf[INET6_ADDRSTRLEN];
    gw_cidr c;
    unsigned max;

    memset(&c, 0, sizeof(c));
    if (s == NULL)
        return "not a CIDR";
    const char *slash = strchr(s, '/');
    size_t alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
    if (alen == 0 || alen >= sizeof(buf))
        return "not a CIDR";
    memcpy(buf, s, alen);
    buf[alen] = '\0';
    if (memchr(buf, ':', alen) != NULL) {
        if (inet_pton(AF_INET6, buf, c.addr) != 1)
            return "not a CIDR";
        c.family = AF_INET6;
        max = 128;
    } else {
        if (inet_pton(AF_INET, buf, c.addr) != 1)
            return "not a CIDR";
        c.family = AF_INET;
        max = 32;
    }
    c.prefix = max;
    if (slash != NULL) {
        const char *q = slash + 1;
        size_t n = strlen(q);
        if (n == 0 || n > 3 || strspn(q, "0123456789") != n || (n > 1 && q[0] == '0'))
            return "not a CIDR";
        unsigned v = (unsigned)atoi(q);
        if (v > max)
            return "prefix out of range";
        c.prefix = v;
    }
    if (c.family == AF_INET6 && c.prefix >= 96 && is_v4mapped(c.addr)) {
        memmove(c.addr, c.addr + 12, 4);
        memset(c.addr + 4, 0, 12);
        c.family = AF_INET;
        c.prefix -= 96;
        max = 32;
    }
    for (unsigned bit = c.prefix; bit < max; bit++) {
        if (c.addr[bit / 8] & (0x80 >> (bit % 8)))
            return "host bits set";
    }
    if (out != NULL)
        *out = c;
    return NULL;
}

int gw_cidr_match(const gw_cidr *c, int family, const unsigned char *addr)
{
    if (c == NULL || addr == NULL)
        return 0;
    if (family == AF_INET6 && is_v4mapped(addr)) {
        family = AF_INET;
        addr += 12;
    }
    if (family != c->family)
        return 0;
    return prefix_eq(c->addr, addr, c->prefix);
}
