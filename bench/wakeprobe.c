/*
 * opale-wakeprobe: how late this machine wakes a sleeping thread.
 *
 * One thread per CPU named on the command line, pinned to it, at SCHED_FIFO
 * when the process may use it (root), sleeps to an absolute deadline every
 * --interval-us and records how late it woke, in microseconds. The bench runs
 * it on an idle machine before S3: every hop of a proxied request from one
 * core to the other is such a wake-up, so its lateness is a floor under the
 * latency any proxy adds (bench/README.md, "S3 on this machine").
 *
 * Output: one JSON object on stdout. Exit 0, 1 when a thread cannot be
 * started or pinned, 2 for a bad command line.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loadgen.h"

#define MAX_CPUS 64

struct probe {
    int cpu;
    int fifo; /* 1: ran at SCHED_FIFO */
    uint64_t expected, skipped;
    struct hist h;
    int err;
    char why[128];
    pthread_t tid;
};

static uint64_t interval_ns = 1000000;
static double duration_s = 10.0;
static int want_fifo = 1;

static void usage(FILE *f)
{
    fputs("usage: opale-wakeprobe [--cpus LIST] [--interval-us N] [--duration S] [--no-fifo]\n"
          "  --cpus LIST      comma-separated CPU numbers, one thread each (default 0)\n"
          "  --interval-us N  sleep period, 50..1000000 (default 1000)\n"
          "  --duration S     seconds, 0.1..3600 (default 10)\n"
          "  --no-fifo        stay at SCHED_OTHER (default: SCHED_FIFO 50 when allowed)\n",
          f);
}

static void bad(const char *what, const char *arg)
{
    fprintf(stderr, "opale-wakeprobe: %s: %s (see --help)\n", what, arg ? arg : "(missing)");
    exit(2);
}

static void *run(void *arg)
{
    struct probe *p = arg;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(p->cpu, &set);
    int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    if (rc != 0) {
        p->err = 1;
        snprintf(p->why, sizeof(p->why), "cannot pin to CPU %d: %s", p->cpu, strerror(rc));
        return NULL;
    }
    if (want_fifo) {
        struct sched_param sp = {.sched_priority = 50};
        p->fifo = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0;
    }
    uint64_t start = lg_now_ns();
    uint64_t next = start + interval_ns;
    uint64_t end = start + (uint64_t)(duration_s * (double)NS_PER_S);
    while (next <= end) {
        struct timespec due = {.tv_sec = (time_t)(next / NS_PER_S),
                               .tv_nsec = (long)(next % NS_PER_S)};
        rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL);
        if (rc == EINTR)
            continue;
        if (rc != 0) {
            p->err = 1;
            snprintf(p->why, sizeof(p->why), "clock_nanosleep: %s", strerror(rc));
            return NULL;
        }
        uint64_t t = lg_now_ns();
        p->expected++;
        lg_h_add(&p->h, t > next ? (t - next) / 1000 : 0);
        next += interval_ns;
        /* Woken later than the next deadline: those deadlines were missed,
         * not slept to; count them apart rather than as wake-ups of 0. */
        while (next <= t && next <= end) {
            next += interval_ns;
            p->skipped++;
        }
    }
    return NULL;
}

static int parse_cpus(const char *s, struct probe *ps)
{
    int n = 0;
    const char *q = s;
    while (*q) {
        char *e;
        errno = 0;
        long v = strtol(q, &e, 10);
        if (e == q || errno || v < 0 || v >= CPU_SETSIZE || (*e && *e != ','))
            bad("--cpus: not a list of CPU numbers", s);
        for (int i = 0; i < n; i++)
            if (ps[i].cpu == v)
                bad("--cpus: CPU named twice", s);
        if (n == MAX_CPUS)
            bad("--cpus: too many CPUs", s);
        ps[n++].cpu = (int)v;
        q = *e ? e + 1 : e;
        if (*e && !*q)
            bad("--cpus: not a list of CPU numbers", s);
    }
    if (n == 0)
        bad("--cpus: empty list", s);
    return n;
}

int main(int argc, char **argv)
{
    static struct probe ps[MAX_CPUS];
    int n = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *e;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--cpus")) {
            if (!v)
                bad("--cpus", v);
            n = parse_cpus(v, ps);
            i++;
        } else if (!strcmp(a, "--interval-us")) {
            errno = 0;
            unsigned long long us = v ? strtoull(v, &e, 10) : 0;
            if (!v || *e || e == v || errno || us < 50 || us > 1000000)
                bad("--interval-us: want 50..1000000", v);
            interval_ns = us * 1000;
            i++;
        } else if (!strcmp(a, "--duration")) {
            duration_s = v ? strtod(v, &e) : 0;
            if (!v || *e || e == v || !(duration_s >= 0.1 && duration_s <= 3600))
                bad("--duration: want 0.1..3600 seconds", v);
            i++;
        } else if (!strcmp(a, "--no-fifo")) {
            want_fifo = 0;
        } else {
            bad("unknown option", a);
        }
    }
    if (n == 0)
        ps[n++].cpu = 0;
    for (int i = 0; i < n; i++) {
        int rc = pthread_create(&ps[i].tid, NULL, run, &ps[i]);
        if (rc != 0) {
            fprintf(stderr, "opale-wakeprobe: pthread_create: %s\n", strerror(rc));
            return 1;
        }
    }
    int failed = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(ps[i].tid, NULL);
        if (ps[i].err) {
            fprintf(stderr, "opale-wakeprobe: %s\n", ps[i].why);
            failed = 1;
        }
    }
    if (failed)
        return 1;
    printf("{\"tool\": \"opale-wakeprobe\", \"interval_us\": %llu, \"duration_s\": %g, \"cpus\": [",
           (unsigned long long)(interval_ns / 1000), duration_s);
    for (int i = 0; i < n; i++) {
        const struct hist *h = &ps[i].h;
        printf("%s{\"cpu\": %d, \"policy\": \"%s\", \"wakeups\": %llu, \"skipped\": %llu, "
               "\"late_us\": {\"mean\": %.1f, \"p50\": %llu, \"p90\": %llu, \"p99\": %llu, "
               "\"p99_9\": %llu, \"max\": %llu}}",
               i ? ", " : "", ps[i].cpu, ps[i].fifo ? "fifo" : "other",
               (unsigned long long)ps[i].expected, (unsigned long long)ps[i].skipped, lg_h_mean(h),
               (unsigned long long)lg_h_pct(h, 50), (unsigned long long)lg_h_pct(h, 90),
               (unsigned long long)lg_h_pct(h, 99), (unsigned long long)lg_h_pct(h, 99.9),
               (unsigned long long)h->max);
    }
    printf("]}\n");
    return 0;
}
