/*
 * Shared by the evidence commands: configuration, verified journal loading,
 * times, signed documents (evidence.h).
 */
#include "evidence/evidence.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "journal/order.h"
#include "lib/file.h"
#include "token/jose.h"

int gw_ev_conf_load(const char *path, gw_ev_conf *c)
{
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    memset(c, 0, sizeof(*c));
    c->conf = gw_conf_load(path, &errs);
    if (c->conf != NULL)
        c->oauth = gw_oauth_load(c->conf, &errs);
    if (c->oauth != NULL)
        c->access = gw_stage_lists_load(c->conf, &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.msgs[i]);
    int rc = c->access != NULL ? 0 : -1;
    gw_errlist_clear(&errs);
    if (rc < 0)
        gw_ev_conf_clear(c);
    return rc;
}

void gw_ev_conf_clear(gw_ev_conf *c)
{
    gw_stage_lists_free(c->access);
    gw_oauth_free(c->oauth);
    gw_conf_free(c->conf);
    memset(c, 0, sizeof(*c));
}

char *gw_ev_read_file(const char *path, size_t *len)
{
    char *text = NULL;
    /* no cap: a journal file is as large as its rotation lets it grow */
    int e = gw_file_read(path, SIZE_MAX - 1, 0, &text, len);
    if (e != 0) {
        errno = e;
        return NULL;
    }
    return text;
}

const char *gw_ev_str(const json_t *o, const char *key)
{
    const char *dot = strchr(key, '.');
    if (dot != NULL) {
        char head[64];
        size_t hl = (size_t)(dot - key);
        if (hl >= sizeof(head))
            return NULL;
        memcpy(head, key, hl);
        head[hl] = '\0';
        return gw_ev_str(json_object_get(o, head), dot + 1);
    }
    return json_string_value(json_object_get(o, key));
}

long long gw_ev_int(const json_t *o, const char *key)
{
    const char *dot = strchr(key, '.');
    if (dot != NULL) {
        char head[64];
        size_t hl = (size_t)(dot - key);
        if (hl >= sizeof(head))
            return -1;
        memcpy(head, key, hl);
        head[hl] = '\0';
        return gw_ev_int(json_object_get(o, head), dot + 1);
    }
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int gw_ev_parse_time(const char *s, int64_t *ms)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0;
    size_t len = strlen(s);
    if (len < 10 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
        digits(s + 8, 2, &d))
        return -1;
    const char *p = s + 10;
    if (*p == 'T') {
        if (digits(p + 1, 2, &h) || p[3] != ':' || digits(p + 4, 2, &mi))
            return -1;
        p += 6;
        if (*p == ':') {
            if (digits(p + 1, 2, &sec))
                return -1;
            p += 3;
            if (*p == '.') {
                int nd = 0, scale = 100;
                for (p++; *p >= '0' && *p <= '9'; p++, nd++) {
                    if (nd < 3)
                        frac += (*p - '0') * scale;
                    scale /= 10;
                }
                if (nd == 0)
                    return -1;
            }
        }
        if (*p != 'Z' || p[1] != '\0')
            return -1;
    } else if (*p != '\0') {
        return -1;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    struct tm back;
    if (gmtime_r(&t, &back) == NULL || back.tm_mday != d)
        return -1; /* 2026-02-31 */
    *ms = (int64_t)t * 1000 + frac;
    return 0;
}

void gw_ev_format_time(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    int frac = (int)(ms - (int64_t)t * 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    /* years 0..9999: the journal's range; the cast keeps the compiler's
     * width analysis within 32 bytes */
    snprintf(out, 32, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ", (unsigned)(tm.tm_year + 1900) % 10000u,
             (unsigned)(tm.tm_mon + 1) % 100u, (unsigned)tm.tm_mday % 100u,
             (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u,
             (unsigned)frac % 1000u);
}

void gw_ev_rec_clear(gw_ev_rec *r)
{
    free(r->line);
    json_decref(r->obj);
    memset(r, 0, sizeof(*r));
}

int gw_ev_rec_parse(const char *line, size_t len, gw_ev_rec *r)
{
    memset(r, 0, sizeof(*r));
    gw_journal_link l;
    if (gw_journal_parse_link(line, len, &l) < 0)
        return -1;
    r->obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
    r->line = malloc(len + 1);
    if (r->obj == NULL || !json_is_object(r->obj) || r->line == NULL) {
        gw_ev_rec_clear(r);
        return -1;
    }
    memcpy(r->line, line, len);
    r->line[len] = '\0';
    r->len = len;
    r->seq = l.seq;
    memcpy(r->hash, l.hash, sizeof(r->hash));
    memcpy(r->prev, l.prev, sizeof(r->prev));
    r->type = gw_ev_str(r->obj, "type");
    const char *ts = gw_ev_str(r->obj, "ts");
    if (ts == NULL || gw_ev_parse_time(ts, &r->ts_ms) < 0)
        r->ts_ms = -1;
    return 0;
}

void gw_ev_journal_clear(gw_ev_journal *j)
{
    for (size_t i = 0; i < j->n; i++)
        gw_ev_rec_clear(&j->recs[i]);
    free(j->recs);
    gw_journal_free_files(j->files, j->nfiles);
    memset(j, 0, sizeof(*j));
}

static char *dupmsg(const char *fmt, const char *a)
{
    size_t n = strlen(fmt) + (a ? strlen(a) : 0) + 1;
    char *m = malloc(n);
    if (m != NULL)
        snprintf(m, n, fmt, a ? a : "");
    return m;
}

/* Read <j->files> again and keep every chained line, checking that they form
 * the chain the verifier accepted: each line's hash, seq + 1 and prev, and
 * the same head. */
static int load_lines(gw_ev_journal *j, char **err)
{
    size_t cap = 0;
    for (size_t f = 0; f < j->nfiles; f++) {
        size_t len = 0;
        char *text = gw_ev_read_file(j->files[f], &len);
        if (text == NULL) {
            *err = dupmsg("%s: cannot read it again after its verification", j->files[f]);
            return 2;
        }
        size_t pos = 0;
        while (pos < len) {
            char *nl = memchr(text + pos, '\n', len - pos);
            size_t end = nl ? (size_t)(nl - text) : len;
            gw_journal_link l;
            if (gw_journal_parse_link(text + pos, end - pos, &l) == 0) {
                if (j->n == cap) {
                    size_t nc = cap ? cap * 2 : 1024;
                    gw_ev_rec *nr = realloc(j->recs, nc * sizeof(*nr));
                    if (nr == NULL) {
                        free(text);
                        *err = dupmsg("out of memory%s", NULL);
                        return 2;
                    }
                    j->recs = nr;
                    cap = nc;
                }
                gw_ev_rec *r = &j->recs[j->n];
                const gw_ev_rec *p = j->n ? &j->recs[j->n - 1] : NULL;
                if (!gw_journal_link_ok(text + pos, &l) ||
                    (p != NULL && (l.seq != p->seq + 1 || strcmp(l.prev, p->hash) != 0)) ||
                    gw_ev_rec_parse(text + pos, end - pos, r) < 0) {
                    free(text);
                    *err = dupmsg("%s: the file changed after its verification", j->files[f]);
                    return 1;
                }
                r->file = f;
                j->n++;
                /* A live journal grows while it is read: what follows the
                 * verified head was not verified, so it is not kept. */
                if (j->n == j->res.records && r->seq == j->res.last_seq &&
                    strcmp(r->hash, j->res.last_hash) == 0) {
                    free(text);
                    goto verified;
                }
            }
            pos = end + 1;
        }
        free(text);
    }
    if (j->n != j->res.records ||
        (j->n > 0 && (j->recs[j->n - 1].seq != j->res.last_seq ||
                      strcmp(j->recs[j->n - 1].hash, j->res.last_hash) != 0))) {
        *err = dupmsg("the journal changed after its verification%s", NULL);
        return 1;
    }
verified:
    j->last_checkpoint = SIZE_MAX;
    for (size_t i = 0; i < j->n; i++)
        if (j->recs[i].type != NULL && strcmp(j->recs[i].type, "checkpoint") == 0)
            j->last_checkpoint = i;
    return 0;
}

int gw_ev_journal_load(const char *const *paths, size_t npaths, const gw_keyset *keys, FILE *report,
                       gw_ev_journal *j, char **err)
{
    memset(j, 0, sizeof(*j));
    j->last_checkpoint = SIZE_MAX;
    *err = NULL;
    if (npaths == 1) {
        char *lerr = NULL;
        if (gw_journal_list_files(paths[0], &j->files, &j->nfiles, &lerr) < 0) {
            *err = lerr;
            return 2;
        }
    } else {
        j->files = calloc(npaths, sizeof(char *));
        if (j->files == NULL)
            return 2;
        for (size_t i = 0; i < npaths; i++) {
            j->files[i] = strdup(paths[i]);
            if (j->files[i] == NULL) {
                j->nfiles = i;
                return 2;
            }
        }
        j->nfiles = npaths;
        gw_journal_order_by_first_seq((const char **)j->files, npaths);
    }
    gw_journal_verify_opts vo = {.keys = keys};
    int rc = gw_journal_verify_ex((const char *const *)j->files, j->nfiles, &vo, report, &j->res);
    if (rc != 0 && rc != 3) {
        *err = dupmsg("the journal does not verify (%s): nothing is computed from it",
                      gw_jv_kind_name(j->res.kind));
        return rc == 2 ? 2 : 1;
    }
    j->verify_rc = rc;
    if (keys == NULL || j->res.checkpoints_verified != j->res.checkpoints) {
        *err = dupmsg("checkpoint signatures not verified%s", NULL);
        return 1;
    }
    return load_lines(j, err);
}

/* ---- signed documents ---- */

#define SIG_HTML_OPEN "<!-- opale-gateway signature: "
#define SIG_HTML_CLOSE " -->"
#define SIG_JSON_OPEN "{\"signature\":\""
#define SIG_JSON_CLOSE "\"}"

char *gw_ev_sign(const gw_jwk *key, const char *purpose, const char *body, size_t len,
                 gw_ev_sig_style style, size_t *out_len)
{
    char hex[65], ts[32];
    gw_journal_sha256_hex(body, len, hex);
    gw_ev_now(ts);
    json_t *p = json_pack("{s:s,s:s,s:s}", "purpose", purpose, "sha256", hex, "ts", ts);
    char *jws = p ? gw_jws_sign(key, NULL, p) : NULL;
    json_decref(p);
    if (jws == NULL)
        return NULL;
    const char *open = style == GW_EV_SIG_JSON ? SIG_JSON_OPEN : SIG_HTML_OPEN;
    const char *close = style == GW_EV_SIG_JSON ? SIG_JSON_CLOSE : SIG_HTML_CLOSE;
    size_t n = len + strlen(open) + strlen(jws) + strlen(close) + 1;
    char *out = malloc(n + 1);
    if (out != NULL) {
        memcpy(out, body, len);
        snprintf(out + len, n + 1 - len, "%s%s%s\n", open, jws, close);
        *out_len = n;
    }
    free(jws);
    return out;
}

const char *gw_ev_verify_signed(const char *doc, size_t len, const gw_keyset *keys, char **purpose,
                                char **kid, char **ts, size_t *body_len)
{
    if (purpose)
        *purpose = NULL;
    if (kid)
        *kid = NULL;
    if (ts)
        *ts = NULL;
    if (len < 2 || doc[len - 1] != '\n')
        return "the document does not end with a signature line";
    size_t start = len - 1;
    while (start > 0 && doc[start - 1] != '\n')
        start--;
    const char *line = doc + start;
    size_t ll = len - 1 - start;
    const char *open, *close;
    if (ll > strlen(SIG_HTML_OPEN) && memcmp(line, SIG_HTML_OPEN, strlen(SIG_HTML_OPEN)) == 0) {
        open = SIG_HTML_OPEN;
        close = SIG_HTML_CLOSE;
    } else if (ll > strlen(SIG_JSON_OPEN) &&
               memcmp(line, SIG_JSON_OPEN, strlen(SIG_JSON_OPEN)) == 0) {
        open = SIG_JSON_OPEN;
        close = SIG_JSON_CLOSE;
    } else {
        return "the last line is not a signature line";
    }
    size_t ol = strlen(open), cl = strlen(close);
    if (ll < ol + cl || memcmp(line + ll - cl, close, cl) != 0)
        return "the last line is not a signature line";
    const char *jws = line + ol;
    size_t jl = ll - ol - cl;
    for (size_t i = 0; i < jl; i++) {
        char c = jws[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return "the signature is not a compact JWS";
    }
    static const gw_alg algs[] = {GW_ALG_ES256, GW_ALG_RS256, GW_ALG_PS256, GW_ALG_EDDSA};
    gw_jws_rules rules = {.algs = algs, .nalgs = 4, .max_len = 16384};
    const gw_keyset *sets[1] = {keys};
    gw_jws v;
    memset(&v, 0, sizeof(v));
    const char *why = gw_jws_verify(jws, jl, sets, 1, &rules, &v);
    if (why != NULL)
        return why;
    const char *p = json_string_value(json_object_get(v.payload, "purpose"));
    const char *h = json_string_value(json_object_get(v.payload, "sha256"));
    const char *t = json_string_value(json_object_get(v.payload, "ts"));
    char hex[65];
    gw_journal_sha256_hex(doc, start, hex);
    const char *res = NULL;
    if (p == NULL || h == NULL || t == NULL || strncmp(p, "evidence.", 9) != 0)
        res = "the signed payload is not an evidence document's";
    else if (strlen(h) != 64 || CRYPTO_memcmp(h, hex, 64) != 0)
        res = "the document's bytes are not the signed ones";
    if (res == NULL) {
        if (purpose)
            *purpose = strdup(p);
        if (kid)
            *kid = strdup(v.key->kid);
        if (ts)
            *ts = strdup(t);
        if (body_len)
            *body_len = start;
    }
    gw_jws_clear(&v);
    return res;
}

void gw_ev_html_escape(FILE *b, const char *s)
{
    for (; s != NULL && *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", b);
            break;
        case '<':
            fputs("&lt;", b);
            break;
        case '>':
            fputs("&gt;", b);
            break;
        case '"':
            fputs("&quot;", b);
            break;
        case '\'':
            fputs("&#39;", b);
            break;
        default:
            fputc(*s, b);
        }
    }
}

int gw_ev_parse_args(int argc, char **argv, int first, const char *allowed, int positional,
                     gw_ev_args *a)
{
    static const char *names[] = {"-c",      "--criteria", "--format", "--consumer",
                                  "--siren", "--from",     "--to"};
    const char *from_s = NULL, *to_s = NULL;
    const char **slots[] = {&a->conf,  &a->criteria, &a->format, &a->consumer,
                            &a->siren, &from_s,      &to_s};
    memset(a, 0, sizeof(*a));
    a->from = a->to = -1;
    a->files = calloc((size_t)argc + 1, sizeof(char *));
    if (a->files == NULL)
        return -1;
    for (int i = first; i < argc; i++) {
        int opt = -1;
        for (int k = 0; k < 7; k++)
            if (strcmp(argv[i], names[k]) == 0)
                opt = k;
        if (opt >= 0) {
            const char *p = strstr(allowed, names[opt]);
            size_t nl = strlen(names[opt]);
            if (p == NULL || (p[nl] != ' ' && p[nl] != '\0') || (p != allowed && p[-1] != ' ') ||
                i + 1 >= argc)
                return -1;
            *slots[opt] = argv[++i];
        } else if (positional && a->positional == NULL) {
            a->positional = argv[i];
        } else {
            a->files[a->nfiles++] = argv[i];
        }
    }
    if ((from_s && gw_ev_parse_time(from_s, &a->from) < 0) ||
        (to_s && gw_ev_parse_time(to_s, &a->to) < 0)) {
        fprintf(stderr,
                "--from/--to: a UTC date (YYYY-MM-DD) or time (YYYY-MM-DDTHH:MM:SSZ) expected\n");
        return -1;
    }
    return 0;
}

void gw_ev_args_clear(gw_ev_args *a)
{
    free(a->files);
    memset(a, 0, sizeof(*a));
}

int gw_ev_open(const char *cmd, const gw_ev_args *a, gw_ev_conf *c, gw_ev_journal *j)
{
    memset(j, 0, sizeof(*j));
    if (gw_ev_conf_load(a->conf, c) < 0)
        return 2;
    char *err = NULL;
    int rc = gw_ev_journal_load(a->files, a->nfiles, &c->oauth->own, stderr, j, &err);
    if (rc != 0)
        fprintf(stderr, "opale-gateway: %s: %s\n", cmd, err ? err : "cannot load the journal");
    free(err);
    return rc;
}

int gw_ev_emit(const gw_ev_conf *c, const char *cmd, const char *purpose, const char *body,
               size_t len, gw_ev_sig_style style)
{
    size_t slen = 0;
    char *doc = gw_ev_sign(c->oauth->active, purpose, body, len, style, &slen);
    if (doc == NULL) {
        fprintf(stderr, "opale-gateway: %s: cannot sign the output\n", cmd);
        return 1;
    }
    size_t w = fwrite(doc, 1, slen, stdout);
    free(doc);
    if (w != slen || fflush(stdout) != 0) {
        fprintf(stderr, "opale-gateway: %s: cannot write the output: %s\n", cmd, strerror(errno));
        return 1;
    }
    return 0;
}

void gw_ev_now(char out[32])
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    gw_ev_format_time((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000, out);
}

/* The "-c FILE DOCUMENT" arguments of the single-file commands, then the
 * configuration and the document read. Returns 0, or the exit status 2. */
int gw_ev_open_document(int argc, char **argv, int first, const char *usage, gw_ev_conf *c,
                        const char **file, char **doc, size_t *len)
{
    gw_ev_args a;
    int ok = gw_ev_parse_args(argc, argv, first, "-c", 1, &a) == 0 && a.conf != NULL &&
             a.positional != NULL && a.nfiles == 0;
    *file = a.positional;
    *doc = NULL;
    memset(c, 0, sizeof(*c));
    const char *conf = a.conf;
    gw_ev_args_clear(&a);
    if (!ok) {
        fprintf(stderr, "usage: %s\n", usage);
        return 2;
    }
    if (gw_ev_conf_load(conf, c) < 0)
        return 2;
    *doc = gw_ev_read_file(*file, len);
    if (*doc == NULL) {
        fprintf(stderr, "%s: cannot read: %s\n", *file, strerror(errno));
        return 2;
    }
    return 0;
}

/* --verify-report -c FILE REPORT */
int gw_evidence_verify_report_main(int argc, char **argv, int first)
{
    gw_ev_conf c;
    const char *file;
    char *doc = NULL;
    size_t len = 0;
    int rc = gw_ev_open_document(argc, argv, first, "opale-gateway --verify-report -c FILE REPORT",
                                 &c, &file, &doc, &len);
    if (rc == 0) {
        char *purpose = NULL, *kid = NULL, *ts = NULL;
        const char *why = gw_ev_verify_signed(doc, len, &c.oauth->own, &purpose, &kid, &ts, NULL);
        if (why != NULL)
            printf("FAIL: %s: %s\n", file, why);
        else
            printf("OK: %s: %s signed by kid %s at %s\n", file, purpose, kid, ts);
        rc = why != NULL;
        free(purpose);
        free(kid);
        free(ts);
    }
    free(doc);
    gw_ev_conf_clear(&c);
    return rc;
}
