/* Arming a libevent timer counted from now.
 *
 * evtimer_add() counts from the event base's cached time, which the loop
 * reads once at the start of each iteration: when the callbacks before this
 * one were slow (TLS handshakes, signatures), that time is milliseconds old
 * and a timeout counted from it fires that much early, by the clock that
 * dates the call (CLOCK_MONOTONIC, as the journal's `ms`). Refreshing it
 * first costs one clock read (a vDSO call). Every timer whose expiry is a
 * promise to the caller (the upstream's connect, response and queue
 * timeouts, Redis's per-call and connection timers) is armed through here
 * (docs/architecture.md, "Timers on the precise clock"). */
#ifndef GW_LIB_EVTIMER_H
#define GW_LIB_EVTIMER_H

#include <event2/event.h>

static inline int gw_evtimer_in(struct event *ev, const struct timeval *tv)
{
    event_base_update_cache_time(event_get_base(ev));
    return evtimer_add(ev, tv);
}

#endif
