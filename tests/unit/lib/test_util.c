/* Unit tests for gateway/lib/util.c: the growable buffer (and its
 * out-of-memory contract), ids, time stamps (cached per second), numbers
 * without printf, hex, SHA-256 and strict UTF-8. */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/util.h"

START_TEST(t_buf)
{
    gw_buf b = {0};
    gw_buf_puts(&b, "ab");
    gw_buf_append(&b, "\0c", 2);
    gw_buf_printf(&b, "-%d-%s", 42, "x");
    ck_assert_uint_eq(b.len, 9);
    ck_assert_int_eq(memcmp(b.data, "ab\0c-42-x", 9), 0);
    /* growth well past the first capacity keeps every byte */
    for (int i = 0; i < 10000; i++)
        gw_buf_append(&b, "z", 1);
    ck_assert_uint_eq(b.len, 10009);
    ck_assert_int_eq(b.data[10008], 'z');
    size_t n = 0;
    char *s = gw_buf_take(&b, &n);
    ck_assert_uint_eq(n, 10009);
    ck_assert_int_eq(s[n], '\0');
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.len, 0);
    free(s);
    /* once out of memory, appends are no-ops: the builder checks at the end */
    gw_buf o = {.oom = 1};
    gw_buf_puts(&o, "lost");
    ck_assert_uint_eq(o.len, 0);
    gw_buf_free(&o);
}
END_TEST

/* The byte-by-byte definition gw_is_uuid() had: 8-4-4-4-12 hex digits. */
static int uuid_ref(const char *s, size_t n)
{
    if (n != 36)
        return 0;
    for (size_t i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return 0;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return 0;
        }
    }
    return 1;
}

/* Every byte value at every position of valid UUIDs (lower, upper, mixed),
 * and two bytes at once over random pairs: the same answer as the
 * definition. */
START_TEST(t_is_uuid_every_byte)
{
    static const char *const base[] = {
        "123e4567-e89b-12d3-a456-426614174000",
        "ABCDEF01-2345-6789-ABCD-EF0123456789",
        "fFaA0099-bB11-cC22-dD33-eE4455667788",
    };
    for (size_t k = 0; k < 3; k++) {
        char u[37];
        for (size_t i = 0; i < 36; i++) {
            for (int b = 0; b < 256; b++) {
                memcpy(u, base[k], 37);
                u[i] = (char)b;
                ck_assert_msg(gw_is_uuid(u, 36) == uuid_ref(u, 36), "byte 0x%02x at %zu", b, i);
            }
        }
        unsigned seed = 7;
        for (int r = 0; r < 200000; r++) {
            memcpy(u, base[k], 37);
            u[rand_r(&seed) % 36] = (char)(rand_r(&seed) % 256);
            u[rand_r(&seed) % 36] = (char)(rand_r(&seed) % 256);
            ck_assert(gw_is_uuid(u, 36) == uuid_ref(u, 36));
        }
        for (size_t n = 0; n < 37; n++)
            ck_assert(gw_is_uuid(base[k], n) == (n == 36));
    }
}
END_TEST

START_TEST(t_ids_and_time)
{
    char a[37], b[37];
    gw_uuid4(a);
    gw_uuid4(b);
    ck_assert_uint_eq(strlen(a), 36);
    ck_assert(gw_is_uuid(a, 36));
    ck_assert_str_ne(a, b);
    ck_assert_int_eq(a[14], '4'); /* version 4 */
    ck_assert(strchr("89ab", a[19]) != NULL);
    ck_assert(gw_is_uuid("123E4567-E89B-12D3-A456-426614174000", 36));
    ck_assert(!gw_is_uuid("123e4567-e89b-12d3-a456-42661417400", 35));
    ck_assert(!gw_is_uuid("123e4567xe89b-12d3-a456-426614174000", 36));
    ck_assert(!gw_is_uuid("123e4567-e89b-12d3-a456-42661417400g", 36));
    char t[32];
    gw_time_iso(t);
    ck_assert_uint_eq(strlen(t), 20);
    ck_assert_int_eq(t[10], 'T');
    ck_assert_int_eq(t[19], 'Z');
    gw_time_iso_ms(t);
    ck_assert_uint_eq(strlen(t), 24);
    ck_assert_int_eq(t[19], '.');
    uint64_t m1 = gw_now_ms(), m2 = gw_now_ms();
    ck_assert_uint_ge(m2, m1);
}
END_TEST

/* The cached calendar part agrees with strftime of the same second, for
 * both stamps, and follows the clock from one second to the next. */
static time_t realtime_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec;
}

/* Both stamps read the clock they are compared with here: CLOCK_REALTIME
 * (time() reads the coarse clock, up to a tick behind it). */
START_TEST(t_time_cached)
{
    for (int k = 0; k < 3; k++) {
        char a[32], b[32], want[32];
        time_t before = realtime_sec();
        gw_time_iso(a);
        gw_time_iso_ms(b);
        time_t after = realtime_sec();
        if (before != after)
            continue; /* a second boundary in between: try again */
        struct tm tm;
        gmtime_r(&before, &tm);
        strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%SZ", &tm);
        ck_assert_str_eq(a, want);
        ck_assert_int_eq(strncmp(b, want, 19), 0);
        ck_assert(b[20] >= '0' && b[20] <= '9' && b[21] >= '0' && b[21] <= '9' && b[22] >= '0' &&
                  b[22] <= '9');
        ck_assert_int_eq(b[23], 'Z');
        /* a second later, a fresh calendar part */
        struct timespec ts = {1, 50000000};
        nanosleep(&ts, NULL);
        gw_time_iso(a);
        ck_assert_str_ne(a, want);
        return;
    }
    ck_abort_msg("no stable second in three tries");
}
END_TEST

/* The two stamps read one clock: a second stamp taken after a millisecond
 * stamp never names an earlier second. time() (the coarse clock, up to a
 * tick behind CLOCK_REALTIME) gave "09:00:00Z" after "09:00:01.001Z" in the
 * first milliseconds of a second (test_util's t_time_cached failed on it
 * under load). The loop spans two second boundaries (the lag
 * is not at every boundary: old code failed about one run in three). */
START_TEST(t_time_stamps_one_clock)
{
    uint64_t end = gw_now_ms() + 2100;
    long pairs = 0;
    while (gw_now_ms() < end) {
        char a[32], b[32];
        gw_time_iso_ms(b);
        gw_time_iso(a);
        pairs++;
        if (strncmp(a, b, 19) < 0)
            ck_abort_msg("gw_time_iso %s after gw_time_iso_ms %s (pair %ld)", a, b, pairs);
    }
    ck_assert_int_gt(pairs, 1000);
}
END_TEST

START_TEST(t_fmt_numbers)
{
    char out[24];
    ck_assert_uint_eq(gw_fmt_ull(out, 0), 1);
    ck_assert_str_eq(out, "0");
    ck_assert_uint_eq(gw_fmt_ull(out, 18446744073709551615ull), 20);
    ck_assert_str_eq(out, "18446744073709551615");
    ck_assert_uint_eq(gw_fmt_ll(out, -9223372036854775807ll - 1), 20);
    ck_assert_str_eq(out, "-9223372036854775808");
    ck_assert_uint_eq(gw_fmt_ll(out, 1089), 4);
    ck_assert_str_eq(out, "1089");
    /* against printf: each power of ten and its neighbours, and a spread
     * of values of every length, both signs */
    char ref[32];
    unsigned long long p = 1;
    for (int k = 0; k < 20; k++, p *= 10) {
        for (unsigned long long v = p - (p > 1); v <= p + 1; v++) {
            snprintf(ref, sizeof(ref), "%llu", v);
            ck_assert_uint_eq(gw_fmt_ull(out, v), strlen(ref));
            ck_assert_str_eq(out, ref);
        }
    }
    unsigned long long x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        unsigned long long v = x >> (i % 64);
        snprintf(ref, sizeof(ref), "%llu", v);
        ck_assert_uint_eq(gw_fmt_ull(out, v), strlen(ref));
        ck_assert_str_eq(out, ref);
        long long sv = (long long)x >> (i % 64);
        snprintf(ref, sizeof(ref), "%lld", sv);
        ck_assert_uint_eq(gw_fmt_ll(out, sv), strlen(ref));
        ck_assert_str_eq(out, ref);
    }
    gw_buf b = {0};
    gw_buf_put_ull(&b, 42);
    gw_buf_put_ull(&b, 7);
    ck_assert_uint_eq(b.len, 3);
    ck_assert_int_eq(memcmp(b.data, "427", 3), 0);
    gw_buf_free(&b);
}
END_TEST

START_TEST(t_strdupf)
{
    char *m = gw_strdupf("%s: %s: %d", "f.json", "a.b", 7);
    ck_assert_str_eq(m, "f.json: a.b: 7");
    free(m);
    char big[700];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    m = gw_strdupf("%s", big); /* cut at 511 characters */
    ck_assert_uint_eq(strlen(m), 511);
    free(m);
}
END_TEST

START_TEST(t_hex)
{
    const unsigned char in[] = {0x00, 0x9f, 0xa0, 0xff};
    char out[9];
    gw_hex(in, sizeof(in), out);
    ck_assert_str_eq(out, "009fa0ff");
    /* every byte value, against printf's digits */
    unsigned char all[256];
    char hex[513], want[513];
    for (int i = 0; i < 256; i++) {
        all[i] = (unsigned char)i;
        snprintf(want + 2 * i, 3, "%02x", i);
    }
    gw_hex(all, sizeof(all), hex);
    ck_assert_str_eq(hex, want);
    gw_hex(all, 0, hex);
    ck_assert_str_eq(hex, "");
    ck_assert_int_eq(gw_hexval('0'), 0);
    ck_assert_int_eq(gw_hexval('9'), 9);
    ck_assert_int_eq(gw_hexval('a'), 10);
    ck_assert_int_eq(gw_hexval('F'), 15);
    ck_assert_int_eq(gw_hexval('g'), -1);
    ck_assert_int_eq(gw_hexval('/'), -1);
    ck_assert_int_eq(gw_hexval(':'), -1);
    ck_assert_int_eq(gw_hexval('@'), -1);
    ck_assert_int_eq(gw_hexval((char)0xe9), -1); /* a high byte through a signed char */
    ck_assert_int_eq(gw_hexval(0), -1);
    ck_assert(gw_strcaseeq("Content-Length", 14, "content-length"));
    ck_assert(!gw_strcaseeq("Content-Length", 13, "content-length"));
}
END_TEST

START_TEST(t_sha256)
{
    unsigned char d[32];
    char hex[65];
    ck_assert_int_eq(gw_sha256("abc", 3, d), 0);
    gw_hex(d, 32, hex);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ck_assert_ptr_nonnull(gw_sha256_md());
}
END_TEST

START_TEST(t_utf8)
{
    ck_assert_uint_eq(gw_utf8_len((const unsigned char *)"a", 1), 1);
    ck_assert_uint_eq(gw_utf8_len((const unsigned char *)"\xc3\xa9", 2), 2);
    ck_assert_uint_eq(gw_utf8_len((const unsigned char *)"\xe2\x82\xac", 3), 3);
    ck_assert_uint_eq(gw_utf8_len((const unsigned char *)"\xf0\x9f\x98\x80", 4), 4);
    ck_assert_uint_eq(gw_utf8_len((const unsigned char *)"\xc3", 1), 0);         /* cut */
    ck_assert_uint_eq(gw_utf8_len((const unsigned char *)"\xc0\xaf", 2), 0);     /* overlong */
    ck_assert_uint_eq(gw_utf8_len((const unsigned char *)"\xed\xa0\x80", 3), 0); /* surrogate */
    ck_assert_uint_eq(gw_utf8_len((const unsigned char *)"\xf4\x90\x80\x80", 4),
                      0); /* > U+10FFFF */
    ck_assert_uint_eq(gw_utf8_len((const unsigned char *)"\x80", 1), 0);
}
END_TEST

START_TEST(t_blk)
{
    gw_blk_drain();
    size_t cap = 0;
    /* tcache's sizes: plain malloc, never kept */
    char *s = gw_blk_get(100, &cap);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(cap, 100);
    gw_blk_put(s);
    ck_assert_uint_eq(gw_blk_kept(), 0);
    /* a class's size, usable to the end; given back, the next get of its
     * class has it again */
    char *a = gw_blk_get(3000, &cap);
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq(cap, 4096);
    memset(a, 'x', cap);
    gw_blk_put(a);
    ck_assert_uint_eq(gw_blk_kept(), 1);
    char *b = gw_blk_get(2049, &cap);
    ck_assert_ptr_eq(b, a);
    ck_assert_uint_eq(gw_blk_kept(), 0);
    /* another class does not take it */
    gw_blk_put(b);
    char *r = gw_blk_get(8200, &cap);
    ck_assert_uint_eq(cap, 8704);
    ck_assert_ptr_ne(r, a);
    memset(r, 0, cap);
    /* a block is a malloc'd block: realloc'd and freed as any */
    r = realloc(r, 20000);
    ck_assert_ptr_nonnull(r);
    free(r);
    /* beyond the classes: malloc */
    char *big = gw_blk_get(40000, &cap);
    ck_assert_uint_eq(cap, 40000);
    gw_blk_put(big); /* twice a class's size or more: freed, not kept */
    ck_assert_uint_eq(gw_blk_kept(), 1);
    /* at most GW_BLK_SLOTS per class, the rest freed */
    for (int i = 0; i < GW_BLK_SLOTS + 3; i++)
        gw_blk_put(malloc(2048));
    ck_assert_uint_eq(gw_blk_kept(), 1 + GW_BLK_SLOTS);
    gw_blk_put(NULL);
    gw_blk_drain();
    ck_assert_uint_eq(gw_blk_kept(), 0);
}
END_TEST

static void *blk_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 4; i++)
        gw_blk_put(malloc(5000));
    return (void *)gw_blk_kept(); /* freed at the thread's exit (ASan: no leak) */
}

START_TEST(t_blk_per_thread)
{
    gw_blk_drain();
    pthread_t t;
    void *kept = NULL;
    ck_assert_int_eq(pthread_create(&t, NULL, blk_thread, NULL), 0);
    ck_assert_int_eq(pthread_join(t, &kept), 0);
    ck_assert_uint_eq((size_t)kept, 4);
    ck_assert_uint_eq(gw_blk_kept(), 0); /* not this thread's */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("util");
    tcase_add_test(tc, t_buf);
    tcase_add_test(tc, t_ids_and_time);
    tcase_add_test(tc, t_is_uuid_every_byte);
    tcase_add_test(tc, t_time_cached);
    tcase_add_test(tc, t_time_stamps_one_clock);
    tcase_add_test(tc, t_fmt_numbers);
    tcase_add_test(tc, t_strdupf);
    tcase_add_test(tc, t_hex);
    tcase_add_test(tc, t_sha256);
    tcase_add_test(tc, t_utf8);
    tcase_add_test(tc, t_blk);
    tcase_add_test(tc, t_blk_per_thread);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
