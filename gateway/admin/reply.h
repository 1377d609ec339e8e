/*
 * The admin listener's HTTP plumbing over evhttp: answers (with the
 * security headers of admin/console.h on every one), the JSON error body
 * {"error": message}, the query string, the caller's address, and the
 * console's embedded files. No state of the listener.
 */
#ifndef GW_ADMIN_REPLY_H
#define GW_ADMIN_REPLY_H

#include <stdint.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

/* The admin listener's idle and read timeout (evhttp_set_timeout); an
 * answer's deadlines start when it is queued (reply.c). */
#define GW_ADMIN_TIMEOUT_S 10

/* Adds the headers of every console and admin answer (admin/console.h). */
void gw_admin_add_security_headers(struct evhttp_request *req);

/* Sends <code> with the body <b> (the caller's) of type <ctype>. */
void gw_admin_reply(struct evhttp_request *req, int code, const char *ctype, struct evbuffer *b);

/* Sends <code> with <o> as one line of compact JSON; takes <o> (NULL, or
 * no memory: 500). */
void gw_admin_json_reply(struct evhttp_request *req, int code, json_t *o);

/* Sends <code> with {"error": <msg>}. */
void gw_admin_error_reply(struct evhttp_request *req, int code, const char *msg);

/* 1 when the query string of <req> sets <key> to "1" or "true". */
int gw_admin_query_flag(struct evhttp_request *req, const char *key);

/* A query parameter as an unsigned integer: 1 with <*out>, 0 absent, -1
 * not a number. */
int gw_admin_query_u64(struct evkeyvalq *q, const char *key, uint64_t *out);

/* The caller's address (owned by the connection), NULL when unknown. */
const char *gw_admin_peer_addr(struct evhttp_request *req);

/* GET (or HEAD) /console/...: the embedded files, open (the page holds no
 * data). <head>: HEAD, headers only. */
void gw_admin_serve_console(struct evhttp_request *req, const char *path, int head);

#endif
