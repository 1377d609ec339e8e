/*
 * opale-mock: the /__mock/ control endpoints and the counters they show
 * (mock.h; docs/mock-opale.md, "Control endpoints").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>

#include "mock.h"

/* Appends <s> and its NUL to the record's buffer; -1 when out of memory. */
static int last_add(struct mock_last *l, const char *s)
{
    size_t n = strlen(s) + 1;
    if (l->len + n > l->cap) {
        size_t cap = l->cap ? l->cap : 1024;
        while (cap < l->len + n)
            cap *= 2;
        char *b = realloc(l->buf, cap);
        if (!b)
            return -1;
        l->buf = b;
        l->cap = cap;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
    return 0;
}

void mock_last_clear(struct mock_last *l)
{
    json_decref(l->claims);
    l->claims = NULL;
    l->set = false;
    l->mac_verified = false;
    l->len = 0;
    l->nheaders = 0;
}

void mock_record(struct mock *m, struct evhttp_request *req, const char *path, json_t *claims)
{
    struct evkeyvalq *hdrs = evhttp_request_get_input_headers(req);
    struct evkeyval *kv;
    struct mock_last *l = &m->last;
    const char *uri = evhttp_request_get_uri(req);

    m->requests++;
    /* by path: the count's json_t is updated in place once it exists */
    json_t *cnt = json_object_get(m->by_path, path);
    if (cnt && json_is_integer(cnt)) {
        json_integer_set(cnt, json_integer_value(cnt) + 1);
    } else {
        char *key = mock_utf8_copy(path);
        if (key && !json_object_get(m->by_path, key) &&
            json_object_size(m->by_path) >= MOCK_MAX_PATHS) {
            free(key);
            key = strdup(MOCK_OTHER_PATHS);
        }
        if (key) {
            cnt = json_object_get(m->by_path, key);
            json_object_set_new(m->by_path, key,
                                json_integer(cnt ? json_integer_value(cnt) + 1 : 1));
            free(key);
        }
    }

    mock_last_clear(l);
    l->method = mock_method_name(evhttp_request_get_command(req));
    l->major = req->major;
    l->minor = req->minor;
    l->body_len = evbuffer_get_length(evhttp_request_get_input_buffer(req));
    l->claims = claims;
    if (last_add(l, uri ? uri : "") != 0)
        return; /* out of memory: no "last" (a 404 from /__mock/last) */
    TAILQ_FOREACH(kv, hdrs, next)
    {
        if (last_add(l, kv->key) != 0 || last_add(l, kv->value) != 0)
            return;
        l->nheaders++;
    }
    l->set = true;
}

/* The last request as JSON: method, URI, the request line as evhttp read it,
 * the headers in order, the verified assertion and the body's size, so that
 * a test can prove what the backend received (and that no body came up). */
static json_t *last_json(const struct mock_last *l)
{
    const char *p = l->buf;
    const char *uri = p;
    json_t *list = json_array();
    char *line = NULL;

    p += strlen(p) + 1;
    for (size_t i = 0; i < l->nheaders && list; i++) {
        const char *k = p;
        const char *v = k + strlen(k) + 1;
        p = v + strlen(v) + 1;
        json_array_append_new(list, json_pack("[o,o]", mock_jstr(k), mock_jstr(v)));
    }
    if (asprintf(&line, "%s %s HTTP/%d.%d", l->method, uri, l->major, l->minor) < 0)
        line = NULL;
    json_t *j = json_pack("{s:s,s:o,s:o,s:o,s:O,s:I}", "method", l->method, "uri", mock_jstr(uri),
                          "request_line", mock_jstr(line ? line : ""), "headers", list, "assertion",
                          l->claims ? l->claims : json_null(), "body_len", (json_int_t)l->body_len);
    free(line);
    if (j && l->mac_verified) /* the grant, and the MAC of this very request */
        json_object_set_new(j, "request_mac", json_string("verified"));
    return j;
}

/* Applies a {"latency_ms":N,"error_rate":P,"reset_rate":P,"seed":S} subset;
 * all or nothing. Returns NULL on success, else a constant message. */
static const char *apply_config(struct mock *m, const char *data, size_t len)
{
    json_error_t jerr;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    struct fault f = m->fault;
    const char *key, *err = NULL;
    json_t *v, *seed = NULL;

    if (!root || !json_is_object(root)) {
        err = "un objet JSON est attendu";
        goto out;
    }
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "latency_ms") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                json_integer_value(v) > MOCK_MAX_LATENCY_MS) {
                err = "latency_ms : entier entre 0 et 600000 attendu";
                goto out;
            }
            f.latency_ms = (long)json_integer_value(v);
        } else if (strcmp(key, "error_rate") == 0 || strcmp(key, "reset_rate") == 0) {
            double r = json_is_number(v) ? json_number_value(v) : -1;
            if (!(r >= 0.0 && r <= 1.0)) {
                err = key[0] == 'e' ? "error_rate : nombre entre 0 et 1 attendu"
                                    : "reset_rate : nombre entre 0 et 1 attendu";
                goto out;
            }
            if (key[0] == 'e')
                f.error_rate = r;
            else
                f.reset_rate = r;
        } else if (strcmp(key, "seed") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0) {
                err = "seed : entier positif ou nul attendu";
                goto out;
            }
            seed = v;
        } else {
            err = "clé inconnue (latency_ms, error_rate, reset_rate, seed)";
            goto out;
        }
    }
    m->fault = f;
    if (seed) {
        m->seed = (uint64_t)json_integer_value(seed);
        m->rng = m->seed;
    }
out:
    json_decref(root);
    return err;
}

void mock_serve_control(struct mock *m, struct evhttp_request *req, const char *what)
{
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

    if (strcmp(what, "stats") == 0) {
        if (cmd != EVHTTP_REQ_GET)
            goto method;
        mock_send_json(m, req, 200,
                       json_pack("{s:I,s:I,s:O,s:I,s:I}", "requests", (json_int_t)m->requests,
                                 "connections", (json_int_t)m->connections, "by_path", m->by_path,
                                 "assertion_refused", (json_int_t)m->assertion_refused,
                                 "assertion_replayed", (json_int_t)m->assertion_replayed));
    } else if (strcmp(what, "reset") == 0) {
        if (cmd != EVHTTP_REQ_POST)
            goto method;
        m->requests = 0;
        m->connections = 0;
        m->assertion_refused = 0;
        m->assertion_replayed = 0;
        m->rng = m->seed; /* the fault sequence restarts too */
        json_object_clear(m->by_path);
        mock_last_clear(&m->last);
        mock_send_json(m, req, 204, NULL);
    } else if (strcmp(what, "last") == 0) {
        if (cmd != EVHTTP_REQ_GET)
            goto method;
        json_t *j = m->last.set ? last_json(&m->last) : NULL;
        if (!j)
            mock_send_error(m, req, E404_NOLAST);
        else
            mock_send_json(m, req, 200, j);
    } else if (strcmp(what, "config") == 0) {
        if (cmd == EVHTTP_REQ_GET) {
            mock_send_json(m, req, 200,
                           json_pack("{s:I,s:f,s:f,s:I}", "latency_ms",
                                     (json_int_t)m->fault.latency_ms, "error_rate",
                                     m->fault.error_rate, "reset_rate", m->fault.reset_rate, "seed",
                                     (json_int_t)m->seed));
        } else if (cmd == EVHTTP_REQ_POST) {
            struct evbuffer *in = evhttp_request_get_input_buffer(req);
            size_t len = evbuffer_get_length(in);
            const char *data = (const char *)evbuffer_pullup(in, -1);
            const char *err = apply_config(m, data ? data : "", len);
            if (err) {
                if (!m->quiet)
                    fprintf(stderr, MOCK_NAME ": config refused: %s\n", err);
                mock_send_error(m, req, E400_CONFIG);
            } else {
                if (!m->quiet)
                    fprintf(stderr,
                            MOCK_NAME ": config latency_ms=%ld error_rate=%g reset_rate=%g\n",
                            m->fault.latency_ms, m->fault.error_rate, m->fault.reset_rate);
                mock_send_json(m, req, 204, NULL);
            }
        } else {
            goto method;
        }
    } else {
        mock_send_error(m, req, E404_PATH);
    }
    return;
method:
    mock_send_error(m, req, E405);
}
