/* Unit tests for gateway/stages/pipeline.c: the order check (a list whose
 * stage needs one that does not run before it is refused at load), the
 * runner over the guarded list (each control's outcome), SUSPEND and resume
 * with an in-memory store that answers later, and the "access" object's
 * unknown keys. */
#include "fixture.h"

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

/* A list in which a stage comes before one it needs: refused with a clear
 * message, by the check and by the loader (so `opale-gateway -t` fails). */
START_TEST(order_check)
{
    char why[160];
    const gw_stage *good[] = {&gw_stage_mtls, &gw_stage_route, &gw_stage_rights};
    ck_assert_int_eq(gw_pipeline_check(good, 3, why, sizeof(why)), 0);
    const gw_stage *bad[] = {&gw_stage_route, &gw_stage_rights, &gw_stage_mtls};
    ck_assert_int_eq(gw_pipeline_check(bad, 3, why, sizeof(why)), -1);
    ck_assert_str_eq(why, "stage 'rights' needs 'mtls', which does not run before it");
    const gw_stage *twice[] = {&gw_stage_mtls, &gw_stage_mtls};
    ck_assert_int_eq(gw_pipeline_check(twice, 2, why, sizeof(why)), -1);
    ck_assert_str_eq(why, "stage 'mtls' appears twice");
    const gw_stage *quota_first[] = {&gw_stage_quota, &gw_stage_route, &gw_stage_mtls};
    ck_assert_int_eq(gw_pipeline_check(quota_first, 3, why, sizeof(why)), -1);
    ck_assert_str_eq(why, "stage 'quota' needs 'route', which does not run before it");

    /* through the loader: the list named, the config file as the location */
    const gw_stage *const *lists[GW_LIST_COUNT] = {bad, good, good, good};
    size_t lens[GW_LIST_COUNT] = {3, 3, 3, 3};
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    ck_assert_ptr_null(gw_stage_lists_build(&conf, lists, lens, &errs));
    ck_assert_uint_eq(errs.n, 1);
    ck_assert_str_eq(errs.msgs[0], "gw.json: the guarded list of stages: stage 'rights' needs "
                                   "'mtls', which does not run before it");
    gw_errlist_clear(&errs);
    /* the gateway's own lists pass */
    gw_stage_lists *l = gw_stage_lists_load(&conf, &errs);
    ck_assert_ptr_nonnull(l);
    ck_assert_uint_eq(errs.n, 0);
    for (int k = 0; k < GW_LIST_COUNT; k++) {
        const gw_pipeline *p = gw_stage_list(l, (gw_list_kind)k);
        ck_assert_int_eq(gw_pipeline_check(p->stages, p->n, why, sizeof(why)), 0);
    }
    gw_stage_lists_free(l);
}
END_TEST

START_TEST(unknown_access_key)
{
    expect_access_error("{\"nope\":1}", "gw.json: access.nope: unknown key");
    expect_access_error("[]", "gw.json: access: must be an object");
}
END_TEST

/* ---- SUSPEND and resume: an in-memory quota store that answers later ---- */

typedef struct fake_call {
    int live;
    int cancelled;
    void (*cb)(void *arg, const gw_redis_reply *r);
    void *arg;
    char key[80];
    unsigned limit;
} fake_call;

typedef struct fake_store {
    fake_call calls[4];
    size_t n;
    unsigned used; /* admissions so far, whatever the key */
} fake_store;

static gw_redis_call *fake_quota(void *ctx, const char *key, unsigned limit, uint64_t window_ms,
                                 const char *member, void (*cb)(void *, const gw_redis_reply *),
                                 void *arg)
{
    (void)window_ms;
    (void)member;
    fake_store *s = ctx;
    ck_assert_uint_lt(s->n, 4);
    fake_call *c = &s->calls[s->n++];
    memset(c, 0, sizeof(*c));
    c->live = 1;
    c->cb = cb;
    c->arg = arg;
    c->limit = limit;
    snprintf(c->key, sizeof(c->key), "%s", key);
    return (gw_redis_call *)c;
}

static void fake_cancel(gw_redis_call *call)
{
    fake_call *c = (fake_call *)call;
    c->live = 0;
    c->cancelled = 1;
}

/* The store answers call <i>: admitted unless the limit is reached. */
static void fake_answer(fake_store *s, size_t i, int ok)
{
    fake_call *c = &s->calls[i];
    ck_assert(c->live);
    c->live = 0;
    gw_redis_reply r = {.ok = ok, .reason = ok ? NULL : "redis.down"};
    if (ok) {
        r.admitted = s->used < c->limit;
        s->used += r.admitted;
        r.remaining = c->limit - s->used;
        r.reset_ms = 60000;
    }
    c->cb(c->arg, &r);
}

static const gw_qstore_ops fake_ops = {fake_quota, fake_cancel};

static int finals;
static gw_verdict final_v;
static void on_done(gw_access *a, gw_verdict v)
{
    (void)a;
    finals++;
    final_v = v;
}

static gw_quota *redis_quota(const char *on_failure)
{
    char js[256];
    snprintf(js, sizeof(js),
             "{\"store\":\"redis\",\"on_store_failure\":\"%s\","
             "\"redis\":{\"nodes\":[\"127.0.0.1:1\"]}}",
             on_failure);
    json_error_t je;
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    conf.quota = json_loads(js, 0, &je);
    gw_quota *q = gw_quota_load(&conf, &errs);
    json_decref(conf.quota);
    conf.quota = NULL;
    ck_assert_msg(q != NULL, "%s", errs.n ? errs.msgs[0] : "");
    return q;
}

START_TEST(suspend_and_resume)
{
    fake_store store;
    memset(&store, 0, sizeof(store));
    gw_quota *keep = quota;
    quota = redis_quota("deny");
    qstore = &fake_ops;
    qstore_ctx = &store;

    /* 1. the quota stage suspends; the store answers later: admitted, the
     * runner resumes after it and reports NEXT once */
    gw_http_request *http = gw_test_request(REQ(DECL, ""));
    char *tok = make_token("client-a", "H1", FP_A, "SANDBOX", "api_opale_declarations", 3600, NULL);
    char raw[4096];
    snprintf(raw, sizeof(raw),
             "GET " DECL " HTTP/1.1\r\nHost: x\r\nX-Correlation-ID: " UUID
             "\r\nID_Teleservice: TS-0001\r\nAuthorization: Bearer %s\r\n\r\n",
             tok);
    free(tok);
    gw_http_request_free(http);
    http = gw_test_request(raw);
    gw_access a;
    access_init(&a, http, FP_A, "127.0.0.1", GW_ENV_SANDBOX, NULL, 0);
    a.on_done = on_done;
    finals = 0;
    ck_assert_int_eq(gw_pipeline_run(&a), GW_STAGE_SUSPEND);
    ck_assert_uint_eq(store.n, 1);
    ck_assert_str_eq(store.calls[0].key, "opale:q:{H1}");
    ck_assert_int_eq(finals, 0); /* nothing decided while the store is silent */
    ck_assert(!a.res.quota.ran);
    fake_answer(&store, 0, 1);
    ck_assert_int_eq(finals, 1);
    ck_assert_int_eq(final_v, GW_STAGE_NEXT);
    ck_assert(a.res.quota.ran);
    ck_assert_str_eq(a.res.quota.store, "redis");
    ck_assert_uint_eq(a.res.quota.remaining, 49);
    ck_assert_uint_eq(a.next, a.list->n); /* every stage after quota ran */
    gw_pipeline_done(&a);
    ck_assert(!store.calls[0].cancelled);

    /* 2. the store fails: on_store_failure "deny" refuses after resuming */
    access_init(&a, http, FP_A, "127.0.0.1", GW_ENV_SANDBOX, NULL, 0);
    a.on_done = on_done;
    ck_assert_int_eq(gw_pipeline_run(&a), GW_STAGE_SUSPEND);
    fake_answer(&store, 1, 0);
    ck_assert_int_eq(finals, 2);
    ck_assert_int_eq(final_v, GW_STAGE_REJECT);
    ck_assert_int_eq(a.reply.err, GW_ERR_QUOTA_UNAVAILABLE);
    ck_assert_str_eq(a.res.quota.store, "degraded");
    ck_assert_str_eq(a.res.quota.store_reason, "redis.down");
    gw_pipeline_done(&a);

    /* 3. the request ends before the store answers: done() cancels the call
     * and the callback never runs */
    access_init(&a, http, FP_A, "127.0.0.1", GW_ENV_SANDBOX, NULL, 0);
    a.on_done = on_done;
    ck_assert_int_eq(gw_pipeline_run(&a), GW_STAGE_SUSPEND);
    gw_pipeline_done(&a);
    ck_assert(store.calls[2].cancelled);
    ck_assert(!store.calls[2].live);
    ck_assert_int_eq(finals, 2);

    gw_http_request_free(http);
    gw_quota_free(quota);
    quota = keep;
    qstore = NULL;
    qstore_ctx = NULL;
}
END_TEST

static void add(TCase *tc)
{
    tcase_add_loop_test(tc, pipeline_outcomes, 0, sizeof(pcases) / sizeof(pcases[0]));
    tcase_add_test(tc, policies_missing_denies);
    tcase_add_test(tc, order_check);
    tcase_add_test(tc, unknown_access_key);
    tcase_add_test(tc, suspend_and_resume);
}

int main(void)
{
    return run_suite("pipeline", add);
}
