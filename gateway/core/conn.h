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

typedef struct gw_conn {
    TAILQ_ENTRY(gw_conn) link;
    gw_worker *w;
    const gw_listener_rt *lis;
    struct bufferevent *bev;
    struct event *timer;
    enum gw_cstate state;
    gw_tls_peer peer;
    char client_ip[INET6_ADDRSTRLEN];
    int client_port;
    int peer_family; /* AF_INET / AF_INET6, v4-mapped stored as AF_INET */
    unsigned char peer_addr[16];
    evutil_socket_t fd;    /* until the bufferevent owns it, else -1 */
    struct event *pp_ev;   /* reading a PROXY v2 header */
    unsigned char *pp_buf; /* GW_PP2_MAX bytes, only while reading a PROXY header */
    size_t pp_len;
    int proxied; /* the PROXY header gave the client address */
    char proxy_ip[INET6_ADDRSTRLEN];
    int proxy_family;
    unsigned char proxy_addr[16];
    gw_http_parser *parser;
    gw_request *req;
    int close_after;
    uint64_t t_first_byte;
    long bytes_in;
    int hs_slot; /* holds a handshake slot of its source address (gw_worker_hs_enter) */
    int hs_family;
    unsigned char hs_addr[16];
    int peer_eof;             /* the client half-closed: answer what it sent, then close */
    int in_input;             /* inside process_input() called from timercb: conn_free() defers */
    int free_pending;         /* conn_free() was called while in_input */
    struct gw_h2_session *h2; /* CS_H2 only: the HTTP/2 session, owned */
    uint64_t idle_until;      /* CS_IDLE: when the keep-alive ends (gw_now_ms) */
    SSL *dormant_ssl;         /* dormant (bev NULL, conn.c): the session, owned */
} gw_conn;

/* conn.c: put the response <bytes> (malloc'd, taken) on the wire; the
 * connection goes to WRITING and the request ends once they are sent. */
void gw_conn_send(gw_conn *c, char *bytes, size_t len);
/* conn.c: end the connection now (an allocation failed); on an HTTP/2
 * connection, at the next loop pass (gw_h2_fail). */
void gw_conn_fail(gw_conn *c);

#endif
