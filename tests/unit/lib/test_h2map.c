/* Unit tests for gateway/lib/h2map.c: an HTTP/2 header block rewritten as
 * the HTTP/1.1 head the strict parser reads (pseudo-headers mapped, Host
 * from :authority, chunked framing for a body of unknown length) and read
 * back by that parser; every RFC 9113 refusal with its reason (table-driven);
 * a response built as HTTP/1.1 split back into :status, fields and body. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "lib/forward.h"
#include "lib/h2map.h"
#include "lib/http1.h"

typedef struct {
    const char *n, *v;
} kv;

#define REQ                                                                                        \
    {":method", "GET"}, {":scheme", "https"}, {":authority", "api.example"},                       \
    {                                                                                              \
        ":path", "/opale/v1/etatSante?x=1"                                                         \
    }

static const char *map(const kv *f, size_t n, int body_unknown, char **head, size_t *len)
{
    gw_h2map m;
    memset(&m, 0, sizeof(m));
    for (size_t i = 0; i < n; i++)
        gw_h2map_field(&m, f[i].n, strlen(f[i].n), f[i].v, strlen(f[i].v));
    const char *e = gw_h2map_head(&m, body_unknown, head, len);
    gw_h2map_free(&m);
    return e;
}

START_TEST(t_request_mapped_and_parsed)
{
    const kv f[] = {REQ,
                    {"accept", "application/json"},
                    {"id_teleservice", "TS-1"},
                    {"cookie", "a=1"},
                    {"cookie", "b=2"},
                    {"te", "trailers"}};
    char *head = NULL;
    size_t len = 0;
    ck_assert_ptr_null(map(f, sizeof(f) / sizeof(f[0]), 0, &head, &len));
    ck_assert_str_eq(head, "GET /opale/v1/etatSante?x=1 HTTP/1.1\r\n"
                           "host: api.example\r\n"
                           "accept: application/json\r\n"
                           "id_teleservice: TS-1\r\n"
                           "cookie: a=1\r\ncookie: b=2\r\n"
                           "te: trailers\r\n\r\n");
    /* the same parser as HTTP/1.1 reads it */
    gw_http_limits lim = {8192, 50, 4096};
    gw_http_parser *p = gw_http_parser_new(0, &lim);
    size_t used = 0;
    ck_assert_int_eq(gw_http_parser_feed(p, head, len, &used), GW_HTTP_COMPLETE);
    ck_assert_uint_eq(used, len);
    gw_http_request *r = gw_http_parser_take_request(p);
    ck_assert_str_eq(r->method, "GET");
    ck_assert_uint_eq(r->path_len, strlen("/opale/v1/etatSante"));
    size_t hl = 0;
    const char *h = gw_http_request_header(r, "Host", &hl);
    ck_assert_ptr_nonnull(h);
    ck_assert_str_eq(h, "api.example");
    ck_assert_ptr_nonnull(gw_http_request_header(r, "ID_Teleservice", &hl));
    gw_http_request_free(r);
    gw_http_parser_free(p);
    free(head);
}
END_TEST

START_TEST(t_host_without_authority_and_equal)
{
    const kv f1[] = {
        {":method", "GET"}, {":scheme", "https"}, {":path", "/"}, {"host", "h.example"}};
    char *head = NULL;
    size_t len = 0;
    ck_assert_ptr_null(map(f1, 4, 0, &head, &len));
    ck_assert_str_eq(head, "GET / HTTP/1.1\r\nhost: h.example\r\n\r\n");
    free(head);
    const kv f2[] = {REQ, {"host", "API.example"}};
    ck_assert_ptr_null(map(f2, 5, 0, &head, &len));
    ck_assert_str_eq(head, "GET /opale/v1/etatSante?x=1 HTTP/1.1\r\nhost: api.example\r\n\r\n");
    free(head);
}
END_TEST

START_TEST(t_body_framing)
{
    const kv f1[] = {REQ};
    char *head = NULL;
    size_t len = 0;
    ck_assert_ptr_null(map(f1, 4, 1, &head, &len));
    ck_assert_ptr_nonnull(strstr(head, "transfer-encoding: chunked\r\n\r\n"));
    free(head);
    const kv f2[] = {REQ, {"content-length", "12"}};
    ck_assert_ptr_null(map(f2, 5, 1, &head, &len));
    ck_assert_ptr_null(strstr(head, "transfer-encoding"));
    ck_assert_ptr_nonnull(strstr(head, "content-length: 12\r\n\r\n"));
    free(head);
    char hdr[20];
    ck_assert_uint_eq(gw_h2map_chunk(255, hdr), 4);
    ck_assert(memcmp(hdr, "ff\r\n", 4) == 0);
}
END_TEST

/* every refusal: the fields after REQ, and the reason */
static const struct {
    kv extra[3];
    size_t n;
    const char *reason;
} bad[] = {
    {{{"X-Upper", "1"}}, 1, "h2.uppercase_header"},
    {{{"connection", "close"}}, 1, "h2.connection_header"},
    {{{"keep-alive", "1"}}, 1, "h2.connection_header"},
    {{{"proxy-connection", "1"}}, 1, "h2.connection_header"},
    {{{"transfer-encoding", "chunked"}}, 1, "h2.connection_header"},
    {{{"upgrade", "h2c"}}, 1, "h2.connection_header"},
    {{{"te", "gzip"}}, 1, "h2.bad_te"},
    {{{"te", "trailers, gzip"}}, 1, "h2.bad_te"},
    {{{"host", "other.example"}}, 1, "h2.authority_mismatch"},
    {{{"accept", " a"}}, 1, "h2.bad_header_value"},
    {{{"accept", "a "}}, 1, "h2.bad_header_value"},
    {{{"accept", "a\tb\r\nx: y"}}, 1, "h2.bad_header_value"},
    {{{"accept", "a\nb"}}, 1, "h2.bad_header_value"},
    {{{"x y", "1"}}, 1, "h2.bad_header_name"},
    {{{"x:y", "1"}}, 1, "h2.bad_header_name"},
    {{{"", "1"}}, 1, "h2.bad_header_name"},
    {{{":path", "/again"}}, 1, "h2.bad_pseudo_header"},
    {{{":status", "200"}}, 1, "h2.bad_pseudo_header"},
    {{{":protocol", "websocket"}}, 1, "h2.bad_pseudo_header"},
    {{{"accept", "x"}, {":foo", "1"}}, 2, "h2.bad_pseudo_header"},
};
static const size_t nbad = sizeof(bad) / sizeof(bad[0]);

START_TEST(t_refused)
{
    kv f[8] = {REQ};
    size_t n = 4;
    for (size_t i = 0; i < bad[_i].n; i++)
        f[n++] = bad[_i].extra[i];
    char *head = (char *)1;
    size_t len = 1;
    const char *e = map(f, n, 0, &head, &len);
    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(e, bad[_i].reason);
    ck_assert_ptr_null(head);
    ck_assert_uint_eq(len, 0);
}
END_TEST

START_TEST(t_pseudo_rules)
{
    char *head = NULL;
    size_t len = 0;
    const kv nopath[] = {{":method", "GET"}, {":scheme", "https"}, {":authority", "a"}};
    ck_assert_str_eq(map(nopath, 3, 0, &head, &len), "h2.bad_pseudo_header");
    const kv nomethod[] = {{":path", "/"}, {":scheme", "https"}};
    ck_assert_str_eq(map(nomethod, 2, 0, &head, &len), "h2.bad_pseudo_header");
    const kv http[] = {{":method", "GET"}, {":scheme", "http"}, {":path", "/"}};
    ck_assert_str_eq(map(http, 3, 0, &head, &len), "h2.bad_pseudo_header");
    const kv empty[] = {{":method", "GET"}, {":scheme", "https"}, {":path", ""}};
    ck_assert_str_eq(map(empty, 3, 0, &head, &len), "h2.bad_pseudo_header");
    const kv space[] = {{":method", "GET"}, {":scheme", "https"}, {":path", "/a b"}};
    ck_assert_str_eq(map(space, 3, 0, &head, &len), "h2.bad_pseudo_header");
    const kv crlf[] = {{":method", "GET\r\nX: 1"}, {":scheme", "https"}, {":path", "/"}};
    ck_assert_str_eq(map(crlf, 3, 0, &head, &len), "h2.bad_pseudo_header");
    ck_assert_ptr_null(head);
}
END_TEST

START_TEST(t_response_split)
{
    gw_extra_header extra[] = {{"RateLimit-Limit", "10"}};
    gw_fwd_resp_ctx rc = {
        .request_id = "rid", .correlation_id = "cid", .close = 1, .extra = extra, .nextra = 1};
    size_t len = 0;
    char *bytes = gw_local_response(403, "application/json", "{\"a\":1}", 7, &rc, &len);
    gw_h2_field f[GW_H2MAP_MAX_RESP_FIELDS];
    int status = 0;
    const char *body = NULL;
    size_t blen = 0;
    int n = gw_h2map_response(bytes, len, &status, f, GW_H2MAP_MAX_RESP_FIELDS, &body, &blen);
    ck_assert_int_eq(status, 403);
    ck_assert_uint_eq(blen, 7);
    ck_assert(memcmp(body, "{\"a\":1}", 7) == 0);
    int seen_rl = 0, seen_cl = 0;
    for (int i = 0; i < n; i++) {
        /* lowercase names, and never a connection-specific field */
        for (size_t k = 0; k < f[i].name_len; k++)
            ck_assert(!(f[i].name[k] >= 'A' && f[i].name[k] <= 'Z'));
        ck_assert_str_ne(f[i].name, "connection");
        if (strcmp(f[i].name, "ratelimit-limit") == 0)
            seen_rl = f[i].value_len == 2 && memcmp(f[i].value, "10", 2) == 0;
        if (strcmp(f[i].name, "content-length") == 0)
            seen_cl = f[i].value_len == 1 && f[i].value[0] == '7';
    }
    ck_assert(seen_rl && seen_cl);
    free(bytes);
    /* not a response of ours */
    ck_assert_int_eq(gw_h2map_response("HTTP/1.1 20", 11, &status, f, 4, &body, &blen), -1);
    ck_assert_int_eq(
        gw_h2map_response("HTTP/1.1 200 OK\r\nA: b\n\r\n", 24, &status, f, 4, &body, &blen), -1);
    ck_assert_int_eq(gw_h2map_response("HTTP/1.1 101 S\r\n\r\n", 18, &status, f, 4, &body, &blen),
                     -1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("h2map");
    TCase *tc = tcase_create("h2map");
    tcase_add_test(tc, t_request_mapped_and_parsed);
    tcase_add_test(tc, t_host_without_authority_and_equal);
    tcase_add_test(tc, t_body_framing);
    tcase_add_loop_test(tc, t_refused, 0, (int)nbad);
    tcase_add_test(tc, t_pseudo_rules);
    tcase_add_test(tc, t_response_split);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
