/* Unit tests for gateway/admin/console.c: the embedded files (the table
 * generated from gateway/admin/console/ holds every file, byte for byte),
 * the path lookup, the content types and the security headers. */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "admin/console.h"

START_TEST(t_every_file_embedded)
{
    const char *src = getenv("SRCDIR");
    ck_assert_ptr_nonnull(src);
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/gateway/admin/console", src);
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        n++;
        char path[2048], uri[512];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        snprintf(uri, sizeof(uri), "/console/%s", e->d_name);
        const gw_console_file *f = gw_console_find(uri);
        ck_assert_msg(f != NULL, "%s not embedded", e->d_name);
        FILE *fp = fopen(path, "rb");
        ck_assert_ptr_nonnull(fp);
        unsigned char *buf = malloc(f->len + 1);
        size_t got = fread(buf, 1, f->len + 1, fp);
        fclose(fp);
        ck_assert_uint_eq(got, f->len);
        ck_assert_int_eq(memcmp(buf, f->data, f->len), 0);
        ck_assert_int_eq(f->data[f->len], 0);
        free(buf);
    }
    closedir(d);
    ck_assert_uint_eq(n, gw_console_nfiles);
    ck_assert_ptr_null(gw_console_files[gw_console_nfiles].name);
}
END_TEST

START_TEST(t_find)
{
    const gw_console_file *idx = gw_console_find("/console/index.html");
    ck_assert_ptr_nonnull(idx);
    ck_assert_ptr_eq(gw_console_find("/console/"), idx);
    ck_assert_ptr_null(gw_console_find("/console"));
    ck_assert_ptr_null(gw_console_find("/console/../index.html"));
    ck_assert_ptr_null(gw_console_find("/console/x/index.html"));
    ck_assert_ptr_null(gw_console_find("/console/.index.html"));
    ck_assert_ptr_null(gw_console_find("/console/index.htm"));
    ck_assert_ptr_null(gw_console_find("/admin/index.html"));
    ck_assert_ptr_null(gw_console_find("/consoleindex.html"));
}
END_TEST

START_TEST(t_mime)
{
    ck_assert_str_eq(gw_console_mime("index.html"), "text/html; charset=utf-8");
    ck_assert_str_eq(gw_console_mime("app.js"), "text/javascript; charset=utf-8");
    ck_assert_str_eq(gw_console_mime("app.css"), "text/css; charset=utf-8");
    ck_assert_str_eq(gw_console_mime("logo.svg"), "image/svg+xml");
    ck_assert_str_eq(gw_console_mime("a.png"), "image/png");
    ck_assert_str_eq(gw_console_mime("README"), "application/octet-stream");
    ck_assert_str_eq(gw_console_mime("x.jsx"), "application/octet-stream");
}
END_TEST

START_TEST(t_headers)
{
    const char *want[][2] = {
        {"Content-Security-Policy",
         "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
         "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"},
        {"X-Frame-Options", "DENY"},
        {"X-Content-Type-Options", "nosniff"},
        {"Referrer-Policy", "no-referrer"},
        {"Cache-Control", "no-store"},
    };
    size_t n = 0;
    for (const gw_admin_header *h = gw_admin_security_headers; h->name != NULL; h++, n++) {
        ck_assert_uint_lt(n, 5);
        ck_assert_str_eq(h->name, want[n][0]);
        ck_assert_str_eq(h->value, want[n][1]);
        ck_assert_ptr_null(strstr(h->value, "unsafe"));
    }
    ck_assert_uint_eq(n, 5);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("admin_console");
    TCase *tc = tcase_create("console");
    tcase_add_test(tc, t_every_file_embedded);
    tcase_add_test(tc, t_find);
    tcase_add_test(tc, t_mime);
    tcase_add_test(tc, t_headers);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
