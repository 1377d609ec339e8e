/*
 * Policy-set benchmark: load time of N generated policy files and the cost of
 * a lookup by certificate fingerprint and by client_id, for N = 1 and
 * N = 10,000 (issue: "serve 10,000 partners as fast as 1"). Prints figures;
 * asserts nothing about speed (the machine is shared and noisy).
 *
 *   bench_policies [N...]     default: 1 10000
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "policy/policy.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fp_of(size_t i, char out[65])
{
    snprintf(out, 65, "%064zx", i * 2654435761u + 1);
}

/* A Luhn-valid 14-digit SIRET derived from <i>. */
static void siret_of(size_t i, char out[15])
{
    snprintf(out, 15, "2%012zu", i % 1000000000000u);
    int sum = 0;
    for (int k = 0; k < 13; k++) {
        int d = out[12 - k] - '0';
        if (k % 2 == 0) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    out[13] = (char)('0' + (10 - sum % 10) % 10);
    out[14] = '\0';
}

static int gen(const char *dir, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char path[512], fp[65], siret[15];
        snprintf(path, sizeof(path), "%s/p%06zu.json", dir, i);
        fp_of(i, fp);
        siret_of(i, siret);
        FILE *f = fopen(path, "w");
        if (f == NULL)
            return -1;
        fprintf(f,
                "{\"habilitation\":{\"id\":\"H%zu\",\"definition\":\"api_opale_sandbox\","
                "\"state\":\"active\",\"valid_from\":\"2025-01-01\",\"valid_until\":\"2027-12-"
                "31\"},\"organization\":{\"siret\":\"%s\",\"name\":\"Org %zu\"},"
                "\"consumer\":{\"client_id\":\"client-%zu\",\"id_teleservice\":\"TS-%zu\","
                "\"certificates\":[{\"sha256\":\"%s\"}],\"ip_allowlist\":[\"10.%zu.%zu.0/24\"]},"
                "\"rights\":{\"scopes\":[\"api_opale_declarations\"],\"years\":{\"from\":2019,"
                "\"to\":2025}}}\n",
                i + 1, siret, i, i, i, fp, (i / 256) % 256, i % 256);
        fclose(f);
    }
    return 0;
}

static void run(size_t n)
{
    char dir[] = "/tmp/bench_policies.XXXXXX";
    if (mkdtemp(dir) == NULL || gen(dir, n) < 0) {
        perror("generate");
        exit(1);
    }
    const char *scopes[] = {"api_opale_declarations"};
    gw_policy_rules rules = {scopes, 1};
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    double t0 = now_s();
    gw_policy_set *s = gw_policy_set_load(dir, &rules, &errs);
    double load = now_s() - t0;
    if (s == NULL) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.msgs[i]);
        exit(1);
    }
    const size_t lookups = 2000000;
    char fps[64][65], ids[64][32];
    for (size_t k = 0; k < 64; k++) {
        fp_of((k * 7919) % n, fps[k]);
        snprintf(ids[k], sizeof(ids[k]), "client-%zu", (k * 7919) % n);
    }
    size_t hits = 0;
    t0 = now_s();
    for (size_t k = 0; k < lookups; k++)
        hits += gw_policy_by_cert(s, fps[k & 63]) != NULL;
    double by_cert = (now_s() - t0) / (double)lookups * 1e9;
    t0 = now_s();
    for (size_t k = 0; k < lookups; k++)
        hits += gw_policy_by_client_id(s, ids[k & 63]) != NULL;
    double by_id = (now_s() - t0) / (double)lookups * 1e9;
    printf("policies=%zu load_ms=%.1f lookup_by_cert_ns=%.1f lookup_by_client_id_ns=%.1f "
           "hits=%zu/%zu\n",
           n, load * 1e3, by_cert, by_id, hits, 2 * lookups);
    gw_policy_set_unref(s);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        run(1);
        run(10000);
        return 0;
    }
    for (int i = 1; i < argc; i++)
        run((size_t)strtoul(argv[i], NULL, 10));
    return 0;
}
