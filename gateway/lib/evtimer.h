/* The workers' event base, and arming a libevent timer counted from now.
 *
 * The base keeps libevent's default clock, CLOCK_MONOTONIC_COARSE: read
 * without a system call and without the TSC, and no timerfd to re-arm
 * before every epoll_wait() (EVENT_BASE_FLAG_PRECISE_TIMER costs one
 * timerfd_settime() per loop iteration: 3.3 per request and 3% of the
 * gateway's CPU when partners call once a second, bench S8).
 *
 * That clock lags CLOCK_MONOTONIC, which dates the journal's "ms", by up
 * to a tick (4 ms at 250 Hz), and the loop reads it once per iteration:
 * evtimer_add() alone counts from a time that can be milliseconds old, so
 * a timeout could fire that much early by the journal's clock (a 1,000 ms
 * queue_timeout_ms fired after 975 ms on a loaded ASan run). Every timer
 * whose expiry is a promise to the caller (the upstream's connect,
 * response and queue timeouts, Redis's per-call and connection timers) is
 * armed through gw_evtimer_in(), which refreshes the loop's cached time and
 * adds the coarse clock's lag behind CLOCK_MONOTONIC at that moment: the
 * timer fires when the coarse clock reaches (precise now + tv), so never
 * before tv has passed by CLOCK_MONOTONIC, and at most about a tick late
 * (docs/architecture.md, "Timers"). */
#ifndef GW_LIB_EVTIMER_H
#define GW_LIB_EVTIMER_H

#include <time.h>

#include <event2/event.h>

/* epoll changelist: the event changes made during one iteration go in one
 * epoll_ctl() at the next wait, none when they cancel out (a response
 * written at once adds and removes EV_WRITE in the same callback). Safe
 * here: the gateway never dup()s a socket (the changelist's one caveat,
 * event.h). NOLOCK: a base belongs to one thread. NULL when out of memory. */
static inline struct event_base *gw_evbase_new(void)
{
    struct event_config *ec = event_config_new();
    if (ec == NULL)
        return NULL;
    event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    struct event_base *b = event_base_new_with_config(ec);
    event_config_free(ec);
    return b;
}

/* evtimer_add() of <tv> from now by CLOCK_MONOTONIC. The coarse clock is
 * read before the base's cache is refreshed (the cache is then at least
 * as late), CLOCK_MONOTONIC after: the lag added is never too small. On a
 * base with the precise timer it only makes the timer up to a tick late. */
static inline int gw_evtimer_in(struct event *ev, const struct timeval *tv)
{
    struct timespec c, p;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &c);
    event_base_update_cache_time(event_get_base(ev));
    clock_gettime(CLOCK_MONOTONIC, &p);
    long long us = tv->tv_usec + (p.tv_nsec - c.tv_nsec + 999) / 1000 +
                   (long long)(p.tv_sec - c.tv_sec) * 1000000;
    if (us < tv->tv_usec) /* cannot happen: CLOCK_MONOTONIC is never behind */
        us = tv->tv_usec;
    struct timeval t = {tv->tv_sec + (time_t)(us / 1000000), (suseconds_t)(us % 1000000)};
    return evtimer_add(ev, &t);
}

#endif
