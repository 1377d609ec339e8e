/* ipallow: the client address must be in the habilitation's allowlist.
 *
 * The client address is the TCP peer's, unless that peer is a configured
 * trusted proxy: then the PROXY protocol v2 address (read by core before the
 * handshake) or, failing that, the right-most X-Forwarded-For hop that is not
 * itself a trusted proxy. A client's own X-Forwarded-For is never believed.
 * Needs mtls (the habilitation). Its result: the effective client address.
 *
 * Its settings, "access.trusted_proxies": ["10.0.0.0/8", ...], the peers
 * allowed to state the client address (X-Forwarded-For, PROXY v2). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "stages/stages.h"

typedef struct trusted {
    gw_cidr *cidrs;
    size_t n;
} trusted;

static const char *const needs[] = {"mtls", NULL};

static int is_trusted(const trusted *t, int family, const unsigned char *addr)
{
    for (size_t i = 0; t != NULL && i < t->n; i++)
        if (gw_cidr_match(&t->cidrs[i], family, addr))
            return 1;
    return 0;
}

int gw_ipallow_trusted(const gw_stage_lists *l, int family, const unsigned char *addr)
{
    return is_trusted(gw_stage_lists_conf(l, &gw_stage_ipallow), family, addr);
}

/* <text>: the address as the connection formatted it once (inet_ntop), so
 * that a request from the peer or its PROXY source needs no inet_ntop (for
 * IPv4, a sprintf in glibc); NULL: formatted here (X-Forwarded-For hops). */
static void set_client(gw_ipallow_out *o, int family, const unsigned char *addr, const char *text)
{
    o->family = family;
    memcpy(o->addr, addr, family == AF_INET ? 4 : 16);
    size_t n;
    if (text != NULL && (family == AF_INET || family == AF_INET6) &&
        (n = strnlen(text, sizeof(o->ip))) < sizeof(o->ip))
        memcpy(o->ip, text, n + 1);
    else
        inet_ntop(family, addr, o->ip, sizeof(o->ip));
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

int gw_ipallow_resolve(const gw_req_view *req, const void *conf, gw_ipallow_out *o)
{
    const trusted *t = conf;
    set_client(o, req->peer_family, req->peer_addr, req->peer_ip);
    if (!is_trusted(t, req->peer_family, req->peer_addr))
        return 0;
    if (req->proxied) {
        set_client(o, req->proxy_family, req->proxy_addr, req->proxy_ip);
        return 0;
    }
    /* right-most untrusted hop over every X-Forwarded-For line, in order */
    int fam = 0;
    unsigned char addr[16];
    const gw_http_request *http = req->http;
    for (size_t i = http->nheaders; i-- > 0;) {
        const gw_http_header *h = &http->headers[i];
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
            set_client(o, fam, addr, NULL);
            if (!is_trusted(t, fam, addr))
                return 0;
            end = start > 0 ? start - 1 : 0;
            if (start == 0)
                break;
        }
    }
    return 0;
}

static gw_verdict run(const gw_stage_call *c)
{
    gw_ipallow_out *o = c->out;
    if (gw_ipallow_resolve(c->req, c->conf, o) < 0)
        return gw_reply_reject(c->reply, GW_ERR_IP_DENIED, "ipallow.bad_forwarded_for");
    if (!gw_policy_ip_allowed(c->res->mtls.policy, o->family, o->addr))
        return gw_reply_reject(c->reply, GW_ERR_IP_DENIED, NULL);
    return GW_STAGE_NEXT;
}

static void free_conf(void *p)
{
    trusted *t = p;
    if (t != NULL)
        free(t->cidrs);
    free(t);
}

static int parse(const gw_conf *c, json_t *tp, gw_jsonv *jv, void **out)
{
    (void)c;
    trusted *t = gw_jsonv_calloc(jv, "access.trusted_proxies", 1, sizeof(*t));
    *out = t;
    if (t == NULL)
        return -1;
    if (tp == NULL)
        return 0;
    if (!json_is_array(tp) || json_array_size(tp) > 256) {
        gw_jsonv_err(jv, "access.trusted_proxies", "must be an array of at most 256 CIDRs");
        return -1;
    }
    t->cidrs =
        gw_jsonv_calloc(jv, "access.trusted_proxies", json_array_size(tp) + 1, sizeof(*t->cidrs));
    if (t->cidrs == NULL)
        return -1;
    int bad = 0;
    size_t i;
    json_t *v;
    json_array_foreach(tp, i, v)
    {
        char p[GW_JSONV_PATH];
        gw_jsonv_path_idx(p, "access.trusted_proxies", i);
        const char *msg = json_is_string(v) ? gw_cidr_parse(json_string_value(v), &t->cidrs[t->n])
                                            : "must be a string";
        if (msg != NULL) {
            gw_jsonv_err(jv, p, "%s", msg);
            bad = 1;
        } else {
            t->n++;
        }
    }
    return bad ? -1 : 0;
}

const gw_stage gw_stage_ipallow = {
    .name = "ipallow",
    .needs = needs,
    .out = offsetof(gw_results, ipallow),
    .key = "trusted_proxies",
    .parse = parse,
    .free_conf = free_conf,
    .run = run,
};
