/* Write a bufferevent's output in the current loop iteration.
 *
 * libevent 2.1 writes a bufferevent's output only from its EV_WRITE callback:
 * bufferevent_write() adds EV_WRITE (one epoll_ctl), the next epoll_wait()
 * reports the socket writable, the callback writes and removes EV_WRITE
 * (another epoll_ctl). For a socket that is writable almost always, that is
 * two system calls and one extra loop round trip per response. Activating
 * the write event by hand runs the same callback (the same code path, with
 * its own EAGAIN handling) later in this iteration; with the epoll
 * changelist (server.c), the EV_WRITE added and removed within the
 * iteration then costs no epoll_ctl at all.
 *
 * Only for an established connection (bufferevent_socket's callback also
 * completes a connect(), which must wait for the real writability). */
#ifndef GW_CORE_BEV_H
#define GW_CORE_BEV_H

#include <event2/bufferevent.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>

static inline void gw_bev_write_now(struct bufferevent *bev)
{
    if (event_pending(&bev->ev_write, EV_WRITE, NULL))
        event_active(&bev->ev_write, EV_WRITE, 1);
}

#endif
