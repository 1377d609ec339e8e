/* PROXY protocol v2 parsing (see proxyv2.h). */
#include "proxyv2.h"

#include <string.h>
#include <sys/socket.h>

static const unsigned char pp2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                          0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

#define PP2_CMD_LOCAL 0x0
#define PP2_CMD_PROXY 0x1
#define PP2_TCP4 0x11
#define PP2_TCP6 0x21
#define PP2_UNSPEC 0x00
#define PP2_ADDR4_LEN 12 /* two IPv4 addresses, two ports */
#define PP2_ADDR6_LEN 36 /* two IPv6 addresses, two ports */

static gw_pp2_status refuse(gw_pp2_result *res, const char *reason)
{
    memset(res, 0, sizeof(*res));
    res->reason = reason;
    return GW_PP2_REFUSED;
}

/* The bytes after the address block: whole TLVs (type, 16-bit length,
 * value), none running past the end of the header. */
static int tlvs_whole(const unsigned char *p, size_t n)
{
    while (n > 0) {
        if (n < 3)
            return 0;
        size_t vlen = ((size_t)p[1] << 8) | p[2];
        if (vlen > n - 3)
            return 0;
        p += 3 + vlen;
        n -= 3 + vlen;
    }
    return 1;
}

gw_pp2_status gw_pp2_parse(const unsigned char *buf, size_t len, gw_pp2_result *res)
{
    memset(res, 0, sizeof(*res));
    size_t sig = len < sizeof(pp2_sig) ? len : sizeof(pp2_sig);
    if (sig > 0 && memcmp(buf, pp2_sig, sig) != 0)
        return refuse(res, "bad signature");
    if (len > 12) {
        if ((buf[12] >> 4) != 2)
            return refuse(res, "unsupported version");
        if ((buf[12] & 15) != PP2_CMD_LOCAL && (buf[12] & 15) != PP2_CMD_PROXY)
            return refuse(res, "unsupported command");
    }
    int local = len > 12 && (buf[12] & 15) == PP2_CMD_LOCAL;
    if (len > 13 && !local && buf[13] != PP2_TCP4 && buf[13] != PP2_TCP6 && buf[13] != PP2_UNSPEC)
        return refuse(res, "unsupported family or protocol");
    if (len < GW_PP2_FIXED) {
        res->need = GW_PP2_FIXED;
        return GW_PP2_MORE;
    }
    size_t blen = ((size_t)buf[14] << 8) | buf[15];
    if (blen > GW_PP2_MAX - GW_PP2_FIXED)
        return refuse(res, "header too long");
    unsigned char fam = buf[13];
    if (!local && fam == PP2_TCP4 && blen < PP2_ADDR4_LEN)
        return refuse(res, "address block too short");
    if (!local && fam == PP2_TCP6 && blen < PP2_ADDR6_LEN)
        return refuse(res, "address block too short");
    size_t need = GW_PP2_FIXED + blen;
    if (len < need) {
        res->need = need;
        return GW_PP2_MORE;
    }
    const unsigned char *p = buf + GW_PP2_FIXED;
    if (!local && fam == PP2_TCP4) {
        if (!tlvs_whole(p + PP2_ADDR4_LEN, blen - PP2_ADDR4_LEN))
            return refuse(res, "malformed TLV");
        res->proxied = 1;
        res->family = AF_INET;
        memcpy(res->addr, p, 4);
        res->port = (uint16_t)((p[8] << 8) | p[9]);
    } else if (!local && fam == PP2_TCP6) {
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (!tlvs_whole(p + PP2_ADDR6_LEN, blen - PP2_ADDR6_LEN))
            return refuse(res, "malformed TLV");
        res->proxied = 1;
        if (memcmp(p, mapped, sizeof(mapped)) == 0) {
            res->family = AF_INET;
            memcpy(res->addr, p + 12, 4);
        } else {
            res->family = AF_INET6;
            memcpy(res->addr, p, 16);
        }
        res->port = (uint16_t)((p[32] << 8) | p[33]);
    }
    /* LOCAL and UNSPEC: the block (addresses, TLVs) is not looked at. */
    res->local = local;
    res->need = need;
    return GW_PP2_DONE;
}
