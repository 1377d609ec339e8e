/* ipallow: the client address must be in the habilitation's allowlist.
 *
 * The client address is the TCP peer's, unless that peer is a configured
 * trusted proxy: then the PROXY protocol v2 address (read by core before the
 * handshake) or, failing that, the right-most X-Forwarded-For hop that is not
 * itself a trusted proxy. A client's own X-Forwarded-For is never believed. */
#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

#include "stages/confs.h"
#include "stages/stages.h"

static void set_client(gw_access *a, int family, const unsigned char *addr)
{
    a->client_family = family;
    memcpy(a->client_addr, addr, family == AF_INET ? 4 : 16);
    inet_ntop(family, addr, a->client_ip, sizeof(a->client_ip));
}

/* Parse one XFF element (OWS-trimmed); IPv4-mapped IPv6 becomes IPv4. */
static int parse_hop(const char *s, size_t n, int *family, unsigned char addr[16])
{
    while (n > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    char buf[64];
    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (inet_pton(AF_INET, buf, addr) == 1) {
        *family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, buf, addr) == 1) {
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(addr, mapped, 12) == 0) {
            memmove(addr, addr + 12, 4);
            *family = AF_INET;
        } else {
            *family = AF_INET6;
        }
        return 0;
    }
    return -1;
}

/* Resolve the effective client address into <a>. Returns 0, or -1 when a
 * trusted proxy sent an unusable X-Forwarded-For. */
int gw_ipallow_resolve(gw_access *a)
{
    set_client(a, a->peer_family, a->peer_addr);
    if (a->confs == NULL || !gw_is_trusted_proxy(a->confs, a->peer_family, a->peer_addr))
        return 0;
    if (a->proxied) {
        set_client(a, a->proxy_family, a->proxy_addr);
        return 0;
    }
    /* right-most untrusted hop over every X-Forwarded-For line, in order */
    int have = 0, fam = 0;
    unsigned char addr[16];
    for (size_t i = a->http->nheaders; i-- > 0;) {
        const gw_http_header *h = &a->http->headers[i];
        if (!gw_strcaseeq(h->name, h->name_len, "X-Forwarded-For"))
            continue;
        const char *v = h->value;
        size_t end = h->value_len;
        while (end > 0) {
            size_t start = end;
            while (start > 0 && v[start - 1] != ',')
                start--;
            if (parse_hop(v + start, end - start, &fam, addr) < 0)
                return -1;
            set_client(a, fam, addr);
            have = 1;
            if (!gw_is_trusted_proxy(a->confs, fam, addr))
                return 0;
            end = start > 0 ? start - 1 : 0;
            if (start == 0)
                break;
        }
    }
    (void)have;
    return 0;
}

static gw_verdict run(gw_access *a)
{
    if (gw_ipallow_resolve(a) < 0)
        return gw_access_reject(a, GW_ERR_IP_DENIED, "ipallow.bad_forwarded_for");
    if (!gw_policy_ip_allowed(a->policy, a->client_family, a->client_addr))
        return gw_access_reject(a, GW_ERR_IP_DENIED, NULL);
    return GW_STAGE_NEXT;
}

const gw_stage gw_stage_ipallow = {"ipallow", run, NULL};
