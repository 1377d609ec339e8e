/* gateway/admin/reply.c over a real evhttp listener on loopback: an answer
 * whose handler ran longer than the listener's timeout (a reload of 10,000
 * policies on a slow or loaded machine) still reaches the caller. evhttp
 * arms the connection's deadlines from the loop's cached clock, read
 * before the handler ran; the answer reads the clock again (it was closed
 * without an answer until 2026-12). */
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <jansson.h>

#include "../common.h"
#include "admin/reply.h"

static void slow_handler(struct evhttp_request *req, void *arg)
{
    const int *ms = arg;
    struct timespec ts = {*ms / 1000, (long)(*ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* the loop is blocked, as by a long reload */
    gw_admin_json_reply(req, 200, json_pack("{s:b}", "ok", 1));
}

struct answer {
    int status; /* 0: none (the connection closed) */
    char body[64];
    struct event_base *base;
};

static void on_answer(struct evhttp_request *req, void *arg)
{
    struct answer *a = arg;
    if (req != NULL) {
        a->status = evhttp_request_get_response_code(req);
        struct evbuffer *b = evhttp_request_get_input_buffer(req);
        size_t n = evbuffer_get_length(b);
        if (n >= sizeof(a->body))
            n = sizeof(a->body) - 1;
        evbuffer_remove(b, a->body, n);
        a->body[n] = '\0';
    }
    event_base_loopexit(a->base, NULL);
}

/* One POST to a listener with a <timeout_s> timeout whose handler takes
 * <handler_ms>. */
static struct answer call(int timeout_s, int handler_ms)
{
    struct answer a;
    memset(&a, 0, sizeof(a));
    a.base = event_base_new();
    ck_assert_ptr_nonnull(a.base);
    struct evhttp *http = evhttp_new(a.base);
    ck_assert_ptr_nonnull(http);
    evhttp_set_timeout(http, timeout_s);
    evhttp_set_gencb(http, slow_handler, &handler_ms);
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
    ck_assert_ptr_nonnull(bs);
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    ck_assert_int_eq(getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sin, &sl), 0);
    struct evhttp_connection *c =
        evhttp_connection_base_new(a.base, NULL, "127.0.0.1", ntohs(sin.sin_port));
    ck_assert_ptr_nonnull(c);
    evhttp_connection_set_timeout(c, 30);
    struct evhttp_request *req = evhttp_request_new(on_answer, &a);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host", "127.0.0.1");
    ck_assert_int_eq(evhttp_make_request(c, req, EVHTTP_REQ_POST, "/admin/reload"), 0);
    struct timeval bound = {20, 0};
    event_base_loopexit(a.base, &bound);
    event_base_dispatch(a.base);
    evhttp_connection_free(c);
    evhttp_free(http);
    event_base_free(a.base);
    a.base = NULL;
    return a;
}

START_TEST(t_fast_handler_answered)
{
    struct answer a = call(1, 10);
    ck_assert_int_eq(a.status, 200);
    ck_assert_str_eq(a.body, "{\"ok\":true}\n");
}
END_TEST

START_TEST(t_handler_longer_than_the_timeout_answered)
{
    struct answer a = call(1, 1600);
    ck_assert_msg(a.status == 200, "closed without an answer (status %d)", a.status);
    ck_assert_str_eq(a.body, "{\"ok\":true}\n");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("admin_reply");
    TCase *tc = tcase_create("reply");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, t_fast_handler_answered);
    tcase_add_test(tc, t_handler_longer_than_the_timeout_answered);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
