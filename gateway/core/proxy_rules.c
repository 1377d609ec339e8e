/* The upstream pool's decisions (see proxy_rules.h). */
#include "core/proxy_rules.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

int gw_upstream_addr_parse(const char *s, struct sockaddr_storage *ss, socklen_t *sl)
{
    char host[64];
    const char *colon;
    memset(ss, 0, sizeof(*ss));
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL || end[1] != ':' || (size_t)(end - s - 1) >= sizeof(host))
            return -1;
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = '\0';
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
            return -1;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
    }
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || port <= 0 || port > 65535)
        return -1;
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (s[0] != '[' && inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *sl = sizeof(*a4);
        return 0;
    }
    if (s[0] == '[' && inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *sl = sizeof(*a6);
        return 0;
    }
    return -1;
}

const char *gw_proxy_fail_outcome(int on_wire, gw_err_id err, const char *detail)
{
    switch (err) {
    case GW_ERR_UPSTREAM_DOWN:
        return on_wire ? "reset" : "connect_failed";
    case GW_ERR_UPSTREAM_TIMEOUT:
        return on_wire ? "timeout" : "connect_timeout";
    case GW_ERR_UPSTREAM_INVALID:
        return detail != NULL && (strcmp(detail, "upstream.too_large") == 0 ||
                                  strcmp(detail, "upstream.budget_exceeded") == 0)
                   ? "too_large"
                   : "invalid";
    default:
        return "error";
    }
}

int gw_proxy_may_retry(int reused, int got_bytes, int idempotent, int retried, gw_err_id err)
{
    return reused && !got_bytes && idempotent && !retried && err == GW_ERR_UPSTREAM_DOWN;
}

int gw_resp_budget_charge(gw_resp_budget *b, size_t *charged, int64_t declared, size_t received)
{
    if (b == NULL)
        return 0;
    size_t need = received;
    if (declared > 0 && (uint64_t)declared > need)
        need = (size_t)declared;
    if (need <= *charged)
        return 0;
    size_t more = need - *charged;
    if (more > b->limit - b->used) {
        b->refused++;
        return -1;
    }
    b->used += more;
    *charged = need;
    return 0;
}

void gw_resp_budget_release(gw_resp_budget *b, size_t *charged)
{
    if (b != NULL && *charged > 0)
        b->used -= *charged;
    *charged = 0;
}
