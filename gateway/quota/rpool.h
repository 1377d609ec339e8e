/*
 * Reply objects for hiredis's reader from a free list (gateway/quota/redis.c).
 * hiredis builds each reply as a tree of malloc'ed redisReply objects (the
 * quota FCALL's {admitted, remaining, reset}: an array, its element vector
 * and three integers, five allocations) and frees it right after the
 * callback. A pool hands the same objects out again: the objects are
 * hiredis's own redisReply, read and freed only through the reader's
 * function table, so nothing else in hiredis or the gateway changes.
 *
 * Ownership: the pool is used by one thread (the worker that owns the Redis
 * connections). It lives until its owner released it AND the last object it
 * handed out was freed: a reader freed after the owner's release (a context
 * hiredis frees later) still frees its objects safely.
 */
#ifndef GW_RPOOL_H
#define GW_RPOOL_H

#include <stddef.h>

#include <hiredis/read.h>

typedef struct gw_rpool gw_rpool;

/* A pool, or NULL (out of memory). */
gw_rpool *gw_rpool_new(void);

/* The owner drops its reference; the pool is freed now or with the last
 * object still out. NULL is allowed. */
void gw_rpool_release(gw_rpool *p);

/* Make <rd> build its replies from <p> (the reader's function table and
 * private data). Call before the reader sees a byte. */
void gw_rpool_attach(gw_rpool *p, redisReader *rd);

/* Objects allocated from the heap so far (not served from the free list). */
size_t gw_rpool_made(const gw_rpool *p);

#endif
