/*
 * The admin token and the back-off of failed authentications, without
 * libevent (admin.c applies the verdicts to its requests).
 *
 * Back-off (docs/configuration.md, "admin"): GW_ADMIN_AUTH_MAX_FAILURES
 * failures within GW_ADMIN_AUTH_WINDOW_S from one source address, and every
 * call of it that needs the token is answered 429 for GW_ADMIN_AUTH_BLOCK_S,
 * the right token included (else the guessing goes on). At most
 * GW_ADMIN_AUTH_SOURCES addresses are tracked; past that the least recently
 * seen one that is not blocked is forgotten, and when every one is blocked a
 * new address is not tracked (nothing is forgotten early). One table per
 * admin listener, main thread only.
 */
#ifndef GW_ADMIN_AUTH_H
#define GW_ADMIN_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define GW_ADMIN_AUTH_MAX_FAILURES 20
#define GW_ADMIN_AUTH_WINDOW_S 60
#define GW_ADMIN_AUTH_BLOCK_S 300
#define GW_ADMIN_AUTH_SOURCES 256

typedef struct gw_admin_auth_src {
    char ip[64];
    uint64_t window_start_ms;
    uint64_t last_ms;
    uint64_t blocked_until_ms;
    unsigned failures;
} gw_admin_auth_src;

typedef struct gw_admin_auth {
    gw_admin_auth_src srcs[GW_ADMIN_AUTH_SOURCES];
    size_t n;
} gw_admin_auth;

typedef struct gw_admin_auth_verdict {
    int status;             /* 0: let through; 401; 429 */
    unsigned retry_after_s; /* 429: seconds until the block ends, rounded up */
    unsigned failures;      /* 401: the source's failures in its window (0: not tracked) */
    unsigned blocked_s;     /* 401: this failure blocked the source for that long, else 0 */
} gw_admin_auth_verdict;

/* One call needing the token, from <ip> at <now_ms>, that presented the
 * right token or not (<token_ok>). Updates the source's record and says
 * what to answer. */
gw_admin_auth_verdict gw_admin_auth_decide(gw_admin_auth *t, const char *ip, int token_ok,
                                           uint64_t now_ms);

/* 1 when <authorization> (the header's value, NULL when absent) is
 * "Bearer " followed by exactly the <token_len> bytes of <token>. The
 * comparison takes the same time wherever the bytes differ. */
int gw_admin_token_ok(const char *authorization, const char *token, size_t token_len);

/* The longest token accepted. */
#define GW_ADMIN_TOKEN_MAX 255

/* The token in file <path>: the file's bytes, trailing CR, LF and spaces
 * removed. Returns a malloc'd string and its length in <len>, or NULL when
 * the file cannot be read, holds no token, or a token longer than
 * GW_ADMIN_TOKEN_MAX (refused rather than cut, which would make the right
 * token fail). */
char *gw_admin_token_read(const char *path, size_t *len);

#endif
