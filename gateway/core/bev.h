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

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>

static inline void gw_bev_write_now(struct bufferevent *bev)
{
    if (event_pending(&bev->ev_write, EV_WRITE, NULL))
        event_active(&bev->ev_write, EV_WRITE, 1);
}

/* Free the storage an empty evbuffer still holds. bufferevent_openssl
 * reserves space in the input buffer for every read attempt, and the last
 * attempt of a request (the one that returns "would block") leaves an empty
 * chain of about 2 KiB behind: an idle keep-alive connection would hold it
 * until its next request (the bench's S5). evbuffer_drain() frees every
 * chain when it empties the buffer, but returns early on an empty one, hence
 * the one byte prepended and drained. Does nothing on a non-empty buffer or
 * if the buffer refuses the prepend (frozen start). */
static inline void gw_evbuffer_release(struct evbuffer *b)
{
    if (evbuffer_get_length(b) == 0 && evbuffer_prepend(b, "", 1) == 0)
        evbuffer_drain(b, 1);
}

#endif
