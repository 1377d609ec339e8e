/*
 * opale-gateway --recette CLIENT_ID -c FILE [--criteria FILE]
 * [--format md|json|html] JOURNAL...   (docs/recette.md)
 */
#include "evidence/recette.h"

#include "lib/jsonv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name, *label;
    const char *reasons[4];
    int required;
} CASES[GW_RC_NCASES] = {
    [GW_RC_QUOTA] = {"quota", "Quota exceeded (429 900804, Retry-After)", {"quota.exceeded"}, 1},
    [GW_RC_SIREN] = {"invalid_siren", "Invalid SIREN (400 910212)", {"rights.bad_siren"}, 1},
    [GW_RC_YEAR] = {"year_out_of_rights",
                    "Year out of the rights (403 910210)",
                    {"rights.year"},
                    1},
    [GW_RC_CORRELATION] = {"missing_correlation_id",
                           "Missing or invalid X-Correlation-ID (400 910000)",
                           {"correlation.missing", "correlation.invalid"},
                           1},
    [GW_RC_EXPIRED_TOKEN] = {"expired_token",
                             "Expired access token (401 900901)",
                             {"jwt.expired"},
                             1},
    [GW_RC_MAINTENANCE] = {"maintenance",
                           "Maintenance (503 910220, Retry-After)",
                           {"maintenance.slot"},
                           0},
    [GW_RC_BACKEND] = {"backend_error",
                       "Backend errors (502 910502, 502 910512, 504 910514)",
                       {"upstream.unavailable", "upstream.timeout", "upstream.invalid"},
                       0},
};

const char *gw_recette_case_name(gw_rc_case c)
{
    return c < GW_RC_NCASES ? CASES[c].name : "?";
}

void gw_recette_criteria_default(gw_recette_criteria *c)
{
    memset(c, 0, sizeof(*c));
    for (int i = 0; i < GW_RC_NCASES; i++) {
        c->cases[i].required = CASES[i].required;
        c->cases[i].min_wait_ms = 1000;
    }
    c->min_calls_per_token = 2.0;
    c->max_duplicate_correlation_ids = 0;
    c->require_teleservice = 1;
    c->min_allowed_calls = 1;
}

int gw_recette_criteria_load(const char *path, gw_recette_criteria *c, gw_errlist *errs)
{
    gw_jsonv v = gw_jsonv_init(path, errs);
    size_t len = 0;
    char *text = gw_ev_read_file(path, &len);
    if (text == NULL) {
        gw_jsonv_err(&v, "$", "cannot read: %s", strerror(errno));
        return -1;
    }
    json_t *root = gw_jsonv_parse(&v, text, len);
    free(text);
    if (root == NULL)
        return -1;
    if (!json_is_object(root)) {
        gw_jsonv_err(&v, "$", "must be an object");
        json_decref(root);
        return -1;
    }
    static const char *const top[] = {"cases",
                                      "min_calls_per_token",
                                      "max_duplicate_correlation_ids",
                                      "require_teleservice",
                                      "min_allowed_calls",
                                      NULL};
    gw_jsonv_keys(&v, root, "$", top);
    json_t *cases = gw_jsonv_obj(&v, root, "$", "cases", GW_JSONV_OPTIONAL);
    if (cases != NULL) {
        const char *names[GW_RC_NCASES + 1];
        for (int i = 0; i < GW_RC_NCASES; i++)
            names[i] = CASES[i].name;
        names[GW_RC_NCASES] = NULL;
        gw_jsonv_keys(&v, cases, "cases", names);
        for (int i = 0; i < GW_RC_NCASES; i++) {
            char p[GW_JSONV_PATH];
            gw_jsonv_path_key(p, "cases", CASES[i].name);
            json_t *co = gw_jsonv_obj(&v, cases, "cases", CASES[i].name, GW_JSONV_OPTIONAL);
            if (co == NULL)
                continue;
            static const char *const ck[] = {"required", "min_wait_ms", NULL};
            gw_jsonv_keys(&v, co, p, ck);
            gw_jsonv_bool(&v, co, p, "required", GW_JSONV_OPTIONAL, &c->cases[i].required);
            gw_jsonv_int_in(&v, co, p, "min_wait_ms", GW_JSONV_OPTIONAL, 0, 86400000,
                            &c->cases[i].min_wait_ms);
        }
    }
    json_t *mc = json_object_get(root, "min_calls_per_token");
    if (mc != NULL) {
        if (!json_is_number(mc) || json_number_value(mc) < 0 || json_number_value(mc) > 1e6)
            gw_jsonv_err(&v, "min_calls_per_token", "must be a number between 0 and 1000000");
        else
            c->min_calls_per_token = json_number_value(mc);
    }
    gw_jsonv_int_in(&v, root, "$", "max_duplicate_correlation_ids", GW_JSONV_OPTIONAL, 0,
                    1000000000, &c->max_duplicate_correlation_ids);
    gw_jsonv_int_in(&v, root, "$", "min_allowed_calls", GW_JSONV_OPTIONAL, 0, 1000000000,
                    &c->min_allowed_calls);
    gw_jsonv_bool(&v, root, "$", "require_teleservice", GW_JSONV_OPTIONAL, &c->require_teleservice);
    json_decref(root);
    return v.nerrs > 0 ? -1 : 0;
}

/* ---- analysis ---- */

static int case_of(const char *reason)
{
    if (reason == NULL)
        return -1;
    for (int i = 0; i < GW_RC_NCASES; i++)
        for (int k = 0; k < 4 && CASES[i].reasons[k] != NULL; k++)
            if (strcmp(reason, CASES[i].reasons[k]) == 0)
                return i;
    return -1;
}

static int is_mine(const gw_ev_rec *r, const char *consumer)
{
    if (r->type != NULL)
        return 0;
    /* an operator's action on the consumer (admin.suspend, admin.resume, ...)
     * is journalled under its name but is not one of its calls */
    const char *reason = gw_ev_str(r->obj, "reason");
    if (reason != NULL && strncmp(reason, "admin.", 6) == 0)
        return 0;
    const char *c = gw_ev_str(r->obj, "consumer"), *cid = gw_ev_str(r->obj, "client_id");
    return (c && strcmp(c, consumer) == 0) || (cid && strcmp(cid, consumer) == 0);
}

static int is_token_route(const gw_ev_rec *r)
{
    const char *rt = gw_ev_str(r->obj, "route");
    return rt != NULL && (strcmp(rt, "token") == 0 || strcmp(rt, "jwks") == 0);
}

static int allowed(const gw_ev_rec *r)
{
    const char *d = gw_ev_str(r->obj, "decision");
    return d != NULL && strcmp(d, "allow") == 0;
}

/* Timeline category of a record. */
static const char *CATS[] = {"allowed", "refused", "quota", "unavailable"};
static int category(const gw_ev_rec *r)
{
    if (allowed(r))
        return 0;
    const char *reason = gw_ev_str(r->obj, "reason");
    if (reason != NULL && strcmp(reason, "quota.exceeded") == 0)
        return 2;
    return gw_ev_int(r->obj, "status") >= 500 ? 3 : 1;
}

#define GW_RC_BUCKETS 48

static void inc(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    json_object_set_new(o, key, json_integer(v ? json_integer_value(v) + 1 : 1));
}

static json_t *criterion(const char *id, const char *label, const char *verdict, const char *detail)
{
    return json_pack("{s:s,s:s,s:s,s:s}", "id", id, "label", label, "verdict", verdict, "detail",
                     detail);
}

json_t *gw_recette_analyse(const gw_ev_rec *recs, size_t n, const char *consumer,
                           const gw_recette_criteria *c)
{
    const gw_ev_rec **mine = calloc(n + 1, sizeof(*mine));
    json_t *rep = json_object(), *routes = json_object(), *seen_corr = json_object();
    json_t *seen_jti = json_object();
    size_t m = 0;
    if (mine == NULL || rep == NULL || routes == NULL || seen_corr == NULL || seen_jti == NULL)
        goto fail;
    for (size_t i = 0; i < n; i++)
        if (is_mine(&recs[i], consumer))
            mine[m++] = &recs[i];

    long long allowed_calls = 0, token_issued = 0, data_calls = 0, data_with_token = 0;
    long long dup_corr = 0, no_corr = 0, no_ts = 0;
    long long met[GW_RC_NCASES] = {0}, at_once[GW_RC_NCASES] = {0};
    int renewed_after_expiry = 0;
    long long first_expiry = -1;
    for (size_t k = 0; k < m; k++) {
        const gw_ev_rec *r = mine[k];
        const char *route = gw_ev_str(r->obj, "route");
        const char *reason = gw_ev_str(r->obj, "reason");
        char rk[256];
        snprintf(rk, sizeof(rk), "%s", route ? route : "(no route)");
        json_t *ro = json_object_get(routes, rk);
        if (ro == NULL) {
            ro = json_object();
            json_object_set_new(routes, rk, ro);
        }
        char outcome[160];
        long long st = gw_ev_int(r->obj, "status");
        snprintf(outcome, sizeof(outcome), "%lld %s", st,
                 allowed(r) ? "allow" : (reason ? reason : "error"));
        inc(ro, outcome);
        if (allowed(r))
            allowed_calls++;
        if (is_token_route(r)) {
            if (allowed(r) && route && strcmp(route, "token") == 0) {
                token_issued++;
                if (first_expiry >= 0)
                    renewed_after_expiry = 1;
            }
        } else {
            data_calls++;
            const char *jti = gw_ev_str(r->obj, "token_jti");
            if (jti != NULL) {
                data_with_token++;
                json_object_set_new(seen_jti, jti, json_true());
            }
            const char *corr = gw_ev_str(r->obj, "correlation_id");
            if (corr == NULL) {
                no_corr++;
            } else if (json_object_get(seen_corr, corr) != NULL) {
                dup_corr++;
            } else {
                json_object_set_new(seen_corr, corr, json_true());
            }
            if (gw_ev_str(r->obj, "teleservice") == NULL)
                no_ts++;
        }
        int ci = case_of(reason);
        if (ci < 0)
            continue;
        met[ci]++;
        if (ci == GW_RC_EXPIRED_TOKEN && first_expiry < 0)
            first_expiry = (long long)k;
        /* the consumer's next data call (a /token call in between is not a retry) */
        size_t nk = k + 1;
        while (nk < m && is_token_route(mine[nk]))
            nk++;
        if (nk < m) {
            const gw_ev_rec *nx = mine[nk];
            if (case_of(gw_ev_str(nx->obj, "reason")) == ci && r->ts_ms >= 0 && nx->ts_ms >= 0 &&
                nx->ts_ms - r->ts_ms < c->cases[ci].min_wait_ms)
                at_once[ci]++;
        }
    }

    json_t *cases = json_array(), *crit = json_array();
    int overall = 1;
    for (int i = 0; i < GW_RC_NCASES; i++) {
        int handled = met[i] > 0 && at_once[i] == 0;
        if (i == GW_RC_EXPIRED_TOKEN && met[i] > 0 && !renewed_after_expiry)
            handled = 0;
        const char *verdict;
        char detail[256];
        if (met[i] == 0) {
            verdict = c->cases[i].required ? "fail" : "n/a";
            snprintf(detail, sizeof(detail), "not met%s",
                     c->cases[i].required ? " (required)" : " (not required)");
        } else {
            verdict = handled ? "pass" : "fail";
            int n2 =
                snprintf(detail, sizeof(detail), "met %lld times; %lld retried at once (< %lld ms)",
                         met[i], at_once[i], c->cases[i].min_wait_ms);
            if (i == GW_RC_EXPIRED_TOKEN && n2 > 0 && (size_t)n2 < sizeof(detail))
                snprintf(detail + n2, sizeof(detail) - (size_t)n2, "; %s",
                         renewed_after_expiry ? "a new token was requested from /token"
                                              : "no new token requested from /token");
        }
        if (strcmp(verdict, "fail") == 0)
            overall = 0;
        json_array_append_new(
            cases, json_pack("{s:s,s:s,s:I,s:I,s:b,s:b,s:s}", "case", CASES[i].name, "label",
                             CASES[i].label, "met", (json_int_t)met[i], "retried_at_once",
                             (json_int_t)at_once[i], "handled", handled, "required",
                             c->cases[i].required, "verdict", verdict));
        char id[64];
        snprintf(id, sizeof(id), "case.%s", CASES[i].name);
        json_array_append_new(crit, criterion(id, CASES[i].label, verdict, detail));
    }
    double per_token = token_issued > 0 ? (double)data_with_token / (double)token_issued : 0.0;
    char d[256];
    int hyg = token_issued <= 1 || per_token >= c->min_calls_per_token;
    snprintf(d, sizeof(d),
             "%lld tokens from /token for %lld data calls with a token (%.2f calls a token; at "
             "least %.2f required)",
             token_issued, data_with_token, per_token, c->min_calls_per_token);
    json_array_append_new(crit, criterion("token_hygiene", "Tokens reused for their lifetime",
                                          hyg ? "pass" : "fail", d));
    overall &= hyg;
    int cu = dup_corr <= c->max_duplicate_correlation_ids;
    snprintf(d, sizeof(d),
             "%lld calls reused a correlation id (at most %lld allowed); %lld calls without one",
             dup_corr, c->max_duplicate_correlation_ids, no_corr);
    json_array_append_new(crit,
                          criterion("correlation_ids_unique", "A new X-Correlation-ID per call",
                                    cu ? "pass" : "fail", d));
    overall &= cu;
    int ts_ok = !c->require_teleservice || no_ts == 0;
    snprintf(d, sizeof(d), "%lld of %lld data calls without ID_Teleservice", no_ts, data_calls);
    json_array_append_new(crit, criterion("teleservice_always_sent", "ID_Teleservice on every call",
                                          !c->require_teleservice ? "n/a"
                                          : ts_ok                 ? "pass"
                                                                  : "fail",
                                          d));
    overall &= ts_ok;
    int ac = allowed_calls >= c->min_allowed_calls;
    snprintf(d, sizeof(d), "%lld allowed calls (at least %lld required)", allowed_calls,
             c->min_allowed_calls);
    json_array_append_new(crit,
                          criterion("allowed_calls", "Successful calls", ac ? "pass" : "fail", d));
    overall &= ac;

    json_t *rarr = json_array();
    const char *rk;
    json_t *rv;
    json_object_foreach(routes, rk, rv)
    {
        long long total = 0;
        const char *ok;
        json_t *ov;
        json_object_foreach(rv, ok, ov) total += json_integer_value(ov);
        json_array_append_new(rarr, json_pack("{s:s,s:I,s:O}", "route", rk, "calls",
                                              (json_int_t)total, "outcomes", rv));
    }

    /* timeline: GW_RC_BUCKETS buckets over the consumer's first to last call */
    int64_t t0 = -1, t1 = -1;
    for (size_t k = 0; k < m; k++) {
        if (mine[k]->ts_ms < 0)
            continue;
        if (t0 < 0)
            t0 = mine[k]->ts_ms;
        t1 = mine[k]->ts_ms;
    }
    int64_t width = t0 >= 0 ? (t1 - t0) / GW_RC_BUCKETS + 1 : 1;
    json_t *series = json_object();
    long long counts[4][GW_RC_BUCKETS];
    memset(counts, 0, sizeof(counts));
    for (size_t k = 0; k < m; k++) {
        if (mine[k]->ts_ms < 0)
            continue;
        int64_t b = (mine[k]->ts_ms - t0) / width;
        if (b >= GW_RC_BUCKETS)
            b = GW_RC_BUCKETS - 1;
        counts[category(mine[k])][b]++;
    }
    for (int cat = 0; cat < 4; cat++) {
        json_t *a = json_array();
        for (int b = 0; b < GW_RC_BUCKETS; b++)
            json_array_append_new(a, json_integer(counts[cat][b]));
        json_object_set_new(series, CATS[cat], a);
    }
    char t0s[32] = "", t1s[32] = "";
    if (t0 >= 0) {
        gw_ev_format_time(t0, t0s);
        gw_ev_format_time(t1, t1s);
    }

    json_object_set_new(rep, "report", json_string("recette"));
    json_object_set_new(rep, "v", json_integer(1));
    json_object_set_new(rep, "consumer", json_string(consumer));
    json_object_set_new(rep, "first_call", t0 >= 0 ? json_string(t0s) : json_null());
    json_object_set_new(rep, "last_call", t0 >= 0 ? json_string(t1s) : json_null());
    json_object_set_new(rep, "records", json_integer((json_int_t)m));
    json_object_set_new(rep, "routes", rarr);
    json_object_set_new(rep, "cases", cases);
    json_object_set_new(
        rep, "hygiene",
        json_pack("{s:I,s:I,s:I,s:I,s:f,s:I,s:I,s:I}", "token_requests", (json_int_t)token_issued,
                  "distinct_tokens_used", (json_int_t)json_object_size(seen_jti), "data_calls",
                  (json_int_t)data_calls, "data_calls_with_token", (json_int_t)data_with_token,
                  "calls_per_token", per_token, "duplicate_correlation_ids", (json_int_t)dup_corr,
                  "calls_without_correlation_id", (json_int_t)no_corr, "calls_without_teleservice",
                  (json_int_t)no_ts));
    json_object_set_new(rep, "criteria", crit);
    json_object_set_new(rep, "verdict", json_string(overall ? "pass" : "fail"));
    json_object_set_new(
        rep, "timeline",
        json_pack("{s:s,s:I,s:o}", "start", t0s, "bucket_ms", (json_int_t)width, "series", series));
    json_decref(routes);
    json_decref(seen_corr);
    json_decref(seen_jti);
    free(mine);
    return rep;
fail:
    json_decref(rep);
    json_decref(routes);
    json_decref(seen_corr);
    json_decref(seen_jti);
    free(mine);
    return NULL;
}

/* ---- rendering ---- */

/* Markdown table cell: no '|', no markup from the journal. */
static void md(FILE *o, const char *s)
{
    for (; s != NULL && *s; s++) {
        if (*s == '|' || *s == '`' || *s == '*' || *s == '_' || *s == '[' || *s == ']' ||
            *s == '\\')
            fputc('\\', o);
        if (*s == '<')
            fputs("&lt;", o);
        else if (*s == '>')
            fputs("&gt;", o);
        else if (*s == '&')
            fputs("&amp;", o);
        else if (*s == '\n' || *s == '\r')
            fputc(' ', o);
        else
            fputc(*s, o);
    }
}

static void render_md(FILE *o, json_t *r)
{
    size_t i;
    json_t *v;
    json_t *j = json_object_get(r, "journal");
    fputs("# Recette report: ", o);
    md(o, gw_ev_str(r, "consumer"));
    fprintf(o, "\n\n**Overall verdict: %s**\n\n",
            strcmp(gw_ev_str(r, "verdict"), "pass") == 0 ? "PASS" : "FAIL");
    fputs("- Generated: ", o);
    md(o, gw_ev_str(r, "generated"));
    fputs("\n- Calls from ", o);
    md(o, gw_ev_str(r, "first_call") ? gw_ev_str(r, "first_call") : "-");
    fputs(" to ", o);
    md(o, gw_ev_str(r, "last_call") ? gw_ev_str(r, "last_call") : "-");
    fprintf(o, " (%lld records)\n", gw_ev_int(r, "records"));
    fprintf(o, "- Journal verified: %s, head seq %lld hash `%s`\n", gw_ev_str(j, "status"),
            gw_ev_int(j, "head_seq"), gw_ev_str(j, "head_hash"));
    json_array_foreach(json_object_get(j, "files"), i, v)
    {
        fputs("  - file `", o);
        md(o, gw_ev_str(v, "name"));
        fprintf(o, "`: seq %lld..%lld, last hash `%s`\n", gw_ev_int(v, "first_seq"),
                gw_ev_int(v, "last_seq"), gw_ev_str(v, "last_hash"));
    }
    json_t *cp = json_object_get(j, "checkpoint");
    if (json_is_object(cp))
        fprintf(o,
                "- Signed checkpoint relied on: seq %lld (%s, kid %s) covering up to seq %lld hash "
                "`%s`; %lld records after it\n",
                gw_ev_int(cp, "seq"), gw_ev_str(cp, "ts"), gw_ev_str(cp, "kid"),
                gw_ev_int(cp, "head_seq"), gw_ev_str(cp, "head_hash"),
                gw_ev_int(j, "after_checkpoint"));
    else
        fputs("- Signed checkpoint relied on: none (no record is covered by a signature)\n", o);
    fputs("\n## Criteria\n\n| Criterion | Verdict | Detail |\n|---|---|---|\n", o);
    json_array_foreach(json_object_get(r, "criteria"), i, v)
    {
        fputs("| ", o);
        md(o, gw_ev_str(v, "label"));
        fputs(" | ", o);
        md(o, gw_ev_str(v, "verdict"));
        fputs(" | ", o);
        md(o, gw_ev_str(v, "detail"));
        fputs(" |\n", o);
    }
    fputs("\n## Routes\n\n| Route | Calls | Outcomes (status reason: count) |\n|---|---|---|\n", o);
    json_array_foreach(json_object_get(r, "routes"), i, v)
    {
        fputs("| ", o);
        md(o, gw_ev_str(v, "route"));
        fprintf(o, " | %lld | ", gw_ev_int(v, "calls"));
        const char *k;
        json_t *c;
        int first = 1;
        json_object_foreach(json_object_get(v, "outcomes"), k, c)
        {
            fputs(first ? "" : ", ", o);
            md(o, k);
            fprintf(o, ": %lld", (long long)json_integer_value(c));
            first = 0;
        }
        fputs(" |\n", o);
    }
    json_t *h = json_object_get(r, "hygiene");
    fprintf(o,
            "\n## Hygiene\n\n- /token calls: %lld; distinct tokens used: %lld; data calls: %lld "
            "(%lld with a token)\n"
            "- Calls per token: %.2f\n- Correlation ids reused: %lld; calls without one: %lld\n"
            "- Calls without ID_Teleservice: %lld\n",
            gw_ev_int(h, "token_requests"), gw_ev_int(h, "distinct_tokens_used"),
            gw_ev_int(h, "data_calls"), gw_ev_int(h, "data_calls_with_token"),
            json_real_value(json_object_get(h, "calls_per_token")),
            gw_ev_int(h, "duplicate_correlation_ids"), gw_ev_int(h, "calls_without_correlation_id"),
            gw_ev_int(h, "calls_without_teleservice"));
}

static const char *COLORS[] = {"#2e7d32", "#f9a825", "#ef6c00", "#c62828"};

static void render_svg(FILE *o, json_t *tl)
{
    json_t *series = json_object_get(tl, "series");
    long long maxv = 1;
    for (int b = 0; b < GW_RC_BUCKETS; b++) {
        long long s = 0;
        for (int c = 0; c < 4; c++)
            s += json_integer_value(json_array_get(json_object_get(series, CATS[c]), (size_t)b));
        if (s > maxv)
            maxv = s;
    }
    const int W = 960, H = 240, bw = W / GW_RC_BUCKETS;
    fprintf(o,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" role=\"img\" "
            "aria-label=\"calls over time by outcome\">\n",
            W, H + 40);
    for (int b = 0; b < GW_RC_BUCKETS; b++) {
        double y = H;
        for (int c = 0; c < 4; c++) {
            long long v =
                json_integer_value(json_array_get(json_object_get(series, CATS[c]), (size_t)b));
            if (v == 0)
                continue;
            double hh = (double)v * (H - 10) / (double)maxv;
            y -= hh;
            fprintf(o,
                    "<rect x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"%.1f\" fill=\"%s\"><title>%s: "
                    "%lld</title></rect>\n",
                    b * bw, y, bw - 1, hh, COLORS[c], CATS[c], v);
        }
    }
    for (int c = 0; c < 4; c++)
        fprintf(o,
                "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/><text x=\"%d\" "
                "y=\"%d\" font-size=\"12\">%s</text>\n",
                c * 160, H + 18, COLORS[c], c * 160 + 16, H + 29, CATS[c]);
    fprintf(o, "</svg>\n");
}

static void render_html(FILE *o, json_t *r)
{
    size_t i;
    json_t *v;
    json_t *j = json_object_get(r, "journal");
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Recette ", o);
    gw_ev_html_escape(o, gw_ev_str(r, "consumer"));
    fputs("</title>\n<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
          "td,th{border:1px solid #999;padding:4px 8px}.pass{color:#2e7d32}.fail{color:#c62828}"
          "</style></head><body>\n<h1>Recette report: ",
          o);
    gw_ev_html_escape(o, gw_ev_str(r, "consumer"));
    fputs("</h1>\n<p>Overall verdict: <strong class=\"", o);
    gw_ev_html_escape(o, gw_ev_str(r, "verdict"));
    fputs("\">", o);
    gw_ev_html_escape(o, gw_ev_str(r, "verdict"));
    fputs("</strong></p>\n<ul><li>Generated: ", o);
    gw_ev_html_escape(o, gw_ev_str(r, "generated"));
    fprintf(o, "</li><li>Journal: ");
    gw_ev_html_escape(o, gw_ev_str(j, "status"));
    fprintf(o, ", head seq %lld hash <code>", gw_ev_int(j, "head_seq"));
    gw_ev_html_escape(o, gw_ev_str(j, "head_hash"));
    fputs("</code></li>\n", o);
    json_array_foreach(json_object_get(j, "files"), i, v)
    {
        fputs("<li>File <code>", o);
        gw_ev_html_escape(o, gw_ev_str(v, "name"));
        fprintf(o, "</code>: seq %lld..%lld</li>\n", gw_ev_int(v, "first_seq"),
                gw_ev_int(v, "last_seq"));
    }
    json_t *cp = json_object_get(j, "checkpoint");
    if (json_is_object(cp)) {
        fprintf(o, "<li>Signed checkpoint relied on: seq %lld, kid ", gw_ev_int(cp, "seq"));
        gw_ev_html_escape(o, gw_ev_str(cp, "kid"));
        fprintf(o, ", covering up to seq %lld</li>\n", gw_ev_int(cp, "head_seq"));
    }
    fputs("</ul>\n<h2>Calls over time by outcome</h2>\n", o);
    render_svg(o, json_object_get(r, "timeline"));
    fputs("<h2>Criteria</h2>\n<table><tr><th>Criterion</th><th>Verdict</th><th>Detail</th></tr>\n",
          o);
    json_array_foreach(json_object_get(r, "criteria"), i, v)
    {
        fputs("<tr><td>", o);
        gw_ev_html_escape(o, gw_ev_str(v, "label"));
        fputs("</td><td class=\"", o);
        gw_ev_html_escape(o, gw_ev_str(v, "verdict"));
        fputs("\">", o);
        gw_ev_html_escape(o, gw_ev_str(v, "verdict"));
        fputs("</td><td>", o);
        gw_ev_html_escape(o, gw_ev_str(v, "detail"));
        fputs("</td></tr>\n", o);
    }
    fputs("</table>\n<h2>Routes</h2>\n<table><tr><th>Route</th><th>Calls</th><th>Outcomes</th></"
          "tr>\n",
          o);
    json_array_foreach(json_object_get(r, "routes"), i, v)
    {
        fputs("<tr><td>", o);
        gw_ev_html_escape(o, gw_ev_str(v, "route"));
        fprintf(o, "</td><td>%lld</td><td>", gw_ev_int(v, "calls"));
        const char *k;
        json_t *c;
        json_object_foreach(json_object_get(v, "outcomes"), k, c)
        {
            gw_ev_html_escape(o, k);
            fprintf(o, ": %lld<br>", (long long)json_integer_value(c));
        }
        fputs("</td></tr>\n", o);
    }
    fputs("</table>\n</body></html>\n", o);
}

static json_t *journal_json(const gw_ev_journal *j)
{
    json_t *files = json_array();
    for (size_t f = 0; f < j->nfiles; f++) {
        const gw_ev_rec *first = NULL, *last = NULL;
        for (size_t i = 0; i < j->n; i++)
            if (j->recs[i].file == f) {
                if (first == NULL)
                    first = &j->recs[i];
                last = &j->recs[i];
            }
        json_array_append_new(files, json_pack("{s:s,s:I,s:I,s:s}", "name", j->files[f],
                                               "first_seq", (json_int_t)(first ? first->seq : 0),
                                               "last_seq", (json_int_t)(last ? last->seq : 0),
                                               "last_hash", last ? last->hash : ""));
    }
    json_t *cp = json_null();
    if (j->last_checkpoint != SIZE_MAX) {
        const gw_ev_rec *c = &j->recs[j->last_checkpoint];
        cp = json_pack("{s:I,s:s,s:s?,s:I,s:s?,s:s?}", "seq", (json_int_t)c->seq, "hash", c->hash,
                       "ts", gw_ev_str(c->obj, "ts"), "head_seq",
                       (json_int_t)gw_ev_int(c->obj, "head_seq"), "head_hash",
                       gw_ev_str(c->obj, "head_hash"), "kid", gw_ev_str(c->obj, "kid"));
    }
    return json_pack(
        "{s:o,s:I,s:s,s:o,s:I,s:s,s:I}", "files", files, "head_seq", (json_int_t)j->res.last_seq,
        "head_hash", j->res.last_hash, "checkpoint", cp, "after_checkpoint",
        (json_int_t)(j->last_checkpoint == SIZE_MAX ? j->n : j->n - 1 - j->last_checkpoint),
        "status", j->verify_rc == 3 ? "intact with gap records" : "intact", "gaps",
        (json_int_t)j->res.gaps);
}

void gw_recette_render_md(FILE *o, json_t *r, const gw_ev_journal *j)
{
    char now[32];
    gw_ev_now(now);
    json_object_set_new(r, "generated", json_string(now));
    json_object_set_new(r, "journal", journal_json(j));
    render_md(o, r);
}

int gw_evidence_recette_main(int argc, char **argv, int first)
{
    gw_ev_args args;
    int ok = gw_ev_parse_args(argc, argv, first, "-c --criteria --format", 1, &args) == 0;
    const char *format = args.format != NULL ? args.format : "md";
    int fmt = strcmp(format, "md") == 0     ? 0
              : strcmp(format, "json") == 0 ? 1
              : strcmp(format, "html") == 0 ? 2
                                            : -1;
    if (!ok || args.conf == NULL || args.positional == NULL || args.nfiles == 0 || fmt < 0) {
        fprintf(stderr, "usage: opale-gateway --recette CLIENT_ID -c FILE [--criteria FILE] "
                        "[--format md|json|html] JOURNAL...\n");
        gw_ev_args_clear(&args);
        return 2;
    }
    const char *consumer = args.positional;
    gw_recette_criteria crit;
    gw_recette_criteria_default(&crit);
    if (args.criteria != NULL) {
        gw_errlist errs;
        memset(&errs, 0, sizeof(errs));
        int bad = gw_recette_criteria_load(args.criteria, &crit, &errs) < 0;
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.msgs[i]);
        gw_errlist_clear(&errs);
        if (bad) {
            gw_ev_args_clear(&args);
            return 2;
        }
    }
    gw_ev_conf c;
    gw_ev_journal j;
    json_t *rep = NULL;
    char *body = NULL;
    size_t blen = 0;
    int rc = gw_ev_open("recette", &args, &c, &j);
    if (rc != 0)
        goto out;
    rc = 1;
    rep = gw_recette_analyse(j.recs, j.n, consumer, &crit);
    if (rep == NULL)
        goto out;
    char now[32];
    gw_ev_now(now);
    json_object_set_new(rep, "generated", json_string(now));
    json_object_set_new(rep, "journal", journal_json(&j));
    FILE *o = open_memstream(&body, &blen);
    if (o == NULL)
        goto out;
    if (fmt == 1) {
        json_dumpf(rep, o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        fputc('\n', o);
    } else if (fmt == 2) {
        render_html(o, rep);
    } else {
        render_md(o, rep);
    }
    fclose(o);
    rc = gw_ev_emit(&c, "recette", "evidence.recette", body, blen,
                    fmt == 1 ? GW_EV_SIG_JSON : GW_EV_SIG_HTML);
out:
    free(body);
    json_decref(rep);
    gw_ev_journal_clear(&j);
    gw_ev_conf_clear(&c);
    gw_ev_args_clear(&args);
    return rc;
}
