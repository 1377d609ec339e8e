/*
 * The "datapass" config section (docs/configuration.md, "datapass"). Kept
 * apart from conf/conf.c, which only keeps a copy of the object, like the
 * access, oauth and quota sections.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "datapass/datapass.h"
#include "datapass/webhook.h"
#include "lib/jsonv.h"

#define SECRET_MIN 16
#define SECRET_MAX 512

static const char *const env_names[GW_DP__NENV] = {"sandbox", "staging", "production"};

const char *gw_dp_env_name(gw_dp_env e)
{
    return (unsigned)e < GW_DP__NENV ? env_names[e] : NULL;
}

typedef struct ctx {
    const gw_conf *c;
    gw_jsonv v; /* messages "FILE: datapass.<path>: ..." (lib/jsonv.h) */
} ctx;

/* "datapass" or "datapass.<path>" into <out>. */
static const char *full(char out[GW_JSONV_PATH], const char *path)
{
    if (path[0] == '\0')
        snprintf(out, GW_JSONV_PATH, "datapass");
    else
        gw_jsonv_path_key(out, "datapass", path);
    return out;
}

static void err(ctx *x, const char *path, const char *msg)
{
    char p[GW_JSONV_PATH];
    gw_jsonv_err(&x->v, full(p, path), "%s", msg);
}

static void check_keys(ctx *x, json_t *o, const char *path, const char *const *known)
{
    char p[GW_JSONV_PATH];
    gw_jsonv_keys(&x->v, o, full(p, path), known);
}

static char *absolute(ctx *x, const char *s)
{
    char *r = NULL;
    if (s[0] == '/')
        r = strdup(s);
    else if (asprintf(&r, "%s/%s", x->c->dir, s) < 0)
        r = NULL;
    return r;
}

/* A string key: an absolute path (relative ones against the config's
 * directory); <need_file>: it must name a readable file. */
static char *get_path(ctx *x, json_t *o, const char *path, const char *key, int required,
                      int need_file)
{
    char pp[GW_JSONV_PATH], p[GW_JSONV_PATH];
    const char *s = NULL;
    full(pp, path);
    gw_jsonv_path_key(p, pp, key);
    if (gw_jsonv_str(&x->v, o, pp, key, required ? GW_JSONV_REQUIRED : GW_JSONV_OPTIONAL, &s) !=
        GW_JSONV_SET)
        return NULL;
    if (s[0] == '\0') {
        gw_jsonv_err(&x->v, p, "must not be empty");
        return NULL;
    }
    char *a = absolute(x, s);
    if (a != NULL && need_file && access(a, R_OK) != 0) {
        gw_jsonv_err(&x->v, p, "cannot read the file");
        free(a);
        return NULL;
    }
    return a;
}

static long get_long(ctx *x, json_t *o, const char *path, const char *key, long lo, long hi,
                     long dflt, int flags)
{
    char pp[GW_JSONV_PATH];
    long long v = dflt;
    gw_jsonv_int_in(&x->v, o, full(pp, path), key, flags, lo, hi, &v);
    return (long)v;
}

/* A secret file: its bytes, a final newline dropped. */
static void read_secret(ctx *x, const char *p, const char *file, gw_dp_conf *dc, int env)
{
    char *a = absolute(x, file);
    size_t len = 0;
    char *s = a != NULL ? gw_dp_read_file(a, &len) : NULL;
    free(a);
    if (s == NULL) {
        err(x, p, "cannot read the secret file");
        return;
    }
    while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'))
        s[--len] = '\0';
    if (len < SECRET_MIN || len > SECRET_MAX) {
        err(x, p, "the secret must be 16 to 512 bytes");
        free(s);
        return;
    }
    size_t i = dc->nsecrets[env]++;
    dc->secrets[env][i] = (unsigned char *)s;
    dc->secret_len[env][i] = len;
}

static void parse_secrets(ctx *x, json_t *o, gw_dp_conf *dc)
{
    if (!json_is_object(o)) {
        err(x, "secrets", "must be an object: environment -> secret file(s)");
        return;
    }
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        char p[160];
        snprintf(p, sizeof(p), "secrets.%.64s", k);
        int env = -1;
        for (int i = 0; i < GW_DP__NENV; i++)
            if (strcmp(k, env_names[i]) == 0)
                env = i;
        if (env < 0) {
            err(x, p, "must be sandbox, staging or production");
            continue;
        }
        if (json_is_string(v)) {
            read_secret(x, p, json_string_value(v), dc, env);
        } else if (json_is_array(v) && json_array_size(v) >= 1 &&
                   json_array_size(v) <= GW_DP_MAX_SECRETS) {
            size_t i;
            json_t *f;
            json_array_foreach(v, i, f)
            {
                char pi[200];
                snprintf(pi, sizeof(pi), "%s[%zu]", p, i);
                if (!json_is_string(f))
                    err(x, pi, "must be a file name");
                else
                    read_secret(x, pi, json_string_value(f), dc, env);
            }
        } else {
            err(x, p, "must be a secret file or a list of one or two (rotation)");
        }
    }
}

static void parse_webhook(ctx *x, json_t *o, gw_dp_conf *dc)
{
    static const char *const keys[] = {"address", "port", "cert", "key", "max_body_bytes", NULL};
    if (!json_is_object(o)) {
        err(x, "webhook", "must be an object");
        return;
    }
    check_keys(x, o, "webhook", keys);
    dc->webhook = 1;
    json_t *v = json_object_get(o, "address");
    unsigned char tmp[16];
    const char *addr = json_is_string(v) ? json_string_value(v) : NULL;
    if (v == NULL)
        addr = "127.0.0.1";
    if (addr == NULL || (inet_pton(AF_INET, addr, tmp) != 1 && inet_pton(AF_INET6, addr, tmp) != 1))
        err(x, "webhook.address", "must be a numeric IPv4 or IPv6 address");
    else
        dc->address = strdup(addr);
    dc->port = (uint16_t)get_long(x, o, "webhook", "port", 1, 65535, 0, GW_JSONV_REQUIRED);
    dc->cert = get_path(x, o, "webhook", "cert", 1, 1);
    dc->key = get_path(x, o, "webhook", "key", 1, 1);
    dc->max_body = (size_t)get_long(x, o, "webhook", "max_body_bytes", 1024, 1048576, 65536, 0);
}

static void parse_api(ctx *x, json_t *o, gw_dp_conf *dc)
{
    static const char *const keys[] = {"url", "client_id",       "client_secret_file",
                                       "ca",  "sync_interval_s", NULL};
    if (!json_is_object(o)) {
        err(x, "api", "must be an object");
        return;
    }
    check_keys(x, o, "api", keys);
    dc->api = 1;
    json_t *v = json_object_get(o, "url");
    if (!json_is_string(v) || strncmp(json_string_value(v), "https://", 8) != 0 ||
        json_string_length(v) < 9 || json_string_length(v) > 512)
        err(x, "api.url", "must be an https:// URL");
    else
        dc->api_url = strdup(json_string_value(v));
    v = json_object_get(o, "client_id");
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 256)
        err(x, "api.client_id", "must be a non-empty string");
    else
        dc->api_client_id = strdup(json_string_value(v));
    char *sf = get_path(x, o, "api", "client_secret_file", 1, 1);
    if (sf != NULL) {
        size_t len = 0;
        dc->api_secret = gw_dp_read_file(sf, &len);
        while (dc->api_secret != NULL && len > 0 &&
               (dc->api_secret[len - 1] == '\n' || dc->api_secret[len - 1] == '\r'))
            dc->api_secret[--len] = '\0';
        if (dc->api_secret == NULL || len == 0)
            err(x, "api.client_secret_file", "cannot read the secret");
        free(sf);
    }
    dc->api_ca = get_path(x, o, "api", "ca", 0, 1);
    dc->sync_interval_s = get_long(x, o, "api", "sync_interval_s", 0, 86400, 300, 0);
}

int gw_dp_conf_load(const gw_conf *c, gw_dp_conf *dc, gw_errlist *errs)
{
    static const char *const keys[] = {"webhook",    "secrets", "replay_window_s",
                                       "state_file", "api",     NULL};
    ctx x = {c, gw_jsonv_init(c->path, errs)};
    memset(dc, 0, sizeof(*dc));
    json_t *o = c->datapass;
    if (o == NULL)
        return 0;
    check_keys(&x, o, "", keys);
    if (c->policies_dir == NULL)
        err(&x, "", "needs policies_dir (the webhooks and the sync write policy files)");
    if (json_object_get(o, "webhook") != NULL)
        parse_webhook(&x, json_object_get(o, "webhook"), dc);
    if (json_object_get(o, "secrets") != NULL)
        parse_secrets(&x, json_object_get(o, "secrets"), dc);
    else if (dc->webhook)
        err(&x, "secrets", "required with webhook");
    dc->replay_window_s = get_long(&x, o, "", "replay_window_s", 60, 31 * 86400, 86400, 0);
    if (json_object_get(o, "state_file") != NULL) {
        dc->state_file = get_path(&x, o, "", "state_file", 1, 0);
    } else if (c->policies_dir != NULL) {
        if (asprintf(&dc->state_file, "%s/../datapass-seen.json", c->policies_dir) < 0)
            dc->state_file = NULL;
    }
    if (json_object_get(o, "api") != NULL)
        parse_api(&x, json_object_get(o, "api"), dc);
    if (x.v.nerrs > 0) {
        gw_dp_conf_clear(dc);
        return -1;
    }
    return 0;
}

void gw_dp_conf_clear(gw_dp_conf *dc)
{
    free(dc->address);
    free(dc->cert);
    free(dc->key);
    free(dc->state_file);
    for (int e = 0; e < GW_DP__NENV; e++)
        for (size_t i = 0; i < dc->nsecrets[e]; i++) {
            OPENSSL_cleanse(dc->secrets[e][i], dc->secret_len[e][i]);
            free(dc->secrets[e][i]);
        }
    free(dc->api_url);
    free(dc->api_client_id);
    if (dc->api_secret != NULL)
        OPENSSL_cleanse(dc->api_secret, strlen(dc->api_secret));
    free(dc->api_secret);
    free(dc->api_ca);
    memset(dc, 0, sizeof(*dc));
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **gw_dp_pending_list(const char *dir, size_t *n)
{
    *n = 0;
    DIR *d = dir != NULL ? opendir(dir) : NULL;
    char **v = NULL;
    size_t cap = 0;
    if (d == NULL)
        return NULL;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len <= 13 ||
            strcmp(de->d_name + len - 13, ".json.pending") != 0)
            continue;
        if (*n == cap) {
            size_t nc = cap ? cap * 2 : 8;
            char **t = realloc(v, nc * sizeof(*t));
            if (t == NULL)
                break;
            v = t;
            cap = nc;
        }
        if ((v[*n] = strdup(de->d_name)) == NULL)
            break;
        (*n)++;
    }
    closedir(d);
    if (*n > 1)
        qsort(v, *n, sizeof(*v), cmp);
    return v;
}

void gw_dp_pending_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}
