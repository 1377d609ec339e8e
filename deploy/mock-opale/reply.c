/*
 * opale-mock: JSON replies, error bodies and the access log (mock.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "mock.h"

#define CT_JSON "application/json; charset=utf-8"

/* A copy of <s> that jansson accepts: <s> itself when it is valid UTF-8,
 * else <s> with every non-ASCII byte replaced by '?'. Caller frees. */
char *mock_utf8_copy(const char *s)
{
    const unsigned char *a = (const unsigned char *)s;
    while (*a != 0 && *a < 0x80)
        a++;
    if (*a == 0)
        return strdup(s); /* ASCII: valid as it is */
    json_t *probe = json_string(s);
    char *c = strdup(s);

    if (!probe && c)
        for (char *p = c; *p; p++)
            if ((unsigned char)*p >= 0x80)
                *p = '?';
    json_decref(probe);
    return c;
}

json_t *mock_jstr(const char *s)
{
    char *c = mock_utf8_copy(s);
    json_t *j = json_string(c ? c : "");

    free(c);
    return j;
}

const char *mock_method_name(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_TRACE:
        return "TRACE";
    case EVHTTP_REQ_CONNECT:
        return "CONNECT";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    }
    return "UNKNOWN";
}

void mock_access_log(struct mock *m, struct evhttp_request *req, const char *what)
{
    if (m->quiet)
        return;
    fprintf(stderr, MOCK_NAME ": %s %s -> %s\n", mock_method_name(evhttp_request_get_command(req)),
            evhttp_request_get_uri(req), what);
}

static void echo_ids(struct evhttp_request *req)
{
    static const char *const names[] = {"X-Request-ID", "X-Correlation-ID"};
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *v = evhttp_find_header(in, names[i]);
        if (v)
            evhttp_add_header(out, names[i], v); /* refuses CR/LF itself */
    }
}

/* The reply: <text> (<len> bytes of JSON; NULL with <has_body>: out of
 * memory, a 500 without a body; NULL without: no body at all). */
static void send_body(struct mock *m, struct evhttp_request *req, int code, int has_body,
                      const char *text, size_t len, const char *note)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    struct evbuffer *buf = NULL;
    char what[192];

    echo_ids(req);
    if (has_body) {
        buf = evbuffer_new();
        if (text && buf && evbuffer_add(buf, text, len) == 0) {
            evhttp_add_header(out, "Content-Type", CT_JSON);
        } else {
            code = 500;
            if (buf)
                evbuffer_free(buf);
            buf = NULL;
        }
    }
    if (note)
        snprintf(what, sizeof(what), "%d (%s)", code, note);
    else
        snprintf(what, sizeof(what), "%d", code);
    mock_access_log(m, req, what);
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    evhttp_send_reply(req, code, NULL, buf);
    /* Written in this loop iteration: libevent's bufferevent writes only
     * from its EV_WRITE callback, so evhttp_send_reply() adds EV_WRITE and
     * the next epoll_wait() finds the socket writable (an epoll_ctl, a loop
     * round trip, and another epoll_ctl to remove it). Activating the event
     * runs the same callback later in this iteration; the changelist
     * (main.c) then folds the add and the remove into nothing. */
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    if (bev && event_pending(&bev->ev_write, EV_WRITE, NULL))
        event_active(&bev->ev_write, EV_WRITE, 1);
    if (buf)
        evbuffer_free(buf);
}

void mock_send_json_note(struct mock *m, struct evhttp_request *req, int code, json_t *body,
                         const char *note)
{
    char *text = NULL;
    if (body) {
        text = json_dumps(body, JSON_FLAGS);
        json_decref(body);
    }
    send_body(m, req, code, body != NULL, text, text ? strlen(text) : 0, note);
    free(text);
}

void mock_send_text(struct mock *m, struct evhttp_request *req, int code, const char *text,
                    size_t len)
{
    send_body(m, req, code, 1, text, len, NULL);
}

void mock_send_json(struct mock *m, struct evhttp_request *req, int code, json_t *body)
{
    mock_send_json_note(m, req, code, body, NULL);
}

static json_t *error_body(const char *code, const char *message)
{
    char now[32];
    time_t t = time(NULL);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_pack("{s:{s:s,s:s,s:s}}", "erreur", "code", code, "message", message, "horodatage",
                     now);
}

void mock_send_error_note(struct mock *m, struct evhttp_request *req, int status, const char *code,
                          const char *message, const char *note)
{
    if (status == 405)
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET");
    mock_send_json_note(m, req, status, error_body(code, message), note);
}

void mock_send_error(struct mock *m, struct evhttp_request *req, int status, const char *code,
                     const char *message)
{
    mock_send_error_note(m, req, status, code, message, NULL);
}
