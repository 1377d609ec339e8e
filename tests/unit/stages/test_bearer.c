/* Unit tests for gateway/stages/bearer.c: the token's signature, claims and
 * binding to the certificate, the cache, the scope. */
#include "fixture.h"

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

static void add(TCase *tc)
{
    tcase_add_loop_test(tc, bearer_outcomes, 0, sizeof(bcases) / sizeof(bcases[0]));
    tcase_add_test(tc, scope_in_token_but_not_in_habilitation);
    tcase_add_test(tc, cache_hit_still_bound);
}

int main(void)
{
    return run_suite("bearer", add);
}
