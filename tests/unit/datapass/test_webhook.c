/* gateway/datapass/webhook.c and seen.c: the signature over the raw body,
 * the body parser, the policy rewrite (DataPass-owned fields only), the
 * atomic write, and the replay store across a reopen. */
#include <check.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/hmac.h>

#include "../common.h"
#include "datapass/seen.h"
#include "datapass/webhook.h"
#include "policy/policy.h"
#include "policy/suspend.h"

static const unsigned char SECRET[] = "a-webhook-secret-of-the-tests";
#define SLEN (sizeof(SECRET) - 1)

static void sign(const char *body, char out[72])
{
    unsigned char md[32];
    unsigned int n = 0;
    HMAC(EVP_sha256(), SECRET, (int)SLEN, (const unsigned char *)body, strlen(body), md, &n);
    strcpy(out, "sha256=");
    for (int i = 0; i < 32; i++)
        sprintf(out + 7 + 2 * i, "%02x", md[i]);
}

START_TEST(signature)
{
    const char *body = "{\"id\":1,\"event\":\"submit\",\"fired_at\":1}";
    char h[72];
    sign(body, h);
    ck_assert_int_eq(gw_dp_signature_ok(SECRET, SLEN, body, strlen(body), h), 1);
    char up[72];
    strcpy(up, h);
    for (char *p = up + 7; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    ck_assert_int_eq(gw_dp_signature_ok(SECRET, SLEN, body, strlen(body), up), 1);
    /* another body byte, another secret, forms that are not a signature */
    ck_assert_int_eq(gw_dp_signature_ok(SECRET, SLEN, body, strlen(body) - 1, h), 0);
    ck_assert_int_eq(gw_dp_signature_ok(SECRET, SLEN - 1, body, strlen(body), h), 0);
    ck_assert_int_eq(gw_dp_signature_ok(SECRET, SLEN, body, strlen(body), h + 7), 0);
    ck_assert_int_eq(gw_dp_signature_ok(SECRET, SLEN, body, strlen(body), NULL), 0);
    ck_assert_int_eq(gw_dp_signature_ok(SECRET, SLEN, body, strlen(body), "sha256="), 0);
    char bad[80];
    strcpy(bad, h);
    bad[10] = 'g';
    ck_assert_int_eq(gw_dp_signature_ok(SECRET, SLEN, body, strlen(body), bad), 0);
    snprintf(bad, sizeof(bad), "%s0", h);
    ck_assert_int_eq(gw_dp_signature_ok(SECRET, SLEN, body, strlen(body), bad), 0);
    snprintf(bad, sizeof(bad), "sha1=%s", h + 7);
    ck_assert_int_eq(gw_dp_signature_ok(SECRET, SLEN, body, strlen(body), bad), 0);
}
END_TEST

#define HAB                                                                                        \
    "{\"id\":456,\"state\":\"active\",\"definition_id\":\"api_opale_sandbox\","                    \
    "\"created_at\":\"2025-01-01T00:00:00Z\",\"organization\":{\"siret\":"                         \
    "\"21920023500014\",\"name\":\"Commune\"},\"data\":{\"volumetrie_appels_par_minute\":"         \
    "77,\"contact_technique_email\":\"tech@commune.fr\"}}"

static const struct {
    const char *body;
    const char *why; /* NULL: accepted */
} parse_cases[] = {
    {"{\"id\":1011,\"event\":\"approve\",\"fired_at\":1,\"data\":" HAB "}", NULL},
    {"{\"id\":\"evt-1\",\"event\":\"submit\",\"fired_at\":1}", NULL},
    {"{\"id\":\"evt-1\",\"event\":\"revoke\",\"fired_at\":1}",
     "data: must be the habilitation (an object)"},
    {"{\"id\":1,\"event\":\"approve\",", "body: not JSON"},
    {"[1]", "body: must be an object"},
    {"{\"id\":1,\"id\":2,\"event\":\"submit\",\"fired_at\":1}", "body: not JSON"},
    {"{\"id\":-1,\"event\":\"submit\",\"fired_at\":1}",
     "id: must be an integer or a string of 1 to 64 printable characters"},
    {"{\"id\":\"a b\",\"event\":\"submit\",\"fired_at\":1}",
     "id: must be an integer or a string of 1 to 64 printable characters"},
    {"{\"id\":1,\"event\":\"Approve\",\"fired_at\":1}", "event: must be an event name"},
    {"{\"id\":1,\"event\":\"submit\",\"fired_at\":\"2025-01-01\"}",
     "fired_at: must be a Unix time in seconds"},
    {"{\"id\":1,\"event\":\"update\",\"fired_at\":1,\"data\":{\"id\":0}}",
     "data.id: must be a positive integer"},
    {"{\"id\":1,\"event\":\"update\",\"fired_at\":1,\"data\":{\"id\":5}}",
     "data.definition_id: must be a definition name"},
};

START_TEST(parse)
{
    gw_dp_event ev;
    const char *why = NULL;
    const char *b = parse_cases[_i].body;
    int rc = gw_dp_event_parse(b, strlen(b), &ev, &why);
    if (parse_cases[_i].why == NULL) {
        ck_assert_int_eq(rc, 0);
        ck_assert_str_ne(ev.id, "");
        gw_dp_event_clear(&ev);
    } else {
        ck_assert_int_eq(rc, -1);
        ck_assert_str_eq(why, parse_cases[_i].why);
        ck_assert_ptr_null(ev.root);
    }
}
END_TEST

START_TEST(actions)
{
    ck_assert_int_eq(gw_dp_action_of("revoke"), GW_DP_REVOKE);
    ck_assert_int_eq(gw_dp_action_of("archive"), GW_DP_REVOKE);
    ck_assert_int_eq(gw_dp_action_of("approve"), GW_DP_UPDATE);
    ck_assert_int_eq(gw_dp_action_of("update_by_api"), GW_DP_UPDATE);
    ck_assert_int_eq(gw_dp_action_of("admin_update"), GW_DP_UPDATE);
    ck_assert_int_eq(gw_dp_action_of("refuse"), GW_DP_OTHER);
    ck_assert_int_eq(gw_dp_action_of("submit"), GW_DP_OTHER);
}
END_TEST

static const char POLICY[] =
    "{\"habilitation\":{\"id\":\"H456\",\"definition\":\"api_opale_sandbox\",\"state\":\"active\","
    "\"valid_from\":\"2020-01-01\",\"valid_until\":\"2099-12-31\",\"legal_basis\":\"old\"},"
    "\"organization\":{\"siret\":\"21920023500014\"},"
    "\"consumer\":{\"client_id\":\"c-sandbox\",\"id_teleservice\":\"TS-1\","
    "\"certificates\":[{\"sha256\":\"ab\"}],\"ip_allowlist\":[\"127.0.0.1/32\"]},"
    "\"rights\":{\"scopes\":[\"api_opale_declarations\"],\"years\":{\"from\":2019,\"to\":2025}},"
    "\"quota\":{\"per_minute\":5}}";

static json_t *rewrite(const char *body, const char *old, char **errtext)
{
    gw_dp_event ev;
    const char *why = NULL;
    ck_assert_int_eq(gw_dp_event_parse(body, strlen(body), &ev, &why), 0);
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    char *out = gw_dp_policy_rewrite("p.json", old, &ev, &errs);
    *errtext = gw_test_errs_join(&errs);
    gw_errlist_clear(&errs);
    gw_dp_event_clear(&ev);
    json_t *o = NULL;
    if (out != NULL) {
        json_error_t je;
        ck_assert_int_eq(out[strlen(out) - 1], '\n');
        o = json_loads(out, 0, &je);
        ck_assert_ptr_nonnull(o);
    }
    free(out);
    return o;
}

START_TEST(rewrite_keeps_operator_fields)
{
    char *e = NULL;
    json_t *o =
        rewrite("{\"id\":1,\"event\":\"approve\",\"fired_at\":1,\"data\":" HAB "}", POLICY, &e);
    ck_assert_msg(o != NULL, "%s", e);
    json_error_t je;
    json_t *old = json_loads(POLICY, 0, &je);
    ck_assert(json_equal(json_object_get(o, "consumer"), json_object_get(old, "consumer")));
    ck_assert(json_equal(json_object_get(o, "rights"), json_object_get(old, "rights")));
    json_t *h = json_object_get(o, "habilitation");
    ck_assert_str_eq(json_string_value(json_object_get(h, "valid_until")), "2099-12-31");
    ck_assert_ptr_null(json_object_get(h, "legal_basis")); /* DataPass gives none now */
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(o, "quota"), "per_minute")),
                     77);
    ck_assert_str_eq(
        json_string_value(json_object_get(json_object_get(o, "contacts"), "technical")),
        "tech@commune.fr");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "organization"), "name")),
                     "Commune");
    json_decref(o);
    json_decref(old);
    free(e);
}
END_TEST

START_TEST(rewrite_revoke_and_pending_and_mismatch)
{
    char *e = NULL;
    json_t *o =
        rewrite("{\"id\":2,\"event\":\"revoke\",\"fired_at\":1,\"data\":" HAB "}", POLICY, &e);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(
        json_string_value(json_object_get(json_object_get(o, "habilitation"), "state")), "revoked");
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(o, "quota"), "per_minute")),
                     5);
    json_decref(o);
    free(e);
    /* no file: the import's skeleton */
    o = rewrite("{\"id\":3,\"event\":\"approve\",\"fired_at\":1,\"data\":" HAB "}", NULL, &e);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "habilitation"), "id")),
                     "H456");
    json_decref(o);
    free(e);
    /* revoking nothing, or another environment's definition */
    o = rewrite("{\"id\":4,\"event\":\"revoke\",\"fired_at\":1,\"data\":" HAB "}", NULL, &e);
    ck_assert_ptr_null(o);
    ck_assert_str_eq(e, "p.json: $: no policy to revoke");
    free(e);
    char *prod = strdup(POLICY);
    char *at = strstr(prod, "api_opale_sandbox");
    memmove(at + 9, at + 17, strlen(at + 17) + 1); /* "api_opale" */
    o = rewrite("{\"id\":5,\"event\":\"update\",\"fired_at\":1,\"data\":" HAB "}", prod, &e);
    ck_assert_ptr_null(o);
    ck_assert_str_eq(e, "p.json: habilitation.definition: \"api_opale\" in the file, DataPass says "
                        "\"api_opale_sandbox\"");
    free(e);
    free(prod);
}
END_TEST

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.' || strlen(de->d_name) > 2;
    closedir(d);
    return n;
}

START_TEST(atomic_write_and_seen_store)
{
    char dir[PATH_MAX];
    gw_test_mkdtemp(dir, "dp");
    char *f = gw_test_path(dir, "p.json");
    char *err = NULL;
    ck_assert_int_eq(gw_dp_write_atomic(f, "one\n", 0, &err), 0);
    ck_assert_int_eq(gw_dp_write_atomic(f, "two\n", 0, &err), 0);
    char *t = gw_test_read(f);
    ck_assert_str_eq(t, "two\n");
    free(t);
    ck_assert_int_eq(count_entries(dir), 1); /* no temporary file left */
    char *missing = gw_test_path(dir, "no/such/dir/p.json");
    ck_assert_int_eq(gw_dp_write_atomic(missing, "x", 0, &err), -1);
    ck_assert_ptr_nonnull(strstr(err, "cannot create the temporary file"));
    free(err);
    err = NULL;
    free(missing);

    char *sp = gw_test_path(dir, "seen.json");
    gw_dp_seen *s = gw_dp_seen_open(sp, 100, &err);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(gw_dp_seen_has(s, "e1", 1000), 0);
    ck_assert_int_eq(gw_dp_seen_add(s, "e1", 1000, 1000, &err), 0);
    ck_assert_int_eq(gw_dp_seen_add(s, "e2", 1050, 1050, &err), 0);
    ck_assert_int_eq(gw_dp_seen_has(s, "e1", 1050), 1);
    gw_dp_seen_free(s);
    s = gw_dp_seen_open(sp, 100, &err); /* a restart */
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(gw_dp_seen_count(s), 2);
    ck_assert_int_eq(gw_dp_seen_has(s, "e1", 1099), 1);
    ck_assert_int_eq(gw_dp_seen_has(s, "e1", 1101), 0); /* out of the window */
    ck_assert_int_eq(gw_dp_seen_add(s, "e3", 1120, 1120, &err), 0);
    ck_assert_uint_eq(gw_dp_seen_count(s), 2); /* e1 forgotten */
    gw_dp_seen_free(s);
    gw_test_write(sp, "{\"seen\":{\"x\":\"no\"}}");
    ck_assert_ptr_null(gw_dp_seen_open(sp, 100, &err));
    ck_assert_ptr_nonnull(strstr(err, "seen.x: must be an integer (fired_at)"));
    free(err);
    free(sp);
    free(f);
    gw_test_rmtree(dir);
}
END_TEST

/* gw_dp_apply() end to end on a policy directory and a kill switch: a
 * revocation suspends the consumer, a re-approval lifts that suspension,
 * however many other consumers are suspended (it once looked at the first
 * 64 only, and left a re-approved partner cut off). */
START_TEST(apply_revoke_then_approve_lifts_among_many)
{
    char dir[PATH_MAX];
    gw_test_mkdtemp(dir, "dp-apply");
    char *pol = strdup(POLICY);
    char *fp = strstr(pol, "\"sha256\":\"ab\"");
    ck_assert_ptr_nonnull(fp);
    char *valid = NULL;
    ck_assert_int_ge(asprintf(&valid, "%.*s\"sha256\":\"%064d\"%s", (int)(fp - pol), pol, 0,
                              fp + strlen("\"sha256\":\"ab\"")),
                     0);
    free(pol);
    char *pdir = gw_test_path(dir, "policies");
    gw_test_mkdir(pdir);
    char *pfile = gw_test_path(pdir, "commune.json");
    gw_test_write(pfile, valid);
    free(valid);
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    static const char *const scopes[] = {"api_opale_declarations"};
    gw_policy_rules rules = {scopes, 1};
    gw_policy_set *set = gw_policy_set_load(pdir, &rules, &errs);
    char *et = gw_test_errs_join(&errs);
    ck_assert_msg(set != NULL, "%s", et);
    free(et);
    gw_errlist_clear(&errs);
    char *spath = gw_test_path(dir, "suspensions.json");
    char *err = NULL;
    gw_suspensions *susp = gw_suspensions_open(spath, &err);
    ck_assert_msg(susp != NULL, "%s", err);
    /* 70 operator suspensions, all sorted before "c-sandbox" */
    for (int i = 0; i < 70; i++) {
        char id[32];
        snprintf(id, sizeof(id), "a-%02d-sandbox", i);
        ck_assert_int_eq(gw_suspensions_set(susp, id, 1, "admin API", &err), 0);
    }
    gw_dp_apply_ctx ctx = {.policies_dir = pdir, .set = set, .susp = susp};
    const char *bodies[2] = {"{\"id\":21,\"event\":\"revoke\",\"fired_at\":1,\"data\":" HAB "}",
                             "{\"id\":22,\"event\":\"approve\",\"fired_at\":1,\"data\":" HAB "}"};
    gw_suspension_info info;
    for (int k = 0; k < 2; k++) {
        gw_dp_event ev;
        const char *why = NULL;
        ck_assert_int_eq(gw_dp_event_parse(bodies[k], strlen(bodies[k]), &ev, &why), 0);
        gw_dp_applied v;
        gw_dp_apply(&ctx, &ev, &v);
        gw_dp_event_clear(&ev);
        ck_assert_msg(v.outcome == GW_DP_OUT_APPLIED, "%d: %s", k, v.detail);
        ck_assert_int_eq(gw_suspensions_get(susp, "c-sandbox", &info), k == 0);
        if (k == 0)
            ck_assert_str_eq(info.why, "datapass revoke H456");
    }
    /* the operators' suspensions are not DataPass's to lift */
    ck_assert_int_eq(gw_suspensions_get(susp, "a-00-sandbox", &info), 1);
    ck_assert_int_eq(gw_suspensions_get(susp, "a-69-sandbox", &info), 1);
    gw_suspensions_free(susp);
    gw_policy_set_unref(set);
    free(spath);
    free(pfile);
    free(pdir);
    gw_test_rmtree(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("datapass_webhook");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, signature);
    tcase_add_loop_test(tc, parse, 0, sizeof(parse_cases) / sizeof(parse_cases[0]));
    tcase_add_test(tc, actions);
    tcase_add_test(tc, rewrite_keeps_operator_fields);
    tcase_add_test(tc, rewrite_revoke_and_pending_and_mismatch);
    tcase_add_test(tc, atomic_write_and_seen_store);
    tcase_add_test(tc, apply_revoke_then_approve_lifts_among_many);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
