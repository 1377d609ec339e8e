/*
 * opale-gateway --availability -c FILE JOURNAL... [--from ISO] [--to ISO]
 * [--format md|json] (docs/availability.md).
 */
#include "evidence/availability.h"

#include <stdlib.h>
#include <string.h>

static int is_upstream_failure(const gw_ev_rec *r)
{
    const char *reason = gw_ev_str(r->obj, "reason");
    return reason != NULL &&
           (strcmp(reason, "upstream.unavailable") == 0 ||
            strcmp(reason, "upstream.timeout") == 0 || strcmp(reason, "upstream.invalid") == 0);
}

int gw_avail_from_records(const gw_ev_rec *recs, size_t n, gw_ivals *upstream, gw_ivals *down)
{
    int64_t out_start = -1, last_ts = -1;
    for (size_t i = 0; i < n; i++) {
        const gw_ev_rec *r = &recs[i];
        if (r->ts_ms < 0)
            continue;
        if (r->type == NULL) {
            if (is_upstream_failure(r)) {
                long long ms = gw_ev_int(r->obj, "ms");
                int64_t s = r->ts_ms - (ms > 0 ? ms : 0);
                if (out_start < 0)
                    out_start = s;
            } else if (gw_ev_int(r->obj, "upstream.status") > 0 && out_start >= 0) {
                if (gw_ivals_add(upstream, out_start, r->ts_ms) < 0)
                    return -1;
                out_start = -1;
            }
        } else if ((strcmp(r->type, "gap") == 0 && gw_ev_str(r->obj, "reason") != NULL &&
                    strcmp(gw_ev_str(r->obj, "reason"), "unclean_stop") == 0) ||
                   (strcmp(r->type, "rotate") == 0 && gw_ev_str(r->obj, "reason") != NULL &&
                    strcmp(gw_ev_str(r->obj, "reason"), "restart") == 0)) {
            if (last_ts >= 0 && gw_ivals_add(down, last_ts, r->ts_ms) < 0)
                return -1;
        }
        last_ts = r->ts_ms;
    }
    if (out_start >= 0 && last_ts > out_start && gw_ivals_add(upstream, out_start, last_ts) < 0)
        return -1;
    gw_ivals_normalize(upstream);
    gw_ivals_normalize(down);
    return 0;
}

void gw_avail_compute(const gw_ivals *unavail, int64_t from, int64_t to, gw_avail_figure *f)
{
    memset(f, 0, sizeof(*f));
    if (to <= from)
        return;
    f->total_ms = to - from;
    f->unavail_ms = gw_ivals_within(unavail, from, to);
    for (long d = gw_paris_day(from); d <= gw_paris_day(to - 1); d++) {
        int64_t a = gw_paris_local(d, 7 * 60), b = gw_paris_local(d, 20 * 60);
        if (a < from)
            a = from;
        if (b > to)
            b = to;
        if (b <= a)
            continue;
        f->cov_total_ms += b - a;
        f->cov_unavail_ms += gw_ivals_within(unavail, a, b);
    }
}

static double pct(int64_t total, int64_t un)
{
    return total > 0 ? 100.0 * (double)(total - un) / (double)total : 100.0;
}

static json_t *figure_json(const gw_avail_figure *f)
{
    double a = pct(f->total_ms, f->unavail_ms), c = pct(f->cov_total_ms, f->cov_unavail_ms);
    return json_pack("{s:I,s:I,s:f,s:s,s:I,s:I,s:f,s:s}", "seconds",
                     (json_int_t)(f->total_ms / 1000), "unavailable_ms", (json_int_t)f->unavail_ms,
                     "availability_pct", a, "verdict", a >= GW_AVAIL_TARGET ? "meets" : "below",
                     "coverage_seconds", (json_int_t)(f->cov_total_ms / 1000),
                     "coverage_unavailable_ms", (json_int_t)f->cov_unavail_ms,
                     "coverage_availability_pct", c, "coverage_verdict",
                     f->cov_total_ms == 0   ? "n/a"
                     : c >= GW_AVAIL_TARGET ? "meets"
                                            : "below");
}

static int add_list(json_t *arr, const gw_ivals *s, const char *cause)
{
    char a[32], b[32];
    for (size_t i = 0; i < s->n; i++) {
        gw_ev_format_time(s->v[i].a, a);
        gw_ev_format_time(s->v[i].b, b);
        json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:I}", "cause", cause, "from", a, "to",
                                             b, "ms", (json_int_t)(s->v[i].b - s->v[i].a)));
    }
    return 0;
}

static void md_figure(FILE *o, const char *label, json_t *f)
{
    fprintf(o, "| %s | %.4f %% | %.3f s | %s | ", label,
            json_real_value(json_object_get(f, "availability_pct")),
            (double)json_integer_value(json_object_get(f, "unavailable_ms")) / 1000.0,
            json_string_value(json_object_get(f, "verdict")));
    if (gw_ev_int(f, "coverage_seconds") == 0 && gw_ev_int(f, "coverage_unavailable_ms") == 0)
        fprintf(o, "- | - | n/a |\n");
    else
        fprintf(o, "%.4f %% | %.3f s | %s |\n",
                json_real_value(json_object_get(f, "coverage_availability_pct")),
                (double)json_integer_value(json_object_get(f, "coverage_unavailable_ms")) / 1000.0,
                json_string_value(json_object_get(f, "coverage_verdict")));
}

static void render_md(FILE *o, json_t *r)
{
    json_t *j = json_object_get(r, "journal");
    fprintf(o, "# Availability (CGU §11)\n\n");
    fprintf(o,
            "- Period: %s to %s (opening hours 0:00-24:00 every day; coverage hours "
            "7:00-20:00 Europe/Paris)\n",
            gw_ev_str(r, "from"), gw_ev_str(r, "to"));
    fprintf(o, "- Target: %.2f %%\n", GW_AVAIL_TARGET);
    fprintf(o, "- Journal verified (%s): head seq %lld hash `%s`\n",
            json_string_value(json_object_get(j, "status")), gw_ev_int(j, "head_seq"),
            gw_ev_str(j, "head_hash"));
    json_t *per = json_object_get(r, "period");
    if (gw_ev_int(per, "unobserved_ms") > 0)
        fprintf(o,
                "- Not covered by the journal (before its first or after its last record): "
                "%.3f s, not counted as unavailable\n",
                (double)gw_ev_int(per, "unobserved_ms") / 1000.0);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(j, "files"), i, v)
        fprintf(o, "- File: `%s`\n", json_string_value(v));
    fprintf(o, "\n| Day (Europe/Paris) | Availability | Unavailable | Verdict | 7:00-20:00 | "
               "Unavailable | Verdict |\n|---|---|---|---|---|---|---|\n");
    json_array_foreach(json_object_get(r, "days"), i, v) md_figure(o, gw_ev_str(v, "day"), v);
    md_figure(o, "**Period**", json_object_get(r, "period"));
    fprintf(o,
            "\n## Unavailable intervals\n\n| Cause | From | To | Seconds |\n|---|---|---|---|\n");
    json_array_foreach(json_object_get(r, "intervals"), i, v)
        fprintf(o, "| %s | %s | %s | %.3f |\n", gw_ev_str(v, "cause"), gw_ev_str(v, "from"),
                gw_ev_str(v, "to"), (double)gw_ev_int(v, "ms") / 1000.0);
}

int gw_evidence_availability_main(int argc, char **argv, int first)
{
    gw_ev_args args;
    if (gw_ev_parse_args(argc, argv, first, "-c --from --to --format", 0, &args) < 0 ||
        args.conf == NULL || args.nfiles == 0 ||
        (args.format != NULL && strcmp(args.format, "md") != 0 &&
         strcmp(args.format, "json") != 0)) {
        fprintf(stderr, "usage: opale-gateway --availability -c FILE [--from ISO] [--to ISO] "
                        "[--format md|json] JOURNAL...\n");
        gw_ev_args_clear(&args);
        return 2;
    }
    int json_out = args.format != NULL && strcmp(args.format, "json") == 0;
    int64_t from = args.from, to = args.to;
    gw_ev_conf c;
    gw_ev_journal j;
    gw_ivals up = {0}, down = {0}, maint = {0}, unobs = {0}, all = {0};
    json_t *r = NULL;
    int rc = gw_ev_open("availability", &args, &c, &j);
    if (rc != 0)
        goto out;
    rc = 1;
    int64_t first_ts = -1, last_ts = -1;
    for (size_t i = 0; i < j.n; i++) {
        if (j.recs[i].ts_ms < 0)
            continue;
        if (first_ts < 0)
            first_ts = j.recs[i].ts_ms;
        last_ts = j.recs[i].ts_ms;
    }
    if (from < 0)
        from = first_ts;
    if (to < 0)
        to = last_ts;
    if (from < 0 || to <= from) {
        fprintf(stderr, "opale-gateway: availability: empty period\n");
        goto out;
    }
    if (gw_avail_from_records(j.recs, j.n, &up, &down) < 0 ||
        gw_maint_intervals(gw_stage_lists_conf(c.access, &gw_stage_maintenance), from, to, &maint) <
            0)
        goto out;
    /* outside the journal's span nothing shows the service up */
    gw_ivals_add(&unobs, from, first_ts < 0 ? to : (first_ts < to ? first_ts : to));
    gw_ivals_add(&unobs, last_ts > from ? last_ts : from, to);
    gw_ivals_normalize(&unobs);
    /* the journal's silence is not unavailability (an idle gateway writes
     * nothing): reported, not counted */
    const gw_ivals *parts[] = {&maint, &up, &down};
    for (size_t p = 0; p < 3; p++)
        for (size_t i = 0; i < parts[p]->n; i++)
            gw_ivals_add(&all, parts[p]->v[i].a, parts[p]->v[i].b);
    gw_ivals_normalize(&all);

    char fs[32], ts[32];
    gw_ev_format_time(from, fs);
    gw_ev_format_time(to, ts);
    gw_avail_figure fig;
    gw_avail_compute(&all, from, to, &fig);
    json_t *pf = figure_json(&fig);
    json_object_set_new(pf, "unobserved_ms",
                        json_integer((json_int_t)gw_ivals_within(&unobs, from, to)));
    r = json_pack("{s:s,s:i,s:s,s:s,s:f,s:o}", "report", "availability", "v", 1, "from", fs, "to",
                  ts, "target_pct", GW_AVAIL_TARGET, "period", pf);
    json_t *jf = json_array();
    for (size_t i = 0; i < j.nfiles; i++)
        json_array_append_new(jf, json_string(j.files[i]));
    json_object_set_new(r, "journal",
                        json_pack("{s:o,s:I,s:s,s:s,s:I}", "files", jf, "head_seq",
                                  (json_int_t)j.res.last_seq, "head_hash", j.res.last_hash,
                                  "status", j.verify_rc == 3 ? "intact with gap records" : "intact",
                                  "gaps", (json_int_t)j.res.gaps));
    json_t *days = json_array();
    for (long d = gw_paris_day(from); d <= gw_paris_day(to - 1); d++) {
        int64_t a = gw_paris_local(d, 0), b = gw_paris_local(d + 1, 0);
        gw_avail_figure df;
        gw_avail_compute(&all, a < from ? from : a, b > to ? to : b, &df);
        char day[32];
        gw_ev_format_time(a + 7200000, day); /* a local midnight + 2 h is the same UTC date */
        day[10] = '\0';
        json_t *dj = figure_json(&df);
        json_object_set_new(dj, "day", json_string(day));
        json_array_append_new(days, dj);
    }
    json_object_set_new(r, "days", days);
    json_t *iv = json_array();
    add_list(iv, &maint, "maintenance");
    add_list(iv, &up, "upstream");
    add_list(iv, &down, "gateway_down");
    add_list(iv, &unobs, "unobserved (not counted)");
    json_object_set_new(r, "intervals", iv);

    char *body = NULL;
    size_t blen = 0;
    FILE *o = open_memstream(&body, &blen);
    if (o == NULL)
        goto out;
    if (json_out) {
        json_dumpf(r, o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        fputc('\n', o);
    } else {
        render_md(o, r);
    }
    fclose(o);
    rc = gw_ev_emit(&c, "availability", "evidence.availability", body, blen,
                    json_out ? GW_EV_SIG_JSON : GW_EV_SIG_HTML);
    free(body);
out:
    json_decref(r);
    gw_ivals_clear(&up);
    gw_ivals_clear(&down);
    gw_ivals_clear(&maint);
    gw_ivals_clear(&unobs);
    gw_ivals_clear(&all);
    gw_ev_journal_clear(&j);
    gw_ev_conf_clear(&c);
    gw_ev_args_clear(&args);
    return rc;
}
