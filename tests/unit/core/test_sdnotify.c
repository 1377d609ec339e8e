/* Unit tests for gateway/core/sdnotify.c: the sd_notify(3) datagram
 * protocol, against real AF_UNIX datagram sockets (a path and the abstract
 * namespace). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/sdnotify.h"

/* A bound datagram socket to receive on; <name> is a path or "@name". */
static int receiver(const char *name)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t len = strlen(name);
    memcpy(sa.sun_path, name, len);
    socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    if (name[0] == '@') {
        sa.sun_path[0] = '\0';
        sl--;
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sl), 0);
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void expect_datagram(int fd, const char *want)
{
    char buf[1024];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
    ck_assert_int_gt(n, 0);
    buf[n] = '\0';
    ck_assert_str_eq(buf, want);
}

START_TEST(path_socket)
{
    char dir[] = "/tmp/gw-sdnotify-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/notify", dir);
    int rfd = receiver(path);
    gw_sdnotify n;
    char *err = NULL;
    ck_assert_int_eq(gw_sdnotify_init(&n, path, NULL, NULL, getpid(), &err), 0);
    ck_assert(gw_sdnotify_enabled(&n));
    ck_assert_int_eq(gw_sdnotify_send(&n, "READY=1\nSTATUS=up"), 0);
    expect_datagram(rfd, "READY=1\nSTATUS=up");
    ck_assert_int_eq(gw_sdnotify_send(&n, "STOPPING=1"), 0);
    expect_datagram(rfd, "STOPPING=1");
    gw_sdnotify_close(&n);
    ck_assert(!gw_sdnotify_enabled(&n));
    close(rfd);
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(abstract_socket)
{
    char name[64];
    snprintf(name, sizeof(name), "@gw-sdnotify-test-%ld", (long)getpid());
    int rfd = receiver(name);
    gw_sdnotify n;
    char *err = NULL;
    ck_assert_int_eq(gw_sdnotify_init(&n, name, NULL, NULL, getpid(), &err), 0);
    ck_assert_int_eq(gw_sdnotify_send(&n, "WATCHDOG=1"), 0);
    expect_datagram(rfd, "WATCHDOG=1");
    gw_sdnotify_close(&n);
    close(rfd);
}
END_TEST

START_TEST(absent_is_noop)
{
    gw_sdnotify n;
    char *err = NULL;
    ck_assert_int_eq(gw_sdnotify_init(&n, NULL, "1000000", NULL, getpid(), &err), 0);
    ck_assert(!gw_sdnotify_enabled(&n));
    ck_assert_int_eq(gw_sdnotify_send(&n, "READY=1"), 0);
    ck_assert_uint_eq(gw_sdnotify_watchdog_interval(&n), 0);
    ck_assert_int_eq(gw_sdnotify_init(&n, "", NULL, NULL, getpid(), &err), 0);
    ck_assert(!gw_sdnotify_enabled(&n));
    ck_assert_int_eq(gw_sdnotify_send(NULL, "READY=1"), 0);
}
END_TEST

START_TEST(send_fails_without_receiver)
{
    gw_sdnotify n;
    char *err = NULL;
    ck_assert_int_eq(
        gw_sdnotify_init(&n, "/tmp/gw-sdnotify-nobody-listens-here", NULL, NULL, getpid(), &err),
        0);
    ck_assert_int_eq(gw_sdnotify_send(&n, "READY=1"), -1);
    gw_sdnotify_close(&n);
}
END_TEST

/* Unusable names: refused with a message, and the handle is a no-op. */
static const struct {
    const char *name;
    const char *err;
} bad_names[] = {
    {"relative/notify", "NOTIFY_SOCKET: must be an absolute path or start with '@'"},
    {"notify", "NOTIFY_SOCKET: must be an absolute path or start with '@'"},
    {"/"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     "NOTIFY_SOCKET: name too long"},
};

START_TEST(bad_name)
{
    gw_sdnotify n;
    char *err = NULL;
    ck_assert_int_eq(gw_sdnotify_init(&n, bad_names[_i].name, "1000", NULL, getpid(), &err), -1);
    ck_assert_str_eq(err, bad_names[_i].err);
    ck_assert(!gw_sdnotify_enabled(&n));
    ck_assert_uint_eq(gw_sdnotify_watchdog_interval(&n), 0);
    ck_assert_int_eq(gw_sdnotify_send(&n, "READY=1"), 0);
    free(err);
}
END_TEST

/* WATCHDOG_USEC / WATCHDOG_PID: the interval is half the period, and only
 * for the process the watchdog is meant for. */
static const struct {
    const char *usec, *pid;
    int pid_is_self;
    unsigned long long interval;
} watchdogs[] = {
    {"2000000", NULL, 0, 1000000},
    {"2000000", NULL, 1, 1000000}, /* WATCHDOG_PID = our pid */
    {"2000000", "1", 0, 0},        /* meant for another process */
    {"400000", NULL, 0, 200000},
    {"0", NULL, 0, 0},
    {"", NULL, 0, 0},
    {"12x", NULL, 0, 0},
    {"-5", NULL, 0, 0},
    {"99999999999999999999999", NULL, 0, 0},
    {NULL, NULL, 0, 0},
};

START_TEST(watchdog_interval)
{
    gw_sdnotify n;
    char *err = NULL;
    char pid[32];
    const char *p = watchdogs[_i].pid;
    if (watchdogs[_i].pid_is_self) {
        snprintf(pid, sizeof(pid), "%ld", (long)getpid());
        p = pid;
    }
    ck_assert_int_eq(gw_sdnotify_init(&n, "@gw-sdnotify-wd", watchdogs[_i].usec, p, getpid(), &err),
                     0);
    ck_assert_uint_eq(gw_sdnotify_watchdog_interval(&n), watchdogs[_i].interval);
    gw_sdnotify_close(&n);
}
END_TEST

START_TEST(init_env_unsets)
{
    setenv("NOTIFY_SOCKET", "@gw-sdnotify-env", 1);
    setenv("WATCHDOG_USEC", "3000000", 1);
    unsetenv("WATCHDOG_PID");
    gw_sdnotify n;
    char *err = NULL;
    ck_assert_int_eq(gw_sdnotify_init_env(&n, &err), 0);
    ck_assert(gw_sdnotify_enabled(&n));
    ck_assert_uint_eq(gw_sdnotify_watchdog_interval(&n), 1500000);
    ck_assert_ptr_null(getenv("NOTIFY_SOCKET"));
    ck_assert_ptr_null(getenv("WATCHDOG_USEC"));
    gw_sdnotify_close(&n);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sdnotify");
    TCase *tc = tcase_create("protocol");
    tcase_add_test(tc, path_socket);
    tcase_add_test(tc, abstract_socket);
    tcase_add_test(tc, absent_is_noop);
    tcase_add_test(tc, send_fails_without_receiver);
    tcase_add_loop_test(tc, bad_name, 0, (int)(sizeof(bad_names) / sizeof(bad_names[0])));
    tcase_add_loop_test(tc, watchdog_interval, 0, (int)(sizeof(watchdogs) / sizeof(watchdogs[0])));
    tcase_add_test(tc, init_env_unsets);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
