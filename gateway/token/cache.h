/*
 * Verified-token cache, one per worker (no locks): SHA-256 of the token ->
 * its verified claims, until the token's exp (+ leeway). Bounded: at most
 * <cap> entries, the least recently used one is evicted first. A hit skips
 * the signature and claim checks only; binding, scope and habilitation checks
 * run on every request.
 */
#ifndef GW_TOKEN_CACHE_H
#define GW_TOKEN_CACHE_H

#include <stddef.h>
#include <time.h>

#include "token/jose.h"

typedef struct gw_token_cache gw_token_cache;

gw_token_cache *gw_token_cache_new(size_t cap);
void gw_token_cache_free(gw_token_cache *c);

/* Copy the cached claims of <key> into <out> and return 1, or 0 on a miss or
 * when the entry has expired (<now> > <expires>; the entry is dropped). */
int gw_token_cache_get(gw_token_cache *c, const unsigned char key[32], time_t now, gw_claims *out,
                       int *own);
void gw_token_cache_put(gw_token_cache *c, const unsigned char key[32], const gw_claims *cl,
                        int own, time_t expires);

/* The cache key of the token <tok>/<n>: its SHA-256 (gw_sha256), which a
 * memo of the worker's recently seen tokens (their bytes and keys, 256 slots,
 * tokens up to 4 KiB) gives back without hashing when the very same bytes
 * come again (compared whole). <c> NULL: the SHA-256. Returns 0, or -1 when
 * the digest fails. */
int gw_token_cache_key(gw_token_cache *c, const char *tok, size_t n, unsigned char key[32]);

/* Copy claims, fixing the scope pointers to the copy's own buffer. */
void gw_claims_copy(gw_claims *dst, const gw_claims *src);

size_t gw_token_cache_size(const gw_token_cache *c);

#endif
