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
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <openssl/ssl.h>

static inline void gw_bev_write_now(struct bufferevent *bev)
{
    if (event_pending(&bev->ev_write, EV_WRITE, NULL))
        event_active(&bev->ev_write, EV_WRITE, 1);
}

/* Read a TLS bufferevent's pending records in the current loop iteration.
 *
 * The listeners' SSL_CTX reads ahead (core/tls.c): one read() takes a record
 * whole, and whatever followed it on the socket, into OpenSSL's read buffer.
 * bufferevent_openssl (2.1) reads from the SSL only when the socket is
 * readable (its EV_READ callback, consider_reading()), and within that
 * callback only while SSL_pending() counts decrypted bytes: a record read
 * ahead and not yet decrypted is not counted. A request that came with the
 * client's Finished, a second pipelined record, or records left while reading
 * was disabled would then wait for a byte that may never come. Wherever the
 * connection may have left such bytes (the handshake's end, every read
 * callback, reading enabled again), SSL_has_pending() (decrypted or not) is
 * checked and the read callback activated by hand: the same code path as a
 * readable socket; a record complete in the buffer costs no system call, a
 * partial one a read() that may return EAGAIN. No effect while reading is
 * disabled (the callback reads nothing then), nor on a plain bufferevent. */
static inline void gw_bev_read_pending(struct bufferevent *bev)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    if (ssl != NULL && (bufferevent_get_enabled(bev) & EV_READ) && SSL_has_pending(ssl))
        event_active(&bev->ev_read, EV_READ, 1);
}

/* A server-side TLS bufferevent just made (BUFFEREVENT_SSL_ACCEPTING): reading
 * only. bufferevent_openssl starts with reading and writing enabled and
 * enables both again when the handshake is over; writing being enabled adds
 * its EV_WRITE event, output empty or not. For a new connection that was the
 * socket registered for EPOLLOUT at accept, removed (epoll_ctl MOD) once the
 * server's flight was written, added again at the handshake's end (a loop
 * round trip that found the socket writable with nothing to write) and
 * removed after that (another MOD): two of the five epoll_ctl calls of a
 * connection that makes one request, and an epoll_wait. Left: the ADD, the
 * MOD that changes nothing at the handshake's end (bufferevent_openssl
 * deletes and adds its read event again with its callbacks) and the DEL that
 * follows the close (EBADF). The server speaks only after the ClientHello;
 * whenever OpenSSL wants to write during the handshake bufferevent_openssl
 * adds the event itself (do_handshake's SSL_ERROR_WANT_WRITE), as it does
 * when a read needs a write (read blocked on write); the response enables
 * writing (gw_conn_send, the HTTP/2 session's flush). */
static inline void gw_bev_accept_reading_only(struct bufferevent *bev)
{
    bufferevent_enable(bev, EV_READ);   /* the handshake waits for the hello */
    bufferevent_disable(bev, EV_WRITE); /* the flag: not enabled at the end */
    event_del(&bev->ev_write);          /* the handshake's event, not polled */
}

/* Run a bufferevent's read callback in the current loop iteration, when its
 * socket is known to be readable (an established connection only). */
static inline void gw_bev_read_now(struct bufferevent *bev)
{
    event_active(&bev->ev_read, EV_READ, 1);
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
