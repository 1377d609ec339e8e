/*
 * Legal holds over the admin API (admin/holds.h; docs/journal.md, "Legal
 * hold").
 */
#include "admin/holds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "admin/bodies.h"
#include "admin/reply.h"

/* ---- legal holds (docs/journal.md, "Legal hold") ---- */

/* Apply the hold state to both streams: retention stops while any hold is
 * set, and runs again at once when the last one is lifted. */
static void apply_holds(gw_admin *a)
{
    int held = gw_holds_count(a->holds) > 0;
    gw_journal_set_hold(a->journal, held);
    gw_journal_set_hold(gw_events_journal(gw_server_events(a->srv)), held);
}

static void hold_event(gw_admin *a, struct evhttp_request *req, gw_event_type type,
                       const char *consumer, const char *reason, size_t holds)
{
    json_t *f = json_pack("{s:s,s:s?,s:s?,s:o,s:s?,s:I}", "by", "admin API", "client_ip",
                          gw_admin_peer_addr(req), "operator", a->cur != NULL ? a->cur->name : NULL,
                          "consumer", consumer ? json_string(consumer) : json_null(), "reason",
                          reason, "holds", (json_int_t)holds);
    gw_events_integrity(gw_server_events(a->srv), type, f);
}

/* A printable string of 1..<max> bytes without control characters. */
static int hold_text(const char *s, size_t max)
{
    return gw_admin_text_ok(s, max);
}

void gw_admin_on_hold_get(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)id;
    gw_admin_json_reply(req, 200,
                        json_pack("{s:o,s:b}", "holds", gw_holds_json(a->holds),
                                  "retention_suspended", gw_holds_count(a->holds) > 0));
}

void gw_admin_on_hold_post(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)id;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    json_t *body =
        n > 0 ? json_loadb((const char *)evbuffer_pullup(in, -1), n, JSON_REJECT_DUPLICATES, NULL)
              : NULL;
    const char *reason = json_string_value(json_object_get(body, "reason"));
    json_t *cj = json_object_get(body, "consumer");
    const char *consumer = json_string_value(cj);
    const char *k;
    json_t *v;
    int extra = 0;
    json_object_foreach(body, k, v) extra |= strcmp(k, "reason") != 0 && strcmp(k, "consumer") != 0;
    if (!json_is_object(body) || extra || !hold_text(reason, 512) ||
        (cj != NULL && !json_is_null(cj) && !hold_text(consumer, 128))) {
        json_decref(body);
        gw_admin_error_reply(
            req, 400,
            "expected {\"reason\": text (1-512 bytes), \"consumer\": client_id (optional)}");
        return;
    }
    char *err = NULL;
    int rc = gw_holds_set(a->holds, consumer, reason, "admin API", &err);
    if (rc < 0) {
        fprintf(stderr, "opale-gateway: admin: legal hold: %s\n", err ? err : "out of memory");
        free(err);
        json_decref(body);
        gw_admin_error_reply(req, 500, "the hold could not be saved");
        return;
    }
    apply_holds(a);
    size_t count = gw_holds_count(a->holds);
    hold_event(a, req, GW_EV_ADMIN_HOLD, consumer, reason, count);
    fprintf(stderr,
            "opale-gateway: admin: legal hold set on %s (%zu in force): retention suspended\n",
            consumer ? consumer : "all journal files", count);
    gw_admin_json_reply(req, rc == 1 ? 201 : 200,
                        json_pack("{s:o,s:s,s:I,s:o}", "consumer",
                                  consumer ? json_string(consumer) : json_null(), "reason", reason,
                                  "holds", (json_int_t)count, "list", gw_holds_json(a->holds)));
    json_decref(body);
}

void gw_admin_on_hold_delete(gw_admin *a, struct evhttp_request *req, const char *id)
{
    (void)id;
    struct evkeyvalq q;
    const char *consumer = NULL;
    TAILQ_INIT(&q);
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (query != NULL && evhttp_parse_query_str(query, &q) == 0)
        consumer = evhttp_find_header(&q, "consumer");
    if (consumer != NULL && !hold_text(consumer, 128)) {
        evhttp_clear_headers(&q);
        gw_admin_error_reply(req, 400, "consumer: a client_id (1-128 bytes)");
        return;
    }
    char *err = NULL;
    int rc = gw_holds_lift(a->holds, consumer, &err);
    if (rc <= 0) {
        if (rc < 0)
            fprintf(stderr, "opale-gateway: admin: legal hold: %s\n", err ? err : "out of memory");
        free(err);
        evhttp_clear_headers(&q);
        gw_admin_error_reply(req, rc < 0 ? 500 : 404,
                             rc < 0 ? "the hold could not be saved" : "no such hold");
        return;
    }
    apply_holds(a);
    size_t count = gw_holds_count(a->holds);
    hold_event(a, req, GW_EV_ADMIN_HOLD_LIFTED, consumer, NULL, count);
    fprintf(stderr, "opale-gateway: admin: legal hold on %s lifted (%zu in force)%s\n",
            consumer ? consumer : "all journal files", count,
            count == 0 ? ": retention runs again" : "");
    gw_admin_json_reply(req, 200,
                        json_pack("{s:b,s:o,s:I}", "lifted", 1, "consumer",
                                  consumer ? json_string(consumer) : json_null(), "holds",
                                  (json_int_t)count));
    evhttp_clear_headers(&q);
}
