/* Unit tests for gateway/policy/datapass.c: a full DataPass habilitation
 * imported and its skeleton read back field by field; the skeleton refused by
 * the policy loader until its placeholders are filled, then accepted; the
 * state mapping; the quota, legal basis, retention and date rules; the
 * client_id suggestion; and the wrong shapes with their exact messages. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "policy/policy.h"

#include "../common.h"

/* A habilitation as GET /api/v1/habilitations/{id} returns it (schema
 * HabilitationDetailed), with keys the importer does not use. */
static const char full[] =
    "{\"id\": 456, \"slug\": \"commune-d-exemple-h456\", \"state\": \"active\",\n"
    " \"revoked\": false, \"definition_id\": \"api_opale_sandbox\",\n"
    " \"created_at\": \"2025-03-14T10:22:31.000+01:00\",\n"
    " \"authorization_request_class\": \"AuthorizationRequest::APIOpaleSandbox\",\n"
    " \"request_id\": 123,\n"
    " \"organization\": {\"id\": 1, \"siret\": \"21990000800018\",\n"
    "                  \"name\": \"Commune d'Exemple\", \"insee_payload\": {\"x\": 1}},\n"
    " \"data\": {\"intitule\": \"Aides sociales\", \"description\": \"Instruction\",\n"
    "          \"cadre_juridique_nature\": \"Art. L.114-8 CRPA\",\n"
    "          \"cadre_juridique_url\": \"https://www.legifrance.gouv.fr/x\",\n"
    "          \"duree_conservation_donnees_caractere_personnel\": 36,\n"
    "          \"volumetrie_appels_par_minute\": 500,\n"
    "          \"contact_technique_email\": \"tech@exemple.fr\",\n"
    "          \"scopes\": [\"whatever\"]}}\n";

/* <full> with the first <from> replaced by <to> (the test fails when <from>
 * is not there). */
static char *edit(const char *from, const char *to)
{
    const char *at = strstr(full, from);
    ck_assert_msg(at != NULL, "\"%s\" not in the habilitation", from);
    char *out = NULL;
    ck_assert_int_ge(asprintf(&out, "%.*s%s%s", (int)(at - full), full, to, at + strlen(from)), 0);
    return out;
}

static json_t *import_ok(const char *text)
{
    gw_errlist errs = {0};
    char *out = gw_datapass_import("h.json", text, &errs);
    ck_assert_msg(out != NULL, "first error: %s", errs.n ? errs.msgs[0] : "(none)");
    ck_assert_uint_eq(errs.n, 0);
    size_t n = strlen(out);
    ck_assert_uint_gt(n, 2);
    ck_assert_int_eq(out[n - 1], '\n');
    json_error_t je;
    json_t *j = json_loads(out, JSON_REJECT_DUPLICATES, &je);
    ck_assert_msg(j != NULL, "output is not JSON: %s\n%s", je.text, out);
    free(out);
    return j;
}

static const char *sget(json_t *j, const char *a, const char *b)
{
    json_t *v = json_object_get(json_object_get(j, a), b);
    ck_assert_msg(json_is_string(v), "%s.%s is not a string", a, b);
    return json_string_value(v);
}

START_TEST(t_full)
{
    json_t *j = import_ok(full);
    ck_assert_uint_eq(json_object_size(j), 6);
    /* the technical contact kept, between the organization and the consumer */
    ck_assert_str_eq(sget(j, "contacts", "technical"), "tech@exemple.fr");
    ck_assert_uint_eq(json_object_size(json_object_get(j, "contacts")), 1);
    const char *keys[6];
    size_t nk = 0;
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) keys[nk++] = k;
    ck_assert_str_eq(keys[1], "organization");
    ck_assert_str_eq(keys[2], "contacts");
    ck_assert_str_eq(keys[3], "consumer");
    json_t *h = json_object_get(j, "habilitation");
    ck_assert_uint_eq(json_object_size(h), 7);
    ck_assert_str_eq(sget(j, "habilitation", "id"), "H456");
    ck_assert_str_eq(sget(j, "habilitation", "definition"), "api_opale_sandbox");
    ck_assert_str_eq(sget(j, "habilitation", "state"), "active");
    ck_assert_str_eq(sget(j, "habilitation", "valid_from"), "2025-03-14");
    ck_assert_str_eq(sget(j, "habilitation", "valid_until"), "2026-03-14");
    ck_assert_str_eq(sget(j, "habilitation", "legal_basis"),
                     "Art. L.114-8 CRPA (https://www.legifrance.gouv.fr/x)");
    ck_assert_int_eq(json_integer_value(json_object_get(h, "retention_months")), 36);
    ck_assert_uint_eq(json_object_size(json_object_get(j, "organization")), 2);
    ck_assert_str_eq(sget(j, "organization", "siret"), "21990000800018");
    ck_assert_str_eq(sget(j, "organization", "name"), "Commune d'Exemple");
    json_t *c = json_object_get(j, "consumer");
    ck_assert_uint_eq(json_object_size(c), 4);
    ck_assert_str_eq(sget(j, "consumer", "client_id"), "commune-d-exemple-sandbox");
    ck_assert_int_eq(strncmp(sget(j, "consumer", "id_teleservice"), "TODO", 4), 0);
    json_t *certs = json_object_get(c, "certificates");
    ck_assert_uint_eq(json_array_size(certs), 1);
    ck_assert_int_eq(
        strncmp(json_string_value(json_object_get(json_array_get(certs, 0), "sha256")), "TODO", 4),
        0);
    json_t *ips = json_object_get(c, "ip_allowlist");
    ck_assert_uint_eq(json_array_size(ips), 1);
    ck_assert_int_eq(strncmp(json_string_value(json_array_get(ips, 0)), "TODO", 4), 0);
    json_t *r = json_object_get(j, "rights");
    ck_assert_uint_eq(json_array_size(json_object_get(r, "scopes")), 1);
    ck_assert_int_eq(
        strncmp(json_string_value(json_array_get(json_object_get(r, "scopes"), 0)), "TODO", 4), 0);
    ck_assert_int_eq(strncmp(sget(r, "years", "from"), "TODO", 4), 0);
    ck_assert_int_eq(strncmp(sget(r, "years", "to"), "TODO", 4), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "quota"), "per_minute")),
                     500);
    json_decref(j);
}
END_TEST

/* The skeleton <j> with its placeholders filled, parsed as a policy (which
 * must be valid). */
static gw_policy *parse_filled(json_t *j)
{
    static const char *const sandbox[] = {"api_opale_declarations", "api_opale_creances"};
    gw_policy_rules rules = {sandbox, 2};
    gw_errlist errs = {0};
    json_t *c = json_object_get(j, "consumer");
    json_object_set_new(c, "id_teleservice", json_string("TS-0456"));
    json_object_set_new(
        c, "certificates",
        json_pack("[{s:s}]", "sha256",
                  "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"));
    json_object_set_new(c, "ip_allowlist", json_pack("[s]", "192.0.2.0/24"));
    json_t *r = json_object_get(j, "rights");
    json_object_set_new(r, "scopes", json_pack("[s]", "api_opale_declarations"));
    json_object_set_new(r, "years", json_pack("{s:i, s:i}", "from", 2020, "to", 2025));
    char *filled = json_dumps(j, 0);
    gw_policy *p = gw_policy_parse("policies/h456.json", filled, &rules, &errs);
    ck_assert_msg(p != NULL, "first error: %s", errs.n ? errs.msgs[0] : "(none)");
    free(filled);
    gw_errlist_clear(&errs);
    return p;
}

/* The skeleton as printed is refused, at every placeholder; filled in, it
 * is a valid policy carrying what DataPass said. */
START_TEST(t_skeleton_validates_once_filled)
{
    static const char *const sandbox[] = {"api_opale_declarations", "api_opale_creances"};
    gw_policy_rules rules = {sandbox, 2};
    gw_errlist errs = {0};
    char *out = gw_datapass_import("h.json", full, &errs);
    ck_assert_ptr_nonnull(out);
    ck_assert_ptr_null(gw_policy_parse("policies/h456.json", out, &rules, &errs));
    static const char *const want[] = {
        "policies/h456.json: consumer.id_teleservice: must be 1 to 64 printable ASCII "
        "characters, without space",
        "policies/h456.json: consumer.certificates[0].sha256: must be 64 hexadecimal characters "
        "(SHA-256), optionally ':'-separated",
        "policies/h456.json: consumer.ip_allowlist[0]: not a CIDR",
        "policies/h456.json: rights.scopes[0]: unknown scope \"TODO: scopes of the convention, "
        "e.g. api_opale_declarations\"",
        "policies/h456.json: rights.years.from: must be an integer",
        "policies/h456.json: rights.years.to: must be an integer",
    };
    ck_assert_uint_eq(errs.n, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < errs.n; i++)
        ck_assert_str_eq(errs.msgs[i], want[i]);
    gw_errlist_clear(&errs);

    json_t *j = json_loads(out, 0, NULL);
    free(out);
    gw_policy *p = parse_filled(j);
    ck_assert_str_eq(p->id, "H456");
    ck_assert_int_eq(p->env, GW_ENV_SANDBOX);
    ck_assert_int_eq(p->state, GW_HAB_ACTIVE);
    ck_assert_int_eq(p->valid_from, 20250314);
    ck_assert_int_eq(p->valid_until, 20260314);
    ck_assert_int_eq(p->retention_months, 36);
    ck_assert_str_eq(p->org_siret, "21990000800018");
    ck_assert_str_eq(p->client_id, "commune-d-exemple-sandbox");
    ck_assert_uint_eq(p->quota_per_minute, 500);
    ck_assert_str_eq(p->contact_technical, "tech@exemple.fr");
    ck_assert_str_eq(p->org_name, "Commune d'Exemple");
    gw_policy_free(p);
    json_decref(j);
}
END_TEST

/* State mapping: DataPass state and the authoritative "revoked" flag. */
static const struct {
    const char *from, *to, *want;
} states[] = {
    {"\"state\": \"active\"", "\"state\": \"active\"", "active"},
    {"\"revoked\": false", "\"revoked\": true", "revoked"},
    {"\"state\": \"active\"", "\"state\": \"obsolete\"", "revoked"},
    {"\"state\": \"active\"", "\"state\": \"revoked\"", "revoked"},
    {"\n \"revoked\": false,", "", "active"}, /* "revoked" absent */
};

START_TEST(t_states)
{
    char *t = edit(states[_i].from, states[_i].to);
    json_t *j = import_ok(t);
    ck_assert_str_eq(sget(j, "habilitation", "state"), states[_i].want);
    json_decref(j);
    free(t);
}
END_TEST

START_TEST(t_obsolete_and_revoked)
{
    char *a = edit("\"state\": \"active\",\n \"revoked\": false",
                   "\"state\": \"obsolete\",\n \"revoked\": true");
    json_t *j = import_ok(a);
    ck_assert_str_eq(sget(j, "habilitation", "state"), "revoked");
    json_decref(j);
    free(a);
}
END_TEST

/* Optional data: quota, retention and the legal basis. <key> is the
 * member of the output to look at; want NULL = absent. */
static const struct {
    const char *from, *to;
    const char *obj, *key;
    const char *want_s;
    long long want_i; /* when want_s is NULL and the member must be there */
    int absent;
} optional[] = {
    {"\"volumetrie_appels_par_minute\": 500", "\"volumetrie_appels_par_minute\": \"1200\"", "quota",
     "per_minute", NULL, 1200, 0},
    {"\"volumetrie_appels_par_minute\": 500", "\"volumetrie_appels_par_minute\": null", NULL,
     "quota", NULL, 0, 1},
    {"\"volumetrie_appels_par_minute\": 500", "\"volumetrie_appels_par_minute\": \"\"", NULL,
     "quota", NULL, 0, 1},
    {"\"volumetrie_appels_par_minute\": 500,", "", NULL, "quota", NULL, 0, 1},
    {"\"duree_conservation_donnees_caractere_personnel\": 36",
     "\"duree_conservation_donnees_caractere_personnel\": \"24\"", "habilitation",
     "retention_months", NULL, 24, 0},
    {"\"duree_conservation_donnees_caractere_personnel\": 36,", "", "habilitation",
     "retention_months", NULL, 0, 1},
    {"\"cadre_juridique_url\": \"https://www.legifrance.gouv.fr/x\",", "", "habilitation",
     "legal_basis", "Art. L.114-8 CRPA", 0, 0},
    {"\"cadre_juridique_nature\": \"Art. L.114-8 CRPA\",", "", "habilitation", "legal_basis",
     "https://www.legifrance.gouv.fr/x", 0, 0},
    {"\"cadre_juridique_nature\": \"Art. L.114-8 CRPA\",\n"
     "          \"cadre_juridique_url\": \"https://www.legifrance.gouv.fr/x\",",
     "", "habilitation", "legal_basis", NULL, 0, 1},
    {"\"cadre_juridique_nature\": \"Art. L.114-8 CRPA\"", "\"cadre_juridique_nature\": \"\"",
     "habilitation", "legal_basis", "https://www.legifrance.gouv.fr/x", 0, 0},
    /* no data at all: no quota, no retention, no legal basis */
    {",\n \"data\": {", ", \"ignored\": {", NULL, "quota", NULL, 0, 1},
    {",\n \"data\": {", ", \"ignored\": {", "habilitation", "legal_basis", NULL, 0, 1},
    /* dates: created_at's day; one year later, 29 February -> 28 February */
    {"\"2025-03-14T10:22:31.000+01:00\"", "\"2024-02-29T23:59:59Z\"", "habilitation", "valid_until",
     "2025-02-28", 0, 0},
    {"\"2025-03-14T10:22:31.000+01:00\"", "\"2024-02-29T23:59:59Z\"", "habilitation", "valid_from",
     "2024-02-29", 0, 0},
    {"\"2025-03-14T10:22:31.000+01:00\"", "\"2023-12-31\"", "habilitation", "valid_until",
     "2024-12-31", 0, 0},
    /* production */
    {"\"api_opale_sandbox\"", "\"api_opale\"", "consumer", "client_id",
     "commune-d-exemple-production", 0, 0},
    {"\"api_opale_sandbox\"", "\"api_opale\"", "habilitation", "definition", "api_opale", 0, 0},
};

START_TEST(t_optional)
{
    char *t = edit(optional[_i].from, optional[_i].to);
    json_t *j = import_ok(t);
    json_t *o = optional[_i].obj != NULL ? json_object_get(j, optional[_i].obj) : j;
    ck_assert_ptr_nonnull(o);
    json_t *v = json_object_get(o, optional[_i].key);
    if (optional[_i].absent) {
        ck_assert_ptr_null(v);
    } else if (optional[_i].want_s != NULL) {
        ck_assert_str_eq(json_string_value(v), optional[_i].want_s);
    } else {
        ck_assert(json_is_integer(v));
        ck_assert_int_eq(json_integer_value(v), optional[_i].want_i);
    }
    json_decref(j);
    free(t);
}
END_TEST

/* organization.name is nullable in the DataPass OpenAPI: null, absent or ""
 * give a skeleton without a name, whose client_id comes from the id; once
 * filled, it is a valid policy without a name. */
static const struct {
    const char *from, *to;
} noname[] = {
    {"\"name\": \"Commune d'Exemple\"", "\"name\": null"},
    {"\"name\": \"Commune d'Exemple\"", "\"name\": \"\""},
    {",\n                  \"name\": \"Commune d'Exemple\"", ""},
};

START_TEST(t_org_name_null)
{
    char *t = edit(noname[_i].from, noname[_i].to);
    json_t *j = import_ok(t);
    json_t *org = json_object_get(j, "organization");
    ck_assert_uint_eq(json_object_size(org), 1);
    ck_assert_str_eq(sget(j, "organization", "siret"), "21990000800018");
    ck_assert_str_eq(sget(j, "consumer", "client_id"), "h456-sandbox");
    ck_assert_str_eq(sget(j, "contacts", "technical"), "tech@exemple.fr");
    gw_policy *p = parse_filled(j);
    ck_assert_ptr_null(p->org_name);
    ck_assert_str_eq(p->org_siret, "21990000800018");
    gw_policy_free(p);
    json_decref(j);
    free(t);
}
END_TEST

/* No contact, or an empty one: no "contacts" in the skeleton. */
static const struct {
    const char *from, *to;
} nocontact[] = {
    {"\"contact_technique_email\": \"tech@exemple.fr\"", "\"contact_technique_email\": null"},
    {"\"contact_technique_email\": \"tech@exemple.fr\"", "\"contact_technique_email\": \"\""},
    {"\n          \"contact_technique_email\": \"tech@exemple.fr\",", ""},
};

START_TEST(t_no_contact)
{
    char *t = edit(nocontact[_i].from, nocontact[_i].to);
    json_t *j = import_ok(t);
    ck_assert_ptr_null(json_object_get(j, "contacts"));
    ck_assert_uint_eq(json_object_size(j), 5);
    json_decref(j);
    free(t);
}
END_TEST

START_TEST(t_no_created_at)
{
    char *t = edit("\n \"created_at\": \"2025-03-14T10:22:31.000+01:00\",", "");
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char today[16], next[16];
    strftime(today, sizeof(today), "%Y-%m-%d", &tm);
    json_t *j = import_ok(t);
    ck_assert_str_eq(sget(j, "habilitation", "valid_from"), today);
    tm.tm_year += 1;
    if (tm.tm_mon == 1 && tm.tm_mday == 29)
        tm.tm_mday = 28;
    strftime(next, sizeof(next), "%Y-%m-%d", &tm);
    ck_assert_str_eq(sget(j, "habilitation", "valid_until"), next);
    json_decref(j);
    free(t);
}
END_TEST

/* client_id suggested from the organization's name. */
static const struct {
    const char *name, *want;
} slugs[] = {
    {"Commune d'Exemple", "commune-d-exemple-sandbox"},
    {"CAISSE PRIMAIRE d\\u2019ASSURANCE MALADIE", "caisse-primaire-d-assurance-maladie-sandbox"},
    {"Île-de-France Mobilités", "ile-de-france-mobilites-sandbox"},
    {"Œuvre Sociale — Été 2025", "oeuvre-sociale-ete-2025-sandbox"},
    {"  --Société   Générale!!  ", "societe-generale-sandbox"},
    {"Straße", "strasse-sandbox"},
    {"日本", "h456-sandbox"},
    {"AB", "ab-sandbox"},
    {"?!", "h456-sandbox"},
    {"ABC", "abc-sandbox"},
    {"A very long organisation name that goes on and on and on well past the length that a "
     "client_id may have in a policy file, for sure",
     /* cut at 116 bytes, then its trailing '-' */
     "a-very-long-organisation-name-that-goes-on-and-on-and-on-well-past-the-length-that-a-"
     "client-id-may-have-in-a-policy-sandbox"},
};

START_TEST(t_slugs)
{
    char to[512];
    snprintf(to, sizeof(to), "\"name\": \"%s\"", slugs[_i].name);
    char *t = edit("\"name\": \"Commune d'Exemple\"", to);
    json_t *j = import_ok(t);
    const char *cid = sget(j, "consumer", "client_id");
    size_t n = strlen(cid);
    ck_assert_uint_le(n, 128);
    ck_assert_str_eq(cid, slugs[_i].want);
    json_decref(j);
    free(t);
}
END_TEST

START_TEST(t_slug_cut)
{
    /* A name longer than a client_id: cut, never a trailing '-', still valid. */
    char name[400], to[480];
    memset(name, 0, sizeof(name));
    for (size_t i = 0; i < 300; i++)
        name[i] = (i % 4 == 3) ? ' ' : 'x';
    snprintf(to, sizeof(to), "\"name\": \"%s\"", name);
    char *t = edit("\"name\": \"Commune d'Exemple\"", to);
    json_t *j = import_ok(t);
    const char *cid = sget(j, "consumer", "client_id");
    ck_assert_uint_le(strlen(cid), 128);
    ck_assert_ptr_null(strstr(cid, "--"));
    ck_assert_str_eq(cid + strlen(cid) - 8, "-sandbox");
    ck_assert_int_ne(cid[strlen(cid) - 9], '-');
    json_decref(j);
    free(t);
}
END_TEST

/* Wrong shapes and values, with their exact messages. */
#define H "h.json: "
static const struct {
    const char *from, *to; /* from NULL: <to> is the whole text */
    const char *want;
} bad[] = {
    {NULL, "", H "$: invalid JSON at line 1, column 0: '[' or '{' expected near end of file"},
    {NULL, "\"H456\"",
     H "$: invalid JSON at line 1, column 6: '[' or '{' expected near '\"H456\"'"},
    {NULL, "[{\"id\": 456}]",
     H "$: must be one habilitation (an object), not a list: export it with "
       "GET /api/v1/habilitations/{id}"},
    {NULL,
     "{\"id\": 123, \"public_id\": \"abc\", \"definition_id\": \"api_opale_sandbox\", "
     "\"state\": \"validated\", \"organisation\": {\"siret\": \"21990000800018\"}, "
     "\"habilitations\": []}",
     H "$: a DataPass request (demande), not a habilitation: export the habilitation with "
       "GET /api/v1/habilitations/{id}"},
    {NULL, "{\"definition_id\": \"api_opale\"}",
     H "$: missing key \"id\"\n" H "$: missing key \"state\"\n" H
       "$: missing key \"organization\""},
    {NULL, "{}",
     H "$: missing key \"id\"\n" H "$: missing key \"state\"\n" H
       "$: missing key \"definition_id\"\n" H "$: missing key \"organization\""},
    {"\"id\": 456", "\"id\": \"D123\"",
     H "id: \"D123\" is a DataPass request id, not a "
       "habilitation id"},
    {"\"id\": 456", "\"id\": \"H456\"", H "id: must be a positive integer"},
    {"\"id\": 456", "\"id\": 0", H "id: must be a positive integer"},
    {"\"id\": 456", "\"id\": 45.6", H "id: must be a positive integer"},
    {"\"id\": 456", "\"id\": 12345678901", H "id: must be between 1 and 9999999999"},
    {"\"state\": \"active\"", "\"state\": \"validated\"",
     H "state: must be \"active\", \"obsolete\" or \"revoked\""},
    {"\"state\": \"active\"", "\"state\": 1", H "state: must be a string"},
    {"\"revoked\": false", "\"revoked\": \"no\"", H "revoked: must be a boolean"},
    {"\"api_opale_sandbox\"", "\"api_entreprise\"",
     H "definition_id: not an API OPALE habilitation (\"api_entreprise\")"},
    {"\"api_opale_sandbox\"", "\"api_opale_production\"",
     H "definition_id: not an API OPALE habilitation (\"api_opale_production\")"},
    {"\"definition_id\": \"api_opale_sandbox\"", "\"definition_id\": null",
     H "definition_id: must be a string"},
    {"\"2025-03-14T10:22:31.000+01:00\"", "\"14/03/2025\"",
     H "created_at: must be a date-time (YYYY-MM-DDThh:mm:ss...)"},
    {"\"2025-03-14T10:22:31.000+01:00\"", "\"2025-02-30T00:00:00Z\"",
     H "created_at: must be a date-time (YYYY-MM-DDThh:mm:ss...)"},
    {"\"2025-03-14T10:22:31.000+01:00\"", "1741944151",
     H "created_at: must be a date-time (YYYY-MM-DDThh:mm:ss...)"},
    {"{\"id\": 1, \"siret\": \"21990000800018\",\n"
     "                  \"name\": \"Commune d'Exemple\", \"insee_payload\": {\"x\": 1}}",
     "\"Commune d'Exemple\"", H "organization: must be an object"},
    {"\"organization\": {\"id\": 1, \"siret\": \"21990000800018\",",
     "\"organization\": {\"id\": 1,", H "organization: missing key \"siret\""},
    {"\"21990000800018\"", "\"219900008\"", H "organization.siret: must be 14 digits"},
    {"\"21990000800018\"", "21990000800018", H "organization.siret: must be a string"},
    {"\"21990000800018\"", "\"21990000800019\"",
     H "organization.siret: invalid SIRET (Luhn checksum)"},
    {"\"name\": \"Commune d'Exemple\"", "\"name\": 42",
     H "organization.name: must be a string or null"},
    {"\"tech@exemple.fr\"", "\"tech@exemple\"",
     H "data.contact_technique_email: must be an e-mail address (name@domain.tld)"},
    {"\"tech@exemple.fr\"", "\"tech exemple.fr\"",
     H "data.contact_technique_email: must be an e-mail address (name@domain.tld)"},
    {"\"tech@exemple.fr\"", "[\"tech@exemple.fr\"]",
     H "data.contact_technique_email: must be a string"},
    {"\n \"data\": {", "\n \"data\": [], \"x\": {", H "data: must be an object"},
    {"\"cadre_juridique_nature\": \"Art. L.114-8 CRPA\"", "\"cadre_juridique_nature\": 3",
     H "data.cadre_juridique_nature: must be a string"},
    {"\"duree_conservation_donnees_caractere_personnel\": 36",
     "\"duree_conservation_donnees_caractere_personnel\": 240",
     H "data.duree_conservation_donnees_caractere_personnel: must be between 1 and 120"},
    {"\"duree_conservation_donnees_caractere_personnel\": 36",
     "\"duree_conservation_donnees_caractere_personnel\": \"36 mois\"",
     H "data.duree_conservation_donnees_caractere_personnel: must be an integer"},
    {"\"volumetrie_appels_par_minute\": 500", "\"volumetrie_appels_par_minute\": 0",
     H "data.volumetrie_appels_par_minute: must be between 1 and 1000000"},
    {"\"volumetrie_appels_par_minute\": 500", "\"volumetrie_appels_par_minute\": 2.5",
     H "data.volumetrie_appels_par_minute: must be an integer"},
    {"\"volumetrie_appels_par_minute\": 500", "\"volumetrie_appels_par_minute\": \"beaucoup\"",
     H "data.volumetrie_appels_par_minute: must be an integer"},
};

START_TEST(t_bad)
{
    gw_errlist errs = {0};
    char *text = bad[_i].from != NULL ? edit(bad[_i].from, bad[_i].to) : strdup(bad[_i].to);
    char *out = gw_datapass_import("h.json", text, &errs);
    ck_assert_ptr_null(out);
    char *got = gw_test_errs_join(&errs);
    ck_assert_msg(strcmp(got, bad[_i].want) == 0, "case %d:\n got: %s\nwant: %s", _i, got,
                  bad[_i].want);
    free(got);
    free(text);
    gw_errlist_clear(&errs);
}
END_TEST

START_TEST(t_null_text)
{
    gw_errlist errs = {0};
    ck_assert_ptr_null(gw_datapass_import("h.json", NULL, &errs));
    ck_assert_uint_eq(errs.n, 1);
    ck_assert_str_eq(errs.msgs[0], "h.json: $: cannot read: Invalid argument");
    gw_errlist_clear(&errs);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("datapass");
    TCase *tc = tcase_create("datapass");
    tcase_add_test(tc, t_full);
    tcase_add_test(tc, t_skeleton_validates_once_filled);
    tcase_add_loop_test(tc, t_states, 0, (int)(sizeof(states) / sizeof(states[0])));
    tcase_add_test(tc, t_obsolete_and_revoked);
    tcase_add_loop_test(tc, t_optional, 0, (int)(sizeof(optional) / sizeof(optional[0])));
    tcase_add_test(tc, t_no_created_at);
    tcase_add_loop_test(tc, t_org_name_null, 0, (int)(sizeof(noname) / sizeof(noname[0])));
    tcase_add_loop_test(tc, t_no_contact, 0, (int)(sizeof(nocontact) / sizeof(nocontact[0])));
    tcase_add_loop_test(tc, t_slugs, 0, (int)(sizeof(slugs) / sizeof(slugs[0])));
    tcase_add_test(tc, t_slug_cut);
    tcase_add_loop_test(tc, t_bad, 0, (int)(sizeof(bad) / sizeof(bad[0])));
    tcase_add_test(tc, t_null_text);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
