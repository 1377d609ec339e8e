/* Unit tests for gateway/journal/events.c and detectors.c, through
 * events.h: each detector (threshold reached at N and not at N-1, once per
 * window, the window sliding), the memory caps, the records (a chained stream that verifies), the
 * alert hook (arguments, environment, severity filter, rate limit, failures, timeout, reaping), and
 * the "journal.events" config keys (gateway/conf/conf.c). The detectors run
 * on the test clock (gw_events_test_set_time). */
#include "lib/hash.h"
#include "journal/events.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "journal/verify.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static char tmpdir[PATH_MAX];

static void setup_dir(void)
{
    char t[] = "/tmp/test_events.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(t));
    ck_assert_ptr_nonnull(realpath(t, tmpdir));
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

static void teardown_dir(void)
{
    nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static size_t count_lines(const char *path);

static char *tpath(const char *name)
{
    static char buf[8][PATH_MAX + 64];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, sizeof(buf[0]), "%s/%s", tmpdir, name);
    return p;
}

/* Test clock origin: 2023-11-14T22:13:20Z, in ms. */
#define T0 1700000000000LL
#define SEC 1000LL
#define DAY_S 86400LL

static gw_events_opts base_opts(void)
{
    gw_events_opts o;
    memset(&o, 0, sizeof(o));
    o.journal.path = tpath("events.jsonl");
    o.journal.queue_cap = 10000;
    o.journal.sync_ms = 1000;
    o.auth_threshold = 5;
    o.auth_window_s = 60;
    o.enum_distinct = 5;
    o.enum_window_s = 300;
    o.storm_refusals = 5;
    o.storm_window_s = 60;
    o.cert_expiry_days = 30;
    return o;
}

static gw_events *open_ev(const gw_events_opts *o)
{
    char *err = NULL;
    gw_events *ev = gw_events_open(o, &err);
    ck_assert_msg(ev != NULL, "gw_events_open: %s", err ? err : "(no message)");
    gw_events_test_set_time(ev, T0);
    return ev;
}

static void at(gw_events *ev, long long ms)
{
    gw_events_test_set_time(ev, T0 + ms);
}

static uint64_t count(gw_events *ev, gw_event_type t)
{
    gw_events_stats st;
    gw_events_get_stats(ev, &st);
    return st.by_type[t];
}

static uint64_t total(gw_events *ev)
{
    uint64_t n = 0;
    for (int i = 0; i < GW_EV__COUNT; i++)
        n += count(ev, (gw_event_type)i);
    return n;
}

static const char CERT_A[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char CERT_B[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

static void auth_fail_ip(gw_events *ev, const char *ip)
{
    gw_event_request r = {.client_ip = ip, .auth_failure = 1, .reason = "bearer.invalid"};
    gw_events_request(ev, &r);
}

static void auth_fail_cert(gw_events *ev, const char *ip, const char *cert)
{
    gw_event_request r = {.client_ip = ip,
                          .cert_sha256 = cert,
                          .cert_subject = "CN=acme",
                          .auth_failure = 1,
                          .reason = "mtls.unknown_cert"};
    gw_events_request(ev, &r);
}

static void siren_req(gw_events *ev, const char *consumer, const char *siren)
{
    gw_event_request r = {
        .client_ip = "192.0.2.1", .consumer = consumer, .habilitation = "H1", .siren = siren};
    gw_events_request(ev, &r);
}

static void throttled(gw_events *ev, const char *hab, int is429)
{
    gw_event_request r = {
        .client_ip = "192.0.2.1", .consumer = "c", .habilitation = hab, .throttled = is429};
    gw_events_request(ev, &r);
}

/* The lines of <path>, each parsed; returns how many (up to <max>). */
static size_t read_records(const char *path, json_t **out, size_t max)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "open %s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0, n = 0;
    while (getline(&line, &cap, f) > 0 && n < max) {
        json_error_t je;
        json_t *o = json_loads(line, JSON_REJECT_DUPLICATES, &je);
        ck_assert_msg(o != NULL, "line %zu is not JSON: %s", n + 1, je.text);
        out[n++] = o;
    }
    free(line);
    fclose(f);
    return n;
}

static void free_records(json_t **r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(r[i]);
}

static const char *sget(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static long long iget(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    ck_assert_msg(json_is_integer(v), "member %s is not an integer", k);
    return json_integer_value(v);
}

/* The security_event records of the stream (after close), in order. */
static size_t events_of(const char *path, json_t **out, size_t max)
{
    json_t *all[256];
    size_t n = read_records(path, all, 256), k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *t = sget(all[i], "type");
        if (t != NULL && strcmp(t, "security_event") == 0 && k < max)
            out[k++] = json_incref(all[i]);
    }
    free_records(all, n);
    return k;
}

/* ------------------------------------------------------------------------ */
/* Names                                                                    */
/* ------------------------------------------------------------------------ */

START_TEST(names_stable)
{
    static const char *const want[GW_EV__COUNT] = {
        "auth.failures",         "cert.unknown",          "siren.enumeration",
        "quota.storm",           "maintenance.access",    "cert.expiring",
        "admin.reload",          "admin.reload_refused",  "admin.suspend",
        "admin.resume",          "policy.rejected",       "admin.auth_failed",
        "admin.auth_blocked",    "datapass.webhook",      "datapass.sync",
        "habilitation.expiring", "journal.broken",        "journal.break_ack",
        "journal.anchor_failed", "admin.journal_hold",    "admin.journal_hold_lifted",
        "suspension.expired",    "admin.environment_cut", "admin.environment_restored",
        "tls.revocation",        "admin.event_ack",       "h2.abuse",
    };
    for (int i = 0; i < GW_EV__COUNT; i++)
        ck_assert_str_eq(gw_event_type_name((gw_event_type)i), want[i]);
    ck_assert_ptr_null(gw_event_type_name(GW_EV__COUNT));
    static const char *const sev[] = {"low", "medium", "high", "critical"};
    for (int i = 0; i < 4; i++) {
        ck_assert_str_eq(gw_event_severity_name((gw_event_severity)i), sev[i]);
        ck_assert_int_eq(gw_event_severity_parse(sev[i]), i);
    }
    ck_assert_ptr_null(gw_event_severity_name((gw_event_severity)4));
    ck_assert_int_eq(gw_event_severity_parse("HIGH"), -1);
    ck_assert_int_eq(gw_event_severity_parse(""), -1);
    ck_assert_int_eq(gw_event_severity_parse(NULL), -1);
}
END_TEST

START_TEST(null_events_is_noop)
{
    gw_event_request r = {.client_ip = "192.0.2.1", .auth_failure = 1};
    gw_event_handshake h = {.client_ip = "192.0.2.1", .refused = "tls.no_cert"};
    gw_event_admin a = {.by = "SIGHUP"};
    gw_events_request(NULL, &r);
    gw_events_handshake(NULL, &h);
    gw_events_admin(NULL, GW_EV_ADMIN_RELOAD, &a);
    gw_events_reopen(NULL);
    gw_events_test_set_time(NULL, 1);
    ck_assert_ptr_null(gw_events_journal(NULL));
    gw_events_stats st;
    memset(&st, 0xff, sizeof(st));
    gw_events_get_stats(NULL, &st);
    ck_assert_uint_eq(st.by_type[0], 0);
    ck_assert_uint_eq(st.alerts_run, 0);
    gw_events_close(NULL);
}
END_TEST

START_TEST(open_refuses_raw_or_no_path)
{
    gw_events_opts o = base_opts();
    char *err = NULL;
    o.journal.raw = 1;
    ck_assert_ptr_null(gw_events_open(&o, &err));
    ck_assert_ptr_nonnull(err);
    free(err);
    err = NULL;
    o = base_opts();
    o.journal.path = NULL;
    ck_assert_ptr_null(gw_events_open(&o, &err));
    ck_assert_ptr_nonnull(err);
    free(err);
    err = NULL;
    o = base_opts();
    o.journal.path = tpath("no/such/dir/events.jsonl");
    ck_assert_ptr_null(gw_events_open(&o, &err));
    ck_assert_ptr_nonnull(err);
    free(err);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* auth.failures                                                            */
/* ------------------------------------------------------------------------ */

START_TEST(auth_threshold_exact)
{
    gw_events_opts o = base_opts();
    gw_events *ev = open_ev(&o);
    for (int i = 0; i < 4; i++) {
        at(ev, i * SEC);
        auth_fail_ip(ev, "192.0.2.10");
    }
    ck_assert_uint_eq(count(ev, GW_EV_AUTH_FAILURES), 0); /* N-1 */
    at(ev, 4 * SEC);
    auth_fail_ip(ev, "192.0.2.10");
    ck_assert_uint_eq(count(ev, GW_EV_AUTH_FAILURES), 1); /* N */
    /* another IP has its own count */
    for (int i = 0; i < 4; i++)
        auth_fail_ip(ev, "192.0.2.11");
    ck_assert_uint_eq(count(ev, GW_EV_AUTH_FAILURES), 1);
    gw_events_close(ev);

    json_t *r[8];
    size_t n = events_of(o.journal.path, r, 8);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(sget(r[0], "event"), "auth.failures");
    ck_assert_str_eq(sget(r[0], "severity"), "high");
    ck_assert_str_eq(sget(r[0], "subject"), "ip");
    ck_assert_str_eq(sget(r[0], "client_ip"), "192.0.2.10");
    ck_assert_int_eq(iget(r[0], "failures"), 5);
    ck_assert_int_eq(iget(r[0], "threshold"), 5);
    ck_assert_int_eq(iget(r[0], "window_s"), 60);
    ck_assert_str_eq(sget(r[0], "last_reason"), "bearer.invalid");
    free_records(r, n);
}
END_TEST

START_TEST(auth_once_per_window)
{
    gw_events_opts o = base_opts();
    gw_events *ev = open_ev(&o);
    for (int i = 0; i < 5; i++)
        auth_fail_ip(ev, "192.0.2.10"); /* fires at T0 */
    ck_assert_uint_eq(count(ev, GW_EV_AUTH_FAILURES), 1);
    for (int i = 1; i < 60; i++) { /* one failure a second: always >= 5 in the window */
        at(ev, i * SEC);
        auth_fail_ip(ev, "192.0.2.10");
    }
    ck_assert_uint_eq(count(ev, GW_EV_AUTH_FAILURES), 1);
    at(ev, 60 * SEC - 1);
    auth_fail_ip(ev, "192.0.2.10");
    ck_assert_uint_eq(count(ev, GW_EV_AUTH_FAILURES), 1);
    at(ev, 60 * SEC); /* a full window after it fired */
    auth_fail_ip(ev, "192.0.2.10");
    ck_assert_uint_eq(count(ev, GW_EV_AUTH_FAILURES), 2);
    gw_events_close(ev);
}
END_TEST

START_TEST(auth_window_slides)
{
    gw_events_opts o = base_opts();
    gw_events *ev = open_ev(&o);
    for (int i = 0; i < 4; i++) {
        at(ev, i * SEC); /* 0, 1, 2, 3 s */
        auth_fail_ip(ev, "192.0.2.10");
    }
    at(ev, 60 * SEC); /* the one at 0 s is exactly a window old: out */
    auth_fail_ip(ev, "192.0.2.10");
    ck_assert_uint_eq(count(ev, GW_EV_AUTH_FAILURES), 0);
    at(ev, 60 * SEC + 500); /* 1, 2, 3, 60, 60.5 s: five within 60 s */
    auth_fail_ip(ev, "192.0.2.10");
    ck_assert_uint_eq(count(ev, GW_EV_AUTH_FAILURES), 1);

    /* one failure every window/(N-1) = 15 s never makes five within 60 s */
    for (int i = 0; i < 50; i++) {
        at(ev, 1000 * SEC + i * 15 * SEC);
        auth_fail_ip(ev, "192.0.2.99");
    }
    ck_assert_uint_eq(count(ev, GW_EV_AUTH_FAILURES), 1);
    /* every 14.9 s does, once (the fifth comes 59.6 s after the first) */
    for (int i = 0; i < 5; i++) {
        at(ev, 5000 * SEC + i * 14900);
        auth_fail_ip(ev, "192.0.2.98");
    }
    ck_assert_uint_eq(count(ev, GW_EV_AUTH_FAILURES), 2);
    gw_events_close(ev);
}
END_TEST

START_TEST(auth_per_certificate)
{
    gw_events_opts o = base_opts();
    gw_events *ev = open_ev(&o);
    char ip[32];
    for (int i = 0; i < 4; i++) { /* one certificate, a different IP each time */
        snprintf(ip, sizeof(ip), "198.51.100.%d", i + 1);
        auth_fail_cert(ev, ip, CERT_A);
    }
    ck_assert_uint_eq(count(ev, GW_EV_AUTH_FAILURES), 0);
    auth_fail_cert(ev, "198.51.100.5", CERT_A);
    ck_assert_uint_eq(count(ev, GW_EV_AUTH_FAILURES), 1);
    gw_events_close(ev);
    json_t *r[8];
    size_t n = events_of(o.journal.path, r, 8);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(sget(r[0], "subject"), "cert");
    ck_assert_str_eq(sget(r[0], "cert_sha256"), CERT_A);
    ck_assert_str_eq(sget(r[0], "cert_subject"), "CN=acme");
    free_records(r, n);
}
END_TEST

/* TLS refusals and request-level failures add up; completed handshakes and
 * other refusals do not count. */
START_TEST(auth_handshakes_and_requests)
{
    gw_events_opts o = base_opts();
    gw_events *ev = open_ev(&o);
    gw_event_handshake ok = {.client_ip = "192.0.2.10", .cert_sha256 = CERT_B};
    gw_event_request other = {.client_ip = "192.0.2.10", .reason = "rights.scope"};
    for (int i = 0; i < 20; i++) {
        gw_events_handshake(ev, &ok);
        gw_events_request(ev, &other);
    }
    ck_assert_uint_eq(count(ev, GW_EV_AUTH_FAILURES), 0);
    gw_event_handshake bad = {.client_ip = "192.0.2.10", .refused = "tls.cert_unknown_ca"};
    for (int i = 0; i < 3; i++)
        gw_events_handshake(ev, &bad);
    auth_fail_ip(ev, "192.0.2.10");
    ck_assert_uint_eq(count(ev, GW_EV_AUTH_FAILURES), 0);
    auth_fail_ip(ev, "192.0.2.10");
    ck_assert_uint_eq(count(ev, GW_EV_AUTH_FAILURES), 1);
    gw_events_close(ev);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* cert.unknown                                                             */
/* ------------------------------------------------------------------------ */

START_TEST(cert_unknown_once_per_hour)
{
    gw_events_opts o = base_opts();
    gw_events *ev = open_ev(&o);
    gw_event_request r = {.client_ip = "192.0.2.10",
                          .cert_sha256 = CERT_A,
                          .cert_subject = "CN=stranger",
                          .cert_unknown = 1,
                          .reason = "mtls.unknown_cert"};
    gw_event_request nocert = {.client_ip = "192.0.2.10", .cert_unknown = 1};
    gw_events_request(ev, &nocert);
    ck_assert_uint_eq(count(ev, GW_EV_CERT_UNKNOWN), 0);
    gw_events_request(ev, &r);
    ck_assert_uint_eq(count(ev, GW_EV_CERT_UNKNOWN), 1);
    for (int i = 1; i < 60; i++) {
        at(ev, i * 60 * SEC);
        gw_events_request(ev, &r);
    }
    at(ev, 3600 * SEC - 1);
    gw_events_request(ev, &r);
    ck_assert_uint_eq(count(ev, GW_EV_CERT_UNKNOWN), 1);
    at(ev, 3600 * SEC);
    gw_events_request(ev, &r);
    ck_assert_uint_eq(count(ev, GW_EV_CERT_UNKNOWN), 2);
    r.cert_sha256 = CERT_B;
    gw_events_request(ev, &r);
    ck_assert_uint_eq(count(ev, GW_EV_CERT_UNKNOWN), 3);
    gw_events_close(ev);
    json_t *rec[8];
    size_t n = events_of(o.journal.path, rec, 8);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(sget(rec[0], "event"), "cert.unknown");
    ck_assert_str_eq(sget(rec[0], "severity"), "medium");
    ck_assert_str_eq(sget(rec[0], "cert_sha256"), CERT_A);
    ck_assert_str_eq(sget(rec[0], "cert_subject"), "CN=stranger");
    ck_assert_str_eq(sget(rec[2], "cert_sha256"), CERT_B);
    free_records(rec, n);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* siren.enumeration                                                        */
/* ------------------------------------------------------------------------ */

START_TEST(enumeration_threshold_and_once)
{
    gw_events_opts o = base_opts();
    gw_events *ev = open_ev(&o);
    static const char *const s[] = {"732829320", "552100554", "542051180", "356000000",
                                    "443061841", "383474814", "572093920"};
    for (int rep = 0; rep < 10; rep++) /* repeats of the same four do not add up */
        for (int i = 0; i < 4; i++)
            siren_req(ev, "acme", s[i]);
    ck_assert_uint_eq(count(ev, GW_EV_SIREN_ENUMERATION), 0);
    gw_event_request anon = {.client_ip = "192.0.2.1", .siren = s[4]}; /* no consumer */
    gw_events_request(ev, &anon);
    ck_assert_uint_eq(count(ev, GW_EV_SIREN_ENUMERATION), 0);
    siren_req(ev, "other", s[4]); /* another consumer */
    ck_assert_uint_eq(count(ev, GW_EV_SIREN_ENUMERATION), 0);
    at(ev, 10 * SEC);
    siren_req(ev, "acme", s[4]); /* the fifth distinct */
    ck_assert_uint_eq(count(ev, GW_EV_SIREN_ENUMERATION), 1);
    siren_req(ev, "acme", s[5]);
    siren_req(ev, "acme", s[6]);
    ck_assert_uint_eq(count(ev, GW_EV_SIREN_ENUMERATION), 1); /* once per window */
    /* a window after it fired, five distinct again */
    at(ev, 310 * SEC);
    for (int i = 0; i < 4; i++)
        siren_req(ev, "acme", s[i]);
    ck_assert_uint_eq(count(ev, GW_EV_SIREN_ENUMERATION), 1);
    siren_req(ev, "acme", s[4]);
    ck_assert_uint_eq(count(ev, GW_EV_SIREN_ENUMERATION), 2);
    gw_events_close(ev);
    json_t *r[8];
    size_t n = events_of(o.journal.path, r, 8);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(sget(r[0], "event"), "siren.enumeration");
    ck_assert_str_eq(sget(r[0], "severity"), "high");
    ck_assert_str_eq(sget(r[0], "consumer"), "acme");
    ck_assert_str_eq(sget(r[0], "habilitation"), "H1");
    ck_assert_int_eq(iget(r[0], "distinct_sirens"), 5);
    ck_assert_int_eq(iget(r[0], "threshold"), 5);
    ck_assert_int_eq(iget(r[0], "window_s"), 300);
    ck_assert_str_eq(sget(r[0], "last_siren"), s[4]);
    free_records(r, n);
}
END_TEST

START_TEST(enumeration_window_slides)
{
    gw_events_opts o = base_opts();
    gw_events *ev = open_ev(&o);
    /* four at 0 s, the fifth at 300 s: the four are a window old */
    siren_req(ev, "acme", "111111111");
    siren_req(ev, "acme", "222222222");
    siren_req(ev, "acme", "333333333");
    siren_req(ev, "acme", "444444444");
    at(ev, 300 * SEC);
    siren_req(ev, "acme", "555555555");
    ck_assert_uint_eq(count(ev, GW_EV_SIREN_ENUMERATION), 0);
    /* a SIREN queried again stays in the window from its last query */
    at(ev, 1000 * SEC);
    siren_req(ev, "acme", "111111111");
    at(ev, 1200 * SEC);
    siren_req(ev, "acme", "111111111");
    at(ev, 1250 * SEC);
    siren_req(ev, "acme", "222222222");
    siren_req(ev, "acme", "333333333");
    siren_req(ev, "acme", "444444444");
    ck_assert_uint_eq(count(ev, GW_EV_SIREN_ENUMERATION), 0);
    at(ev, 1350 * SEC); /* 111 (1200 s) is 150 s old: five distinct */
    siren_req(ev, "acme", "555555555");
    ck_assert_uint_eq(count(ev, GW_EV_SIREN_ENUMERATION), 1);
    gw_events_close(ev);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* quota.storm                                                              */
/* ------------------------------------------------------------------------ */

START_TEST(quota_storm_threshold)
{
    gw_events_opts o = base_opts();
    gw_events *ev = open_ev(&o);
    for (int i = 0; i < 4; i++) {
        throttled(ev, "H1", 1);
        throttled(ev, "H1", 0); /* admitted requests do not count */
        throttled(ev, "H2", 1);
    }
    ck_assert_uint_eq(count(ev, GW_EV_QUOTA_STORM), 0);
    throttled(ev, "H1", 1);
    ck_assert_uint_eq(count(ev, GW_EV_QUOTA_STORM), 1);
    for (int i = 0; i < 50; i++)
        throttled(ev, "H1", 1);
    ck_assert_uint_eq(count(ev, GW_EV_QUOTA_STORM), 1);
    throttled(ev, "H2", 1);
    ck_assert_uint_eq(count(ev, GW_EV_QUOTA_STORM), 2);
    /* sliding: four now, the fifth a window later */
    at(ev, 1000 * SEC);
    for (int i = 0; i < 4; i++)
        throttled(ev, "H3", 1);
    at(ev, 1060 * SEC);
    throttled(ev, "H3", 1);
    ck_assert_uint_eq(count(ev, GW_EV_QUOTA_STORM), 2);
    gw_events_close(ev);
    json_t *r[8];
    size_t n = events_of(o.journal.path, r, 8);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(sget(r[0], "event"), "quota.storm");
    ck_assert_str_eq(sget(r[0], "severity"), "medium");
    ck_assert_str_eq(sget(r[0], "habilitation"), "H1");
    ck_assert_int_eq(iget(r[0], "refusals"), 5);
    ck_assert_str_eq(sget(r[1], "habilitation"), "H2");
    free_records(r, n);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* maintenance.access                                                       */
/* ------------------------------------------------------------------------ */

START_TEST(maintenance_once_per_slot)
{
    gw_events_opts o = base_opts();
    gw_events *ev = open_ev(&o);
    long long slot1 = T0 / 1000 + 3600, slot2 = slot1 + DAY_S;
    gw_event_request r = {.client_ip = "192.0.2.1",
                          .consumer = "acme",
                          .habilitation = "H1",
                          .maintenance_until = slot1};
    gw_event_request plain = {.client_ip = "192.0.2.1", .consumer = "acme"};
    gw_events_request(ev, &plain);
    ck_assert_uint_eq(count(ev, GW_EV_MAINTENANCE_ACCESS), 0);
    for (int i = 0; i < 10; i++)
        gw_events_request(ev, &r);
    ck_assert_uint_eq(count(ev, GW_EV_MAINTENANCE_ACCESS), 1);
    r.consumer = "globex";
    gw_events_request(ev, &r);
    ck_assert_uint_eq(count(ev, GW_EV_MAINTENANCE_ACCESS), 2);
    r.consumer = "acme";
    r.maintenance_until = slot2;
    gw_events_request(ev, &r);
    gw_events_request(ev, &r);
    ck_assert_uint_eq(count(ev, GW_EV_MAINTENANCE_ACCESS), 3);
    gw_event_request anon = {
        .client_ip = "192.0.2.1", .cert_sha256 = CERT_A, .maintenance_until = slot2};
    gw_events_request(ev, &anon);
    gw_events_request(ev, &anon);
    ck_assert_uint_eq(count(ev, GW_EV_MAINTENANCE_ACCESS), 4);
    gw_events_close(ev);
    json_t *rec[8];
    size_t n = events_of(o.journal.path, rec, 8);
    ck_assert_uint_eq(n, 4);
    ck_assert_str_eq(sget(rec[0], "event"), "maintenance.access");
    ck_assert_str_eq(sget(rec[0], "severity"), "low");
    ck_assert_str_eq(sget(rec[0], "consumer"), "acme");
    ck_assert_str_eq(sget(rec[0], "slot_end"), "2023-11-14T23:13:20Z");
    ck_assert_str_eq(sget(rec[3], "cert_sha256"), CERT_A);
    ck_assert_ptr_null(json_object_get(rec[3], "consumer"));
    free_records(rec, n);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* cert.expiring                                                            */
/* ------------------------------------------------------------------------ */

static void handshake_ok(gw_events *ev, const char *cert, long long not_after)
{
    gw_event_handshake h = {.client_ip = "192.0.2.7",
                            .cert_sha256 = cert,
                            .cert_subject = "CN=acme-prod",
                            .not_after = not_after};
    gw_events_handshake(ev, &h);
}

START_TEST(cert_expiring_window_and_daily)
{
    gw_events_opts o = base_opts();
    gw_events *ev = open_ev(&o);
    long long now = T0 / 1000;
    handshake_ok(ev, CERT_A, now + 30 * DAY_S); /* exactly 30 days: not within */
    handshake_ok(ev, CERT_A, now + 31 * DAY_S);
    handshake_ok(ev, CERT_A, 0); /* unknown */
    handshake_ok(ev, NULL, now + DAY_S);
    ck_assert_uint_eq(count(ev, GW_EV_CERT_EXPIRING), 0);
    gw_event_handshake refused = {.client_ip = "192.0.2.7",
                                  .cert_sha256 = CERT_A,
                                  .not_after = now + DAY_S,
                                  .refused = "tls.cert_unknown_ca"};
    gw_events_handshake(ev, &refused);
    ck_assert_uint_eq(count(ev, GW_EV_CERT_EXPIRING), 0);
    handshake_ok(ev, CERT_A, now + 30 * DAY_S - 1); /* 29 days and a bit */
    ck_assert_uint_eq(count(ev, GW_EV_CERT_EXPIRING), 1);
    for (int i = 0; i < 23; i++) {
        at(ev, (long long)i * 3600 * SEC);
        handshake_ok(ev, CERT_A, now + 30 * DAY_S - 1);
    }
    ck_assert_uint_eq(count(ev, GW_EV_CERT_EXPIRING), 1);
    at(ev, DAY_S * SEC); /* a day later */
    handshake_ok(ev, CERT_A, now + 30 * DAY_S - 1);
    ck_assert_uint_eq(count(ev, GW_EV_CERT_EXPIRING), 2);
    handshake_ok(ev, CERT_B, now + DAY_S + 3 * DAY_S); /* 3 days left: high */
    ck_assert_uint_eq(count(ev, GW_EV_CERT_EXPIRING), 3);
    gw_events_close(ev);
    json_t *r[8];
    size_t n = events_of(o.journal.path, r, 8);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(sget(r[0], "event"), "cert.expiring");
    ck_assert_str_eq(sget(r[0], "severity"), "medium");
    ck_assert_int_eq(iget(r[0], "days_left"), 29);
    ck_assert_str_eq(sget(r[0], "not_after"), "2023-12-14T22:13:19Z");
    ck_assert_str_eq(sget(r[0], "cert_subject"), "CN=acme-prod");
    ck_assert_int_eq(iget(r[1], "days_left"), 28);
    ck_assert_str_eq(sget(r[2], "severity"), "high");
    ck_assert_int_eq(iget(r[2], "days_left"), 3);
    free_records(r, n);
}
END_TEST

/* The console's "certificate until": the notAfter of every certificate a
 * completed handshake presented, whatever its distance, the latest value
 * kept; refused handshakes and unknown dates are not remembered. */
START_TEST(cert_not_after_remembered)
{
    gw_events_opts o = base_opts();
    gw_events *ev = open_ev(&o);
    long long now = T0 / 1000, na = 0;
    ck_assert_int_eq(gw_events_cert_not_after(ev, CERT_A, &na), 0);
    handshake_ok(ev, CERT_A, now + 400 * DAY_S); /* far from any expiry event */
    ck_assert_int_eq(gw_events_cert_not_after(ev, CERT_A, &na), 1);
    ck_assert_int_eq(na, now + 400 * DAY_S);
    handshake_ok(ev, CERT_A, now + 500 * DAY_S); /* renewed under the same key: not
                                                    possible, but the latest wins */
    ck_assert_int_eq(gw_events_cert_not_after(ev, CERT_A, &na), 1);
    ck_assert_int_eq(na, now + 500 * DAY_S);
    handshake_ok(ev, CERT_B, 0);
    gw_event_handshake refused = {.client_ip = "192.0.2.7",
                                  .cert_sha256 = CERT_B,
                                  .not_after = now + DAY_S,
                                  .refused = "tls.cert_unknown_ca"};
    gw_events_handshake(ev, &refused);
    ck_assert_int_eq(gw_events_cert_not_after(ev, CERT_B, &na), 0);
    ck_assert_int_eq(gw_events_cert_not_after(NULL, CERT_A, &na), 0);
    ck_assert_int_eq(count(ev, GW_EV_CERT_EXPIRING), 0);
    gw_events_close(ev);
}
END_TEST

/* habilitation.expiring: the same mechanism, at 90, 30 and 7 days, once each */
static void hab_request(gw_events *ev, const char *hab, int valid_until)
{
    gw_event_request r = {.client_ip = "192.0.2.7",
                          .consumer = "acme-production",
                          .habilitation = hab,
                          .contact = "tech@acme.fr",
                          .valid_until = valid_until};
    gw_events_request(ev, &r);
}

START_TEST(habilitation_expiring_milestones)
{
    gw_events_opts o = base_opts();
    gw_events *ev = open_ev(&o);
    /* T0 is 2023-11-14T22:13:20Z; valid through 2024-02-01: 79 days left */
    hab_request(ev, "H1", 20990101);
    hab_request(ev, "H2", 0);
    ck_assert_uint_eq(count(ev, GW_EV_HABILITATION_EXPIRING), 0);
    hab_request(ev, "H1", 20240201);
    ck_assert_uint_eq(count(ev, GW_EV_HABILITATION_EXPIRING), 1);
    for (int i = 0; i < 40; i++) { /* the same milestone: never again */
        at(ev, (long long)i * DAY_S * SEC);
        hab_request(ev, "H1", 20240201);
    }
    ck_assert_uint_eq(count(ev, GW_EV_HABILITATION_EXPIRING), 1);
    at(ev, 50 * DAY_S * SEC); /* 29 days left */
    hab_request(ev, "H1", 20240201);
    hab_request(ev, "H1", 20240201);
    ck_assert_uint_eq(count(ev, GW_EV_HABILITATION_EXPIRING), 2);
    at(ev, 73 * DAY_S * SEC); /* 6 days left */
    hab_request(ev, "H1", 20240201);
    ck_assert_uint_eq(count(ev, GW_EV_HABILITATION_EXPIRING), 3);
    at(ev, 80 * DAY_S * SEC); /* expired: refused elsewhere, no warning */
    hab_request(ev, "H1", 20240201);
    ck_assert_uint_eq(count(ev, GW_EV_HABILITATION_EXPIRING), 3);
    gw_events_close(ev);
    json_t *r[8];
    size_t n = events_of(o.journal.path, r, 8);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(sget(r[0], "event"), "habilitation.expiring");
    ck_assert_str_eq(sget(r[0], "severity"), "medium");
    ck_assert_str_eq(sget(r[0], "habilitation"), "H1");
    ck_assert_str_eq(sget(r[0], "contact"), "tech@acme.fr");
    ck_assert_str_eq(sget(r[0], "valid_until"), "2024-02-01");
    ck_assert_int_eq(iget(r[0], "days_left"), 79);
    ck_assert_int_eq(iget(r[0], "threshold_days"), 90);
    ck_assert_int_eq(iget(r[1], "threshold_days"), 30);
    ck_assert_int_eq(iget(r[1], "days_left"), 29);
    ck_assert_str_eq(sget(r[2], "severity"), "high");
    ck_assert_int_eq(iget(r[2], "threshold_days"), 7);
    free_records(r, n);
}
END_TEST

START_TEST(cert_expiring_off)
{
    gw_events_opts o = base_opts();
    o.cert_expiry_off = 1;
    gw_events *ev = open_ev(&o);
    handshake_ok(ev, CERT_A, T0 / 1000 + DAY_S);
    ck_assert_uint_eq(count(ev, GW_EV_CERT_EXPIRING), 0);
    gw_events_close(ev);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* admin.*                                                                  */
/* ------------------------------------------------------------------------ */

START_TEST(admin_records)
{
    gw_events_opts o = base_opts();
    gw_events *ev = open_ev(&o);
    gw_event_admin reload = {.by = "SIGHUP", .habilitations = 12, .errors = -1, .persisted = -1};
    gw_event_admin refused = {.by = "admin API",
                              .client_ip = "127.0.0.1",
                              .habilitations = -1,
                              .errors = 2,
                              .error = "policies/h1.json: $.id: must be a string",
                              .persisted = -1};
    gw_event_admin susp = {.by = "admin API",
                           .client_ip = "127.0.0.1",
                           .consumer = "acme",
                           .habilitation = "H1",
                           .habilitations = -1,
                           .errors = -1,
                           .persisted = 1};
    gw_event_admin resume = susp;
    resume.persisted = 0;
    resume.error = "cannot persist";
    gw_events_admin(ev, GW_EV_ADMIN_RELOAD, &reload);
    gw_events_admin(ev, GW_EV_ADMIN_RELOAD_REFUSED, &refused);
    gw_events_admin(ev, GW_EV_ADMIN_SUSPEND, &susp);
    gw_events_admin(ev, GW_EV_ADMIN_RESUME, &resume);
    gw_events_admin(ev, GW_EV_AUTH_FAILURES, &susp); /* not an admin type: ignored */
    ck_assert_uint_eq(total(ev), 4);
    gw_events_close(ev);
    json_t *r[8];
    size_t n = events_of(o.journal.path, r, 8);
    ck_assert_uint_eq(n, 4);
    ck_assert_str_eq(sget(r[0], "event"), "admin.reload");
    ck_assert_str_eq(sget(r[0], "severity"), "medium");
    ck_assert_str_eq(sget(r[0], "by"), "SIGHUP");
    ck_assert_int_eq(iget(r[0], "habilitations"), 12);
    ck_assert_ptr_null(json_object_get(r[0], "client_ip"));
    ck_assert_str_eq(sget(r[1], "event"), "admin.reload_refused");
    ck_assert_str_eq(sget(r[1], "severity"), "high");
    ck_assert_str_eq(sget(r[1], "by"), "admin API");
    ck_assert_str_eq(sget(r[1], "client_ip"), "127.0.0.1");
    ck_assert_int_eq(iget(r[1], "errors"), 2);
    ck_assert_str_eq(sget(r[1], "error"), "policies/h1.json: $.id: must be a string");
    ck_assert_str_eq(sget(r[2], "event"), "admin.suspend");
    ck_assert_str_eq(sget(r[2], "severity"), "high");
    ck_assert_str_eq(sget(r[2], "consumer"), "acme");
    ck_assert_str_eq(sget(r[2], "habilitation"), "H1");
    ck_assert(json_is_true(json_object_get(r[2], "persisted")));
    ck_assert_str_eq(sget(r[3], "event"), "admin.resume");
    ck_assert_str_eq(sget(r[3], "severity"), "medium");
    ck_assert(json_is_false(json_object_get(r[3], "persisted")));
    ck_assert_str_eq(sget(r[3], "error"), "cannot persist");
    free_records(r, n);
}
END_TEST

START_TEST(policy_rejected_records)
{
    gw_events_opts o = base_opts();
    gw_events *ev = open_ev(&o);
    gw_events_policy_rejected(ev, "start", "policies/a.json",
                              "policies/a.json: consumer.client_id: must match x", 0);
    gw_events_policy_rejected(ev, "SIGHUP", "policies/b.json", "policies/b.json: $: invalid", 1);
    gw_events_policy_rejected(NULL, "SIGHUP", "x", "y", 1); /* no stream: nothing */
    ck_assert_uint_eq(total(ev), 2);
    gw_events_close(ev);
    json_t *r[4];
    size_t n = events_of(o.journal.path, r, 4);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(sget(r[0], "event"), "policy.rejected");
    ck_assert_str_eq(sget(r[0], "severity"), "high");
    ck_assert_str_eq(sget(r[0], "by"), "start");
    ck_assert_str_eq(sget(r[0], "file"), "policies/a.json");
    ck_assert_str_eq(sget(r[0], "error"), "policies/a.json: consumer.client_id: must match x");
    ck_assert(json_is_false(json_object_get(r[0], "kept_previous")));
    ck_assert_str_eq(sget(r[1], "by"), "SIGHUP");
    ck_assert(json_is_true(json_object_get(r[1], "kept_previous")));
    free_records(r, n);
}
END_TEST

/* The journal's integrity events: the fields given, after the common
 * members; journal.broken is the only critical one; another type is refused
 * (and its fields freed). */
START_TEST(integrity_records)
{
    gw_events_opts o = base_opts();
    gw_events *ev = open_ev(&o);
    gw_events_integrity(ev, GW_EV_JOURNAL_BROKEN,
                        json_pack("{s:s,s:i,s:s}", "file", "/j", "record_seq", 42, "at", "start"));
    gw_events_integrity(ev, GW_EV_ADMIN_HOLD, json_pack("{s:s,s:n}", "reason", "case", "consumer"));
    gw_events_integrity(ev, GW_EV_JOURNAL_ANCHOR, NULL);
    gw_events_integrity(ev, GW_EV_ADMIN_RELOAD, json_pack("{s:s}", "x", "y")); /* not one of them */
    gw_events_integrity(NULL, GW_EV_JOURNAL_BROKEN, json_pack("{s:s}", "x", "y"));
    ck_assert_uint_eq(total(ev), 3);
    ck_assert_uint_eq(count(ev, GW_EV_JOURNAL_BROKEN), 1);
    gw_events_close(ev);
    json_t *r[4];
    size_t n = events_of(o.journal.path, r, 4);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(sget(r[0], "event"), "journal.broken");
    ck_assert_str_eq(sget(r[0], "severity"), "critical");
    ck_assert_str_eq(sget(r[0], "file"), "/j");
    ck_assert_int_eq(iget(r[0], "record_seq"), 42);
    ck_assert_str_eq(sget(r[0], "at"), "start");
    ck_assert_str_eq(sget(r[1], "event"), "admin.journal_hold");
    ck_assert_str_eq(sget(r[1], "severity"), "high");
    ck_assert(json_is_null(json_object_get(r[1], "consumer")));
    ck_assert_str_eq(sget(r[2], "event"), "journal.anchor_failed");
    free_records(r, n);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The stream: chained, verifiable                                          */
/* ------------------------------------------------------------------------ */

static void emit_mix(gw_events *ev)
{
    for (int i = 0; i < 5; i++)
        auth_fail_ip(ev, "192.0.2.10");
    gw_event_request u = {.client_ip = "192.0.2.10",
                          .cert_sha256 = CERT_A,
                          .cert_unknown = 1,
                          .cert_subject = "CN=caf\xc3\xa9,O=bad\xff" /* invalid UTF-8 byte */};
    gw_events_request(ev, &u);
    gw_event_admin a = {.by = "SIGHUP", .habilitations = 3, .errors = -1, .persisted = -1};
    gw_events_admin(ev, GW_EV_ADMIN_RELOAD, &a);
}

START_TEST(stream_chained_and_verifies)
{
    gw_events_opts o = base_opts();
    gw_events *ev = open_ev(&o);
    emit_mix(ev);
    ck_assert_ptr_nonnull(gw_events_journal(ev));
    gw_events_close(ev);

    /* reopened: the chain continues */
    ev = open_ev(&o);
    gw_event_admin a = {.by = "admin API", .habilitations = 4, .errors = -1, .persisted = -1};
    gw_events_admin(ev, GW_EV_ADMIN_RELOAD, &a);
    gw_events_close(ev);

    json_t *r[16];
    size_t n = read_records(o.journal.path, r, 16);
    ck_assert_uint_eq(n, 4);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(iget(r[i], "v"), 1);
        ck_assert_str_eq(sget(r[i], "type"), "security_event");
        ck_assert_int_eq(iget(r[i], "seq"), (long long)i + 1);
        ck_assert_ptr_nonnull(sget(r[i], "ts"));
        ck_assert_ptr_nonnull(sget(r[i], "hash"));
        ck_assert_ptr_nonnull(gw_event_severity_name(
            (gw_event_severity)gw_event_severity_parse(sget(r[i], "severity"))));
        /* nothing that looks like a credential */
        const char *k;
        json_t *v;
        json_object_foreach(r[i], k, v)
        {
            ck_assert_msg(strstr(k, "token") == NULL && strstr(k, "secret") == NULL &&
                              strstr(k, "authorization") == NULL && strstr(k, "key") == NULL,
                          "member %s", k);
        }
    }
    ck_assert_str_eq(sget(r[0], "event"), "auth.failures");
    ck_assert_str_eq(sget(r[1], "event"), "cert.unknown");
    ck_assert_str_eq(sget(r[1], "cert_subject"), "CN=caf\xc3\xa9,O=bad\xef\xbf\xbd");
    ck_assert_str_eq(sget(r[3], "prev"), sget(r[2], "hash"));
    free_records(r, n);

    const char *files[] = {o.journal.path};
    ck_assert_int_eq(gw_journal_verify(files, 1, NULL, stderr), 0);

    /* the chain is really checked: one changed byte fails */
    FILE *f = fopen(o.journal.path, "r+");
    ck_assert_ptr_nonnull(f);
    char buf[8192];
    size_t len = fread(buf, 1, sizeof(buf) - 1, f);
    buf[len] = '\0';
    char *p = strstr(buf, "\"SIGHUP\"");
    ck_assert_ptr_nonnull(p);
    fseek(f, (long)(p - buf) + 1, SEEK_SET);
    fputc('X', f);
    fclose(f);
    ck_assert_int_eq(gw_journal_verify(files, 1, NULL, stderr), 1);
}
END_TEST

/* The stream follows the access journal's options: rotation by size. */
START_TEST(stream_rotates_and_verifies)
{
    gw_events_opts o = base_opts();
    o.journal.rotate_bytes = 600;
    gw_events *ev = open_ev(&o);
    for (int i = 0; i < 10; i++) {
        gw_event_admin a = {.by = "SIGHUP", .habilitations = i, .errors = -1, .persisted = -1};
        gw_events_admin(ev, GW_EV_ADMIN_RELOAD, &a);
        usleep(20000); /* separate batches, so that the size is checked between */
    }
    gw_events_close(ev);
    char **files = NULL, *err = NULL;
    size_t n = 0;
    ck_assert_int_eq(gw_journal_list_files(o.journal.path, &files, &n, &err), 0);
    ck_assert_uint_gt(n, 1);
    ck_assert_int_eq(gw_journal_verify((const char *const *)files, n, NULL, stderr), 0);
    gw_journal_free_files(files, n);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Bounded memory                                                           */
/* ------------------------------------------------------------------------ */

/* The stripe of a subject: the gateway's FNV-1a 64 (lib/hash.h), top 4 bits. */
static unsigned stripe_of_key(const char *k)
{
    return (unsigned)(gw_fnv1a64_str(k) >> 60);
}

START_TEST(subjects_capped_and_counted)
{
    gw_events_opts o = base_opts();
    o.max_subjects = 64;
    gw_events *ev = open_ev(&o);
    char ip[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 250, i % 250);
        auth_fail_ip(ev, ip);
    }
    gw_events_stats st;
    gw_events_get_stats(ev, &st);
    ck_assert_uint_le(st.tracked, 64);
    ck_assert_uint_gt(st.tracked, 0);
    ck_assert_uint_eq(st.tracked + st.evicted, 1000);

    /* A subject seen often stays: the least recently seen goes first. Three
     * new subjects of its own stripe (4 subjects per stripe here) between
     * its failures would evict it if it were not moved up at each one. */
    uint64_t before = count(ev, GW_EV_AUTH_FAILURES);
    unsigned want = stripe_of_key("ip:203.0.113.77");
    int next = 0;
    for (int k = 0; k < 5; k++) {
        auth_fail_ip(ev, "203.0.113.77");
        for (int added = 0; added < 3;) {
            snprintf(ip, sizeof(ip), "10.1.%d.%d", next / 250, next % 250);
            char key[48];
            snprintf(key, sizeof(key), "ip:%s", ip);
            next++;
            if (stripe_of_key(key) == want) {
                auth_fail_ip(ev, ip);
                added++;
            }
        }
    }
    ck_assert_uint_eq(count(ev, GW_EV_AUTH_FAILURES), before + 1);
    gw_events_close(ev);
}
END_TEST

START_TEST(slots_capped)
{
    gw_events_opts o = base_opts();
    o.max_slots = 160; /* 10 per stripe: two subjects of 4 slots each */
    gw_events *ev = open_ev(&o);
    char ip[32];
    for (int i = 0; i < 500; i++) {
        snprintf(ip, sizeof(ip), "10.2.%d.%d", i / 250, i % 250);
        auth_fail_ip(ev, ip);
    }
    gw_events_stats st;
    gw_events_get_stats(ev, &st);
    ck_assert_uint_le(st.tracked, 32);
    ck_assert_uint_eq(st.tracked + st.evicted, 500);
    /* one subject can still reach its threshold */
    for (int i = 0; i < 5; i++)
        auth_fail_ip(ev, "203.0.113.9");
    ck_assert_uint_eq(count(ev, GW_EV_AUTH_FAILURES), 1);
    gw_events_close(ev);
}
END_TEST

/* Workers report concurrently: the counts stay exact. */
struct worker_arg {
    gw_events *ev;
    int id;
};

static void *worker(void *p)
{
    struct worker_arg *a = p;
    char ip[32];
    snprintf(ip, sizeof(ip), "198.51.100.%d", a->id + 1);
    for (int i = 0; i < 500; i++) {
        auth_fail_ip(a->ev, ip);           /* its own IP: one event */
        auth_fail_ip(a->ev, "192.0.2.50"); /* shared by all: one event */
        throttled(a->ev, "H-shared", 1);   /* one quota.storm */
    }
    return NULL;
}

START_TEST(concurrent_reports)
{
    gw_events_opts o = base_opts();
    gw_events *ev = open_ev(&o);
    pthread_t th[8];
    struct worker_arg args[8];
    for (int i = 0; i < 8; i++) {
        args[i] = (struct worker_arg){ev, i};
        ck_assert_int_eq(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    ck_assert_uint_eq(count(ev, GW_EV_AUTH_FAILURES), 9);
    ck_assert_uint_eq(count(ev, GW_EV_QUOTA_STORM), 1);
    gw_events_close(ev);
    const char *files[] = {o.journal.path};
    ck_assert_int_eq(gw_journal_verify(files, 1, NULL, stderr), 0);
    ck_assert_uint_eq(count_lines(o.journal.path), 10);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Alert hook                                                               */
/* ------------------------------------------------------------------------ */

static char *out_path, *env_path;
#define PROBE_FD 57 /* a descriptor of ours the hook must not inherit */

/* A hook that appends "TYPE SEVERITY SECRET" to out and OPALE_EVENT to env. */
static char *write_script(const char *name, const char *body)
{
    char *p = strdup(tpath(name));
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "#!/bin/sh\n%s\n", body);
    fclose(f);
    ck_assert_int_eq(chmod(p, 0755), 0);
    return p;
}

static char *recording_hook(void)
{
    out_path = strdup(tpath("hook.out"));
    env_path = strdup(tpath("hook.env"));
    char body[2 * PATH_MAX + 256];
    snprintf(body, sizeof(body),
             "printf '%%s %%s %%s\\n' \"$1\" \"$2\" \"${OPALE_SECRET_TEST:-absent}\" >> '%s'\n"
             "printf '%%s\\n' \"$OPALE_EVENT\" >> '%s'\n"
             "if [ -e /proc/$$/fd/%d ]; then echo leaked; else echo closed; fi >> '%s.fd'",
             out_path, env_path, PROBE_FD, out_path);
    return write_script("hook.sh", body);
}

static size_t count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = 0;
    int c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* Wait (at most 10 s) until <path> has <n> lines. */
static int wait_lines(const char *path, size_t n)
{
    for (int i = 0; i < 1000; i++) {
        if (count_lines(path) >= n)
            return 1;
        usleep(10000);
    }
    return 0;
}

static char *line_of(const char *path, size_t idx)
{
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char *line = NULL;
    size_t cap = 0;
    for (size_t i = 0; i <= idx; i++)
        ck_assert_int_gt(getline(&line, &cap, f), 0);
    fclose(f);
    line[strcspn(line, "\n")] = '\0';
    return line;
}

static void suspend_event(gw_events *ev, const char *consumer)
{
    gw_event_admin a = {.by = "admin API",
                        .consumer = consumer,
                        .habilitation = "H1",
                        .habilitations = -1,
                        .errors = -1,
                        .persisted = 1};
    gw_events_admin(ev, GW_EV_ADMIN_SUSPEND, &a);
}

START_TEST(hook_runs_with_args_and_event)
{
    setenv("OPALE_SECRET_TEST", "do-not-pass", 1);
    int fd = open("/dev/null", O_RDONLY); /* no O_CLOEXEC, like an accepted socket */
    ck_assert_int_eq(dup2(fd, PROBE_FD), PROBE_FD);
    close(fd);
    gw_events_opts o = base_opts();
    char *cmd = recording_hook();
    o.alert_command = cmd;
    o.alert_min_severity = GW_SEV_HIGH;
    gw_events *ev = open_ev(&o);
    suspend_event(ev, "acme");
    ck_assert_msg(wait_lines(out_path, 1), "the hook did not run within 10 s");
    ck_assert_msg(wait_lines(env_path, 1), "the hook did not write its event");
    char *l = line_of(out_path, 0);
    ck_assert_str_eq(l, "admin.suspend high absent");
    free(l);
    char fdp[PATH_MAX + 8];
    snprintf(fdp, sizeof(fdp), "%s.fd", out_path);
    ck_assert(wait_lines(fdp, 1));
    l = line_of(fdp, 0);
    ck_assert_str_eq(l, "closed");
    free(l);
    l = line_of(env_path, 0);
    json_t *e = json_loads(l, 0, NULL);
    ck_assert_msg(e != NULL, "OPALE_EVENT is not JSON: %s", l);
    ck_assert_str_eq(sget(e, "type"), "security_event");
    ck_assert_str_eq(sget(e, "event"), "admin.suspend");
    ck_assert_str_eq(sget(e, "consumer"), "acme");
    ck_assert_ptr_null(json_object_get(e, "hash")); /* the record, before chaining */
    json_decref(e);
    free(l);
    /* reaped while the gateway runs, not only at close */
    gw_events_stats st;
    int i = 0;
    for (; i < 500; i++) {
        gw_events_get_stats(ev, &st);
        if (st.alerts_running == 0)
            break;
        usleep(10000);
    }
    ck_assert_uint_eq(st.alerts_running, 0);
    ck_assert_uint_eq(st.alerts_run, 1);
    ck_assert_uint_eq(st.alerts_failed, 0);
    int status;
    ck_assert_int_eq(waitpid(-1, &status, WNOHANG), -1); /* no zombie left */
    ck_assert_int_eq(errno, ECHILD);
    gw_events_close(ev);
    free(cmd);
    free(out_path);
    free(env_path);
    unsetenv("OPALE_SECRET_TEST");
}
END_TEST

START_TEST(hook_severity_filter)
{
    static const gw_event_severity mins[] = {GW_SEV_HIGH, GW_SEV_CRITICAL, GW_SEV_LOW};
    static const size_t want[] = {1, 0, 3};
    gw_events_opts o = base_opts();
    char *cmd = recording_hook();
    o.alert_command = cmd;
    o.alert_min_severity = mins[_i];
    gw_events *ev = open_ev(&o);
    gw_event_admin a = {.by = "SIGHUP", .habilitations = -1, .errors = 1, .persisted = -1};
    gw_events_admin(ev, GW_EV_ADMIN_RESUME, &a);                       /* medium */
    gw_event_request m = {.consumer = "acme", .maintenance_until = 1}; /* low */
    gw_events_request(ev, &m);
    gw_events_admin(ev, GW_EV_ADMIN_RELOAD_REFUSED, &a); /* high */
    gw_events_close(ev);                                 /* runs and reaps what was queued */
    ck_assert_uint_eq(count_lines(out_path), want[_i]);
    if (_i == 0) {
        char *l = line_of(out_path, 0);
        ck_assert_str_eq(l, "admin.reload_refused high absent");
        free(l);
    }
    free(cmd);
    free(out_path);
    free(env_path);
}
END_TEST

START_TEST(hook_rate_limited)
{
    gw_events_opts o = base_opts();
    char *cmd = recording_hook();
    o.alert_command = cmd;
    o.alert_max_per_minute = 3;
    gw_events *ev = open_ev(&o);
    for (int i = 0; i < 10; i++)
        suspend_event(ev, "acme");
    gw_events_stats st;
    gw_events_get_stats(ev, &st);
    ck_assert_uint_eq(st.alerts_rate_limited, 7);
    at(ev, 30 * SEC); /* still within the minute of the first three */
    suspend_event(ev, "acme");
    gw_events_get_stats(ev, &st);
    ck_assert_uint_eq(st.alerts_rate_limited, 8);
    at(ev, 60 * SEC); /* a minute later: allowed again */
    suspend_event(ev, "acme");
    gw_events_get_stats(ev, &st);
    ck_assert_uint_eq(st.alerts_rate_limited, 8);
    gw_events_close(ev);
    ck_assert_uint_eq(count_lines(out_path), 4);
    free(cmd);
    free(out_path);
    free(env_path);
}
END_TEST

START_TEST(hook_rate_limit_counts)
{
    gw_events_opts o = base_opts();
    char *cmd = recording_hook();
    o.alert_command = cmd;
    o.alert_max_per_minute = 3;
    gw_events *ev = open_ev(&o);
    for (int i = 0; i < 10; i++)
        suspend_event(ev, "acme");
    ck_assert(wait_lines(out_path, 3));
    gw_events_stats st;
    for (int i = 0; i < 500; i++) {
        gw_events_get_stats(ev, &st);
        if (st.alerts_running == 0 && st.alerts_run == 3)
            break;
        usleep(10000);
    }
    ck_assert_uint_eq(st.alerts_run, 3);
    ck_assert_uint_eq(st.alerts_rate_limited, 7);
    ck_assert_uint_eq(st.alerts_dropped, 0);
    ck_assert_uint_eq(st.by_type[GW_EV_ADMIN_SUSPEND], 10); /* every event is recorded */
    gw_events_close(ev);
    free(cmd);
    free(out_path);
    free(env_path);
}
END_TEST

START_TEST(hook_failures_counted)
{
    gw_events_opts o = base_opts();
    char *cmd = write_script("fail.sh", "exit 3");
    o.alert_command = cmd;
    gw_events *ev = open_ev(&o);
    suspend_event(ev, "acme");
    gw_events_stats st;
    for (int i = 0; i < 1000; i++) {
        gw_events_get_stats(ev, &st);
        if (st.alerts_failed > 0 && st.alerts_running == 0)
            break;
        usleep(10000);
    }
    ck_assert_uint_eq(st.alerts_run, 1);
    ck_assert_uint_eq(st.alerts_failed, 1);
    gw_events_close(ev);
    free(cmd);

    /* a command that cannot be started */
    o = base_opts();
    o.journal.path = tpath("events2.jsonl");
    o.alert_command = tpath("missing.sh");
    ev = open_ev(&o);
    suspend_event(ev, "acme");
    for (int i = 0; i < 1000; i++) {
        gw_events_get_stats(ev, &st);
        if (st.alerts_failed > 0)
            break;
        usleep(10000);
    }
    ck_assert_uint_eq(st.alerts_failed, 1);
    ck_assert_uint_eq(st.alerts_run, 0);
    gw_events_close(ev);
}
END_TEST

static long long mono_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

START_TEST(hook_timeout_kills)
{
    gw_events_opts o = base_opts();
    char *cmd = write_script("slow.sh", "sleep 30\necho never");
    o.alert_command = cmd;
    o.alert_timeout_ms = 300;
    gw_events *ev = open_ev(&o);
    long long t0 = mono_now_ms();
    suspend_event(ev, "acme");
    gw_events_stats st;
    for (int i = 0; i < 1000; i++) {
        gw_events_get_stats(ev, &st);
        if (st.alerts_failed > 0 && st.alerts_running == 0)
            break;
        usleep(10000);
    }
    ck_assert_uint_eq(st.alerts_run, 1);
    ck_assert_uint_eq(st.alerts_failed, 1);
    ck_assert_uint_eq(st.alerts_running, 0);
    ck_assert_int_lt(mono_now_ms() - t0, 5000);
    gw_events_close(ev);
    free(cmd);
}
END_TEST

/* Workers never wait for the hook: a slow command and many events. */
START_TEST(hook_never_blocks)
{
    gw_events_opts o = base_opts();
    char *cmd = write_script("slow2.sh", "sleep 0.3");
    o.alert_command = cmd;
    o.alert_max_per_minute = 1000;
    gw_events *ev = open_ev(&o);
    long long t0 = mono_now_ms();
    for (int i = 0; i < 200; i++)
        suspend_event(ev, "acme");
    ck_assert_int_lt(mono_now_ms() - t0, 1000);
    gw_events_stats st;
    gw_events_get_stats(ev, &st);
    ck_assert_uint_gt(st.alerts_dropped, 0); /* the queue is bounded */
    gw_events_close(ev);
    /* each event was either run or counted as not run */
    ck_assert_uint_eq(count_lines(o.journal.path), 200);
    free(cmd);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Config: journal.events                                                   */
/* ------------------------------------------------------------------------ */

static void touch(const char *name)
{
    FILE *f = fopen(tpath(name), "w");
    ck_assert_ptr_nonnull(f);
    fputs("x\n", f);
    fclose(f);
}

static char *conf_text(const char *events)
{
    char *t = NULL;
    ck_assert_int_gt(
        asprintf(&t,
                 "{\"listeners\": [{\"name\": \"l\", \"address\": \"127.0.0.1\", \"port\": 8443,"
                 " \"environment\": \"sandbox\", \"tls\": {\"certificates\": [{\"cert\": "
                 "\"s.crt\", \"key\": \"s.key\"}], \"client_ca\": \"ca.crt\"}}],"
                 " \"upstreams\": [{\"name\": \"u\", \"servers\": [\"127.0.0.1:9000\"]}],"
                 " \"routes\": [{\"method\": \"GET\", \"path\": \"/a\", \"upstream\": \"u\"}],"
                 " \"journal\": {\"path\": \"j/access.jsonl\"%s%s}}",
                 events ? ", \"events\": " : "", events ? events : ""),
        0);
    return t;
}

static gw_conf *load_conf(const char *events, gw_errlist *errs)
{
    touch("s.crt");
    touch("s.key");
    touch("ca.crt");
    mkdir(tpath("j"), 0755);
    char *t = conf_text(events);
    FILE *f = fopen(tpath("gw.json"), "w");
    ck_assert_ptr_nonnull(f);
    fputs(t, f);
    fclose(f);
    free(t);
    memset(errs, 0, sizeof(*errs));
    return gw_conf_load(tpath("gw.json"), errs);
}

START_TEST(conf_defaults)
{
    gw_errlist errs;
    gw_conf *c = load_conf(NULL, &errs);
    ck_assert_msg(c != NULL, "%s", errs.n ? errs.msgs[0] : "?");
    const gw_conf_events *e = &c->journal.events;
    ck_assert_str_eq(e->path, tpath("j/events.jsonl"));
    ck_assert_uint_eq(e->auth_threshold, 10);
    ck_assert_uint_eq(e->auth_window_s, 60);
    ck_assert_uint_eq(e->enum_distinct, 100);
    ck_assert_uint_eq(e->enum_window_s, 300);
    ck_assert_uint_eq(e->storm_refusals, 100);
    ck_assert_uint_eq(e->storm_window_s, 60);
    ck_assert_uint_eq(e->cert_expiry_days, 30);
    ck_assert_ptr_null(e->alert_command);
    ck_assert_int_eq(e->alert_min_severity, GW_SEV_HIGH);
    ck_assert_uint_eq(e->alert_max_per_minute, 10);
    gw_conf_free(c);
    gw_errlist_clear(&errs);
}
END_TEST

START_TEST(conf_values)
{
    char *cmd = write_script("alert.sh", "exit 0");
    free(cmd);
    gw_errlist errs;
    gw_conf *c = load_conf("{\"path\": \"sec.jsonl\","
                           " \"auth_failures\": {\"threshold\": 3, \"window_s\": 30},"
                           " \"enumeration\": {\"distinct_sirens\": 50, \"window_s\": 600},"
                           " \"quota_storm\": {\"refusals\": 20, \"window_s\": 10},"
                           " \"cert_expiry_days\": 0,"
                           " \"alert\": {\"command\": \"alert.sh\", \"min_severity\": \"medium\","
                           " \"max_per_minute\": 2}}",
                           &errs);
    ck_assert_msg(c != NULL, "%s", errs.n ? errs.msgs[0] : "?");
    const gw_conf_events *e = &c->journal.events;
    ck_assert_str_eq(e->path, tpath("sec.jsonl"));
    ck_assert_uint_eq(e->auth_threshold, 3);
    ck_assert_uint_eq(e->auth_window_s, 30);
    ck_assert_uint_eq(e->enum_distinct, 50);
    ck_assert_uint_eq(e->enum_window_s, 600);
    ck_assert_uint_eq(e->storm_refusals, 20);
    ck_assert_uint_eq(e->storm_window_s, 10);
    ck_assert_uint_eq(e->cert_expiry_days, 0);
    ck_assert_str_eq(e->alert_command, tpath("alert.sh"));
    ck_assert_int_eq(e->alert_min_severity, GW_SEV_MEDIUM);
    ck_assert_uint_eq(e->alert_max_per_minute, 2);
    gw_conf_free(c);
    gw_errlist_clear(&errs);
}
END_TEST

static const struct {
    const char *events;
    const char *msg; /* after "<file>: " */
} bad_confs[] = {
    {"[]", "journal.events: must be an object"},
    {"{\"paht\": \"x\"}", "journal.events.paht: unknown key"},
    {"{\"path\": \"\"}", "journal.events.path: must not be empty"},
    {"{\"path\": 3}", "journal.events.path: must be a string"},
    {"{\"path\": \"j/access.jsonl\"}",
     "journal.events.path: must not be the access journal's path"},
    {"{\"path\": \"nodir/e.jsonl\"}", "journal.events.path: cannot use directory"},
    {"{\"path\": \"j\"}", "journal.events.path: \""},
    {"{\"auth_failures\": {\"threshold\": 0}}",
     "journal.events.auth_failures.threshold: must be between 1 and 10000"},
    {"{\"auth_failures\": {\"window\": 5}}", "journal.events.auth_failures.window: unknown key"},
    {"{\"enumeration\": {\"window_s\": 0}}",
     "journal.events.enumeration.window_s: must be between 1 and 86400"},
    {"{\"enumeration\": {\"distinct_sirens\": 1}}",
     "journal.events.enumeration.distinct_sirens: must be between 2 and 10000"},
    {"{\"quota_storm\": {\"refusals\": \"100\"}}",
     "journal.events.quota_storm.refusals: must be an integer"},
    {"{\"cert_expiry_days\": 366}", "journal.events.cert_expiry_days: must be between 0 and 365"},
    {"{\"alert\": {}}", "journal.events.alert: missing key \"command\""},
    {"{\"alert\": {\"command\": \"nope.sh\"}}", "journal.events.alert.command: cannot execute"},
    {"{\"alert\": {\"command\": \"s.crt\"}}", "journal.events.alert.command: cannot execute"},
    {"{\"alert\": {\"command\": \"alert.sh\", \"min_severity\": \"urgent\"}}",
     "journal.events.alert.min_severity: must be \"low\", \"medium\", \"high\" or \"critical\""},
    {"{\"alert\": {\"command\": \"alert.sh\", \"max_per_minute\": 0}}",
     "journal.events.alert.max_per_minute: must be between 1 and 1000"},
};
#define N_BAD_CONFS (sizeof(bad_confs) / sizeof(bad_confs[0]))

START_TEST(conf_errors_located)
{
    char *cmd = write_script("alert.sh", "exit 0");
    free(cmd);
    gw_errlist errs;
    gw_conf *c = load_conf(bad_confs[_i].events, &errs);
    ck_assert_msg(c == NULL, "case %d accepted", _i);
    ck_assert_uint_ge(errs.n, 1);
    char *want = NULL;
    ck_assert_int_gt(asprintf(&want, "%s: %s", tpath("gw.json"), bad_confs[_i].msg), 0);
    int found = 0;
    for (size_t i = 0; i < errs.n; i++)
        found |= strncmp(errs.msgs[i], want, strlen(want)) == 0;
    ck_assert_msg(found, "case %d: want \"%s...\", first error \"%s\"", _i, want, errs.msgs[0]);
    free(want);
    gw_errlist_clear(&errs);
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *events_suite(void)
{
    Suite *s = suite_create("events");
    TCase *tc = tcase_create("names");
    tcase_add_test(tc, names_stable);
    tcase_add_test(tc, null_events_is_noop);
    suite_add_tcase(s, tc);

    tc = tcase_create("detectors");
    tcase_add_checked_fixture(tc, setup_dir, teardown_dir);
    tcase_add_test(tc, open_refuses_raw_or_no_path);
    tcase_add_test(tc, auth_threshold_exact);
    tcase_add_test(tc, auth_once_per_window);
    tcase_add_test(tc, auth_window_slides);
    tcase_add_test(tc, auth_per_certificate);
    tcase_add_test(tc, auth_handshakes_and_requests);
    tcase_add_test(tc, cert_unknown_once_per_hour);
    tcase_add_test(tc, enumeration_threshold_and_once);
    tcase_add_test(tc, enumeration_window_slides);
    tcase_add_test(tc, quota_storm_threshold);
    tcase_add_test(tc, maintenance_once_per_slot);
    tcase_add_test(tc, cert_expiring_window_and_daily);
    tcase_add_test(tc, cert_not_after_remembered);
    tcase_add_test(tc, cert_expiring_off);
    tcase_add_test(tc, habilitation_expiring_milestones);
    tcase_add_test(tc, admin_records);
    tcase_add_test(tc, policy_rejected_records);
    tcase_add_test(tc, integrity_records);
    suite_add_tcase(s, tc);

    tc = tcase_create("stream");
    tcase_add_checked_fixture(tc, setup_dir, teardown_dir);
    tcase_add_test(tc, stream_chained_and_verifies);
    tcase_add_test(tc, stream_rotates_and_verifies);
    tcase_add_test(tc, subjects_capped_and_counted);
    tcase_add_test(tc, slots_capped);
    tcase_add_test(tc, concurrent_reports);
    suite_add_tcase(s, tc);

    tc = tcase_create("alert");
    tcase_add_checked_fixture(tc, setup_dir, teardown_dir);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, hook_runs_with_args_and_event);
    tcase_add_loop_test(tc, hook_severity_filter, 0, 3);
    tcase_add_test(tc, hook_rate_limited);
    tcase_add_test(tc, hook_rate_limit_counts);
    tcase_add_test(tc, hook_failures_counted);
    tcase_add_test(tc, hook_timeout_kills);
    tcase_add_test(tc, hook_never_blocks);
    suite_add_tcase(s, tc);

    tc = tcase_create("conf");
    tcase_add_checked_fixture(tc, setup_dir, teardown_dir);
    tcase_add_test(tc, conf_defaults);
    tcase_add_test(tc, conf_values);
    tcase_add_loop_test(tc, conf_errors_located, 0, N_BAD_CONFS);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(events_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
