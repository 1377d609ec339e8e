/* The ownership contract of libevent 2.1's bufferevent_openssl_socket_new()
 * that gateway/core/conn.c (start_tls, the dormant wake-up) and
 * gateway/core/proxy.c (the upstream TLS connection) rely on: with
 * BEV_OPT_CLOSE_ON_FREE, a failed call has already freed the SSL, so the
 * caller must not free it again (it did until 2026-12: a double free when
 * libevent ran out of memory); the socket stays the caller's. Without the
 * option, the SSL stays the caller's. libevent's allocator is replaced to
 * make the call fail at will. */
#include <check.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "../common.h"

static int fail_alloc;
static int ex_idx = -1;
static int freed;
static char marker;

static void *t_malloc(size_t n)
{
    return fail_alloc ? NULL : malloc(n);
}

static void *t_realloc(void *p, size_t n)
{
    return fail_alloc ? NULL : realloc(p, n);
}

static void t_free(void *p)
{
    free(p);
}

static void on_ssl_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    if (ptr == &marker)
        freed++;
}

struct fixture {
    SSL_CTX *ctx;
    struct event_base *base;
    int sv[2];
};

static SSL *new_ssl(struct fixture *f)
{
    f->ctx = SSL_CTX_new(TLS_server_method());
    ck_assert_ptr_nonnull(f->ctx);
    f->base = event_base_new();
    ck_assert_ptr_nonnull(f->base);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, f->sv), 0);
    SSL *ssl = SSL_new(f->ctx);
    ck_assert_ptr_nonnull(ssl);
    ck_assert_int_eq(SSL_set_ex_data(ssl, ex_idx, &marker), 1);
    freed = 0;
    return ssl;
}

static void fixture_end(struct fixture *f)
{
    event_base_free(f->base);
    SSL_CTX_free(f->ctx);
    close(f->sv[1]);
}

START_TEST(t_failure_with_close_on_free_frees_the_ssl)
{
    struct fixture f;
    SSL *ssl = new_ssl(&f);
    fail_alloc = 1;
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        f.base, f.sv[0], ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    fail_alloc = 0;
    ck_assert_ptr_null(bev);
    ck_assert_int_eq(freed, 1);                    /* freed by libevent: not ours to free */
    ck_assert_int_ne(fcntl(f.sv[0], F_GETFD), -1); /* the socket is still open */
    ck_assert_int_eq(close(f.sv[0]), 0);           /* and still ours to close */
    fixture_end(&f);
}
END_TEST

START_TEST(t_failure_without_close_on_free_leaves_the_ssl)
{
    struct fixture f;
    SSL *ssl = new_ssl(&f);
    fail_alloc = 1;
    struct bufferevent *bev =
        bufferevent_openssl_socket_new(f.base, f.sv[0], ssl, BUFFEREVENT_SSL_ACCEPTING, 0);
    fail_alloc = 0;
    ck_assert_ptr_null(bev);
    ck_assert_int_eq(freed, 0);
    SSL_free(ssl);
    ck_assert_int_eq(freed, 1);
    close(f.sv[0]);
    fixture_end(&f);
}
END_TEST

START_TEST(t_success_owns_ssl_and_socket)
{
    struct fixture f;
    SSL *ssl = new_ssl(&f);
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        f.base, f.sv[0], ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    ck_assert_ptr_nonnull(bev);
    ck_assert_int_eq(freed, 0);
    bufferevent_free(bev);
    event_base_loop(f.base, EVLOOP_NONBLOCK); /* the finalizer runs from the loop */
    ck_assert_int_eq(freed, 1);
    ck_assert_int_eq(fcntl(f.sv[0], F_GETFD), -1); /* closed with it */
    fixture_end(&f);
}
END_TEST

int main(void)
{
    /* before any other libevent call, as event_set_mem_functions() requires */
    event_set_mem_functions(t_malloc, t_realloc, t_free);
    ex_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, on_ssl_free);
    Suite *s = suite_create("sslbev");
    TCase *tc = tcase_create("sslbev");
    tcase_add_test(tc, t_failure_with_close_on_free_frees_the_ssl);
    tcase_add_test(tc, t_failure_without_close_on_free_leaves_the_ssl);
    tcase_add_test(tc, t_success_owns_ssl_and_socket);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
