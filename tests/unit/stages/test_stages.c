/* Unit tests for gateway/stages/: each control's outcomes (allowed, denied,
 * malformed input, its dependency missing) through the real pipeline, and
 * the time arithmetic of the maintenance slots. */
#include <arpa/inet.h>
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "stages/confs.h"
#include "stages/stages.h"
#include "quota/quota.h"
#include "token/cache.h"
#include "token/oauth.h"

#define FP_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define FP_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define FP_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define FP_D "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
#define UUID "3f1c2a4e-1b2c-4d5e-8f90-123456789abc"

static char tmpdir[64];
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

/* A token as /token would issue it, with fields overridable for the attack
 * cases: <client>/<hab> of the caller, <cnf_fp> the certificate it is bound
 * to (hex), <keytype>, <scope>, <exp_in> seconds from now. */
static time_t token_now; /* 0: the real clock */

static char *make_token(const char *client, const char *hab, const char *cnf_fp,
                        const char *keytype, const char *scope, long exp_in, const gw_jwk *key)
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

static const char *client_of(const char *fp)
{
    return fp == NULL || fp[0] == 'a' ? "client-a"
           : fp[0] == 'b'             ? "client-b"
           : fp[0] == 'c'             ? "client-c"
                                      : "client-d";
}

static const char *hab_of(const char *fp)
{
    return fp == NULL || fp[0] == 'a' ? "H1" : fp[0] == 'b' ? "H2" : fp[0] == 'c' ? "H3" : "H4";
}

static const char *policy_json(const char *id, const char *client, const char *def,
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

static void write_file(const char *name, const char *text)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void add_route(const char *name, const char *path, const char *scope, int year)
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

static void setup(void)
{
    strcpy(tmpdir, "/tmp/test_stages.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
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
    char sp[128], *err = NULL;
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
        char kp[128];
        snprintf(kp, sizeof(kp), "%s/%s", tmpdir, names[i]);
        FILE *f = fopen(kp, "w");
        ck_assert_int_eq(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
        fclose(f);
        EVP_PKEY_free(k);
    }
    json_error_t je;
    conf.oauth = json_loads("{\"issuer\":\"https://gw.test\",\"signing_keys\":[{\"kid\":"
                            "\"k1\",\"file\":\"tok.pem\",\"active\":true}]}",
                            0, &je);
    oauth = gw_oauth_load(&conf, &errs);
    json_decref(conf.oauth);
    conf.oauth = NULL;
    ck_assert_ptr_nonnull(oauth);
    char ep[128], *kerr = NULL;
    snprintf(ep, sizeof(ep), "%s/evil.pem", tmpdir);
    ck_assert_int_eq(gw_jwk_load_pem(&attacker, ep, "k1", GW_ALG_ES256, &kerr), 0);
    cache = gw_token_cache_new(64);
    quota = gw_quota_load(&conf, &errs);
    ck_assert_ptr_nonnull(quota);
    deny = gw_deny_cache_new(64);
    quota_now_ms = 0;
}

static void teardown(void)
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
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static gw_stage_confs *confs_from(const char *access_json, gw_errlist *errs)
{
    json_error_t je;
    conf.access = access_json ? json_loads(access_json, 0, &je) : NULL;
    gw_stage_confs *c = gw_stage_confs_load(&conf, errs);
    json_decref(conf.access);
    conf.access = NULL;
    return c;
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

/* Run the whole pipeline on <raw> from <peer> with certificate <fp>. */
/* Run the pipeline with an explicit Authorization value (NULL: none). */
static outcome run_auth(const char *raw0, const char *fp, const char *peer, gw_env env,
                        const gw_stage_confs *confs, time_t now, const char *auth)
{
    char raw[8192];
    size_t l0 = strlen(raw0);
    ck_assert_uint_lt(l0 + (auth ? strlen(auth) : 0) + 32, sizeof(raw));
    memcpy(raw, raw0, l0 - 2); /* before the final CRLF */
    size_t l = l0 - 2;
    if (auth != NULL)
        l += (size_t)sprintf(raw + l, "Authorization: %s\r\n", auth);
    strcpy(raw + l, "\r\n");
    gw_http_limits lim = {16384, 100, 4096};
    gw_http_parser *p = gw_http_parser_new(0, &lim);
    size_t used = 0;
    ck_assert_int_eq(gw_http_parser_feed(p, raw, strlen(raw), &used), GW_HTTP_COMPLETE);
    gw_http_request *http = gw_http_parser_take_request(p);
    gw_http_parser_free(p);
    gw_access a;
    memset(&a, 0, sizeof(a));
    a.http = http;
    a.routes = &routes;
    a.env = env;
    a.has_cert = fp != NULL;
    a.cert_sha256 = fp;
    if (inet_pton(AF_INET, peer, a.peer_addr) == 1)
        a.peer_family = AF_INET;
    else {
        ck_assert_int_eq(inet_pton(AF_INET6, peer, a.peer_addr), 1);
        a.peer_family = AF_INET6;
    }
    a.now = now ? now : time(NULL);
    a.policies = set;
    a.suspensions = susp;
    a.confs = confs;
    a.oauth = oauth;
    a.token_cache = cache;
    a.quota = quota;
    a.deny_cache = deny;
    a.now_ms = quota_now_ms;
    outcome o;
    memset(&o, 0, sizeof(o));
    o.v = gw_pipeline_run(&a);
    o.err = a.err;
    o.reason = a.reason;
    strcpy(o.client_ip, a.client_ip);
    strcpy(o.annee, a.annee);
    strcpy(o.siren, a.siren);
    strcpy(o.retry_after, a.retry_after);
    o.has_local_body = a.local_body != NULL;
    o.quota_remaining = a.quota_ran ? (int)a.quota_remaining : -1;
    o.deny_cached = a.quota_deny_cached;
    for (size_t i = 0; i < a.nresp_headers; i++)
        if (strcmp(a.resp_headers[i].name, "RateLimit-Reset") == 0)
            snprintf(o.rl_reset, sizeof(o.rl_reset), "%s", a.resp_headers[i].value);
    gw_pipeline_done(&a);
    free(a.local_body);
    gw_http_request_free(http);
    return o;
}

/* The same with the token /token would have issued to the certificate's
 * consumer on this listener. */
static outcome run(const char *raw, const char *fp, const char *peer, gw_env env,
                   const gw_stage_confs *confs, time_t now)
{
    token_now = now;
    char *tok = make_token(client_of(fp), hab_of(fp), fp ? fp : FP_A,
                           env == GW_ENV_PRODUCTION ? "PRODUCTION" : "SANDBOX",
                           "api_opale_declarations", 3600, NULL);
    char auth[4096];
    snprintf(auth, sizeof(auth), "Bearer %s", tok);
    free(tok);
    token_now = 0;
    return run_auth(raw, fp, peer, env, confs, now, auth);
}

#define REQ(path, extra)                                                                           \
    "GET " path " HTTP/1.1\r\nHost: x\r\nX-Correlation-ID: " UUID "\r\n"                           \
    "ID_Teleservice: TS-0001\r\n" extra "\r\n"
#define DECL "/opale/v1/entreprises/732829320/declarations?annee=2021"
#define ETAT "GET /opale/v1/etatSante HTTP/1.1\r\nHost: x\r\nX-Correlation-ID: " UUID "\r\n"

typedef struct pcase {
    const char *name;
    const char *raw;
    const char *fp;
    const char *peer;
    gw_env env;
    gw_verdict v;
    gw_err_id err;
    const char *reason; /* NULL: the table's */
} pcase;

static const pcase pcases[] = {
    {"allowed", REQ(DECL, ""), FP_A, "127.0.0.1", GW_ENV_SANDBOX, GW_STAGE_NEXT, GW_OK, NULL},
    {"allowed etatSante without teleservice",
     "GET /opale/v1/etatSante HTTP/1.1\r\nHost: x\r\nX-Correlation-ID: " UUID "\r\n\r\n", FP_A,
     "127.0.0.1", GW_ENV_SANDBOX, GW_STAGE_NEXT, GW_OK, NULL},
    /* a public route (no scope) passes every identity control */
    {"etatSante: habilitation suspended", ETAT "\r\n", FP_C, "127.0.0.1", GW_ENV_SANDBOX,
     GW_STAGE_REJECT, GW_ERR_HAB_SUSPENDED, NULL},
    {"etatSante: habilitation not yet valid", ETAT "\r\n", FP_D, "127.0.0.1", GW_ENV_SANDBOX,
     GW_STAGE_REJECT, GW_ERR_HAB_NOT_YET_VALID, NULL},
    {"etatSante: production habilitation on sandbox", ETAT "\r\n", FP_B, "127.0.0.1",
     GW_ENV_SANDBOX, GW_STAGE_REJECT, GW_ERR_ENVIRONMENT, NULL},
    {"etatSante: unknown certificate", ETAT "\r\n", FP_A "0", "127.0.0.1", GW_ENV_SANDBOX,
     GW_STAGE_REJECT, GW_ERR_CERT_UNKNOWN, NULL},
    {"etatSante: ip denied", ETAT "\r\n", FP_A, "10.1.2.3", GW_ENV_SANDBOX, GW_STAGE_REJECT,
     GW_ERR_IP_DENIED, NULL},
    {"etatSante: teleservice sent and right", ETAT "ID_Teleservice: TS-0001\r\n\r\n", FP_A,
     "127.0.0.1", GW_ENV_SANDBOX, GW_STAGE_NEXT, GW_OK, NULL},
    {"etatSante: teleservice sent and wrong", ETAT "ID_Teleservice: TS-0002\r\n\r\n", FP_A,
     "127.0.0.1", GW_ENV_SANDBOX, GW_STAGE_REJECT, GW_ERR_TELESERVICE_MISMATCH, NULL},
    {"etatSante: teleservice sent empty", ETAT "ID_Teleservice: \r\n\r\n", FP_A, "127.0.0.1",
     GW_ENV_SANDBOX, GW_STAGE_REJECT, GW_ERR_TELESERVICE_MISSING, NULL},
    {"allowed ipv6", REQ(DECL, ""), FP_A, "2001:db8::5", GW_ENV_SANDBOX, GW_STAGE_NEXT, GW_OK,
     NULL},
    {"allowed v4-mapped peer", REQ(DECL, ""), FP_A, "::ffff:127.0.0.1", GW_ENV_SANDBOX,
     GW_STAGE_NEXT, GW_OK, NULL},
    {"no certificate", REQ(DECL, ""), NULL, "127.0.0.1", GW_ENV_SANDBOX, GW_STAGE_REJECT,
     GW_ERR_CERT_UNKNOWN, "mtls.no_cert"},
    {"unknown certificate", REQ(DECL, ""), FP_A "0", "127.0.0.1", GW_ENV_SANDBOX, GW_STAGE_REJECT,
     GW_ERR_CERT_UNKNOWN, NULL},
    {"unknown route", REQ("/opale/v1/nope", ""), FP_A, "127.0.0.1", GW_ENV_SANDBOX, GW_STAGE_REJECT,
     GW_ERR_NOT_FOUND, NULL},
    {"ip denied", REQ(DECL, ""), FP_A, "10.1.2.3", GW_ENV_SANDBOX, GW_STAGE_REJECT,
     GW_ERR_IP_DENIED, NULL},
    {"client XFF from an untrusted peer ignored", REQ(DECL, "X-Forwarded-For: 127.0.0.1\r\n"), FP_A,
     "10.1.2.3", GW_ENV_SANDBOX, GW_STAGE_REJECT, GW_ERR_IP_DENIED, NULL},
    {"correlation missing", "GET " DECL " HTTP/1.1\r\nHost: x\r\nID_Teleservice: TS-0001\r\n\r\n",
     FP_A, "127.0.0.1", GW_ENV_SANDBOX, GW_STAGE_REJECT, GW_ERR_CORRELATION_MISSING, NULL},
    {"correlation not a uuid",
     "GET " DECL " HTTP/1.1\r\nHost: x\r\nX-Correlation-ID: 12345\r\nID_Teleservice: "
     "TS-0001\r\n\r\n",
     FP_A, "127.0.0.1", GW_ENV_SANDBOX, GW_STAGE_REJECT, GW_ERR_CORRELATION_MISSING,
     "correlation.invalid"},
    {"teleservice missing",
     "GET " DECL " HTTP/1.1\r\nHost: x\r\nX-Correlation-ID: " UUID "\r\n\r\n", FP_A, "127.0.0.1",
     GW_ENV_SANDBOX, GW_STAGE_REJECT, GW_ERR_TELESERVICE_MISSING, NULL},
    {"teleservice mismatch",
     "GET " DECL " HTTP/1.1\r\nHost: x\r\nX-Correlation-ID: " UUID
     "\r\nID_Teleservice: TS-0002\r\n\r\n",
     FP_A, "127.0.0.1", GW_ENV_SANDBOX, GW_STAGE_REJECT, GW_ERR_TELESERVICE_MISMATCH, NULL},
    {"habilitation suspended", REQ(DECL, ""), FP_C, "127.0.0.1", GW_ENV_SANDBOX, GW_STAGE_REJECT,
     GW_ERR_HAB_SUSPENDED, NULL},
    {"habilitation not yet valid", REQ(DECL, ""), FP_D, "127.0.0.1", GW_ENV_SANDBOX,
     GW_STAGE_REJECT, GW_ERR_HAB_NOT_YET_VALID, NULL},
    {"production habilitation on sandbox", REQ(DECL, ""), FP_B, "127.0.0.1", GW_ENV_SANDBOX,
     GW_STAGE_REJECT, GW_ERR_ENVIRONMENT, NULL},
    {"sandbox habilitation on production", REQ(DECL, ""), FP_A, "127.0.0.1", GW_ENV_PRODUCTION,
     GW_STAGE_REJECT, GW_ERR_ENVIRONMENT, NULL},
    {"scope not in the token", REQ("/opale/v1/entreprises/732829320/habilitations", ""), FP_A,
     "127.0.0.1", GW_ENV_SANDBOX, GW_STAGE_REJECT, GW_ERR_SCOPE, "bearer.scope"},
    {"annee missing", REQ("/opale/v1/entreprises/732829320/declarations", ""), FP_A, "127.0.0.1",
     GW_ENV_SANDBOX, GW_STAGE_REJECT, GW_ERR_YEAR_INVALID, "query.missing"},
    {"annee 20x4", REQ("/opale/v1/entreprises/732829320/declarations?annee=20x4", ""), FP_A,
     "127.0.0.1", GW_ENV_SANDBOX, GW_STAGE_REJECT, GW_ERR_YEAR_INVALID, "query.bad_value"},
    {"annee 99999", REQ("/opale/v1/entreprises/732829320/declarations?annee=99999", ""), FP_A,
     "127.0.0.1", GW_ENV_SANDBOX, GW_STAGE_REJECT, GW_ERR_YEAR_INVALID, "query.bad_value"},
    {"annee twice", REQ("/opale/v1/entreprises/732829320/declarations?annee=2021&annee=2022", ""),
     FP_A, "127.0.0.1", GW_ENV_SANDBOX, GW_STAGE_REJECT, GW_ERR_YEAR_INVALID, "query.repeated"},
    {"ANNEE then annee (issue 12)",
     REQ("/opale/v1/entreprises/732829320/declarations?ANNEE=1990&annee=2021", ""), FP_A,
     "127.0.0.1", GW_ENV_SANDBOX, GW_STAGE_REJECT, GW_ERR_QUERY_INVALID, "query.name_case"},
    {"undeclared parameter", REQ("/opale/v1/entreprises/732829320/declarations?annee=2021&x=1", ""),
     FP_A, "127.0.0.1", GW_ENV_SANDBOX, GW_STAGE_REJECT, GW_ERR_QUERY_INVALID, "query.undeclared"},
    {"percent-encoded name",
     REQ("/opale/v1/entreprises/732829320/declarations?%61nnee=1990&annee=2021", ""), FP_A,
     "127.0.0.1", GW_ENV_SANDBOX, GW_STAGE_REJECT, GW_ERR_QUERY_INVALID, "query.encoded_name"},
    {"annee outside granted years",
     REQ("/opale/v1/entreprises/732829320/declarations?annee=2024", ""), FP_A, "127.0.0.1",
     GW_ENV_SANDBOX, GW_STAGE_REJECT, GW_ERR_YEAR_NOT_GRANTED, NULL},
    {"siren luhn", REQ("/opale/v1/entreprises/404833047/declarations?annee=2021", ""), FP_A,
     "127.0.0.1", GW_ENV_SANDBOX, GW_STAGE_REJECT, GW_ERR_SIREN_INVALID, NULL},
    {"siren 8 digits", REQ("/opale/v1/entreprises/40483304/declarations?annee=2021", ""), FP_A,
     "127.0.0.1", GW_ENV_SANDBOX, GW_STAGE_REJECT, GW_ERR_SIREN_INVALID, NULL},
    {"siren 10 digits", REQ("/opale/v1/entreprises/4048330480/declarations?annee=2021", ""), FP_A,
     "127.0.0.1", GW_ENV_SANDBOX, GW_STAGE_REJECT, GW_ERR_SIREN_INVALID, NULL},
    {"siren letters", REQ("/opale/v1/entreprises/40483304A/declarations?annee=2021", ""), FP_A,
     "127.0.0.1", GW_ENV_SANDBOX, GW_STAGE_REJECT, GW_ERR_SIREN_INVALID, NULL},
    {"siren zeros", REQ("/opale/v1/entreprises/000000000/declarations?annee=2021", ""), FP_A,
     "127.0.0.1", GW_ENV_SANDBOX, GW_STAGE_REJECT, GW_ERR_SIREN_INVALID, NULL},
};

START_TEST(pipeline_outcomes)
{
    const pcase *c = &pcases[_i];
    outcome o = run(c->raw, c->fp, c->peer, c->env, NULL, 0);
    ck_assert_msg(o.v == c->v, "%s: verdict %d", c->name, o.v);
    ck_assert_msg(o.err == c->err, "%s: err %d, want %d", c->name, o.err, c->err);
    if (c->reason != NULL)
        ck_assert_str_eq(o.reason, c->reason);
    else
        ck_assert_msg(o.reason == NULL, "%s: reason %s", c->name, o.reason);
    if (c->v == GW_STAGE_NEXT && strstr(c->raw, "declarations") != NULL) {
        ck_assert_str_eq(o.siren, "732829320");
        ck_assert_str_eq(o.annee, "2021");
    }
}
END_TEST

typedef struct bcase {
    const char *name;
    const char *client, *hab, *cnf_fp, *keytype, *scope;
    long exp_in;
    int evil_key;
    const char *auth; /* literal Authorization value instead of a token */
    int no_auth;
    gw_err_id err;
    const char *reason;
} bcase;

static const bcase bcases[] = {
    {"valid", "client-a", "H1", FP_A, "SANDBOX", "api_opale_declarations", 3600, 0, NULL, 0, GW_OK,
     NULL},
    {"missing", NULL, NULL, NULL, NULL, NULL, 0, 0, NULL, 1, GW_ERR_TOKEN_MISSING, NULL},
    {"basic scheme", NULL, NULL, NULL, NULL, NULL, 0, 0, "Basic YTpi", 0, GW_ERR_TOKEN_INVALID,
     "bearer.scheme"},
    {"garbage", NULL, NULL, NULL, NULL, NULL, 0, 0, "Bearer abc", 0, GW_ERR_TOKEN_INVALID,
     "jws.malformed"},
    {"signed by another key with our kid", "client-a", "H1", FP_A, "SANDBOX",
     "api_opale_declarations", 3600, 1, NULL, 0, GW_ERR_TOKEN_INVALID, "jws.signature"},
    {"expired", "client-a", "H1", FP_A, "SANDBOX", "api_opale_declarations", -120, 0, NULL, 0,
     GW_ERR_TOKEN_INVALID, "jwt.expired"},
    {"cnf of another certificate", "client-a", "H1", FP_B, "SANDBOX", "api_opale_declarations",
     3600, 0, NULL, 0, GW_ERR_TOKEN_INVALID, "bearer.cnf_mismatch"},
    {"token of another consumer", "client-b", "H2", FP_A, "SANDBOX", "api_opale_declarations", 3600,
     0, NULL, 0, GW_ERR_TOKEN_INVALID, "bearer.client_mismatch"},
    {"habilitation of another", "client-a", "H2", FP_A, "SANDBOX", "api_opale_declarations", 3600,
     0, NULL, 0, GW_ERR_TOKEN_INVALID, "bearer.habilitation_mismatch"},
    {"production token on sandbox", "client-a", "H1", FP_A, "PRODUCTION", "api_opale_declarations",
     3600, 0, NULL, 0, GW_ERR_TOKEN_INVALID, "bearer.keytype"},
    {"route scope not in the token", "client-a", "H1", FP_A, "SANDBOX", "api_opale_creances", 3600,
     0, NULL, 0, GW_ERR_SCOPE, "bearer.scope"},
};

START_TEST(bearer_outcomes)
{
    const bcase *b = &bcases[_i];
    char auth[4096];
    const char *use = NULL;
    if (b->auth != NULL) {
        use = b->auth;
    } else if (!b->no_auth) {
        char *t = make_token(b->client, b->hab, b->cnf_fp, b->keytype, b->scope, b->exp_in,
                             b->evil_key ? &attacker : NULL);
        snprintf(auth, sizeof(auth), "Bearer %s", t);
        free(t);
        use = auth;
    }
    outcome o = run_auth(REQ(DECL, ""), FP_A, "127.0.0.1", GW_ENV_SANDBOX, NULL, 0, use);
    ck_assert_msg(o.err == b->err, "%s: err %d", b->name, o.err);
    if (b->reason)
        ck_assert_str_eq(o.reason, b->reason);
    ck_assert_int_eq(o.v, b->err == GW_OK ? GW_STAGE_NEXT : GW_STAGE_REJECT);
}
END_TEST

/* Defence in depth: a token carrying a scope the habilitation lacks. */
START_TEST(scope_in_token_but_not_in_habilitation)
{
    char *t = make_token("client-a", "H1", FP_A, "SANDBOX",
                         "api_opale_declarations api_opale_habilitations", 3600, NULL);
    char auth[4096];
    snprintf(auth, sizeof(auth), "Bearer %s", t);
    free(t);
    outcome o = run_auth(REQ("/opale/v1/entreprises/732829320/habilitations", ""), FP_A,
                         "127.0.0.1", GW_ENV_SANDBOX, NULL, 0, auth);
    ck_assert_int_eq(o.err, GW_ERR_SCOPE);
    ck_assert_ptr_null(o.reason); /* the rights stage's, not the bearer's */
}
END_TEST

/* A cached token is verified once, but bound on every request. */
START_TEST(cache_hit_still_bound)
{
    char *t = make_token("client-a", "H1", FP_A, "SANDBOX", "api_opale_declarations", 3600, NULL);
    char auth[4096];
    snprintf(auth, sizeof(auth), "Bearer %s", t);
    free(t);
    size_t before = gw_token_cache_size(cache);
    outcome o = run_auth(REQ(DECL, ""), FP_A, "127.0.0.1", GW_ENV_SANDBOX, NULL, 0, auth);
    ck_assert_int_eq(o.v, GW_STAGE_NEXT);
    ck_assert_uint_eq(gw_token_cache_size(cache), before + 1);
    o = run_auth(REQ(DECL, ""), FP_A, "127.0.0.1", GW_ENV_SANDBOX, NULL, 0, auth);
    ck_assert_int_eq(o.v, GW_STAGE_NEXT);
    ck_assert_uint_eq(gw_token_cache_size(cache), before + 1);
    /* the same (cached) token presented with client-d's certificate */
    o = run_auth(REQ(DECL, ""), FP_D, "127.0.0.1", GW_ENV_SANDBOX, NULL, 0, auth);
    ck_assert_int_eq(o.err, GW_ERR_TOKEN_INVALID);
    ck_assert_str_eq(o.reason, "bearer.cnf_mismatch");
}
END_TEST

/* 50 per minute (the sandbox default): exactly 50 admitted, then 429 with
 * Retry-After exact to when the first admission leaves the window; refused
 * calls do not extend the refusal; the deny cache answers repeats. */
START_TEST(quota_exact)
{
    quota_now_ms = 1000000;
    for (int i = 0; i < 50; i++) {
        quota_now_ms = 1000000 + (uint64_t)i * 100;
        outcome o = run(REQ(DECL, ""), FP_A, "127.0.0.1", GW_ENV_SANDBOX, NULL, 0);
        ck_assert_msg(o.v == GW_STAGE_NEXT, "request %d refused", i);
        ck_assert_int_eq(o.quota_remaining, 49 - i);
    }
    quota_now_ms = 1010000; /* 10 s after the first admission */
    outcome o = run(REQ(DECL, ""), FP_A, "127.0.0.1", GW_ENV_SANDBOX, NULL, 0);
    ck_assert_int_eq(o.err, GW_ERR_THROTTLED);
    ck_assert_str_eq(o.retry_after, "50");
    ck_assert_str_eq(o.rl_reset, "50");
    ck_assert_int_eq(o.quota_remaining, 0);
    ck_assert(!o.deny_cached);
    quota_now_ms = 1059999; /* refused repeats: from the deny cache, not extended */
    o = run(REQ(DECL, ""), FP_A, "127.0.0.1", GW_ENV_SANDBOX, NULL, 0);
    ck_assert_int_eq(o.err, GW_ERR_THROTTLED);
    ck_assert(o.deny_cached);
    ck_assert_str_eq(o.retry_after, "1");
    quota_now_ms = 1060000; /* the first admission leaves: one slot */
    o = run(REQ(DECL, ""), FP_A, "127.0.0.1", GW_ENV_SANDBOX, NULL, 0);
    ck_assert_int_eq(o.v, GW_STAGE_NEXT);
    ck_assert_int_eq(o.quota_remaining, 0);
    o = run(REQ(DECL, ""), FP_A, "127.0.0.1", GW_ENV_SANDBOX, NULL, 0);
    ck_assert_int_eq(o.err, GW_ERR_THROTTLED);
    ck_assert_str_eq(o.retry_after, "1"); /* the second one leaves at 1060100 */
    /* etatSante (public) shares the habilitation's window: refused too */
    o = run(ETAT "\r\n", FP_A, "127.0.0.1", GW_ENV_SANDBOX, NULL, 0);
    ck_assert_int_eq(o.err, GW_ERR_THROTTLED);
    ck_assert_int_eq(o.quota_remaining, 0);
    /* a route with "quota": false is neither counted nor refused */
    o = run("GET /opale/v1/ping HTTP/1.1\r\nHost: x\r\nX-Correlation-ID: " UUID "\r\n\r\n", FP_A,
            "127.0.0.1", GW_ENV_SANDBOX, NULL, 0);
    ck_assert_int_eq(o.v, GW_STAGE_NEXT);
    ck_assert_int_eq(o.quota_remaining, -1);
    /* another habilitation is independent */
    o = run(REQ(DECL, ""), FP_D, "127.0.0.1", GW_ENV_SANDBOX, NULL, 0);
    ck_assert_int_ne(o.err, GW_ERR_THROTTLED);
}
END_TEST

typedef struct qcase {
    const char *json;
    const char *msg;
} qcase;

static const qcase qcases[] = {
    {"{\"store\":\"redis\"}", "gw.json: quota.redis: required when quota.store is \"redis\""},
    {"{\"store\":\"disk\"}", "gw.json: quota.store: must be \"memory\" or \"redis\""},
    {"{\"on_store_failure\":\"maybe\"}",
     "gw.json: quota.on_store_failure: must be \"local\", \"deny\" or \"allow\""},
    {"{\"instances\":0}", "gw.json: quota.instances: must be an integer between 1 and 1000"},
    {"{\"store\":\"redis\",\"redis\":{\"nodes\":[\"localhost\"]}}",
     "gw.json: quota.redis.nodes[0]: must be \"host:port\" with a numeric address"},
    {"{\"store\":\"redis\",\"redis\":{\"nodes\":[\"127.0.0.1:6379\"],\"timeout_ms\":0}}",
     "gw.json: quota.redis.timeout_ms: must be an integer between 1 and 600000"},
    {"{\"store\":\"redis\",\"redis\":{\"nodes\":[\"127.0.0.1:6379\"],\"db\":1}}",
     "gw.json: quota.redis.db: unknown key"},
    {"{\"window_s\":0}", "gw.json: quota.window_s: must be an integer between 1 and 86400"},
    {"{\"x\":1}", "gw.json: quota.x: unknown key"},
};

START_TEST(quota_config_errors)
{
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    json_error_t je;
    conf.quota = json_loads(qcases[_i].json, 0, &je);
    gw_quota *q = gw_quota_load(&conf, &errs);
    json_decref(conf.quota);
    conf.quota = NULL;
    ck_assert_ptr_null(q);
    ck_assert_uint_eq(errs.n, 1);
    ck_assert_str_eq(errs.msgs[0], qcases[_i].msg);
    gw_errlist_clear(&errs);
}
END_TEST

START_TEST(policies_missing_denies)
{
    gw_policy_set *keep = set;
    set = NULL;
    outcome o = run(REQ(DECL, ""), FP_A, "127.0.0.1", GW_ENV_SANDBOX, NULL, 0);
    set = keep;
    ck_assert_int_eq(o.v, GW_STAGE_REJECT);
    ck_assert_int_eq(o.err, GW_ERR_CERT_UNKNOWN);
}
END_TEST

START_TEST(kill_switch)
{
    char *err = NULL;
    ck_assert_int_eq(gw_suspensions_set(susp, "client-a", 1, "test", &err), 0);
    outcome o = run(REQ(DECL, ""), FP_A, "127.0.0.1", GW_ENV_SANDBOX, NULL, 0);
    ck_assert_int_eq(o.v, GW_STAGE_REJECT);
    ck_assert_int_eq(o.err, GW_ERR_CONSUMER_SUSPENDED);
    o = run(ETAT "\r\n", FP_A, "127.0.0.1", GW_ENV_SANDBOX, NULL, 0); /* public routes too */
    ck_assert_int_eq(o.v, GW_STAGE_REJECT);
    ck_assert_int_eq(o.err, GW_ERR_CONSUMER_SUSPENDED);
    ck_assert_int_eq(gw_suspensions_set(susp, "client-a", 0, "test", &err), 0);
    o = run(REQ(DECL, ""), FP_A, "127.0.0.1", GW_ENV_SANDBOX, NULL, 0);
    ck_assert_int_eq(o.v, GW_STAGE_NEXT);
    o = run(ETAT "\r\n", FP_A, "127.0.0.1", GW_ENV_SANDBOX, NULL, 0);
    ck_assert_int_eq(o.v, GW_STAGE_NEXT);
    ck_assert_int_eq(o.quota_remaining, 48); /* and counted */
}
END_TEST

START_TEST(trusted_proxy_forwarded_for)
{
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    gw_stage_confs *c = confs_from("{\"trusted_proxies\":[\"10.0.0.0/8\"]}", &errs);
    ck_assert_ptr_nonnull(c);
    /* right-most untrusted hop: 127.0.0.1 (10.9.9.9 is another trusted proxy) */
    outcome o = run(REQ(DECL, "X-Forwarded-For: 192.0.2.1, 127.0.0.1, 10.9.9.9\r\n"), FP_A,
                    "10.1.2.3", GW_ENV_SANDBOX, c, 0);
    ck_assert_int_eq(o.v, GW_STAGE_NEXT);
    ck_assert_str_eq(o.client_ip, "127.0.0.1");
    /* spoofed left-most entries do not help */
    o = run(REQ(DECL, "X-Forwarded-For: 127.0.0.1, 192.0.2.1\r\n"), FP_A, "10.1.2.3",
            GW_ENV_SANDBOX, c, 0);
    ck_assert_int_eq(o.err, GW_ERR_IP_DENIED);
    ck_assert_str_eq(o.client_ip, "192.0.2.1");
    /* several header lines read as one list, last line right-most */
    o = run(REQ(DECL, "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-For: 127.0.0.1\r\n"), FP_A,
            "10.1.2.3", GW_ENV_SANDBOX, c, 0);
    ck_assert_int_eq(o.v, GW_STAGE_NEXT);
    /* malformed from a trusted proxy: refused */
    o = run(REQ(DECL, "X-Forwarded-For: 127.0.0.1, bogus\r\n"), FP_A, "10.1.2.3", GW_ENV_SANDBOX, c,
            0);
    ck_assert_int_eq(o.err, GW_ERR_IP_DENIED);
    ck_assert_str_eq(o.reason, "ipallow.bad_forwarded_for");
    /* v4-mapped hop normalised */
    o = run(REQ(DECL, "X-Forwarded-For: ::ffff:127.0.0.1\r\n"), FP_A, "10.1.2.3", GW_ENV_SANDBOX, c,
            0);
    ck_assert_int_eq(o.v, GW_STAGE_NEXT);
    ck_assert_str_eq(o.client_ip, "127.0.0.1");
    gw_stage_confs_free(c);
}
END_TEST

static time_t utc(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    return timegm(&tm);
}

START_TEST(paris_offset)
{
    ck_assert_int_eq(gw_tz_offset(GW_TZ_PARIS, utc(2026, 1, 15, 12, 0)), 3600);
    ck_assert_int_eq(gw_tz_offset(GW_TZ_PARIS, utc(2026, 7, 1, 12, 0)), 7200);
    /* 2026: DST from Sunday 29 March 01:00 UTC to Sunday 25 October 01:00 UTC */
    ck_assert_int_eq(gw_tz_offset(GW_TZ_PARIS, utc(2026, 3, 29, 0, 59)), 3600);
    ck_assert_int_eq(gw_tz_offset(GW_TZ_PARIS, utc(2026, 3, 29, 1, 0)), 7200);
    ck_assert_int_eq(gw_tz_offset(GW_TZ_PARIS, utc(2026, 10, 25, 0, 59)), 7200);
    ck_assert_int_eq(gw_tz_offset(GW_TZ_PARIS, utc(2026, 10, 25, 1, 0)), 3600);
    /* 2027: 28 March and 31 October */
    ck_assert_int_eq(gw_tz_offset(GW_TZ_PARIS, utc(2027, 3, 28, 1, 0)), 7200);
    ck_assert_int_eq(gw_tz_offset(GW_TZ_PARIS, utc(2027, 3, 27, 12, 0)), 3600);
    ck_assert_int_eq(gw_tz_offset(GW_TZ_PARIS, utc(2027, 10, 31, 0, 59)), 7200);
    ck_assert_int_eq(gw_tz_offset(GW_TZ_UTC, utc(2026, 7, 1, 12, 0)), 0);
}
END_TEST

START_TEST(maintenance_slots)
{
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    gw_stage_confs *c = confs_from(
        /* 3.5 hours on the night of 24 December: only with "force" */
        "{\"maintenance\":{\"timezone\":\"Europe/Paris\",\"force\":true,"
        "\"slots\":[{\"daily\":\"02:00-04:00\"},"
        "{\"from\":\"2026-12-24T23:30\",\"until\":\"2026-12-25T01:00\"}]}}",
        &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.msgs[i]);
    ck_assert_ptr_nonnull(c);
    time_t end = 0;
    /* winter: 01:30 UTC = 02:30 Paris, in the slot until 04:00 Paris = 03:00 UTC */
    ck_assert(gw_maintenance_active(c, utc(2026, 1, 15, 1, 30), &end));
    ck_assert_int_eq(end, utc(2026, 1, 15, 3, 0));
    ck_assert(!gw_maintenance_active(c, utc(2026, 1, 15, 0, 59), &end));
    ck_assert(gw_maintenance_active(c, utc(2026, 1, 15, 1, 0), &end));
    ck_assert(!gw_maintenance_active(c, utc(2026, 1, 15, 3, 0), &end));
    /* summer: 02:00-04:00 Paris = 00:00-02:00 UTC */
    ck_assert(gw_maintenance_active(c, utc(2026, 7, 1, 0, 0), &end));
    ck_assert_int_eq(end, utc(2026, 7, 1, 2, 0));
    /* the explicit slot, 23:30 Paris on 24 December = 22:30 UTC */
    ck_assert(gw_maintenance_active(c, utc(2026, 12, 24, 22, 30), &end));
    ck_assert_int_eq(end, utc(2026, 12, 25, 0, 0));
    ck_assert(!gw_maintenance_active(c, utc(2026, 12, 24, 22, 29), &end));

    /* through the pipeline: guarded route 503 + Retry-After, etatSante reports */
    outcome o = run(REQ(DECL, ""), FP_A, "127.0.0.1", GW_ENV_SANDBOX, c, utc(2026, 1, 15, 2, 59));
    ck_assert_int_eq(o.err, GW_ERR_MAINTENANCE);
    ck_assert_str_eq(o.retry_after, "60");
    ck_assert(!o.has_local_body);
    o = run("GET /opale/v1/etatSante HTTP/1.1\r\nHost: x\r\nX-Correlation-ID: " UUID "\r\n\r\n",
            FP_A, "127.0.0.1", GW_ENV_SANDBOX, c, utc(2026, 1, 15, 2, 0));
    ck_assert_int_eq(o.err, GW_ERR_MAINTENANCE);
    ck_assert(o.has_local_body);
    ck_assert_str_eq(o.retry_after, "3600");
    /* outside the slot */
    o = run(REQ(DECL, ""), FP_A, "127.0.0.1", GW_ENV_SANDBOX, c, utc(2026, 1, 15, 12, 0));
    ck_assert_int_eq(o.v, GW_STAGE_NEXT);
    gw_stage_confs_free(c);

    /* crossing midnight */
    c = confs_from("{\"maintenance\":{\"timezone\":\"UTC\",\"slots\":[{\"daily\":\"23:30-01:"
                   "00\"}]}}",
                   &errs);
    ck_assert_ptr_nonnull(c);
    ck_assert(gw_maintenance_active(c, utc(2026, 1, 15, 23, 45), &end));
    ck_assert_int_eq(end, utc(2026, 1, 16, 1, 0));
    ck_assert(gw_maintenance_active(c, utc(2026, 1, 16, 0, 30), &end));
    ck_assert_int_eq(end, utc(2026, 1, 16, 1, 0));
    ck_assert(!gw_maintenance_active(c, utc(2026, 1, 16, 1, 0), &end));
    gw_stage_confs_free(c);
}
END_TEST

typedef struct ccase {
    const char *json;
    const char *msg;
} ccase;

static const ccase ccases[] = {
    {"{\"nope\":1}", "gw.json: access.nope: unknown key"},
    {"{\"trusted_proxies\":[\"10.0.0.1/8\"]}", "gw.json: access.trusted_proxies[0]: host bits set"},
    {"{\"trusted_proxies\":[\"x\"]}", "gw.json: access.trusted_proxies[0]: not a CIDR"},
    {"{\"trusted_proxies\":\"10.0.0.0/8\"}",
     "gw.json: access.trusted_proxies: must be an array of at most 256 CIDRs"},
    {"{\"suspensions_file\":\"\"}", "gw.json: access.suspensions_file: must be a non-empty string"},
    {"{\"maintenance\":{\"timezone\":\"Europe/Berlin\"}}",
     "gw.json: access.maintenance.timezone: must be \"Europe/Paris\" or \"UTC\""},
    {"{\"maintenance\":{\"slots\":[{\"daily\":\"12:00-14:00\"}]}}",
     "gw.json: access.maintenance.slots[0].daily: must lie within 23:00-06:00 and last at most 2 "
     "hours (CGU), unless maintenance.force is true"},
    {"{\"maintenance\":{\"slots\":[{\"daily\":\"01:00-04:00\"}]}}",
     "gw.json: access.maintenance.slots[0].daily: must lie within 23:00-06:00 and last at most 2 "
     "hours (CGU), unless maintenance.force is true"},
    {"{\"maintenance\":{\"slots\":[{\"daily\":\"2:00-4:00\"}]}}",
     "gw.json: access.maintenance.slots[0].daily: must be \"HH:MM-HH:MM\" with different times"},
    {"{\"maintenance\":{\"slots\":[{\"from\":\"2026-12-24T23:00\"}]}}",
     "gw.json: access.maintenance.slots[0]: missing key \"daily\" or \"from\"+\"until\""},
    {"{\"maintenance\":{\"slots\":[{\"from\":\"2026-02-30T23:00\",\"until\":\"2026-03-01T01:00\"}]}"
     "}",
     "gw.json: access.maintenance.slots[0].from: must be a local date-time \"YYYY-MM-DDTHH:MM\""},
    {"{\"maintenance\":{\"slots\":[{\"from\":\"2026-12-24T23:00\",\"until\":\"2026-12-24T22:00\"}]}"
     "}",
     "gw.json: access.maintenance.slots[0].until: must be after \"from\""},
    {"{\"maintenance\":{\"slots\":[{\"daily\":\"02:00-04:00\",\"from\":\"2026-12-24T23:00\"}]}}",
     "gw.json: access.maintenance.slots[0]: either \"daily\" or \"from\"/\"until\", not both"},
    {"{\"maintenance\":{\"force\":1}}", "gw.json: access.maintenance.force: must be a boolean"},
    /* the budget is per night: three back-to-back daily 2-hour slots */
    {"{\"maintenance\":{\"slots\":[{\"daily\":\"23:00-01:00\"},{\"daily\":\"01:00-03:00\"},"
     "{\"daily\":\"03:00-05:00\"}]}}",
     "gw.json: access.maintenance.slots[1].daily: the daily slots take 360 minutes a night; the "
     "CGU "
     "allow at most 2 hours a night (23:00-06:00), unless maintenance.force is true"},
    {"{\"maintenance\":{\"slots\":[{\"daily\":\"05:00-06:00\"},{\"daily\":\"23:00-00:01\"}]}}",
     "gw.json: access.maintenance.slots[1].daily: the daily slots take 121 minutes a night; the "
     "CGU "
     "allow at most 2 hours a night (23:00-06:00), unless maintenance.force is true"},
    /* a dated slot adds to the daily ones of its night (named by its evening) */
    {"{\"maintenance\":{\"slots\":[{\"daily\":\"02:00-03:30\"},"
     "{\"from\":\"2026-12-24T23:00\",\"until\":\"2026-12-25T00:00\"}]}}",
     "gw.json: access.maintenance.slots[1]: the night of 2026-12-24 has 150 minutes of maintenance "
     "(daily slots included); the CGU allow at most 2 hours a night (23:00-06:00), unless "
     "maintenance.force is true"},
    {"{\"maintenance\":{\"timezone\":\"UTC\",\"slots\":["
     "{\"from\":\"2026-12-25T01:00\",\"until\":\"2026-12-25T02:30\"},"
     "{\"from\":\"2026-12-26T01:00\",\"until\":\"2026-12-26T02:00\"},"
     "{\"from\":\"2026-12-25T04:00\",\"until\":\"2026-12-25T05:00\"}]}}",
     "gw.json: access.maintenance.slots[2]: the night of 2026-12-24 has 150 minutes of maintenance "
     "(daily slots included); the CGU allow at most 2 hours a night (23:00-06:00), unless "
     "maintenance.force is true"},
    /* each slot's own bounds come first: a slot past 06:00 */
    {"{\"maintenance\":{\"slots\":[{\"from\":\"2026-12-25T05:00\",\"until\":\"2026-12-25T06:30\"}]}"
     "}",
     "gw.json: access.maintenance.slots[0]: must lie within 23:00-06:00 and last at most 2 hours "
     "(CGU), unless maintenance.force is true"},
};

/* Within the budget: overlaps count once, nights are apart, and "force"
 * lifts the rule. */
static const char *const good_nights[] = {
    "{\"maintenance\":{\"slots\":[{\"daily\":\"01:00-02:30\"},{\"daily\":\"02:00-03:00\"}]}}",
    "{\"maintenance\":{\"slots\":[{\"daily\":\"23:00-00:00\"},{\"daily\":\"05:00-06:00\"}]}}",
    "{\"maintenance\":{\"slots\":[{\"from\":\"2026-12-24T23:00\",\"until\":\"2026-12-25T01:00\"},"
    "{\"from\":\"2026-12-25T23:00\",\"until\":\"2026-12-26T01:00\"}]}}",
    "{\"maintenance\":{\"slots\":[{\"daily\":\"02:00-03:00\"},"
    "{\"from\":\"2026-12-25T02:30\",\"until\":\"2026-12-25T03:30\"}]}}",
    "{\"maintenance\":{\"force\":true,\"slots\":[{\"daily\":\"23:00-01:00\"},"
    "{\"daily\":\"01:00-03:00\"},{\"daily\":\"03:00-05:00\"}]}}",
};

START_TEST(good_access_nights)
{
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    gw_stage_confs *c = confs_from(good_nights[_i], &errs);
    ck_assert_msg(c != NULL, "%s", errs.n ? errs.msgs[0] : "(none)");
    ck_assert_uint_eq(errs.n, 0);
    gw_stage_confs_free(c);
}
END_TEST

START_TEST(bad_access_config)
{
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    gw_stage_confs *c = confs_from(ccases[_i].json, &errs);
    ck_assert_ptr_null(c);
    ck_assert_uint_eq(errs.n, 1);
    ck_assert_str_eq(errs.msgs[0], ccases[_i].msg);
    gw_errlist_clear(&errs);
}
END_TEST

START_TEST(forced_slot_outside_band)
{
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    gw_stage_confs *c = confs_from(
        "{\"maintenance\":{\"force\":true,\"slots\":[{\"daily\":\"12:00-15:00\"}]}}", &errs);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(c->nslots, 1);
    gw_stage_confs_free(c);
}
END_TEST

START_TEST(siren_table)
{
    ck_assert(gw_siren_valid("732829320", 9));
    ck_assert(gw_siren_valid("404833048", 9));
    ck_assert(gw_siren_valid("356000000", 9));
    ck_assert(!gw_siren_valid("404833047", 9));
    ck_assert(!gw_siren_valid("000000000", 9));
    ck_assert(!gw_siren_valid("73282932", 8));
    ck_assert(!gw_siren_valid("73282932 ", 9));
    ck_assert(!gw_siren_valid("-73282932", 9));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("stages");
    TCase *tc = tcase_create("pipeline");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, pipeline_outcomes, 0, sizeof(pcases) / sizeof(pcases[0]));
    tcase_add_test(tc, policies_missing_denies);
    tcase_add_test(tc, quota_exact);
    tcase_add_loop_test(tc, quota_config_errors, 0, sizeof(qcases) / sizeof(qcases[0]));
    tcase_add_loop_test(tc, bearer_outcomes, 0, sizeof(bcases) / sizeof(bcases[0]));
    tcase_add_test(tc, scope_in_token_but_not_in_habilitation);
    tcase_add_test(tc, cache_hit_still_bound);
    tcase_add_test(tc, kill_switch);
    tcase_add_test(tc, trusted_proxy_forwarded_for);
    tcase_add_test(tc, maintenance_slots);
    tcase_add_loop_test(tc, bad_access_config, 0, sizeof(ccases) / sizeof(ccases[0]));
    tcase_add_test(tc, forced_slot_outside_band);
    tcase_add_loop_test(tc, good_access_nights, 0,
                        (int)(sizeof(good_nights) / sizeof(good_nights[0])));
    tcase_add_test(tc, paris_offset);
    tcase_add_test(tc, siren_table);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
