#include "lib/util.h"

#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>

/* ---- blocks kept per thread ---- */

#define BLK_NCLASS 4
static const size_t blk_class[BLK_NCLASS] = {2048, 4096, 8704, 16384};
/* Blocks kept per class: as many as a worker has requests in flight (the
 * bench's S2: 64 connections, each request holding a gw_request, its
 * head's block and its forwarded request at once, the last two often of
 * the same class), at most 1.3 MiB per thread. */
static const unsigned blk_slots[BLK_NCLASS] = {128, 64, 64, 16};

struct blk_cache {
    void *slot[BLK_NCLASS][GW_BLK_SLOTS];
    unsigned n[BLK_NCLASS];
    int keyed; /* registered for the thread's exit */
};
static __thread struct blk_cache blk;
static pthread_once_t blk_once = PTHREAD_ONCE_INIT;
static pthread_key_t blk_key;
static int blk_key_ok;

static void blk_exit(void *arg)
{
    (void)arg;
    gw_blk_drain();
}

static void blk_key_init(void)
{
    blk_key_ok = pthread_key_create(&blk_key, blk_exit) == 0;
}

void *gw_blk_get(size_t n, size_t *cap)
{
    size_t c = 0;
    while (c < BLK_NCLASS && blk_class[c] < n)
        c++;
    if (n <= 1024 || c == BLK_NCLASS) {
        /* tcache's sizes, or beyond the classes */
        void *p = malloc(n);
        if (cap != NULL)
            *cap = n;
        return p;
    }
    if (cap != NULL)
        *cap = blk_class[c];
    if (blk.n[c] > 0)
        return blk.slot[c][--blk.n[c]];
    return malloc(blk_class[c]);
}

void gw_blk_put(void *p)
{
    if (p == NULL)
        return;
    size_t u = malloc_usable_size(p);
    int c = BLK_NCLASS - 1;
    while (c >= 0 && blk_class[c] > u)
        c--;
    if (c < 0 || u >= 2 * blk_class[c] || blk.n[c] == blk_slots[c]) {
        free(p);
        return;
    }
    if (!blk.keyed) {
        pthread_once(&blk_once, blk_key_init);
        if (!blk_key_ok || pthread_setspecific(blk_key, &blk) != 0) {
            free(p);
            return;
        }
        blk.keyed = 1;
    }
    blk.slot[c][blk.n[c]++] = p;
}

void gw_blk_drain(void)
{
    for (int c = 0; c < BLK_NCLASS; c++)
        while (blk.n[c] > 0)
            free(blk.slot[c][--blk.n[c]]);
}

size_t gw_blk_kept(void)
{
    size_t k = 0;
    for (int c = 0; c < BLK_NCLASS; c++)
        k += blk.n[c];
    return k;
}

static int buf_reserve(gw_buf *b, size_t extra)
{
    if (b->oom)
        return -1;
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL) {
        b->oom = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void gw_buf_reserve(gw_buf *b, size_t n)
{
    (void)buf_reserve(b, n);
}

void gw_buf_reserve_blk(gw_buf *b, size_t n)
{
    if (b->data != NULL || b->oom) {
        (void)buf_reserve(b, n);
        return;
    }
    size_t cap = 0;
    b->data = gw_blk_get(n + 1, &cap);
    if (b->data == NULL) {
        b->oom = 1;
        return;
    }
    b->cap = cap;
    b->data[0] = '\0';
}

void gw_buf_append_slow(gw_buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n) < 0)
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void gw_buf_puts(gw_buf *b, const char *s)
{
    gw_buf_append(b, s, strlen(s));
}

char *gw_strdupf(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return strdup(buf);
}

void gw_buf_printf(gw_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n) < 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void gw_buf_free(gw_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

char *gw_buf_take(gw_buf *b, size_t *len)
{
    char *p = NULL;
    if (!b->oom) {
        if (b->data == NULL)
            gw_buf_append(b, "", 0);
        p = b->data;
        if (len)
            *len = b->len;
        b->data = NULL;
    } else {
        free(b->data);
    }
    memset(b, 0, sizeof(*b));
    return p;
}

/* Per-thread pool of random bytes so that a request id costs one RAND_bytes
 * call per 64 ids instead of one per id. */
static __thread unsigned char rnd_pool[1024];
static __thread size_t rnd_left;

static void random_bytes(unsigned char *out, size_t n)
{
    if (n > sizeof(rnd_pool)) {
        if (RAND_bytes(out, (int)n) != 1)
            abort();
        return;
    }
    if (rnd_left < n) {
        if (RAND_bytes(rnd_pool, sizeof(rnd_pool)) != 1)
            abort(); /* no entropy: ids would be predictable; refuse to run */
        rnd_left = sizeof(rnd_pool);
    }
    memcpy(out, rnd_pool + sizeof(rnd_pool) - rnd_left, n);
    memset(rnd_pool + sizeof(rnd_pool) - rnd_left, 0, n);
    rnd_left -= n;
}

void gw_uuid4(char out[37])
{
    unsigned char b[16];
    random_bytes(b, sizeof(b));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    static const char hx[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hx[b[i] >> 4];
        out[o++] = hx[b[i] & 15];
    }
    out[o] = '\0';
}

/* Hexadecimal digits, either case. A table and no early exit: the digits of
 * a random UUID made the range tests' branches unpredictable (X-Correlation-ID
 * is checked on every request). */
static const unsigned char hex_digit[256] = {
    ['0' ... '9'] = 1,
    ['a' ... 'f'] = 1,
    ['A' ... 'F'] = 1,
};

int gw_is_uuid(const char *s, size_t n)
{
    if (n != 36)
        return 0;
    const unsigned char *u = (const unsigned char *)s;
    unsigned ok = (u[8] == '-') & (u[13] == '-') & (u[18] == '-') & (u[23] == '-');
    for (size_t i = 0; i < 8; i++)
        ok &= hex_digit[u[i]];
    for (size_t i = 9; i < 13; i++)
        ok &= hex_digit[u[i]] & hex_digit[u[i + 5]] & hex_digit[u[i + 10]];
    for (size_t i = 24; i < 36; i++)
        ok &= hex_digit[u[i]];
    return (int)ok;
}

/* "2024-03-21T09:00:00" of second <t>, cached per thread. */
static const char *iso_second(time_t t)
{
    static _Thread_local time_t last = (time_t)-1;
    static _Thread_local char base[24];
    if (t != last) {
        struct tm tm;
        gmtime_r(&t, &tm);
        if (strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
            base[0] = '\0';
        last = t;
    }
    return base;
}

/* Both stamps read CLOCK_REALTIME: time() reads the coarse clock, which
 * lags it by up to a tick (tens of ms seen on a VM), so a second stamp
 * taken after a millisecond stamp could name the second before. */
void gw_time_iso(char out[32])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    const char *b = iso_second(ts.tv_sec);
    size_t n = strnlen(b, 20);
    memcpy(out, b, n);
    memcpy(out + n, "Z", 2);
}

void gw_time_iso_ms(char out[32])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    const char *b = iso_second(ts.tv_sec);
    size_t n = strnlen(b, 20);
    int ms = (int)(ts.tv_nsec / 1000000L) % 1000;
    memcpy(out, b, n);
    out[n] = '.';
    out[n + 1] = (char)('0' + ms / 100);
    out[n + 2] = (char)('0' + ms / 10 % 10);
    out[n + 3] = (char)('0' + ms % 10);
    memcpy(out + n + 4, "Z", 2);
}

/* Digits counted first, then written from the end two at a time from a
 * table (one division per pair instead of one per digit, no reversal): a
 * request writes about 30 numbers (journal record, lengths, headers). */
size_t gw_fmt_ull(char *out, unsigned long long v)
{
    static const char pairs[201] = "00010203040506070809"
                                   "10111213141516171819"
                                   "20212223242526272829"
                                   "30313233343536373839"
                                   "40414243444546474849"
                                   "50515253545556575859"
                                   "60616263646566676869"
                                   "70717273747576777879"
                                   "80818283848586878889"
                                   "90919293949596979899";
    /* clang-format off */
    static const unsigned long long pow10[20] = {
        1ull, 10ull, 100ull, 1000ull,
        10000ull, 100000ull, 1000000ull, 10000000ull,
        100000000ull, 1000000000ull, 10000000000ull, 100000000000ull,
        1000000000000ull, 10000000000000ull, 100000000000000ull, 1000000000000000ull,
        10000000000000000ull, 100000000000000000ull, 1000000000000000000ull, 10000000000000000000ull,
    };
    /* clang-format on */
    size_t n = 1;
    while (n < 20 && v >= pow10[n])
        n++;
    char *p = out + n;
    *p = '\0';
    while (v >= 100) {
        unsigned d = (unsigned)(v % 100) * 2;
        v /= 100;
        p -= 2;
        p[0] = pairs[d];
        p[1] = pairs[d + 1];
    }
    if (v >= 10) {
        p -= 2;
        p[0] = pairs[v * 2];
        p[1] = pairs[v * 2 + 1];
    } else {
        *--p = (char)('0' + v);
    }
    return n;
}

size_t gw_fmt_ll(char *out, long long v)
{
    if (v >= 0)
        return gw_fmt_ull(out, (unsigned long long)v);
    out[0] = '-';
    return 1 + gw_fmt_ull(out + 1, 0ull - (unsigned long long)v);
}

void gw_buf_put_ull(gw_buf *b, unsigned long long v)
{
    char num[24];
    gw_buf_append(b, num, gw_fmt_ull(num, v));
}

uint64_t gw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Two digits per byte from a table: the journal writer hex-encodes every
 * record's hash (a quarter fewer instructions than the nibble loop). */
static const char hex_pairs[513] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
    "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
    "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
    "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
    "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
    "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

void gw_hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        memcpy(out + 2 * i, hex_pairs + 2 * in[i], 2);
    out[2 * n] = '\0';
}

static const EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

/* One EVP_MD_CTX per thread, reused by gw_sha256 (the bearer stage hashes
 * every request's token): EVP_Digest makes and frees a context, and its
 * provider state, per call. Freed when its thread ends. */
static pthread_key_t sha256_ctx_key;
static int sha256_ctx_key_ok;

static void sha256_ctx_free(void *ctx)
{
    EVP_MD_CTX_free(ctx);
}

static void sha256_fetch(void)
{
    /* Kept for the life of the process (one object, reachable). */
    EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
    sha256_md = md != NULL ? md : EVP_sha256();
    sha256_ctx_key_ok = pthread_key_create(&sha256_ctx_key, sha256_ctx_free) == 0;
}

const EVP_MD *gw_sha256_md(void)
{
    pthread_once(&sha256_once, sha256_fetch);
    return sha256_md;
}

/* This thread's context, made on its first use; NULL when it cannot be. */
static EVP_MD_CTX *sha256_ctx(void)
{
    if (!sha256_ctx_key_ok)
        return NULL;
    EVP_MD_CTX *ctx = pthread_getspecific(sha256_ctx_key);
    if (ctx != NULL)
        return ctx;
    ctx = EVP_MD_CTX_new();
    if (ctx != NULL && pthread_setspecific(sha256_ctx_key, ctx) != 0) {
        EVP_MD_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

int gw_sha256(const void *p, size_t n, unsigned char out[32])
{
    const EVP_MD *md = gw_sha256_md();
    EVP_MD_CTX *ctx = sha256_ctx();
    unsigned int len = 0;
    if (ctx == NULL) {
        if (EVP_Digest(p, n, out, &len, md, NULL) != 1 || len != 32)
            return -1;
        return 0;
    }
    if (EVP_DigestInit_ex2(ctx, md, NULL) != 1 || EVP_DigestUpdate(ctx, p, n) != 1 ||
        EVP_DigestFinal_ex(ctx, out, &len) != 1 || len != 32)
        return -1;
    return 0;
}

size_t gw_utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    uint32_t cp, min;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

int gw_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
