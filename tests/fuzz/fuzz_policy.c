/* libFuzzer target for the policy loader (gateway/policy/parse.c) and the
 * DataPass import (datapass.c): one policy file's text, or a DataPass
 * habilitation, as an operator or a compromised sync could write it.
 *
 * The first input byte picks: even, gw_policy_parse; odd, gw_datapass_import
 * (and, when it gives a skeleton, gw_policy_parse of that skeleton, which
 * must not crash; it may still be refused for a placeholder).
 * Invariants: NULL exactly when errors were reported; every error is
 * "FILE: json.path: message" with the file name given; an accepted policy is
 * self-consistent (ids set, ranges ordered, lookups callable). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

#define FILE_NAME "fuzz.json"

/* the scopes of the sandbox route table (DESIGN.md) */
static const char *const scopes[] = {"api_opale_declarations",   "api_opale_bancaires",
                                     "api_opale_creances",       "api_opale_paiements",
                                     "api_opale_remboursements", "api_opale_obligations_fiscales",
                                     "api_opale_habilitations"};

static void check_errors(const gw_errlist *e, int failed)
{
    if (failed != (e->n > 0))
        abort();
    for (size_t i = 0; i < e->n; i++)
        if (strncmp(e->msgs[i], FILE_NAME ": ", strlen(FILE_NAME) + 2) != 0)
            abort();
}

static void check_policy(const gw_policy *p)
{
    if (p->id == NULL || p->client_id == NULL || p->id_teleservice == NULL || p->file == NULL)
        abort();
    if (p->valid_from > p->valid_until || p->year_from > p->year_to)
        abort();
    if (p->ncerts == 0 || p->quota_per_minute == 0)
        abort();
    for (size_t i = 0; i < p->ncerts; i++)
        if (strlen(p->certs[i]) != 64)
            abort();
    for (size_t i = 0; i < p->nscopes; i++)
        if (!gw_policy_has_scope(p, p->scopes[i]))
            abort();
    static const unsigned char v4[4] = {127, 0, 0, 1};
    static const unsigned char v6[16] = {0x20, 0x01, 0x0d, 0xb8};
    (void)gw_policy_ip_allowed(p, 2 /* AF_INET */, v4);
    (void)gw_policy_ip_allowed(p, 10 /* AF_INET6 */, v6);
}

static void parse(const char *text)
{
    gw_policy_rules rules = {scopes, sizeof(scopes) / sizeof(scopes[0])};
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    gw_policy *p = gw_policy_parse(FILE_NAME, text, &rules, &errs);
    check_errors(&errs, p == NULL);
    if (p != NULL)
        check_policy(p);
    gw_policy_free(p);
    gw_errlist_clear(&errs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    char *text = malloc(size);
    if (text == NULL)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    if (data[0] % 2 == 0) {
        parse(text);
    } else {
        gw_errlist errs;
        memset(&errs, 0, sizeof(errs));
        char *skel = gw_datapass_import(FILE_NAME, text, &errs);
        check_errors(&errs, skel == NULL);
        gw_errlist_clear(&errs);
        if (skel != NULL)
            parse(skel);
        free(skel);
    }
    free(text);
    return 0;
}
