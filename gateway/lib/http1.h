/*
 * Strict HTTP/1.1 message parsing on top of llhttp, with no I/O and no
 * libevent: the connection code feeds bytes, this code says "need more",
 * "one message complete, <consumed> bytes used" or "refuse with status N".
 *
 * Requests are checked twice: our own pass over the raw header block (the
 * rules llhttp 8.1 does not enforce: whitespace before ':', obs-fold, field
 * characters, request-line shape, bare LF, Transfer-Encoding other than
 * "chunked", Content-Length syntax and duplicates, Host, no '_' in names but
 * ID_Teleservice's, single-valued headers once) and then llhttp for framing
 * (Content-Length / chunked bodies, CL+TE).
 */
#ifndef GW_HTTP1_H
#define GW_HTTP1_H

#include <stddef.h>
#include <stdint.h>

typedef struct gw_http_header {
    const char *name; /* points into the message's own header copy, NUL-terminated */
    size_t name_len;
    const char *value; /* leading/trailing OWS removed, NUL-terminated */
    size_t value_len;
} gw_http_header;

typedef struct gw_http_limits {
    size_t max_header_bytes; /* request/status line + all header lines + final CRLF */
    size_t max_headers;
    size_t max_body_bytes;
} gw_http_limits;

typedef enum gw_http_status {
    GW_HTTP_AGAIN = 0,    /* all input consumed, message not complete */
    GW_HTTP_COMPLETE = 1, /* a message is complete; *consumed bytes belong to it */
    GW_HTTP_ERROR = 2     /* refuse: see gw_http_parser_error() */
} gw_http_status;

/* A parsed request. Owned by the caller after gw_http_parser_take(). */
typedef struct gw_http_request {
    char method[16];
    const char *target; /* as received, NUL-terminated */
    size_t target_len;
    const char *path; /* target up to '?' (not NUL-terminated at '?') */
    size_t path_len;
    const char *query; /* after '?', NULL when absent */
    size_t query_len;
    int version_minor; /* 0 or 1 */
    gw_http_header *headers;
    size_t nheaders;
    int keep_alive;         /* per HTTP/1.x rules and Connection */
    int chunked;            /* body was chunked */
    int64_t content_length; /* -1 when absent */
    char *body;             /* NULL when empty */
    size_t body_len;
    size_t head_len; /* bytes of the header block on the wire */
    void *priv_;     /* storage, owned */
} gw_http_request;

typedef struct gw_http_response {
    int status;
    int version_minor;
    gw_http_header *headers;
    size_t nheaders;
    int keep_alive; /* the connection may be reused after this response */
    char *body;
    size_t body_len;
    void *priv_;
} gw_http_response;

typedef struct gw_http_parser gw_http_parser;

/* <is_response>: 0 parses requests, 1 parses responses (upstream side). */
gw_http_parser *gw_http_parser_new(int is_response, const gw_http_limits *lim);
void gw_http_parser_free(gw_http_parser *p);

/* Requests only: <cb>(<arg>, request) is called once per message, when its
 * header block is complete and checked and before any body byte is read; it
 * returns the body limit of that message (capped by max_body_bytes; 0: the
 * message may carry no body). A message announcing a body (Content-Length >
 * 0, or chunked) where the limit is 0 is refused at once with 400
 * "http.body_not_allowed"; a Content-Length above the limit with 413, and a
 * chunked body growing past it with 413. The request passed is the one
 * gw_http_parser_take_request() will return (body not yet set). */
typedef size_t (*gw_http_body_limit_cb)(void *arg, const gw_http_request *r);
void gw_http_parser_set_body_limit_cb(gw_http_parser *p, gw_http_body_limit_cb cb, void *arg);

/* Tests only: llhttp reads the whole head again, every header line (the
 * parser's behaviour before it read only the lines it interprets), to check
 * that both accept and refuse the same messages alike. */
void gw_http_parser_llhttp_full_head(gw_http_parser *p, int on);

/* For responses only: the request was HEAD (no body whatever the headers say). */
void gw_http_parser_expect_no_body(gw_http_parser *p, int no_body);

/* Feed <len> bytes. On GW_HTTP_COMPLETE, <*consumed> is the number of bytes of
 * <data> that belong to the message; the rest begins the next one (feed it
 * after gw_http_parser_take*()). On AGAIN, all <len> bytes were consumed. On
 * ERROR the parser is dead: answer gw_http_parser_error() and close. */
gw_http_status gw_http_parser_feed(gw_http_parser *p, const char *data, size_t len,
                                   size_t *consumed);
/* Responses only: the peer closed; completes a read-until-close body. */
gw_http_status gw_http_parser_finish(gw_http_parser *p);

/* 1 once at least one byte of the current message has been fed. */
int gw_http_parser_started(const gw_http_parser *p);
/* 1 once the header block of the current message is complete. */
int gw_http_parser_head_done(const gw_http_parser *p);

/* Responses: bytes of body buffered so far for the current message, and the
 * Content-Length it declared once the head is complete (-1 when none, when
 * chunked or read until close, and for bodyless answers). Lets the proxy
 * charge a worker-wide budget as a response grows (issue 13). */
size_t gw_http_parser_body_bytes(const gw_http_parser *p);
int64_t gw_http_parser_declared_length(const gw_http_parser *p);

/* After ERROR: HTTP status to answer (400, 413, 431, 501, or 502 for a bad
 * response) and a constant reason label such as "http.ws_before_colon". */
int gw_http_parser_error(const gw_http_parser *p, const char **reason);

/* After COMPLETE: take the message (caller owns it); the parser is reset for
 * the next message. */
gw_http_request *gw_http_parser_take_request(gw_http_parser *p);
gw_http_response *gw_http_parser_take_response(gw_http_parser *p);

void gw_http_request_free(gw_http_request *r);
void gw_http_response_free(gw_http_response *r);

/* First header named <name> (case-insensitive), or NULL; <*len> its length. */
const char *gw_http_request_header(const gw_http_request *r, const char *name, size_t *len);
const char *gw_http_response_header(const gw_http_response *r, const char *name, size_t *len);

/* 1 when the header <name> must not cross a proxy: the RFC 9110 hop-by-hop
 * set (Connection, Keep-Alive, Proxy-Connection, Proxy-*, TE, Trailer,
 * Transfer-Encoding, Upgrade) or a token listed in one of the Connection
 * headers among <headers>/<nheaders>. */
int gw_http_is_hop_by_hop(const char *name, size_t name_len, const gw_http_header *headers,
                          size_t nheaders);

#endif
