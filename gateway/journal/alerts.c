/*
 * The alert hook of the security events: contract in journal/alerts.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "journal/alerts.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/util.h"

#define ALERT_QUEUE 64
#define ALERT_CHILDREN 16
#define ALERT_CLOSE_WAIT_MS 5000

struct alert {
    char *json;
    gw_event_type type;
    gw_event_severity sev;
};

struct child {
    pid_t pid;
    uint64_t start;
    gw_event_type type;
    int killed;
};

struct gw_alerts {
    char *cmd;
    char *path_env; /* "PATH=..." */
    gw_event_severity min_sev;
    unsigned per_minute;
    unsigned timeout_ms;
    pthread_t thread;
    pthread_mutex_t amu;
    pthread_cond_t acv;
    struct alert q[ALERT_QUEUE];
    size_t qhead, qn;
    uint64_t *rl; /* start times of the last per_minute alerts (ring) */
    size_t rl_head, rl_n;
    int closing;
    uint64_t rate_limited, dropped;      /* under amu */
    atomic_ullong run, failed, running;  /* alert thread */
    uint64_t reported_rl, reported_drop; /* alert thread */
    uint64_t last_report;                /* alert thread, mono ms */
};

void gw_alerts_offer(gw_alerts *al, const char *json, size_t len, gw_event_type type,
                     gw_event_severity sev, uint64_t now)
{
    if (al == NULL || sev < al->min_sev)
        return;
    pthread_mutex_lock(&al->amu);
    while (al->rl_n > 0 && now - al->rl[al->rl_head] >= 60000) {
        al->rl_head = (al->rl_head + 1) % al->per_minute;
        al->rl_n--;
    }
    if (al->closing || al->qn == ALERT_QUEUE) {
        al->dropped++;
    } else if (al->rl_n == al->per_minute) {
        al->rate_limited++;
    } else {
        char *copy = strndup(json, len);
        if (copy == NULL) {
            al->dropped++;
        } else {
            al->rl[(al->rl_head + al->rl_n) % al->per_minute] = now;
            al->rl_n++;
            al->q[(al->qhead + al->qn) % ALERT_QUEUE] = (struct alert){copy, type, sev};
            al->qn++;
        }
    }
    pthread_cond_signal(&al->acv);
    pthread_mutex_unlock(&al->amu);
}

typedef struct alert_state {
    struct child ch[ALERT_CHILDREN];
    size_t n;
} alert_state;

static void spawn_alert(gw_alerts *al, alert_state *as, struct alert *a)
{
    char *env_event = NULL;
    if (asprintf(&env_event, "OPALE_EVENT=%s", a->json) < 0) {
        atomic_fetch_add(&al->failed, 1);
        fprintf(stderr, "opale-gateway: events: alert hook %s: out of memory (event %s)\n", al->cmd,
                gw_event_type_name(a->type));
        return;
    }
    char *argv[] = {al->cmd, (char *)gw_event_type_name(a->type),
                    (char *)gw_event_severity_name(a->sev), NULL};
    char *envp[] = {env_event, al->path_env, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    /* ignored dispositions survive exec: give the command the defaults */
    sigaddset(&dfl, SIGPIPE);
    sigaddset(&dfl, SIGCHLD);
    sigaddset(&dfl, SIGHUP);
    sigaddset(&dfl, SIGINT);
    sigaddset(&dfl, SIGTERM);
    sigaddset(&dfl, SIGUSR1);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, 2, 1); /* its output goes to our stderr */
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    posix_spawnattr_init(&at);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &dfl);
    posix_spawnattr_setpgroup(&at, 0); /* its own group: a timeout kills it all */
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETPGROUP);
    pid_t pid = -1;
    /* counted as running before it can run: a reader that sees what the
     * hook did never sees it neither running nor run */
    atomic_fetch_add(&al->running, 1);
    int rc = posix_spawn(&pid, al->cmd, &fa, &at, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    free(env_event);
    if (rc != 0) {
        atomic_fetch_sub(&al->running, 1);
        atomic_fetch_add(&al->failed, 1);
        fprintf(stderr, "opale-gateway: events: alert hook %s: cannot run: %s (event %s)\n",
                al->cmd, strerror(rc), gw_event_type_name(a->type));
        return;
    }
    atomic_fetch_add(&al->run, 1);
    as->ch[as->n++] = (struct child){pid, gw_now_ms(), a->type, 0};
}

/* Reap the children that ended; kill those past the timeout. */
static void reap(gw_alerts *al, alert_state *as)
{
    uint64_t now = gw_now_ms();
    for (size_t i = 0; i < as->n;) {
        struct child *c = &as->ch[i];
        int st = 0;
        pid_t r = waitpid(c->pid, &st, WNOHANG);
        if (r == 0) {
            if (!c->killed && now - c->start >= al->timeout_ms) {
                kill(-c->pid, SIGKILL);
                kill(c->pid, SIGKILL);
                c->killed = 1;
                atomic_fetch_add(&al->failed, 1);
                fprintf(stderr,
                        "opale-gateway: events: alert hook %s did not finish within %u ms: "
                        "killed (event %s)\n",
                        al->cmd, al->timeout_ms, gw_event_type_name(c->type));
            }
            i++;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r > 0 && !c->killed) {
            if (WIFEXITED(st) && WEXITSTATUS(st) != 0) {
                atomic_fetch_add(&al->failed, 1);
                fprintf(stderr,
                        "opale-gateway: events: alert hook %s exited with status %d (event "
                        "%s)\n",
                        al->cmd, WEXITSTATUS(st), gw_event_type_name(c->type));
            } else if (WIFSIGNALED(st)) {
                atomic_fetch_add(&al->failed, 1);
                fprintf(stderr,
                        "opale-gateway: events: alert hook %s killed by signal %d (event %s)\n",
                        al->cmd, WTERMSIG(st), gw_event_type_name(c->type));
            }
        }
        /* r > 0: reaped; r < 0 (ECHILD: SIGCHLD ignored by someone): gone */
        atomic_fetch_sub(&al->running, 1);
        as->ch[i] = as->ch[--as->n];
    }
}

static void report_suppressed(gw_alerts *al, int final)
{
    pthread_mutex_lock(&al->amu);
    uint64_t rl = al->rate_limited, dr = al->dropped;
    pthread_mutex_unlock(&al->amu);
    if (rl == al->reported_rl && dr == al->reported_drop)
        return;
    uint64_t now = gw_now_ms();
    if (!final && al->last_report != 0 && now - al->last_report < 60000)
        return;
    fprintf(stderr,
            "opale-gateway: events: alert hook %s: %llu alerts not run so far (rate limit %u "
            "per minute %llu, queue full or closing %llu)\n",
            al->cmd, (unsigned long long)(rl + dr), al->per_minute, (unsigned long long)rl,
            (unsigned long long)dr);
    al->reported_rl = rl;
    al->reported_drop = dr;
    al->last_report = now;
}

static void deadline_in(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static int closing_full(gw_alerts *al, const alert_state *as)
{
    pthread_mutex_lock(&al->amu);
    int r = al->closing && as->n >= ALERT_CHILDREN;
    pthread_mutex_unlock(&al->amu);
    return r;
}

static void *alert_main(void *arg)
{
    gw_alerts *al = arg;
    alert_state as;
    memset(&as, 0, sizeof(as));
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    pthread_setname_np(pthread_self(), "gw-alerts");
    for (;;) {
        struct alert a = {0};
        int done = 0;
        pthread_mutex_lock(&al->amu);
        if (!al->closing && !(al->qn > 0 && as.n < ALERT_CHILDREN)) {
            int pending = al->rate_limited != al->reported_rl || al->dropped != al->reported_drop;
            if (as.n > 0 || pending) {
                struct timespec ts;
                deadline_in(&ts, as.n > 0 ? 50 : 1000);
                pthread_cond_timedwait(&al->acv, &al->amu, &ts);
            } else {
                pthread_cond_wait(&al->acv, &al->amu);
            }
        }
        if (al->qn > 0 && as.n < ALERT_CHILDREN) {
            a = al->q[al->qhead];
            al->qhead = (al->qhead + 1) % ALERT_QUEUE;
            al->qn--;
        }
        done = al->closing && al->qn == 0;
        pthread_mutex_unlock(&al->amu);
        if (a.json != NULL) {
            spawn_alert(al, &as, &a);
            free(a.json);
        }
        reap(al, &as);
        report_suppressed(al, 0);
        if (done && a.json == NULL)
            break;
        if (!done && a.json == NULL && closing_full(al, &as)) {
            /* closing with every child slot taken: wait for one to end */
            struct timespec ts = {0, 10000000L};
            nanosleep(&ts, NULL);
        }
    }
    /* Closing: give running commands a little time, then kill and reap. */
    uint64_t until =
        gw_now_ms() + (al->timeout_ms < ALERT_CLOSE_WAIT_MS ? al->timeout_ms : ALERT_CLOSE_WAIT_MS);
    while (as.n > 0 && gw_now_ms() < until) {
        struct timespec ts = {0, 10000000L};
        nanosleep(&ts, NULL);
        reap(al, &as);
    }
    for (size_t i = 0; i < as.n; i++) {
        kill(-as.ch[i].pid, SIGKILL);
        kill(as.ch[i].pid, SIGKILL);
        if (!as.ch[i].killed) {
            atomic_fetch_add(&al->failed, 1);
            fprintf(stderr,
                    "opale-gateway: events: alert hook %s still running at shutdown: killed "
                    "(event %s)\n",
                    al->cmd, gw_event_type_name(as.ch[i].type));
        }
        while (waitpid(as.ch[i].pid, NULL, 0) < 0 && errno == EINTR)
            ;
        atomic_fetch_sub(&al->running, 1);
    }
    as.n = 0;
    report_suppressed(al, 1);
    return NULL;
}

static void alerts_free(gw_alerts *a)
{
    for (size_t i = 0; i < a->qn; i++)
        free(a->q[(a->qhead + i) % ALERT_QUEUE].json);
    pthread_mutex_destroy(&a->amu);
    pthread_cond_destroy(&a->acv);
    free(a->cmd);
    free(a->path_env);
    free(a->rl);
    free(a);
}

gw_alerts *gw_alerts_start(const char *cmd, gw_event_severity min_sev, unsigned per_minute,
                           unsigned timeout_ms, char **err)
{
    gw_alerts *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        if (err)
            *err = strdup("out of memory");
        return NULL;
    }
    pthread_mutex_init(&a->amu, NULL);
    pthread_cond_init(&a->acv, NULL);
    a->cmd = strdup(cmd);
    const char *p = getenv("PATH");
    if (asprintf(&a->path_env, "PATH=%s", p && p[0] ? p : "/usr/local/bin:/usr/bin:/bin") < 0)
        a->path_env = NULL;
    a->min_sev = min_sev;
    a->per_minute = per_minute;
    a->timeout_ms = timeout_ms;
    a->rl = calloc(per_minute, sizeof(*a->rl));
    if (a->cmd == NULL || a->path_env == NULL || a->rl == NULL) {
        if (err)
            *err = strdup("out of memory");
        alerts_free(a);
        return NULL;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&a->thread, NULL, alert_main, a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        if (err)
            *err = strdup("cannot start the alert thread");
        alerts_free(a);
        return NULL;
    }
    return a;
}

void gw_alerts_stop(gw_alerts *a)
{
    if (a == NULL)
        return;
    pthread_mutex_lock(&a->amu);
    a->closing = 1;
    pthread_cond_signal(&a->acv);
    pthread_mutex_unlock(&a->amu);
    pthread_join(a->thread, NULL);
    alerts_free(a);
}

void gw_alerts_stats(gw_alerts *a, gw_events_stats *st)
{
    if (a == NULL)
        return;
    st->alerts_run = atomic_load(&a->run);
    st->alerts_failed = atomic_load(&a->failed);
    st->alerts_running = atomic_load(&a->running);
    pthread_mutex_lock(&a->amu);
    st->alerts_rate_limited = a->rate_limited;
    st->alerts_dropped = a->dropped;
    pthread_mutex_unlock(&a->amu);
}
