/*
 * The Redis quota store (see redis.h): hiredis async on the worker's
 * event_base, our own per-command and connect timeouts, reconnection with
 * backoff and jitter, and a small Redis Cluster router (CLUSTER SLOTS, MOVED,
 * ASK). Every call object lives until both its caller is done with it
 * (reported, timed out or cancelled) and hiredis has dropped its reference
 * (reply, or NULL reply on disconnect/free), so a late reply never touches
 * freed memory and never reaches the caller.
 */
#include "quota/redis.h"
#include "quota/ownlog.h"
#include "quota/rpool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "lib/evtimer.h"
#include "lib/util.h"

#define NSLOTS 16384
#define HOST_MAX 64
/* A connection with commands in flight and no reply for this long (at
 * least, and at least 10 command timeouts) is dropped and reconnected: a
 * peer that vanished without a RST (failover, partition) would otherwise
 * hold it until TCP gives up, many minutes later. */
#define STALL_MIN_MS 1000
/* Present while Redis holds every live gateway's admissions: set at the end
 * of a sync, gone after a restart without persistence or a FLUSHALL. */
#define MARKER "opale:q:live"
/* The library's functions (library opale2: see FUNCTION_CODE). */
#define FN_QUOTA "opale2_quota"
#define FN_QUOTA_N "opale2_quota_n"
#define FN_QUOTA_M "opale2_quota_m"
#define FN_RESTORE "opale2_restore"
/* Entries per opale2_restore call. */
#define RESTORE_CHUNK 128
/* A call whose key and member (with their NULs) fit in CALL_ROOM bytes
 * ("opale:q:{<habilitation>}" and a request id) goes back to a free list
 * of at most CALLS_KEPT when done, its timer event with it: a quota
 * decision then costs no allocation of ours. */
#define CALL_ROOM 128
#define CALLS_KEPT 256
/* Calls coalesced into one FCALL opale2_quota_n (see "batches" below), the
 * batches kept for reuse, and the calls of one FCALL opale2_quota_m (a chain
 * of batches of several keys, standalone Redis only). */
#define BATCH_MAX 64
#define BATCHES_KEPT 16
#define CHAIN_MAX 64

/* The Redis 7 Function. An entry at t leaves the window at t + window
 * (ZREMRANGEBYSCORE removes score <= now - window), as in memlog.c. A member
 * is a request id (a random UUID of the gateway's), so a member already in
 * the window is the same request again and counts once: the call answers
 * admitted (remaining and reset as of now) and writes nothing, even when
 * the window is full. A request whose call timed out was decided locally
 * and may be written back (opale2_restore, by any connection of its
 * instance) before Redis reads the call still queued behind a stop: library
 * opale (v1) stored it again as member#1 and counted it twice (the bench's
 * S8 saw three such 429s). A limit below 1 refuses even a repeat. When
 * refused, the slot frees when the
 * (n - limit)-th oldest entry leaves (n == limit normally: the oldest; n >
 * limit after a lowered limit, as memlog keeps the newest entries that fit).
 *
 * Written for Redis's CPU (docs/quotas.md, "Cost in Redis"; measured with
 * bench/redis-fn-bench.sh). Apart from repeats, it makes the decisions,
 * stores the entries, sets the TTL and answers the three values of library
 * opale (a differential test keeps that:
 * tests/integration/test_quota_function.py). Gateways of both versions may
 * share one Redis, each under its own library name (each loads its own with
 * FUNCTION LOAD REPLACE); a change of behaviour needs a new library and
 * function name again. A Lua number given to redis.call is formatted
 * by Redis with "%.17g" and tonumber() parses a string twice (glibc's
 * printf_fp and strtod were a quarter of the instructions): the score is
 * built as a string from TIME's strings, the arguments go as received or as
 * string.format('%d') (when Lua's %d is 64-bit, checked at the first call:
 * a 32-bit Redis gets the number), and strings are coerced once by arithmetic. With no
 * entry left in the window (n == 0) the oldest is the one just added: reset
 * = window without the ZRANGE. quota_n decides several calls of one key
 * (one member each) in order at one TIME, as that many quota calls in the
 * same millisecond would (the client's batches, below). quota_m does the
 * same for several such groups, each of its own key, limit and window, one
 * after the other (KEYS: one per group, then the marker; ARGV per group:
 * limit, window, count, members), so that the marker check, TIME and the
 * FCALL itself are paid once per loop pass rather than once per key. A
 * group of one call runs quota's own steps (no ZMSCORE). */
static const char FUNCTION_CODE[] =
    "#!lua name=opale2\n"
    "local wide\n"
    "local function clock()\n"
    "  if wide == nil then wide = string.format('%d', 2^40) == '1099511627776' end\n"
    "  local t = redis.call('TIME')\n"
    "  local nows = t[1] .. string.sub('00000' .. t[2], -6, -4)\n"
    "  return nows, nows + 0\n"
    "end\n"
    "local function card(key, now, limit, window)\n"
    "  if limit < 1 then return nil end\n"
    "  local b = now - window\n"
    "  redis.call('ZREMRANGEBYSCORE', key, '-inf', wide and string.format('%d', b) or b)\n"
    "  return redis.call('ZCARD', key)\n"
    "end\n"
    "local function one(out, j, key, nows, now, limit, window, ws, n, m0)\n"
    "  if n == nil then\n"
    "    out[j], out[j + 1], out[j + 2] = 0, 0, window\n"
    "    return\n"
    "  end\n"
    "  local call = redis.call\n"
    "  if n < limit then\n"
    "    if call('ZADD', key, 'NX', nows, m0) == 0 then\n"
    "      local o = call('ZRANGE', key, '0', '0', 'WITHSCORES')\n"
    "      out[j], out[j + 1], out[j + 2] = 1, limit - n, o[2] + window - now\n"
    "      return\n"
    "    end\n"
    "    call('PEXPIRE', key, ws)\n"
    "    if n == 0 then\n"
    "      out[j], out[j + 1], out[j + 2] = 1, limit - 1, window\n"
    "      return\n"
    "    end\n"
    "    local o = call('ZRANGE', key, '0', '0', 'WITHSCORES')\n"
    "    out[j], out[j + 1], out[j + 2] = 1, limit - n - 1, o[2] + window - now\n"
    "    return\n"
    "  end\n"
    "  local again = call('ZSCORE', key, m0) ~= false\n"
    "  local r = (again or n == limit) and '0' or string.format('%d', n - limit)\n"
    "  local o = call('ZRANGE', key, r, r, 'WITHSCORES')\n"
    "  out[j], out[j + 1], out[j + 2] = again and 1 or 0, 0, o[2] + window - now\n"
    "end\n"
    "local function many(out, j0, key, nows, now, limit, window, ws, n, args, a, m)\n"
    "  if n == nil then\n"
    "    for j = j0, j0 + 3 * m - 1, 3 do out[j], out[j + 1], out[j + 2] = 0, 0, window end\n"
    "    return\n"
    "  end\n"
    "  local call = redis.call\n"
    "  local n0, oldest, over, add, taken = n, nil, nil, nil, {}\n"
    "  local scores = n0 > 0 and call('ZMSCORE', key, unpack(args, a, a + m - 1)) or nil\n"
    "  for i = 1, m do\n"
    "    local j, mm = j0 + 3 * i - 3, args[a + i - 1]\n"
    "    if taken[mm] or (scores ~= nil and scores[i]) then\n"
    "      if oldest == nil then oldest = call('ZRANGE', key, '0', '0', 'WITHSCORES')[2] + 0 end\n"
    "      local left = limit > n and limit - n or 0\n"
    "      out[j], out[j + 1], out[j + 2] = 1, left, oldest + window - now\n"
    "    elseif n < limit then\n"
    "      if add == nil then add = {'ZADD', key, 'NX'} end\n"
    "      taken[mm] = true\n"
    "      add[#add + 1] = nows\n"
    "      add[#add + 1] = mm\n"
    "      n = n + 1\n"
    "      if oldest == nil then\n"
    "        oldest = n0 > 0 and call('ZRANGE', key, '0', '0', 'WITHSCORES')[2] + 0 or now\n"
    "      end\n"
    "      if now < oldest then oldest = now end\n"
    "      out[j], out[j + 1], out[j + 2] = 1, limit - n, oldest + window - now\n"
    "    elseif n == limit then\n"
    "      if oldest == nil then oldest = call('ZRANGE', key, '0', '0', 'WITHSCORES')[2] + 0 end\n"
    "      out[j], out[j + 1], out[j + 2] = 0, 0, oldest + window - now\n"
    "    else\n"
    "      if over == nil then\n"
    "        local r = string.format('%d', n - limit)\n"
    "        over = call('ZRANGE', key, r, r, 'WITHSCORES')[2] + 0\n"
    "      end\n"
    "      out[j], out[j + 1], out[j + 2] = 0, 0, over + window - now\n"
    "    end\n"
    "  end\n"
    "  if add ~= nil then\n"
    "    call(unpack(add))\n"
    "    call('PEXPIRE', key, ws)\n"
    "  end\n"
    "end\n"
    "local function quota(keys, args)\n"
    "  if keys[2] ~= nil and redis.call('EXISTS', keys[2]) == 0 then return {-1, 0, 0} end\n"
    "  local nows, now = clock()\n"
    "  local limit, window, out = args[1] + 0, args[2] + 0, {}\n"
    "  local n = card(keys[1], now, limit, window)\n"
    "  one(out, 1, keys[1], nows, now, limit, window, args[2], n, args[3])\n"
    "  return out\n"
    "end\n"
    "local function quota_n(keys, args)\n"
    "  if keys[2] ~= nil and redis.call('EXISTS', keys[2]) == 0 then return {-1, 0, 0} end\n"
    "  local nows, now = clock()\n"
    "  local limit, window, out = args[1] + 0, args[2] + 0, {}\n"
    "  local n = card(keys[1], now, limit, window)\n"
    "  many(out, 1, keys[1], nows, now, limit, window, args[2], n, args, 3, #args - 2)\n"
    "  return out\n"
    "end\n"
    "local function quota_m(keys, args)\n"
    "  if redis.call('EXISTS', keys[#keys]) == 0 then return {-1, 0, 0} end\n"
    "  local nows, now = clock()\n"
    "  local out, a, j = {}, 1, 1\n"
    "  for g = 1, #keys - 1 do\n"
    "    local key, limit, window, m = keys[g], args[a] + 0, args[a + 1] + 0, args[a + 2] + 0\n"
    "    local n = card(key, now, limit, window)\n"
    "    if m == 1 then\n"
    "      one(out, j, key, nows, now, limit, window, args[a + 1], n, args[a + 3])\n"
    "    else\n"
    "      many(out, j, key, nows, now, limit, window, args[a + 1], n, args, a + 3, m)\n"
    "    end\n"
    "    a, j = a + 3 + m, j + 3 * m\n"
    "  end\n"
    "  return out\n"
    "end\n"
    "local function restore(keys, args)\n"
    "  local key = keys[1]\n"
    "  local window = tonumber(args[1])\n"
    "  local t = redis.call('TIME')\n"
    "  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)\n"
    "  local n, newest = 0, nil\n"
    "  for i = 2, #args - 1, 2 do\n"
    "    local age = tonumber(args[i + 1])\n"
    "    if age ~= nil and age >= 0 and age < window then\n"
    "      local s = now - age\n"
    "      n = n + redis.call('ZADD', key, 'NX', s, args[i])\n"
    "      if newest == nil or s > newest then newest = s end\n"
    "    end\n"
    "  end\n"
    "  if newest ~= nil and redis.call('PTTL', key) < newest + window - now then\n"
    "    redis.call('PEXPIRE', key, newest + window - now)\n"
    "  end\n"
    "  return n\n"
    "end\n"
    "redis.register_function('opale2_quota', quota)\n"
    "redis.register_function('opale2_quota_n', quota_n)\n"
    "redis.register_function('opale2_quota_m', quota_m)\n"
    "redis.register_function('opale2_restore', restore)\n";

enum { C_DOWN, C_CONNECTING, C_UP };
enum { P_LOADING, P_GRACE, P_MARKING };
enum { TRIED_MOVED = 1, TRIED_ASK = 2, TRIED_RELOAD = 4 };

typedef struct conn {
    gw_redis *r;
    char host[HOST_MAX];
    unsigned port;
    redisAsyncContext *ac; /* NULL while down */
    int state;
    int loaded;          /* FUNCTION LOAD answered OK on this connection */
    int ready;           /* synced: FCALLs may be sent */
    int was_ready;       /* has been ready once: a reconnection always waits the grace */
    int phase;           /* while up and not ready: P_LOADING, P_GRACE, P_MARKING */
    int sync_err;        /* an error reply during this sync */
    int audit_pending;   /* an EXISTS MARKER awaits its reply */
    int resync;          /* a call timed out: write back at the next reply */
    int aof;             /* INFO persistence aof_enabled: -1 unknown */
    unsigned attempts;   /* connections that failed before ready, since the last ready */
    unsigned inflight;   /* calls waiting for a reply (in a batch or on the wire) */
    uint64_t last_us;    /* the last reply, or when replies began to be awaited */
    uint64_t wb_ms;      /* the last write-back queued here (ownlog clock): the partial
                            ones send the local decisions from then on */
    struct event *timer; /* connect timeout (connecting), retry (down), sync grace (up,
                            not ready) or audit (ready) */
    struct batch *open;  /* this loop pass's calls, not yet written */
    struct batch *open_tail;
} conn;

/* The calls of one loop pass for one key, limit and window on one
 * connection, sent as one command when the pass's callbacks are done,
 * alone or chained with the pass's other batches (standalone Redis). */
typedef struct batch {
    struct batch *next; /* conn->open, the chain sent as one command, or
                           gw_redis->free_batches */
    conn *c;
    int asking; /* preceded by ASKING (a cluster ASK redirect) */
    unsigned n;
    struct gw_redis_call *k[BATCH_MAX];
} batch;

struct gw_redis_call {
    gw_redis *r;
    gw_redis_call *prev, *next; /* r->calls */
    conn *c;                    /* while on the wire */
    gw_redis_cb cb;
    void *arg;
    struct event *ev; /* the command timeout, or a 0-timeout failure report */
    const char *fail; /* the reason <ev> reports, NULL: timeout */
    int done;         /* reported or cancelled: the callback never runs again */
    int on_wire;      /* hiredis holds a callback with this call */
    conn *wait_c;     /* queued until this connection (never ready yet) is ready */
    int tried;        /* TRIED_*: each retry at most once */
    int pooled;       /* CALL_ROOM bytes of key: may go back to r->free_calls */
    uint64_t sent_us;
    unsigned limit;
    uint64_t window_ms;
    size_t keylen, memberlen;
    char *member;
    char key[];
};

struct gw_redis {
    struct event_base *base;
    int cluster;
    unsigned timeout_ms, connect_timeout_ms, max_inflight, backoff_min_ms, backoff_max_ms;
    unsigned probe_ms;
    int sync_after_timeouts;
    gw_ownlog *own;
    conn **conns;
    size_t nconns, capconns;
    conn **slots; /* cluster: slot -> master (NULL: unknown) */
    int refreshing, need_refresh, closing;
    struct event *refresh_timer; /* retries a failed or incomplete CLUSTER SLOTS */
    uint64_t stall_us;
    gw_redis_call *calls;
    gw_redis_call *free_calls; /* done calls kept for reuse (next), with their event */
    unsigned nfree_calls;
    struct event *flush_ev; /* writes the open batches, once per loop pass */
    int flush_pending;
    batch *free_batches;
    unsigned nfree_batches;
    gw_rpool *rpool;     /* the reply objects of every connection's reader */
    gw_redis_stats st;   /* counters: written by the worker only (STAT_ADD) */
    int up, persistence; /* published by publish_up(), read by gw_redis_get_stats */
    uint64_t rng;
};

/* The admin thread reads a worker's counters and figures (gw_redis_get_stats,
 * through gw_server_redis_stats) while the worker updates them. The worker is
 * the only writer: a relaxed atomic load and store is an exact increment (no
 * lock prefix on the hot path), and the reader's relaxed loads are defined,
 * each figure a little behind at worst. The connection states and the slot
 * map stay the worker's alone: it publishes what the admin needs of them,
 * "up" and "persistence", with publish_up() after each change. */
#define STAT_ADD(r, f, v)                                                                          \
    __atomic_store_n(&(r)->st.f, __atomic_load_n(&(r)->st.f, __ATOMIC_RELAXED) + (v),              \
                     __ATOMIC_RELAXED)

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static struct timeval ms_tv(unsigned ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

static uint32_t rnd(gw_redis *r)
{
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    return (uint32_t)(r->rng >> 32);
}

/* ---- slots and addresses -------------------------------------------- */

static uint16_t crc16_xmodem(const unsigned char *p, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned gw_redis_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open != NULL) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close != NULL && close > open + 1)
            return crc16_xmodem((const unsigned char *)open + 1, (size_t)(close - open - 1)) &
                   (NSLOTS - 1);
    }
    return crc16_xmodem((const unsigned char *)key, len) & (NSLOTS - 1);
}

static int parse_uint(const char *s, size_t n, unsigned max, unsigned *out)
{
    unsigned v = 0;
    if (n == 0 || n > 5)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

/* "host:port", "[v6]:port" or (as Redis writes redirects) "v6:port"; an
 * empty host is allowed here (Redis' "unknown endpoint"). */
static int split_addr(const char *s, size_t n, char *host, size_t hostlen, unsigned *port)
{
    const char *colon = NULL;
    for (size_t i = n; i > 0; i--)
        if (s[i - 1] == ':') {
            colon = s + i - 1;
            break;
        }
    if (colon == NULL)
        return -1;
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl >= hostlen || memchr(h, '[', hl) != NULL || memchr(h, ']', hl) != NULL)
        return -1;
    for (size_t i = 0; i < hl; i++)
        if (h[i] <= ' ' || h[i] == 0x7f)
            return -1;
    if (parse_uint(colon + 1, n - (size_t)(colon + 1 - s), 65535, port) < 0 || *port == 0)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    return 0;
}

int gw_redis_parse_addr(const char *s, char *host, size_t hostlen, unsigned *port)
{
    if (s == NULL || split_addr(s, strlen(s), host, hostlen, port) < 0 || host[0] == '\0')
        return -1;
    return 0;
}

int gw_redis_parse_redirect(const char *err, unsigned *slot, char *host, size_t hostlen,
                            unsigned *port)
{
    int kind;
    const char *p;
    if (err == NULL)
        return 0;
    if (strncmp(err, "MOVED ", 6) == 0) {
        kind = 1;
        p = err + 6;
    } else if (strncmp(err, "ASK ", 4) == 0) {
        kind = 2;
        p = err + 4;
    } else {
        return 0;
    }
    const char *sp = strchr(p, ' ');
    if (sp == NULL || parse_uint(p, (size_t)(sp - p), NSLOTS - 1, slot) < 0)
        return 0;
    const char *a = sp + 1;
    size_t n = strcspn(a, " \r\n");
    if (a[n] != '\0' || split_addr(a, n, host, hostlen, port) < 0)
        return 0;
    return kind;
}

/* ---- connections ---------------------------------------------------- */

static void conn_connect(conn *c);
static void refresh_maybe(gw_redis *r);
static void conn_drop(conn *c);
static void grace_or_end(conn *c, int grace);
static void sync_end(conn *c);
static void on_marker(redisAsyncContext *ac, void *reply, void *priv);
static void calls_flush(conn *c, int ready);
static void conn_lost(conn *c, int before_ready);

/* Recompute, from the worker's own state, "every needed connection is
 * ready" and the weakest persistence of the nodes, and publish both. The
 * worker calls it after each change of a connection's state, load,
 * readiness or persistence, or of the slot map. */
static void publish_up(gw_redis *r)
{
    int up = 0, pers = 1;
    for (size_t i = 0; i < r->nconns; i++)
        if (r->conns[i]->aof < pers)
            pers = r->conns[i]->aof;
    if (!r->cluster) {
        const conn *c = r->nconns > 0 ? r->conns[0] : NULL;
        up = c != NULL && c->state == C_UP && c->loaded && c->ready;
    } else if (r->slots != NULL) {
        up = 1;
        for (unsigned s = 0; s < NSLOTS && up; s++) {
            const conn *c = r->slots[s];
            up = c != NULL && c->state == C_UP && c->loaded && c->ready;
        }
    }
    __atomic_store_n(&r->up, up, __ATOMIC_RELAXED);
    __atomic_store_n(&r->persistence, pers, __ATOMIC_RELAXED);
}

static void timer_in(conn *c, unsigned ms)
{
    struct timeval tv = ms_tv(ms);
    evtimer_del(c->timer);
    gw_evtimer_in(c->timer, &tv); /* from now, as the calls' timeouts */
}

/* Schedule the next connect attempt. While Redis refuses or ignores
 * connections: a probe every probe_ms (uniform in [p/2, p]), cheap and
 * independent of the back-off, so that the gateway is back soon after Redis
 * accepts connections again. A connection that came up and failed before
 * being ready (Redis loading, FUNCTION LOAD refused, a paused server): the
 * exponential back-off with "equal jitter", attempt k waiting a uniform time
 * in [b/2, b], b = min(backoff_max_ms, backoff_min_ms * 2^(k-1)). */
static void conn_retry(conn *c)
{
    gw_redis *r = c->r;
    if (r->closing)
        return;
    unsigned b = r->probe_ms;
    if (c->attempts > 0) {
        b = r->backoff_min_ms;
        for (unsigned i = 1; i < c->attempts && b < r->backoff_max_ms; i++)
            b *= 2;
        if (b > r->backoff_max_ms)
            b = r->backoff_max_ms;
    }
    timer_in(c, b / 2 + rnd(r) % (b - b / 2 + 1));
}

/* Fail the connection from its timer (never inside a hiredis callback):
 * Redis answers but does not serve (loading, an error during a sync). */
static void conn_fail_soon(conn *c)
{
    STAT_ADD(c->r, errors, 1);
    c->attempts++;
    c->ready = 0;
    c->state = C_CONNECTING;
    publish_up(c->r);
    timer_in(c, 0);
}

/* The function's load answered. While syncing, Redis answers at last: the
 * grace starts now (a paused server answers late). */
static void on_loaded(redisAsyncContext *ac, void *reply, void *priv)
{
    conn *c = priv;
    redisReply *rep = reply;
    if (rep == NULL || c->ac != ac || c->r->closing)
        return;
    c->last_us = now_us(); /* a reply: the peer is alive */
    if (rep->type == REDIS_REPLY_ERROR) {
        c->loaded = 0;
        publish_up(c->r);
        if (c->state == C_UP)
            conn_fail_soon(c);
        else
            c->sync_err = 1;
        return;
    }
    c->loaded = 1;
    publish_up(c->r);
    if (c->state == C_UP && !c->ready && c->phase == P_LOADING && c->r->cluster)
        grace_or_end(c, c->was_ready);
}

static int load_function(conn *c)
{
    const char *argv[] = {"FUNCTION", "LOAD", "REPLACE", FUNCTION_CODE};
    const size_t lens[] = {8, 4, 7, sizeof(FUNCTION_CODE) - 1};
    return redisAsyncCommandArgv(c->ac, on_loaded, c, 4, argv, lens);
}

/* INFO persistence: whether this node logs every write (AOF). */
static void on_info(redisAsyncContext *ac, void *reply, void *priv)
{
    conn *c = priv;
    redisReply *rep = reply;
    if (rep == NULL || c->ac != ac || c->r->closing)
        return;
    c->last_us = now_us(); /* a reply: the peer is alive */
    if (rep->type != REDIS_REPLY_STRING && rep->type != REDIS_REPLY_STATUS)
        return;
    const char *p = strstr(rep->str, "aof_enabled:");
    if (p != NULL)
        c->aof = p[12] == '1';
    publish_up(c->r);
}

/* ---- write-back ------------------------------------------------------ */

static void on_restore(redisAsyncContext *ac, void *reply, void *priv)
{
    conn *c = priv;
    redisReply *rep = reply;
    if (rep == NULL || c->ac != ac || c->r->closing)
        return;
    c->last_us = now_us(); /* a reply: the peer is alive */
    if (rep->type == REDIS_REPLY_ERROR) {
        STAT_ADD(c->r, errors, 1);
        /* a stale slot map: the key's new master writes it back when its
         * connection syncs; anything else fails the sync */
        if (gw_redis_parse_redirect(rep->str, &(unsigned){0}, (char[HOST_MAX]){0}, HOST_MAX,
                                    &(unsigned){0}) == 0)
            c->sync_err = 1;
    }
}

/* One key's entries, in chunks: FCALL opale2_restore 1 key window m1 age1 ... */
static void restore_key(void *arg, const char *key, const gw_ownlog_entry *e, size_t n)
{
    conn *c = arg;
    gw_redis *r = c->r;
    size_t kl = strlen(key);
    if (r->cluster && r->slots[gw_redis_slot(key, kl)] != c)
        return; /* its master writes it back (unknown slot: nowhere yet) */
    const char *argv[5 + 2 * RESTORE_CHUNK];
    size_t lens[5 + 2 * RESTORE_CHUNK];
    char ages[RESTORE_CHUNK][24];
    char win[24];
    snprintf(win, sizeof(win), "%llu", (unsigned long long)gw_ownlog_window(r->own));
    for (size_t off = 0; off < n; off += RESTORE_CHUNK) {
        size_t m = n - off < RESTORE_CHUNK ? n - off : RESTORE_CHUNK;
        int argc = 0;
        argv[argc] = "FCALL";
        lens[argc++] = 5;
        argv[argc] = FN_RESTORE;
        lens[argc++] = sizeof(FN_RESTORE) - 1;
        argv[argc] = "1";
        lens[argc++] = 1;
        argv[argc] = key;
        lens[argc++] = kl;
        argv[argc] = win;
        lens[argc++] = strlen(win);
        for (size_t i = 0; i < m; i++) {
            /* one ms younger: the truncations to ms (ours, the server's)
             * never move an entry earlier than Redis first stamped it */
            uint64_t age = e[off + i].age_ms > 0 ? e[off + i].age_ms - 1 : 0;
            snprintf(ages[i], sizeof(ages[i]), "%llu", (unsigned long long)age);
            argv[argc] = e[off + i].member;
            lens[argc++] = strlen(e[off + i].member);
            argv[argc] = ages[i];
            lens[argc++] = strlen(ages[i]);
        }
        if (redisAsyncCommandArgv(c->ac, on_restore, c, argc, argv, lens) != REDIS_OK) {
            c->sync_err = 1;
            return;
        }
        STAT_ADD(r, restored, m);
    }
}

/* Queue a write-back (before any FCALL sent after it on this connection).
 * <full>: every own admission still in the window, for a Redis that may
 * have lost its data (a new connection: a restart, a failover; the marker
 * gone). Otherwise the connection stayed up and Redis kept what it decided
 * (its marker is checked by every FCALL): only the decisions this instance
 * took locally since the last write-back on this connection can be missing
 * (timeouts, a sync's grace). Sending the whole log after each timeout made
 * Redis slower under load, so more calls timed out: with 5,000 partners
 * (bench S8) the connections never became ready again and nearly every
 * decision was local. */
static void restore(conn *c, int full)
{
    gw_redis *r = c->r;
    if (r->own == NULL || c->ac == NULL)
        return;
    uint64_t now = now_us() / 1000u;
    if (full)
        gw_ownlog_each(r->own, now, restore_key, c);
    else
        gw_ownlog_each_local(r->own, now, c->wb_ms, restore_key, c);
    c->wb_ms = now;
}

/* Start a sync: not ready, own admissions written back now (queued before
 * anything sent later on this connection; <full>: see restore()). Next: the
 * function's load answers (P_LOADING, at most stall_us without a reply),
 * then the grace or not, then the marker (P_MARKING), then ready. */
static void sync_begin(conn *c, int full)
{
    c->ready = 0;
    publish_up(c->r);
    c->sync_err = 0;
    c->resync = 0;
    c->phase = P_LOADING;
    STAT_ADD(c->r, syncs, 1);
    restore(c, full);
    if (c->loaded && c->state == C_UP)
        grace_or_end(c, 1); /* data lost under a live connection */
    else
        timer_in(c, (unsigned)(c->r->stall_us / 1000u));
}

/* The grace (3 x probe_ms, so that every other gateway writes its own
 * admissions back before anyone admits again), or none: the first
 * connection of this client to a Redis that kept its data. */
static void grace_or_end(conn *c, int grace)
{
    if (grace) {
        c->phase = P_GRACE;
        timer_in(c, 3 * c->r->probe_ms);
    } else {
        sync_end(c);
    }
}

/* Write back again what was decided locally meanwhile (the grace), set the
 * marker; ready on its reply (P_MARKING, at most stall_us without a reply).
 * An error during the sync: dropped, backing off. */
static void sync_end(conn *c)
{
    if (c->sync_err || !c->loaded) {
        conn_fail_soon(c);
        return;
    }
    restore(c, 0);
    int rc = c->r->cluster ? redisAsyncCommand(c->ac, on_marker, c, "PING")
                           : redisAsyncCommand(c->ac, on_marker, c, "SET %s 1", MARKER);
    if (rc != REDIS_OK) {
        conn_fail_soon(c);
        return;
    }
    c->phase = P_MARKING;
    timer_in(c, (unsigned)(c->r->stall_us / 1000u));
}

/* Standalone, after the load: is the marker there? Absent (a Redis that
 * lost its data, or a new one), or a reconnection: the grace. */
static void on_exists(redisAsyncContext *ac, void *reply, void *priv)
{
    conn *c = priv;
    redisReply *rep = reply;
    if (rep == NULL || c->ac != ac || c->r->closing || c->state != C_UP || c->ready ||
        c->phase != P_LOADING)
        return;
    c->last_us = now_us();
    if (!c->loaded || rep->type == REDIS_REPLY_ERROR) {
        conn_fail_soon(c);
        return;
    }
    int present = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
    grace_or_end(c, c->was_ready || !present);
}

static void on_marker(redisAsyncContext *ac, void *reply, void *priv)
{
    conn *c = priv;
    redisReply *rep = reply;
    if (rep == NULL || c->ac != ac || c->r->closing || c->state != C_UP || c->ready ||
        c->phase != P_MARKING)
        return;
    c->last_us = now_us();
    if (rep->type == REDIS_REPLY_ERROR || c->sync_err || !c->loaded) {
        conn_fail_soon(c);
        return;
    }
    c->ready = 1;
    c->was_ready = 1;
    c->attempts = 0;
    publish_up(c->r);
    timer_in(c, c->r->probe_ms);
    calls_flush(c, 1);
    if (c->r->cluster)
        refresh_maybe(c->r);
}

/* Redis answers again after timeouts (paused, slow): the local decisions
 * taken meanwhile go back before the next FCALL. With the local fallback
 * the connection stopped deciding at the timeout (not ready, see
 * on_call_timer): a sync with the grace, so that the other gateways' local
 * decisions of the pause go back too before anyone admits. Redis kept what
 * it decided: the write-backs are partial (restore()). */
static void resync(conn *c)
{
    c->resync = 0;
    if (c->ready)
        restore(c, 0);
    else if (c->r->sync_after_timeouts && c->phase == P_LOADING && c->loaded)
        sync_begin(c, 0);
}

/* EXISTS MARKER every probe_ms while ready (standalone): 0 means Redis lost
 * its data (restarted without persistence behind a kept connection,
 * FLUSHALL): sync again. */
static void on_audit(redisAsyncContext *ac, void *reply, void *priv)
{
    conn *c = priv;
    redisReply *rep = reply;
    if (rep == NULL || c->ac != ac || c->r->closing)
        return;
    c->audit_pending = 0;
    if (c->resync && c->state == C_UP)
        resync(c);
    if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 0 && c->ready)
        sync_begin(c, 1);
}

static void write_soon(conn *c);

static void audit(conn *c)
{
    if (!c->r->cluster && !c->audit_pending &&
        redisAsyncCommand(c->ac, on_audit, c, "EXISTS %s", MARKER) == REDIS_OK) {
        c->audit_pending = 1;
        write_soon(c); /* no epoll_ctl pair for the probe either */
    }
    timer_in(c, c->r->probe_ms);
}

/* ---- connections (continued) ----------------------------------------- */

static void on_connect(const redisAsyncContext *cac, int status)
{
    conn *c = cac->data;
    if (c == NULL || c->ac != cac)
        return;
    evtimer_del(c->timer);
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback: forget it only */
        conn_lost(c, 0);
        conn_retry(c);
        return;
    }
    c->state = C_UP;
    c->last_us = now_us();
    redisEnableKeepAlive((redisContext *)&cac->c);
    sync_begin(c, 1);
    refresh_maybe(c->r);
}

static void conn_lost(conn *c, int before_ready)
{
    c->ac = NULL;
    c->state = C_DOWN;
    c->loaded = 0;
    c->ready = 0;
    c->audit_pending = 0;
    c->resync = 0;
    if (before_ready)
        c->attempts++;
    publish_up(c->r);
    calls_flush(c, 0);
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
    (void)status;
    conn *c = cac->data;
    if (c == NULL || c->ac != cac)
        return; /* a context we freed on purpose */
    gw_redis *r = c->r;
    conn_lost(c, c->state == C_UP && !c->ready);
    if (r->closing)
        return;
    conn_retry(c);
    if (r->cluster) {
        r->need_refresh = 1;
        refresh_maybe(r);
    }
}

/* Close a connection from a timer (never from a hiredis callback): every
 * pending command gets a NULL reply (redis.down); reconnect after backoff. */
static void conn_drop(conn *c)
{
    redisAsyncContext *ac = c->ac;
    conn_lost(c, c->state == C_UP && !c->ready);
    redisAsyncFree(ac);
    conn_retry(c);
    if (c->r->cluster) {
        c->r->need_refresh = 1;
        refresh_maybe(c->r);
    }
}

static void on_conn_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn *c = arg;
    if (c->state == C_CONNECTING && c->ac != NULL) {
        conn_drop(c); /* connect timeout, or a sync that failed */
    } else if (c->state == C_DOWN) {
        STAT_ADD(c->r, reconnects, 1);
        conn_connect(c);
    } else if (c->state == C_UP && c->ac != NULL && !c->ready && c->phase == P_GRACE) {
        sync_end(c);
    } else if (c->state == C_UP && c->ac != NULL && !c->ready) {
        /* no reply for stall_us: a silent peer (paused, gone without a
         * RST): dropped, probed again. A peer still answering the
         * write-back queued before the load's or the marker's answer is
         * working through a long sync (a big window, a busy machine):
         * dropping it would only start the same write-back again on the
         * next connection, and again. */
        uint64_t quiet = now_us() - c->last_us;
        if (quiet < c->r->stall_us) {
            timer_in(c, (unsigned)((c->r->stall_us - quiet) / 1000u) + 1);
            return;
        }
        c->state = C_CONNECTING;
        conn_drop(c);
    } else if (c->state == C_UP && c->ac != NULL) {
        audit(c);
    }
}

/* ---- the event adapter ------------------------------------------------ */

/* hiredis's libevent adapter (adapters/libevent.h) gives the connection a
 * read event without EV_PERSIST: libevent deletes it before each read
 * callback and hiredis adds it back after the read, so with the worker's
 * epoll changelist every reply read cost an epoll_ctl(MOD) that changed
 * nothing (S2: 0.05-0.07 per request, one per read of replies). Ours is the
 * same adapter with a persistent read event: added at attach, removed only
 * by hiredis's delRead (disconnect) and the cleanup. The write event is as
 * hiredis's (added per batch of commands, see write_soon). */
typedef struct gw_redis_events {
    redisAsyncContext *ac;
    struct event *rev, *wev;
} gw_redis_events;

static void ev_on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    redisAsyncHandleRead(((gw_redis_events *)arg)->ac);
}

static void ev_on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    redisAsyncHandleWrite(((gw_redis_events *)arg)->ac);
}

static void ev_add_read(void *priv)
{
    gw_redis_events *e = priv;
    event_add(e->rev, NULL); /* no change when already added (persistent) */
}

static void ev_del_read(void *priv)
{
    gw_redis_events *e = priv;
    event_del(e->rev);
}

static void ev_add_write(void *priv)
{
    gw_redis_events *e = priv;
    event_add(e->wev, NULL);
}

static void ev_del_write(void *priv)
{
    gw_redis_events *e = priv;
    event_del(e->wev);
}

static void ev_cleanup(void *priv)
{
    gw_redis_events *e = priv;
    event_free(e->rev);
    event_free(e->wev);
    free(e);
}

/* REDIS_OK, or REDIS_ERR (nothing attached). */
static int ev_attach(redisAsyncContext *ac, struct event_base *base)
{
    if (ac->ev.data != NULL)
        return REDIS_ERR;
    gw_redis_events *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return REDIS_ERR;
    e->ac = ac;
    e->rev = event_new(base, ac->c.fd, EV_READ | EV_PERSIST, ev_on_read, e);
    e->wev = event_new(base, ac->c.fd, EV_WRITE, ev_on_write, e);
    if (e->rev == NULL || e->wev == NULL) {
        if (e->rev != NULL)
            event_free(e->rev);
        if (e->wev != NULL)
            event_free(e->wev);
        free(e);
        return REDIS_ERR;
    }
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    ac->ev.data = e;
    /* as hiredis's adapter: the write event completes the connect() */
    event_add(e->rev, NULL);
    event_add(e->wev, NULL);
    return REDIS_OK;
}

static void conn_connect(conn *c)
{
    gw_redis *r = c->r;
    redisAsyncContext *ac = redisAsyncConnect(c->host, (int)c->port);
    if (ac == NULL) {
        conn_retry(c);
        return;
    }
    if (ac->err != 0 || ev_attach(ac, r->base) != REDIS_OK) {
        redisAsyncFree(ac);
        conn_retry(c);
        return;
    }
    ac->data = c;
    gw_rpool_attach(r->rpool, ac->c.reader);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    c->ac = ac;
    c->state = C_CONNECTING;
    c->loaded = 0;
    c->ready = 0;
    publish_up(r);
    /* first on the wire: no FCALL can precede the function's load */
    load_function(c);
    redisAsyncCommand(ac, on_info, c, "INFO persistence");
    if (!r->cluster)
        redisAsyncCommand(ac, on_exists, c, "EXISTS %s", MARKER);
    timer_in(c, r->connect_timeout_ms);
}

/* The connection to host:port, created (and connecting) when new. */
static conn *conn_get(gw_redis *r, const char *host, unsigned port)
{
    for (size_t i = 0; i < r->nconns; i++)
        if (r->conns[i]->port == port && strcmp(r->conns[i]->host, host) == 0)
            return r->conns[i];
    if (strlen(host) >= HOST_MAX || host[0] == '\0')
        return NULL;
    if (r->nconns == r->capconns) {
        size_t cap = r->capconns ? r->capconns * 2 : 4;
        conn **a = realloc(r->conns, cap * sizeof(*a));
        if (a == NULL)
            return NULL;
        r->conns = a;
        r->capconns = cap;
    }
    conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->r = r;
    strcpy(c->host, host);
    c->port = port;
    c->state = C_DOWN;
    c->aof = -1;
    c->timer = evtimer_new(r->base, on_conn_timer, c);
    if (c->timer == NULL) {
        free(c);
        return NULL;
    }
    r->conns[r->nconns++] = c;
    conn_connect(c);
    return c;
}

/* ---- cluster map ---------------------------------------------------- */

static void on_refresh_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_redis *r = arg;
    r->need_refresh = 1;
    refresh_maybe(r);
}

/* Try CLUSTER SLOTS again later (not at once: no loop on a node that keeps
 * failing it). */
static void refresh_later(gw_redis *r)
{
    struct timeval tv = ms_tv(r->backoff_min_ms);
    if (!r->closing)
        evtimer_add(r->refresh_timer, &tv);
}

static void on_slots(redisAsyncContext *ac, void *reply, void *priv)
{
    conn *c = priv;
    gw_redis *r = c->r;
    redisReply *rep = reply;
    if (r->closing)
        return;
    r->refreshing = 0;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        if (rep == NULL && c->ac == ac)
            c->state = C_DOWN; /* dying: do not pick it again */
        publish_up(r);
        if (rep != NULL)
            STAT_ADD(r, errors, 1);
        refresh_later(r);
        return;
    }
    memset(r->slots, 0, sizeof(conn *) * NSLOTS);
    size_t covered = 0;
    for (size_t i = 0; i < rep->elements; i++) {
        redisReply *e = rep->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2)
            continue;
        redisReply *m = e->element[2];
        if (m->element[0]->type != REDIS_REPLY_STRING || m->element[1]->type != REDIS_REPLY_INTEGER)
            continue;
        long long lo = e->element[0]->integer, hi = e->element[1]->integer;
        long long port = m->element[1]->integer;
        if (lo < 0 || hi >= NSLOTS || lo > hi || port < 1 || port > 65535)
            continue;
        /* "" or "?": the endpoint of the node that answered */
        const char *host = m->element[0]->str;
        if (host[0] == '\0' || strcmp(host, "?") == 0)
            host = c->host;
        conn *t = conn_get(r, host, (unsigned)port);
        for (long long s = lo; s <= hi; s++)
            r->slots[s] = t;
        covered += t != NULL ? (size_t)(hi - lo + 1) : 0;
    }
    if (covered < NSLOTS)
        refresh_later(r); /* a cluster still forming, or slots unassigned */
    publish_up(r);
    refresh_maybe(r);
}

static void refresh_maybe(gw_redis *r)
{
    if (!r->cluster || r->refreshing || !r->need_refresh || r->closing)
        return;
    for (size_t i = 0; i < r->nconns; i++) {
        conn *c = r->conns[i];
        if (c->state == C_UP && c->ac != NULL &&
            redisAsyncCommand(c->ac, on_slots, c, "CLUSTER SLOTS") == REDIS_OK) {
            r->refreshing = 1;
            r->need_refresh = 0;
            return;
        }
    }
}

/* ---- calls ---------------------------------------------------------- */

static void call_maybe_free(gw_redis_call *k)
{
    if (!k->done || k->on_wire)
        return;
    gw_redis *r = k->r;
    if (k->prev != NULL)
        k->prev->next = k->next;
    else
        r->calls = k->next;
    if (k->next != NULL)
        k->next->prev = k->prev;
    if (k->pooled && r->nfree_calls < CALLS_KEPT && !r->closing) {
        event_del(k->ev);
        k->next = r->free_calls;
        r->free_calls = k;
        r->nfree_calls++;
        return;
    }
    event_free(k->ev);
    free(k);
}

static void on_call_timer(evutil_socket_t fd, short what, void *arg);

/* A call with room for <need> bytes of key and member, its timer event
 * assigned to it; from the free list when it fits. NULL: out of memory. */
static gw_redis_call *call_new(gw_redis *r, size_t need)
{
    gw_redis_call *k = r->free_calls;
    if (need <= CALL_ROOM && k != NULL) {
        r->free_calls = k->next;
        r->nfree_calls--;
        struct event *ev = k->ev; /* assigned to (base, on_call_timer, k), not pending */
        memset(k, 0, sizeof(*k));
        k->ev = ev;
        k->pooled = 1;
        return k;
    }
    k = gw_zalloc(sizeof(*k) + (need <= CALL_ROOM ? CALL_ROOM : need));
    if (k == NULL)
        return NULL;
    k->ev = evtimer_new(r->base, on_call_timer, k);
    if (k->ev == NULL) {
        free(k);
        return NULL;
    }
    k->pooled = need <= CALL_ROOM;
    return k;
}

/* Report once (from a timer or a hiredis callback, never from
 * gw_redis_quota itself), then free when hiredis no longer holds it. */
static void call_finish(gw_redis_call *k, const gw_redis_reply *rep)
{
    if (!k->done) {
        k->done = 1;
        event_del(k->ev);
        if (!k->r->closing)
            k->cb(k->arg, rep);
    }
    call_maybe_free(k);
}

static void call_fail(gw_redis_call *k, const char *reason)
{
    gw_redis_reply rep = {0, reason, 0, 0, 0};
    call_finish(k, &rep);
}

static void call_fail_async(gw_redis_call *k, const char *reason)
{
    struct timeval tv = {0, 0};
    k->fail = reason;
    evtimer_add(k->ev, &tv);
}

static void on_fcall(redisAsyncContext *ac, void *reply, void *priv);

/* Send the FCALL on <c>; NULL, or the reason it could not be sent. */
/* hiredis's libevent adapter writes only from its EV_WRITE callback: one
 * epoll_ctl to add EV_WRITE, one loop round trip, one epoll_ctl to remove it
 * per command. Activating that callback by hand writes later in this loop
 * iteration instead, every command queued by then in one write() (requests
 * of the same iteration are pipelined), and with the worker's epoll
 * changelist the add and remove cancel out. Only once connected: before,
 * the callback is what completes the connect(). */
static void write_soon(conn *c)
{
    gw_redis_events *e = c->ac->ev.data;
    if ((c->ac->c.flags & REDIS_CONNECTED) && e != NULL && e->wev != NULL &&
        event_pending(e->wev, EV_WRITE, NULL))
        event_active(e->wev, EV_WRITE, 1);
}

/* "<c><v>\r\n" at <out> + *<len>, with room for <more> bytes after it
 * within <cap>. 0, or -1 when it does not fit. */
static int resp_head(char *out, size_t cap, size_t *len, char c, unsigned long long v, size_t more)
{
    char num[24];
    size_t k = gw_fmt_ull(num, v);
    if (*len + k + 3 + more > cap)
        return -1;
    out[(*len)++] = c;
    memcpy(out + *len, num, k);
    *len += k;
    out[(*len)++] = '\r';
    out[(*len)++] = '\n';
    return 0;
}

/* The RESP array of the <n> bulk strings <av>/<al>, the bytes
 * redisFormatCommandArgv() writes, into <out> (<cap> bytes): hiredis's own
 * formatting (one sdscatfmt per argument) cost more than the rest of the
 * send (callgrind, bench S2). The length, or 0 when it does not fit. */
static size_t resp_format(char *out, size_t cap, int n, const char *const *av, const size_t *al)
{
    size_t len = 0;
    if (resp_head(out, cap, &len, '*', (unsigned long long)n, 0) < 0)
        return 0;
    for (int i = 0; i < n; i++) {
        if (resp_head(out, cap, &len, '$', al[i], al[i] + 2) < 0)
            return 0;
        memcpy(out + len, av[i], al[i]);
        len += al[i];
        out[len++] = '\r';
        out[len++] = '\n';
    }
    return len;
}

/* ---- batches ------------------------------------------------------- */

/* A loop pass's calls for one key (one habilitation), limit and window on
 * one connection leave as one command: the first as "FCALL opale2_quota"
 * when alone, else all of them as "FCALL opale2_quota_n", which decides them
 * in order at one server time, as that many opale2_quota calls in the same
 * millisecond would (docs/quotas.md, "Coalescing"). Redis then runs the
 * function's window work (EXISTS, TIME, ZREMRANGEBYSCORE, ZCARD, ZRANGE,
 * PEXPIRE) once per batch instead of once per call. Each call keeps its own
 * timer, cancel and callback; a batch is written by on_flush, activated by
 * the pass's first call and run after the callbacks already queued in that
 * pass, so that the requests read together are decided together. In a
 * standalone Redis the pass's batches of different keys (or limits) go
 * together too, chained into one "FCALL opale2_quota_m" of at most CHAIN_MAX
 * calls: the FCALL, the marker's EXISTS and TIME are then paid once per
 * pass, which matters when every partner has its own key (S8). */
static void on_fcall_chain(redisAsyncContext *ac, void *reply, void *priv);
static int call_retry(gw_redis_call *k, conn *c, const char *err);

static batch *batch_for(conn *c, const gw_redis_call *k, int asking)
{
    for (batch *b = c->open; b != NULL; b = b->next) {
        const gw_redis_call *o = b->k[0];
        if (b->n < BATCH_MAX && b->asking == asking && o->keylen == k->keylen &&
            o->limit == k->limit && o->window_ms == k->window_ms &&
            memcmp(o->key, k->key, k->keylen) == 0)
            return b;
    }
    gw_redis *r = c->r;
    batch *b = r->free_batches;
    if (b != NULL) {
        r->free_batches = b->next;
        r->nfree_batches--;
    } else if ((b = malloc(sizeof(*b))) == NULL) {
        return NULL;
    }
    b->next = NULL;
    b->c = c;
    b->asking = asking;
    b->n = 0;
    if (c->open_tail != NULL)
        c->open_tail->next = b;
    else
        c->open = b;
    c->open_tail = b;
    return b;
}

static void batch_free(batch *b)
{
    gw_redis *r = b->c->r;
    if (r->nfree_batches < BATCHES_KEPT && !r->closing) {
        b->next = r->free_batches;
        r->free_batches = b;
        r->nfree_batches++;
        return;
    }
    free(b);
}

/* Hand the batch to hiredis: REDIS_OK or REDIS_ERR. */
static int batch_write(batch *b)
{
    conn *c = b->c;
    gw_redis *r = c->r;
    gw_redis_call *k = b->k[0];
    char lim[24], win[24];
    size_t liml = gw_fmt_ull(lim, k->limit);
    size_t winl = gw_fmt_ull(win, (unsigned long long)k->window_ms);
    const char *av[7 + BATCH_MAX];
    size_t al[7 + BATCH_MAX];
    int n = 0;
#define ARG(s, l) (av[n] = (s), al[n++] = (l))
    ARG("FCALL", 5);
    if (b->n == 1)
        ARG(FN_QUOTA, sizeof(FN_QUOTA) - 1);
    else
        ARG(FN_QUOTA_N, sizeof(FN_QUOTA_N) - 1);
    ARG(r->cluster ? "1" : "2", 1);
    ARG(k->key, k->keylen);
    if (!r->cluster)
        ARG(MARKER, sizeof(MARKER) - 1); /* KEYS[2], checked by the function */
    ARG(lim, liml);
    ARG(win, winl);
    for (unsigned i = 0; i < b->n; i++)
        ARG(b->k[i]->member, b->k[i]->memberlen);
#undef ARG
    if (b->asking && redisAsyncCommand(c->ac, NULL, NULL, "ASKING") != REDIS_OK)
        return REDIS_ERR;
    redisCallbackFn *fn = b->n == 1 ? on_fcall : on_fcall_chain;
    void *priv = b->n == 1 ? (void *)k : (void *)b;
    char cmd[4096];
    size_t cl = resp_format(cmd, sizeof(cmd), n, av, al);
    return cl > 0 ? redisAsyncFormattedCommand(c->ac, fn, priv, cmd, cl)
                  : redisAsyncCommandArgv(c->ac, fn, priv, n, av, al);
}

/* <k> no longer waits on <c> for a reply. */
static void call_unhook(gw_redis_call *k, conn *c)
{
    k->on_wire = 0;
    k->c = NULL;
    c->inflight--;
}

/* Drop the calls of <b> cancelled since they were queued: never sent, so
 * they admit nothing. The number of calls left. */
static unsigned batch_prune(batch *b)
{
    unsigned n = 0;
    for (unsigned i = 0; i < b->n; i++) {
        gw_redis_call *k = b->k[i];
        if (k->done) {
            call_unhook(k, b->c);
            call_maybe_free(k);
        } else {
            b->k[n++] = k;
        }
    }
    return b->n = n;
}

/* Hand the chain <head> of <nb> batches (next) to hiredis as one command:
 * a batch alone as batch_write() sends it, several as "FCALL opale2_quota_m"
 * (standalone Redis: the marker is a key). REDIS_OK or REDIS_ERR. */
static int chain_write(conn *c, batch *head, unsigned nb)
{
    if (nb == 1)
        return batch_write(head);
    const char *av[4 + 5 * CHAIN_MAX];
    size_t al[4 + 5 * CHAIN_MAX];
    char num[1 + 3 * CHAIN_MAX][24];
    int n = 0, u = 0;
#define ARG(s, l) (av[n] = (s), al[n++] = (l))
#define NUM(v) (al[n] = gw_fmt_ull(num[u], (unsigned long long)(v)), av[n++] = num[u++])
    ARG("FCALL", 5);
    ARG(FN_QUOTA_M, sizeof(FN_QUOTA_M) - 1);
    NUM(nb + 1);
    for (batch *b = head; b != NULL; b = b->next)
        ARG(b->k[0]->key, b->k[0]->keylen);
    ARG(MARKER, sizeof(MARKER) - 1);
    for (batch *b = head; b != NULL; b = b->next) {
        NUM(b->k[0]->limit);
        NUM(b->k[0]->window_ms);
        NUM(b->n);
        for (unsigned i = 0; i < b->n; i++)
            ARG(b->k[i]->member, b->k[i]->memberlen);
    }
#undef NUM
#undef ARG
    char cmd[16384];
    size_t cl = resp_format(cmd, sizeof(cmd), n, av, al);
    return cl > 0 ? redisAsyncFormattedCommand(c->ac, on_fcall_chain, head, cmd, cl)
                  : redisAsyncCommandArgv(c->ac, on_fcall_chain, head, n, av, al);
}

/* Write the chain <head> of <nb> batches holding <total> calls, none
 * cancelled, as one command; or fail its calls (from their own 0-timeout
 * event) when the connection went down or began a sync during the pass. */
static void chain_send(conn *c, batch *head, unsigned nb, unsigned total)
{
    gw_redis *r = c->r;
    const char *why = NULL;
    if (c->ac == NULL || c->state != C_UP)
        why = "redis.down";
    else if (!c->ready)
        why = "redis.syncing";
    else if (chain_write(c, head, nb) != REDIS_OK)
        why = "redis.down";
    if (why != NULL) {
        while (head != NULL) {
            batch *next = head->next;
            for (unsigned i = 0; i < head->n; i++) {
                call_unhook(head->k[i], c);
                call_fail_async(head->k[i], why);
            }
            batch_free(head);
            head = next;
        }
        return;
    }
    write_soon(c);
    uint64_t t = now_us();
    for (batch *b = head; b != NULL; b = b->next)
        for (unsigned i = 0; i < b->n; i++)
            b->k[i]->sent_us = t;
    STAT_ADD(r, commands, total);
    if (total == 1)
        batch_free(head); /* hiredis holds the call itself (on_fcall) */
}

/* The pass's batches of <c>, in their order: the calls cancelled since
 * dropped; in a standalone Redis chained into commands of at most CHAIN_MAX
 * calls (a batch after an ASK redirect goes alone), in a cluster each batch
 * its own command (its key's slot may live on another node's connection). */
static void conn_flush(conn *c)
{
    gw_redis *r = c->r;
    batch *b = c->open, *head = NULL, *tail = NULL;
    unsigned nb = 0, total = 0;
    c->open = c->open_tail = NULL;
    while (b != NULL) {
        batch *next = b->next;
        b->next = NULL;
        if (batch_prune(b) == 0) {
            batch_free(b);
        } else {
            int alone = r->cluster || b->asking;
            if (head != NULL && (alone || head->asking || total + b->n > CHAIN_MAX)) {
                chain_send(c, head, nb, total);
                head = NULL;
                nb = total = 0;
            }
            if (head == NULL)
                head = b;
            else
                tail->next = b;
            tail = b;
            nb++;
            total += b->n;
        }
        b = next;
    }
    if (head != NULL)
        chain_send(c, head, nb, total);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_redis *r = arg;
    r->flush_pending = 0;
    for (size_t i = 0; i < r->nconns; i++)
        conn_flush(r->conns[i]);
}

static const char *call_send(gw_redis_call *k, conn *c, int asking)
{
    gw_redis *r = k->r;
    if (c == NULL || c->state == C_DOWN || c->ac == NULL)
        return "redis.down";
    if (!c->ready && (c->state == C_CONNECTING || !c->was_ready)) {
        /* the first connection (its grace included): sent once ready
         * (calls_flush), or failed by the call's own timeout */
        k->wait_c = c;
        return NULL;
    }
    if (c->state != C_UP || !c->ready)
        return "redis.syncing"; /* writing back: no admission before the window is whole */
    if (c->inflight >= r->max_inflight)
        return "redis.busy";
    batch *b = batch_for(c, k, asking);
    if (b == NULL)
        return "redis.down"; /* out of memory */
    b->k[b->n++] = k;
    k->c = c;
    k->on_wire = 1; /* hiredis will hold it: kept until the batch is written */
    if (c->inflight++ == 0)
        c->last_us = now_us(); /* waiting for replies from now on */
    if (!r->flush_pending) {
        r->flush_pending = 1;
        event_active(r->flush_ev, EV_TIMEOUT, 1);
    }
    return NULL;
}

/* The calls queued on <c> (never ready before): sent now that it is ready,
 * or failed (redis.down) when it is lost. Failures are reported from their
 * own 0-timeout event: no callback runs inside this loop. */
static void calls_flush(conn *c, int ready)
{
    gw_redis_call *k = c->r->calls;
    while (k != NULL && k->next != NULL)
        k = k->next;
    for (; k != NULL; k = k->prev) { /* oldest first: the order of the calls */
        if (k->wait_c != c || k->done)
            continue;
        k->wait_c = NULL;
        const char *why = ready ? call_send(k, c, 0) : "redis.down";
        if (why != NULL)
            call_fail_async(k, why);
    }
}

static void on_call_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_redis_call *k = arg;
    if (k->fail != NULL) {
        call_fail(k, k->fail);
        return;
    }
    gw_redis *r = k->r;
    conn *c = k->on_wire ? k->c : NULL;
    STAT_ADD(r, timeouts, 1);
    if (c != NULL) {
        c->resync = 1; /* a local decision may follow: write back at the next reply */
        if (r->sync_after_timeouts && c->ready && c->state == C_UP) {
            /* and decide nothing more here until Redis answers and the
             * write-back is done: an FCALL queued behind the pause would
             * run before the other gateways' write-back */
            c->ready = 0;
            c->phase = P_LOADING;
            publish_up(r);
            timer_in(c, (unsigned)(r->stall_us / 1000u));
        }
    }
    call_fail(k, "redis.timeout"); /* stays alive while on the wire */
    /* <k> may be freed below: not touched again */
    if (c != NULL && c->state == C_UP && c->ac != NULL && now_us() - c->last_us > r->stall_us)
        conn_drop(c);
}

/* A redirect or a lost function: retry once per kind; 1 when handled. */
static int call_retry(gw_redis_call *k, conn *c, const char *err)
{
    gw_redis *r = k->r;
    unsigned slot, port;
    char host[HOST_MAX];
    int kind = gw_redis_parse_redirect(err, &slot, host, sizeof(host), &port);
    const char *why;
    if (kind == 1 && !(k->tried & TRIED_MOVED)) {
        k->tried |= TRIED_MOVED;
        STAT_ADD(r, moved, 1);
        conn *t = conn_get(r, host[0] ? host : c->host, port);
        if (r->cluster && t != NULL) {
            r->slots[slot] = t;
            publish_up(r);
            r->need_refresh = 1;
            refresh_maybe(r);
        }
        why = call_send(k, t, 0);
    } else if (kind == 2 && !(k->tried & TRIED_ASK)) {
        k->tried |= TRIED_ASK;
        STAT_ADD(r, ask, 1);
        why = call_send(k, conn_get(r, host[0] ? host : c->host, port), 1);
    } else if (kind == 0 && !(k->tried & TRIED_RELOAD) &&
               (strncmp(err, "NOSCRIPT", 8) == 0 || strstr(err, "Function not found") != NULL)) {
        /* Redis lost the function (restart without persistence, FUNCTION
         * FLUSH): load it again, then the FCALL behind it on the same
         * connection */
        k->tried |= TRIED_RELOAD;
        if (c->loaded) {
            /* once for all the calls of a batch: the first to see the error
             * loads it, the others follow the load on the connection */
            c->loaded = 0;
            publish_up(r);
            why = (c->ac != NULL && load_function(c) == REDIS_OK) ? NULL : "redis.down";
        } else {
            why = c->ac != NULL ? NULL : "redis.down";
        }
        if (why == NULL)
            why = call_send(k, c, 0);
    } else {
        return 0;
    }
    if (why != NULL)
        call_fail(k, why);
    return 1;
}

/* Report the decision {admitted, remaining, reset} <v> (checked) that
 * Redis answered for <k> at <t_us>; an admission joins the instance's own
 * log (written back after Redis loses its data). */
static void call_decided(gw_redis_call *k, redisReply **v, uint64_t t_us)
{
    gw_redis_reply out = {1, NULL, v[0]->integer != 0, (unsigned)v[1]->integer,
                          (uint64_t)v[2]->integer};
    if (out.admitted && k->r->own != NULL)
        gw_ownlog_record(k->r->own, k->key, k->limit, t_us / 1000u, k->member);
    call_finish(k, &out);
}

static void on_fcall(redisAsyncContext *ac, void *reply, void *priv)
{
    gw_redis_call *k = priv;
    gw_redis *r = k->r;
    conn *c = k->c;
    redisReply *rep = reply;
    call_unhook(k, c);
    if (rep == NULL) {
        /* connection lost (or closed by us): hiredis flushes every callback */
        if (c->ac == ac) {
            c->state = C_DOWN;
            publish_up(r);
        }
        call_fail(k, "redis.down");
        return;
    }
    uint64_t t = now_us();
    c->last_us = t;
    STAT_ADD(r, replies, 1);
    STAT_ADD(r, latency_us_sum, t - k->sent_us);
    if (c->resync && c->state == C_UP && c->ac == ac)
        resync(c);
    if (k->done) {
        call_maybe_free(k); /* a late reply after a timeout or a cancel */
        return;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        if (call_retry(k, c, rep->str))
            return;
        STAT_ADD(r, errors, 1);
        call_fail(k, "redis.error");
        return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->type != REDIS_REPLY_INTEGER ||
        rep->element[2]->type != REDIS_REPLY_INTEGER || rep->element[1]->integer < 0 ||
        rep->element[2]->integer < 0) {
        STAT_ADD(r, errors, 1);
        call_fail(k, "redis.error");
        return;
    }
    if (rep->element[0]->integer < 0) {
        /* the marker is gone: Redis lost its data (restart without
         * persistence, FLUSHALL): nothing admitted; sync first */
        if (c->ready && c->ac == ac)
            sync_begin(c, 1);
        call_fail(k, "redis.syncing");
        return;
    }
    call_decided(k, rep->element, t);
}

/* The reply to a chain of batches (FCALL opale2_quota_n for one batch,
 * opale2_quota_m for several): {admitted, remaining, reset} per call, in the
 * chain's order, or {-1, 0, 0} when the marker is gone. Each call is
 * reported as on_fcall would report it alone. */
static void on_fcall_chain(redisAsyncContext *ac, void *reply, void *priv)
{
    batch *head = priv;
    conn *c = head->c;
    gw_redis *r = c->r;
    redisReply *rep = reply;
    size_t total = 0;
    for (batch *b = head; b != NULL; b = b->next) {
        for (unsigned i = 0; i < b->n; i++)
            call_unhook(b->k[i], c);
        total += b->n;
    }
    if (rep == NULL) {
        if (c->ac == ac) {
            c->state = C_DOWN;
            publish_up(r);
        }
        while (head != NULL) {
            batch *next = head->next;
            for (unsigned i = 0; i < head->n; i++)
                call_fail(head->k[i], "redis.down");
            batch_free(head);
            head = next;
        }
        return;
    }
    uint64_t t = now_us();
    c->last_us = t;
    STAT_ADD(r, replies, total);
    STAT_ADD(r, latency_us_sum, total * (t - head->k[0]->sent_us));
    if (c->resync && c->state == C_UP && c->ac == ac)
        resync(c);
    int err = rep->type == REDIS_REPLY_ERROR;
    int marker = !err && rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
                 rep->element[0]->type == REDIS_REPLY_INTEGER && rep->element[0]->integer < 0;
    int bad = !err && !marker && (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 * total);
    for (size_t i = 0; !err && !marker && !bad && i < rep->elements; i++)
        bad = rep->element[i]->type != REDIS_REPLY_INTEGER || rep->element[i]->integer < 0 ||
              (i % 3 == 0 && rep->element[i]->integer > 1);
    if (marker && c->ready && c->ac == ac)
        sync_begin(c, 1); /* Redis lost its data: nothing admitted; sync first */
    size_t e = 0;
    while (head != NULL) {
        batch *b = head;
        head = b->next;
        for (unsigned i = 0; i < b->n; i++, e += 3) {
            gw_redis_call *k = b->k[i];
            if (k->done) {
                call_maybe_free(k); /* a late reply after a timeout or a cancel */
            } else if (err) {
                if (!call_retry(k, c, rep->str)) {
                    STAT_ADD(r, errors, 1);
                    call_fail(k, "redis.error");
                }
            } else if (marker) {
                call_fail(k, "redis.syncing");
            } else if (bad) {
                STAT_ADD(r, errors, 1);
                call_fail(k, "redis.error");
            } else {
                call_decided(k, rep->element + e, t);
            }
        }
        batch_free(b);
    }
}

static conn *route(gw_redis *r, const char *key, size_t len)
{
    if (!r->cluster)
        return r->conns[0];
    conn *c = r->slots[gw_redis_slot(key, len)];
    if (c != NULL) {
        /* its master is down: the map may be stale (a failover under way),
         * ask again every backoff_min_ms while calls keep landing there */
        if (c->state == C_DOWN && !evtimer_pending(r->refresh_timer, NULL))
            refresh_later(r);
        return c;
    }
    /* no map yet: any node answers, or redirects with MOVED */
    for (size_t i = 0; i < r->nconns; i++)
        if (r->conns[i]->state == C_UP && r->conns[i]->ready)
            return r->conns[i];
    for (size_t i = 0; i < r->nconns; i++)
        if (r->conns[i]->state == C_UP)
            return r->conns[i];
    for (size_t i = 0; i < r->nconns; i++)
        if (r->conns[i]->state == C_CONNECTING)
            return r->conns[i];
    return NULL;
}

gw_redis_call *gw_redis_quota(gw_redis *r, const char *key, unsigned limit, uint64_t window_ms,
                              const char *member, gw_redis_cb cb, void *arg)
{
    size_t kl = strlen(key), ml = strlen(member);
    gw_redis_call *k = call_new(r, kl + ml + 2);
    if (k == NULL)
        return NULL;
    k->r = r;
    k->cb = cb;
    k->arg = arg;
    k->limit = limit;
    k->window_ms = window_ms;
    k->keylen = kl;
    memcpy(k->key, key, kl + 1);
    k->member = k->key + kl + 1;
    k->memberlen = ml;
    memcpy(k->member, member, ml + 1);
    k->next = r->calls;
    if (r->calls != NULL)
        r->calls->prev = k;
    r->calls = k;
    if (window_ms == 0 || kl == 0) {
        STAT_ADD(r, errors, 1);
        call_fail_async(k, "redis.error");
        return k;
    }
    const char *why = call_send(k, route(r, key, kl), 0);
    if (why != NULL) {
        call_fail_async(k, why);
        return k;
    }
    /* counted from now, not from the start of the loop's iteration (the
     * cached time, older by whatever ran before this call) */
    struct timeval tv = ms_tv(r->timeout_ms);
    gw_evtimer_in(k->ev, &tv);
    return k;
}

void gw_redis_cancel(gw_redis_call *k)
{
    if (k == NULL || k->done)
        return;
    k->done = 1;
    event_del(k->ev);
    call_maybe_free(k);
}

/* ---- client --------------------------------------------------------- */

gw_redis *gw_redis_new(struct event_base *base, const gw_redis_conf *cf)
{
    if (base == NULL || cf == NULL || cf->nodes == NULL || cf->nnodes == 0 ||
        (!cf->cluster && cf->nnodes != 1))
        return NULL;
    char host[HOST_MAX];
    unsigned port;
    for (size_t i = 0; i < cf->nnodes; i++)
        if (gw_redis_parse_addr(cf->nodes[i], host, sizeof(host), &port) < 0)
            return NULL;
    gw_redis *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->base = base;
    r->cluster = cf->cluster != 0;
    r->timeout_ms = cf->timeout_ms ? cf->timeout_ms : 50;
    r->connect_timeout_ms = cf->connect_timeout_ms ? cf->connect_timeout_ms : 500;
    r->max_inflight = cf->max_inflight ? cf->max_inflight : 1024;
    r->backoff_min_ms = cf->backoff_min_ms ? cf->backoff_min_ms : 100;
    r->backoff_max_ms = cf->backoff_max_ms ? cf->backoff_max_ms : 5000;
    r->probe_ms = cf->probe_ms ? cf->probe_ms : 100;
    r->own = cf->own;
    r->sync_after_timeouts = cf->sync_after_timeouts;
    if (r->backoff_max_ms < r->backoff_min_ms)
        r->backoff_max_ms = r->backoff_min_ms;
    r->stall_us =
        1000u * (uint64_t)(10 * r->timeout_ms > STALL_MIN_MS ? 10 * r->timeout_ms : STALL_MIN_MS);
    r->rng = (now_us() ^ (uint64_t)(uintptr_t)r) | 1;
    r->rpool = gw_rpool_new();
    r->flush_ev = event_new(base, -1, 0, on_flush, r);
    if (r->rpool == NULL || r->flush_ev == NULL) {
        if (r->rpool != NULL)
            gw_rpool_release(r->rpool);
        if (r->flush_ev != NULL)
            event_free(r->flush_ev);
        free(r);
        return NULL;
    }
    if (r->cluster) {
        r->slots = calloc(NSLOTS, sizeof(conn *));
        r->refresh_timer = evtimer_new(base, on_refresh_timer, r);
        if (r->slots == NULL || r->refresh_timer == NULL) {
            free(r->slots);
            if (r->refresh_timer != NULL)
                event_free(r->refresh_timer);
            gw_rpool_release(r->rpool);
            event_free(r->flush_ev);
            free(r);
            return NULL;
        }
        r->need_refresh = 1;
    }
    for (size_t i = 0; i < cf->nnodes; i++) {
        gw_redis_parse_addr(cf->nodes[i], host, sizeof(host), &port);
        if (conn_get(r, host, port) == NULL) {
            gw_redis_free(r);
            return NULL;
        }
    }
    return r;
}

void gw_redis_free(gw_redis *r)
{
    if (r == NULL)
        return;
    r->closing = 1;
    for (size_t i = 0; i < r->nconns; i++) {
        conn *c = r->conns[i];
        if (c->ac != NULL) {
            /* every pending callback runs now with a NULL reply */
            redisAsyncContext *ac = c->ac;
            c->ac = NULL;
            redisAsyncFree(ac);
        }
    }
    /* batches not written yet: their calls go with the others below */
    for (size_t i = 0; i < r->nconns; i++) {
        batch *b = r->conns[i]->open;
        r->conns[i]->open = r->conns[i]->open_tail = NULL;
        while (b != NULL) {
            batch *next = b->next;
            free(b);
            b = next;
        }
    }
    while (r->free_batches != NULL) {
        batch *b = r->free_batches;
        r->free_batches = b->next;
        free(b);
    }
    event_free(r->flush_ev);
    /* calls still waiting for their failure report (not cancelled: the
     * caller broke the contract) are dropped without a callback */
    while (r->calls != NULL) {
        r->calls->done = 1;
        r->calls->on_wire = 0;
        call_maybe_free(r->calls);
    }
    while (r->free_calls != NULL) {
        gw_redis_call *k = r->free_calls;
        r->free_calls = k->next;
        event_free(k->ev);
        free(k);
    }
    for (size_t i = 0; i < r->nconns; i++) {
        event_free(r->conns[i]->timer);
        free(r->conns[i]);
    }
    free(r->conns);
    free(r->slots);
    if (r->refresh_timer != NULL)
        event_free(r->refresh_timer);
    gw_rpool_release(r->rpool);
    free(r);
}

void gw_redis_get_stats(const gw_redis *r, gw_redis_stats *st)
{
    /* any thread: only the figures the worker publishes atomically */
    st->commands = __atomic_load_n(&r->st.commands, __ATOMIC_RELAXED);
    st->replies = __atomic_load_n(&r->st.replies, __ATOMIC_RELAXED);
    st->timeouts = __atomic_load_n(&r->st.timeouts, __ATOMIC_RELAXED);
    st->errors = __atomic_load_n(&r->st.errors, __ATOMIC_RELAXED);
    st->reconnects = __atomic_load_n(&r->st.reconnects, __ATOMIC_RELAXED);
    st->moved = __atomic_load_n(&r->st.moved, __ATOMIC_RELAXED);
    st->ask = __atomic_load_n(&r->st.ask, __ATOMIC_RELAXED);
    st->latency_us_sum = __atomic_load_n(&r->st.latency_us_sum, __ATOMIC_RELAXED);
    st->syncs = __atomic_load_n(&r->st.syncs, __ATOMIC_RELAXED);
    st->restored = __atomic_load_n(&r->st.restored, __ATOMIC_RELAXED);
    st->up = __atomic_load_n(&r->up, __ATOMIC_RELAXED);
    st->persistence = __atomic_load_n(&r->persistence, __ATOMIC_RELAXED);
}
