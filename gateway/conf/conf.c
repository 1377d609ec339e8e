/*
 * Gateway config loader. Every object is checked against its list of known
 * keys, every value against its type and bounds, and every error is collected
 * (not just the first) as "FILE: JSON.PATH: MESSAGE". docs/configuration.md
 * lists every message form; keep the two in step.
 */
#include "conf/conf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "lib/jsonv.h"
#include "conf/revocation.h"
#include "lib/file.h"
#include "lib/path.h"
#include "lib/util.h"

#define CONF_MAX_FILE (4u << 20) /* a config file larger than this is refused */
#define TOKEN_PROBE 4096         /* bytes of the admin token file looked at */
#define NAME_RULE "[A-Za-z0-9_.-]{1,64}"
#define TOKEN_MAX 128 /* route names and scopes */

typedef struct ctx {
    gw_jsonv v;      /* messages name the file as given to gw_conf_load() */
    const char *dir; /* absolute directory of the file */
} ctx;

const char *gw_env_name(gw_env env)
{
    switch (env) {
    case GW_ENV_SANDBOX:
        return "sandbox";
    case GW_ENV_PRODUCTION:
        return "production";
    }
    return "unknown";
}

/* ---- paths on disk ---- */

/* Absolute, canonical directory of the config file <path>. A directory that
 * does not exist (gw_conf_parse() of a virtual file) is made absolute
 * against the working directory without resolving links. */
static char *conf_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *d = slash == NULL   ? strdup(".")
              : slash == path ? strdup("/")
                              : strndup(path, (size_t)(slash - path));
    if (d == NULL)
        return NULL;
    char *real = realpath(d, NULL);
    if (real != NULL) {
        free(d);
        return real;
    }
    char *abs = NULL;
    if (d[0] == '/') {
        abs = d;
        d = NULL;
    } else {
        char *cwd = getcwd(NULL, 0);
        abs = gw_path_resolve(cwd != NULL ? cwd : "/", d);
        free(cwd);
    }
    free(d);
    return abs;
}

/* 0 when <abs> is a readable regular file, else -1 with a message. */
static int check_file(ctx *x, const char *p, const char *abs)
{
    char cb[512];
    struct stat st;
    const char *why = NULL;

    int fd = open(abs, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        why = strerror(errno);
    } else {
        if (fstat(fd, &st) < 0)
            why = strerror(errno);
        else if (S_ISDIR(st.st_mode))
            why = strerror(EISDIR);
        else if (!S_ISREG(st.st_mode))
            why = "not a regular file";
        close(fd);
    }
    if (why == NULL)
        return 0;
    gw_jsonv_err(&x->v, p, "cannot read \"%s\": %s", gw_jsonv_clean(cb, sizeof(cb), abs, 400), why);
    return -1;
}

static int check_dir(ctx *x, const char *p, const char *abs)
{
    char cb[512];
    struct stat st;
    const char *why = NULL;

    if (stat(abs, &st) < 0)
        why = strerror(errno);
    else if (!S_ISDIR(st.st_mode))
        why = strerror(ENOTDIR);
    if (why == NULL)
        return 0;
    gw_jsonv_err(&x->v, p, "cannot use directory \"%s\": %s",
                 gw_jsonv_clean(cb, sizeof(cb), abs, 400), why);
    return -1;
}

/* ---- typed members ---- */

/* Optional integers into their field, which already holds the default. */
static void opt_uint(ctx *x, json_t *obj, const char *path, const char *key, long long min,
                     long long max, unsigned *dst)
{
    long long v;
    if (gw_jsonv_int(&x->v, obj, path, key, 0, min, max, &v) == GW_JSONV_SET)
        *dst = (unsigned)v;
}

static void opt_size(ctx *x, json_t *obj, const char *path, const char *key, long long min,
                     long long max, size_t *dst)
{
    long long v;
    if (gw_jsonv_int(&x->v, obj, path, key, 0, min, max, &v) == GW_JSONV_SET)
        *dst = (size_t)v;
}

static int get_port(ctx *x, json_t *obj, const char *path, const char *key, uint16_t *out)
{
    long long v;
    int r = gw_jsonv_int(&x->v, obj, path, key, 1, 1, 65535, &v);
    if (r == GW_JSONV_SET)
        *out = (uint16_t)v;
    return r;
}

/* A file path: a non-empty string, made absolute, naming a readable regular
 * file. Stored in <*out> only when all holds. */
static int get_file(ctx *x, json_t *obj, const char *path, const char *key, int required,
                    char **out)
{
    char p[GW_JSONV_PATH];
    const char *s;
    int r = gw_jsonv_str(&x->v, obj, path, key, required, &s);
    if (r != GW_JSONV_SET)
        return r;
    gw_jsonv_path_key(p, path, key);
    if (s[0] == '\0') {
        gw_jsonv_err(&x->v, p, "must not be empty");
        return GW_JSONV_BAD;
    }
    char *abs = gw_path_resolve(x->dir, s);
    if (abs == NULL) {
        gw_jsonv_err(&x->v, p, "out of memory");
        return GW_JSONV_BAD;
    }
    if (check_file(x, p, abs) < 0) {
        free(abs);
        return GW_JSONV_BAD;
    }
    *out = abs;
    return GW_JSONV_SET;
}

/* ---- value rules ---- */

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

/* RFC 6749 scope-token characters (printable ASCII but space, '"', '\'),
 * 1..TOKEN_MAX bytes. Used for scopes and route names. */
static int valid_token(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > TOKEN_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || c == '"' || c == '\\')
            return 0;
    }
    return 1;
}

#define TOKEN_RULE "must be 1 to 128 printable ASCII characters, without space, '\"' or '\\'"

/* A numeric address as family + 16 bytes, for comparisons. */
typedef struct addr {
    int family; /* 0 when not a numeric address */
    unsigned char b[16];
} addr;

static addr parse_addr(const char *s)
{
    addr a;
    memset(&a, 0, sizeof(a));
    if (inet_pton(AF_INET, s, a.b) == 1)
        a.family = AF_INET;
    else if (inet_pton(AF_INET6, s, a.b) == 1)
        a.family = AF_INET6;
    return a;
}

static int valid_addr(const char *s)
{
    return parse_addr(s).family != 0;
}

/* The string <key> of <o> at <p> (a missing one an error when <required>),
 * copied to <*out> when <ok> accepts it, else "<p>.<key>: <rule>". */
static void str_checked(ctx *x, json_t *o, const char *p, const char *key, int required,
                        int (*ok)(const char *), const char *rule, char **out)
{
    char pk[GW_JSONV_PATH];
    const char *s;
    if (gw_jsonv_str(&x->v, o, p, key, required, &s) != GW_JSONV_SET)
        return;
    if (ok(s)) {
        *out = gw_jsonv_strdup(&x->v, "$", s);
    } else {
        gw_jsonv_path_key(pk, p, key);
        gw_jsonv_err(&x->v, pk, "%s", rule);
    }
}

static int addr_eq(const addr *a, const addr *b)
{
    return a->family == b->family && memcmp(a->b, b->b, sizeof(a->b)) == 0;
}

static int addr_is_loopback(const addr *a)
{
    static const unsigned char v6lo[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    if (a->family == AF_INET)
        return a->b[0] == 127;
    return a->family == AF_INET6 && memcmp(a->b, v6lo, 16) == 0;
}

/* "IPv4:port" or "[IPv6]:port". Returns 0, -1 on form, -2 on port range. */
static int parse_server(const char *s, char **host, uint16_t *port)
{
    const char *h, *hend, *pp;
    if (s[0] == '[') {
        h = s + 1;
        hend = strchr(h, ']');
        if (hend == NULL || hend[1] != ':')
            return -1;
        pp = hend + 2;
    } else {
        h = s;
        hend = strchr(s, ':');
        if (hend == NULL || strchr(hend + 1, ':') != NULL)
            return -1;
        pp = hend + 1;
    }
    size_t hlen = (size_t)(hend - h);
    char hb[INET6_ADDRSTRLEN + 1];
    unsigned char bin[16];
    if (hlen == 0 || hlen >= sizeof(hb))
        return -1;
    memcpy(hb, h, hlen);
    hb[hlen] = '\0';
    if (inet_pton(s[0] == '[' ? AF_INET6 : AF_INET, hb, bin) != 1)
        return -1;
    size_t plen = strlen(pp);
    if (plen == 0 || plen > 5 || strspn(pp, "0123456789") != plen)
        return -1;
    long v = strtol(pp, NULL, 10);
    if (v < 1 || v > 65535)
        return -2;
    *host = strdup(hb);
    *port = (uint16_t)v;
    return *host == NULL ? -3 : 0;
}

/* ---- sections ---- */

static void parse_certpair(ctx *x, json_t *v, const char *p, gw_conf_certpair *c)
{
    static const char *const keys[] = {"cert", "key", NULL};
    if (!json_is_object(v)) {
        gw_jsonv_err(&x->v, p, "must be an object");
        return;
    }
    gw_jsonv_keys(&x->v, v, p, keys);
    get_file(x, v, p, "cert", 1, &c->cert);
    get_file(x, v, p, "key", 1, &c->key);
}

static void parse_listener_tls(ctx *x, json_t *t, const char *p, gw_conf_listener *l)
{
    static const char *const keys[] = {"certificates", "client_ca",       "crl",
                                       "client_auth",  "session_tickets", "crl_refresh",
                                       "ocsp",         "stapling",        NULL};
    char pa[GW_JSONV_PATH], pe[GW_JSONV_PATH];
    const char *s;

    gw_jsonv_keys(&x->v, t, p, keys);
    json_t *certs = gw_jsonv_array(&x->v, t, p, "certificates", 1, 1, 4);
    if (certs != NULL && json_array_size(certs) > 0) {
        l->ncerts = json_array_size(certs);
        l->certs = gw_jsonv_calloc(&x->v, "$", l->ncerts, sizeof(*l->certs));
        if (l->certs == NULL) {
            l->ncerts = 0;
        } else {
            gw_jsonv_path_key(pa, p, "certificates");
            for (size_t i = 0; i < l->ncerts; i++) {
                gw_jsonv_path_idx(pe, pa, i);
                parse_certpair(x, json_array_get(certs, i), pe, &l->certs[i]);
            }
        }
    }

    l->client_auth = GW_CLIENT_AUTH_REQUIRED;
    int auth_ok = 1;
    if (gw_jsonv_str(&x->v, t, p, "client_auth", 0, &s) == GW_JSONV_SET) {
        if (strcmp(s, "required") == 0) {
            l->client_auth = GW_CLIENT_AUTH_REQUIRED;
        } else if (strcmp(s, "none") == 0) {
            l->client_auth = GW_CLIENT_AUTH_NONE;
        } else {
            gw_jsonv_path_key(pa, p, "client_auth");
            gw_jsonv_err(&x->v, pa, "must be \"required\" or \"none\"");
            auth_ok = 0;
        }
    }
    if (json_object_get(t, "client_ca") == NULL) {
        if (auth_ok && l->client_auth == GW_CLIENT_AUTH_REQUIRED)
            gw_jsonv_err(&x->v, p,
                         "missing key \"client_ca\" (required when client_auth is \"required\")");
    } else {
        get_file(x, t, p, "client_ca", 0, &l->client_ca);
    }
    get_file(x, t, p, "crl", 0, &l->crl);
    gw_conf_revocation_parse(&x->v, x->dir, t, p, l);
    l->session_tickets = 1;
    gw_jsonv_bool(&x->v, t, p, "session_tickets", GW_JSONV_OPTIONAL, &l->session_tickets);
}

/* listeners[].http2: optional; every key optional (the defaults are the
 * safe bounds of docs/security.md, "HTTP/2"). */
static void parse_listener_http2(ctx *x, json_t *v, const char *p, gw_conf_http2 *h)
{
    static const char *const keys[] = {"enabled",
                                       "max_concurrent_streams",
                                       "max_header_list_bytes",
                                       "initial_window_bytes",
                                       "max_resets_per_s",
                                       "max_control_frames_per_s",
                                       "max_empty_frames_per_s",
                                       "max_continuation_frames",
                                       "stall_ms",
                                       NULL};
    *h = (gw_conf_http2){
        .enabled = 1,
        .max_concurrent_streams = 100,
        .max_header_list_bytes = 32768,
        .initial_window_bytes = 65535,
        .max_resets_per_s = 100,
        .max_control_frames_per_s = 100,
        .max_empty_frames_per_s = 100,
        .max_continuation_frames = 16,
        .stall_ms = 10000,
    };
    json_t *o = gw_jsonv_obj(&x->v, v, p, "http2", 0);
    if (o == NULL)
        return;
    char pk[GW_JSONV_PATH];
    gw_jsonv_path_key(pk, p, "http2");
    gw_jsonv_keys(&x->v, o, pk, keys);
    gw_jsonv_bool(&x->v, o, pk, "enabled", GW_JSONV_OPTIONAL, &h->enabled);
    opt_uint(x, o, pk, "max_concurrent_streams", 1, 10000, &h->max_concurrent_streams);
    opt_uint(x, o, pk, "max_header_list_bytes", 1024, 1048576, &h->max_header_list_bytes);
    opt_uint(x, o, pk, "initial_window_bytes", 1024, 2147483647, &h->initial_window_bytes);
    opt_uint(x, o, pk, "max_resets_per_s", 1, 100000, &h->max_resets_per_s);
    opt_uint(x, o, pk, "max_control_frames_per_s", 1, 100000, &h->max_control_frames_per_s);
    opt_uint(x, o, pk, "max_empty_frames_per_s", 1, 100000, &h->max_empty_frames_per_s);
    opt_uint(x, o, pk, "max_continuation_frames", 1, 1000, &h->max_continuation_frames);
    opt_uint(x, o, pk, "stall_ms", 100, 3600000, &h->stall_ms);
}

static void parse_listener(ctx *x, json_t *v, const char *p, gw_conf_listener *l)
{
    static const char *const keys[] = {"name",   "address",
                                       "port",   "environment",
                                       "tls",    "proxy_protocol",
                                       "access", "max_handshakes_per_source",
                                       "http2",  NULL};
    char pk[GW_JSONV_PATH];
    const char *s;

    if (!json_is_object(v)) {
        gw_jsonv_err(&x->v, p, "must be an object");
        return;
    }
    gw_jsonv_keys(&x->v, v, p, keys);
    str_checked(x, v, p, "name", 1, valid_name, "must match " NAME_RULE, &l->name);
    str_checked(x, v, p, "address", 1, valid_addr, "must be a numeric IPv4 or IPv6 address",
                &l->address);
    get_port(x, v, p, "port", &l->port);
    if (gw_jsonv_str(&x->v, v, p, "environment", 1, &s) == GW_JSONV_SET) {
        if (strcmp(s, "sandbox") == 0) {
            l->env = GW_ENV_SANDBOX;
        } else if (strcmp(s, "production") == 0) {
            l->env = GW_ENV_PRODUCTION;
        } else {
            gw_jsonv_path_key(pk, p, "environment");
            gw_jsonv_err(&x->v, pk, "must be \"sandbox\" or \"production\"");
        }
    }
    json_t *t = gw_jsonv_obj(&x->v, v, p, "tls", 1);
    if (t != NULL) {
        gw_jsonv_path_key(pk, p, "tls");
        parse_listener_tls(x, t, pk, l);
    }
    gw_jsonv_bool(&x->v, v, p, "proxy_protocol", GW_JSONV_OPTIONAL, &l->proxy_protocol);
    l->max_handshakes_per_source = 32;
    opt_uint(x, v, p, "max_handshakes_per_source", 0, 1000000, &l->max_handshakes_per_source);
    parse_listener_http2(x, v, p, &l->http2);
    /* "access": "off" is the bench's pass-through (S1 of bench/README.md):
     * only the route stage runs. Refused unless the listener is a sandbox
     * one without client certificates, so that it cannot switch off the
     * controls of a listener that serves partners. */
    if (gw_jsonv_str(&x->v, v, p, "access", 0, &s) == GW_JSONV_SET) {
        gw_jsonv_path_key(pk, p, "access");
        if (strcmp(s, "enforce") == 0) {
            l->access_off = 0;
        } else if (strcmp(s, "off") == 0) {
            l->access_off = 1;
            if (l->env != GW_ENV_SANDBOX)
                gw_jsonv_err(&x->v, pk, "\"off\" is only allowed on a sandbox listener");
            else if (l->client_auth != GW_CLIENT_AUTH_NONE)
                gw_jsonv_err(&x->v, pk, "\"off\" requires tls.client_auth \"none\" (bench only)");
        } else {
            gw_jsonv_err(&x->v, pk, "must be \"enforce\" or \"off\"");
        }
    }
}

static void parse_listeners(ctx *x, json_t *root, gw_conf *c)
{
    char pe[GW_JSONV_PATH];
    json_t *a = gw_jsonv_array(&x->v, root, "$", "listeners", 1, 1, 16);
    if (a == NULL || json_array_size(a) == 0)
        return;
    c->listeners = gw_jsonv_calloc(&x->v, "$", json_array_size(a), sizeof(*c->listeners));
    if (c->listeners == NULL)
        return;
    c->nlisteners = json_array_size(a);
    for (size_t i = 0; i < c->nlisteners; i++) {
        gw_jsonv_path_idx(pe, "listeners", i);
        parse_listener(x, json_array_get(a, i), pe, &c->listeners[i]);
    }
    /* Uniqueness, among the entries whose value was valid. */
    for (size_t i = 0; i < c->nlisteners; i++) {
        const gw_conf_listener *l = &c->listeners[i];
        for (size_t j = 0; l->name != NULL && j < i; j++) {
            if (c->listeners[j].name != NULL && strcmp(c->listeners[j].name, l->name) == 0) {
                snprintf(pe, sizeof(pe), "listeners[%zu].name", i);
                gw_jsonv_err(&x->v, pe, "duplicate of listeners[%zu].name", j);
                break;
            }
        }
        if (l->address == NULL || l->port == 0)
            continue;
        addr ai = parse_addr(l->address);
        for (size_t j = 0; j < i; j++) {
            const gw_conf_listener *o = &c->listeners[j];
            if (o->address == NULL || o->port != l->port)
                continue;
            addr aj = parse_addr(o->address);
            if (addr_eq(&ai, &aj)) {
                gw_jsonv_path_idx(pe, "listeners", i);
                gw_jsonv_err(&x->v, pe, "address and port already used by listeners[%zu]", j);
                break;
            }
        }
    }
}

static void parse_upstream_tls(ctx *x, json_t *t, const char *p, gw_conf_upstream *u)
{
    static const char *const keys[] = {"ca", "cert", "key", "server_name", NULL};
    char pk[GW_JSONV_PATH];
    const char *s;

    gw_jsonv_keys(&x->v, t, p, keys);
    u->tls = 1;
    get_file(x, t, p, "ca", 1, &u->tls_ca);
    int has_cert = json_object_get(t, "cert") != NULL;
    int has_key = json_object_get(t, "key") != NULL;
    if (has_cert && !has_key)
        gw_jsonv_err(&x->v, p, "missing key \"key\" (required with \"cert\")");
    if (has_key && !has_cert)
        gw_jsonv_err(&x->v, p, "missing key \"cert\" (required with \"key\")");
    get_file(x, t, p, "cert", 0, &u->tls_cert);
    get_file(x, t, p, "key", 0, &u->tls_key);
    if (gw_jsonv_str(&x->v, t, p, "server_name", 0, &s) == GW_JSONV_SET) {
        size_t n = strlen(s);
        int ok = n > 0 && n <= 253 &&
                 strspn(s, "abcdefghijklmnopqrstuvwxyz"
                           "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == n;
        if (ok) {
            u->tls_server_name = gw_jsonv_strdup(&x->v, "$", s);
        } else {
            gw_jsonv_path_key(pk, p, "server_name");
            gw_jsonv_err(&x->v, pk, "must be a host name");
        }
    }
}

static void parse_upstream(ctx *x, json_t *v, const char *p, gw_conf_upstream *u)
{
    static const char *const keys[] = {"name",
                                       "servers",
                                       "tls",
                                       "pool_size",
                                       "max_connections",
                                       "queue_timeout_ms",
                                       "connect_timeout_ms",
                                       "response_timeout_ms",
                                       "max_response_bytes",
                                       NULL};
    char pk[GW_JSONV_PATH], pe[GW_JSONV_PATH];

    u->pool_size = 32;
    u->queue_timeout_ms = 2000;
    u->connect_timeout_ms = 2000;
    u->response_timeout_ms = 10000;
    u->max_response_bytes = 8u << 20;
    if (!json_is_object(v)) {
        gw_jsonv_err(&x->v, p, "must be an object");
        return;
    }
    gw_jsonv_keys(&x->v, v, p, keys);
    str_checked(x, v, p, "name", 1, valid_name, "must match " NAME_RULE, &u->name);
    json_t *a = gw_jsonv_array(&x->v, v, p, "servers", 1, 1, 16);
    if (a != NULL && json_array_size(a) > 0) {
        u->servers = gw_jsonv_calloc(&x->v, "$", json_array_size(a), sizeof(*u->servers));
        u->nservers = u->servers != NULL ? json_array_size(a) : 0;
        gw_jsonv_path_key(pk, p, "servers");
        for (size_t i = 0; i < u->nservers; i++) {
            json_t *e = json_array_get(a, i);
            gw_jsonv_path_idx(pe, pk, i);
            if (!json_is_string(e)) {
                gw_jsonv_err(&x->v, pe, "must be a string");
                continue;
            }
            int r = parse_server(json_string_value(e), &u->servers[i].host, &u->servers[i].port);
            if (r == -1)
                gw_jsonv_err(&x->v, pe, "must be \"IPv4:port\" or \"[IPv6]:port\"");
            else if (r == -2)
                gw_jsonv_err(&x->v, pe, "port must be between 1 and 65535");
            else if (r == -3)
                gw_jsonv_err(&x->v, pe, "out of memory");
            if (r != 0)
                continue;
            addr ai = parse_addr(u->servers[i].host);
            for (size_t j = 0; j < i; j++) {
                if (u->servers[j].host == NULL || u->servers[j].port != u->servers[i].port)
                    continue;
                addr aj = parse_addr(u->servers[j].host);
                if (addr_eq(&ai, &aj)) {
                    gw_jsonv_err(&x->v, pe, "duplicate of %s[%zu]", pk, j);
                    break;
                }
            }
        }
    }
    json_t *t = gw_jsonv_obj(&x->v, v, p, "tls", 0);
    if (t != NULL) {
        gw_jsonv_path_key(pk, p, "tls");
        parse_upstream_tls(x, t, pk, u);
    }
    opt_uint(x, v, p, "pool_size", 0, 4096, &u->pool_size);
    opt_uint(x, v, p, "max_connections", 0, 100000, &u->max_connections);
    if (u->max_connections > 0 && u->max_connections < u->pool_size) {
        gw_jsonv_path_key(pk, p, "max_connections");
        gw_jsonv_err(&x->v, pk, "must be 0 (no limit) or at least pool_size (%u)", u->pool_size);
    }
    opt_uint(x, v, p, "queue_timeout_ms", 1, 600000, &u->queue_timeout_ms);
    opt_uint(x, v, p, "connect_timeout_ms", 1, 600000, &u->connect_timeout_ms);
    opt_uint(x, v, p, "response_timeout_ms", 1, 600000, &u->response_timeout_ms);
    opt_size(x, v, p, "max_response_bytes", 1, 1073741824, &u->max_response_bytes);
}

/* Returns 1 when every upstream name is valid, so that route references can
 * be checked without cascading errors. */
static int parse_upstreams(ctx *x, json_t *root, gw_conf *c)
{
    char pe[GW_JSONV_PATH];
    int names_ok = 1;
    json_t *a = gw_jsonv_array(&x->v, root, "$", "upstreams", 1, 1, 32);
    if (a == NULL)
        return 0;
    if (json_array_size(a) == 0)
        return 1;
    c->upstreams = gw_jsonv_calloc(&x->v, "$", json_array_size(a), sizeof(*c->upstreams));
    if (c->upstreams == NULL)
        return 0;
    c->nupstreams = json_array_size(a);
    for (size_t i = 0; i < c->nupstreams; i++) {
        gw_jsonv_path_idx(pe, "upstreams", i);
        parse_upstream(x, json_array_get(a, i), pe, &c->upstreams[i]);
        if (c->upstreams[i].name == NULL) {
            names_ok = 0;
            continue;
        }
        for (size_t j = 0; j < i; j++) {
            if (c->upstreams[j].name != NULL &&
                strcmp(c->upstreams[j].name, c->upstreams[i].name) == 0) {
                snprintf(pe, sizeof(pe), "upstreams[%zu].name", i);
                gw_jsonv_err(&x->v, pe, "duplicate of upstreams[%zu].name", j);
                break;
            }
        }
    }
    return names_ok;
}

/* ---- a route's query parameters and forwarded headers ---- */

static int valid_query_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > GW_QUERY_MAX_NAME || s[0] < 'a' || s[0] > 'z')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

/* "query": [{"name": "annee", "syntax": "year", "required": true}, ...], and
 * "year_bound": true, which declares annee (year, required) unless "query"
 * already does. */
static void parse_route_query(ctx *x, json_t *v, const char *p, gw_route *r)
{
    static const char *const keys[] = {"name", "syntax", "required", NULL};
    char pe[GW_JSONV_PATH], pk[GW_JSONV_PATH], cb[80];
    json_t *a = gw_jsonv_array(&x->v, v, p, "query", 0, 0, GW_QUERY_MAX_PARAMS);
    size_t n = a != NULL ? json_array_size(a) : 0;
    gw_jsonv_path_key(pk, p, "query");
    for (size_t i = 0; i < n && r->nquery < GW_QUERY_MAX_PARAMS; i++) {
        json_t *e = json_array_get(a, i);
        gw_jsonv_path_idx(pe, pk, i);
        if (!json_is_object(e)) {
            gw_jsonv_err(&x->v, pe, "must be an object");
            continue;
        }
        gw_jsonv_keys(&x->v, e, pe, keys);
        gw_query_decl d = {.syntax = GW_QSYN_TOKEN};
        const char *s;
        int ok = 1;
        if (gw_jsonv_str(&x->v, e, pe, "name", 1, &s) == GW_JSONV_SET) {
            char pn[GW_JSONV_PATH];
            gw_jsonv_path_key(pn, pe, "name");
            if (!valid_query_name(s)) {
                gw_jsonv_err(&x->v, pn,
                             "must be 1 to %d characters of a-z, 0-9, '_', starting with a letter",
                             GW_QUERY_MAX_NAME);
                ok = 0;
            } else {
                for (size_t k = 0; k < r->nquery; k++)
                    if (strcmp(r->query[k].name, s) == 0) {
                        gw_jsonv_err(&x->v, pn, "duplicate parameter \"%s\"",
                                     gw_jsonv_clean(cb, sizeof(cb), s, 64));
                        ok = 0;
                    }
                snprintf(d.name, sizeof(d.name), "%s", s);
            }
        } else {
            ok = 0;
        }
        if (gw_jsonv_str(&x->v, e, pe, "syntax", 1, &s) == GW_JSONV_SET) {
            if (gw_query_syntax_parse(s, &d.syntax) != 0) {
                char ps[GW_JSONV_PATH];
                gw_jsonv_path_key(ps, pe, "syntax");
                gw_jsonv_err(&x->v, ps, "must be one of year, digits, token");
                ok = 0;
            }
        } else {
            ok = 0;
        }
        gw_jsonv_bool(&x->v, e, pe, "required", GW_JSONV_OPTIONAL, &d.required);
        /* annee bounds the data: the rights stage checks it against the
         * granted years, which needs the year syntax on every route */
        if (ok && strcmp(d.name, "annee") == 0 && d.syntax != GW_QSYN_YEAR) {
            char ps[GW_JSONV_PATH];
            gw_jsonv_path_key(ps, pe, "syntax");
            gw_jsonv_err(
                &x->v, ps,
                "annee must be a year (the rights stage checks it against the granted years)");
            ok = 0;
        }
        if (ok)
            r->query[r->nquery++] = d;
    }
    if (!r->year_bound)
        return;
    for (size_t k = 0; k < r->nquery; k++) {
        if (strcmp(r->query[k].name, "annee") == 0) {
            if (r->query[k].syntax != GW_QSYN_YEAR || !r->query[k].required)
                gw_jsonv_err(&x->v, pk, "annee must be a required year on a year_bound route");
            return;
        }
    }
    if (r->nquery == GW_QUERY_MAX_PARAMS) {
        gw_jsonv_err(&x->v, pk, "no room for annee (year_bound): at most %d parameters",
                     GW_QUERY_MAX_PARAMS);
        return;
    }
    gw_query_decl d = {.syntax = GW_QSYN_YEAR, .required = 1};
    snprintf(d.name, sizeof(d.name), "annee");
    r->query[r->nquery++] = d;
}

/* Request headers that a route can never forward: the gateway sets them, or
 * they are hop-by-hop (gateway/lib/forward.c strips them all). */
static const char *const reserved_headers[] = {"authorization",
                                               "host",
                                               "content-length",
                                               "transfer-encoding",
                                               "connection",
                                               "keep-alive",
                                               "proxy-connection",
                                               "te",
                                               "trailer",
                                               "upgrade",
                                               "expect",
                                               "forwarded",
                                               "x-real-ip",
                                               "x-request-id",
                                               "x-correlation-id",
                                               "x-jwt-assertion",
                                               "x-consumer-id",
                                               "x-habilitation-id",
                                               "x-opale-env",
                                               "x-forwarded-for",
                                               "x-forwarded-proto",
                                               "x-forwarded-host",
                                               "x-forwarded-port",
                                               NULL};

/* "headers": ["X-Foo", ...]: header names forwarded on this route besides the
 * default allowlist (docs/configuration.md). */
static void parse_route_headers(ctx *x, json_t *v, const char *p, gw_route *r)
{
    char pe[GW_JSONV_PATH], pk[GW_JSONV_PATH];
    json_t *a = gw_jsonv_array(&x->v, v, p, "headers", 0, 0, GW_ROUTE_MAX_HEADERS);
    size_t n = a != NULL ? json_array_size(a) : 0;
    gw_jsonv_path_key(pk, p, "headers");
    for (size_t i = 0; i < n && r->nheaders < GW_ROUTE_MAX_HEADERS; i++) {
        json_t *e = json_array_get(a, i);
        gw_jsonv_path_idx(pe, pk, i);
        const char *s = json_is_string(e) ? json_string_value(e) : NULL;
        size_t len = s != NULL ? strlen(s) : 0;
        int ok = len > 0 && len <= 64;
        for (size_t k = 0; ok && k < len; k++)
            ok = (s[k] >= 'a' && s[k] <= 'z') || (s[k] >= 'A' && s[k] <= 'Z') ||
                 (s[k] >= '0' && s[k] <= '9') || s[k] == '-';
        if (!ok) {
            gw_jsonv_err(&x->v, pe,
                         "must be a header name of 1 to 64 characters of A-Z, a-z, 0-9, '-'");
            continue;
        }
        int bad = strncasecmp(s, "proxy-", 6) == 0;
        for (size_t k = 0; !bad && reserved_headers[k] != NULL; k++)
            bad = strcasecmp(s, reserved_headers[k]) == 0;
        if (bad) {
            gw_jsonv_err(&x->v, pe, "set or removed by the gateway, cannot be forwarded");
            continue;
        }
        r->headers[r->nheaders] = gw_jsonv_strdup(&x->v, "$", s);
        if (r->headers[r->nheaders] != NULL)
            r->nheaders++;
    }
}

static const char *const methods[] = {"GET",    "HEAD",  "POST",    "PUT",
                                      "DELETE", "PATCH", "OPTIONS", NULL};

static void parse_route(ctx *x, json_t *v, const char *p, gw_route *r, const gw_conf *c,
                        int upstreams_ok)
{
    static const char *const keys[] = {"name",
                                       "method",
                                       "path",
                                       "upstream",
                                       "scope",
                                       "year_bound",
                                       "max_response_bytes",
                                       "query",
                                       "headers",
                                       "max_body_bytes",
                                       "quota",
                                       NULL};
    char pk[GW_JSONV_PATH], cb[80];
    const char *s;

    if (!json_is_object(v)) {
        gw_jsonv_err(&x->v, p, "must be an object");
        return;
    }
    gw_jsonv_keys(&x->v, v, p, keys);
    str_checked(x, v, p, "name", 0, valid_token, TOKEN_RULE, &r->name);
    if (gw_jsonv_str(&x->v, v, p, "method", 1, &s) == GW_JSONV_SET) {
        size_t i = 0;
        while (methods[i] != NULL && strcmp(methods[i], s) != 0)
            i++;
        if (methods[i] != NULL) {
            r->method = gw_jsonv_strdup(&x->v, "$", s);
        } else {
            gw_jsonv_path_key(pk, p, "method");
            gw_jsonv_err(&x->v, pk, "must be one of GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS");
        }
    }
    if (gw_jsonv_str(&x->v, v, p, "path", 1, &s) == GW_JSONV_SET) {
        const char *why = gw_route_compile(r, s);
        if (why == NULL) {
            r->path = gw_jsonv_strdup(&x->v, "$", s);
            if (r->name == NULL && json_object_get(v, "name") == NULL)
                r->name = gw_jsonv_strdup(&x->v, "$", s);
        } else {
            gw_jsonv_path_key(pk, p, "path");
            gw_jsonv_err(&x->v, pk, "%s", why);
        }
    }
    if (gw_jsonv_str(&x->v, v, p, "upstream", 1, &s) == GW_JSONV_SET) {
        const gw_conf_upstream *u = gw_conf_find_upstream(c, s);
        if (u != NULL) {
            r->upstream = gw_jsonv_strdup(&x->v, "$", s);
            r->upstream_idx = (size_t)(u - c->upstreams);
        } else if (upstreams_ok) {
            gw_jsonv_path_key(pk, p, "upstream");
            gw_jsonv_err(&x->v, pk, "unknown upstream \"%s\"",
                         gw_jsonv_clean(cb, sizeof(cb), s, 64));
        }
    }
    json_t *sc = gw_jsonv_member(&x->v, v, p, "scope", 0);
    if (sc != NULL && !json_is_null(sc)) {
        gw_jsonv_path_key(pk, p, "scope");
        if (!json_is_string(sc))
            gw_jsonv_err(&x->v, pk, "must be a string or null");
        else if (!valid_token(json_string_value(sc)))
            gw_jsonv_err(&x->v, pk, TOKEN_RULE);
        else
            r->scope = gw_jsonv_strdup(&x->v, "$", json_string_value(sc));
    }
    gw_jsonv_bool(&x->v, v, p, "year_bound", GW_JSONV_OPTIONAL, &r->year_bound);
    r->max_response_bytes = GW_ROUTE_DEFAULT_MAX_RESPONSE_BYTES;
    opt_size(x, v, p, "max_response_bytes", 1, 1073741824, &r->max_response_bytes);
    parse_route_query(x, v, p, r);
    parse_route_headers(x, v, p, r);
    long long mb;
    if (gw_jsonv_int(&x->v, v, p, "max_body_bytes", 0, 0, 67108864, &mb) == GW_JSONV_SET)
        r->max_body_bytes = (size_t)mb;
    int counted = 1;
    gw_jsonv_bool(&x->v, v, p, "quota", GW_JSONV_OPTIONAL, &counted);
    r->no_quota = !counted;
}

/* 1 when every path that <a> matches, <b> matches too (same segment count,
 * each segment of <b> a parameter or the same literal). */
static int covers(const gw_route *b, const gw_route *a)
{
    if (a->nsegs != b->nsegs)
        return 0;
    for (size_t k = 0; k < a->nsegs; k++) {
        if (b->segs[k] == NULL)
            continue;
        if (a->segs[k] == NULL || strcmp(a->segs[k], b->segs[k]) != 0)
            return 0;
    }
    return 1;
}

static void parse_routes(ctx *x, json_t *root, gw_conf *c, int upstreams_ok)
{
    char pe[GW_JSONV_PATH];
    json_t *a = gw_jsonv_array(&x->v, root, "$", "routes", 1, 1, 256);
    if (a == NULL || json_array_size(a) == 0)
        return;
    c->routes.routes = gw_jsonv_calloc(&x->v, "$", json_array_size(a), sizeof(gw_route));
    if (c->routes.routes == NULL)
        return;
    c->routes.n = json_array_size(a);
    for (size_t i = 0; i < c->routes.n; i++) {
        gw_jsonv_path_idx(pe, "routes", i);
        parse_route(x, json_array_get(a, i), pe, &c->routes.routes[i], c, upstreams_ok);
    }
    for (size_t i = 0; i < c->routes.n; i++) {
        const gw_route *r = &c->routes.routes[i];
        json_t *ri = json_array_get(a, i);
        for (size_t j = 0; r->name != NULL && j < i; j++) {
            const gw_route *o = &c->routes.routes[j];
            if (o->name == NULL || strcmp(o->name, r->name) != 0)
                continue;
            if (json_object_get(ri, "name") != NULL) {
                snprintf(pe, sizeof(pe), "routes[%zu].name", i);
                gw_jsonv_err(&x->v, pe, "duplicate of routes[%zu].name", j);
            } else {
                gw_jsonv_path_idx(pe, "routes", i);
                gw_jsonv_err(
                    &x->v, pe,
                    "missing key \"name\" (the default, its path, is already used by routes[%zu])",
                    j);
            }
            break;
        }
        if (r->method == NULL || r->path == NULL)
            continue;
        for (size_t j = 0; j < i; j++) {
            const gw_route *o = &c->routes.routes[j];
            if (o->method == NULL || o->path == NULL || strcmp(o->method, r->method) != 0 ||
                !covers(o, r))
                continue;
            if (covers(r, o)) {
                gw_jsonv_path_idx(pe, "routes", i);
                gw_jsonv_err(&x->v, pe, "method and path already used by routes[%zu]", j);
            } else {
                snprintf(pe, sizeof(pe), "routes[%zu].path", i);
                gw_jsonv_err(&x->v, pe, "unreachable, routes[%zu] matches first", j);
            }
            break;
        }
    }
}

static void parse_limits(ctx *x, json_t *root, gw_conf *c)
{
    static const char *const keys[] = {"max_header_bytes",   "max_headers",
                                       "max_body_bytes",     "max_connections",
                                       "max_pipeline_bytes", "max_buffered_response_bytes",
                                       "listen_backlog",     NULL};
    gw_conf_limits *l = &c->limits;
    l->max_header_bytes = 16384;
    l->max_headers = 100;
    l->max_body_bytes = 1u << 20;
    l->max_connections = 10000;
    l->max_pipeline_bytes = 65536;
    l->max_buffered_response_bytes = (size_t)64 << 20;
    l->listen_backlog = 4096;
    json_t *o = gw_jsonv_obj(&x->v, root, "$", "limits", 0);
    if (o == NULL)
        return;
    gw_jsonv_keys(&x->v, o, "limits", keys);
    opt_size(x, o, "limits", "max_header_bytes", 1, 1048576, &l->max_header_bytes);
    opt_size(x, o, "limits", "max_headers", 1, 1000, &l->max_headers);
    opt_size(x, o, "limits", "max_body_bytes", 1, 67108864, &l->max_body_bytes);
    opt_size(x, o, "limits", "max_connections", 1, 1000000, &l->max_connections);
    l->max_connections_set = o != NULL && json_object_get(o, "max_connections") != NULL;
    opt_size(x, o, "limits", "max_pipeline_bytes", 1, 1048576, &l->max_pipeline_bytes);
    opt_size(x, o, "limits", "max_buffered_response_bytes", 65536, 4294967296,
             &l->max_buffered_response_bytes);
    opt_size(x, o, "limits", "listen_backlog", 1, 65535, &l->listen_backlog);
}

static void parse_timeouts(ctx *x, json_t *root, gw_conf *c)
{
    static const char *const keys[] = {"handshake_ms", "header_ms", "body_ms",    "keepalive_ms",
                                       "send_ms",      "drain_ms",  "dormant_ms", NULL};
    gw_conf_timeouts *t = &c->timeouts;
    t->handshake_ms = 10000;
    t->header_ms = 10000;
    t->body_ms = 30000;
    t->keepalive_ms = 60000;
    t->send_ms = 30000;
    t->drain_ms = 30000;
    t->dormant_ms = 1000;
    json_t *o = gw_jsonv_obj(&x->v, root, "$", "timeouts", 0);
    if (o == NULL)
        return;
    gw_jsonv_keys(&x->v, o, "timeouts", keys);
    opt_uint(x, o, "timeouts", "handshake_ms", 1, 3600000, &t->handshake_ms);
    opt_uint(x, o, "timeouts", "header_ms", 1, 3600000, &t->header_ms);
    opt_uint(x, o, "timeouts", "body_ms", 1, 3600000, &t->body_ms);
    opt_uint(x, o, "timeouts", "keepalive_ms", 1, 3600000, &t->keepalive_ms);
    opt_uint(x, o, "timeouts", "send_ms", 1, 3600000, &t->send_ms);
    opt_uint(x, o, "timeouts", "drain_ms", 1, 3600000, &t->drain_ms);
    opt_uint(x, o, "timeouts", "dormant_ms", 0, 3600000, &t->dormant_ms);
}

/* The executable at <s> (relative to the config's directory) for the key
 * at <p>: a malloc'd absolute path, or NULL after an error. */
static char *executable(ctx *x, const char *p, const char *s)
{
    char cb[512];
    char *abs = s[0] ? gw_path_resolve(x->dir, s) : NULL;
    const char *why = NULL;
    struct stat st;
    if (abs != NULL && stat(abs, &st) < 0)
        why = strerror(errno);
    else if (abs != NULL && !S_ISREG(st.st_mode))
        why = "not a regular file";
    else if (abs != NULL && access(abs, X_OK) < 0)
        why = strerror(errno);
    if (s[0] == '\0')
        gw_jsonv_err(&x->v, p, "must not be empty");
    else if (abs == NULL)
        gw_jsonv_err(&x->v, p, "out of memory");
    else if (why != NULL)
        gw_jsonv_err(&x->v, p, "cannot execute \"%s\": %s",
                     gw_jsonv_clean(cb, sizeof(cb), abs, 400), why);
    else
        return abs;
    free(abs);
    return NULL;
}

/* ---- journal.events (gateway/journal/events.h) ---- */

/* A journal file path <s> at <p>: absolute, not a directory, in a directory
 * that exists. Returns the malloc'd path, or NULL with the error reported. */
static char *events_file(ctx *x, const char *p, const char *s)
{
    char cb[512];
    struct stat st;
    if (s[0] == '\0') {
        gw_jsonv_err(&x->v, p, "must not be empty");
        return NULL;
    }
    char *abs = gw_path_resolve(x->dir, s);
    char *slash = abs != NULL ? strrchr(abs, '/') : NULL;
    if (slash == NULL) {
        gw_jsonv_err(&x->v, p, "out of memory");
        free(abs);
        return NULL;
    }
    if (stat(abs, &st) == 0 && S_ISDIR(st.st_mode)) {
        gw_jsonv_err(&x->v, p, "\"%s\" is a directory", gw_jsonv_clean(cb, sizeof(cb), abs, 400));
        free(abs);
        return NULL;
    }
    char *d = slash == abs ? strdup("/") : strndup(abs, (size_t)(slash - abs));
    if (d == NULL || check_dir(x, p, d) < 0) {
        if (d == NULL)
            gw_jsonv_err(&x->v, p, "out of memory");
        free(abs);
        abs = NULL;
    }
    free(d);
    return abs;
}

static void parse_events(ctx *x, json_t *jo, gw_conf *c)
{
    static const char *const keys[] = {
        "path", "auth_failures", "enumeration", "quota_storm", "cert_expiry_days", "alert", NULL};
    static const char *const auth_keys[] = {"threshold", "window_s", NULL};
    static const char *const enum_keys[] = {"distinct_sirens", "window_s", NULL};
    static const char *const storm_keys[] = {"refusals", "window_s", NULL};
    static const char *const alert_keys[] = {"command", "min_severity", "max_per_minute", NULL};
    static const char *const sev[] = {"low", "medium", "high", "critical"};
    gw_conf_events *e = &c->journal.events;
    char cb[512];
    const char *s;
    int path_given = 0;

    e->auth_threshold = 10;
    e->auth_window_s = 60;
    e->enum_distinct = 100;
    e->enum_window_s = 300;
    e->storm_refusals = 100;
    e->storm_window_s = 60;
    e->cert_expiry_days = 30;
    e->alert_min_severity = 2;
    e->alert_max_per_minute = 10;
    json_t *o = gw_jsonv_obj(&x->v, jo, "journal", "events", 0);
    if (o != NULL) {
        gw_jsonv_keys(&x->v, o, "journal.events", keys);
        int r = gw_jsonv_str(&x->v, o, "journal.events", "path", 0, &s);
        path_given = r != GW_JSONV_ABSENT;
        if (r == GW_JSONV_SET)
            e->path = events_file(x, "journal.events.path", s);
        json_t *a = gw_jsonv_obj(&x->v, o, "journal.events", "auth_failures", 0);
        if (a != NULL) {
            gw_jsonv_keys(&x->v, a, "journal.events.auth_failures", auth_keys);
            opt_uint(x, a, "journal.events.auth_failures", "threshold", 1, 10000,
                     &e->auth_threshold);
            opt_uint(x, a, "journal.events.auth_failures", "window_s", 1, 86400, &e->auth_window_s);
        }
        a = gw_jsonv_obj(&x->v, o, "journal.events", "enumeration", 0);
        if (a != NULL) {
            gw_jsonv_keys(&x->v, a, "journal.events.enumeration", enum_keys);
            opt_uint(x, a, "journal.events.enumeration", "distinct_sirens", 2, 10000,
                     &e->enum_distinct);
            opt_uint(x, a, "journal.events.enumeration", "window_s", 1, 86400, &e->enum_window_s);
        }
        a = gw_jsonv_obj(&x->v, o, "journal.events", "quota_storm", 0);
        if (a != NULL) {
            gw_jsonv_keys(&x->v, a, "journal.events.quota_storm", storm_keys);
            opt_uint(x, a, "journal.events.quota_storm", "refusals", 1, 100000, &e->storm_refusals);
            opt_uint(x, a, "journal.events.quota_storm", "window_s", 1, 86400, &e->storm_window_s);
        }
        opt_uint(x, o, "journal.events", "cert_expiry_days", 0, 365, &e->cert_expiry_days);
        a = gw_jsonv_obj(&x->v, o, "journal.events", "alert", 0);
        if (a != NULL) {
            gw_jsonv_keys(&x->v, a, "journal.events.alert", alert_keys);
            if (gw_jsonv_str(&x->v, a, "journal.events.alert", "command", 1, &s) == GW_JSONV_SET)
                e->alert_command = executable(x, "journal.events.alert.command", s);
            if (gw_jsonv_str(&x->v, a, "journal.events.alert", "min_severity", 0, &s) ==
                GW_JSONV_SET) {
                int i = 0;
                while (i < 4 && strcmp(s, sev[i]) != 0)
                    i++;
                if (i == 4)
                    gw_jsonv_err(&x->v, "journal.events.alert.min_severity",
                                 "must be \"low\", \"medium\", \"high\" or \"critical\"");
                else
                    e->alert_min_severity = i;
            }
            opt_uint(x, a, "journal.events.alert", "max_per_minute", 1, 1000,
                     &e->alert_max_per_minute);
        }
    }
    if (!path_given && c->journal.path != NULL) {
        const char *slash = strrchr(c->journal.path, '/');
        if (asprintf(&e->path, "%.*s/events.jsonl", (int)(slash - c->journal.path),
                     c->journal.path) < 0) {
            e->path = NULL;
            gw_jsonv_err(&x->v, "journal.events.path", "out of memory");
        }
    }
    if (e->path != NULL && c->journal.path != NULL && strcmp(e->path, c->journal.path) == 0)
        gw_jsonv_err(&x->v, "journal.events.path", "must not be the access journal's path (\"%s\")",
                     gw_jsonv_clean(cb, sizeof(cb), e->path, 400));
}

/* journal.anchor (gateway/journal/anchor.h): exactly one destination. */
static void parse_anchor(ctx *x, json_t *jo, gw_conf *c)
{
    static const char *const keys[] = {"redis", "http", "command", "timeout_ms", "retry_s", NULL};
    static const char *const redis_keys[] = {"host", "port", "key", "password_file", NULL};
    static const char *const http_keys[] = {"url", "ca_file", NULL};
    gw_conf_anchor *an = &c->journal.anchor;
    const char *s;
    an->timeout_ms = 5000;
    an->retry_s = 10;
    json_t *o = gw_jsonv_obj(&x->v, jo, "journal", "anchor", 0);
    if (o == NULL)
        return;
    gw_jsonv_keys(&x->v, o, "journal.anchor", keys);
    int n = (json_object_get(o, "redis") != NULL) + (json_object_get(o, "http") != NULL) +
            (json_object_get(o, "command") != NULL);
    if (n != 1)
        gw_jsonv_err(&x->v, "journal.anchor",
                     "needs exactly one of \"redis\", \"http\" or \"command\"");
    opt_uint(x, o, "journal.anchor", "timeout_ms", 100, 60000, &an->timeout_ms);
    opt_uint(x, o, "journal.anchor", "retry_s", 1, 3600, &an->retry_s);
    json_t *r = gw_jsonv_obj(&x->v, o, "journal.anchor", "redis", 0);
    if (r != NULL) {
        unsigned port = 6379;
        gw_jsonv_keys(&x->v, r, "journal.anchor.redis", redis_keys);
        an->kind = 1;
        if (gw_jsonv_str(&x->v, r, "journal.anchor.redis", "host", 1, &s) == GW_JSONV_SET)
            an->redis_host = strdup(s);
        opt_uint(x, r, "journal.anchor.redis", "port", 1, 65535, &port);
        an->redis_port = (uint16_t)port;
        an->redis_key = strdup("opale:journal:anchors");
        if (gw_jsonv_str(&x->v, r, "journal.anchor.redis", "key", 0, &s) == GW_JSONV_SET) {
            free(an->redis_key);
            an->redis_key = s[0] ? strdup(s) : NULL;
            if (!s[0])
                gw_jsonv_err(&x->v, "journal.anchor.redis.key", "must not be empty");
        }
        if (gw_jsonv_str(&x->v, r, "journal.anchor.redis", "password_file", 0, &s) == GW_JSONV_SET)
            an->redis_password_file = gw_path_resolve(x->dir, s);
    }
    json_t *h = gw_jsonv_obj(&x->v, o, "journal.anchor", "http", 0);
    if (h != NULL) {
        gw_jsonv_keys(&x->v, h, "journal.anchor.http", http_keys);
        an->kind = 2;
        if (gw_jsonv_str(&x->v, h, "journal.anchor.http", "url", 1, &s) == GW_JSONV_SET) {
            if (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0)
                gw_jsonv_err(&x->v, "journal.anchor.http.url",
                             "must start with http:// or https://");
            else
                an->url = strdup(s);
        }
        if (gw_jsonv_str(&x->v, h, "journal.anchor.http", "ca_file", 0, &s) == GW_JSONV_SET)
            an->ca_file = gw_path_resolve(x->dir, s);
    }
    if (gw_jsonv_str(&x->v, o, "journal.anchor", "command", 0, &s) == GW_JSONV_SET) {
        an->kind = 3;
        an->command = executable(x, "journal.anchor.command", s);
    }
}

static void parse_journal(ctx *x, json_t *root, gw_conf *c)
{
    static const char *const keys[] = {
        "path",           "queue_size",   "sync_ms",    "rotate_bytes", "rotate_daily",
        "retention_days", "checkpoint_s", "on_failure", "events",       "batch_ms",
        "tail_check_s",   "anchor",       NULL};
    char cb[512];
    const char *s;

    c->journal.queue_size = 65536;
    c->journal.sync_ms = 1000;
    c->journal.batch_ms = 2;
    c->journal.checkpoint_s = 60;
    c->journal.rotate_daily = 1;
    c->journal.retention_days = 365;
    c->journal.tail_check_s = 300;
    json_t *o = gw_jsonv_obj(&x->v, root, "$", "journal", 1);
    if (o == NULL)
        return;
    gw_jsonv_keys(&x->v, o, "journal", keys);
    if (gw_jsonv_str(&x->v, o, "journal", "path", 1, &s) == GW_JSONV_SET) {
        if (s[0] == '\0') {
            gw_jsonv_err(&x->v, "journal.path", "must not be empty");
        } else {
            char *abs = gw_path_resolve(x->dir, s);
            char *slash = abs != NULL ? strrchr(abs, '/') : NULL;
            struct stat st;
            if (slash == NULL) {
                gw_jsonv_err(&x->v, "journal.path", "out of memory");
            } else if (stat(abs, &st) == 0 && S_ISDIR(st.st_mode)) {
                gw_jsonv_err(&x->v, "journal.path", "\"%s\" is a directory",
                             gw_jsonv_clean(cb, sizeof(cb), abs, 400));
            } else {
                char *d = slash == abs ? strdup("/") : strndup(abs, (size_t)(slash - abs));
                if (d == NULL)
                    gw_jsonv_err(&x->v, "journal.path", "out of memory");
                else if (check_dir(x, "journal.path", d) == 0) {
                    c->journal.path = abs;
                    abs = NULL;
                }
                free(d);
            }
            free(abs);
        }
    }
    opt_size(x, o, "journal", "queue_size", 1, 16777216, &c->journal.queue_size);
    opt_uint(x, o, "journal", "sync_ms", 1, 60000, &c->journal.sync_ms);
    opt_uint(x, o, "journal", "batch_ms", 0, 1000, &c->journal.batch_ms);
    size_t rb = 0;
    opt_size(x, o, "journal", "rotate_bytes", 0, (long long)1 << 40, &rb);
    c->journal.rotate_bytes = rb;
    gw_jsonv_bool(&x->v, o, "journal", "rotate_daily", GW_JSONV_OPTIONAL, &c->journal.rotate_daily);
    opt_uint(x, o, "journal", "retention_days", 0, 3650, &c->journal.retention_days);
    opt_uint(x, o, "journal", "checkpoint_s", 0, 86400, &c->journal.checkpoint_s);
    opt_uint(x, o, "journal", "tail_check_s", 0, 86400, &c->journal.tail_check_s);
    if (gw_jsonv_str(&x->v, o, "journal", "on_failure", 0, &s) == GW_JSONV_SET) {
        if (strcmp(s, "deny") == 0)
            c->journal.on_failure_continue = 0;
        else if (strcmp(s, "continue") == 0)
            c->journal.on_failure_continue = 1;
        else
            gw_jsonv_err(&x->v, "journal.on_failure", "must be \"deny\" or \"continue\"");
    }
    parse_events(x, o, c);
    parse_anchor(x, o, c);
}

/* 0 when the file at <abs> holds something other than white space in its
 * first TOKEN_PROBE bytes. */
static int token_nonempty(const char *abs)
{
    char buf[TOKEN_PROBE];
    int fd = open(abs, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    for (ssize_t i = 0; i < n; i++) {
        if (strchr(" \t\r\n", buf[i]) == NULL)
            return 1;
    }
    return 0;
}

/* The token in <abs>, trimmed as the admin listener trims it
 * (gw_admin_token_read), into <buf>; its length, 0 when unreadable. */
static size_t token_text(const char *abs, char buf[TOKEN_PROBE])
{
    int fd = open(abs, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, TOKEN_PROBE - 1);
    close(fd);
    while (n > 0 && strchr(" \r\n", buf[n - 1]) != NULL)
        n--;
    return n > 0 ? (size_t)n : 0;
}

static int operator_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > GW_CONF_OPERATOR_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '.' ||
              s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

/* admin.operators: [{"name", "token_file", "role"}] (docs/console.md);
 * names unique (the token_file operator is named "admin"), tokens unique. */
static void parse_operators(ctx *x, json_t *o, gw_conf *c)
{
    static const char *const keys[] = {"name", "token_file", "role", NULL};
    char pe[GW_JSONV_PATH], pk[GW_JSONV_PATH];
    json_t *a = gw_jsonv_array(&x->v, o, "admin", "operators", 0, 1, 64);
    if (a == NULL || json_array_size(a) == 0)
        return;
    c->admin.operators =
        gw_jsonv_calloc(&x->v, "admin", json_array_size(a), sizeof(*c->admin.operators));
    if (c->admin.operators == NULL)
        return;
    c->admin.noperators = json_array_size(a);
    for (size_t i = 0; i < c->admin.noperators; i++) {
        gw_conf_operator *op = &c->admin.operators[i];
        json_t *e = json_array_get(a, i);
        const char *s;
        gw_jsonv_path_idx(pe, "admin.operators", i);
        if (!json_is_object(e)) {
            gw_jsonv_err(&x->v, pe, "must be an object");
            continue;
        }
        gw_jsonv_keys(&x->v, e, pe, keys);
        if (gw_jsonv_str(&x->v, e, pe, "name", GW_JSONV_REQUIRED, &s) == GW_JSONV_SET) {
            gw_jsonv_path_key(pk, pe, "name");
            if (!operator_name_ok(s))
                gw_jsonv_err(&x->v, pk, "must match [a-z0-9._-]{1,32}");
            else
                op->name = gw_jsonv_strdup(&x->v, pk, s);
        }
        if (gw_jsonv_str(&x->v, e, pe, "role", GW_JSONV_REQUIRED, &s) == GW_JSONV_SET) {
            gw_jsonv_path_key(pk, pe, "role");
            if (strcmp(s, "read") == 0)
                op->role = GW_ROLE_READ;
            else if (strcmp(s, "operator") == 0)
                op->role = GW_ROLE_OPERATOR;
            else
                gw_jsonv_err(&x->v, pk, "must be \"read\" or \"operator\"");
        }
        if (get_file(x, e, pe, "token_file", 1, &op->token_file) == GW_JSONV_SET &&
            !token_nonempty(op->token_file)) {
            char cb[512];
            gw_jsonv_path_key(pk, pe, "token_file");
            gw_jsonv_err(&x->v, pk, "file \"%s\" is empty",
                         gw_jsonv_clean(cb, sizeof(cb), op->token_file, 400));
        }
    }
    for (size_t i = 0; i < c->admin.noperators; i++) {
        const gw_conf_operator *op = &c->admin.operators[i];
        gw_jsonv_path_idx(pe, "admin.operators", i);
        gw_jsonv_path_key(pk, pe, "name");
        if (op->name != NULL && c->admin.token_file != NULL && strcmp(op->name, "admin") == 0)
            gw_jsonv_err(&x->v, pk, "\"admin\" is the operator of admin.token_file");
        for (size_t j = 0; op->name != NULL && j < i; j++)
            if (c->admin.operators[j].name != NULL &&
                strcmp(c->admin.operators[j].name, op->name) == 0) {
                gw_jsonv_err(&x->v, pk, "duplicate of admin.operators[%zu].name", j);
                break;
            }
        if (op->token_file == NULL)
            continue;
        char ti[TOKEN_PROBE], tj[TOKEN_PROBE];
        size_t ni = token_text(op->token_file, ti);
        gw_jsonv_path_key(pk, pe, "token_file");
        if (ni > 0 && c->admin.token_file != NULL) {
            size_t nj = token_text(c->admin.token_file, tj);
            if (nj == ni && memcmp(ti, tj, ni) == 0)
                gw_jsonv_err(&x->v, pk, "the same token as admin.token_file");
        }
        for (size_t j = 0; ni > 0 && j < i; j++) {
            if (c->admin.operators[j].token_file == NULL)
                continue;
            size_t nj = token_text(c->admin.operators[j].token_file, tj);
            if (nj == ni && memcmp(ti, tj, ni) == 0) {
                gw_jsonv_err(&x->v, pk, "the same token as admin.operators[%zu]", j);
                break;
            }
        }
        OPENSSL_cleanse(ti, sizeof(ti));
        OPENSSL_cleanse(tj, sizeof(tj));
    }
}

static void parse_admin(ctx *x, json_t *root, gw_conf *c)
{
    static const char *const keys[] = {"address", "port", "token_file", "operators", NULL};
    char cb[512];
    const char *s = "127.0.0.1";

    json_t *o = gw_jsonv_obj(&x->v, root, "$", "admin", 0);
    if (o == NULL)
        return;
    gw_jsonv_keys(&x->v, o, "admin", keys);
    if (gw_jsonv_str(&x->v, o, "admin", "address", 0, &s) != GW_JSONV_BAD) {
        addr a = parse_addr(s);
        if (a.family == 0)
            gw_jsonv_err(&x->v, "admin.address", "must be a numeric IPv4 or IPv6 address");
        else if (!addr_is_loopback(&a))
            gw_jsonv_err(&x->v, "admin.address", "must be a loopback address");
        else
            c->admin.address = gw_jsonv_strdup(&x->v, "$", s);
    }
    get_port(x, o, "admin", "port", &c->admin.port);
    /* one of token_file and operators at least (both: "admin" and the named ones) */
    int required = json_object_get(o, "operators") == NULL;
    if (get_file(x, o, "admin", "token_file", required, &c->admin.token_file) == GW_JSONV_SET &&
        !token_nonempty(c->admin.token_file)) {
        gw_jsonv_err(&x->v, "admin.token_file", "file \"%s\" is empty",
                     gw_jsonv_clean(cb, sizeof(cb), c->admin.token_file, 400));
    }
    parse_operators(x, o, c);
    c->admin.enabled = 1;

    if (c->admin.address == NULL || c->admin.port == 0)
        return;
    addr aa = parse_addr(c->admin.address);
    for (size_t i = 0; i < c->nlisteners; i++) {
        const gw_conf_listener *l = &c->listeners[i];
        if (l->address == NULL || l->port != c->admin.port)
            continue;
        addr al = parse_addr(l->address);
        if (addr_eq(&aa, &al)) {
            gw_jsonv_err(&x->v, "admin", "address and port already used by listeners[%zu]", i);
            break;
        }
    }
}

static void parse_root(ctx *x, json_t *root, gw_conf *c)
{
    static const char *const keys[] = {"workers",        "policies_dir", "listeners", "upstreams",
                                       "routes",         "limits",       "timeouts",  "journal",
                                       "admin",          "access",       "oauth",     "quota",
                                       "policies_watch", "datapass",     NULL};
    long long w = 0;
    const char *s;

    gw_jsonv_keys(&x->v, root, "$", keys);
    gw_jsonv_int(&x->v, root, "$", "workers", 0, 0, 64, &w);
    if (w == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        w = n < 1 ? 1 : n > 64 ? 64 : n;
    }
    c->workers = (unsigned)w;
    if (gw_jsonv_str(&x->v, root, "$", "policies_dir", 0, &s) == GW_JSONV_SET) {
        if (s[0] == '\0') {
            gw_jsonv_err(&x->v, "policies_dir", "must not be empty");
        } else {
            char *abs = gw_path_resolve(x->dir, s);
            if (abs == NULL)
                gw_jsonv_err(&x->v, "policies_dir", "out of memory");
            else if (check_dir(x, "policies_dir", abs) == 0) {
                c->policies_dir = abs;
                abs = NULL;
            }
            free(abs);
        }
    }
    c->policies_dir_bad = c->policies_dir == NULL && json_object_get(root, "policies_dir") != NULL;
    gw_jsonv_bool(&x->v, root, "$", "policies_watch", GW_JSONV_OPTIONAL, &c->policies_watch);
    if (c->policies_watch && json_object_get(root, "policies_dir") == NULL)
        gw_jsonv_err(&x->v, "policies_watch", "needs policies_dir");
    parse_listeners(x, root, c);
    size_t before_routes = x->v.nerrs;
    int upstreams_ok = parse_upstreams(x, root, c);
    parse_routes(x, root, c, upstreams_ok);
    c->routes_bad = x->v.nerrs > before_routes;
    parse_limits(x, root, c);
    parse_timeouts(x, root, c);
    parse_journal(x, root, c);
    parse_admin(x, root, c);
    json_t *acc = gw_jsonv_obj(&x->v, root, "$", "access", 0);
    if (acc != NULL) {
        c->access = json_deep_copy(acc);
        if (c->access == NULL)
            gw_jsonv_err(&x->v, "access", "out of memory");
    }
    json_t *dpa = gw_jsonv_obj(&x->v, root, "$", "datapass", 0);
    if (dpa != NULL) {
        c->datapass = json_deep_copy(dpa);
        if (c->datapass == NULL)
            gw_jsonv_err(&x->v, "datapass", "out of memory");
    }
    json_t *qa = gw_jsonv_obj(&x->v, root, "$", "quota", 0);
    if (qa != NULL) {
        c->quota = json_deep_copy(qa);
        if (c->quota == NULL)
            gw_jsonv_err(&x->v, "quota", "out of memory");
    }
    json_t *oa = gw_jsonv_obj(&x->v, root, "$", "oauth", 0);
    if (oa != NULL) {
        c->oauth = json_deep_copy(oa);
        if (c->oauth == NULL)
            gw_jsonv_err(&x->v, "oauth", "out of memory");
    }
}

/* ---- entry points ---- */

/* The conf, or NULL; with <nerrs> non-NULL a conf that holds errors is
 * returned too (its count in <*nerrs>), for gw_conf_load_check(). */
static gw_conf *parse_buf(const char *path, const char *text, size_t len, gw_errlist *errs,
                          size_t *nerrs)
{
    ctx x = {.v = gw_jsonv_init(path, errs)};
    json_t *root = NULL;
    gw_conf *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        gw_jsonv_err(&x.v, "$", "out of memory");
        return NULL;
    }
    c->dir = conf_dir(x.v.file);
    if (c->dir == NULL) {
        gw_jsonv_err(&x.v, "$", "out of memory");
        goto out;
    }
    x.dir = c->dir;
    c->path = strdup(x.v.file);
    if (c->path == NULL) {
        gw_jsonv_err(&x.v, "$", "out of memory");
        goto out;
    }

    root = gw_jsonv_parse(&x.v, text, len);
    if (root == NULL)
        goto out;
    if (!json_is_object(root)) {
        gw_jsonv_err(&x.v, "$", "must be an object");
        goto out;
    }
    parse_root(&x, root, c);

out:
    if (nerrs != NULL && root != NULL && json_is_object(root) && c->path != NULL) {
        json_decref(root);
        *nerrs = x.v.nerrs;
        c->nerrs = x.v.nerrs;
        return c;
    }
    json_decref(root);
    if (x.v.nerrs > 0) {
        gw_conf_free(c);
        c = NULL;
    }
    return c;
}

gw_conf *gw_conf_parse(const char *path, const char *text, gw_errlist *errs)
{
    if (text == NULL) {
        gw_errlist_add(errs, "%s: $: cannot read: %s", path != NULL ? path : "-", strerror(EINVAL));
        return NULL;
    }
    return parse_buf(path, text, strlen(text), errs, NULL);
}

/* A configuration may come from a pipe (-c /dev/stdin): read to its end,
 * within CONF_MAX_FILE. */
static gw_conf *load(const char *path, gw_errlist *errs, size_t *nerrs)
{
    gw_conf *c = NULL;
    char *text = NULL;
    size_t len = 0;

    int e = path != NULL ? gw_file_read(path, CONF_MAX_FILE, 0, &text, &len) : EINVAL;
    if (e != 0)
        gw_errlist_add(errs, "%s: $: cannot read: %s", path != NULL ? path : "-", strerror(e));
    else
        c = parse_buf(path, text, len, errs, nerrs);
    free(text);
    return c;
}

gw_conf *gw_conf_load(const char *path, gw_errlist *errs)
{
    return load(path, errs, NULL);
}

gw_conf *gw_conf_load_check(const char *path, gw_errlist *errs, size_t *nerrs)
{
    *nerrs = 0;
    return load(path, errs, nerrs);
}

void gw_conf_free(gw_conf *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nlisteners; i++) {
        gw_conf_listener *l = &c->listeners[i];
        free(l->name);
        free(l->address);
        for (size_t k = 0; k < l->ncerts; k++) {
            free(l->certs[k].cert);
            free(l->certs[k].key);
        }
        free(l->certs);
        free(l->client_ca);
        free(l->crl);
        gw_conf_revocation_free(&l->revoc);
    }
    free(c->listeners);
    for (size_t i = 0; i < c->nupstreams; i++) {
        gw_conf_upstream *u = &c->upstreams[i];
        free(u->name);
        for (size_t k = 0; k < u->nservers; k++)
            free(u->servers[k].host);
        free(u->servers);
        free(u->tls_ca);
        free(u->tls_cert);
        free(u->tls_key);
        free(u->tls_server_name);
    }
    free(c->upstreams);
    for (size_t i = 0; i < c->routes.n; i++)
        gw_route_free(&c->routes.routes[i]);
    free(c->routes.routes);
    free(c->journal.path);
    free(c->journal.events.path);
    free(c->journal.events.alert_command);
    free(c->journal.anchor.redis_host);
    free(c->journal.anchor.redis_key);
    free(c->journal.anchor.redis_password_file);
    free(c->journal.anchor.url);
    free(c->journal.anchor.ca_file);
    free(c->journal.anchor.command);
    free(c->admin.address);
    free(c->admin.token_file);
    for (size_t i = 0; i < c->admin.noperators; i++) {
        free(c->admin.operators[i].name);
        free(c->admin.operators[i].token_file);
    }
    free(c->admin.operators);
    free(c->policies_dir);
    json_decref(c->access);
    json_decref(c->oauth);
    json_decref(c->quota);
    json_decref(c->datapass);
    free(c->path);
    free(c->dir);
    free(c);
}

const gw_conf_upstream *gw_conf_find_upstream(const gw_conf *c, const char *name)
{
    if (c == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < c->nupstreams; i++) {
        if (c->upstreams[i].name != NULL && strcmp(c->upstreams[i].name, name) == 0)
            return &c->upstreams[i];
    }
    return NULL;
}
