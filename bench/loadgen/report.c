/*
 * opale-loadgen: the results: the summary on stdout and the --json file,
 * written with jansson.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "loadgen.h"

static int secret_header(const char *h)
{
    return lg_header_is(h, "Authorization") || lg_header_is(h, "Proxy-Authorization") ||
           lg_header_is(h, "Cookie") || lg_header_is(h, "X-API-Key");
}

static const double k_curve[] = {0,     10,     20,    30,     40,     50,      60,   70,    75,
                                 80,    85,     90,    95,     97.5,   99,      99.5, 99.75, 99.9,
                                 99.95, 99.975, 99.99, 99.995, 99.999, 99.9999, 100};

/* <x> rounded to <decimals> decimals, as the --json file shows it. */
static json_t *jreal(double x, int decimals)
{
    double scale = pow(10, decimals);

    return json_real(round(x * scale) / scale);
}

/* <s> as a JSON string; if it is not valid UTF-8 (a -H value may hold any
 * byte), with each byte >= 0x80 shown as '?'. */
static json_t *jstr(const char *s)
{
    json_t *j = json_string(s);
    char *c;

    if (j || !(c = strdup(s)))
        return j;
    for (char *p = c; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    j = json_string(c);
    free(c);
    return j;
}

static json_t *juint(uint64_t v)
{
    return json_integer((json_int_t)v);
}

/* Histogram <h> as an object: count, min, mean, stdev, p50..p99_99, max;
 * with <full>, the percentile curve and the non-empty buckets too. */
static json_t *json_hist(const struct hist *h, int full)
{
    json_t *o = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "count", juint(h->n), "min",
                          juint(h->n ? h->min : 0), "mean", jreal(lg_h_mean(h), 1), "stdev",
                          jreal(lg_h_stdev(h), 1), "p50", juint(lg_h_pct(h, 50)), "p90",
                          juint(lg_h_pct(h, 90)), "p99", juint(lg_h_pct(h, 99)), "p99_9",
                          juint(lg_h_pct(h, 99.9)), "p99_99", juint(lg_h_pct(h, 99.99)), "max",
                          juint(h->max));

    if (o && full) {
        json_t *curve = json_array(), *buckets = json_array();
        for (size_t i = 0; i < sizeof k_curve / sizeof k_curve[0]; i++)
            json_array_append_new(curve, json_pack("[o,o]",
                                                   k_curve[i] == floor(k_curve[i])
                                                       ? json_integer((json_int_t)k_curve[i])
                                                       : json_real(k_curve[i]),
                                                   juint(lg_h_pct(h, k_curve[i]))));
        for (unsigned i = 0; i < H_NB; i++)
            if (h->b[i])
                json_array_append_new(buckets, json_pack("[o,o,o]", juint(lg_h_lower(i)),
                                                         juint(lg_h_upper(i)), juint(h->b[i])));
        json_object_set_new(o, "percentiles", curve);
        json_object_set_new(o, "histogram", buckets);
    }
    return o;
}

/* The run's settings, secrets redacted. */
static json_t *json_config(void)
{
    const struct options *o = &lg_opt;
    json_t *paths = json_array(), *headers = json_array();

    for (int i = 0; i < o->npaths; i++)
        json_array_append_new(paths, jstr(o->paths[i]));
    for (int i = 0; i < o->nheaders; i++) {
        char red[128];
        if (secret_header(o->headers[i]))
            snprintf(red, sizeof red, "%.*s: (redacted)", (int)lg_header_name_len(o->headers[i]),
                     o->headers[i]);
        json_array_append_new(headers, jstr(secret_header(o->headers[i]) ? red : o->headers[i]));
    }
    json_t *cfg =
        json_pack("{s:o,s:b,s:b,s:b,s:I,s:I,s:o,s:o,s:s,s:o,s:b,s:o,s:b,s:b,s:o,s:o}", "url",
                  jstr(o->url_arg), "tls", o->url.tls, "client_cert", o->cert != NULL, "verify",
                  o->url.tls && !o->insecure, "connections", (json_int_t)o->conns, "threads",
                  (json_int_t)o->threads, "duration_s", jreal(o->duration, 3), "max_requests",
                  juint(o->max_requests), "mode",
                  o->hold > 0   ? "hold"
                  : o->rate > 0 ? "open"
                                : "closed",
                  "rate", jreal(o->rate, 3), "new_conn", o->new_conn, "timeout_s",
                  jreal(o->timeout, 3), "correlation_id", o->correlation_id,
                  "bearer_from_token_url", lg_bearer != NULL, "paths", paths, "headers", headers);
    /* partner mode: a certificate and headers per connection (partners.c) */
    if (cfg) {
        json_object_set_new(cfg, "partner_certs", json_boolean(o->partner_certs != NULL));
        json_object_set_new(cfg, "partner_headers", json_boolean(o->partner_headers != NULL));
        json_object_set_new(cfg, "warmup_s", jreal(o->warmup, 3));
    }
    return cfg;
}

/* The whole --json document of run <t>. */
static json_t *json_results(const struct totals *t)
{
    const struct stats *s = &t->st;
    double el = t->elapsed > 0 ? t->elapsed : 1e-9;
    uint64_t errs = 0;
    json_t *doc, *errors = json_object(), *conns;

    for (int i = 0; i < E_N; i++) {
        errs += s->err[i];
        json_object_set_new(errors, lg_err_name[i], juint(s->err[i]));
    }
    json_object_set_new(errors, "total", juint(errs));
    conns = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "attempts",
                      juint(s->conn_attempts), "established", juint(s->conn_established),
                      "up_at_start", juint(t->up_at_start), "tls_handshakes", juint(s->handshakes),
                      "tls_handshakes_in_run", juint(s->handshakes_run), "handshake_rate",
                      jreal((double)s->handshakes_run / el, 3), "server_closes",
                      juint(s->server_closes), "idle_closes", juint(s->idle_closes), "setup_window",
                      juint(SETUP_WINDOW), "setup_max", juint(t->setup_max), "connect_us",
                      json_hist(&s->conn, 0));
    doc = json_pack(
        "{s:s,s:s,s:o,s:s,s:o,s:o,s:{s:o,s:o,s:o,s:o,s:o,s:o},s:{s:o,s:o,s:o,s:o},s:o,s:o,s:o,"
        "s:o,s:o}",
        "tool", LG_NAME, "version", LG_VERSION, "config", json_config(), "started_at", t->started,
        "connect_phase_s", jreal(t->connect_phase, 6), "elapsed_s", jreal(t->elapsed, 6),
        "requests", "started", juint(s->claimed), "sent", juint(s->sent), "completed",
        juint(s->completed), "failed", juint(s->failed), "unfinished", juint(t->unfinished),
        "missed", juint(t->missed), "responses", "2xx", juint(s->status[2]), "3xx",
        juint(s->status[3]), "4xx", juint(s->status[4]), "5xx", juint(s->status[5]), "errors",
        errors, "throughput_rps", jreal((double)s->completed / el, 3), "bytes_in",
        juint(s->bytes_in), "latency_us", json_hist(&s->lat, 1), "connections", conns);
    if (doc) /* the measured window on CLOCK_MONOTONIC, to set beside other tools' clocks */
        json_object_set_new(
            doc, "window_mono_ns",
            json_pack("[I,I]", (json_int_t)lg_mstart,
                      (json_int_t)(lg_mstart + (uint64_t)(t->elapsed * (double)NS_PER_S))));
    if (doc && lg_opt.warmup > 0) /* before the window, not in any figure above */
        json_object_set_new(
            doc, "warmup",
            json_pack("{s:o,s:o,s:o,s:o,s:o}", "seconds", jreal(lg_opt.warmup, 3), "started",
                      juint(s->warm_started), "completed", juint(s->warm_completed), "unfinished",
                      juint(t->warm_unfinished), "latency_us", json_hist(&s->warm_lat, 0)));
    if (doc && lg_opt.hold > 0)
        json_object_set_new(
            doc, "hold",
            json_pack("{s:o,s:o,s:o,s:o,s:o}", "seconds", jreal(lg_opt.hold, 3), "setup_s",
                      jreal(t->connect_phase, 6), "held", juint(t->up_at_start), "held_at_end",
                      juint(t->held_end), "closed_during_hold",
                      juint(t->up_at_start > t->held_end ? t->up_at_start - t->held_end : 0)));
    return doc;
}

int lg_write_json(const char *path, const struct totals *t)
{
    char tmp[4200];
    json_t *doc = NULL;
    char *text = NULL;
    FILE *f = NULL;
    int rc = -1;

    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        goto out;
    doc = json_results(t);
    /* one line, members in the order of docs/loadgen.md; %.15g for reals so
     * that 0.002987 is not written 0.0029870000000000001 */
    text = doc ? json_dumps(doc, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15)) : NULL;
    if (!text || !(f = fopen(tmp, "w")))
        goto out;
    if (fputs(text, f) < 0 || fputc('\n', f) == EOF)
        goto out;
    if (fclose(f) != 0) {
        f = NULL;
        goto out;
    }
    f = NULL;
    if (rename(tmp, path) != 0)
        goto out;
    rc = 0;
out:
    if (f)
        fclose(f);
    if (rc != 0 && text)
        unlink(tmp);
    free(text);
    json_decref(doc);
    return rc;
}

static void fmt_us(char *buf, size_t len, uint64_t us)
{
    if (us < 1000)
        snprintf(buf, len, "%" PRIu64 "us", us);
    else if (us < 1000000)
        snprintf(buf, len, "%.2fms", (double)us / 1e3);
    else
        snprintf(buf, len, "%.2fs", (double)us / 1e6);
}

void lg_print_summary(const struct totals *t)
{
    const struct stats *s = &t->st;
    const struct options *o = &lg_opt;
    double el = t->elapsed > 0 ? t->elapsed : 1e-9;
    uint64_t errs = 0;
    for (int i = 0; i < E_N; i++)
        errs += s->err[i];
    printf(LG_NAME " %s: %ld connections, %ld threads, %.1f s, ", o->url_arg, o->conns, o->threads,
           t->elapsed);
    if (o->hold > 0)
        printf("hold, ");
    else if (o->rate > 0)
        printf("open loop at %.1f req/s, ", o->rate);
    else
        printf("closed loop, ");
    printf("%s, %s\n", o->new_conn ? "new connection per request" : "keep-alive",
           !o->url.tls ? "plain HTTP"
           : o->cert   ? "mTLS"
                       : "TLS");
    printf("  requests     %" PRIu64 " completed, %" PRIu64 " failed, %" PRIu64
           " unfinished at the end",
           s->completed, s->failed, t->unfinished);
    if (o->rate > 0)
        printf(", %" PRIu64 " due but never started (behind schedule)", t->missed);
    printf("\n");
    if (o->warmup > 0)
        printf("  warm-up      %.1f s before the measured window: %" PRIu64 " started, %" PRIu64
               " completed (not in the figures)\n",
               o->warmup, s->warm_started, s->warm_completed);
    printf("  responses    2xx %" PRIu64 "  3xx %" PRIu64 "  4xx %" PRIu64 "  5xx %" PRIu64 "\n",
           s->status[2], s->status[3], s->status[4], s->status[5]);
    printf("  errors       %" PRIu64 ":", errs);
    for (int i = 0; i < E_N; i++)
        printf(" %s %" PRIu64, lg_err_name[i], s->err[i]);
    printf("\n  throughput   %.1f req/s, %.2f MB/s in\n", s->completed / el,
           (double)s->bytes_in / el / 1e6);
    char a[6][32];
    const double pts[] = {50, 90, 99, 99.9};
    for (int i = 0; i < 4; i++)
        fmt_us(a[i], sizeof a[i], lg_h_pct(&s->lat, pts[i]));
    fmt_us(a[4], sizeof a[4], s->lat.max);
    fmt_us(a[5], sizeof a[5], (uint64_t)lg_h_mean(&s->lat));
    printf("  latency      p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s)%s\n", a[0], a[1],
           a[2], a[3], a[4], a[5], o->rate > 0 ? ", from the scheduled time" : "");
    fmt_us(a[0], sizeof a[0], lg_h_pct(&s->conn, 50));
    fmt_us(a[1], sizeof a[1], lg_h_pct(&s->conn, 99));
    printf("  connections  %" PRIu64 " attempts, %" PRIu64 " established", s->conn_attempts,
           s->conn_established);
    if (o->url.tls)
        printf(", %" PRIu64 " TLS handshakes (%.1f/s during the run)", s->handshakes,
               s->handshakes_run / el);
    printf(", connect p50 %s p99 %s\n", a[0], a[1]);
    if (o->hold > 0)
        printf("  hold         %" PRIu64 " connections held idle for %.1f s (%" PRIu64
               " still open at the end), set up in %.2f s\n",
               t->up_at_start, t->elapsed, t->held_end, t->connect_phase);
}
