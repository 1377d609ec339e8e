/*
 * opale-loadgen: clock, exits, the PRNG and UUIDs.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loadgen.h"

uint64_t lg_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

struct timeval lg_ns_to_tv(uint64_t ns)
{
    struct timeval tv;
    tv.tv_sec = (time_t)(ns / NS_PER_S);
    tv.tv_usec = (suseconds_t)((ns % NS_PER_S) / 1000);
    return tv;
}

void lg_die(const char *fmt, ...)
{
    va_list ap;
    fputs(LG_NAME ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

void lg_usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs(LG_NAME ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry '" LG_NAME " --help'.\n", stderr);
    exit(2);
}

int lg_is_tchar(unsigned char ch)
{
    if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
        return 1;
    return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* xoshiro256** (per thread; seeded from the OpenSSL DRBG). Good enough for
 * correlation identifiers, which need to be unique, not unpredictable. */
static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(uint64_t s[4])
{
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* A UUID version 4 (RFC 9562), 36 characters, lower case, no NUL. */
void lg_uuid_v4(uint64_t s[4], char out[36])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    uint64_t a = rng_next(s), c = rng_next(s);
    for (int i = 0; i < 8; i++) {
        b[i] = (unsigned char)(a >> (56 - 8 * i));
        b[8 + i] = (unsigned char)(c >> (56 - 8 * i));
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
}
