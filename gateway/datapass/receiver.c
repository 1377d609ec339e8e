/*
 * The DataPass webhook receiver (docs/datapass.md). Its own listener: TLS
 * with a server certificate and no client certificate (DataPass calls from
 * the Internet), evhttp on the main thread's event loop, the same thread as
 * the admin API, SIGHUP and the policy watch: so a webhook's file rewrite and
 * a reload never run at the same time.
 *
 * Order of the checks, each refusal one security event and one metric:
 * path and method (404/405, no event: not a webhook), body size (413),
 * Content-Type (415), X-App-Environment (403), X-Hub-Signature-256 over the
 * raw bytes (401), and only then JSON (400), fired_at within the replay
 * window (400), the id already seen (200, no effect), the habilitation's
 * definition against the environment (403). Then the event is applied.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "datapass/datapass.h"
#include "datapass/seen.h"
#include "datapass/sync.h"
#include "datapass/webhook.h"
#include "journal/events.h"
#include "policy/policy.h"
#include "policy/suspend.h"

#define FUTURE_SKEW_S 300 /* a fired_at this far ahead is refused (clock skew) */

static const char *const outcome_names[GW_DP_OUT__COUNT] = {
    [GW_DP_OUT_APPLIED] = "applied",
    [GW_DP_OUT_ACKED] = "acknowledged",
    [GW_DP_OUT_REPLAY] = "replay",
    [GW_DP_OUT_BAD_SIGNATURE] = "bad_signature",
    [GW_DP_OUT_BAD_ENVIRONMENT] = "bad_environment",
    [GW_DP_OUT_BAD_REQUEST] = "bad_request",
    [GW_DP_OUT_TOO_LARGE] = "too_large",
    [GW_DP_OUT_TOO_OLD] = "too_old",
    [GW_DP_OUT_FAILED] = "failed",
};

static atomic_ulong counts[GW_DP_OUT__COUNT];

const char *gw_dp_outcome_name(gw_dp_outcome o)
{
    return (unsigned)o < GW_DP_OUT__COUNT ? outcome_names[o] : NULL;
}

void gw_dp_count(gw_dp_outcome o)
{
    if ((unsigned)o < GW_DP_OUT__COUNT)
        atomic_fetch_add_explicit(&counts[o], 1, memory_order_relaxed);
}

void gw_dp_metrics(struct evbuffer *b)
{
    evbuffer_add_printf(b, "# HELP opale_datapass_webhooks_total DataPass webhooks by outcome.\n"
                           "# TYPE opale_datapass_webhooks_total counter\n");
    for (int i = 0; i < GW_DP_OUT__COUNT; i++)
        evbuffer_add_printf(b, "opale_datapass_webhooks_total{outcome=\"%s\"} %lu\n",
                            outcome_names[i],
                            atomic_load_explicit(&counts[i], memory_order_relaxed));
    evbuffer_add_printf(
        b,
        "# HELP opale_datapass_syncs_total Syncs with the DataPass API by outcome.\n"
        "# TYPE opale_datapass_syncs_total counter\n"
        "opale_datapass_syncs_total{outcome=\"ok\"} %lu\n"
        "opale_datapass_syncs_total{outcome=\"failed\"} %lu\n",
        gw_dp_sync_counted(1), gw_dp_sync_counted(0));
}

struct gw_dp_receiver {
    struct evhttp *http;
    SSL_CTX *ssl;
    gw_dp_conf dc;
    gw_server *srv;
    const gw_conf *conf;
    gw_dp_seen *seen;
    int crash_before_rename; /* tests: docs/testing.md */
};

static struct bufferevent *bevcb(struct event_base *base, void *arg)
{
    gw_dp_receiver *r = arg;
    SSL *ssl = SSL_new(r->ssl);
    if (ssl == NULL)
        return NULL;
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL)
        SSL_free(ssl);
    return bev;
}

/* What one webhook did, for its answer, its event and its metric. */
typedef struct verdict {
    gw_dp_outcome outcome;
    int status;
    char detail[512];
    char consumer[129];
    char contact[255];
    char file[512];
    const char *env;
    char ip[64];
} verdict;

static void answer(gw_dp_receiver *r, struct evhttp_request *req, verdict *v, const gw_dp_event *ev)
{
    gw_dp_count(v->outcome);
    gw_event_datapass e = {
        .outcome = outcome_names[v->outcome],
        .event = ev != NULL && ev->name[0] ? ev->name : NULL,
        .event_id = ev != NULL && ev->id[0] ? ev->id : NULL,
        .habilitation = ev != NULL && ev->hab_id[0] ? ev->hab_id : NULL,
        .environment = v->env,
        .client_ip = v->ip[0] ? v->ip : NULL,
        .consumer = v->consumer[0] ? v->consumer : NULL,
        .contact = v->contact[0] ? v->contact : NULL,
        .file = v->file[0] ? v->file : NULL,
        .detail = v->detail[0] ? v->detail : NULL,
        .changed = -1,
        .differences = -1,
        .high = v->outcome == GW_DP_OUT_BAD_SIGNATURE || v->outcome == GW_DP_OUT_FAILED ||
                (v->outcome == GW_DP_OUT_APPLIED && ev != NULL && ev->action == GW_DP_REVOKE),
    };
    gw_events_datapass(gw_server_events(r->srv), GW_EV_DATAPASS_WEBHOOK, &e);
    json_t *o = json_pack("{s:s}", "outcome", outcome_names[v->outcome]);
    if (o != NULL && ev != NULL && ev->id[0])
        json_object_set_new(o, "event_id", json_string(ev->id));
    /* the detail names no secret and echoes no input byte: constant texts
     * and the gateway's own file and habilitation names */
    if (o != NULL && v->detail[0] && v->status >= 400)
        json_object_set_new(o, "error", json_string(v->detail));
    char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    struct evbuffer *b = evbuffer_new();
    if (b != NULL && text != NULL)
        evbuffer_add_printf(b, "%s\n", text);
    free(text);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "Cache-Control", "no-store");
    const char *phrase = v->status == 200   ? "OK"
                         : v->status == 400 ? "Bad Request"
                         : v->status == 401 ? "Unauthorized"
                         : v->status == 403 ? "Forbidden"
                         : v->status == 413 ? "Payload Too Large"
                         : v->status == 415 ? "Unsupported Media Type"
                         : v->status == 422 ? "Unprocessable Content"
                         : v->status == 503 ? "Service Unavailable"
                                            : "Internal Server Error";
    /* the deadlines evhttp re-arms now count from the clock read again, not
     * from before a reload that may have outlasted them (admin/reply.c) */
    struct evhttp_connection *c = evhttp_request_get_connection(req);
    if (c != NULL)
        event_base_update_cache_time(evhttp_connection_get_base(c));
    evhttp_send_reply(req, v->status, phrase, b);
    if (b != NULL)
        evbuffer_free(b);
}

static void refuse(verdict *v, gw_dp_outcome o, int status, const char *detail)
{
    v->outcome = o;
    v->status = status;
    snprintf(v->detail, sizeof(v->detail), "%s", detail);
}

/* Apply <ev> through gw_dp_apply, then reload when a policy file changed. */
static void apply(gw_dp_receiver *r, const gw_dp_event *ev, verdict *v)
{
    gw_policy_set *set = gw_server_policies(r->srv);
    gw_dp_apply_ctx c = {r->conf->policies_dir, set, gw_server_suspensions(r->srv),
                         r->crash_before_rename};
    gw_dp_applied a;
    gw_dp_apply(&c, ev, &a);
    gw_policy_set_unref(set);
    v->outcome = a.outcome;
    v->status = a.status;
    memcpy(v->detail, a.detail, sizeof(v->detail));
    memcpy(v->consumer, a.consumer, sizeof(v->consumer));
    memcpy(v->contact, a.contact, sizeof(v->contact));
    memcpy(v->file, a.file, sizeof(v->file));
    if (a.written && !a.pending) {
        gw_errlist rerrs;
        memset(&rerrs, 0, sizeof(rerrs));
        if (gw_server_reload_policies(r->srv, "datapass webhook", 0, NULL, &rerrs) != 0)
            snprintf(v->detail, sizeof(v->detail), "policy written, reload refused");
        gw_errlist_clear(&rerrs);
    }
}

static int served(const gw_conf *c, gw_dp_env e)
{
    if (e == GW_DP_STAGING)
        return 0; /* no OPALE definition for it */
    gw_env want = e == GW_DP_SANDBOX ? GW_ENV_SANDBOX : GW_ENV_PRODUCTION;
    for (size_t i = 0; i < c->nlisteners; i++)
        if (c->listeners[i].env == want)
            return 1;
    return 0;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    gw_dp_receiver *r = arg;
    verdict v;
    gw_dp_event ev;
    const char *why = NULL;
    memset(&v, 0, sizeof(v));
    memset(&ev, 0, sizeof(ev));

    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (path == NULL || strcmp(path, "/datapass/webhook") != 0) {
        evhttp_send_error(req, 404, NULL);
        return;
    }
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
        evhttp_send_error(req, 405, NULL);
        return;
    }
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    char *addr = NULL;
    ev_uint16_t port = 0;
    if (conn != NULL)
        evhttp_connection_get_peer(conn, &addr, &port);
    if (addr != NULL)
        snprintf(v.ip, sizeof(v.ip), "%s", addr);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    if (len > r->dc.max_body) {
        refuse(&v, GW_DP_OUT_TOO_LARGE, 413, "body too large");
        goto done;
    }
    const char *ct = evhttp_find_header(h, "Content-Type");
    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0 ||
        (ct[16] != '\0' && ct[16] != ';' && ct[16] != ' ')) {
        refuse(&v, GW_DP_OUT_BAD_REQUEST, 415, "Content-Type must be application/json");
        goto done;
    }
    const char *envh = evhttp_find_header(h, "X-App-Environment");
    int env = -1;
    for (int i = 0; envh != NULL && i < GW_DP__NENV; i++)
        if (strcmp(envh, gw_dp_env_name((gw_dp_env)i)) == 0)
            env = i;
    if (env < 0 || r->dc.nsecrets[env] == 0 || !served(r->conf, (gw_dp_env)env)) {
        refuse(&v, GW_DP_OUT_BAD_ENVIRONMENT, 403, "environment not served by this gateway");
        goto done;
    }
    v.env = gw_dp_env_name((gw_dp_env)env);
    const char *body = len > 0 ? (const char *)evbuffer_pullup(in, -1) : "";
    const char *sig = evhttp_find_header(h, "X-Hub-Signature-256");
    int ok = 0;
    for (size_t i = 0; i < r->dc.nsecrets[env]; i++)
        ok |= gw_dp_signature_ok(r->dc.secrets[env][i], r->dc.secret_len[env][i], body, len, sig);
    if (!ok) {
        refuse(&v, GW_DP_OUT_BAD_SIGNATURE, 401, "bad or missing X-Hub-Signature-256");
        goto done;
    }
    if (gw_dp_event_parse(body, len, &ev, &why) < 0) {
        refuse(&v, GW_DP_OUT_BAD_REQUEST, 400, why);
        goto done;
    }
    long long now = (long long)time(NULL);
    if (ev.fired_at < now - r->dc.replay_window_s) {
        refuse(&v, GW_DP_OUT_TOO_OLD, 400, "fired_at: older than the replay window");
        goto done;
    }
    if (ev.fired_at > now + FUTURE_SKEW_S) {
        refuse(&v, GW_DP_OUT_TOO_OLD, 400, "fired_at: in the future");
        goto done;
    }
    if (gw_dp_seen_has(r->seen, ev.id, now)) {
        refuse(&v, GW_DP_OUT_REPLAY, 200, "event already received");
        goto done;
    }
    if (ev.hab != NULL) {
        const char *want = env == GW_DP_PRODUCTION ? "api_opale" : "api_opale_sandbox";
        if (strcmp(ev.definition, want) != 0) {
            refuse(&v, GW_DP_OUT_BAD_ENVIRONMENT, 403,
                   "data.definition_id: not the environment's OPALE definition");
            goto done;
        }
    }
    if (ev.action == GW_DP_OTHER) {
        refuse(&v, GW_DP_OUT_ACKED, 200, "");
    } else {
        apply(r, &ev, &v);
        if (v.status != 200)
            goto done;
    }
    char *err = NULL;
    int rc = gw_dp_seen_add(r->seen, ev.id, ev.fired_at, now, &err);
    if (rc == -2)
        refuse(&v, GW_DP_OUT_FAILED, 503, "too many events within the replay window");
    else if (rc < 0)
        refuse(&v, GW_DP_OUT_FAILED, 500, "cannot save the replay store");
    free(err);
done:
    answer(r, req, &v, &ev);
    gw_dp_event_clear(&ev);
}

gw_dp_receiver *gw_dp_receiver_start(struct event_base *base, const gw_conf *conf, gw_dp_conf *dc,
                                     gw_server *srv, char **err)
{
    gw_dp_receiver *r = calloc(1, sizeof(*r));
    *err = NULL;
    if (r == NULL)
        goto oom;
    r->dc = *dc;
    memset(dc, 0, sizeof(*dc));
    r->srv = srv;
    r->conf = conf;
    const char *crash = getenv("GW_TEST_DATAPASS_CRASH_BEFORE_RENAME");
    r->crash_before_rename = crash != NULL && strcmp(crash, "1") == 0;
    r->seen = gw_dp_seen_open(r->dc.state_file, r->dc.replay_window_s, err);
    if (r->seen == NULL)
        goto fail;
    r->ssl = SSL_CTX_new(TLS_server_method());
    if (r->ssl == NULL || SSL_CTX_set_min_proto_version(r->ssl, TLS1_2_VERSION) != 1)
        goto tls;
    if (SSL_CTX_use_certificate_chain_file(r->ssl, r->dc.cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(r->ssl, r->dc.key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(r->ssl) != 1)
        goto tls;
    r->http = evhttp_new(base);
    if (r->http == NULL)
        goto oom;
    evhttp_set_bevcb(r->http, bevcb, r);
    evhttp_set_timeout(r->http, 10);
    /* evhttp refuses (413, without calling us) beyond this; up to it the
     * handler refuses with a security event */
    evhttp_set_max_body_size(r->http, (ev_ssize_t)(r->dc.max_body * 4));
    evhttp_set_max_headers_size(r->http, 16384);
    evhttp_set_gencb(r->http, on_request, r);
    if (evhttp_bind_socket_with_handle(r->http, r->dc.address, r->dc.port) == NULL) {
        if (asprintf(err, "datapass.webhook: cannot listen on %s port %u: %s", r->dc.address,
                     r->dc.port, strerror(errno)) < 0)
            *err = NULL;
        goto fail;
    }
    return r;
tls : {
    unsigned long e = ERR_get_error();
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (asprintf(err, "datapass.webhook: TLS: %s", buf) < 0)
        *err = NULL;
    goto fail;
}
oom:
    if (*err == NULL && asprintf(err, "datapass: out of memory") < 0)
        *err = NULL;
fail:
    gw_dp_receiver_stop(r);
    return NULL;
}

void gw_dp_receiver_stop(gw_dp_receiver *r)
{
    if (r == NULL)
        return;
    if (r->http != NULL)
        evhttp_free(r->http);
    SSL_CTX_free(r->ssl);
    gw_dp_seen_free(r->seen);
    gw_dp_conf_clear(&r->dc);
    free(r);
}
