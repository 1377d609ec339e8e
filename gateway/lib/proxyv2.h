/* PROXY protocol version 2 (HAProxy's binary header), parsed from bytes
 * only: no socket, no allocation, no state beyond the caller's buffer.
 *
 * The header is a 12-byte signature, a version/command byte, a
 * family/protocol byte, a 16-bit big-endian length, then that many bytes:
 * the address block of the family, optionally followed by TLVs. The caller
 * keeps the bytes read so far in one buffer of GW_PP2_MAX bytes and, while
 * the answer is GW_PP2_MORE, reads at most (<need> - <len>) more bytes from
 * its socket, so that not one byte past the header (the client's first TLS
 * byte) is consumed.
 *
 * What is accepted (docs/architecture.md, "PROXY protocol v2"):
 *  - version 2 only; command LOCAL (0) or PROXY (1);
 *  - LOCAL (a load balancer's own health check): the whole block is
 *    ignored, the connection keeps its socket's addresses;
 *  - PROXY over TCP/IPv4 (0x11) or TCP/IPv6 (0x21): the source address and
 *    port; an IPv4-mapped IPv6 source is given as IPv4. The bytes after
 *    the address block must be whole TLVs (type, 16-bit length, value),
 *    which are skipped;
 *  - PROXY with family UNSPEC (0x00): the block is ignored, like LOCAL;
 *  - anything else is refused: UDP (0x12, 0x22), UNIX sockets (0x31,
 *    0x32), unknown families, a block shorter than its family's addresses,
 *    a header longer than GW_PP2_MAX. */
#ifndef GW_LIB_PROXYV2_H
#define GW_LIB_PROXYV2_H

#include <stddef.h>
#include <stdint.h>

/* The fixed part: signature, version/command, family, length. */
#define GW_PP2_FIXED 16
/* The longest header accepted: the fixed part and the longest address
 * block of the specification (216 bytes, AF_UNIX's), which leaves room for
 * TLVs after the IPv4 (12 bytes) and IPv6 (36 bytes) blocks. */
#define GW_PP2_MAX (GW_PP2_FIXED + 216)

typedef enum {
    GW_PP2_MORE = 0,    /* a valid prefix: read up to <need> bytes in all */
    GW_PP2_DONE = 1,    /* a complete, accepted header of <need> bytes */
    GW_PP2_REFUSED = 2, /* not a header we accept: <reason> says why */
} gw_pp2_status;

typedef struct {
    /* GW_PP2_MORE: how many bytes the header needs in all, as far as known
     * (16 until the length is read, then 16 + length); GW_PP2_DONE: the
     * header's exact size; GW_PP2_REFUSED: 0. */
    size_t need;
    /* GW_PP2_DONE: 1 when the header gave the client's address (PROXY over
     * TCP), 0 when the connection keeps the socket's (LOCAL, UNSPEC). */
    int proxied;
    int family;             /* AF_INET or AF_INET6 when proxied, else 0 */
    unsigned char addr[16]; /* the source address: 4 or 16 bytes */
    uint16_t port;          /* the source port, host order */
    int local;              /* the command was LOCAL */
    /* GW_PP2_REFUSED: a constant string naming the first fault
     * ("bad signature", "unsupported version", ...), NULL otherwise. */
    const char *reason;
} gw_pp2_result;

/* Look at the <len> bytes at <buf>, the start of a connection's input.
 * Returns GW_PP2_MORE while <buf> is a valid prefix of an acceptable header
 * (every byte is checked as soon as it is there: a wrong signature byte is
 * refused at once), GW_PP2_DONE once the header is complete and accepted,
 * GW_PP2_REFUSED otherwise. Bytes after the header (len > need) are
 * ignored. <res> is always filled. Pure: the same bytes give the same
 * answer, and a longer input never turns a refusal into an acceptance. */
gw_pp2_status gw_pp2_parse(const unsigned char *buf, size_t len, gw_pp2_result *res);

#endif
