/*
 * opale-wakeprobe: how late this machine wakes a sleeping thread.
 *
 * One thread per CPU named on the command line, pinned to it, at SCHED_FIFO
 * when the process may use it (root), sleeps to an absolute deadline every
 * --interval-us and records how late it woke, in microseconds. The bench runs
 * it on an idle machine before S3: every hop of a proxied request from one
 * core to the other is such a wake-up, so its lateness is a floor under the
 * latency any proxy adds (bench/README.md, "S3 on this machine"). A wake-up
 * late by --stall-us or more is also counted as a stall: the bench runs the
 * probe at a 10 ms period beside each S3 run to see whether the machine
 * stopped a core during it.
 *
 * --spin measures the other way a virtual machine loses time: one thread per
 * CPU, pinned, at SCHED_OTHER, reads the clock in a loop for --duration and
 * records every gap of at least --stall-us between two reads, that is every
 * time the thread did not run. With nothing else on the machine, those gaps
 * are the hypervisor's (a host that caps the guest's CPU time stops a busy
 * vCPU for the rest of its period), plus interrupts and kernel threads,
 * which take microseconds. The bench runs it on every core at once, the load
 * under which a host's cap shows.
 *
 * Every stall is also listed in time order ("stops": [start s, length ms]
 * pairs, the start from the thread's; the first KEPT_STALLS of them,
 * "stops_dropped" counting the rest), with each thread's start on
 * CLOCK_MONOTONIC ("start_mono_ns"), the clock opale-loadgen gives its
 * measured window on: the bench puts the two together to compute the floor
 * the machine's stops put under a run's p99 (bench/README.md, "The floor
 * under a run's p99").
 *
 * SIGTERM or SIGINT ends the run early ("stopped": true): the bench runs a
 * probe beside a generator and stops it when the generator exits.
 *
 * Output: one JSON object on stdout. Exit 0, 1 when a thread cannot be
 * started or pinned, 2 for a bad command line.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loadgen.h"

#define MAX_CPUS 64
#define TOP_STALLS 5
/* Stalls listed one by one: a 10 ms period and --stall-us 5000 make at
 * most 100 a second, so a 10 s watch lists them all. */
#define KEPT_STALLS 4096
#define NS_PER_MS 1000000ULL
#define LONG_STALL_NS (50 * NS_PER_MS)

struct stall {
    uint64_t at_ns, len_ns; /* from the thread's start */
};

struct probe {
    int cpu;
    int fifo; /* 1: ran at SCHED_FIFO */
    uint64_t expected, skipped;
    struct hist h;
    uint64_t ran_ns; /* from the thread's start to its last clock read */
    uint64_t stalls, long_stalls, stalled_ns;
    struct stall top[TOP_STALLS];   /* the longest, longest first */
    struct stall kept[KEPT_STALLS]; /* the first KEPT_STALLS, in time order */
    uint64_t start_ns;              /* the thread's start, CLOCK_MONOTONIC */
    int err;
    char why[128];
    pthread_t tid;
};

static uint64_t interval_ns = 1000000;
static double duration_s = 10.0;
static int want_fifo = 1;
static int spin;
/* SIGTERM or SIGINT: end now and print what was measured. A thread asleep
 * sees it at its next deadline. Atomic: set by the handler on one thread,
 * read by all. */
static int stopping;
static uint64_t stall_ns = NS_PER_MS;

static void on_stop(int sig)
{
    (void)sig;
    __atomic_store_n(&stopping, 1, __ATOMIC_RELAXED);
}

static int stopped(void)
{
    return __atomic_load_n(&stopping, __ATOMIC_RELAXED);
}

static void usage(FILE *f)
{
    fputs("usage: opale-wakeprobe [--cpus LIST] [--interval-us N] [--duration S] [--stall-us N] "
          "[--no-fifo]\n"
          "       opale-wakeprobe --spin [--cpus LIST] [--stall-us N] [--duration S]\n"
          "  --cpus LIST      comma-separated CPU numbers, one thread each (default 0)\n"
          "  --interval-us N  sleep period, 50..1000000 (default 1000)\n"
          "  --duration S     seconds, 0.1..3600 (default 10)\n"
          "  --no-fifo        stay at SCHED_OTHER (default: SCHED_FIFO 50 when allowed)\n"
          "  --spin           spin instead of sleeping (always SCHED_OTHER) and record\n"
          "                   every time the thread did not run for --stall-us or more\n"
          "  --stall-us N     a stall: a gap (--spin) or a lateness (sleeping) of at least\n"
          "                   N microseconds, 20..1000000 (default 1000)\n",
          f);
}

static void bad(const char *what, const char *arg)
{
    fprintf(stderr, "opale-wakeprobe: %s: %s (see --help)\n", what, arg ? arg : "(missing)");
    exit(2);
}

/* Count a stall of <len> ns that began <at> ns after the start, list it
 * while there is room, and keep it among the TOP_STALLS longest, longest
 * first. */
static void stall_add(struct probe *p, uint64_t at, uint64_t len)
{
    p->stalls++;
    p->stalled_ns += len;
    if (len >= LONG_STALL_NS)
        p->long_stalls++;
    if (p->stalls <= KEPT_STALLS)
        p->kept[p->stalls - 1] = (struct stall){.at_ns = at, .len_ns = len};
    int i = TOP_STALLS;
    while (i > 0 && p->top[i - 1].len_ns < len)
        i--;
    if (i == TOP_STALLS)
        return;
    memmove(&p->top[i + 1], &p->top[i], (TOP_STALLS - 1 - (size_t)i) * sizeof(p->top[0]));
    p->top[i] = (struct stall){.at_ns = at, .len_ns = len};
}

/* --spin: read the clock until the end; a gap of stall_ns or more between
 * two reads is time the thread was not running. */
static void spin_loop(struct probe *p)
{
    uint64_t start = lg_now_ns(), prev = start;
    p->start_ns = start;
    uint64_t end = start + (uint64_t)(duration_s * (double)NS_PER_S);
    for (;;) {
        uint64_t t = lg_now_ns();
        uint64_t gap = t - prev;
        if (gap >= stall_ns)
            stall_add(p, prev - start, gap);
        prev = t;
        if (t >= end || stopped())
            break;
    }
    p->ran_ns = prev - start;
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
    if (spin) {
        spin_loop(p);
        return NULL;
    }
    if (want_fifo) {
        struct sched_param sp = {.sched_priority = 50};
        p->fifo = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0;
    }
    uint64_t start = lg_now_ns();
    uint64_t next = start + interval_ns;
    p->start_ns = start;
    uint64_t end = start + (uint64_t)(duration_s * (double)NS_PER_S);
    while (next <= end && !stopped()) {
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
        if (t >= next + stall_ns)
            stall_add(p, next - start, t - next);
        next += interval_ns;
        /* Woken later than the next deadline: those deadlines were missed,
         * not slept to; count them apart rather than as wake-ups of 0. */
        while (next <= t && next <= end) {
            next += interval_ns;
            p->skipped++;
        }
        p->ran_ns = t - start;
    }
    return NULL;
}

/* A whole number of microseconds in [lo, 1000000], in nanoseconds. */
static uint64_t parse_us(const char *v, unsigned long long lo, const char *what)
{
    char *e;
    errno = 0;
    unsigned long long us = v ? strtoull(v, &e, 10) : 0;
    if (!v || *e || e == v || errno || us < lo || us > 1000000)
        bad(what, v);
    return us * 1000;
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

/* The stall fields of one CPU, the same in both modes: in sleep mode a stall
 * is a wake-up late by stall_ns or more. */
static void print_stalls(const struct probe *p)
{
    printf("\"stalls\": %llu, \"long_stalls\": %llu, \"stalled_ms\": %.3f, \"longest\": [",
           (unsigned long long)p->stalls, (unsigned long long)p->long_stalls,
           (double)p->stalled_ns / NS_PER_MS);
    for (int k = 0; k < TOP_STALLS && p->top[k].len_ns; k++)
        printf("%s{\"at_s\": %.4f, \"ms\": %.3f}", k ? ", " : "",
               (double)p->top[k].at_ns / NS_PER_S, (double)p->top[k].len_ns / NS_PER_MS);
    uint64_t listed = p->stalls < KEPT_STALLS ? p->stalls : KEPT_STALLS;
    printf("], \"start_mono_ns\": %llu, \"stops\": [", (unsigned long long)p->start_ns);
    for (uint64_t k = 0; k < listed; k++)
        printf("%s[%.6f, %.3f]", k ? ", " : "", (double)p->kept[k].at_ns / NS_PER_S,
               (double)p->kept[k].len_ns / NS_PER_MS);
    printf("], \"stops_dropped\": %llu", (unsigned long long)(p->stalls - listed));
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
            interval_ns = parse_us(v, 50, "--interval-us: want 50..1000000");
            i++;
        } else if (!strcmp(a, "--duration")) {
            duration_s = v ? strtod(v, &e) : 0;
            if (!v || *e || e == v || !(duration_s >= 0.1 && duration_s <= 3600))
                bad("--duration: want 0.1..3600 seconds", v);
            i++;
        } else if (!strcmp(a, "--no-fifo")) {
            want_fifo = 0;
        } else if (!strcmp(a, "--spin")) {
            spin = 1;
        } else if (!strcmp(a, "--stall-us")) {
            stall_ns = parse_us(v, 20, "--stall-us: want 20..1000000");
            i++;
        } else {
            bad("unknown option", a);
        }
    }
    if (n == 0)
        ps[n++].cpu = 0;
    struct sigaction sa = {.sa_handler = on_stop}; /* no SA_RESTART */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
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
    printf("{\"tool\": \"opale-wakeprobe\", \"mode\": \"%s\", \"duration_s\": %g, \"stopped\": %s, "
           "\"stall_us\": %llu, \"long_stall_ms\": %llu, ",
           spin ? "spin" : "sleep", duration_s, stopped() ? "true" : "false",
           (unsigned long long)(stall_ns / 1000), (unsigned long long)(LONG_STALL_NS / NS_PER_MS));
    if (!spin)
        printf("\"interval_us\": %llu, ", (unsigned long long)(interval_ns / 1000));
    printf("\"cpus\": [");
    for (int i = 0; i < n; i++) {
        const struct probe *p = &ps[i];
        const struct hist *h = &p->h;
        printf("%s{\"cpu\": %d, \"policy\": \"%s\", ", i ? ", " : "", p->cpu,
               p->fifo ? "fifo" : "other");
        printf("\"ran_s\": %.3f, ", (double)p->ran_ns / NS_PER_S);
        if (!spin)
            printf("\"wakeups\": %llu, \"skipped\": %llu, \"late_us\": {\"mean\": %.1f, \"p50\": "
                   "%llu, "
                   "\"p90\": %llu, \"p99\": %llu, \"p99_9\": %llu, \"max\": %llu}, ",
                   (unsigned long long)p->expected, (unsigned long long)p->skipped, lg_h_mean(h),
                   (unsigned long long)lg_h_pct(h, 50), (unsigned long long)lg_h_pct(h, 90),
                   (unsigned long long)lg_h_pct(h, 99), (unsigned long long)lg_h_pct(h, 99.9),
                   (unsigned long long)h->max);
        print_stalls(p);
        printf("}");
    }
    printf("]}\n");
    return 0;
}
