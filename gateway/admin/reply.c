/*
 * The admin listener's HTTP plumbing (contracts in admin/reply.h).
 */
#include "admin/reply.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "admin/console.h"
#include "lib/errors.h"

/* The headers of every console and admin answer (admin/console.h). */
void gw_admin_add_security_headers(struct evhttp_request *req)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    for (const gw_admin_header *x = gw_admin_security_headers; x->name != NULL; x++)
        evhttp_add_header(h, x->name, x->value);
}

/* evhttp arms the connection's read deadline when a request starts, and
 * re-arms it (and the write deadline) when the answer is queued, from the
 * loop's cached clock: the time before the handler ran. A handler that took
 * longer than the timeout (a reload of 10,000 policies on a loaded machine)
 * saw its connection closed by that stale deadline before the answer could
 * leave. Reading the clock again makes the deadlines start from the answer
 * (tests/unit/admin/test_reply.c). */
static void fresh_deadline(struct evhttp_request *req)
{
    struct evhttp_connection *c = evhttp_request_get_connection(req);
    if (c != NULL)
        event_base_update_cache_time(evhttp_connection_get_base(c));
}

void gw_admin_reply(struct evhttp_request *req, int code, const char *ctype, struct evbuffer *b)
{
    fresh_deadline(req);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
    gw_admin_add_security_headers(req);
    evhttp_send_reply(req, code, gw_http_reason_phrase(code), b);
}

/* ---- security events (journal/events.h): admin actions ---- */

/* The caller's address (owned by the connection), NULL when unknown. */
const char *gw_admin_peer_addr(struct evhttp_request *req)
{
    char *addr = NULL;
    ev_uint16_t port = 0;
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    if (conn != NULL)
        evhttp_connection_get_peer(conn, &addr, &port);
    return addr;
}

void gw_admin_json_reply(struct evhttp_request *req, int code, json_t *o)
{
    fresh_deadline(req);
    struct evbuffer *b = evbuffer_new();
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (b == NULL || s == NULL) {
        free(s);
        if (b)
            evbuffer_free(b);
        json_decref(o);
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evbuffer_add_printf(b, "%s\n", s);
    free(s);
    json_decref(o);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    gw_admin_add_security_headers(req);
    evhttp_send_reply(req, code, gw_http_reason_phrase(code), b);
    evbuffer_free(b);
}

/* 1 when the query string of <req> sets <key> to "1" or "true". */
int gw_admin_query_flag(struct evhttp_request *req, const char *key)
{
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq kv;
    int on = 0;
    if (q == NULL || evhttp_parse_query_str(q, &kv) != 0)
        return 0;
    const char *v = evhttp_find_header(&kv, key);
    on = v != NULL && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
    evhttp_clear_headers(&kv);
    return on;
}

/* ---- routing ---- */

void gw_admin_error_reply(struct evhttp_request *req, int code, const char *msg)
{
    gw_admin_json_reply(req, code, json_pack("{s:s}", "error", msg));
}

/* GET (or HEAD) /console/...: the embedded files, open (the page holds no
 * data). <head>: HEAD, headers only. */
void gw_admin_serve_console(struct evhttp_request *req, const char *path, int head)
{
    if (strcmp(path, "/console") == 0) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Location", "/console/");
        gw_admin_add_security_headers(req);
        evhttp_send_reply(req, 301, "Moved Permanently", NULL);
        return;
    }
    const gw_console_file *f = gw_console_find(path);
    if (f == NULL) {
        gw_admin_error_reply(req, 404, "not found");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    if (!head)
        evbuffer_add_reference(b, f->data, f->len, NULL, NULL);
    gw_admin_reply(req, 200, gw_console_mime(f->name), b);
    evbuffer_free(b);
}

/* A query parameter as an unsigned integer: 1 with <*out>, 0 absent, -1
 * not a number. */
int gw_admin_query_u64(struct evkeyvalq *q, const char *key, uint64_t *out)
{
    const char *v = evhttp_find_header(q, key);
    if (v == NULL || v[0] == '\0')
        return 0;
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0' || v[0] < '0' || v[0] > '9')
        return -1;
    *out = n;
    return 1;
}
