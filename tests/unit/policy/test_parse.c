/* Unit tests for gateway/policy/parse.c: a full policy read back field by
 * field, the defaults, one bad policy per validation rule with its exact
 * message, scopes without a route table. Every fixture lives in a mkdtemp
 * directory (policy_fixtures.h). */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "policy/policy.h"

#include "policy_fixtures.h"

/* ---- a good policy ---- */

/* Optional parts: no organization.name; a technical contact. */
START_TEST(t_optional_parts)
{
    gw_errlist errs = {0};
    char *t1 = edit(base, ", \"name\": \"Commune d'Exemple\"", "");
    char *t2 = edit(t1, "\"consumer\": {",
                    "\"contacts\": {\"technical\": \"dsi.contact@exemple-commune.fr\"}, "
                    "\"consumer\": {");
    gw_policy *p = gw_policy_parse("p.json", t2, &rules, &errs);
    ck_assert_msg(p != NULL, "first error: %s", errs.n ? errs.msgs[0] : "(none)");
    ck_assert_ptr_null(p->org_name);
    ck_assert_str_eq(p->contact_technical, "dsi.contact@exemple-commune.fr");
    gw_policy_free(p);
    free(t1);
    free(t2);
}
END_TEST

START_TEST(t_good)
{
    gw_errlist errs = {0};
    gw_policy *p = gw_policy_parse("policies/commune.json", base, &rules, &errs);
    ck_assert_msg(p != NULL, "first error: %s", errs.n ? errs.msgs[0] : "(none)");
    ck_assert_uint_eq(errs.n, 0);
    ck_assert_str_eq(p->file, "policies/commune.json");
    ck_assert_str_eq(p->id, "H456");
    ck_assert_str_eq(p->definition, "api_opale_sandbox");
    ck_assert_int_eq(p->env, GW_ENV_SANDBOX);
    ck_assert_int_eq(p->state, GW_HAB_ACTIVE);
    ck_assert_int_eq(p->valid_from, 20250101);
    ck_assert_int_eq(p->valid_until, 20271231);
    ck_assert_str_eq(p->legal_basis, "Art. L.114-8 CRPA");
    ck_assert_int_eq(p->retention_months, 36);
    ck_assert_str_eq(p->org_siret, "21990000800018");
    ck_assert_str_eq(p->org_name, "Commune d'Exemple");
    ck_assert_str_eq(p->client_id, "commune-exemple-sandbox");
    ck_assert_str_eq(p->id_teleservice, "TS-0001");
    ck_assert_uint_eq(p->ncerts, 2);
    ck_assert_str_eq(p->certs[0], FP2);
    ck_assert_str_eq(p->certs[1], FP1);
    ck_assert_uint_eq(p->nips, 4);
    ck_assert_int_eq(p->ips[0].family, AF_INET);
    ck_assert_uint_eq(p->ips[0].prefix, 32);
    ck_assert_int_eq(p->ips[1].family, AF_INET6);
    ck_assert_uint_eq(p->ips[1].prefix, 128);
    ck_assert_int_eq(p->ips[2].family, AF_INET); /* v4-mapped, stored as IPv4 */
    ck_assert_uint_eq(p->ips[2].prefix, 8);
    ck_assert_int_eq(p->ips[2].addr[0], 10);
    ck_assert_int_eq(p->ips[3].family, AF_INET6);
    ck_assert_uint_eq(p->ips[3].prefix, 32);
    ck_assert_uint_eq(p->nscopes, 2);
    ck_assert_str_eq(p->scopes[0], "api_opale_declarations");
    ck_assert_str_eq(p->scopes[1], "api_opale_creances");
    ck_assert_int_eq(p->year_from, 2019);
    ck_assert_int_eq(p->year_to, 2025);
    ck_assert_uint_eq(p->quota_per_minute, 75);

    ck_assert_int_eq(gw_policy_has_scope(p, "api_opale_creances"), 1);
    ck_assert_int_eq(gw_policy_has_scope(p, "api_opale_bancaires"), 0);
    ck_assert_int_eq(gw_policy_has_scope(p, NULL), 0);
    unsigned char a4[4], a6[16];
    inet_pton(AF_INET, "127.0.0.1", a4);
    ck_assert_int_eq(gw_policy_ip_allowed(p, AF_INET, a4), 1);
    inet_pton(AF_INET, "127.0.0.2", a4);
    ck_assert_int_eq(gw_policy_ip_allowed(p, AF_INET, a4), 0);
    inet_pton(AF_INET6, "::ffff:127.0.0.1", a6);
    ck_assert_int_eq(gw_policy_ip_allowed(p, AF_INET6, a6), 1);
    inet_pton(AF_INET6, "::ffff:10.9.8.7", a6);
    ck_assert_int_eq(gw_policy_ip_allowed(p, AF_INET6, a6), 1);
    inet_pton(AF_INET, "10.9.8.7", a4);
    ck_assert_int_eq(gw_policy_ip_allowed(p, AF_INET, a4), 1);
    inet_pton(AF_INET6, "2001:db8:ffff::1", a6);
    ck_assert_int_eq(gw_policy_ip_allowed(p, AF_INET6, a6), 1);
    inet_pton(AF_INET6, "2001:db9::1", a6);
    ck_assert_int_eq(gw_policy_ip_allowed(p, AF_INET6, a6), 0);
    gw_policy_free(p);
}
END_TEST

/* Defaults: quota by environment, optional fields absent, each state. */
static const struct {
    const char *definition, *state;
    gw_env env;
    gw_hab_state st;
    unsigned quota;
} defaults[] = {
    {"api_opale_sandbox", "active", GW_ENV_SANDBOX, GW_HAB_ACTIVE, 50},
    {"api_opale", "active", GW_ENV_PRODUCTION, GW_HAB_ACTIVE, 500},
    {"api_opale", "suspended", GW_ENV_PRODUCTION, GW_HAB_SUSPENDED, 500},
    {"api_opale_sandbox", "revoked", GW_ENV_SANDBOX, GW_HAB_REVOKED, 50},
};

START_TEST(t_defaults)
{
    gw_errlist errs = {0};
    /* only the required keys (tests/unit/common.h) */
    gw_test_policy tp = {.definition = defaults[_i].definition, .state = defaults[_i].state};
    char *text = gw_test_policy_json(&tp);
    gw_policy *p = gw_policy_parse("x.json", text, &rules, &errs);
    ck_assert_msg(p != NULL, "first error: %s", errs.n ? errs.msgs[0] : "(none)");
    ck_assert_str_eq(p->definition, defaults[_i].definition);
    ck_assert_int_eq(p->env, defaults[_i].env);
    ck_assert_int_eq(p->state, defaults[_i].st);
    ck_assert_uint_eq(p->quota_per_minute, defaults[_i].quota);
    ck_assert_ptr_null(p->legal_basis);
    ck_assert_int_eq(p->retention_months, -1);
    ck_assert_ptr_null(p->org_name);
    ck_assert_ptr_null(p->contact_technical);
    ck_assert_int_eq(p->has_secret, 0);
    gw_policy_free(p);
    free(text);
}
END_TEST

/* ---- one bad policy per rule ---- */

#define F "policies/x.json: "
#define HEX63 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde"
#define LONG65 "TS-01234567890123456789012345678901234567890123456789012345678901"
#define LONG129                                                                                    \
    "a123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890"  \
    "12345678901234567890123456789012345678"

static const struct {
    const char *from, *to; /* from NULL: <to> is the whole text */
    const char *want;      /* messages joined by '\n' */
} bad[] = {
    /* the file as a whole */
    {NULL, "[]", F "$: must be an object"},
    {NULL, "{", F "$: invalid JSON at line 1, column 1: string or '}' expected near end of file"},
    {"\"state\": \"active\",", "\"state\": \"active\", \"state\": \"active\",",
     F "$: invalid JSON at line 3, column 30: duplicate object key near '\"state\"'"},
    {NULL, "{}",
     F "$: missing key \"habilitation\"\n" F "$: missing key \"organization\"\n" F
       "$: missing key \"consumer\"\n" F "$: missing key \"rights\""},
    {"{\n", "{\"extra\": 1,\n", F "extra: unknown key"},
    /* habilitation */
    {"\"habilitation\": {", "\"habilitation\": {\"foo\": 1, ", F "habilitation.foo: unknown key"},
    {"\"habilitation\": {", "\"habilitation\": {\"a\\u0001b\": 1, ",
     F "habilitation.a?b: unknown key"},
    {"\"id\": \"H456\", ", "", F "habilitation: missing key \"id\""},
    {"\"id\": \"H456\"", "\"id\": 456", F "habilitation.id: must be a string"},
    {"\"id\": \"H456\"", "\"id\": \"H0456\"", F "habilitation.id: must match H[1-9][0-9]{0,9}"},
    {"\"id\": \"H456\"", "\"id\": \"D456\"", F "habilitation.id: must match H[1-9][0-9]{0,9}"},
    {"\"id\": \"H456\"", "\"id\": \"H12345678901\"",
     F "habilitation.id: must match H[1-9][0-9]{0,9}"},
    {"\"api_opale_sandbox\"", "\"api_entreprise\"",
     F "habilitation.definition: must be \"api_opale_sandbox\" or \"api_opale\""},
    {"\"state\": \"active\"", "\"state\": \"obsolete\"",
     F "habilitation.state: must be \"active\", \"suspended\" or \"revoked\""},
    {"\"valid_from\": \"2025-01-01\"", "\"valid_from\": \"2025-1-01\"",
     F "habilitation.valid_from: must be a date YYYY-MM-DD"},
    {"\"valid_from\": \"2025-01-01\"", "\"valid_from\": \"2025-02-29\"",
     F "habilitation.valid_from: must be a real calendar date"},
    {"\"valid_until\": \"2027-12-31\"", "\"valid_until\": \"2027-13-01\"",
     F "habilitation.valid_until: must be a real calendar date"},
    {"\"valid_until\": \"2027-12-31\"", "\"valid_until\": 20271231",
     F "habilitation.valid_until: must be a string"},
    {"\"valid_until\": \"2027-12-31\"", "\"valid_until\": \"2024-12-31\"",
     F "habilitation.valid_until: must not be before valid_from"},
    {"\"legal_basis\": \"Art. L.114-8 CRPA\"", "\"legal_basis\": \"\"",
     F "habilitation.legal_basis: must not be empty"},
    {"\"retention_months\": 36", "\"retention_months\": 0",
     F "habilitation.retention_months: must be between 1 and 120"},
    {"\"retention_months\": 36", "\"retention_months\": 121",
     F "habilitation.retention_months: must be between 1 and 120"},
    {"\"retention_months\": 36", "\"retention_months\": \"36\"",
     F "habilitation.retention_months: must be an integer"},
    /* organization */
    {"\"organization\": {", "\"organization\": {\"siren\": \"219900008\", ",
     F "organization.siren: unknown key"},
    {"\"21990000800018\"", "\"2199000080001\"", F "organization.siret: must be 14 digits"},
    {"\"21990000800018\"", "\"2199000080001A\"", F "organization.siret: must be 14 digits"},
    {"\"21990000800018\"", "\"21990000800019\"",
     F "organization.siret: invalid SIRET (Luhn checksum)"},
    {"\"21990000800018\"", "\"35600000000048\"",
     F "organization.siret: invalid SIRET (La Poste: digit sum not a multiple of 5)"},
    {"\"21990000800018\"", "\"00000000000000\"",
     F "organization.siret: invalid SIRET (SIREN 000000000)"},
    {"\"name\": \"Commune d'Exemple\"", "\"name\": \"\"", F "organization.name: must not be empty"},
    {"\"name\": \"Commune d'Exemple\"", "\"name\": null", F "organization.name: must be a string"},
    /* contacts */
    {"\"consumer\": {", "\"contacts\": [], \"consumer\": {", F "contacts: must be an object"},
    {"\"consumer\": {", "\"contacts\": {\"phone\": \"0612345678\"}, \"consumer\": {",
     F "contacts.phone: unknown key"},
    {"\"consumer\": {", "\"contacts\": {\"technical\": 1}, \"consumer\": {",
     F "contacts.technical: must be a string"},
    {"\"consumer\": {", "\"contacts\": {\"technical\": \"tech@\"}, \"consumer\": {",
     F "contacts.technical: must be an e-mail address (name@domain.tld)"},
    /* consumer */
    {"\"consumer\": {", "\"consumer\": {\"scopes\": [], ", F "consumer.scopes: unknown key"},
    {"\"commune-exemple-sandbox\"", "\"ab\"",
     F "consumer.client_id: must match [A-Za-z0-9._-]{3,128}"},
    {"\"commune-exemple-sandbox\"", "\"commune exemple\"",
     F "consumer.client_id: must match [A-Za-z0-9._-]{3,128}"},
    {"\"commune-exemple-sandbox\"", "\"" LONG129 "\"",
     F "consumer.client_id: must match [A-Za-z0-9._-]{3,128}"},
    {"\"TS-0001\"", "\"TS 0001\"",
     F "consumer.id_teleservice: must be 1 to 64 printable ASCII characters, without space"},
    {"\"TS-0001\"", "\"" LONG65 "\"",
     F "consumer.id_teleservice: must be 1 to 64 printable ASCII characters, without space"},
    {"\"TS-0001\"", "\"\"",
     F "consumer.id_teleservice: must be 1 to 64 printable ASCII characters, without space"},
    /* consumer.certificates */
    {"\"certificates\": [{\"sha256\": \"" FP2_COLONS "\"}, {\"sha256\": \"" FP1 "\"}]",
     "\"certificates\": []", F "consumer.certificates: must have between 1 and 16 entries"},
    {"\"certificates\": [{\"sha256\": \"" FP2_COLONS "\"}, {\"sha256\": \"" FP1 "\"}]",
     "\"certificates\": [<<17|{\"sha256\": \"~\"}>>]",
     F "consumer.certificates: must have between 1 and 16 entries"},
    {"\"certificates\": [{\"sha256\": \"" FP2_COLONS "\"}, {\"sha256\": \"" FP1 "\"}]",
     "\"certificates\": {\"sha256\": \"" FP1 "\"}", F "consumer.certificates: must be an array"},
    {"{\"sha256\": \"" FP2_COLONS "\"}", "\"" FP1 "\"",
     F "consumer.certificates[0]: must be an object"},
    {"{\"sha256\": \"" FP1 "\"}", "{\"sha256\": \"" HEX63 "\"}",
     F "consumer.certificates[1].sha256: must be 64 hexadecimal characters (SHA-256), "
       "optionally ':'-separated"},
    {"{\"sha256\": \"" FP1 "\"}", "{\"sha256\": \"" HEX63 "g\"}",
     F "consumer.certificates[1].sha256: must be 64 hexadecimal characters (SHA-256), "
       "optionally ':'-separated"},
    {"AA:BB:CC", "AAB:BCC",
     F "consumer.certificates[0].sha256: must be 64 hexadecimal characters (SHA-256), "
       "optionally ':'-separated"},
    {"{\"sha256\": \"" FP1 "\"}", "{\"sha256\": 1}",
     F "consumer.certificates[1].sha256: must be a string"},
    {"{\"sha256\": \"" FP1 "\"}", "{\"sha256\": \"" FP1 "\", \"file\": \"c.crt\"}",
     F "consumer.certificates[1]: must have \"sha256\" or \"file\", not both"},
    {"{\"sha256\": \"" FP1 "\"}", "{}",
     F "consumer.certificates[1]: missing key \"sha256\" or \"file\""},
    {"{\"sha256\": \"" FP1 "\"}", "{\"sha256\": \"" FP1 "\", \"pem\": 1}",
     F "consumer.certificates[1].pem: unknown key"},
    {"{\"sha256\": \"" FP1 "\"}", "{\"sha256\": \"" FP2 "\"}",
     F "consumer.certificates[1]: duplicate of consumer.certificates[0]"},
    {"{\"sha256\": \"" FP1 "\"}", "{\"file\": \"\"}",
     F "consumer.certificates[1].file: must not be empty"},
    /* consumer.ip_allowlist */
    {"\"ip_allowlist\": [\"127.0.0.1/32\", \"::1/128\", \"::ffff:10.0.0.0/104\", "
     "\"2001:db8::/32\"]",
     "\"ip_allowlist\": []", F "consumer.ip_allowlist: must have between 1 and 256 entries"},
    {"\"ip_allowlist\": [\"127.0.0.1/32\", \"::1/128\", \"::ffff:10.0.0.0/104\", "
     "\"2001:db8::/32\"]",
     "\"ip_allowlist\": [<<257|\"2001:db8::#/128\">>]",
     F "consumer.ip_allowlist: must have between 1 and 256 entries"},
    {"\"::1/128\"", "\"localhost\"", F "consumer.ip_allowlist[1]: not a CIDR"},
    {"\"::1/128\"", "\"10.0.0.1/8\"", F "consumer.ip_allowlist[1]: host bits set"},
    {"\"::1/128\"", "\"10.0.0.0/33\"", F "consumer.ip_allowlist[1]: prefix out of range"},
    {"\"::1/128\"", "\"::/129\"", F "consumer.ip_allowlist[1]: prefix out of range"},
    {"\"::1/128\"", "42", F "consumer.ip_allowlist[1]: must be a string"},
    {"\"::1/128\"", "\"127.0.0.1\"",
     F "consumer.ip_allowlist[1]: duplicate of consumer.ip_allowlist[0]"},
    {"\"2001:db8::/32\"", "\"::ffff:10.0.0.0/104\"",
     F "consumer.ip_allowlist[3]: duplicate of consumer.ip_allowlist[2]"},
    {",\n    \"ip_allowlist\": [\"127.0.0.1/32\", \"::1/128\", \"::ffff:10.0.0.0/104\", "
     "\"2001:db8::/32\"]",
     "", F "consumer: missing key \"ip_allowlist\""},
    /* rights */
    {"\"rights\": {", "\"rights\": {\"annees\": 1, ", F "rights.annees: unknown key"},
    {"\"api_opale_creances\"", "\"api_opale_foo\"",
     F "rights.scopes[1]: unknown scope \"api_opale_foo\""},
    {"\"api_opale_creances\"", "\"api\\nopale\"",
     F "rights.scopes[1]: unknown scope \"api?opale\""},
    {"\"api_opale_creances\"", "\"api_opale_declarations\"",
     F "rights.scopes[1]: duplicate of rights.scopes[0]"},
    {"\"scopes\": [\"api_opale_declarations\", \"api_opale_creances\"]", "\"scopes\": []",
     F "rights.scopes: must have between 1 and 32 entries"},
    {"\"scopes\": [\"api_opale_declarations\", \"api_opale_creances\"]",
     "\"scopes\": [<<33|\"s#\">>]", F "rights.scopes: must have between 1 and 32 entries"},
    {"\"scopes\": [\"api_opale_declarations\", \"api_opale_creances\"]", "\"scopes\": [1]",
     F "rights.scopes[0]: must be a string"},
    {"\"from\": 2019", "\"from\": 1989", F "rights.years.from: must be between 1990 and 2100"},
    {"\"to\": 2025", "\"to\": 2101", F "rights.years.to: must be between 1990 and 2100"},
    {"\"to\": 2025", "\"to\": 2018", F "rights.years.to: must not be less than from"},
    {"\"from\": 2019, ", "", F "rights.years: missing key \"from\""},
    {",\n    \"years\": {\"from\": 2019, \"to\": 2025}", "", F "rights: missing key \"years\""},
    {"\"years\": {\"from\": 2019, \"to\": 2025}", "\"years\": [2019, 2025]",
     F "rights.years: must be an object"},
    /* quota */
    {"\"per_minute\": 75", "\"per_minute\": 0",
     F "quota.per_minute: must be between 1 and 1000000"},
    {"\"per_minute\": 75", "\"per_minute\": 1000001",
     F "quota.per_minute: must be between 1 and 1000000"},
    {"\"per_minute\": 75", "\"per_minute\": 1.5", F "quota.per_minute: must be an integer"},
    {"{\"per_minute\": 75}", "{}", F "quota: missing key \"per_minute\""},
    {"{\"per_minute\": 75}", "{\"per_minute\": 75, \"burst\": 5}", F "quota.burst: unknown key"},
    {"{\"per_minute\": 75}", "50", F "quota: must be an object"},
    /* every error is collected, in file order */
    {"\"id\": \"H456\", \"definition\": \"api_opale_sandbox\"",
     "\"id\": \"h456\", \"definition\": \"api_opale_prod\", \"x\": 1",
     F "habilitation.x: unknown key\n" F "habilitation.id: must match H[1-9][0-9]{0,9}\n" F
       "habilitation.definition: must be \"api_opale_sandbox\" or \"api_opale\""},
};

START_TEST(t_bad)
{
    gw_errlist errs = {0};
    char *text =
        bad[_i].from != NULL ? edit(base, bad[_i].from, bad[_i].to) : edit(bad[_i].to, "", "");
    gw_policy *p = gw_policy_parse("policies/x.json", text, &rules, &errs);
    ck_assert_ptr_null(p);
    char *got = gw_test_errs_join(&errs);
    ck_assert_msg(strcmp(got, bad[_i].want) == 0, "case %d:\n got: %s\nwant: %s", _i, got,
                  bad[_i].want);
    free(got);
    free(text);
    gw_errlist_clear(&errs);
}
END_TEST

START_TEST(t_no_rules)
{
    /* Without rules (no route table), scopes are only checked for syntax. */
    gw_errlist errs = {0};
    char *t = edit(base, "\"api_opale_creances\"", "\"any_scope\"");
    gw_policy *p = gw_policy_parse("x.json", t, NULL, &errs);
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(p->scopes[1], "any_scope");
    gw_policy_free(p);
    free(t);
    t = edit(base, "\"api_opale_creances\"", "\"a b\"");
    ck_assert_ptr_null(gw_policy_parse("x.json", t, NULL, &errs));
    ck_assert_uint_eq(errs.n, 1);
    ck_assert_str_eq(errs.msgs[0], "x.json: rights.scopes[1]: must be 1 to 128 printable ASCII "
                                   "characters, without space, '\"' or '\\'");
    free(t);
    gw_errlist_clear(&errs);
    ck_assert_ptr_null(gw_policy_parse("x.json", NULL, NULL, &errs));
    ck_assert_str_eq(errs.msgs[0], "x.json: $: cannot read: Invalid argument");
    gw_errlist_clear(&errs);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("parse");
    TCase *tc = tcase_create("parse");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, t_good);
    tcase_add_loop_test(tc, t_defaults, 0, (int)(sizeof(defaults) / sizeof(defaults[0])));
    tcase_add_loop_test(tc, t_bad, 0, (int)(sizeof(bad) / sizeof(bad[0])));
    tcase_add_test(tc, t_no_rules);
    tcase_add_test(tc, t_optional_parts);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
