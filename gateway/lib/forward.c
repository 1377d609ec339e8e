#include "lib/forward.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/errors.h"
#include "lib/util.h"

static const gw_name request_stripped[] = {
    GW_NAME("Authorization"),
    GW_NAME("Host"),
    GW_NAME("Content-Length"),
    GW_NAME("Expect"),
    GW_NAME("X-Forwarded-For"),
    GW_NAME("X-Forwarded-Proto"),
    GW_NAME("X-Forwarded-Host"),
    GW_NAME("X-Forwarded-Port"),
    GW_NAME("Forwarded"),
    GW_NAME("X-Real-IP"),
    GW_NAME("X-Request-ID"),
    GW_NAME("X-Correlation-ID"),
    GW_NAME("X-JWT-Assertion"),
    GW_NAME("X-Consumer-Id"),
    GW_NAME("X-Habilitation-Id"),
    GW_NAME("X-Opale-Env"),
    GW_NAME("X-Gateway-Request-MAC"),
};

/* Client headers every route forwards (docs/configuration.md, "headers"). */
static const gw_name request_default_allowed[] = {
    GW_NAME("Accept"),
    GW_NAME("Accept-Language"),
    GW_NAME("User-Agent"),
};

/* Headers of the upstream response replaced by the gateway's own. */
static const gw_name response_stripped[] = {
    GW_NAME("Content-Length"),
    GW_NAME("X-Request-ID"),
    GW_NAME("X-Correlation-ID"),
};

static int in_list(const gw_name *list, size_t n, const gw_http_header *h)
{
    for (size_t i = 0; i < n; i++)
        if (gw_strcaseeqn(h->name, h->name_len, list[i].s, list[i].len))
            return 1;
    return 0;
}

int gw_forward_strips_request_header(const gw_http_request *r, const gw_http_header *h)
{
    if (in_list(request_stripped, sizeof(request_stripped) / sizeof(request_stripped[0]), h))
        return 1;
    return gw_http_is_hop_by_hop(h->name, h->name_len, r->headers, r->nheaders);
}

int gw_forward_allows_request_header(const gw_http_request *r, const gw_http_header *h,
                                     const char *const *allow, size_t nallow)
{
    int ok = in_list(request_default_allowed,
                     sizeof(request_default_allowed) / sizeof(request_default_allowed[0]), h);
    for (size_t i = 0; !ok && allow != NULL && i < nallow; i++)
        ok = allow[i] != NULL && gw_strcaseeq(h->name, h->name_len, allow[i]);
    return ok && !gw_forward_strips_request_header(r, h);
}

/* "Content-Length: <n>\r\n" and "HTTP/1.1 <status> <reason>\r\n", without
 * printf (once per request each). */
static void put_length(gw_buf *b, size_t n)
{
    gw_buf_append(b, "Content-Length: ", 16);
    gw_buf_put_ull(b, n);
    gw_buf_append(b, "\r\n", 2);
}

static void put_status_line(gw_buf *b, int status)
{
    char num[24];
    size_t n = gw_fmt_ll(num, status);
    gw_buf_append(b, "HTTP/1.1 ", 9);
    gw_buf_append(b, num, n);
    gw_buf_append(b, " ", 1);
    gw_buf_puts(b, gw_http_reason_phrase(status));
    gw_buf_append(b, "\r\n", 2);
}

static void put_header(gw_buf *b, const char *name, size_t nlen, const char *value, size_t vlen)
{
    gw_buf_append(b, name, nlen);
    gw_buf_append(b, ": ", 2);
    gw_buf_append(b, value, vlen);
    gw_buf_append(b, "\r\n", 2);
}

/* <len>: the lengths of the first <nlen> extras' names and values, measured
 * already (the request's size estimate), the rest measured here. */
static void put_extra(gw_buf *b, const gw_extra_header *x, size_t n, const size_t (*len)[2],
                      size_t nlen)
{
    for (size_t i = 0; i < n; i++) {
        if (i < nlen)
            put_header(b, x[i].name, len[i][0], x[i].value, len[i][1]);
        else
            put_header(b, x[i].name, strlen(x[i].name), x[i].value, strlen(x[i].value));
    }
}

char *gw_forward_request(const gw_http_request *r, const gw_fwd_req_ctx *c, size_t *len)
{
    gw_buf b = {0};
    /* one allocation: the client's headers cross through an allowlist, so
     * 1 KiB covers them and the gateway's own; the extras (the assertion)
     * and the body on top */
    size_t est = 1024 + (c->body ? r->body_len : 0);
    size_t xlen[16][2]; /* the extras' lengths, measured once */
    size_t nx = c->nextra < 16 ? c->nextra : 16;
    for (size_t i = 0; i < c->nextra; i++) {
        size_t nl = strlen(c->extra[i].name), vl = strlen(c->extra[i].value);
        if (i < nx) {
            xlen[i][0] = nl;
            xlen[i][1] = vl;
        }
        est += nl + vl + 4;
    }
    gw_buf_reserve_blk(&b, est);
    gw_buf_append(&b, r->method, strlen(r->method));
    gw_buf_append(&b, " ", 1);
    if (c->target != NULL)
        gw_buf_append(&b, c->target, c->target_len);
    else
        gw_buf_append(&b, r->target, r->target_len);
    gw_buf_puts(&b, " HTTP/1.1\r\n");
    put_header(&b, "Host", 4, c->host, strlen(c->host));
    for (size_t i = 0; i < r->nheaders; i++) {
        const gw_http_header *h = &r->headers[i];
        int content_type = c->body && gw_strcaseeq(h->name, h->name_len, "Content-Type");
        if (!content_type && !gw_forward_allows_request_header(r, h, c->allow, c->nallow))
            continue;
        put_header(&b, h->name, h->name_len, h->value, h->value_len);
    }
    put_header(&b, "X-Forwarded-For", 15, c->client_ip, strlen(c->client_ip));
    gw_buf_puts(&b, "X-Forwarded-Proto: https\r\n");
    put_header(&b, "X-Request-ID", 12, c->request_id, strlen(c->request_id));
    if (c->correlation_id != NULL)
        put_header(&b, "X-Correlation-ID", 16, c->correlation_id, strlen(c->correlation_id));
    put_extra(&b, c->extra, c->nextra, (const size_t(*)[2])xlen, nx);
    if (c->body && (r->body_len > 0 || r->content_length >= 0 || r->chunked))
        put_length(&b, r->body_len);
    if (c->close)
        gw_buf_puts(&b, "Connection: close\r\n");
    gw_buf_append(&b, "\r\n", 2);
    if (c->body && r->body_len > 0)
        gw_buf_append(&b, r->body, r->body_len);
    return gw_buf_take(&b, len);
}

static void put_common_response(gw_buf *b, const gw_fwd_resp_ctx *c, size_t body_len)
{
    put_length(b, body_len);
    put_header(b, "X-Request-ID", 12, c->request_id, strlen(c->request_id));
    if (c->correlation_id != NULL)
        put_header(b, "X-Correlation-ID", 16, c->correlation_id, strlen(c->correlation_id));
    put_extra(b, c->extra, c->nextra, NULL, 0);
    if (c->close)
        gw_buf_puts(b, "Connection: close\r\n");
    gw_buf_append(b, "\r\n", 2);
}

char *gw_forward_response(const gw_http_response *r, const gw_fwd_resp_ctx *c, size_t *len)
{
    gw_buf b = {0};
    gw_buf_reserve_blk(&b, 1024 + r->body_len); /* one allocation in the common case */
    put_status_line(&b, r->status);
    for (size_t i = 0; i < r->nheaders; i++) {
        const gw_http_header *h = &r->headers[i];
        if (in_list(response_stripped, sizeof(response_stripped) / sizeof(response_stripped[0]),
                    h) ||
            gw_http_is_hop_by_hop(h->name, h->name_len, r->headers, r->nheaders))
            continue;
        put_header(&b, h->name, h->name_len, h->value, h->value_len);
    }
    int no_body = c->head || r->status == 204 || r->status == 304;
    put_common_response(&b, c, no_body ? 0 : r->body_len);
    if (!no_body && r->body_len > 0)
        gw_buf_append(&b, r->body, r->body_len);
    return gw_buf_take(&b, len);
}

char *gw_local_response(int status, const char *content_type, const char *body, size_t body_len,
                        const gw_fwd_resp_ctx *c, size_t *len)
{
    gw_buf b = {0};
    gw_buf_reserve(&b, 512 + body_len);
    put_status_line(&b, status);
    if (content_type != NULL)
        put_header(&b, "Content-Type", 12, content_type, strlen(content_type));
    gw_buf_puts(&b, "Cache-Control: no-store\r\n");
    put_common_response(&b, c, c->head ? 0 : body_len);
    if (!c->head && body_len > 0)
        gw_buf_append(&b, body, body_len);
    return gw_buf_take(&b, len);
}
