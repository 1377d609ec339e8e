/* Unit tests for gateway/evidence/recette.c (criteria evaluation, criteria
 * file) and the signed documents of gateway/evidence/evidence.c. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/evp.h>

#include "../common.h"
#include "evidence/evidence.h"
#include "evidence/recette.h"
#include "token/jose.h"

#define ME "partner-sandbox"

/* records of <ME>: {"ts offset ms", "route", "decision", "reason", extra JSON members} */
typedef struct rspec {
    int at_ms;
    const char *route, *decision, *reason, *extra;
} rspec;

static gw_ev_rec *build(const rspec *sp, size_t n)
{
    gw_ev_rec *r = calloc(n, sizeof(*r));
    for (size_t i = 0; i < n; i++) {
        char buf[1024];
        snprintf(buf, sizeof(buf),
                 "{\"consumer\":\"%s\",\"route\":\"%s\",\"decision\":\"%s\"%s%s%s,\"status\":%d,"
                 "\"teleservice\":\"TS\",\"correlation_id\":\"c-%zu\"%s%s}",
                 ME, sp[i].route, sp[i].decision, sp[i].reason ? ",\"reason\":\"" : "",
                 sp[i].reason ? sp[i].reason : "", sp[i].reason ? "\"" : "",
                 strcmp(sp[i].decision, "allow") == 0 ? 200 : 400, i, sp[i].extra ? "," : "",
                 sp[i].extra ? sp[i].extra : "");
        r[i].obj = json_loads(buf, 0, NULL);
        ck_assert_ptr_nonnull(r[i].obj);
        r[i].ts_ms = 1796169600000LL + sp[i].at_ms;
        r[i].seq = i + 1;
    }
    return r;
}

static void drop(gw_ev_rec *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(r[i].obj);
    free(r);
}

static const char *verdict(json_t *rep, const char *id)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(rep, "criteria"), i,
                       v) if (strcmp(gw_ev_str(v, "id"), id) == 0) return gw_ev_str(v, "verdict");
    return "(none)";
}

START_TEST(retry_at_once_or_after_a_wait)
{
    gw_recette_criteria c;
    gw_recette_criteria_default(&c);
    /* quota: the retry 200 ms later meets the quota again: at once */
    const rspec hammer[] = {
        {0, "declarations", "allow", NULL, NULL},
        {100, "declarations", "deny", "quota.exceeded", NULL},
        {300, "declarations", "deny", "quota.exceeded", NULL},
    };
    gw_ev_rec *r = build(hammer, 3);
    json_t *rep = gw_recette_analyse(r, 3, ME, &c);
    ck_assert_str_eq(verdict(rep, "case.quota"), "fail");
    json_decref(rep);
    /* the same with 1500 ms between them: waited */
    c.cases[GW_RC_QUOTA].min_wait_ms = 1000;
    const rspec waited[] = {
        {0, "declarations", "allow", NULL, NULL},
        {100, "declarations", "deny", "quota.exceeded", NULL},
        {1600, "declarations", "deny", "quota.exceeded", NULL},
    };
    drop(r, 3);
    r = build(waited, 3);
    rep = gw_recette_analyse(r, 3, ME, &c);
    ck_assert_str_eq(verdict(rep, "case.quota"), "pass");
    json_decref(rep);
    /* a stricter min_wait_ms makes it "at once" again */
    c.cases[GW_RC_QUOTA].min_wait_ms = 60000;
    rep = gw_recette_analyse(r, 3, ME, &c);
    ck_assert_str_eq(verdict(rep, "case.quota"), "fail");
    /* required cases not met fail, optional ones are n/a */
    ck_assert_str_eq(verdict(rep, "case.invalid_siren"), "fail");
    ck_assert_str_eq(verdict(rep, "case.maintenance"), "n/a");
    ck_assert_str_eq(gw_ev_str(rep, "verdict"), "fail");
    json_decref(rep);
    drop(r, 3);
}
END_TEST

START_TEST(expired_token_needs_a_new_token)
{
    gw_recette_criteria c;
    gw_recette_criteria_default(&c);
    const rspec renewed[] = {
        {0, "declarations", "deny", "jwt.expired", NULL},
        {10, "token", "allow", NULL, NULL},
        {20, "declarations", "allow", NULL, "\"token_jti\":\"j2\""},
    };
    gw_ev_rec *r = build(renewed, 3);
    json_t *rep = gw_recette_analyse(r, 3, ME, &c);
    ck_assert_str_eq(verdict(rep, "case.expired_token"), "pass");
    json_decref(rep);
    drop(r, 3);
    /* no /token call after the expiry: not handled, even after a wait */
    const rspec stale[] = {
        {0, "token", "allow", NULL, NULL},
        {10, "declarations", "deny", "jwt.expired", NULL},
        {5000, "declarations", "allow", NULL, "\"token_jti\":\"j1\""},
    };
    r = build(stale, 3);
    rep = gw_recette_analyse(r, 3, ME, &c);
    ck_assert_str_eq(verdict(rep, "case.expired_token"), "fail");
    json_decref(rep);
    drop(r, 3);
}
END_TEST

START_TEST(hygiene_criteria)
{
    gw_recette_criteria c;
    gw_recette_criteria_default(&c);
    /* one /token call per data call */
    const rspec per_call[] = {
        {0, "token", "allow", NULL, NULL},
        {1, "declarations", "allow", NULL, "\"token_jti\":\"a\""},
        {2, "token", "allow", NULL, NULL},
        {3, "declarations", "allow", NULL, "\"token_jti\":\"b\""},
    };
    gw_ev_rec *r = build(per_call, 4);
    json_t *rep = gw_recette_analyse(r, 4, ME, &c);
    ck_assert_str_eq(verdict(rep, "token_hygiene"), "fail");
    ck_assert_str_eq(verdict(rep, "correlation_ids_unique"), "pass");
    ck_assert_str_eq(verdict(rep, "teleservice_always_sent"), "pass");
    ck_assert_str_eq(verdict(rep, "allowed_calls"), "pass");
    json_decref(rep);
    c.min_calls_per_token = 1.0;
    rep = gw_recette_analyse(r, 4, ME, &c);
    ck_assert_str_eq(verdict(rep, "token_hygiene"), "pass");
    json_decref(rep);
    /* an operator's action journalled under the consumer is not its call */
    json_object_set_new(r[0].obj, "reason", json_string("admin.suspend"));
    rep = gw_recette_analyse(r, 4, ME, &c);
    ck_assert_int_eq(gw_ev_int(rep, "records"), 3);
    json_decref(rep);
    json_object_del(r[0].obj, "reason");
    /* another consumer's records are not counted */
    rep = gw_recette_analyse(r, 4, "someone-else", &c);
    ck_assert_int_eq(gw_ev_int(rep, "records"), 0);
    ck_assert_str_eq(verdict(rep, "allowed_calls"), "fail");
    json_decref(rep);
    /* a reused correlation id, a call without ID_Teleservice */
    json_object_set_new(r[3].obj, "correlation_id", json_string("c-1"));
    json_object_del(r[1].obj, "teleservice");
    rep = gw_recette_analyse(r, 4, ME, &c);
    ck_assert_str_eq(verdict(rep, "correlation_ids_unique"), "fail");
    ck_assert_str_eq(verdict(rep, "teleservice_always_sent"), "fail");
    json_decref(rep);
    c.max_duplicate_correlation_ids = 1;
    c.require_teleservice = 0;
    rep = gw_recette_analyse(r, 4, ME, &c);
    ck_assert_str_eq(verdict(rep, "correlation_ids_unique"), "pass");
    ck_assert_str_eq(verdict(rep, "teleservice_always_sent"), "n/a");
    json_decref(rep);
    drop(r, 4);
}
END_TEST

typedef struct critcase {
    const char *text, *msg; /* msg NULL: accepted; else every message, one a line */
} critcase;

static const critcase critcases[] = {
    {"{\"cases\":{\"quota\":{\"required\":false,\"min_wait_ms\":60000}},\"min_calls_per_token\":5}",
     NULL},
    {"{\"cases\":{\"quota\":{\"min_wait\":1}}}", "cases.quota.min_wait: unknown key"},
    {"{\"cases\":{\"teapot\":{}}}", "cases.teapot: unknown key"},
    {"{\"cases\":{\"quota\":{\"required\":1}}}", "cases.quota.required: must be a boolean"},
    {"{\"cases\":{\"quota\":{\"min_wait_ms\":-1}}}",
     "cases.quota.min_wait_ms: must be an integer between 0 and 86400000"},
    {"{\"min_calls_per_token\":\"2\"}",
     "min_calls_per_token: must be a number between 0 and 1000000"},
    {"{\"verdict\":\"pass\",\"min_allowed_calls\":-3}",
     "verdict: unknown key\nmin_allowed_calls: must be an integer between 0 and 1000000000"},
    {"[]", "$: must be an object"},
};

START_TEST(criteria_file)
{
    const critcase *k = &critcases[_i];
    char dir[PATH_MAX];
    gw_test_mkdtemp(dir, "crit");
    char *path = gw_test_path(dir, "crit.json");
    gw_test_write(path, k->text);
    gw_recette_criteria c;
    gw_recette_criteria_default(&c);
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    int rc = gw_recette_criteria_load(path, &c, &errs);
    char *got = gw_test_errs_join(&errs);
    if (k->msg == NULL) {
        ck_assert_int_eq(rc, 0);
        ck_assert_str_eq(got, "");
        ck_assert_int_eq(c.cases[GW_RC_QUOTA].required, 0);
        ck_assert_int_eq(c.cases[GW_RC_QUOTA].min_wait_ms, 60000);
        ck_assert(c.min_calls_per_token == 5.0);
        ck_assert_int_eq(c.cases[GW_RC_SIREN].min_wait_ms, 1000); /* default kept */
    } else {
        ck_assert_int_eq(rc, -1);
        /* every line is "FILE: <message>" */
        char *want = NULL;
        size_t wl = 0;
        FILE *m = open_memstream(&want, &wl);
        for (const char *p = k->msg; *p;) {
            const char *e = strchr(p, '\n');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            fprintf(m, "%s%s: %.*s", p == k->msg ? "" : "\n", path, (int)n, p);
            p += n + (e != NULL);
        }
        fclose(m);
        ck_assert_str_eq(got, want);
        free(want);
    }
    free(got);
    gw_errlist_clear(&errs);
    free(path);
    gw_test_rmtree(dir);
}
END_TEST

START_TEST(signed_documents)
{
    /* a fresh P-256 key as the gateway's active key */
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    ck_assert_ptr_nonnull(pk);
    gw_keyset ks;
    memset(&ks, 0, sizeof(ks));
    ks.keys = calloc(1, sizeof(gw_jwk));
    ks.n = 1;
    snprintf(ks.keys[0].kid, sizeof(ks.keys[0].kid), "k1");
    ks.keys[0].alg = GW_ALG_ES256;
    ks.keys[0].pkey = pk;
    ks.keys[0].can_sign = 1;
    const char *body = "# report\nline two\n";
    size_t n = 0;
    char *doc = gw_ev_sign(&ks.keys[0], "evidence.recette", body, strlen(body), GW_EV_SIG_HTML, &n);
    ck_assert_ptr_nonnull(doc);
    ck_assert(strncmp(doc + strlen(body), "<!-- opale-gateway signature: ", 30) == 0);
    char *purpose = NULL, *kid = NULL, *ts = NULL;
    size_t bl = 0;
    ck_assert_ptr_null(gw_ev_verify_signed(doc, n, &ks, &purpose, &kid, &ts, &bl));
    ck_assert_str_eq(purpose, "evidence.recette");
    ck_assert_str_eq(kid, "k1");
    ck_assert_uint_eq(bl, strlen(body));
    free(purpose);
    free(kid);
    free(ts);
    /* every single byte changed fails */
    for (size_t i = 0; i < n; i++) {
        char saved = doc[i];
        doc[i] = saved == 'A' ? 'B' : 'A';
        ck_assert_msg(gw_ev_verify_signed(doc, n, &ks, NULL, NULL, NULL, NULL) != NULL, "byte %zu",
                      i);
        doc[i] = saved;
    }
    free(doc);
    doc = gw_ev_sign(&ks.keys[0], "evidence.extract", body, strlen(body), GW_EV_SIG_JSON, &n);
    ck_assert(strncmp(doc + strlen(body), "{\"signature\":\"", 14) == 0);
    ck_assert_ptr_null(gw_ev_verify_signed(doc, n, &ks, NULL, NULL, NULL, NULL));
    /* without the key it does not verify */
    gw_keyset none;
    memset(&none, 0, sizeof(none));
    ck_assert_str_eq(gw_ev_verify_signed(doc, n, &none, NULL, NULL, NULL, NULL), "jws.unknown_kid");
    free(doc);
    gw_keyset_clear(&ks);
}
END_TEST

START_TEST(html_escape)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    gw_ev_html_escape(f, "<a href=\"x\">'&'</a>");
    fclose(f);
    ck_assert_str_eq(buf, "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    free(buf);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("evidence_recette");
    TCase *tc = tcase_create("recette");
    tcase_add_test(tc, retry_at_once_or_after_a_wait);
    tcase_add_test(tc, expired_token_needs_a_new_token);
    tcase_add_test(tc, hygiene_criteria);
    tcase_add_loop_test(tc, criteria_file, 0, (int)(sizeof(critcases) / sizeof(critcases[0])));
    tcase_add_test(tc, signed_documents);
    tcase_add_test(tc, html_escape);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
