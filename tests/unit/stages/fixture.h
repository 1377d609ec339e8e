/* Fixtures of the stage tests (tests/unit/stages/test_*.c): a policy set
 * of four habilitations, a route table, OAuth keys, a memory quota store,
 * and helpers that run the guarded list of stages on a raw request. */
#ifndef GW_TEST_STAGES_FIXTURE_H
#define GW_TEST_STAGES_FIXTURE_H

#include <arpa/inet.h>
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "../common.h"
#include "quota/quota.h"
#include "stages/stages.h"
#include "token/cache.h"
#include "token/oauth.h"

#define FP_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define FP_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define FP_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define FP_D "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
#define UUID "3f1c2a4e-1b2c-4d5e-8f90-123456789abc"

static char tmpdir[PATH_MAX];
static gw_stage_lists *defaults; /* the lists of a config without "access" */
static gw_policy_set *set;
static gw_suspensions *susp;
static gw_route_table routes;
static gw_conf conf;
static gw_oauth *oauth;
static gw_token_cache *cache;
static gw_quota *quota;
static gw_deny_cache *deny;
static uint64_t quota_now_ms; /* 0: the real clock */
static gw_jwk attacker;
static const gw_qstore_ops *qstore; /* NULL: the real Redis client (none in the unit tests) */
static void *qstore_ctx;

/* A token as /token would issue it, with fields overridable for the attack
 * cases: <client>/<hab> of the caller, <cnf_fp> the certificate it is bound
 * to (hex), <keytype>, <scope>, <exp_in> seconds from now. */
static time_t token_now; /* 0: the real clock */

static inline char *make_token(const char *client, const char *hab, const char *cnf_fp,
                               const char *keytype, const char *scope, long exp_in,
                               const gw_jwk *key)
{
    unsigned char raw[32];
    for (int i = 0; i < 32; i++) {
        unsigned v;
        sscanf(cnf_fp + 2 * i, "%2x", &v);
        raw[i] = (unsigned char)v;
    }
    char *x5t = gw_b64url_encode(raw, 32);
    time_t now = token_now ? token_now : time(NULL);
    json_t *c =
        json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:s,s:s,s:s,s:s,s:{s:s}}", "iss", "https://gw.test",
                  "sub", client, "client_id", client, "aud", "api-opale", "exp",
                  (json_int_t)(now + exp_in), "iat", (json_int_t)now, "jti", "jti-1", "scope",
                  scope, "habilitation", hab, "keytype", keytype, "cnf", "x5t#S256", x5t);
    char *t = gw_jws_sign(key ? key : oauth->active, "at+jwt", c);
    json_decref(c);
    free(x5t);
    return t;
}

static inline const char *client_of(const char *fp)
{
    return fp == NULL || fp[0] == 'a' ? "client-a"
           : fp[0] == 'b'             ? "client-b"
           : fp[0] == 'c'             ? "client-c"
                                      : "client-d";
}

static inline const char *hab_of(const char *fp)
{
    return fp == NULL || fp[0] == 'a' ? "H1" : fp[0] == 'b' ? "H2" : fp[0] == 'c' ? "H3" : "H4";
}

static inline const char *policy_json(const char *id, const char *client, const char *def,
                                      const char *state, const char *from, const char *until,
                                      const char *fp, const char *ips)
{
    static char buf[2048];
    snprintf(buf, sizeof(buf),
             "{\"habilitation\":{\"id\":\"%s\",\"definition\":\"%s\",\"state\":\"%s\","
             "\"valid_from\":\"%s\",\"valid_until\":\"%s\"},"
             "\"organization\":{\"siret\":\"21920023500014\",\"name\":\"Test\"},"
             "\"consumer\":{\"client_id\":\"%s\",\"id_teleservice\":\"TS-0001\","
             "\"certificates\":[{\"sha256\":\"%s\"}],\"ip_allowlist\":[%s]},"
             "\"rights\":{\"scopes\":[\"api_opale_declarations\"],"
             "\"years\":{\"from\":2019,\"to\":2023}}}",
             id, def, state, from, until, client, fp, ips);
    return buf;
}

static inline void write_file(const char *name, const char *text)
{
    char *p = gw_test_path(tmpdir, name);
    gw_test_write(p, text);
    free(p);
}

static inline void add_route(const char *name, const char *path, const char *scope, int year)
{
    gw_route *r = &routes.routes[routes.n++];
    memset(r, 0, sizeof(*r));
    r->name = strdup(name);
    r->method = strdup("GET");
    r->upstream = strdup("opale");
    r->scope = scope ? strdup(scope) : NULL;
    r->year_bound = year;
    if (year) { /* what conf.c declares for year_bound */
        snprintf(r->query[0].name, sizeof(r->query[0].name), "annee");
        r->query[0].syntax = GW_QSYN_YEAR;
        r->query[0].required = 1;
        r->nquery = 1;
    }
    ck_assert_ptr_null(gw_route_compile(r, path));
}

static inline void setup(void)
{
    gw_test_mkdtemp(tmpdir, "stages");
    write_file("a.json", policy_json("H1", "client-a", "api_opale_sandbox", "active", "2020-01-01",
                                     "2099-12-31", FP_A, "\"127.0.0.1/32\",\"2001:db8::/32\""));
    write_file("b.json", policy_json("H2", "client-b", "api_opale", "active", "2020-01-01",
                                     "2099-12-31", FP_B, "\"127.0.0.1/32\""));
    write_file("c.json", policy_json("H3", "client-c", "api_opale_sandbox", "suspended",
                                     "2020-01-01", "2099-12-31", FP_C, "\"127.0.0.1/32\""));
    write_file("d.json", policy_json("H4", "client-d", "api_opale_sandbox", "active", "2090-01-01",
                                     "2099-12-31", FP_D, "\"127.0.0.1/32\""));
    const char *scopes[] = {"api_opale_declarations"};
    gw_policy_rules rules = {scopes, 1};
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    set = gw_policy_set_load(tmpdir, &rules, &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.msgs[i]);
    ck_assert_ptr_nonnull(set);
    char sp[PATH_MAX + 32], *err = NULL;
    snprintf(sp, sizeof(sp), "%s/susp.state", tmpdir);
    susp = gw_suspensions_open(sp, &err);
    ck_assert_ptr_nonnull(susp);
    routes.routes = calloc(4, sizeof(gw_route));
    routes.n = 0;
    add_route("etatSante", "/opale/v1/etatSante", NULL, 0);
    add_route("declarations", "/opale/v1/entreprises/{siren}/declarations",
              "api_opale_declarations", 1);
    add_route("habilitations", "/opale/v1/entreprises/{siren}/habilitations",
              "api_opale_habilitations", 0);
    add_route("ping", "/opale/v1/ping", NULL, 0); /* public, "quota": false */
    routes.routes[routes.n - 1].no_quota = 1;
    memset(&conf, 0, sizeof(conf));
    conf.path = "gw.json";
    conf.dir = tmpdir;
    const char *names[] = {"tok.pem", "evil.pem"};
    for (int i = 0; i < 2; i++) {
        EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        char kp[PATH_MAX + 32];
        snprintf(kp, sizeof(kp), "%s/%s", tmpdir, names[i]);
        FILE *f = fopen(kp, "w");
        ck_assert_int_eq(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
        fclose(f);
        EVP_PKEY_free(k);
    }
    json_error_t je;
    conf.oauth = json_loads("{\"issuer\":\"https://gw.test\",\"assertion_mode\":\"per_request\","
                            "\"signing_keys\":[{\"kid\":"
                            "\"k1\",\"file\":\"tok.pem\",\"active\":true}]}",
                            0, &je);
    oauth = gw_oauth_load(&conf, &errs);
    json_decref(conf.oauth);
    conf.oauth = NULL;
    ck_assert_ptr_nonnull(oauth);
    char ep[PATH_MAX + 32], *kerr = NULL;
    snprintf(ep, sizeof(ep), "%s/evil.pem", tmpdir);
    ck_assert_int_eq(gw_jwk_load_pem(&attacker, ep, "k1", GW_ALG_ES256, &kerr), 0);
    cache = gw_token_cache_new(64);
    quota = gw_quota_load(&conf, &errs);
    ck_assert_ptr_nonnull(quota);
    deny = gw_deny_cache_new(64);
    quota_now_ms = 0;
    qstore = NULL;
    qstore_ctx = NULL;
    defaults = gw_stage_lists_load(&conf, &errs);
    ck_assert_ptr_nonnull(defaults);
}

static inline void teardown(void)
{
    gw_oauth_free(oauth);
    gw_token_cache_free(cache);
    gw_quota_free(quota);
    gw_deny_cache_free(deny);
    gw_jwk_clear(&attacker);
    gw_policy_set_unref(set);
    gw_suspensions_free(susp);
    for (size_t i = 0; i < routes.n; i++)
        gw_route_free(&routes.routes[i]);
    free(routes.routes);
    gw_stage_lists_free(defaults);
    gw_test_rmtree(tmpdir);
}

/* The lists of a config whose "access" object is <access_json>. */
static inline gw_stage_lists *lists_from(const char *access_json, gw_errlist *errs)
{
    json_error_t je;
    conf.access = access_json ? json_loads(access_json, 0, &je) : NULL;
    gw_stage_lists *l = gw_stage_lists_load(&conf, errs);
    json_decref(conf.access);
    conf.access = NULL;
    return l;
}

/* An "access" object and the one error it must get. */
typedef struct ccase {
    const char *json;
    const char *msg;
} ccase;

/* The "access" object <json> is refused with exactly one error, <msg>. */
static inline void expect_access_error(const char *json, const char *msg)
{
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    ck_assert_ptr_null(lists_from(json, &errs));
    ck_assert_uint_eq(errs.n, 1);
    ck_assert_str_eq(errs.msgs[0], msg);
    gw_errlist_clear(&errs);
}

typedef struct outcome {
    gw_verdict v;
    gw_err_id err;
    const char *reason;
    char client_ip[46];
    char annee[5];
    char siren[10];
    char retry_after[16];
    int has_local_body;
    int quota_remaining;
    int deny_cached;
    char rl_reset[16];
} outcome;

/* The request state for <raw> from <peer> with certificate <fp> on the
 * guarded list of <lists> (NULL: the defaults). */
static inline void access_init(gw_access *a, gw_http_request *http, const char *fp,
                               const char *peer, gw_env env, const gw_stage_lists *lists,
                               time_t now)
{
    memset(a, 0, sizeof(*a));
    const gw_stage_lists *l = lists != NULL ? lists : defaults;
    a->req.http = http;
    a->req.env = env;
    a->req.has_cert = fp != NULL;
    a->req.cert_sha256 = fp;
    if (inet_pton(AF_INET, peer, a->req.peer_addr) == 1)
        a->req.peer_family = AF_INET;
    else {
        ck_assert_int_eq(inet_pton(AF_INET6, peer, a->req.peer_addr), 1);
        a->req.peer_family = AF_INET6;
    }
    a->req.now = now ? now : time(NULL);
    a->req.now_ms = quota_now_ms;
    a->req.request_id = "00000000-0000-4000-8000-000000000000";
    a->svc.routes = &routes;
    a->svc.policies = set;
    a->svc.suspensions = susp;
    a->svc.tz = gw_stage_lists_tz(l);
    a->svc.oauth = oauth;
    a->svc.token_cache = cache;
    a->svc.quota = quota;
    a->svc.deny_cache = deny;
    a->svc.qstore = qstore;
    a->svc.qstore_ctx = qstore_ctx;
    a->list = gw_stage_list(l, GW_LIST_GUARDED);
}

static inline outcome outcome_of(const gw_access *a, gw_verdict v)
{
    outcome o;
    memset(&o, 0, sizeof(o));
    o.v = v;
    o.err = a->reply.err;
    o.reason = a->reply.reason;
    strcpy(o.client_ip, a->res.ipallow.ip);
    strcpy(o.annee, a->res.rights.annee);
    strcpy(o.siren, a->res.rights.siren);
    strcpy(o.retry_after, a->res.maintenance.retry_after[0] ? a->res.maintenance.retry_after
                                                            : a->res.quota.retry_after);
    o.has_local_body = a->reply.body != NULL;
    o.quota_remaining = a->res.quota.ran ? (int)a->res.quota.remaining : -1;
    o.deny_cached = a->res.quota.deny_cached;
    for (size_t i = 0; i < a->reply.nresp_headers; i++)
        if (strcmp(a->reply.resp_headers[i].name, "RateLimit-Reset") == 0)
            snprintf(o.rl_reset, sizeof(o.rl_reset), "%s", a->reply.resp_headers[i].value);
    return o;
}

/* Run the guarded list with an explicit Authorization value (NULL: none). */
static inline outcome run_auth(const char *raw0, const char *fp, const char *peer, gw_env env,
                               const gw_stage_lists *lists, time_t now, const char *auth)
{
    char raw[8192];
    size_t l0 = strlen(raw0);
    ck_assert_uint_lt(l0 + (auth ? strlen(auth) : 0) + 32, sizeof(raw));
    memcpy(raw, raw0, l0 - 2); /* before the final CRLF */
    size_t l = l0 - 2;
    if (auth != NULL)
        l += (size_t)sprintf(raw + l, "Authorization: %s\r\n", auth);
    strcpy(raw + l, "\r\n");
    gw_http_request *http = gw_test_request(raw);
    gw_access a;
    access_init(&a, http, fp, peer, env, lists, now);
    outcome o = outcome_of(&a, gw_pipeline_run(&a));
    gw_pipeline_done(&a);
    gw_http_request_free(http);
    return o;
}

/* The same with the token /token would have issued to the certificate's
 * consumer on this listener. */
static inline outcome run(const char *raw, const char *fp, const char *peer, gw_env env,
                          const gw_stage_lists *lists, time_t now)
{
    token_now = now;
    char *tok = make_token(client_of(fp), hab_of(fp), fp ? fp : FP_A,
                           env == GW_ENV_PRODUCTION ? "PRODUCTION" : "SANDBOX",
                           "api_opale_declarations", 3600, NULL);
    char auth[4096];
    snprintf(auth, sizeof(auth), "Bearer %s", tok);
    free(tok);
    token_now = 0;
    return run_auth(raw, fp, peer, env, lists, now, auth);
}

#define REQ(path, extra)                                                                           \
    "GET " path " HTTP/1.1\r\nHost: x\r\nX-Correlation-ID: " UUID "\r\n"                           \
    "ID_Teleservice: TS-0001\r\n" extra "\r\n"
#define DECL "/opale/v1/entreprises/732829320/declarations?annee=2021"
#define ETAT "GET /opale/v1/etatSante HTTP/1.1\r\nHost: x\r\nX-Correlation-ID: " UUID "\r\n"

static inline time_t utc(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    return timegm(&tm);
}

/* One Check suite of one test case with the fixture, run; the exit status. */
static inline int run_suite(const char *name, void (*add)(TCase *tc))
{
    Suite *s = suite_create(name);
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, setup, teardown);
    add(tc);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}

#endif
