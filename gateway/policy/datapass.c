/*
 * DataPass import: one habilitation in the DataPass public API shape
 * (GET /api/v1/habilitations/{id}, schema HabilitationDetailed) -> a policy
 * skeleton. DataPass holds the administrative half of a policy (who, which
 * definition, since when, on what legal basis, at what volume); the technical
 * half (certificates, IPs, ID_Teleservice, scopes, years) comes from the
 * convention and the DGFIP, so the skeleton carries "TODO" placeholders there
 * that the policy loader refuses until an operator fills them.
 *
 * Tolerant of keys DataPass adds; strict on the few values it uses.
 * docs/policies.md ("DataPass import") lists the mapping and every message.
 */
#include "policy/policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "lib/jsonv.h"

#define SLUG_MAX 116 /* + "-production" stays within client_id's 128 */

/* The optional string <key> of data (absent or null: NULL). */
static const char *data_str(gw_jsonv *x, json_t *data, const char *key)
{
    const char *s = NULL;
    gw_jsonv_str(x, data, "data", key, GW_JSONV_NULL_ABSENT, &s);
    return s;
}

/* A count in data: an integer, or a string of digits (DataPass form values
 * are often strings). 1 when set, 0 when absent/null/"", -1 on error. */
static int data_count(gw_jsonv *x, json_t *data, const char *key, long long min, long long max,
                      long long *out)
{
    char path[GW_JSONV_PATH];
    json_t *v = gw_jsonv_member(x, data, "data", key, GW_JSONV_NULL_ABSENT);
    long long n;
    if (v == NULL)
        return 0;
    gw_jsonv_path_key(path, "data", key);
    if (json_is_integer(v)) {
        n = json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = strlen(s);
        if (len == 0)
            return 0;
        if (len > 12 || strspn(s, "0123456789") != len) {
            gw_jsonv_err(x, path, "must be an integer");
            return -1;
        }
        n = strtoll(s, NULL, 10);
    } else {
        gw_jsonv_err(x, path, "must be an integer");
        return -1;
    }
    if (n < min || n > max) {
        gw_jsonv_err(x, path, "must be between %lld and %lld", min, max);
        return -1;
    }
    *out = n;
    return 1;
}

/* ---- derived values ---- */

/* ASCII for U+00C0..U+00FF ("" = a separator). */
static const char *const latin1[64] = {
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i",  "i",
    "d", "n", "o", "o", "o", "o", "o",  "",  "o", "u", "u", "u", "u", "y", "th", "ss",
    "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i",  "i",
    "d", "n", "o", "o", "o", "o", "o",  "",  "o", "u", "u", "u", "u", "y", "th", "y"};

/* "Commune d'Exemple" -> "commune-d-exemple": lowercase ASCII letters and
 * digits, French accents folded, every other run of characters one '-'. */
static void slugify(const char *name, char out[SLUG_MAX + 1])
{
    size_t n = 0;
    int dash = 0;
    const unsigned char *s = (const unsigned char *)name;

    while (*s != '\0' && n < SLUG_MAX) {
        const char *add = "";
        char one[2] = {0, 0};
        size_t step = 1;
        if ((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')) {
            one[0] = (char)*s;
            add = one;
        } else if (*s >= 'A' && *s <= 'Z') {
            one[0] = (char)(*s - 'A' + 'a');
            add = one;
        } else if (*s == 0xC3 && s[1] >= 0x80 && s[1] <= 0xBF) {
            add = latin1[s[1] - 0x80];
            step = 2;
        } else if (*s == 0xC5 && (s[1] == 0x92 || s[1] == 0x93)) {
            add = "oe";
            step = 2;
        } else if (*s >= 0xC0) {
            /* another multibyte character: skip it whole */
            while ((s[step] & 0xC0) == 0x80)
                step++;
        }
        if (add[0] == '\0') {
            dash = n > 0;
        } else {
            if (dash && n < SLUG_MAX)
                out[n++] = '-';
            dash = 0;
            for (; *add != '\0' && n < SLUG_MAX; add++)
                out[n++] = *add;
        }
        s += step;
    }
    while (n > 0 && out[n - 1] == '-')
        n--;
    out[n] = '\0';
}

/* yyyymmdd one year later; 29 February becomes 28 February. */
static int plus_one_year(int ymd)
{
    int y = ymd / 10000 + 1, md = ymd % 10000;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (md == 229 && !leap)
        md = 228;
    return y * 10000 + md;
}

static void fmt_date(int ymd, char out[11])
{
    unsigned u = (unsigned)ymd;
    snprintf(out, 11, "%04u-%02u-%02u", (u / 10000) % 10000, (u / 100) % 100, u % 100);
}

static int today_utc(void)
{
    struct tm tm;
    time_t now = time(NULL);
    gmtime_r(&now, &tm);
    return (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
}

/* ---- the import ---- */

typedef struct dp {
    long long id;
    const char *state; /* mapped: "active" | "revoked" */
    const char *definition;
    int valid_from;
    const char *siret;
    const char *org_name;          /* NULL: DataPass has none */
    const char *contact_technical; /* data.contact_technique_email, or NULL */
    char *legal_basis;             /* malloc'd, or NULL */
    long long retention;           /* 0 when absent */
    long long per_minute;          /* 0 when absent */
} dp;

/* A DataPass request (demande, "D123") rather than a habilitation: it has
 * these keys, which a habilitation has not. */
static int looks_like_request(json_t *root)
{
    static const char *const keys[] = {"public_id",     "form_uid",     "applicant",
                                       "habilitations", "organisation", NULL};
    for (size_t i = 0; keys[i] != NULL; i++) {
        if (json_object_get(root, keys[i]) != NULL)
            return 1;
    }
    return 0;
}

static void read_head(gw_jsonv *x, json_t *root, dp *d)
{
    char cb[96];
    const char *s;

    json_t *v = json_object_get(root, "id");
    if (v == NULL) {
        gw_jsonv_err(x, "$", "missing key \"id\"");
    } else if (json_is_string(v) && json_string_value(v)[0] == 'D') {
        gw_jsonv_err(x, "id", "\"%s\" is a DataPass request id, not a habilitation id",
                     gw_jsonv_clean(cb, sizeof(cb), json_string_value(v), 32));
    } else if (!json_is_integer(v) || json_integer_value(v) < 1) {
        gw_jsonv_err(x, "id", "must be a positive integer");
    } else if (json_integer_value(v) > 9999999999LL) {
        gw_jsonv_err(x, "id", "must be between 1 and 9999999999");
    } else {
        d->id = json_integer_value(v);
    }

    if (gw_jsonv_str(x, root, "$", "state", GW_JSONV_REQUIRED, &s) == GW_JSONV_SET) {
        if (strcmp(s, "active") == 0)
            d->state = "active";
        else if (strcmp(s, "obsolete") == 0 || strcmp(s, "revoked") == 0)
            d->state = "revoked";
        else
            gw_jsonv_err(x, "state", "must be \"active\", \"obsolete\" or \"revoked\"");
    }
    int revoked = 0;
    if (gw_jsonv_bool(x, root, "$", "revoked", GW_JSONV_OPTIONAL, &revoked) == GW_JSONV_SET &&
        revoked)
        d->state = "revoked"; /* DataPass: this boolean is authoritative */

    if (gw_jsonv_str(x, root, "$", "definition_id", GW_JSONV_REQUIRED, &s) == GW_JSONV_SET) {
        if (strcmp(s, "api_opale_sandbox") == 0 || strcmp(s, "api_opale") == 0)
            d->definition = s;
        else
            gw_jsonv_err(x, "definition_id", "not an API OPALE habilitation (\"%s\")",
                         gw_jsonv_clean(cb, sizeof(cb), s, 64));
    }

    d->valid_from = today_utc();
    v = json_object_get(root, "created_at");
    if (v != NULL && !json_is_null(v)) {
        char day[11];
        s = json_is_string(v) ? json_string_value(v) : "";
        size_t n = strlen(s);
        int ok = n >= 10 && (n == 10 || s[10] == 'T' || s[10] == ' ');
        if (ok) {
            memcpy(day, s, 10);
            day[10] = '\0';
            ok = gw_date_parse(day, &d->valid_from) == 0;
        }
        if (!ok)
            gw_jsonv_err(x, "created_at", "must be a date-time (YYYY-MM-DDThh:mm:ss...)");
    }
}

static void read_org(gw_jsonv *x, json_t *root, dp *d)
{
    const char *siret;
    json_t *o = gw_jsonv_obj(x, root, "$", "organization", GW_JSONV_REQUIRED);
    if (o == NULL)
        return;
    if (gw_jsonv_str(x, o, "organization", "siret", GW_JSONV_REQUIRED, &siret) == GW_JSONV_SET) {
        const char *why = gw_siret_check(siret);
        if (why != NULL)
            gw_jsonv_err(x, "organization.siret", "%s", why);
        else
            d->siret = siret;
    }
    json_t *v;
    /* Organisation.name is nullable in the DataPass OpenAPI: absent, null or
     * "" leave it out of the skeleton (the SIRET names the organization) */
    v = json_object_get(o, "name");
    if (v != NULL && !json_is_null(v) && !json_is_string(v))
        gw_jsonv_err(x, "organization.name", "must be a string or null");
    else if (json_is_string(v) && json_string_value(v)[0] != '\0')
        d->org_name = json_string_value(v);
}

static void read_data(gw_jsonv *x, json_t *root, dp *d)
{
    json_t *data = gw_jsonv_obj(x, root, "$", "data", GW_JSONV_NULL_ABSENT);

    if (data == NULL)
        return;
    const char *nature = data_str(x, data, "cadre_juridique_nature");
    const char *url = data_str(x, data, "cadre_juridique_url");
    if (nature != NULL && nature[0] == '\0')
        nature = NULL;
    if (url != NULL && url[0] == '\0')
        url = NULL;
    if (nature != NULL && url != NULL) {
        if (asprintf(&d->legal_basis, "%s (%s)", nature, url) < 0)
            d->legal_basis = NULL;
    } else if (nature != NULL || url != NULL) {
        d->legal_basis = strdup(nature != NULL ? nature : url);
    }
    if ((nature != NULL || url != NULL) && d->legal_basis == NULL)
        gw_jsonv_err(x, "data", "out of memory");

    const char *mail = data_str(x, data, "contact_technique_email");
    if (mail != NULL && mail[0] != '\0') {
        if (gw_email_valid(mail))
            d->contact_technical = mail;
        else
            gw_jsonv_err(x, "data.contact_technique_email", GW_EMAIL_RULE);
    }

    data_count(x, data, "duree_conservation_donnees_caractere_personnel", 1, 120, &d->retention);
    data_count(x, data, "volumetrie_appels_par_minute", 1, 1000000, &d->per_minute);
}

/* The skeleton, keys in the order of docs/policies.md. */
static json_t *skeleton(const dp *d)
{
    char from[11], until[11], hid[16], slug[SLUG_MAX + 1], client_id[160];
    int prod = strcmp(d->definition, "api_opale") == 0;

    fmt_date(d->valid_from, from);
    fmt_date(plus_one_year(d->valid_from), until);
    snprintf(hid, sizeof(hid), "H%lld", d->id);
    slugify(d->org_name != NULL ? d->org_name : "", slug);
    if (slug[0] == '\0')
        snprintf(slug, sizeof(slug), "h%lld", d->id);
    snprintf(client_id, sizeof(client_id), "%s-%s", slug, prod ? "production" : "sandbox");

    json_t *hab = json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", hid, "definition", d->definition,
                            "state", d->state, "valid_from", from, "valid_until", until);
    if (hab != NULL && d->legal_basis != NULL)
        json_object_set_new(hab, "legal_basis", json_string(d->legal_basis));
    if (hab != NULL && d->retention > 0)
        json_object_set_new(hab, "retention_months", json_integer(d->retention));
    json_t *org = json_pack("{s:s}", "siret", d->siret);
    if (org != NULL && d->org_name != NULL)
        json_object_set_new(org, "name", json_string(d->org_name));
    json_t *contacts = NULL;
    if (d->contact_technical != NULL)
        contacts = json_pack("{s:s}", "technical", d->contact_technical);
    json_t *root = json_pack(
        "{s:o, s:o, s:o*, s:{s:s, s:s, s:[{s:s}], s:[s]}, s:{s:[s], s:{s:s, s:s}}}", "habilitation",
        hab, "organization", org, "contacts", contacts, "consumer", "client_id", client_id,
        "id_teleservice", "TODO: the ID_Teleservice issued by the DGFIP", "certificates", "sha256",
        "TODO: SHA-256 of the client certificate (DER), or replace this object by "
        "{\"file\": \"path/to/client.crt\"}",
        "ip_allowlist", "TODO: the partner's CIDRs, e.g. 192.0.2.0/24", "rights", "scopes",
        "TODO: scopes of the convention, e.g. api_opale_declarations", "years", "from",
        "TODO: first year granted", "to", "TODO: last year granted");
    if (root != NULL && d->per_minute > 0)
        json_object_set_new(root, "quota", json_pack("{s:I}", "per_minute", d->per_minute));
    return root;
}

char *gw_datapass_import(const char *file, const char *text, gw_errlist *errs)
{
    gw_jsonv x = gw_jsonv_init(file, errs);
    dp d;
    json_t *root = NULL, *out = NULL;
    char *res = NULL;

    memset(&d, 0, sizeof(d));
    if (text == NULL) {
        gw_jsonv_err(&x, "$", "cannot read: %s", strerror(EINVAL));
        return NULL;
    }
    root = gw_jsonv_parse(&x, text, strlen(text));
    if (root == NULL)
        goto out;
    if (json_is_array(root)) {
        gw_jsonv_err(&x, "$",
                     "must be one habilitation (an object), not a list: export it with "
                     "GET /api/v1/habilitations/{id}");
        goto out;
    }
    if (!json_is_object(root)) {
        gw_jsonv_err(&x, "$", "must be an object");
        goto out;
    }
    if (looks_like_request(root)) {
        gw_jsonv_err(&x, "$",
                     "a DataPass request (demande), not a habilitation: export the habilitation "
                     "with GET /api/v1/habilitations/{id}");
        goto out;
    }
    read_head(&x, root, &d);
    read_org(&x, root, &d);
    read_data(&x, root, &d);
    if (x.nerrs > 0)
        goto out;
    out = skeleton(&d);
    char *json = out != NULL ? json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    if (json == NULL || asprintf(&res, "%s\n", json) < 0) {
        res = NULL;
        gw_jsonv_err(&x, "$", "out of memory");
    }
    free(json);
out:
    free(d.legal_basis);
    json_decref(out);
    json_decref(root);
    return res;
}
