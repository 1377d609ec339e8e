/* Fixtures shared by the policy module's unit tests (test_parse.c,
 * test_snapshot.c): a mkdtemp directory per test, the route table's scopes,
 * and the base policy every case edits. */
#ifndef GW_TESTS_POLICY_FIXTURES_H
#define GW_TESTS_POLICY_FIXTURES_H

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

#include "../common.h"

static char tmp_root[PATH_MAX];

/* ---- the test's directory (tests/unit/common.h) ---- */

GW_TEST_FN void setup(void)
{
    gw_test_mkdtemp(tmp_root, "policy");
}

GW_TEST_FN void teardown(void)
{
    gw_test_rmtree(tmp_root);
}

GW_TEST_FN char *tpath(const char *rel)
{
    return gw_test_path(tmp_root, rel);
}

GW_TEST_FN void mkdir_t(const char *rel)
{
    char *p = tpath(rel);
    gw_test_mkdir(p);
    free(p);
}

GW_TEST_FN void write_t(const char *rel, const char *text)
{
    char *p = tpath(rel);
    gw_test_write(p, text);
    free(p);
}

/* A self-signed certificate at <rel>; the SHA-256 of its DER (hex). */
GW_TEST_FN char *make_cert(const char *rel, const char *cn)
{
    char *crt = tpath(rel);
    char *fp = gw_test_make_cert(crt, cn);
    free(crt);
    return fp;
}

static const char *const scopes7[] = {"api_opale_declarations",
                                      "api_opale_bancaires",
                                      "api_opale_creances",
                                      "api_opale_paiements",
                                      "api_opale_remboursements",
                                      "api_opale_obligations_fiscales",
                                      "api_opale_habilitations",
                                      "s0",
                                      "s1",
                                      "s2",
                                      "s3",
                                      "s4",
                                      "s5",
                                      "s6",
                                      "s7",
                                      "s8",
                                      "s9",
                                      "s10",
                                      "s11",
                                      "s12",
                                      "s13",
                                      "s14",
                                      "s15",
                                      "s16",
                                      "s17",
                                      "s18",
                                      "s19",
                                      "s20",
                                      "s21",
                                      "s22",
                                      "s23",
                                      "s24",
                                      "s25",
                                      "s26",
                                      "s27",
                                      "s28",
                                      "s29",
                                      "s30",
                                      "s31",
                                      "s32",
                                      "s33"};
static const gw_policy_rules rules = {scopes7, sizeof(scopes7) / sizeof(scopes7[0])};

#define FP1 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define FP2_COLONS                                                                                 \
    "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:"   \
    "88:99"
#define FP2 "aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899"

/* Every key set, several to non-default values. */
static const char base[] =
    "{\n"
    "  \"habilitation\": {\"id\": \"H456\", \"definition\": \"api_opale_sandbox\",\n"
    "    \"state\": \"active\", \"valid_from\": \"2025-01-01\", \"valid_until\": \"2027-12-31\",\n"
    "    \"legal_basis\": \"Art. L.114-8 CRPA\", \"retention_months\": 36},\n"
    "  \"organization\": {\"siret\": \"21990000800018\", \"name\": \"Commune d'Exemple\"},\n"
    "  \"consumer\": {\"client_id\": \"commune-exemple-sandbox\", \"id_teleservice\": "
    "\"TS-0001\",\n"
    "    \"certificates\": [{\"sha256\": \"" FP2_COLONS "\"}, {\"sha256\": \"" FP1 "\"}],\n"
    "    \"ip_allowlist\": [\"127.0.0.1/32\", \"::1/128\", \"::ffff:10.0.0.0/104\", "
    "\"2001:db8::/32\"]},\n"
    "  \"rights\": {\"scopes\": [\"api_opale_declarations\", \"api_opale_creances\"],\n"
    "    \"years\": {\"from\": 2019, \"to\": 2025}},\n"
    "  \"quota\": {\"per_minute\": 75}\n"
    "}\n";

/* <base> with the first occurrence of <from> replaced by <to>; the test
 * fails when <from> is not there. In <to>, "<<N|ITEM>>" is ITEM N times,
 * joined by ", ", with '#' in ITEM the index in decimal and '~' the index as
 * 64 hex digits. */
GW_TEST_FN char *edit(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    ck_assert_msg(at != NULL, "\"%s\" not in the base policy", from);
    char *rep = NULL;
    size_t rlen = 0;
    FILE *m = open_memstream(&rep, &rlen);
    for (const char *q = to; *q != '\0';) {
        if (q[0] == '<' && q[1] == '<') {
            char *bar = strchr(q, '|');
            char *end = strstr(q, ">>");
            ck_assert(bar != NULL && end != NULL && bar < end);
            int n = atoi(q + 2);
            for (int i = 0; i < n; i++) {
                if (i > 0)
                    fputs(", ", m);
                for (const char *c = bar + 1; c < end; c++) {
                    if (*c == '#')
                        fprintf(m, "%d", i);
                    else if (*c == '~')
                        fprintf(m, "%064x", i);
                    else
                        fputc(*c, m);
                }
            }
            q = end + 2;
        } else {
            fputc(*q++, m);
        }
    }
    fclose(m);
    char *out = NULL;
    ck_assert_int_ge(asprintf(&out, "%.*s%s%s", (int)(at - text), text, rep, at + strlen(from)), 0);
    free(rep);
    return out;
}

#endif
