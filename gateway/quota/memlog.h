/*
 * Exact sliding-window log in memory, shared by the workers of one instance:
 * never more than <limit> admissions in any window of <window_ms>. Only
 * admitted requests are recorded (a client that keeps calling recovers as
 * soon as its oldest admission leaves the window). Thread-safe (striped
 * mutexes); each key costs one ring of <limit> timestamps.
 */
#ifndef GW_MEMLOG_H
#define GW_MEMLOG_H

#include <stddef.h>
#include <stdint.h>

typedef struct gw_memlog gw_memlog;

typedef struct gw_memlog_result {
    int admitted;
    unsigned remaining; /* admissions left in the window after this call */
    uint64_t reset_ms;  /* ms until the oldest admission leaves the window
                           (when refused: the earliest a retry can pass) */
} gw_memlog_result;

/* FNV-1a of a NUL-terminated key (the quota stores' hash). */
uint64_t gw_memlog_hash(const char *key);

gw_memlog *gw_memlog_new(void);
void gw_memlog_free(gw_memlog *m);

/* Admit or refuse one request for <key> at <now_ms> (a monotonic clock). */
void gw_memlog_admit(gw_memlog *m, const char *key, unsigned limit, uint64_t window_ms,
                     uint64_t now_ms, gw_memlog_result *out);

/* Admissions of <key> currently inside the window (for listings). */
unsigned gw_memlog_count(gw_memlog *m, const char *key, uint64_t window_ms, uint64_t now_ms);

#endif
