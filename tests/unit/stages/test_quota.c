/* Unit tests for gateway/stages/quota.c (the memory store; SUSPEND with an
 * asynchronous store: test_pipeline.c) and the quota settings. */
#include "fixture.h"

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

static void add(TCase *tc)
{
    tcase_add_test(tc, quota_exact);
    tcase_add_loop_test(tc, quota_config_errors, 0, sizeof(qcases) / sizeof(qcases[0]));
}

int main(void)
{
    return run_suite("quota", add);
}
