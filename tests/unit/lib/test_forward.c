/* Unit tests for gateway/lib/forward.c: what crosses the gateway and what
 * does not, in both directions. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/forward.h"

static gw_http_request *parse_req(const char *raw)
{
    gw_http_limits lim = {16384, 100, 65536};
    gw_http_parser *p = gw_http_parser_new(0, &lim);
    size_t used = 0;
    gw_http_status st = gw_http_parser_feed(p, raw, strlen(raw), &used);
    ck_assert_int_eq(st, GW_HTTP_COMPLETE);
    gw_http_request *r = gw_http_parser_take_request(p);
    gw_http_parser_free(p);
    ck_assert_ptr_nonnull(r);
    return r;
}

static gw_http_response *parse_resp(const char *raw)
{
    gw_http_limits lim = {16384, 100, 65536};
    gw_http_parser *p = gw_http_parser_new(1, &lim);
    size_t used = 0;
    gw_http_status st = gw_http_parser_feed(p, raw, strlen(raw), &used);
    ck_assert_int_eq(st, GW_HTTP_COMPLETE);
    gw_http_response *r = gw_http_parser_take_response(p);
    gw_http_parser_free(p);
    ck_assert_ptr_nonnull(r);
    return r;
}

static const gw_fwd_req_ctx req_ctx = {
    .host = "10.0.0.1:9080",
    .client_ip = "192.0.2.7",
    .request_id = "11111111-2222-4333-8444-555555555555",
    .correlation_id = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
};

static int has_line(const char *msg, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = msg; (p = strstr(p, line)) != NULL; p++)
        if ((p == msg || p[-1] == '\n') && p[n] == '\r')
            return 1;
    return 0;
}

static int has_name(const char *msg, const char *name)
{
    char pat[128];
    snprintf(pat, sizeof(pat), "\n%s:", name);
    return strcasestr(msg, pat) != NULL;
}

START_TEST(request_strips_credentials_and_hop_by_hop)
{
    gw_http_request *r = parse_req("GET /opale/v1/etatSante?x=1 HTTP/1.1\r\n"
                                   "Host: gw.example\r\n"
                                   "Authorization: Bearer SECRET\r\n"
                                   "Connection: keep-alive, X-Private\r\n"
                                   "X-Private: drop-me\r\n"
                                   "Keep-Alive: timeout=5\r\n"
                                   "TE: trailers\r\n"
                                   "Upgrade: h2c\r\n"
                                   "Proxy-Authorization: Basic x\r\n"
                                   "X-Forwarded-For: 6.6.6.6\r\n"
                                   "Forwarded: for=6.6.6.6\r\n"
                                   "X-Real-IP: 6.6.6.6\r\n"
                                   "X-Request-ID: client-chosen\r\n"
                                   "X-Consumer-Id: forged\r\n"
                                   "X-Habilitation-Id: forged\r\n"
                                   "X-JWT-Assertion: forged\r\n"
                                   "ID_Teleservice: TS-0001\r\n"
                                   "Accept: application/json\r\n"
                                   "\r\n");
    size_t len = 0;
    char *out = gw_forward_request(r, &req_ctx, &len);
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(strlen(out), len);
    ck_assert(strncmp(out, "GET /opale/v1/etatSante?x=1 HTTP/1.1\r\n", 38) == 0);
    ck_assert(has_line(out, "Host: 10.0.0.1:9080"));
    ck_assert_ptr_null(strstr(out, "SECRET"));
    ck_assert_ptr_null(strstr(out, "drop-me"));
    ck_assert_ptr_null(strstr(out, "6.6.6.6"));
    ck_assert_ptr_null(strstr(out, "forged"));
    ck_assert_ptr_null(strstr(out, "client-chosen"));
    ck_assert(!has_name(out, "Connection"));
    ck_assert(!has_name(out, "Keep-Alive"));
    ck_assert(!has_name(out, "TE"));
    ck_assert(!has_name(out, "Upgrade"));
    ck_assert(!has_name(out, "Proxy-Authorization"));
    /* an allowlist: only Accept, Accept-Language, User-Agent and the
     * route's own headers cross; ID_Teleservice is checked, not forwarded */
    ck_assert(!has_name(out, "ID_Teleservice"));
    ck_assert(has_line(out, "Accept: application/json"));
    ck_assert(has_line(out, "X-Forwarded-For: 192.0.2.7"));
    ck_assert(has_line(out, "X-Request-ID: 11111111-2222-4333-8444-555555555555"));
    ck_assert(has_line(out, "X-Correlation-ID: aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"));
    ck_assert(!has_name(out, "Content-Length"));
    ck_assert(strcmp(out + len - 4, "\r\n\r\n") == 0);
    free(out);
    gw_http_request_free(r);
}
END_TEST

START_TEST(request_body_dechunked_with_length)
{
    gw_http_request *r = parse_req("POST /token HTTP/1.1\r\nHost: x\r\n"
                                   "Transfer-Encoding: chunked\r\n\r\n"
                                   "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    gw_fwd_req_ctx c = req_ctx;
    c.close = 1;
    c.body = 1; /* a route that takes a body */
    c.correlation_id = NULL;
    gw_extra_header extra[] = {{"X-Consumer-Id", "commune-exemple"}};
    c.extra = extra;
    c.nextra = 1;
    size_t len = 0;
    char *out = gw_forward_request(r, &c, &len);
    ck_assert(has_line(out, "Content-Length: 11"));
    ck_assert(!has_name(out, "Transfer-Encoding"));
    ck_assert(has_line(out, "Connection: close"));
    ck_assert(has_line(out, "X-Consumer-Id: commune-exemple"));
    ck_assert(!has_name(out, "X-Correlation-ID"));
    ck_assert(strcmp(out + len - 15, "\r\n\r\nhello world") == 0);
    free(out);
    gw_http_request_free(r);
}
END_TEST

/* The extras' lengths are measured once for the size estimate and reused
 * (the first 16; any beyond are measured when written): every extra goes
 * up whole, of any length, in its order. */
START_TEST(request_many_extras)
{
    gw_http_request *r = parse_req("GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
    gw_fwd_req_ctx c = req_ctx;
    gw_extra_header extra[20];
    char names[20][16], values[20][2100];
    for (int i = 0; i < 20; i++) {
        snprintf(names[i], sizeof(names[i]), "X-Extra-%d", i);
        size_t vl = (size_t)(i * 97 + 1) % sizeof(values[i]);
        memset(values[i], 'a' + i, vl);
        values[i][vl] = '\0';
        extra[i] = (gw_extra_header){names[i], values[i]};
    }
    c.extra = extra;
    c.nextra = 20;
    size_t len = 0;
    char *out = gw_forward_request(r, &c, &len);
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(strlen(out), len);
    const char *at = out;
    for (int i = 0; i < 20; i++) {
        char line[2200];
        int n = snprintf(line, sizeof(line), "\r\n%s: %s\r\n", names[i], values[i]);
        ck_assert(n > 0 && (size_t)n < sizeof(line));
        const char *f = strstr(at, line);
        ck_assert_msg(f != NULL, "extra %d", i);
        at = f + strlen(line) - 2;
    }
    ck_assert(strcmp(out + len - 4, "\r\n\r\n") == 0);
    free(out);
    gw_http_request_free(r);
}
END_TEST

/* Issue 12: the canonical target replaces the client's, only allowlisted
 * headers cross, and a body never goes up on a route that takes none. */
START_TEST(request_allowlist_canonical_no_body)
{
    gw_http_request *r = parse_req("GET /opale/v1/entreprises/732829320/declarations?ANNEE=1990"
                                   "&annee=2023 HTTP/1.1\r\n"
                                   "Host: gw.example\r\n"
                                   "X-Custom: forged1\r\n"
                                   "X-Client-Cert: forged2\r\n"
                                   "X-SSL-Client-Cert: forged3\r\n"
                                   "X-Original-URL: /forged4\r\n"
                                   "X-Rewrite-URL: /forged5\r\n"
                                   "X-HTTP-Method-Override: DELETE\r\n"
                                   "Accept-Language: fr\r\n"
                                   "User-Agent: t/1\r\n"
                                   "X-Route-Extra: kept\r\n"
                                   "Content-Length: 5\r\n\r\nhello");
    gw_fwd_req_ctx c = req_ctx;
    static const char target[] = "/opale/v1/entreprises/732829320/declarations?annee=2023";
    static const char *const allow[] = {"x-route-extra"};
    c.target = target;
    c.target_len = sizeof(target) - 1;
    c.allow = allow;
    c.nallow = 1;
    size_t len = 0;
    char *out = gw_forward_request(r, &c, &len);
    ck_assert_ptr_nonnull(out);
    ck_assert(strncmp(out,
                      "GET /opale/v1/entreprises/732829320/declarations?annee=2023 HTTP/1.1\r\n",
                      70) == 0);
    ck_assert_ptr_null(strstr(out, "1990"));
    ck_assert_ptr_null(strstr(out, "forged"));
    ck_assert_ptr_null(strstr(out, "DELETE"));
    ck_assert(has_line(out, "Accept-Language: fr"));
    ck_assert(has_line(out, "User-Agent: t/1"));
    ck_assert(has_line(out, "X-Route-Extra: kept"));
    ck_assert(!has_name(out, "Content-Length"));
    ck_assert_ptr_null(strstr(out, "hello"));
    ck_assert(strcmp(out + len - 4, "\r\n\r\n") == 0);
    free(out);
    gw_http_request_free(r);
}
END_TEST

START_TEST(response_rebuilt)
{
    gw_http_response *r = parse_resp("HTTP/1.1 200 Whatever\r\n"
                                     "Content-Type: application/json\r\n"
                                     "Transfer-Encoding: chunked\r\n"
                                     "Connection: X-Hop\r\n"
                                     "X-Hop: secret-hop\r\n"
                                     "X-Request-ID: upstream-id\r\n"
                                     "X-Backend: kept\r\n\r\n"
                                     "2\r\n{}\r\n0\r\n\r\n");
    gw_extra_header extra[] = {{"RateLimit-Limit", "50"}};
    gw_fwd_resp_ctx c = {.request_id = "11111111-2222-4333-8444-555555555555",
                         .correlation_id = NULL,
                         .close = 1,
                         .extra = extra,
                         .nextra = 1};
    size_t len = 0;
    char *out = gw_forward_response(r, &c, &len);
    ck_assert(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0);
    ck_assert(has_line(out, "Content-Type: application/json"));
    ck_assert(has_line(out, "X-Backend: kept"));
    ck_assert(has_line(out, "Content-Length: 2"));
    ck_assert(has_line(out, "Connection: close"));
    ck_assert(has_line(out, "RateLimit-Limit: 50"));
    ck_assert(has_line(out, "X-Request-ID: 11111111-2222-4333-8444-555555555555"));
    ck_assert_ptr_null(strstr(out, "upstream-id"));
    ck_assert_ptr_null(strstr(out, "secret-hop"));
    ck_assert(!has_name(out, "Transfer-Encoding"));
    ck_assert(strcmp(out + len - 6, "\r\n\r\n{}") == 0);
    free(out);
    gw_http_response_free(r);
}
END_TEST

START_TEST(local_error_response)
{
    gw_fwd_resp_ctx c = {.request_id = "11111111-2222-4333-8444-555555555555",
                         .correlation_id = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"};
    size_t len = 0;
    const char *body = "{\"erreur\":{}}";
    char *out = gw_local_response(404, "application/json", body, strlen(body), &c, &len);
    ck_assert(strncmp(out, "HTTP/1.1 404 Not Found\r\n", 24) == 0);
    ck_assert(has_line(out, "Content-Length: 13"));
    ck_assert(has_line(out, "Cache-Control: no-store"));
    ck_assert(has_line(out, "X-Correlation-ID: aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"));
    ck_assert(!has_name(out, "Connection"));
    ck_assert_str_eq(out + len - strlen(body), body);
    free(out);
    c.head = 1;
    out = gw_local_response(404, "application/json", body, strlen(body), &c, &len);
    ck_assert(has_line(out, "Content-Length: 0"));
    ck_assert(strcmp(out + len - 4, "\r\n\r\n") == 0);
    free(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("forward");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, request_strips_credentials_and_hop_by_hop);
    tcase_add_test(tc, request_body_dechunked_with_length);
    tcase_add_test(tc, request_many_extras);
    tcase_add_test(tc, request_allowlist_canonical_no_body);
    tcase_add_test(tc, response_rebuilt);
    tcase_add_test(tc, local_error_response);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
