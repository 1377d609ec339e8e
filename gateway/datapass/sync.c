#include "datapass/sync.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "journal/events.h"
#include "lib/util.h"
#include "policy/policy.h"

#define MAX_RESPONSE (32u << 20)

static atomic_ulong sync_counts[2]; /* [0] failed, [1] ok */

void gw_dp_sync_count(int ok)
{
    atomic_fetch_add_explicit(&sync_counts[ok ? 1 : 0], 1, memory_order_relaxed);
}

unsigned long gw_dp_sync_counted(int ok)
{
    return atomic_load_explicit(&sync_counts[ok ? 1 : 0], memory_order_relaxed);
}

/* ---- a small blocking HTTPS client (HTTP/1.0, Connection: close) ---- */

typedef struct url {
    char host[300];
    char port[300];
    char path[1024]; /* without a trailing '/' */
} url;

static int parse_url(const char *s, url *u)
{
    memset(u, 0, sizeof(*u));
    if (strncmp(s, "https://", 8) != 0)
        return -1;
    s += 8;
    const char *slash = strchr(s, '/');
    size_t hl = slash ? (size_t)(slash - s) : strlen(s);
    char hp[300];
    if (hl == 0 || hl >= sizeof(hp))
        return -1;
    memcpy(hp, s, hl);
    hp[hl] = '\0';
    char *colon = hp[0] == '[' ? strstr(hp, "]:") : strrchr(hp, ':');
    if (colon != NULL && hp[0] == '[')
        colon++;
    snprintf(u->port, sizeof(u->port), "%s", colon ? colon + 1 : "443");
    if (colon)
        *colon = '\0';
    char *h = hp;
    if (h[0] == '[') {
        h++;
        h[strcspn(h, "]")] = '\0';
    }
    snprintf(u->host, sizeof(u->host), "%s", h);
    snprintf(u->path, sizeof(u->path), "%s", slash ? slash : "");
    size_t pl = strlen(u->path);
    while (pl > 0 && u->path[pl - 1] == '/')
        u->path[--pl] = '\0';
    return u->host[0] ? 0 : -1;
}

static int connect_timeout(const url *u, char **err)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(u->host, u->port, &hints, &res);
    if (rc != 0) {
        if (asprintf(err, "cannot resolve %s: %s", u->host, gai_strerror(rc)) < 0)
            *err = NULL;
        return -1;
    }
    int fd = -1, e = 0;
    for (struct addrinfo *a = res; a != NULL && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
            e = errno;
            close(fd);
            fd = -1;
            continue;
        }
        struct pollfd p = {fd, POLLOUT, 0};
        socklen_t el = sizeof(e);
        if (poll(&p, 1, GW_DP_HTTP_TIMEOUT_S * 1000) != 1 ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0 || e != 0) {
            if (e == 0)
                e = ETIMEDOUT;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        if (asprintf(err, "cannot connect to %s port %s: %s", u->host, u->port, strerror(e)) < 0)
            *err = NULL;
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    struct timeval tv = {GW_DP_HTTP_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

static void tls_err(char **err, const char *what)
{
    char buf[256] = "";
    unsigned long e = ERR_get_error();
    if (e != 0)
        ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    if (asprintf(err, "%s%s%s", what, buf[0] ? ": " : "", buf) < 0)
        *err = NULL;
}

/* One request; returns the body (malloc'd, NUL-terminated) with the status
 * in <*status>, or NULL with <*err>. */
static char *https_call(const gw_dp_conf *dc, const url *u, const char *method, const char *target,
                        const char *extra_headers, const char *body, int *status, char **err)
{
    SSL_CTX *ctx = NULL;
    SSL *ssl = NULL;
    int fd = -1;
    char *out = NULL;
    gw_buf req, resp;
    memset(&req, 0, sizeof(req));
    memset(&resp, 0, sizeof(resp));
    *err = NULL;

    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        tls_err(err, "TLS");
        goto out;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if ((dc->api_ca != NULL ? SSL_CTX_load_verify_locations(ctx, dc->api_ca, NULL)
                            : SSL_CTX_set_default_verify_paths(ctx)) != 1) {
        tls_err(err, "cannot load the CA");
        goto out;
    }
    if ((fd = connect_timeout(u, err)) < 0)
        goto out;
    ssl = SSL_new(ctx);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
        tls_err(err, "TLS");
        goto out;
    }
    unsigned char ip[16];
    int is_ip = inet_pton(AF_INET, u->host, ip) == 1 || inet_pton(AF_INET6, u->host, ip) == 1;
    if (is_ip)
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), u->host);
    else {
        SSL_set_tlsext_host_name(ssl, u->host);
        SSL_set1_host(ssl, u->host);
    }
    if (SSL_connect(ssl) != 1) {
        tls_err(err, "TLS handshake with the DataPass API failed");
        goto out;
    }
    gw_buf_printf(&req,
                  "%s %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: opale-gateway\r\n"
                  "Accept: application/json\r\nConnection: close\r\n%s",
                  method, target, u->host, extra_headers);
    if (body != NULL)
        gw_buf_printf(&req, "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
    else
        gw_buf_puts(&req, "\r\n");
    if (req.data == NULL || SSL_write(ssl, req.data, (int)req.len) != (int)req.len) {
        tls_err(err, "cannot send the request");
        goto out;
    }
    char chunk[16384];
    int n;
    while ((n = SSL_read(ssl, chunk, sizeof(chunk))) > 0) {
        gw_buf_append(&resp, chunk, (size_t)n);
        if (resp.len > MAX_RESPONSE) {
            if (asprintf(err, "answer larger than %u bytes", MAX_RESPONSE) < 0)
                *err = NULL;
            goto out;
        }
    }
    gw_buf_append(&resp, "", 1);
    if (resp.data == NULL || strncmp(resp.data, "HTTP/1.", 7) != 0 || resp.len < 13) {
        if (asprintf(err, "not an HTTP answer") < 0)
            *err = NULL;
        goto out;
    }
    *status = atoi(resp.data + 9);
    char *b = strstr(resp.data, "\r\n\r\n");
    if (b == NULL) {
        if (asprintf(err, "truncated HTTP answer") < 0)
            *err = NULL;
        goto out;
    }
    out = strdup(b + 4);
out:
    if (ssl != NULL) {
        SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    if (fd >= 0)
        close(fd);
    SSL_CTX_free(ctx);
    gw_buf_free(&req);
    gw_buf_free(&resp);
    ERR_clear_error();
    return out;
}

static void form_escape(gw_buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~')
            gw_buf_append(b, s, 1);
        else
            gw_buf_printf(b, "%%%02X", c);
    }
}

static char *get_token(const gw_dp_conf *dc, const url *u, char **err)
{
    gw_buf form;
    memset(&form, 0, sizeof(form));
    gw_buf_puts(&form, "grant_type=client_credentials&client_id=");
    form_escape(&form, dc->api_client_id);
    gw_buf_puts(&form, "&client_secret=");
    form_escape(&form, dc->api_secret);
    gw_buf_append(&form, "", 1);
    char target[1100];
    snprintf(target, sizeof(target), "%s/oauth/token", u->path);
    int status = 0;
    char *body = form.data != NULL
                     ? https_call(dc, u, "POST", target,
                                  "Content-Type: application/x-www-form-urlencoded\r\n", form.data,
                                  &status, err)
                     : NULL;
    OPENSSL_cleanse(form.data, form.len);
    gw_buf_free(&form);
    if (body == NULL)
        return NULL;
    json_error_t je;
    json_t *o = json_loads(body, 0, &je);
    free(body);
    const char *t = json_string_value(json_object_get(o, "access_token"));
    char *tok = status == 200 && t != NULL && t[0] && strlen(t) < 4096 && !strpbrk(t, "\r\n")
                    ? strdup(t)
                    : NULL;
    if (tok == NULL &&
        asprintf(err, "token endpoint answered %d without an access_token", status) < 0)
        *err = NULL;
    json_decref(o);
    return tok;
}

json_t *gw_dp_fetch_habilitations(const gw_dp_conf *dc, char **err)
{
    url u;
    *err = NULL;
    if (dc->api_url == NULL || parse_url(dc->api_url, &u) < 0) {
        if (asprintf(err, "datapass.api.url: not an https:// URL") < 0)
            *err = NULL;
        return NULL;
    }
    char *tok = get_token(dc, &u, err);
    if (tok == NULL)
        return NULL;
    char hdr[4200];
    snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s\r\n", tok);
    OPENSSL_cleanse(tok, strlen(tok));
    free(tok);
    json_t *all = json_array();
    for (int page = 0; all != NULL && page < GW_DP_SYNC_MAX_PAGES; page++) {
        char target[1200];
        snprintf(target, sizeof(target), "%s/habilitations?limit=%d&offset=%d", u.path,
                 GW_DP_SYNC_PAGE, page * GW_DP_SYNC_PAGE);
        int status = 0;
        char *body = https_call(dc, &u, "GET", target, hdr, NULL, &status, err);
        if (body == NULL)
            goto fail;
        json_error_t je;
        json_t *arr = json_loads(body, 0, &je);
        free(body);
        if (status != 200 || !json_is_array(arr)) {
            json_decref(arr);
            if (asprintf(err, "GET /habilitations answered %d%s", status,
                         status == 200 ? " without a JSON array" : "") < 0)
                *err = NULL;
            goto fail;
        }
        size_t n = json_array_size(arr);
        json_array_extend(all, arr);
        json_decref(arr);
        if (n < GW_DP_SYNC_PAGE) {
            OPENSSL_cleanse(hdr, sizeof(hdr));
            return all;
        }
    }
    if (asprintf(err, "more than %d pages of habilitations", GW_DP_SYNC_MAX_PAGES) < 0)
        *err = NULL;
fail:
    OPENSSL_cleanse(hdr, sizeof(hdr));
    json_decref(all);
    return NULL;
}

/* ---- applying what DataPass says ---- */

static void note(gw_dp_sync_report *rep, const char *hab, const char *action,
                 const gw_dp_applied *a)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "habilitation", hab, "action", action, "outcome",
                          gw_dp_outcome_name(a->outcome), "detail", a->detail);
    if (o != NULL && a->file[0])
        json_object_set_new(o, "file", json_string(a->file));
    json_array_append_new(rep->changes, o);
}

static void account(gw_dp_sync_report *rep, const char *hab, const char *action,
                    const gw_dp_applied *a, int revoke)
{
    if (a->outcome == GW_DP_OUT_FAILED) {
        rep->failed++;
        rep->differences++;
        note(rep, hab, action, a);
        return;
    }
    if (!a->written)
        return;
    rep->changed++;
    rep->differences++;
    rep->revoked += revoke;
    if (!a->pending)
        rep->reload = 1;
    note(rep, hab, action, a);
}

static int opale_definition(const char *d)
{
    return d != NULL && (strcmp(d, "api_opale_sandbox") == 0 || strcmp(d, "api_opale") == 0);
}

void gw_dp_sync_apply(const gw_dp_apply_ctx *c, json_t *habs, gw_dp_sync_report *rep)
{
    memset(rep, 0, sizeof(*rep));
    rep->changes = json_array();
    json_t *seen = json_object();
    size_t i;
    json_t *h;
    json_array_foreach(habs, i, h)
    {
        const char *def = json_string_value(json_object_get(h, "definition_id"));
        json_t *id = json_object_get(h, "id");
        if (!opale_definition(def) || !json_is_integer(id) || json_integer_value(id) < 1)
            continue;
        rep->fetched++;
        gw_dp_event ev;
        memset(&ev, 0, sizeof(ev));
        snprintf(ev.hab_id, sizeof(ev.hab_id), "H%lld", (long long)json_integer_value(id));
        snprintf(ev.definition, sizeof(ev.definition), "%s", def);
        json_object_set_new(seen, ev.hab_id, json_true());
        const char *state = json_string_value(json_object_get(h, "state"));
        int revoked = json_is_true(json_object_get(h, "revoked")) || state == NULL ||
                      strcmp(state, "active") != 0;
        snprintf(ev.name, sizeof(ev.name), "%s", revoked ? "sync_revoked" : "sync");
        ev.action = revoked ? GW_DP_REVOKE : GW_DP_UPDATE;
        ev.hab = h;
        gw_dp_applied a;
        gw_dp_apply(c, &ev, &a);
        account(rep, ev.hab_id, revoked ? "revoke" : "update", &a, revoked);
    }
    /* an OPALE policy whose habilitation DataPass no longer returns */
    for (i = 0; c->set != NULL && i < gw_policy_set_count(c->set); i++) {
        const gw_policy *p = gw_policy_set_at(c->set, i);
        if (!opale_definition(p->definition) || json_object_get(seen, p->id) != NULL)
            continue;
        gw_dp_event ev;
        memset(&ev, 0, sizeof(ev));
        snprintf(ev.hab_id, sizeof(ev.hab_id), "%s", p->id);
        snprintf(ev.definition, sizeof(ev.definition), "%s", p->definition);
        snprintf(ev.name, sizeof(ev.name), "sync_absent");
        ev.action = GW_DP_REVOKE;
        gw_dp_applied a;
        gw_dp_apply(c, &ev, &a);
        account(rep, ev.hab_id, "revoke (absent from DataPass)", &a, 1);
    }
    json_decref(seen);
}

/* ---- the periodic sync ---- */

struct gw_dp_syncer {
    gw_dp_conf dc; /* the api_* members, copied */
    const gw_conf *conf;
    gw_server *srv;
    struct event *ev; /* main thread: a fetch is ready */
    pthread_t thread;
    int started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stop;
    json_t *result; /* under lock: the last fetch */
    char *error;    /* under lock: or why it failed */
};

static void *sync_main(void *arg)
{
    gw_dp_syncer *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
        pthread_mutex_unlock(&s->lock);
        char *err = NULL;
        json_t *habs = gw_dp_fetch_habilitations(&s->dc, &err);
        pthread_mutex_lock(&s->lock);
        json_decref(s->result);
        free(s->error);
        s->result = habs;
        s->error = habs == NULL ? (err != NULL ? err : strdup("fetch failed")) : NULL;
        if (habs != NULL)
            free(err);
        if (!s->stop)
            event_active(s->ev, EV_READ, 0);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += s->dc.sync_interval_s;
        while (!s->stop && pthread_cond_timedwait(&s->cond, &s->lock, &ts) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static void on_fetched(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_dp_syncer *s = arg;
    pthread_mutex_lock(&s->lock);
    json_t *habs = s->result;
    char *error = s->error;
    s->result = NULL;
    s->error = NULL;
    pthread_mutex_unlock(&s->lock);
    gw_event_datapass e = {
        .outcome = habs != NULL ? "ok" : "failed", .changed = -1, .differences = -1};
    char detail[512];
    if (habs == NULL) {
        gw_dp_sync_count(0);
        e.high = 1;
        e.detail = error;
        gw_events_datapass(gw_server_events(s->srv), GW_EV_DATAPASS_SYNC, &e);
        free(error);
        return;
    }
    gw_policy_set *set = gw_server_policies(s->srv);
    gw_dp_apply_ctx c = {s->conf->policies_dir, set, gw_server_suspensions(s->srv), 0};
    gw_dp_sync_report rep;
    gw_dp_sync_apply(&c, habs, &rep);
    gw_policy_set_unref(set);
    if (rep.reload) {
        gw_errlist errs;
        memset(&errs, 0, sizeof(errs));
        gw_server_reload_policies(s->srv, "datapass sync", 0, NULL, &errs);
        gw_errlist_clear(&errs);
    }
    char *changes = json_dumps(rep.changes, JSON_COMPACT);
    snprintf(detail, sizeof(detail), "%ld habilitations read, %ld revoked, %ld failed: %s",
             rep.fetched, rep.revoked, rep.failed, changes != NULL ? changes : "");
    free(changes);
    e.detail = detail;
    e.changed = rep.changed;
    e.differences = rep.differences;
    e.high = rep.revoked > 0 || rep.failed > 0;
    gw_dp_sync_count(rep.failed == 0);
    if (rep.failed > 0)
        e.outcome = "partial";
    gw_events_datapass(gw_server_events(s->srv), GW_EV_DATAPASS_SYNC, &e);
    json_decref(rep.changes);
    json_decref(habs);
    free(error);
}

gw_dp_syncer *gw_dp_syncer_start(struct event_base *base, const gw_conf *conf, const gw_dp_conf *dc,
                                 gw_server *srv, char **err)
{
    gw_dp_syncer *s = calloc(1, sizeof(*s));
    *err = NULL;
    if (s == NULL)
        goto oom;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    s->conf = conf;
    s->srv = srv;
    s->dc.api = 1;
    s->dc.sync_interval_s = dc->sync_interval_s;
    s->dc.api_url = strdup(dc->api_url);
    s->dc.api_client_id = strdup(dc->api_client_id);
    s->dc.api_secret = strdup(dc->api_secret);
    s->dc.api_ca = dc->api_ca != NULL ? strdup(dc->api_ca) : NULL;
    if (!s->dc.api_url || !s->dc.api_client_id || !s->dc.api_secret ||
        (dc->api_ca && !s->dc.api_ca))
        goto oom;
    s->ev = event_new(base, -1, 0, on_fetched, s);
    if (s->ev == NULL)
        goto oom;
    if (pthread_create(&s->thread, NULL, sync_main, s) != 0) {
        if (asprintf(err, "datapass.api: cannot start the sync thread") < 0)
            *err = NULL;
        goto fail;
    }
    s->started = 1;
    return s;
oom:
    if (asprintf(err, "datapass: out of memory") < 0)
        *err = NULL;
fail:
    gw_dp_syncer_stop(s);
    return NULL;
}

void gw_dp_syncer_stop(gw_dp_syncer *s)
{
    if (s == NULL)
        return;
    if (s->started) {
        pthread_mutex_lock(&s->lock);
        s->stop = 1;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
        /* a fetch in progress ends within its timeouts */
        pthread_join(s->thread, NULL);
    }
    if (s->ev != NULL)
        event_free(s->ev);
    json_decref(s->result);
    free(s->error);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    gw_dp_conf_clear(&s->dc);
    free(s);
}
