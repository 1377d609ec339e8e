/*
 * Internal to core/: a client connection as conn.c (transport, timers, the
 * HTTP state machine), request.c (dispatch) and outcome.c (journal record,
 * security events, metrics) share it. conn.c owns it; the two others read
 * the connection's identity (listener, peer, TLS) and hand bytes back
 * through gw_conn_send().
 */
#ifndef GW_CONN_H
#define GW_CONN_H

#include <arpa/inet.h>

#include "core/tls.h"
#include "core/worker.h"
#include "lib/http1.h"

enum gw_cstate {
    CS_PROXY,
    CS_HANDSHAKE,
    CS_IDLE,
    CS_HEAD,
    CS_BODY,
    CS_BUSY,
    CS_WRITING,
    CS_LINGER,
    CS_H2 /* ALPN h2: the session (core/h2.c) drives the connection */
};

typedef struct gw_request gw_request;
struct gw_h2_session;

/* A proxy_protocol listener's connection only, in the connection's own
 * allocation (gw_conn_accept): the PROXY v2 header being read, then the
 * client address it gave (proxied). */
typedef struct gw_conn_pp {
    struct event *ev;   /* reading the header */
    unsigned char *buf; /* GW_PP2_MAX bytes, only while reading the header */
    unsigned short len; /* read so far, at most GW_PP2_MAX */
    unsigned char family;
    unsigned char addr[16];
    char ip[INET6_ADDRSTRLEN];
} gw_conn_pp;

/* Held for as long as the connection lives, idle ones included (S5 of
 * bench/README.md): pointers first, flags as bits, no padding to speak of,
 * one allocation with its timer's struct event (and gw_conn_pp on a PROXY
 * listener) after it (docs/architecture.md, "What the ~25 KiB of an idle
 * mTLS connection are"). */
typedef struct gw_conn {
    TAILQ_ENTRY(gw_conn) link;
    gw_worker *w;
    const gw_listener_rt *lis;
    struct bufferevent *bev;
    struct event *timer; /* in the connection's allocation: event_assign, never event_free */
    gw_conn_pp *pp;      /* proxy_protocol listeners only, else NULL */
    gw_http_parser *parser;
    gw_request *req;
    struct gw_h2_session *h2; /* CS_H2 only: the HTTP/2 session, owned */
    SSL *dormant_ssl;         /* dormant (bev NULL, conn.c): the session, owned */
    uint64_t t_first_byte;
    uint64_t idle_until; /* CS_IDLE: when the keep-alive ends (gw_now_ms) */
    long bytes_in;
    gw_tls_peer peer;
    enum gw_cstate state;
    evutil_socket_t fd; /* until the bufferevent owns it, else -1 */
    int client_port;
    unsigned char peer_family; /* AF_INET / AF_INET6, v4-mapped stored as AF_INET */
    unsigned proxied : 1;      /* the PROXY header gave the client address (pp) */
    unsigned close_after : 1;
    /* holds a handshake slot of its source address (gw_worker_hs_enter):
     * the PROXY header's when proxied, else the socket's peer */
    unsigned hs_slot : 1;
    unsigned peer_eof : 1;     /* the client half-closed: answer what it sent, then close */
    unsigned in_input : 1;     /* inside process_input() called from timercb: conn_free() defers */
    unsigned free_pending : 1; /* conn_free() was called while in_input */
    unsigned char peer_addr[16];
    char client_ip[INET6_ADDRSTRLEN];
} gw_conn;

/* conn.c: put the response <bytes> (malloc'd, taken) on the wire; the
 * connection goes to WRITING and the request ends once they are sent. */
void gw_conn_send(gw_conn *c, char *bytes, size_t len);
/* conn.c: end the connection now (an allocation failed); on an HTTP/2
 * connection, at the next loop pass (gw_h2_fail). */
void gw_conn_fail(gw_conn *c);

#endif
