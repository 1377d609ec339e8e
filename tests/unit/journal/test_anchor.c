/* Unit tests for gateway/journal/anchor.c: the command and HTTP
 * destinations (a local script, a local socket), the sender thread's order,
 * retries and counts. Redis is covered by the integration tests
 * (test_journal_integrity.py, a real redis-server). */
#include "journal_fixtures.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include "journal/anchor.h"

/* An executable script in the test directory. */
static const char *script(const char *name, const char *body)
{
    const char *p = tpath(name);
    FILE *f = fopen(p, "w");
    fprintf(f, "#!/bin/sh\n%s\n", body);
    fclose(f);
    chmod(p, 0755);
    return p;
}

START_TEST(command_destination)
{
    char cmd[512], err[256];
    snprintf(cmd, sizeof(cmd), "cat >> '%s'", tpath("out"));
    gw_anchor_opts o = {.kind = GW_ANCHOR_COMMAND, .command = script("ok.sh", cmd)};
    ck_assert_int_eq(gw_anchor_send(&o, "{\"seq\":1}", err, sizeof(err)), 0);
    char *s = slurp(tpath("out"), NULL);
    ck_assert_str_eq(s, "{\"seq\":1}\n");
    free(s);
    o.command = script("fail.sh", "cat >/dev/null; exit 3");
    ck_assert_int_eq(gw_anchor_send(&o, "{}", err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "exit 3"));
    o.command = script("slow.sh", "sleep 5");
    o.timeout_ms = 200;
    ck_assert_int_eq(gw_anchor_send(&o, "{}", err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "killed after 200 ms"));
    o.command = tpath("missing.sh");
    ck_assert_int_eq(gw_anchor_send(&o, "{}", err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "exit 127"));
}
END_TEST

/* A one-shot HTTP server on a thread: reads one request, answers <status>. */
struct one_http {
    int fd;
    int status;
    char req[4096];
};

static void *serve_one(void *arg)
{
    struct one_http *h = arg;
    int c = accept(h->fd, NULL, NULL);
    size_t got = 0;
    while (c >= 0 && got < sizeof(h->req) - 1) {
        ssize_t r = read(c, h->req + got, sizeof(h->req) - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        h->req[got] = '\0';
        char *body = strstr(h->req, "\r\n\r\n");
        if (body != NULL && strchr(body + 4, '\n') != NULL)
            break;
    }
    char resp[128];
    int n = snprintf(resp, sizeof(resp), "HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n", h->status);
    if (c >= 0) {
        ck_assert_int_eq(write(c, resp, (size_t)n), n);
        close(c);
    }
    return NULL;
}

static int listen_any(unsigned short *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(fd, 4), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &l), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

START_TEST(http_destination)
{
    char url[128], err[256];
    unsigned short port;
    struct one_http h = {.status = 204};
    h.fd = listen_any(&port);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/anchors/in", port);
    gw_anchor_opts o = {.kind = GW_ANCHOR_HTTP, .url = url, .timeout_ms = 2000};
    pthread_t t;
    pthread_create(&t, NULL, serve_one, &h);
    ck_assert_int_eq(gw_anchor_send(&o, "{\"seq\":7}", err, sizeof(err)), 0);
    pthread_join(t, NULL);
    ck_assert_ptr_nonnull(strstr(h.req, "POST /anchors/in HTTP/1.1\r\n"));
    ck_assert_ptr_nonnull(strstr(h.req, "Content-Type: application/json\r\n"));
    ck_assert_ptr_nonnull(strstr(h.req, "\r\n\r\n{\"seq\":7}\n"));
    h.status = 500;
    pthread_create(&t, NULL, serve_one, &h);
    ck_assert_int_eq(gw_anchor_send(&o, "{}", err, sizeof(err)), -1);
    pthread_join(t, NULL);
    ck_assert_ptr_nonnull(strstr(err, "HTTP 500"));
    close(h.fd);
    /* nobody listening any more */
    ck_assert_int_eq(gw_anchor_send(&o, "{}", err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "connect 127.0.0.1"));
    /* a URL the sender refuses at start */
    char *e = NULL;
    gw_anchor_opts bad = {.kind = GW_ANCHOR_HTTP, .url = "ftp://x/"};
    ck_assert_ptr_null(gw_anchors_start(&bad, &e));
    ck_assert_ptr_nonnull(e);
    free(e);
}
END_TEST

static uint64_t wait_sent(gw_anchors *a, uint64_t want)
{
    gw_anchor_stats st;
    for (int i = 0; i < 500; i++) {
        gw_anchors_get_stats(a, &st);
        if (st.sent >= want)
            break;
        usleep(10000);
    }
    return st.sent;
}

/* The thread sends in order, as JSON lines naming the journal; a failing
 * destination is retried (counted, one streak), and what it could not send
 * is returned at stop. */
START_TEST(sender_order_retry_and_stop)
{
    char cmd[512], *err = NULL;
    snprintf(cmd, sizeof(cmd), "cat >> '%s'", tpath("out"));
    gw_anchor_opts o = {.kind = GW_ANCHOR_COMMAND, .command = script("ok.sh", cmd)};
    gw_anchors *a = gw_anchors_start(&o, &err);
    ck_assert_ptr_nonnull(a);
    gw_anchors_submit(a, "/var/log/j.jsonl", 10, zeros64, "2026-12-02T00:00:00.000Z");
    gw_anchors_submit(a, "/var/log/j.jsonl", 20, zeros64, "2026-12-02T00:01:00.000Z");
    gw_anchors_submit(a, "/var/log/e.jsonl", 5, zeros64, "2026-12-02T00:01:00.000Z");
    ck_assert_uint_eq(wait_sent(a, 3), 3);
    ck_assert_uint_eq(gw_anchors_stop(a, 1000), 0);
    json_t *l1 = line_json(tpath("out"), 1), *l3 = line_json(tpath("out"), 3);
    ck_assert_str_eq(jget_str(l1, "type"), "journal.anchor");
    ck_assert_str_eq(jget_str(l1, "journal"), "/var/log/j.jsonl");
    ck_assert_int_eq(json_integer_value(json_object_get(l1, "seq")), 10);
    ck_assert_str_eq(jget_str(l1, "hash"), zeros64);
    ck_assert_ptr_nonnull(jget_str(l1, "host"));
    ck_assert_str_eq(jget_str(l3, "journal"), "/var/log/e.jsonl");
    json_decref(l1);
    json_decref(l3);

    /* failing: retried after retry_s, counted, one streak */
    o.command = script("fail.sh", "cat >/dev/null; exit 1");
    o.retry_s = 1;
    a = gw_anchors_start(&o, &err);
    gw_anchors_submit(a, "/j", 1, zeros64, "t");
    gw_anchors_submit(a, "/j", 2, zeros64, "t");
    gw_anchor_stats st;
    for (int i = 0; i < 300; i++) {
        gw_anchors_get_stats(a, &st);
        if (st.failed >= 2)
            break;
        usleep(10000);
    }
    ck_assert_uint_ge(st.failed, 2);
    ck_assert_uint_eq(st.streaks, 1);
    ck_assert_int_eq(st.failing, 1);
    ck_assert_uint_eq(st.sent, 0);
    ck_assert_uint_eq(st.pending, 2);
    ck_assert_ptr_nonnull(strstr(st.last_error, "exit 1"));
    ck_assert_uint_eq(gw_anchors_stop(a, 100), 2);
}
END_TEST

/* A full queue drops its oldest waiting anchor, never the one being sent. */
START_TEST(full_queue_drops_oldest)
{
    char *err = NULL, cmd[512];
    snprintf(cmd, sizeof(cmd), "cat >> '%s'", tpath("out"));
    gw_anchor_opts o = {.kind = GW_ANCHOR_COMMAND, .command = script("ok.sh", cmd), .queue_max = 3};
    gw_anchors *a = gw_anchors_start(&o, &err);
    for (int i = 1; i <= 40; i++)
        gw_anchors_submit(a, "/j", (uint64_t)i, zeros64, "t");
    gw_anchor_stats st;
    gw_anchors_get_stats(a, &st);
    ck_assert_uint_le(st.pending, 3);
    ck_assert_uint_eq(gw_anchors_stop(a, 5000), 0);
    /* the newest was kept and sent last */
    char *s = slurp(tpath("out"), NULL);
    size_t n = count_lines(s);
    free(s);
    json_t *last = line_json(tpath("out"), (int)n);
    ck_assert_int_eq(json_integer_value(json_object_get(last, "seq")), 40);
    json_decref(last);
}
END_TEST

static Suite *anchor_suite(void)
{
    Suite *s = suite_create("anchor");
    TCase *tc = tcase_create("anchor");
    tcase_add_checked_fixture(tc, setup_dir, teardown_dir);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, command_destination);
    tcase_add_test(tc, http_destination);
    tcase_add_test(tc, sender_order_retry_and_stop);
    tcase_add_test(tc, full_queue_drops_oldest);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* as the gateway (main.c): a command that exits without reading its
     * stdin (missing.sh, slow.sh) makes the write an EPIPE, not a signal */
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(anchor_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
