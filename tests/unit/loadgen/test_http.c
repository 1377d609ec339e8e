/* Unit tests for bench/loadgen/http.c, opale-loadgen's response parser:
 * valid responses (Content-Length, chunked with extensions and trailers,
 * 204, HTTP/1.0, Connection) parsed whole and byte by byte, with the body
 * captured and nothing read past the response; malformed ones refused with
 * their reason. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "loadgen.h"

static const struct {
    const char *raw, *body;
    int status, close;
} good[] = {
    {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "hello", 200, 0},
    {"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n", "", 404, 0},
    {"HTTP/1.1 200\r\nContent-Length: 2\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", "ok",
     200, 1},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
     "3;ext=1\r\nabc\r\nA \r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n",
     "abc0123456789", 200, 0},
    {"HTTP/1.1 204 No Content\r\nConnection: x, close\r\n\r\n", "", 204, 1},
    {"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nz", "z", 200, 1},
    {"HTTP/1.0 503 Busy\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nz", "z", 503, 0},
};

static const struct {
    const char *raw, *why;
} bad[] = {
    {"HTTP/2 200 OK\r\n\r\n", "status line"},
    {"HTTP/1.1 200OK\r\n\r\n", "status line"},
    {"HTTP/1.1 100 Continue\r\n\r\n", "status code outside 200..599 (1xx unsupported)"},
    {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
     "conflicting Content-Length"},
    {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"},
    {"HTTP/1.1 200 OK\r\n\r\n",
     "no Content-Length nor chunked (close-delimited bodies unsupported)"},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
     "Transfer-Encoding other than a single 'chunked'"},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
     "both Content-Length and Transfer-Encoding"},
    {"HTTP/1.1 200 OK\r\n folded: x\r\nContent-Length: 0\r\n\r\n", "obsolete line folding"},
    {"HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n", "malformed header field"},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"},
    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc\r\n",
     "chunk data not followed by CRLF"},
    {"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "chunked HTTP/1.0 response"},
};

/* Feeds <raw> in pieces of <step> bytes; returns the last lg_rp_feed result
 * and the byte count given when it was first non-zero in <*at>. */
static int feed(struct rparser *p, struct evbuffer *in, const char *raw, size_t step, size_t *at)
{
    size_t len = strlen(raw), off = 0;
    int r = 0;

    while (off < len && r == 0) {
        size_t n = len - off < step ? len - off : step;
        evbuffer_add(in, raw + off, n);
        off += n;
        r = lg_rp_feed(p, in);
    }
    *at = off;
    return r;
}

START_TEST(valid_responses)
{
    const size_t steps[] = {1, 2, 7, 4096};

    for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
        struct evbuffer *in = evbuffer_new(), *cap = evbuffer_new();
        struct rparser p = {.capture = cap};
        size_t at = 0, len = strlen(good[_i].raw);

        lg_rp_reset(&p);
        ck_assert_int_eq(feed(&p, in, good[_i].raw, steps[s], &at), 1);
        ck_assert_uint_eq(at, len); /* complete at its last byte, not before */
        ck_assert_uint_eq(p.consumed, len);
        ck_assert_uint_eq(evbuffer_get_length(in), 0);
        ck_assert_int_eq(p.status, good[_i].status);
        ck_assert_int_eq(p.close, good[_i].close);
        ck_assert_uint_eq(evbuffer_get_length(cap), strlen(good[_i].body));
        if (*good[_i].body) /* (an empty evbuffer pulls up to NULL) */
            ck_assert_int_eq(memcmp(evbuffer_pullup(cap, -1), good[_i].body, strlen(good[_i].body)),
                             0);
        evbuffer_free(in);
        evbuffer_free(cap);
    }
}
END_TEST

/* Two responses back to back: the first stops at its end, the second is
 * read after a reset. */
START_TEST(back_to_back)
{
    struct evbuffer *in = evbuffer_new();
    struct rparser p = {0};
    const char *two = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 500 E\r\n"
                      "Content-Length: 0\r\n\r\n";

    lg_rp_reset(&p);
    evbuffer_add(in, two, strlen(two));
    ck_assert_int_eq(lg_rp_feed(&p, in), 1);
    ck_assert_int_eq(p.status, 200);
    ck_assert_uint_eq(evbuffer_get_length(in), strlen(two) - 40);
    lg_rp_reset(&p);
    ck_assert_int_eq(lg_rp_feed(&p, in), 1);
    ck_assert_int_eq(p.status, 500);
    ck_assert_uint_eq(p.consumed, strlen(two));
    evbuffer_free(in);
}
END_TEST

START_TEST(malformed_responses)
{
    struct evbuffer *in = evbuffer_new();
    struct rparser p = {0};
    size_t at;

    lg_rp_reset(&p);
    ck_assert_int_eq(feed(&p, in, bad[_i].raw, 4096, &at), -1);
    ck_assert_ptr_nonnull(p.error);
    ck_assert_str_eq(p.error, bad[_i].why);
    evbuffer_free(in);
}
END_TEST

/* A head that never ends is refused once over 64 KiB, not buffered. */
START_TEST(head_too_long)
{
    struct evbuffer *in = evbuffer_new();
    struct rparser p = {0};
    char chunk[1024];
    int r = 0;

    memset(chunk, 'a', sizeof(chunk));
    lg_rp_reset(&p);
    evbuffer_add(in, "HTTP/1.1 200 OK\r\nX: ", 21);
    for (int i = 0; i < 80 && r == 0; i++) {
        evbuffer_add(in, chunk, sizeof(chunk));
        r = lg_rp_feed(&p, in);
    }
    ck_assert_int_eq(r, -1);
    ck_assert_str_eq(p.error, "response head over 64 KiB");
    evbuffer_free(in);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("loadgen_http");
    TCase *tc = tcase_create("rparser");
    SRunner *sr;
    int failed;

    tcase_add_loop_test(tc, valid_responses, 0, sizeof(good) / sizeof(good[0]));
    tcase_add_test(tc, back_to_back);
    tcase_add_loop_test(tc, malformed_responses, 0, sizeof(bad) / sizeof(bad[0]));
    tcase_add_test(tc, head_too_long);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
