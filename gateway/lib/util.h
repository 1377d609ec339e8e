/* Small shared helpers: a growable byte buffer, ids, time stamps, hex. */
#ifndef GW_UTIL_H
#define GW_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Growable buffer. Owned by whoever declared it; gw_buf_free() releases.
 * On allocation failure the buffer sets <oom> and further appends are no-ops,
 * so a builder checks once at the end. */
typedef struct gw_buf {
    char *data;
    size_t len;
    size_t cap;
    int oom;
} gw_buf;

/* Append <n> bytes of <p>. The common case (room left) is inline: a
 * request's head, its response and its journal record are built from ~200
 * pieces, most of a constant size that the compiler turns into a move
 * instead of a call to memcpy; the growth is gw_buf_append_slow. */
void gw_buf_append_slow(gw_buf *b, const void *p, size_t n);
static inline void gw_buf_append(gw_buf *b, const void *p, size_t n)
{
    if (!b->oom && b->len + n < b->cap) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
        return;
    }
    gw_buf_append_slow(b, p, n);
}
void gw_buf_puts(gw_buf *b, const char *s);
void gw_buf_printf(gw_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Room for <n> more bytes at once (a size known ahead: one allocation
 * instead of a growth by doubling). Out of memory: the buffer's oom flag. */
void gw_buf_reserve(gw_buf *b, size_t n);
/* The same for an empty buffer, from the thread's kept blocks (gw_blk_get:
 * a request's forwarded bytes and its response); whoever ends up with the
 * bytes gives them back with gw_blk_put() (or free()). */
void gw_buf_reserve_blk(gw_buf *b, size_t n);
/* <v> in decimal (no snprintf: the request path formats numbers with it). */
void gw_buf_put_ull(gw_buf *b, unsigned long long v);
void gw_buf_free(gw_buf *b);
/* A message formatted into a new string (at most 511 characters, cut
 * beyond), for error returns; NULL when out of memory. */
char *gw_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Hand the bytes to the caller (NUL-terminated); the buffer is reset. */
char *gw_buf_take(gw_buf *b, size_t *len);

/* Blocks above glibc's per-thread cache (tcache: 1 KiB), kept per thread.
 * A request's large pieces (the parsed head's message block, the
 * forwarded request and response) are taken and given back once per
 * request; glibc serves each from its bins (and
 * consolidates its fast bins first: a request of 1 KiB or more). Here the
 * thread keeps freed blocks of each class (2, 4, 8.5 and 16 KiB: at most
 * 128, 64, 64 and 16 of them, GW_BLK_SLOTS the most) for the next one.
 *   gw_blk_get(n, &cap): a malloc'd block of at least n bytes (*cap: its
 *     usable size; a class's size for n above 1 KiB), NULL when out of
 *     memory. It may be freed with free() or realloc'd like any other.
 *   gw_blk_put(p): p (from malloc, NULL allowed) kept for this thread's
 *     next gw_blk_get of its class, or freed (smaller than 2 KiB, twice
 *     its class or more, or its class full).
 *   gw_blk_drain(): the thread's kept blocks freed (a worker gone quiet;
 *     a thread's exit drains its own). */
#define GW_BLK_SLOTS 128
void *gw_blk_get(size_t n, size_t *cap);
void gw_blk_put(void *p);
void gw_blk_drain(void);
/* Blocks kept by this thread (tests). */
size_t gw_blk_kept(void);

/* <n> zeroed bytes, or NULL: malloc + memset for the small objects made
 * per request (parsers, calls, stage states). glibc's calloc never takes
 * from the per-thread cache (tcache) that serves malloc's sizes up to
 * 1 KiB without a bin search; malloc does. */
static inline void *gw_zalloc(size_t n)
{
    void *p = malloc(n);
    /* hides where <p> came from: GCC would fuse malloc + memset into calloc */
    __asm__("" : "+r"(p));
    if (p != NULL)
        memset(p, 0, n);
    return p;
}

/* Random RFC 4122 version 4 UUID, 36 chars + NUL into <out>. */
void gw_uuid4(char out[37]);
/* 1 when <s>/<n> is 8-4-4-4-12 hexadecimal (any version, either case). */
int gw_is_uuid(const char *s, size_t n);

/* <v> in decimal into <out> (at least 21 bytes), NUL-terminated; returns
 * its length. A negative number for gw_fmt_ll. */
size_t gw_fmt_ull(char *out, unsigned long long v);
size_t gw_fmt_ll(char *out, long long v);

/* Current UTC time as "2024-03-21T09:00:00Z" (21 bytes with NUL). Both
 * keep the calendar part of the current second per thread: one gmtime and
 * strftime per second and thread, not per call. */
void gw_time_iso(char out[32]);
/* UTC time with milliseconds: "2024-03-21T09:00:00.123Z". */
void gw_time_iso_ms(char out[32]);
/* Monotonic milliseconds. */
uint64_t gw_now_ms(void);

void gw_hex(const unsigned char *in, size_t n, char *out /* 2n+1 */);
/* The value of one hexadecimal digit (either case), -1 for any other byte. */
int gw_hexval(int c);

/* Case-insensitive comparison of <a>/<an> with NUL-terminated <b>. Inline:
 * <b> is usually a literal, whose length the compiler knows, and the
 * lengths decide most comparisons without strncasecmp. */
static inline int gw_strcaseeq(const char *a, size_t an, const char *b)
{
    return an == strlen(b) && strncasecmp(a, b, an) == 0;
}
/* A name and its length, for tables compared with gw_strcaseeqn. */
typedef struct gw_name {
    const char *s;
    size_t len;
} gw_name;
#define GW_NAME(lit)                                                                               \
    {                                                                                              \
        lit, sizeof(lit) - 1                                                                       \
    }
/* The same with the length of <b> known (tables of names). */
static inline int gw_strcaseeqn(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && strncasecmp(a, b, an) == 0;
}

/* SHA-256 as an EVP_MD fetched once (OpenSSL 3): EVP_sha256() is looked up
 * in the provider tables at every digest init, a measurable cost per
 * request (docs/architecture.md, "hot path"). Thread-safe; never NULL. */
struct evp_md_st;
const struct evp_md_st *gw_sha256_md(void);

/* SHA-256 of <n> bytes into <out> with gw_sha256_md() and a context kept
 * per thread; 0 or -1. */
int gw_sha256(const void *p, size_t n, unsigned char out[32]);

/* Length (1..4) of the well-formed UTF-8 sequence at <s>, which has <n> > 0
 * bytes left, or 0: as strict as jansson (no overlong forms, no surrogates,
 * nothing above U+10FFFF). The journals replace what it refuses by U+FFFD. */
size_t gw_utf8_len(const unsigned char *s, size_t n);

#endif
