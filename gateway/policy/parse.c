/*
 * One policy file's text -> one gw_policy. Every object is checked against
 * its list of known keys, every value against its type and bounds, and every
 * error is collected (not just the first) as "FILE: JSON.PATH: MESSAGE", with
 * the wording of the validation toolkit (gateway/lib/jsonv.h).
 * docs/policies.md lists every message; keep the two in step. The rules
 * between files (one file per habilitation id, client_id and certificate)
 * are the snapshot's (policy/snapshot.c).
 */
#include "policy/parse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lib/hash.h"
#include "lib/jsonv.h"
#include "lib/path.h"
#include "policy/files.h"

#define HAB_ID_RULE "H[1-9][0-9]{0,9}"
#define TOKEN_RULE "must be 1 to 128 printable ASCII characters, without space, '\"' or '\\'"

typedef struct ctx {
    gw_jsonv v;      /* this file's errors, named as given */
    const char *dir; /* absolute directory of the file, for "file" certificates */
    const gw_policy_rules *rules;
} ctx;

/* ---- value rules ---- */

static int valid_hab_id(const char *s)
{
    size_t n = strlen(s);
    if (n < 2 || n > 11 || s[0] != 'H' || s[1] < '1' || s[1] > '9')
        return 0;
    return strspn(s + 1, "0123456789") == n - 1;
}

/* 1..<max> bytes of printable ASCII; <more> lists extra refused bytes. */
static int valid_printable(const char *s, size_t max, const char *more)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || strchr(more, c) != NULL)
            return 0;
    }
    return 1;
}

/* "ab12…" (64 hex) or "AB:12:…" (32 pairs joined by ':'), either case, into
 * 64 lowercase hex chars. 0 or -1. */
static int norm_sha256(const char *s, char out[65])
{
    size_t n = strlen(s), k = 0;
    int colons = n == 95;
    if (n != 64 && !colons)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (colons && i % 3 == 2) {
            if (c != ':')
                return -1;
            continue;
        }
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return -1;
        out[k++] = c;
    }
    out[k] = '\0';
    return k == 64 ? 0 : -1;
}

/* ---- sections ---- */

static void parse_habilitation(ctx *x, json_t *root, gw_policy *p)
{
    static const char *const keys[] = {
        "id",          "definition",       "state", "valid_from", "valid_until",
        "legal_basis", "retention_months", NULL};
    static const char *const P = "habilitation";
    char pk[GW_JSONV_PATH];
    const char *s;
    long long v;
    int from_ok = 0, until_ok = 0;

    json_t *o = gw_jsonv_obj(&x->v, root, "$", P, 1);
    if (o == NULL)
        return;
    gw_jsonv_keys(&x->v, o, P, keys);
    if (gw_jsonv_str(&x->v, o, P, "id", 1, &s) == GW_JSONV_SET) {
        if (valid_hab_id(s))
            p->id = gw_jsonv_strdup(&x->v, "habilitation.id", s);
        else
            gw_jsonv_err(&x->v, "habilitation.id", "must match " HAB_ID_RULE);
    }
    if (gw_jsonv_str(&x->v, o, P, "definition", 1, &s) == GW_JSONV_SET) {
        if (strcmp(s, "api_opale_sandbox") == 0 || strcmp(s, "api_opale") == 0) {
            p->env = s[9] == '\0' ? GW_ENV_PRODUCTION : GW_ENV_SANDBOX;
            p->definition = gw_jsonv_strdup(&x->v, "habilitation.definition", s);
        } else {
            gw_jsonv_err(&x->v, "habilitation.definition",
                         "must be \"api_opale_sandbox\" or \"api_opale\"");
        }
    }
    if (gw_jsonv_str(&x->v, o, P, "state", 1, &s) == GW_JSONV_SET) {
        if (strcmp(s, "active") == 0)
            p->state = GW_HAB_ACTIVE;
        else if (strcmp(s, "suspended") == 0)
            p->state = GW_HAB_SUSPENDED;
        else if (strcmp(s, "revoked") == 0)
            p->state = GW_HAB_REVOKED;
        else
            gw_jsonv_err(&x->v, "habilitation.state",
                         "must be \"active\", \"suspended\" or \"revoked\"");
    }
    static const char *const dates[2] = {"valid_from", "valid_until"};
    int *dst[2] = {&p->valid_from, &p->valid_until};
    int *ok[2] = {&from_ok, &until_ok};
    for (int i = 0; i < 2; i++) {
        if (gw_jsonv_str(&x->v, o, P, dates[i], 1, &s) != GW_JSONV_SET)
            continue;
        gw_jsonv_path_key(pk, P, dates[i]);
        int r = gw_date_parse(s, dst[i]);
        if (r == -1)
            gw_jsonv_err(&x->v, pk, "must be a date YYYY-MM-DD");
        else if (r == -2)
            gw_jsonv_err(&x->v, pk, "must be a real calendar date");
        else
            *ok[i] = 1;
    }
    if (from_ok && until_ok && p->valid_from > p->valid_until)
        gw_jsonv_err(&x->v, "habilitation.valid_until", "must not be before valid_from");
    if (gw_jsonv_str(&x->v, o, P, "legal_basis", 0, &s) == GW_JSONV_SET) {
        if (s[0] == '\0')
            gw_jsonv_err(&x->v, "habilitation.legal_basis", "must not be empty");
        else
            p->legal_basis = gw_jsonv_strdup(&x->v, "habilitation.legal_basis", s);
    }
    p->retention_months = -1;
    if (gw_jsonv_int(&x->v, o, P, "retention_months", 0, 1, 120, &v) == GW_JSONV_SET)
        p->retention_months = (int)v;
}

static void parse_organization(ctx *x, json_t *root, gw_policy *p)
{
    static const char *const keys[] = {"siret", "name", NULL};
    static const char *const P = "organization";
    const char *s;

    json_t *o = gw_jsonv_obj(&x->v, root, "$", P, 1);
    if (o == NULL)
        return;
    gw_jsonv_keys(&x->v, o, P, keys);
    if (gw_jsonv_str(&x->v, o, P, "siret", 1, &s) == GW_JSONV_SET) {
        const char *why = gw_siret_check(s);
        if (why != NULL)
            gw_jsonv_err(&x->v, "organization.siret", "%s", why);
        else
            p->org_siret = gw_jsonv_strdup(&x->v, "organization.siret", s);
    }
    if (gw_jsonv_str(&x->v, o, P, "name", 0, &s) == GW_JSONV_SET) {
        if (s[0] == '\0')
            gw_jsonv_err(&x->v, "organization.name", "must not be empty");
        else
            p->org_name = gw_jsonv_strdup(&x->v, "organization.name", s);
    }
}

static void parse_cert(ctx *x, json_t *v, const char *pe, char out[65], int *ok)
{
    static const char *const keys[] = {"sha256", "file", NULL};
    char pk[GW_JSONV_PATH], cb[512], why[128];
    const char *s;

    if (!json_is_object(v)) {
        gw_jsonv_err(&x->v, pe, "must be an object");
        return;
    }
    gw_jsonv_keys(&x->v, v, pe, keys);
    int has_sha = json_object_get(v, "sha256") != NULL;
    int has_file = json_object_get(v, "file") != NULL;
    if (has_sha && has_file) {
        gw_jsonv_err(&x->v, pe, "must have \"sha256\" or \"file\", not both");
    } else if (!has_sha && !has_file) {
        gw_jsonv_err(&x->v, pe, "missing key \"sha256\" or \"file\"");
    } else if (has_sha) {
        if (gw_jsonv_str(&x->v, v, pe, "sha256", 1, &s) != GW_JSONV_SET)
            return;
        gw_jsonv_path_key(pk, pe, "sha256");
        if (norm_sha256(s, out) < 0)
            gw_jsonv_err(&x->v, pk,
                         "must be 64 hexadecimal characters (SHA-256), optionally ':'-separated");
        else
            *ok = 1;
    } else {
        if (gw_jsonv_str(&x->v, v, pe, "file", 1, &s) != GW_JSONV_SET)
            return;
        gw_jsonv_path_key(pk, pe, "file");
        if (s[0] == '\0') {
            gw_jsonv_err(&x->v, pk, "must not be empty");
            return;
        }
        char *abs = x->dir != NULL ? gw_path_resolve(x->dir, s) : NULL;
        if (abs == NULL) {
            gw_jsonv_err(&x->v, pk, "out of memory");
            return;
        }
        if (gw_policy_cert_sha256(abs, out, why, sizeof(why)) != NULL) {
            if (strcmp(why, "not a PEM certificate") == 0)
                gw_jsonv_err(&x->v, pk, "\"%s\" is not a PEM certificate",
                             gw_jsonv_clean(cb, sizeof(cb), abs, 400));
            else
                gw_jsonv_err(&x->v, pk, "cannot read \"%s\": %s",
                             gw_jsonv_clean(cb, sizeof(cb), abs, 400), why);
        } else {
            *ok = 1;
        }
        free(abs);
    }
}

static void parse_certs(ctx *x, json_t *o, gw_policy *p)
{
    static const char *const P = "consumer.certificates";
    char pe[GW_JSONV_PATH];

    json_t *a = gw_jsonv_array(&x->v, o, "consumer", "certificates", 1, 1, GW_POLICY_MAX_CERTS);
    if (a == NULL || json_array_size(a) == 0)
        return;
    size_t n = json_array_size(a);
    char(*certs)[65] = gw_jsonv_calloc(&x->v, P, n, sizeof(*certs));
    int *ok = gw_jsonv_calloc(&x->v, P, n, sizeof(int));
    if (certs == NULL || ok == NULL) {
        free(certs);
        free(ok);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        gw_jsonv_path_idx(pe, P, i);
        parse_cert(x, json_array_get(a, i), pe, certs[i], &ok[i]);
        for (size_t j = 0; ok[i] && j < i; j++) {
            if (ok[j] && strcmp(certs[i], certs[j]) == 0) {
                gw_jsonv_err(&x->v, pe, "duplicate of consumer.certificates[%zu]", j);
                break;
            }
        }
    }
    free(ok);
    p->certs = certs;
    p->ncerts = n;
}

static void parse_ips(ctx *x, json_t *o, gw_policy *p)
{
    static const char *const P = "consumer.ip_allowlist";
    char pe[GW_JSONV_PATH];

    json_t *a = gw_jsonv_array(&x->v, o, "consumer", "ip_allowlist", 1, 1, 256);
    if (a == NULL || json_array_size(a) == 0)
        return;
    size_t n = json_array_size(a);
    gw_cidr *ips = gw_jsonv_calloc(&x->v, P, n, sizeof(*ips));
    if (ips == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(a, i);
        gw_jsonv_path_idx(pe, P, i);
        if (!json_is_string(v)) {
            gw_jsonv_err(&x->v, pe, "must be a string");
            continue;
        }
        const char *why = gw_cidr_parse(json_string_value(v), &ips[i]);
        if (why != NULL) {
            gw_jsonv_err(&x->v, pe, "%s", why);
            continue;
        }
        for (size_t j = 0; j < i; j++) {
            if (ips[j].family == ips[i].family && ips[j].prefix == ips[i].prefix &&
                memcmp(ips[j].addr, ips[i].addr, 16) == 0) {
                gw_jsonv_err(&x->v, pe, "duplicate of consumer.ip_allowlist[%zu]", j);
                break;
            }
        }
    }
    p->ips = ips;
    p->nips = n;
}

static void parse_consumer(ctx *x, json_t *root, gw_policy *p)
{
    static const char *const keys[] = {"client_id",    "id_teleservice",       "certificates",
                                       "ip_allowlist", "client_secret_sha256", NULL};
    static const char *const P = "consumer";
    const char *s;

    json_t *o = gw_jsonv_obj(&x->v, root, "$", P, 1);
    if (o == NULL)
        return;
    gw_jsonv_keys(&x->v, o, P, keys);
    if (gw_jsonv_str(&x->v, o, P, "client_id", 1, &s) == GW_JSONV_SET) {
        if (gw_client_id_valid(s))
            p->client_id = gw_jsonv_strdup(&x->v, "consumer.client_id", s);
        else
            gw_jsonv_err(&x->v, "consumer.client_id", "must match " GW_CLIENT_ID_RULE);
    }
    if (gw_jsonv_str(&x->v, o, P, "id_teleservice", 1, &s) == GW_JSONV_SET) {
        if (valid_printable(s, 64, ""))
            p->id_teleservice = gw_jsonv_strdup(&x->v, "consumer.id_teleservice", s);
        else
            gw_jsonv_err(&x->v, "consumer.id_teleservice",
                         "must be 1 to 64 printable ASCII characters, without space");
    }
    /* Optional client_secret_basic on top of the certificate at /token: the
     * SHA-256 (hex) of a high-entropy random secret, never the secret. */
    if (gw_jsonv_str(&x->v, o, P, "client_secret_sha256", 0, &s) == GW_JSONV_SET) {
        char hex[65];
        if (norm_sha256(s, hex) == 0) {
            memcpy(p->secret_sha256, hex, sizeof(hex));
            p->has_secret = 1;
        } else {
            gw_jsonv_err(&x->v, "consumer.client_secret_sha256",
                         "must be 64 hexadecimal characters");
        }
    }
    parse_certs(x, o, p);
    parse_ips(x, o, p);
}

static int known_scope(const gw_policy_rules *r, const char *s)
{
    for (size_t i = 0; i < r->nknown_scopes; i++) {
        if (r->known_scopes[i] != NULL && strcmp(r->known_scopes[i], s) == 0)
            return 1;
    }
    return 0;
}

static void parse_rights(ctx *x, json_t *root, gw_policy *p)
{
    static const char *const keys[] = {"scopes", "years", NULL};
    static const char *const ykeys[] = {"from", "to", NULL};
    static const char *const P = "rights";
    char pe[GW_JSONV_PATH], cb[96];
    long long from = 0, to = 0;

    json_t *o = gw_jsonv_obj(&x->v, root, "$", P, 1);
    if (o == NULL)
        return;
    gw_jsonv_keys(&x->v, o, P, keys);
    json_t *a = gw_jsonv_array(&x->v, o, P, "scopes", 1, 1, 32);
    if (a != NULL && json_array_size(a) > 0) {
        size_t n = json_array_size(a);
        p->scopes = gw_jsonv_calloc(&x->v, "rights.scopes", n, sizeof(char *));
        for (size_t i = 0; p->scopes != NULL && i < n; i++) {
            json_t *v = json_array_get(a, i);
            gw_jsonv_path_idx(pe, "rights.scopes", i);
            if (!json_is_string(v)) {
                gw_jsonv_err(&x->v, pe, "must be a string");
                continue;
            }
            const char *s = json_string_value(v);
            if (x->rules != NULL && !known_scope(x->rules, s)) {
                gw_jsonv_err(&x->v, pe, "unknown scope \"%s\"",
                             gw_jsonv_clean(cb, sizeof(cb), s, 64));
                continue;
            }
            if (x->rules == NULL && !valid_printable(s, 128, "\"\\")) {
                gw_jsonv_err(&x->v, pe, TOKEN_RULE);
                continue;
            }
            size_t j = 0;
            while (j < i && (p->scopes[j] == NULL || strcmp(p->scopes[j], s) != 0))
                j++;
            if (j < i) {
                gw_jsonv_err(&x->v, pe, "duplicate of rights.scopes[%zu]", j);
                continue;
            }
            p->scopes[i] = gw_jsonv_strdup(&x->v, pe, s);
        }
        if (p->scopes != NULL)
            p->nscopes = n;
    }
    json_t *y = gw_jsonv_obj(&x->v, o, P, "years", 1);
    if (y != NULL) {
        gw_jsonv_keys(&x->v, y, "rights.years", ykeys);
        int rf = gw_jsonv_int(&x->v, y, "rights.years", "from", 1, 1990, 2100, &from);
        int rt = gw_jsonv_int(&x->v, y, "rights.years", "to", 1, 1990, 2100, &to);
        if (rf == GW_JSONV_SET && rt == GW_JSONV_SET && from > to)
            gw_jsonv_err(&x->v, "rights.years.to", "must not be less than from");
        p->year_from = (int)from;
        p->year_to = (int)to;
    }
}

static void parse_quota(ctx *x, json_t *root, gw_policy *p)
{
    static const char *const keys[] = {"per_minute", NULL};
    long long v;

    p->quota_per_minute = p->env == GW_ENV_PRODUCTION ? 500 : 50;
    json_t *o = gw_jsonv_obj(&x->v, root, "$", "quota", 0);
    if (o == NULL)
        return;
    gw_jsonv_keys(&x->v, o, "quota", keys);
    if (gw_jsonv_int(&x->v, o, "quota", "per_minute", 1, 1, 1000000, &v) == GW_JSONV_SET)
        p->quota_per_minute = (unsigned)v;
}

/* "contacts": optional, who to call about this habilitation. */
static void parse_contacts(ctx *x, json_t *root, gw_policy *p)
{
    static const char *const keys[] = {"technical", NULL};
    const char *s;

    json_t *o = gw_jsonv_obj(&x->v, root, "$", "contacts", 0);
    if (o == NULL)
        return;
    gw_jsonv_keys(&x->v, o, "contacts", keys);
    if (gw_jsonv_str(&x->v, o, "contacts", "technical", 0, &s) == GW_JSONV_SET) {
        if (gw_email_valid(s))
            p->contact_technical = gw_jsonv_strdup(&x->v, "contacts.technical", s);
        else
            gw_jsonv_err(&x->v, "contacts.technical", GW_EMAIL_RULE);
    }
}

static void parse_root(ctx *x, json_t *root, gw_policy *p)
{
    static const char *const keys[] = {"habilitation", "organization", "contacts", "consumer",
                                       "rights",       "quota",        NULL};
    gw_jsonv_keys(&x->v, root, "$", keys);
    parse_habilitation(x, root, p);
    parse_organization(x, root, p);
    parse_contacts(x, root, p);
    parse_consumer(x, root, p);
    parse_rights(x, root, p);
    parse_quota(x, root, p);
}

gw_policy *gw_policy_parse_text(const char *file, const char *dir, const char *text, size_t len,
                                const gw_policy_rules *rules, gw_errlist *errs)
{
    ctx x = {.v = gw_jsonv_init(file, errs), .dir = dir, .rules = rules};
    json_t *root = NULL;
    gw_policy *p = calloc(1, sizeof(*p));

    if (p == NULL) {
        gw_jsonv_err(&x.v, "$", "out of memory");
        return NULL;
    }
    p->retention_months = -1;
    p->file = gw_jsonv_strdup(&x.v, "$", file);
    p->text_hash = gw_fnv1a64(text, len);
    root = gw_jsonv_parse(&x.v, text, len);
    if (root == NULL)
        goto out;
    if (!json_is_object(root)) {
        gw_jsonv_err(&x.v, "$", "must be an object");
        goto out;
    }
    parse_root(&x, root, p);
out:
    json_decref(root);
    if (x.v.nerrs > 0) {
        gw_policy_free(p);
        p = NULL;
    }
    return p;
}

gw_policy *gw_policy_parse(const char *file, const char *text, const gw_policy_rules *rules,
                           gw_errlist *errs)
{
    const char *f = file != NULL ? file : "-";
    if (text == NULL) {
        gw_errlist_add(errs, "%s: $: cannot read: %s", f, strerror(EINVAL));
        return NULL;
    }
    char *dir = gw_policy_file_dir(f);
    if (dir == NULL) {
        gw_errlist_add(errs, "%s: $: out of memory", f);
        return NULL;
    }
    gw_policy *p = gw_policy_parse_text(f, dir, text, strlen(text), rules, errs);
    free(dir);
    return p;
}

void gw_policy_free(gw_policy *p)
{
    if (p == NULL)
        return;
    free(p->file);
    free(p->id);
    free(p->definition);
    free(p->legal_basis);
    free(p->org_siret);
    free(p->org_name);
    free(p->client_id);
    free(p->id_teleservice);
    free(p->contact_technical);
    free(p->certs);
    free(p->ips);
    for (size_t i = 0; p->scopes != NULL && i < p->nscopes; i++)
        free(p->scopes[i]);
    free(p->scopes);
    free(p);
}

int gw_policy_ip_allowed(const gw_policy *p, int family, const unsigned char *addr)
{
    if (p == NULL)
        return 0;
    for (size_t i = 0; i < p->nips; i++) {
        if (gw_cidr_match(&p->ips[i], family, addr))
            return 1;
    }
    return 0;
}

int gw_policy_has_scope(const gw_policy *p, const char *scope)
{
    if (p == NULL || scope == NULL)
        return 0;
    for (size_t i = 0; i < p->nscopes; i++) {
        if (strcmp(p->scopes[i], scope) == 0)
            return 1;
    }
    return 0;
}
