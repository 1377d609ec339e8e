/*
 * Journal writer throughput: records per second that the chained writer
 * sustains (format + submit from worker threads, chain + writev + periodic
 * fdatasync in the writer), for a typical access record. Prints figures,
 * asserts nothing.   bench_journal [records] [threads] [dir]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "journal/journal.h"

static gw_journal *j;
static long per_thread;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *producer(void *arg)
{
    char rid[64];
    for (long i = 0; i < per_thread; i++) {
        snprintf(rid, sizeof(rid), "%08lx-0000-4000-8000-%012lx", (long)(size_t)arg, i);
        gw_journal_rec r;
        memset(&r, 0, sizeof(r));
        r.ts = "2026-11-27T12:00:00.000Z";
        r.request_id = rid;
        r.correlation_id = "3f1c2a4e-1b2c-4d5e-8f90-123456789abc";
        r.env = "sandbox";
        r.listener = "public-sandbox";
        r.client_ip = "127.0.0.1";
        r.client_port = 40000;
        r.tls_version = "TLSv1.3";
        r.tls_cert_sha256 = "ade1cfc603b252e895f9b9e5a1f0c2e9b8d7a6f5e4d3c2b1a0f9e8d7c6b5a4f3";
        r.tls_subject = "CN=commune-exemple-sandbox,O=Commune d'Exemple";
        r.consumer = "commune-exemple-sandbox";
        r.habilitation = "H456";
        r.teleservice = "TS-0001";
        r.method = "GET";
        r.route = "declarations";
        r.path = "/opale/v1/entreprises/732829320/declarations";
        r.siren = "732829320";
        r.annee = "2023";
        r.scope = "api_opale_declarations";
        r.decision = "allow";
        r.status = 200;
        r.upstream_addr = "127.0.0.1:9080";
        r.upstream_status = 200;
        r.upstream_ms = 1;
        r.ms = 2;
        r.bytes_in = 300;
        r.bytes_out = 900;
        r.quota_limit = 50;
        r.quota_remaining = 10;
        r.quota_store = "memory";
        size_t len = 0;
        char *line = gw_journal_format(&r, &len);
        while (line != NULL && gw_journal_submit(j, line, len) < 0) {
            /* queue full: the bench measures the writer, so wait for room */
            usleep(100);
            line = gw_journal_format(&r, &len);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    long total = argc > 1 ? atol(argv[1]) : 200000;
    int threads = argc > 2 ? atoi(argv[2]) : 2;
    const char *dir = argc > 3 ? argv[3] : "/tmp";
    if (total < 1 || total > 100000000 || threads < 1 || threads > 64)
        return 2;
    per_thread = total / threads;
    char path[512];
    snprintf(path, sizeof(path), "%s/bench_journal.%d.jsonl", dir, (int)getpid());
    gw_journal_opts o = {.path = path, .queue_cap = 65536, .sync_ms = 1000};
    char *err = NULL;
    j = gw_journal_open_opts(&o, &err);
    if (j == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    double t0 = now_s();
    pthread_t th[64];
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, producer, (void *)(size_t)i);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    gw_journal_stats st;
    gw_journal_get_stats(j, &st);
    gw_journal_close(j); /* drains, fdatasyncs */
    double dt = now_s() - t0;
    long n = per_thread * threads;
    printf("records=%ld threads=%d seconds=%.3f records_per_s=%.0f us_per_record=%.2f "
           "dropped=%llu\n",
           n, threads, dt, (double)n / dt, dt * 1e6 / (double)n, (unsigned long long)st.dropped);
    unlink(path);
    return 0;
}
