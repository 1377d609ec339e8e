/*
 * opale-gateway: argv, -t, signals; starts the workers and the admin listener.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "admin/admin.h"
#include "conf/conf.h"
#include "core/sdnotify.h"
#include "core/server.h"
#include "datapass/datapass.h"
#include "datapass/sync.h"
#include "evidence/evidence.h"
#include "lib/util.h"
#include "journal/anchor.h"
#include "journal/events.h"
#include "journal/hold.h"
#include "journal/integrity.h"
#include "journal/journal.h"
#include "journal/order.h"
#include "journal/tail.h"
#include "journal/verify.h"
#include "policy/watch.h"

#define GW_VERSION "0.1.0"
/* After the drain, how long the journal gets to write what is queued. */
#define GW_JOURNAL_FLUSH_MS 5000u

static void usage(FILE *f)
{
    fprintf(f, "usage: opale-gateway -c FILE        run the gateway\n"
               "       opale-gateway -t -c FILE     check the configuration and every policy\n"
               "       opale-gateway --export-jwks -c FILE\n"
               "                                    check, then print the token keys' JWKS\n"
               "       opale-gateway --verify-journal [-c FILE | --jwks FILE] "
               "[--expect-head SEQ:HASH | --anchors FILE|redis] JOURNAL...\n"
               "                                    check a journal's hash chain and checkpoints\n"
               "       opale-gateway --recette CLIENT_ID -c FILE [--criteria FILE] "
               "[--format md|json|html] JOURNAL...\n"
               "                                    signed sandbox acceptance report\n"
               "       opale-gateway --availability -c FILE [--from ISO] [--to ISO] "
               "[--format md|json] JOURNAL...\n"
               "                                    availability (CGU 11) from verified journals\n"
               "       opale-gateway --extract -c FILE [--consumer ID] [--siren S] [--from ISO] "
               "[--to ISO] JOURNAL...\n"
               "       opale-gateway --verify-extract -c FILE EXTRACT\n"
               "       opale-gateway --verify-report -c FILE REPORT\n"
               "       opale-gateway --journal-ack-break -c FILE --reason TEXT\n"
               "                                    acknowledge a broken journal tail\n"
               "       opale-gateway --import-datapass FILE\n"
               "                                    print a policy skeleton from a DataPass "
               "habilitation\n"
               "       opale-gateway --sync-datapass -c FILE\n"
               "                                    apply the DataPass API's habilitations to "
               "the policy files\n"
               "       opale-gateway -v             print the version\n"
               "       opale-gateway -h, --help     print this summary\n");
}

typedef struct app {
    struct event_base *base;
    gw_server *srv;
    gw_journal *journal;
    gw_events *events;          /* security events (journal/events.h) */
    gw_anchors *anchors;        /* checkpoint anchors off the host (journal/anchor.h) */
    int broken_reported;        /* the journal.broken event of a periodic tail check */
    int events_broken_reported; /* the same for the events stream */
    uint64_t anchor_streaks;    /* anchor failure streaks already reported */
    gw_sdnotify notify;         /* systemd (core/sdnotify.h); a no-op outside it */
    int stopping;
} app;

static void on_term(evutil_socket_t sig, short what, void *arg)
{
    app *a = arg;
    if (a->stopping)
        return;
    a->stopping = 1;
    fprintf(stderr, "opale-gateway: signal %d: draining\n", (int)sig);
    gw_sdnotify_send(&a->notify, "STOPPING=1\nSTATUS=draining");
    gw_server_drain(a->srv);
    event_base_loopexit(a->base, NULL);
}

static void on_usr1(evutil_socket_t sig, short what, void *arg)
{
    app *a = arg;
    gw_journal_reopen(a->journal);
    gw_events_reopen(a->events);
    fprintf(stderr, "opale-gateway: journal reopen requested\n");
}

/* systemd tick: WATCHDOG=1 only when every worker's loop answered the last
 * heartbeat (a stuck worker stops the keep-alives and systemd restarts the
 * service), and a fresh STATUS= line. */
static void on_notify_tick(evutil_socket_t fd, short what, void *arg)
{
    app *a = arg;
    char msg[512];
    size_t off = 0;
    if (gw_sdnotify_watchdog_interval(&a->notify) > 0 && gw_server_heartbeat(a->srv))
        off = (size_t)snprintf(msg, sizeof(msg), "WATCHDOG=1\n");
    off += (size_t)snprintf(msg + off, sizeof(msg) - off, "STATUS=");
    gw_server_status(a->srv, msg + off, sizeof(msg) - off);
    gw_sdnotify_send(&a->notify, msg);
}

/* Every second: a tail check that found the journal broken (the writer's
 * periodic check) becomes one security event and one stderr line; so does
 * the start of each streak of anchor failures. */
static void on_integrity_tick(evutil_socket_t fd, short what, void *arg)
{
    app *a = arg;
    gw_journal_tail t;
    gw_anchor_stats as;
    gw_anchors_get_stats(a->anchors, &as);
    if (as.streaks > a->anchor_streaks) {
        a->anchor_streaks = as.streaks;
        gw_events_integrity(
            a->events, GW_EV_JOURNAL_ANCHOR,
            json_pack("{s:s,s:I}", "error", as.last_error, "pending", (json_int_t)as.pending));
    }
    if (!a->events_broken_reported && gw_journal_broken(gw_events_journal(a->events), &t)) {
        /* the events stream is evidence, not a gate: reported, not fail-closed */
        a->events_broken_reported = 1;
        gw_events_integrity(a->events, GW_EV_JOURNAL_BROKEN,
                            json_pack("{s:s,s:s,s:I,s:s,s:s,s:s}", "at", "running", "file", t.file,
                                      "record_seq", (json_int_t)t.seq, "expected", t.expected,
                                      "actual", t.actual, "what", t.what));
    }
    if (a->broken_reported || !gw_journal_broken(a->journal, &t))
        return;
    a->broken_reported = 1;
    json_t *f =
        json_pack("{s:s,s:s,s:I,s:s,s:s,s:s}", "at", "running", "file", t.file, "seq",
                  (json_int_t)t.seq, "expected", t.expected, "actual", t.actual, "what", t.what);
    gw_events_integrity(a->events, GW_EV_JOURNAL_BROKEN, f);
    fprintf(stderr, "opale-gateway: journal broken: /readyz is false and no exchange is served "
                    "until a restart (docs/journal.md, \"Tail check\")\n");
}

/* The files a policy load rejected, one line each, after their errors. */
/* --sync-datapass: read the habilitations from the DataPass API, apply them
 * to the policy files (docs/datapass.md, "Sync"), print the report (JSON) on
 * stdout. The running gateway is not told: it applies the files at its
 * next reload (SIGHUP, POST /admin/reload, policies_watch). Exit 0, or 1
 * when the API cannot be read or a change could not be applied. */
static int sync_datapass_once(const char *path, const gw_conf *conf, const gw_policy_set *set,
                              const gw_dp_conf *dpc)
{
    if (!dpc->api) {
        fprintf(stderr, "%s: datapass.api: required for --sync-datapass\n", path);
        return 1;
    }
    char *err = NULL;
    json_t *habs = gw_dp_fetch_habilitations(dpc, &err);
    if (habs == NULL) {
        fprintf(stderr, "%s: datapass.api: %s\n", path, err != NULL ? err : "fetch failed");
        free(err);
        return 1;
    }
    gw_dp_apply_ctx c = {conf->policies_dir, set, NULL, 0};
    gw_dp_sync_report rep;
    gw_dp_sync_apply(&c, habs, &rep);
    json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:I,s:O}", "habilitations", (json_int_t)rep.fetched,
                          "changed", (json_int_t)rep.changed, "differences",
                          (json_int_t)rep.differences, "revoked", (json_int_t)rep.revoked, "failed",
                          (json_int_t)rep.failed, "changes", rep.changes);
    char *text = o != NULL ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    if (text != NULL)
        printf("%s\n", text);
    if (rep.changed > 0)
        fprintf(stderr,
                "opale-gateway: %ld policy files written; a running gateway applies them at its "
                "next reload (SIGHUP or POST /admin/reload)\n",
                rep.changed);
    free(text);
    json_decref(o);
    json_decref(rep.changes);
    json_decref(habs);
    return rep.failed > 0 || text == NULL ? 1 : 0;
}

/* The pending policies (created by a DataPass approval, waiting for an
 * operator: docs/datapass.md) are listed, not errors. */
static void log_pending(const char *who, const char *dir)
{
    size_t n = 0;
    char **v = gw_dp_pending_list(dir, &n);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr,
                "%s: pending policy %s/%s: approved by DataPass, refused until an operator adds "
                "its certificates and ID_Teleservice and renames it to .json\n",
                who, dir, v[i]);
    gw_dp_pending_free(v, n);
}

static void log_rejected(const char *who, const gw_policy_set *p)
{
    for (size_t i = 0; i < gw_policy_set_nrejected(p); i++) {
        const gw_policy_rejected *r = gw_policy_set_rejected_at(p, i);
        fprintf(stderr, "opale-gateway: %s: %s rejected, %s\n", who, r->file,
                r->kept ? "its previous version stays" : "left out (its partner is refused)");
    }
    if (gw_policy_set_count(p) == 0)
        fprintf(stderr,
                "opale-gateway: %s: WARNING: no valid policy, every guarded request "
                "is refused\n",
                who);
}

/* The policy reload of SIGHUP and of the policies_dir watch; <by> names the
 * trigger in the messages and the security event. */
static void reload_policies(app *a, const char *by)
{
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    gw_event_admin ea = {.by = by, .habilitations = -1, .errors = -1, .persisted = -1};
    gw_policy_diff d;
    /* SIGHUP and the watch never force: an emptying set needs POST
     * /admin/reload?force=1 (or a restart), so that a bad sync of the
     * directory cannot cut every partner off by itself (docs/policies.md). */
    int rc = gw_server_reload_policies(a->srv, by, 0, &d, &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.msgs[i]);
    if (rc == -2) {
        char msg[256];
        snprintf(msg, sizeof(msg),
                 "the reload would remove %zu of %zu partners (%zu left): refused, the current "
                 "policies stay; POST /admin/reload?force=1 to apply it",
                 d.removed, d.before, d.after);
        fprintf(stderr, "opale-gateway: %s: %s\n", by, msg);
        ea.habilitations = (long)d.before;
        ea.errors = 0;
        ea.error = msg;
        gw_events_admin(a->events, GW_EV_ADMIN_RELOAD_REFUSED, &ea);
    } else if (rc == 0) {
        gw_policy_set *p = gw_server_policies(a->srv);
        fprintf(stderr, "opale-gateway: %s: policies reloaded (%zu habilitations)\n", by,
                gw_policy_set_count(p));
        fprintf(stderr, "opale-gateway: %s: %zu added, %zu changed, %zu removed\n", by, d.added,
                d.changed, d.removed);
        log_rejected(by, p);
        ea.habilitations = (long)gw_policy_set_count(p);
        gw_policy_set_unref(p);
        gw_events_admin(a->events, GW_EV_ADMIN_RELOAD, &ea);
    } else {
        fprintf(stderr, "opale-gateway: %s: reload refused, the previous policies stay\n", by);
        ea.errors = (long)(errs.n + errs.dropped);
        ea.error = errs.n > 0 ? errs.msgs[0] : NULL;
        gw_events_admin(a->events, GW_EV_ADMIN_RELOAD_REFUSED, &ea);
    }
    gw_errlist_clear(&errs);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    reload_policies(arg, "SIGHUP");
    /* and the CRL files and partner certificates, at once (revoc thread) */
    gw_server_reload_revocation(((app *)arg)->srv);
}

static void on_policies_changed(void *arg)
{
    reload_policies(arg, "policies_watch");
}

static void print_errs(gw_errlist *errs)
{
    for (size_t i = 0; i < errs->n; i++)
        fprintf(stderr, "%s\n", errs->msgs[i]);
    if (errs->dropped)
        fprintf(stderr, "opale-gateway: %zu more errors not shown\n", errs->dropped);
}

static int import_datapass(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "%s: $: cannot read: %s\n", path, strerror(errno));
        return 1;
    }
    gw_buf b = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && b.len < (16u << 20))
        gw_buf_append(&b, chunk, n);
    int rerr = ferror(f);
    fclose(f);
    if (rerr || b.oom) {
        fprintf(stderr, "%s: $: cannot read\n", path);
        gw_buf_free(&b);
        return 1;
    }
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    char *out = gw_datapass_import(path, b.data ? b.data : "", &errs);
    gw_buf_free(&b);
    if (out == NULL) {
        print_errs(&errs);
        gw_errlist_clear(&errs);
        return 1;
    }
    fputs(out, stdout);
    free(out);
    gw_errlist_clear(&errs);
    return 0;
}

/* --verify-journal [-c CONF | --jwks FILE] FILE...: check the chain (and,
 * with keys, the checkpoint signatures) of a journal and its rotated files. */
static int verify_journal(int argc, char **argv, int first)
{
    const char *conf_path = NULL, *jwks = NULL, *expect = NULL, *anchors = NULL;
    const char **files = calloc((size_t)argc, sizeof(char *));
    char **listed = NULL;
    size_t nlisted = 0;
    size_t n = 0;
    int rc = 2;
    gw_keyset ks;
    memset(&ks, 0, sizeof(ks));
    const gw_keyset *keys = NULL;
    gw_conf *conf = NULL;
    gw_oauth *o = NULL;
    if (files == NULL)
        return 2;
    for (int i = first; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            conf_path = argv[++i];
        else if (strcmp(argv[i], "--jwks") == 0 && i + 1 < argc)
            jwks = argv[++i];
        else if (strcmp(argv[i], "--expect-head") == 0 && i + 1 < argc)
            expect = argv[++i];
        else if (strcmp(argv[i], "--anchors") == 0 && i + 1 < argc)
            anchors = argv[++i];
        else
            files[n++] = argv[i];
    }
    if (n == 0 || (expect != NULL && anchors != NULL)) {
        fprintf(stderr, "usage: opale-gateway --verify-journal [-c CONF | --jwks FILE] "
                        "[--expect-head SEQ:HASH | --anchors FILE|redis] FILE...\n");
        goto out;
    }
    if (conf_path != NULL) {
        gw_errlist errs;
        memset(&errs, 0, sizeof(errs));
        conf = gw_conf_load(conf_path, &errs);
        o = conf ? gw_oauth_load(conf, &errs) : NULL;
        print_errs(&errs);
        gw_errlist_clear(&errs);
        if (o == NULL)
            goto out;
        keys = &o->own;
    } else if (jwks != NULL) {
        FILE *f = fopen(jwks, "rb");
        char buf[65536];
        size_t len = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
        if (f)
            fclose(f);
        buf[len] = '\0';
        char *err = NULL;
        if (f == NULL || gw_jwks_parse(buf, len, &ks, &err) < 0) {
            fprintf(stderr, "%s: $: %s\n", jwks, err ? err : "cannot read");
            free(err);
            goto out;
        }
        keys = &ks;
    }
    if (n == 1) {
        /* the current file: take its rotated files too */
        char *err = NULL;
        if (gw_journal_list_files(files[0], &listed, &nlisted, &err) == 0 && nlisted > 0) {
            free(files);
            files = calloc(nlisted, sizeof(char *));
            if (files == NULL)
                goto out;
            for (size_t i = 0; i < nlisted; i++)
                files[i] = listed[i];
            n = nlisted;
        }
        free(err);
    }
    gw_journal_order_by_first_seq(files, n);
    gw_journal_verify_opts vo = {.keys = keys};
    char hash[65] = "";
    if (expect != NULL) {
        unsigned long long seq = 0;
        if (sscanf(expect, "%llu:%64s", &seq, hash) != 2 || strlen(hash) != 64) {
            fprintf(stderr, "--expect-head: SEQ:HASH expected\n");
            goto out;
        }
        vo.expect_seq = seq;
        vo.expect_hash = hash;
    }
    if (anchors != NULL) {
        uint64_t aseq = 0, count = 0;
        int ar = gw_integrity_anchor_head(anchors, conf, files, n, &aseq, hash, &count);
        if (ar < 0)
            goto out;
        if (ar > 0) {
            fprintf(stderr, "--anchors %s: no anchor names this journal\n", anchors);
            rc = 1;
            goto out;
        }
        printf("info: anchors: %" PRIu64 " for this journal in %s, the latest seq %" PRIu64
               " hash %s: expected in the chain\n",
               count, anchors, aseq, hash);
        vo.expect_seq = aseq;
        vo.expect_hash = hash;
    }
    gw_journal_verify_result res;
    rc = gw_journal_verify_ex(files, n, &vo, stdout, &res);
out:
    gw_journal_free_files(listed, nlisted);
    gw_keyset_clear(&ks);
    gw_oauth_free(o);
    gw_conf_free(conf);
    free(files);
    return rc;
}

/* Read the config and check every section in one pass: the config file's
 * own keys, then what the access stages, the token service, the quota store
 * and the policies make of it, even when the file has errors, so that -t
 * shows all of them at once. Prints every error. 0 with <*out> and <*st>
 * filled (policy files may have been rejected: see the set), or -1. */
static int check_config(const char *path, gw_conf **out, gw_access_state *st, gw_dp_conf *dpc)
{
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    memset(st, 0, sizeof(*st));
    size_t nerrs = 0;
    gw_conf *c = gw_conf_load_check(path, &errs, &nerrs);
    int access_rc = c != NULL ? gw_access_load(c, st, &errs) : -1;
    if (c != NULL && gw_dp_conf_load(c, dpc, &errs) < 0)
        access_rc = -1;
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.msgs[i]);
    if (errs.dropped)
        fprintf(stderr, "%s: $: %zu more errors not shown\n", path, errs.dropped);
    if (errs.n == 0 && errs.dropped == 0 && (c == NULL || nerrs > 0 || access_rc < 0))
        fprintf(stderr, "%s: $: invalid configuration\n", path);
    gw_errlist_clear(&errs);
    if (c == NULL || nerrs > 0 || access_rc < 0) {
        gw_dp_conf_clear(dpc);
        gw_access_state_clear(st);
        gw_conf_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

/*
 * RLIMIT_NOFILE against what the configuration needs (gw_fd_need_of, the
 * formula of docs/configuration.md, "File descriptors"). Two figures:
 *   need:  the worst case, every client connection with a request in flight
 *          and so an upstream socket (GW_FDS_PER_CONNECTION each);
 *   floor: one descriptor per client connection plus the rest: below it the
 *          gateway could not even hold the connections it is told to accept.
 * When limits.max_connections is not in the file, its default (10000) is
 * first lowered so that <need> fits the hard limit. Then the soft limit is
 * raised to <need>, the hard one too when <need> is above it (only with
 * CAP_SYS_RESOURCE). Failing that: at or above <floor>, the soft limit is set
 * to the hard one with a warning naming both numbers (a request beyond would
 * get 502, its upstream socket refused; accept() pauses, core/server.c);
 * below <floor>, -1 after "file: json.path: message" naming both numbers.
 * <announce>: say on stderr what was changed.
 */
static int fit_nofile(gw_conf *conf, const char *path, int announce)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        fprintf(stderr, "%s: $: getrlimit(RLIMIT_NOFILE): %s\n", path, strerror(errno));
        return -1;
    }
    unsigned long long hard =
        rl.rlim_max == RLIM_INFINITY ? ~0ull : (unsigned long long)rl.rlim_max;
    unsigned long long soft =
        rl.rlim_cur == RLIM_INFINITY ? ~0ull : (unsigned long long)rl.rlim_cur;
    gw_fd_need p;
    if (!conf->limits.max_connections_set) {
        gw_fd_need_of(conf, 1, &p);
        unsigned long long rest = p.total - p.connections;
        unsigned long long per = (unsigned long long)conf->workers * GW_FDS_PER_CONNECTION;
        unsigned long long fit = hard > rest ? (hard - rest) / per : 0;
        if (fit >= 1 && fit < conf->limits.max_connections) {
            conf->limits.max_connections = (size_t)fit;
            if (announce)
                fprintf(stderr,
                        "opale-gateway: limits.max_connections not set: %zu per worker, what "
                        "the RLIMIT_NOFILE hard limit %llu allows\n",
                        conf->limits.max_connections, hard);
        }
    }
    unsigned long need = gw_fd_need_of(conf, 0, &p);
    unsigned long floor = need - p.connections / GW_FDS_PER_CONNECTION;
    if (soft >= need)
        return 0;
    struct rlimit n = rl;
    n.rlim_cur = need;
    if (hard < need)
        n.rlim_max = need;
    char detail[512];
    snprintf(detail, sizeof(detail),
             "%u workers x %zu max_connections x %d = %lu, + %lu listening sockets, + %lu pooled "
             "upstream connections, + %lu Redis, + %lu event loops, + %lu journal, admin and "
             "slack",
             conf->workers, conf->limits.max_connections, GW_FDS_PER_CONNECTION, p.connections,
             p.listeners, p.pools, p.redis, p.loops, p.fixed);
    if (setrlimit(RLIMIT_NOFILE, &n) == 0) {
        if (announce)
            fprintf(stderr,
                    "opale-gateway: RLIMIT_NOFILE raised from %llu to %lu, what the "
                    "configuration needs (%s)\n",
                    soft, need, detail);
        return 0;
    }
    if (hard >= floor && hard < need) {
        n.rlim_cur = rl.rlim_max;
        n.rlim_max = rl.rlim_max;
        if (soft < hard && setrlimit(RLIMIT_NOFILE, &n) < 0) {
            fprintf(stderr, "%s: $: setrlimit(RLIMIT_NOFILE): %s\n", path, strerror(errno));
            return -1;
        }
        fprintf(stderr,
                "opale-gateway: warning: limits.max_connections: the configuration needs %lu "
                "file descriptors (%s) but the RLIMIT_NOFILE hard limit is %llu; soft limit set "
                "to %llu: with every connection busy at once, the requests beyond would get 502 "
                "(docs/configuration.md, \"File descriptors\")\n",
                need, detail, hard, hard);
        return 0;
    }
    fprintf(stderr,
            "%s: limits.max_connections: the configuration needs %lu file descriptors (%s), "
            "and at least %lu with one per client connection, but the RLIMIT_NOFILE hard limit "
            "is %llu: lower workers or limits.max_connections, or raise the limit (systemd "
            "LimitNOFILE=, ulimit -n)\n",
            path, need, detail, floor, hard);
    return -1;
}

int main(int argc, char **argv)
{
    const char *conf_path = NULL;
    int test_only = 0;
    int export_jwks = 0;
    int sync_datapass = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            conf_path = argv[++i];
        } else if (strcmp(argv[i], "--verify-journal") == 0) {
            return verify_journal(argc, argv, i + 1);
        } else if (strcmp(argv[i], "--recette") == 0) {
            return gw_evidence_recette_main(argc, argv, i + 1);
        } else if (strcmp(argv[i], "--availability") == 0) {
            return gw_evidence_availability_main(argc, argv, i + 1);
        } else if (strcmp(argv[i], "--extract") == 0) {
            return gw_evidence_extract_main(argc, argv, i + 1);
        } else if (strcmp(argv[i], "--verify-extract") == 0) {
            return gw_evidence_verify_extract_main(argc, argv, i + 1);
        } else if (strcmp(argv[i], "--verify-report") == 0) {
            return gw_evidence_verify_report_main(argc, argv, i + 1);
        } else if (strcmp(argv[i], "--journal-ack-break") == 0) {
            return gw_integrity_ack_main(argc, argv, i + 1);
        } else if (strcmp(argv[i], "--import-datapass") == 0 && i + 1 < argc) {
            return import_datapass(argv[i + 1]);
        } else if (strcmp(argv[i], "--export-jwks") == 0) {
            test_only = 1;
            export_jwks = 1;
        } else if (strcmp(argv[i], "--sync-datapass") == 0) {
            sync_datapass = 1;
        } else if (strcmp(argv[i], "-t") == 0) {
            test_only = 1;
        } else if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--version") == 0) {
            printf("opale-gateway %s\n", GW_VERSION);
            return 0;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "opale-gateway: unknown argument: %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (conf_path == NULL) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    gw_conf *conf = NULL;
    gw_access_state st;
    gw_dp_conf dpc;
    memset(&dpc, 0, sizeof(dpc));
    if (check_config(conf_path, &conf, &st, &dpc) < 0)
        return 1;
    if (sync_datapass) {
        int rc = sync_datapass_once(conf_path, conf, st.policies, &dpc);
        gw_dp_conf_clear(&dpc);
        gw_access_state_clear(&st);
        gw_conf_free(conf);
        return rc;
    }
    char *err = NULL;
    /* the descriptor check (and the soft limit raised) before anything opens */
    int nofile_rc = export_jwks ? 0 : fit_nofile(conf, conf_path, !test_only);
    if (test_only) {
        /* Also build every TLS context: a key that does not match its
         * certificate must fail -t, not the first start. Any rejected
         * policy file fails -t (its errors are printed above). */
        gw_server *s = gw_server_new(conf, NULL, &err);
        int rc = gw_policy_set_nrejected(st.policies) > 0 || nofile_rc < 0 ? 1 : 0;
        if (s == NULL) {
            fprintf(stderr, "%s: %s\n", conf_path, err);
            rc = 1;
        }
        if (rc == 0)
            fprintf(stderr, "%s: configuration is valid (%zu habilitations)\n", conf_path,
                    gw_policy_set_count(st.policies));
        /* -t sees no running gateway: it counts the directory; the
         * comparison with the running set is the reload's answer
         * (docs/policies.md "A reload that empties the set"). */
        if (rc == 0 && conf->policies_dir != NULL)
            fprintf(stderr,
                    "%s: policies: %zu partners in %s (a reload compares them with the running "
                    "set and refuses to remove more than half of it unless forced)\n",
                    conf_path, gw_policy_set_count(st.policies), conf->policies_dir);
        if (rc == 0 && export_jwks)
            printf("%s\n", st.oauth->jwks_json);
        log_pending(conf_path, conf->policies_dir);
        gw_dp_conf_clear(&dpc);
        free(err);
        gw_server_free(s);
        gw_access_state_clear(&st);
        gw_conf_free(conf);
        return rc;
    }
    if (nofile_rc < 0) {
        gw_dp_conf_clear(&dpc);
        gw_access_state_clear(&st);
        gw_conf_free(conf);
        return 1;
    }

    int rc = 1;
    app a;
    memset(&a, 0, sizeof(a));
    gw_admin *admin = NULL;
    gw_dp_receiver *dprecv = NULL;
    gw_dp_syncer *dpsync = NULL;
    gw_policy_watch *watch = NULL;
    gw_holds *holds = NULL;
    struct event *ev_term = NULL, *ev_int = NULL, *ev_usr1 = NULL, *ev_hup = NULL;
    struct event *ev_notify = NULL, *ev_integrity = NULL;
    a.notify.fd = -1;
    if (gw_sdnotify_init_env(&a.notify, &err) < 0) {
        fprintf(stderr, "opale-gateway: %s (no systemd notifications)\n", err);
        free(err);
        err = NULL;
    }
    char *herr = NULL;
    holds = gw_holds_open(conf->journal.path, &herr);
    if (holds == NULL) {
        fprintf(stderr, "%s: journal.path: %s\n", conf_path, herr ? herr : "out of memory");
        free(herr);
        gw_access_state_clear(&st);
        goto out;
    }
    if (gw_holds_count(holds) > 0)
        fprintf(stderr,
                "opale-gateway: journal: %zu legal holds in force (%s): retention suspended\n",
                gw_holds_count(holds), gw_holds_path(holds));
    a.anchors = gw_integrity_anchors_start(conf, &err);
    if (a.anchors == NULL && err != NULL) {
        fprintf(stderr, "%s: journal.anchor: %s\n", conf_path, err);
        gw_access_state_clear(&st);
        goto out;
    }
    gw_journal_opts jo = {
        .path = conf->journal.path,
        .queue_cap = conf->journal.queue_size,
        .sync_ms = conf->journal.sync_ms,
        .batch_ms = conf->journal.batch_ms,
        .rotate_bytes = conf->journal.rotate_bytes,
        .rotate_daily = conf->journal.rotate_daily,
        .retention_days = conf->journal.retention_days,
        .checkpoint_s = conf->journal.checkpoint_s,
        .signer = st.oauth->active, /* checkpoints signed with the token key */
        .tail_check_s = conf->journal.tail_check_s,
        .on_checkpoint = a.anchors != NULL ? gw_anchors_submit : NULL,
        .on_checkpoint_arg = a.anchors,
        .hold = gw_holds_count(holds) > 0,
    };
    /* security events: a second chained stream with the same settings */
    gw_events_opts eo;
    gw_integrity_events_opts(conf, &jo, &eo);
    /* a broken journal tail: no exchange on a chain nobody can trust
     * (docs/journal.md, "Tail check") */
    int trc = gw_integrity_start_check(conf_path, conf, &st.oauth->own, &eo);
    if (trc != 0) {
        rc = trc;
        gw_access_state_clear(&st);
        goto out;
    }
    a.journal = gw_journal_open_opts(&jo, &err);
    if (a.journal == NULL) {
        fprintf(stderr, "%s: journal.path: %s\n", conf_path, err);
        gw_access_state_clear(&st);
        goto out;
    }
    gw_events *events = gw_events_open(&eo, &err);
    if (events == NULL) {
        fprintf(stderr, "%s: journal.events.path: %s\n", conf_path, err);
        gw_access_state_clear(&st);
        goto out;
    }
    a.events = events;
    a.srv = gw_server_new(conf, a.journal, &err);
    if (a.srv == NULL) {
        fprintf(stderr, "%s: %s\n", conf_path, err);
        gw_access_state_clear(&st);
        goto out;
    }
    gw_server_set_events(a.srv, a.events);
    gw_server_set_notify(a.srv, &a.notify);
    fprintf(stderr, "opale-gateway: %zu habilitations loaded from %s\n",
            gw_policy_set_count(st.policies), conf->policies_dir);
    log_rejected("start", st.policies);
    gw_server_report_rejected(a.srv, st.policies, "start");
    gw_server_set_access(a.srv, &st);
    a.base = event_base_new();
    if (a.base == NULL)
        goto out;
    ev_term = evsignal_new(a.base, SIGTERM, on_term, &a);
    ev_int = evsignal_new(a.base, SIGINT, on_term, &a);
    ev_usr1 = evsignal_new(a.base, SIGUSR1, on_usr1, &a);
    ev_hup = evsignal_new(a.base, SIGHUP, on_hup, &a);
    if (!ev_term || !ev_int || !ev_usr1 || !ev_hup || evsignal_add(ev_term, NULL) ||
        evsignal_add(ev_int, NULL) || evsignal_add(ev_usr1, NULL) || evsignal_add(ev_hup, NULL))
        goto out;
    if (gw_server_start(a.srv, &err) < 0) {
        fprintf(stderr, "opale-gateway: %s\n", err);
        gw_server_drain(a.srv);
        gw_server_join(a.srv);
        goto out;
    }
    if (conf->admin.enabled) {
        admin = gw_admin_start(a.base, conf, a.srv, a.journal, &err);
        if (admin == NULL) {
            fprintf(stderr, "%s: %s\n", conf_path, err);
            gw_server_drain(a.srv);
            gw_server_join(a.srv);
            goto out;
        }
        gw_admin_set_journal(admin, holds, a.anchors);
        fprintf(stderr, "opale-gateway: admin on %s:%u\n", conf->admin.address, conf->admin.port);
    }
    if (dpc.api && dpc.sync_interval_s > 0) {
        dpsync = gw_dp_syncer_start(a.base, conf, &dpc, a.srv, &err);
        if (dpsync == NULL) {
            fprintf(stderr, "%s: %s\n", conf_path, err);
            gw_server_drain(a.srv);
            gw_server_join(a.srv);
            goto out;
        }
        fprintf(stderr, "opale-gateway: datapass sync every %ld s from %s\n", dpc.sync_interval_s,
                dpc.api_url);
    }
    if (dpc.webhook) {
        char *addr = strdup(dpc.address);
        unsigned port = dpc.port;
        dprecv = gw_dp_receiver_start(a.base, conf, &dpc, a.srv, &err);
        if (dprecv == NULL) {
            fprintf(stderr, "%s: %s\n", conf_path, err);
            free(addr);
            gw_server_drain(a.srv);
            gw_server_join(a.srv);
            goto out;
        }
        fprintf(stderr, "opale-gateway: datapass webhook on %s:%u\n", addr ? addr : "?", port);
        free(addr);
    }
    log_pending("opale-gateway", conf->policies_dir);
    if (conf->policies_watch) {
        watch = gw_policy_watch_start(a.base, conf->policies_dir, GW_POLICY_WATCH_DEBOUNCE_MS,
                                      on_policies_changed, &a, &err);
        if (watch == NULL) {
            fprintf(stderr, "%s: %s\n", conf_path, err);
            gw_server_drain(a.srv);
            gw_server_join(a.srv);
            goto out;
        }
        fprintf(stderr, "opale-gateway: watching %s for policy changes\n", conf->policies_dir);
    }
    for (size_t i = 0; i < conf->nlisteners; i++)
        fprintf(stderr, "opale-gateway: listener %s on %s:%u (%s)%s\n", conf->listeners[i].name,
                conf->listeners[i].address, conf->listeners[i].port,
                gw_env_name(conf->listeners[i].env),
                conf->listeners[i].access_off
                    ? " WARNING: access \"off\", no access control (bench only)"
                    : "");
    struct timeval one_s = {.tv_sec = 1, .tv_usec = 0};
    ev_integrity = event_new(a.base, -1, EV_PERSIST, on_integrity_tick, &a);
    if (ev_integrity == NULL || event_add(ev_integrity, &one_s) < 0)
        goto out;
    fprintf(stderr, "opale-gateway: ready (%u workers)\n", conf->workers);
    if (gw_sdnotify_enabled(&a.notify)) {
        /* every listener is bound (gw_server_start) and the policies are
         * loaded: READY=1, then a tick at half the watchdog period (or every
         * 10 s for STATUS= alone) */
        char msg[512] = "READY=1\nSTATUS=";
        gw_server_status(a.srv, msg + strlen(msg), sizeof(msg) - strlen(msg));
        gw_sdnotify_send(&a.notify, msg);
        uint64_t us = gw_sdnotify_watchdog_interval(&a.notify);
        if (us == 0)
            us = 10000000;
        struct timeval tv = {.tv_sec = (time_t)(us / 1000000),
                             .tv_usec = (suseconds_t)(us % 1000000)};
        ev_notify = event_new(a.base, -1, EV_PERSIST, on_notify_tick, &a);
        if (ev_notify == NULL || event_add(ev_notify, &tv) < 0)
            fprintf(stderr, "opale-gateway: cannot start the systemd watchdog timer\n");
        else if (gw_sdnotify_watchdog_interval(&a.notify) > 0)
            on_notify_tick(-1, 0, &a); /* first heartbeat asked now */
    }
    event_base_dispatch(a.base);
    gw_policy_watch_stop(watch);
    watch = NULL;
    gw_admin_stop(admin);
    admin = NULL;
    gw_dp_receiver_stop(dprecv);
    dprecv = NULL;
    gw_dp_syncer_stop(dpsync);
    dpsync = NULL;
    gw_server_join(a.srv);
    fprintf(stderr, "opale-gateway: drained, flushing journal\n");
    rc = 0;
out:
    gw_policy_watch_stop(watch);
    gw_admin_stop(admin);
    gw_dp_receiver_stop(dprecv);
    gw_dp_syncer_stop(dpsync);
    gw_dp_conf_clear(&dpc);
    gw_server_free(a.srv);
    if (a.journal != NULL) {
        /* bounded: a stalled journal device must not hold the stop forever
         * (docs/journal.md, "Stopping") */
        int late = 0;
        uint64_t unwritten = gw_journal_close_within(a.journal, GW_JOURNAL_FLUSH_MS, &late);
        if (unwritten > 0 || late) {
            fprintf(stderr, "opale-gateway: journal: %" PRIu64 " records could not be written%s\n",
                    unwritten, late ? " (flush deadline passed)" : "");
            rc = 1;
        }
    }
    gw_events_close(a.events);
    if (a.anchors != NULL) {
        /* the closes wrote their last checkpoints: send them if it is quick */
        uint64_t unsent = gw_anchors_stop(a.anchors, 2000);
        if (unsent > 0)
            fprintf(stderr, "opale-gateway: journal: %" PRIu64 " anchors not sent at stop\n",
                    unsent);
    }
    gw_holds_free(holds);
    if (ev_integrity)
        event_free(ev_integrity);
    if (ev_term)
        event_free(ev_term);
    if (ev_int)
        event_free(ev_int);
    if (ev_usr1)
        event_free(ev_usr1);
    if (ev_hup)
        event_free(ev_hup);
    if (ev_notify)
        event_free(ev_notify);
    gw_sdnotify_close(&a.notify);
    if (a.base)
        event_base_free(a.base);
    free(err);
    gw_conf_free(conf);
    return rc;
}
