/* Unit tests for gateway/token/{oauth,endpoint,cache}.c: the oauth settings,
 * POST /token (every RFC 6749 outcome), the backend assertion and the
 * verified-token cache. The JWS layer itself is tested by test_jose.c. */
#include <check.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "token/cache.h"
#include "token/endpoint.h"
#include "token/oauth.h"

#define FP "5a1f0c2e9b8d7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29"
#define NOW ((time_t)1790000000) /* 2026-09-21 */
#define TODAY 20260921

static char dir[64];
static gw_conf conf;
static gw_oauth *oauth;
static gw_policy *pol;
static gw_policy *pol_secret;
static gw_memlog *rate;

static void write_key(const char *name, const char *alg)
{
    EVP_PKEY *k = strcmp(alg, "EC") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")
                                         : EVP_PKEY_Q_keygen(NULL, NULL, alg);
    ck_assert_ptr_nonnull(k);
    char p[128];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    EVP_PKEY_free(k);
}

static gw_oauth *load(const char *json, gw_errlist *errs)
{
    json_error_t je;
    conf.oauth = json_loads(json, 0, &je);
    ck_assert_ptr_nonnull(conf.oauth);
    gw_oauth *o = gw_oauth_load(&conf, errs);
    json_decref(conf.oauth);
    conf.oauth = NULL;
    return o;
}

static gw_policy *policy(const char *extra_consumer, const char *state, const char *def)
{
    char text[2048];
    snprintf(text, sizeof(text),
             "{\"habilitation\":{\"id\":\"H456\",\"definition\":\"%s\",\"state\":\"%s\","
             "\"valid_from\":\"2025-01-01\",\"valid_until\":\"2027-12-31\"},"
             "\"organization\":{\"siret\":\"21920023500014\",\"name\":\"Commune\"},"
             "\"consumer\":{\"client_id\":\"commune-sandbox\",\"id_teleservice\":\"TS-0001\","
             "\"certificates\":[{\"sha256\":\"" FP "\"}],\"ip_allowlist\":[\"127.0.0.1/32\"]%s},"
             "\"rights\":{\"scopes\":[\"api_opale_declarations\",\"api_opale_creances\"],"
             "\"years\":{\"from\":2019,\"to\":2025}}}",
             def, state, extra_consumer);
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    gw_policy *p = gw_policy_parse("p.json", text, NULL, &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.msgs[i]);
    ck_assert_ptr_nonnull(p);
    return p;
}

static void setup(void)
{
    strcpy(dir, "/tmp/test_token.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    write_key("es.pem", "EC");
    write_key("ed.pem", "ED25519");
    memset(&conf, 0, sizeof(conf));
    conf.path = "gw.json";
    conf.dir = dir;
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    char kp[128];
    snprintf(kp, sizeof(kp), "%s/mac.key", dir);
    FILE *kf = fopen(kp, "w");
    ck_assert_ptr_nonnull(kf);
    fputs("0123456789abcdef0123456789abcdef\n", kf);
    fclose(kf);
    oauth = load("{\"issuer\":\"https://gw.test\",\"token_requests_per_minute\":3,"
                 "\"assertion_mac_key_file\":\"mac.key\","
                 "\"signing_keys\":[{\"kid\":\"k-es\",\"file\":\"es.pem\",\"alg\":\"ES256\","
                 "\"active\":true},{\"kid\":\"k-ed\",\"file\":\"ed.pem\",\"alg\":\"EdDSA\"}]}",
                 &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.msgs[i]);
    ck_assert_ptr_nonnull(oauth);
    pol = policy("", "active", "api_opale_sandbox");
    /* secret "s3cret-value": its SHA-256 */
    unsigned char md[32];
    SHA256((const unsigned char *)"s3cret-value", 12, md);
    char hex[65], extra[128];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    snprintf(extra, sizeof(extra), ",\"client_secret_sha256\":\"%s\"", hex);
    pol_secret = policy(extra, "active", "api_opale_sandbox");
    rate = gw_memlog_new();
}

static void teardown(void)
{
    gw_oauth_free(oauth);
    gw_policy_free(pol);
    gw_policy_free(pol_secret);
    gw_memlog_free(rate);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static gw_http_request *req(const char *method, const char *ctype, const char *body,
                            const char *extra_headers)
{
    char raw[4096];
    snprintf(raw, sizeof(raw),
             "%s /token HTTP/1.1\r\nHost: x\r\n%s%s%s%sContent-Length: %zu\r\n\r\n%s", method,
             ctype ? "Content-Type: " : "", ctype ? ctype : "", ctype ? "\r\n" : "",
             extra_headers ? extra_headers : "", strlen(body), body);
    gw_http_limits lim = {16384, 100, 4096};
    gw_http_parser *p = gw_http_parser_new(0, &lim);
    size_t used = 0;
    ck_assert_int_eq(gw_http_parser_feed(p, raw, strlen(raw), &used), GW_HTTP_COMPLETE);
    gw_http_request *r = gw_http_parser_take_request(p);
    gw_http_parser_free(p);
    return r;
}

#define FORM "application/x-www-form-urlencoded"

typedef struct tcase_ {
    const char *name;
    const char *method;
    const char *ctype;
    const char *body;
    const char *headers;
    int secret_policy;
    int no_policy;
    int ip_denied;
    int killswitch;
    const char *state;
    gw_env env;
    int status;
    const char *error; /* NULL for success */
    const char *scope; /* granted, on success */
} tcase_;

static const tcase_ cases[] = {
    {"all scopes", "POST", FORM, "grant_type=client_credentials", NULL, 0, 0, 0, 0, "active",
     GW_ENV_SANDBOX, 200, NULL, "api_opale_declarations api_opale_creances"},
    {"one scope", "POST", FORM, "grant_type=client_credentials&scope=api_opale_creances", NULL, 0,
     0, 0, 0, "active", GW_ENV_SANDBOX, 200, NULL, "api_opale_creances"},
    {"scope encoded", "POST", FORM,
     "grant_type=client_credentials&scope=api_opale_creances+api_opale_declarations", NULL, 0, 0, 0,
     0, "active", GW_ENV_SANDBOX, 200, NULL, "api_opale_creances api_opale_declarations"},
    {"client_id matches", "POST", FORM "; charset=UTF-8",
     "grant_type=client_credentials&client_id=commune-sandbox", NULL, 0, 0, 0, 0, "active",
     GW_ENV_SANDBOX, 200, NULL, "api_opale_declarations api_opale_creances"},
    {"secret in addition", "POST", FORM, "grant_type=client_credentials",
     "Authorization: Basic Y29tbXVuZS1zYW5kYm94OnMzY3JldC12YWx1ZQ==\r\n", 1, 0, 0, 0, "active",
     GW_ENV_SANDBOX, 200, NULL, "api_opale_declarations api_opale_creances"},
    {"GET", "GET", FORM, "", NULL, 0, 0, 0, 0, "active", GW_ENV_SANDBOX, 400, "invalid_request",
     NULL},
    {"json body", "POST", "application/json", "{\"grant_type\":\"client_credentials\"}", NULL, 0, 0,
     0, 0, "active", GW_ENV_SANDBOX, 400, "invalid_request", NULL},
    {"no content type", "POST", NULL, "grant_type=client_credentials", NULL, 0, 0, 0, 0, "active",
     GW_ENV_SANDBOX, 400, "invalid_request", NULL},
    {"no grant_type", "POST", FORM, "scope=api_opale_creances", NULL, 0, 0, 0, 0, "active",
     GW_ENV_SANDBOX, 400, "invalid_request", NULL},
    {"repeated parameter", "POST", FORM,
     "grant_type=client_credentials&grant_type=client_credentials", NULL, 0, 0, 0, 0, "active",
     GW_ENV_SANDBOX, 400, "invalid_request", NULL},
    {"bad percent", "POST", FORM, "grant_type=client_credentials&scope=%zz", NULL, 0, 0, 0, 0,
     "active", GW_ENV_SANDBOX, 400, "invalid_request", NULL},
    {"secret in the body", "POST", FORM, "grant_type=client_credentials&client_secret=x", NULL, 1,
     0, 0, 0, "active", GW_ENV_SANDBOX, 400, "invalid_request", NULL},
    {"password grant", "POST", FORM, "grant_type=password&username=a&password=b", NULL, 0, 0, 0, 0,
     "active", GW_ENV_SANDBOX, 400, "unsupported_grant_type", NULL},
    {"unknown certificate", "POST", FORM, "grant_type=client_credentials", NULL, 0, 1, 0, 0,
     "active", GW_ENV_SANDBOX, 401, "invalid_client", NULL},
    {"client_id of another", "POST", FORM, "grant_type=client_credentials&client_id=someone", NULL,
     0, 0, 0, 0, "active", GW_ENV_SANDBOX, 401, "invalid_client", NULL},
    {"secret missing", "POST", FORM, "grant_type=client_credentials", NULL, 1, 0, 0, 0, "active",
     GW_ENV_SANDBOX, 401, "invalid_client", NULL},
    {"secret wrong", "POST", FORM, "grant_type=client_credentials",
     "Authorization: Basic Y29tbXVuZS1zYW5kYm94Ondyb25n\r\n", 1, 0, 0, 0, "active", GW_ENV_SANDBOX,
     401, "invalid_client", NULL},
    {"basic without a secret in the policy", "POST", FORM, "grant_type=client_credentials",
     "Authorization: Basic Y29tbXVuZS1zYW5kYm94OnMzY3JldC12YWx1ZQ==\r\n", 0, 0, 0, 0, "active",
     GW_ENV_SANDBOX, 401, "invalid_client", NULL},
    {"scope outside the habilitation", "POST", FORM,
     "grant_type=client_credentials&scope=api_opale_bancaires", NULL, 0, 0, 0, 0, "active",
     GW_ENV_SANDBOX, 400, "invalid_scope", NULL},
    {"empty scope", "POST", FORM, "grant_type=client_credentials&scope=", NULL, 0, 0, 0, 0,
     "active", GW_ENV_SANDBOX, 400, "invalid_scope", NULL},
};

static void b64url_of_fp(char out[48])
{
    unsigned char raw[32];
    for (int i = 0; i < 32; i++) {
        unsigned v;
        sscanf(FP + 2 * i, "%2x", &v);
        raw[i] = (unsigned char)v;
    }
    char *b = gw_b64url_encode(raw, 32);
    strcpy(out, b);
    free(b);
}

START_TEST(token_endpoint)
{
    const tcase_ *c = &cases[_i];
    gw_policy *p = policy(c->secret_policy ? "" : "", c->state, "api_opale_sandbox");
    const gw_policy *use = c->no_policy ? NULL : c->secret_policy ? pol_secret : p;
    gw_http_request *r = req(c->method, c->ctype, c->body, c->headers);
    gw_token_in in = {
        .http = r,
        .policy = use,
        .cert_sha256 = FP,
        .env = c->env,
        .now = NOW,
        .now_ms = 1000,
        .rate = NULL,
    };
    gw_token_out out;
    gw_token_endpoint(oauth, &in, &out);
    ck_assert_msg(out.status == c->status, "%s: status %d", c->name, out.status);
    json_error_t je;
    json_t *body = json_loads(out.body, 0, &je);
    ck_assert_ptr_nonnull(body);
    if (c->error != NULL) {
        ck_assert_str_eq(json_string_value(json_object_get(body, "error")), c->error);
        ck_assert_ptr_nonnull(json_string_value(json_object_get(body, "error_description")));
        ck_assert_ptr_null(json_object_get(body, "access_token"));
        if (c->status == 401 && c->headers != NULL)
            ck_assert_ptr_nonnull(out.www_authenticate);
    } else {
        ck_assert_str_eq(json_string_value(json_object_get(body, "token_type")), "Bearer");
        ck_assert_int_eq(json_integer_value(json_object_get(body, "expires_in")), 3600);
        ck_assert_str_eq(json_string_value(json_object_get(body, "scope")), c->scope);
        const char *tok = json_string_value(json_object_get(body, "access_token"));
        gw_alg algs[] = {GW_ALG_ES256};
        gw_jws_rules jr = {algs, 1, 0, 0};
        gw_jws jws;
        ck_assert_ptr_null(gw_jws_verify(tok, strlen(tok), oauth->sets, oauth->nsets, &jr, &jws));
        ck_assert_str_eq(json_string_value(json_object_get(jws.header, "kid")), "k-es");
        ck_assert_str_eq(json_string_value(json_object_get(jws.header, "typ")), "at+jwt");
        gw_jwt_rules rr = {NOW, 60, "https://gw.test", "api-opale", 1};
        gw_claims cl;
        ck_assert_ptr_null(gw_jwt_check(jws.payload, &rr, &cl));
        ck_assert_str_eq(cl.client_id, "commune-sandbox");
        ck_assert_str_eq(cl.sub, "commune-sandbox");
        ck_assert_str_eq(cl.habilitation, "H456");
        ck_assert_str_eq(cl.keytype, "SANDBOX");
        ck_assert_str_eq(cl.scope, c->scope);
        ck_assert_str_eq(cl.jti, out.jti);
        ck_assert_int_eq(cl.exp, NOW + 3600);
        ck_assert_int_eq(cl.iat, NOW);
        ck_assert_int_eq(cl.nbf, NOW);
        char x5t[48];
        b64url_of_fp(x5t);
        ck_assert(cl.has_cnf);
        ck_assert_str_eq(cl.cnf_x5t, x5t);
        gw_jws_clear(&jws);
    }
    json_decref(body);
    free(out.body);
    gw_http_request_free(r);
    gw_policy_free(p);
}
END_TEST

/* A refusal by a stage of the token list (the certificate, the address, the
 * kill switch, the habilitation) in the OAuth form; the others have none. */
START_TEST(token_refusals)
{
    static const struct {
        gw_err_id err;
        int status;
        const char *error, *reason;
    } rc[] = {
        {GW_ERR_CERT_UNKNOWN, 401, "invalid_client", "token.invalid_client"},
        {GW_ERR_IP_DENIED, 401, "invalid_client", "token.invalid_client"},
        {GW_ERR_CONSUMER_SUSPENDED, 400, "invalid_grant", "token.invalid_grant"},
        {GW_ERR_HAB_SUSPENDED, 400, "invalid_grant", "token.invalid_grant"},
        {GW_ERR_HAB_REVOKED, 400, "invalid_grant", "token.invalid_grant"},
        {GW_ERR_HAB_NOT_YET_VALID, 400, "invalid_grant", "token.invalid_grant"},
        {GW_ERR_HAB_EXPIRED, 400, "invalid_grant", "token.invalid_grant"},
        {GW_ERR_ENVIRONMENT, 400, "invalid_grant", "token.invalid_grant"},
    };
    for (size_t i = 0; i < sizeof(rc) / sizeof(rc[0]); i++) {
        gw_token_out out;
        ck_assert_int_eq(gw_token_refused(rc[i].err, &out), 0);
        ck_assert_int_eq(out.status, rc[i].status);
        ck_assert_str_eq(out.reason, rc[i].reason);
        json_error_t je;
        json_t *body = json_loads(out.body, 0, &je);
        ck_assert_ptr_nonnull(body);
        ck_assert_str_eq(json_string_value(json_object_get(body, "error")), rc[i].error);
        ck_assert_ptr_nonnull(json_string_value(json_object_get(body, "error_description")));
        json_decref(body);
        free(out.body);
    }
    gw_token_out out;
    ck_assert_int_eq(gw_token_refused(GW_ERR_JOURNAL_UNAVAILABLE, &out), -1);
    ck_assert_int_eq(gw_token_refused(GW_ERR_INTERNAL, &out), -1);
}
END_TEST

START_TEST(token_rate_limit)
{
    gw_http_request *r = req("POST", FORM, "grant_type=client_credentials", NULL);
    gw_token_in in = {.http = r,
                      .policy = pol,
                      .cert_sha256 = FP,
                      .env = GW_ENV_SANDBOX,
                      .now = NOW,
                      .now_ms = 1000,
                      .rate = rate};
    gw_token_out out;
    for (int i = 0; i < 3; i++) {
        gw_token_endpoint(oauth, &in, &out);
        ck_assert_int_eq(out.status, 200);
        free(out.body);
    }
    in.now_ms = 2000;
    gw_token_endpoint(oauth, &in, &out);
    ck_assert_int_eq(out.status, 429);
    ck_assert_str_eq(out.retry_after, "59");
    ck_assert_str_eq(out.reason, "token.rate_limited");
    free(out.body);
    in.now_ms = 61000; /* the first request left the window */
    gw_token_endpoint(oauth, &in, &out);
    ck_assert_int_eq(out.status, 200);
    free(out.body);
    gw_http_request_free(r);
}
END_TEST

START_TEST(assertion)
{
    char *a = gw_assertion_sign(oauth, pol, GW_ENV_SANDBOX, "api_opale_creances",
                                "11111111-2222-4333-8444-555555555555", NOW);
    ck_assert_ptr_nonnull(a);
    gw_alg algs[] = {GW_ALG_ES256};
    gw_jws_rules jr = {algs, 1, 0, 0};
    gw_jws jws;
    ck_assert_ptr_null(gw_jws_verify(a, strlen(a), oauth->sets, oauth->nsets, &jr, &jws));
    json_t *p = jws.payload;
    ck_assert_str_eq(json_string_value(json_object_get(p, "aud")), "opale-backend");
    ck_assert_str_eq(json_string_value(json_object_get(p, "client_id")), "commune-sandbox");
    ck_assert_str_eq(json_string_value(json_object_get(p, "habilitation")), "H456");
    ck_assert_str_eq(json_string_value(json_object_get(p, "scope")), "api_opale_creances");
    ck_assert_str_eq(json_string_value(json_object_get(p, "keytype")), "SANDBOX");
    ck_assert_str_eq(json_string_value(json_object_get(p, "request_id")),
                     "11111111-2222-4333-8444-555555555555");
    ck_assert_int_eq(json_integer_value(json_object_get(p, "exp")), NOW + 60);
    gw_jws_clear(&jws);
    free(a);
}
END_TEST

START_TEST(jwks_published)
{
    json_error_t je;
    json_t *j = json_loads(oauth->jwks_json, 0, &je);
    ck_assert_ptr_nonnull(j);
    json_t *keys = json_object_get(j, "keys");
    ck_assert_uint_eq(json_array_size(keys), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(keys, 0), "kid")), "k-es");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(keys, 1), "kid")), "k-ed");
    ck_assert_ptr_null(strstr(oauth->jwks_json, "\"d\""));
    json_decref(j);
}
END_TEST

typedef struct ocase {
    const char *json;
    const char *msg;
} ocase;

static const ocase ocases[] = {
    {"{\"signing_keys\":[{\"kid\":\"a\",\"file\":\"es.pem\",\"active\":true}]}",
     "gw.json: oauth.issuer: required string"},
    {"{\"issuer\":\"i\",\"nope\":1,\"signing_keys\":[{\"kid\":\"a\",\"file\":\"es.pem\","
     "\"active\":true}]}",
     "gw.json: oauth.nope: unknown key"},
    {"{\"issuer\":\"i\"}", "gw.json: oauth.signing_keys: required (at least one key)"},
    {"{\"issuer\":\"i\",\"signing_keys\":[{\"kid\":\"a\",\"file\":\"es.pem\"}]}",
     "gw.json: oauth.signing_keys: exactly one key must be \"active\": true"},
    {"{\"issuer\":\"i\",\"signing_keys\":[{\"kid\":\"a\",\"file\":\"es.pem\",\"alg\":\"HS256\","
     "\"active\":true}]}",
     "gw.json: oauth.signing_keys[0].alg: must be \"ES256\", \"RS256\", \"PS256\" or \"EdDSA\""},
    {"{\"issuer\":\"i\",\"signing_keys\":[{\"kid\":\"a\",\"file\":\"es.pem\",\"active\":true},"
     "{\"kid\":\"a\",\"file\":\"ed.pem\",\"alg\":\"EdDSA\"}]}",
     "gw.json: oauth.signing_keys[1].kid: duplicate kid"},
    {"{\"issuer\":\"i\",\"token_lifetime_s\":5,\"signing_keys\":[{\"kid\":\"a\",\"file\":"
     "\"es.pem\",\"active\":true}]}",
     "gw.json: oauth.token_lifetime_s: must be an integer between 60 and 86400"},
    {"{\"issuer\":\"i\",\"algorithms\":[\"none\"],\"signing_keys\":[{\"kid\":\"a\",\"file\":"
     "\"es.pem\",\"active\":true}]}",
     "gw.json: oauth.algorithms[0]: must be \"ES256\", \"RS256\", \"PS256\" or \"EdDSA\""},
};

START_TEST(oauth_config_errors)
{
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    gw_oauth *o = load(ocases[_i].json, &errs);
    ck_assert_ptr_null(o);
    ck_assert_uint_ge(errs.n, 1);
    ck_assert_str_eq(errs.msgs[0], ocases[_i].msg);
    gw_errlist_clear(&errs);
}
END_TEST

START_TEST(oauth_key_file_errors)
{
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    /* a P-256 key declared as EdDSA, and a missing file */
    gw_oauth *o = load("{\"issuer\":\"i\",\"signing_keys\":[{\"kid\":\"a\",\"file\":\"es.pem\","
                       "\"alg\":\"EdDSA\",\"active\":true},{\"kid\":\"b\",\"file\":\"none.pem\"}]}",
                       &errs);
    ck_assert_ptr_null(o);
    ck_assert_uint_ge(errs.n, 2);
    ck_assert(strncmp(errs.msgs[0], "gw.json: oauth.signing_keys[0].file: ", 37) == 0);
    ck_assert(strncmp(errs.msgs[1], "gw.json: oauth.signing_keys[1].file: ", 37) == 0);
    gw_errlist_clear(&errs);
}
END_TEST

START_TEST(cache_lru_and_expiry)
{
    gw_token_cache *c = gw_token_cache_new(2);
    gw_claims cl, got;
    memset(&cl, 0, sizeof(cl));
    strcpy(cl.scope_buf, "a b");
    cl.scope_buf[1] = '\0';
    cl.scopes[0] = cl.scope_buf;
    cl.scopes[1] = cl.scope_buf + 2;
    cl.nscopes = 2;
    strcpy(cl.jti, "one");
    unsigned char k1[32] = {1}, k2[32] = {2}, k3[32] = {3};
    int own = 0;
    gw_token_cache_put(c, k1, &cl, 1, NOW + 10);
    strcpy(cl.jti, "two");
    gw_token_cache_put(c, k2, &cl, 0, NOW + 10);
    ck_assert(gw_token_cache_get(c, k1, NOW, &got, &own)); /* k1 most recent now */
    ck_assert_str_eq(got.jti, "one");
    ck_assert_int_eq(own, 1);
    ck_assert_str_eq(got.scopes[1], "b");
    ck_assert_ptr_eq(got.scopes[1], got.scope_buf + 2); /* points into the copy */
    strcpy(cl.jti, "three");
    gw_token_cache_put(c, k3, &cl, 0, NOW + 10); /* evicts k2, the least recent */
    ck_assert_uint_eq(gw_token_cache_size(c), 2);
    ck_assert(!gw_token_cache_get(c, k2, NOW, &got, &own));
    ck_assert(gw_token_cache_get(c, k3, NOW, &got, &own));
    ck_assert(gw_token_cache_get(c, k1, NOW + 10, &got, &own));
    ck_assert(!gw_token_cache_get(c, k1, NOW + 11, &got, &own)); /* expired: dropped */
    ck_assert_uint_eq(gw_token_cache_size(c), 1);
    gw_token_cache_free(c);
}
END_TEST

/* The key is the token's SHA-256 whether the memo has it or not: random
 * tokens of every length up to past the memo's 4 KiB bound, each also with
 * one byte changed (first, middle, last: same length, same slot most of the
 * time), asked again and again in a shuffled order so that slots are hit,
 * missed and taken over. */
START_TEST(cache_key_is_the_sha256)
{
    enum { N = 600, ROUNDS = 6 };
    gw_token_cache *c = gw_token_cache_new(16);
    static char toks[N][4200];
    static size_t lens[N];
    unsigned seed = 12345;
    for (size_t i = 0; i < N; i += 4) {
        size_t n = (size_t)(rand_r(&seed) % 4200);
        if (i % 40 == 0)
            n = (i / 40) % 3 == 0 ? 4096 : (i / 40) % 3 == 1 ? 4097 : 1;
        for (size_t k = 0; k < n; k++)
            toks[i][k] = (char)(33 + rand_r(&seed) % 90);
        lens[i] = n;
        for (size_t v = 1; v < 4; v++) {
            memcpy(toks[i + v], toks[i], n);
            lens[i + v] = n;
            size_t at = v == 1 ? 0 : v == 2 ? n / 2 : n - 1;
            if (n > 0)
                toks[i + v][at] ^= 1;
        }
    }
    for (int r = 0; r < ROUNDS; r++) {
        for (size_t j = 0; j < N; j++) {
            size_t i = r == 0 ? j : (size_t)rand_r(&seed) % N;
            unsigned char want[32], got[32];
            SHA256((const unsigned char *)toks[i], lens[i], want);
            memset(got, 0, sizeof(got));
            ck_assert_int_eq(gw_token_cache_key(c, toks[i], lens[i], got), 0);
            ck_assert_msg(memcmp(got, want, 32) == 0, "token %zu (length %zu), round %d", i,
                          lens[i], r);
            ck_assert_int_eq(gw_token_cache_key(c, toks[i], lens[i], got), 0); /* again: memo */
            ck_assert(memcmp(got, want, 32) == 0);
            ck_assert_int_eq(gw_token_cache_key(NULL, toks[i], lens[i], got), 0);
            ck_assert(memcmp(got, want, 32) == 0);
        }
    }
    gw_token_cache_free(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("token");
    TCase *tc = tcase_create("endpoint");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, token_endpoint, 0, sizeof(cases) / sizeof(cases[0]));
    tcase_add_test(tc, token_rate_limit);
    tcase_add_test(tc, token_refusals);
    tcase_add_test(tc, assertion);
    tcase_add_test(tc, jwks_published);
    tcase_add_loop_test(tc, oauth_config_errors, 0, sizeof(ocases) / sizeof(ocases[0]));
    tcase_add_test(tc, oauth_key_file_errors);
    tcase_add_test(tc, cache_lru_and_expiry);
    tcase_add_test(tc, cache_key_is_the_sha256);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
