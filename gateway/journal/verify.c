/*
 * Hash chain primitives and the journal verifier (opale-gateway
 * --verify-journal). See verify.h for the API and docs/journal.md for the
 * chain, the checks and the exact report lines.
 *
 * The verifier maps every file (or reads it when it cannot be mapped) and
 * walks the lines in order. A line that does not end in the chain members is
 * a torn or foreign line: reported as a warning and skipped, since the chain
 * itself tells whether a record is missing. Every other line is a record; the
 * walk stops at the first record that does not continue the chain and
 * classifies the problem, looking ahead a bounded number of records when the
 * kind depends on what follows (inserted, reordered).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* GNU strerror_r */
#endif
#include "journal/verify.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "lib/util.h"

/* How far the classification of a problem looks ahead, in records. */
#define LOOKAHEAD 4096
/* Recent records remembered to recognise a copied (replayed) line. */
#define RING 1024
/* Torn-line warnings printed in full; the rest are counted. */
#define MAX_WARN_LINES 20

/* ------------------------------------------------------------------------ */
/* Chain primitives                                                         */
/* ------------------------------------------------------------------------ */

static int is_hex64(const char *s)
{
    for (int i = 0; i < 64; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
    }
    return 1;
}

int gw_journal_parse_link(const char *line, size_t len, gw_journal_link *out)
{
    static const char t_end[] = "\"}", t_hash[] = "\",\"hash\":\"", t_prev[] = ",\"prev\":\"",
                      t_seq[] = ",\"seq\":";
    size_t n = len;

    if (line == NULL)
        return -1;
    if (n > 0 && line[n - 1] == '\n')
        n--;
    /* {  ,"seq":  1  ,"prev":"  64  ","hash":"  64  "} */
    if (n < 1 + 7 + 1 + 9 + 64 + 10 + 64 + 2 || line[0] != '{')
        return -1;
    if (memcmp(line + n - 2, t_end, 2) != 0 || !is_hex64(line + n - 66) ||
        memcmp(line + n - 76, t_hash, 10) != 0 || !is_hex64(line + n - 140) ||
        memcmp(line + n - 149, t_prev, 9) != 0)
        return -1;
    size_t de = n - 149, ds = de;
    while (ds > 0 && line[ds - 1] >= '0' && line[ds - 1] <= '9' && de - ds < 21)
        ds--;
    size_t nd = de - ds;
    if (nd == 0 || nd > 20 || line[ds] == '0' || ds < 7 + 1 || memcmp(line + ds - 7, t_seq, 7) != 0)
        return -1;
    uint64_t seq = 0;
    for (size_t i = ds; i < de; i++) {
        unsigned d = (unsigned)(line[i] - '0');
        if (seq > (UINT64_MAX - d) / 10)
            return -1;
        seq = seq * 10 + d;
    }
    if (out != NULL) {
        out->seq = seq;
        memcpy(out->prev, line + n - 140, 64);
        out->prev[64] = '\0';
        memcpy(out->hash, line + n - 66, 64);
        out->hash[64] = '\0';
        out->canon_len = n - 75;
    }
    return 0;
}

void gw_journal_sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
        memset(out, 'x', 64); /* never equal to a hex hash */
        out[64] = '\0';
        return;
    }
    gw_hex(md, 32, out);
}

int gw_journal_link_ok(const char *line, const gw_journal_link *l)
{
    char h[65];
    gw_journal_sha256_hex(line, l->canon_len, h);
    return memcmp(h, l->hash, 64) == 0;
}

/* ------------------------------------------------------------------------ */
/* Journal files                                                            */
/* ------------------------------------------------------------------------ */

static int digits(const char *s, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        *v = *v * 10 + (s[i] - '0');
    }
    return 1;
}

int gw_journal_rotated_name(const char *name, size_t *base_len, time_t *stamp, unsigned *n)
{
    const char *dot = strrchr(name, '.');
    int Y, M, D, h, m, s;

    if (dot == NULL || dot == name)
        return 0;
    const char *p = dot + 1;
    if (strlen(p) < 16 || p[8] != 'T' || p[15] != 'Z' || !digits(p, 4, &Y) ||
        !digits(p + 4, 2, &M) || !digits(p + 6, 2, &D) || !digits(p + 9, 2, &h) ||
        !digits(p + 11, 2, &m) || !digits(p + 13, 2, &s))
        return 0;
    unsigned num = 0;
    const char *q = p + 16;
    if (*q == '-') {
        q++;
        if (*q < '1' || *q > '9')
            return 0;
        int nd = 0;
        for (; *q >= '0' && *q <= '9'; q++, nd++) {
            if (nd == 9)
                return 0;
            num = num * 10 + (unsigned)(*q - '0');
        }
    }
    if (*q != '\0')
        return 0;
    if (Y < 1970 || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || s > 59)
        return 0;
    struct tm tm = {
        .tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = m, .tm_sec = s};
    time_t t = timegm(&tm);
    struct tm back;
    if (t == (time_t)-1 || gmtime_r(&t, &back) == NULL || back.tm_mday != D || back.tm_mon != M - 1)
        return 0;
    if (base_len)
        *base_len = (size_t)(dot - name);
    if (stamp)
        *stamp = t;
    if (n)
        *n = num;
    return 1;
}

static int cmp_files(const void *pa, const void *pb)
{
    const char *a = *(const char *const *)pa, *b = *(const char *const *)pb;
    size_t la, lb;
    unsigned na = 0, nb = 0;
    int ra = gw_journal_rotated_name(a, &la, NULL, &na);
    int rb = gw_journal_rotated_name(b, &lb, NULL, &nb);
    if (!ra)
        la = strlen(a);
    if (!rb)
        lb = strlen(b);
    int c = memcmp(a, b, la < lb ? la : lb);
    if (c != 0)
        return c;
    if (la != lb)
        return la < lb ? -1 : 1;
    if (ra != rb)
        return ra ? -1 : 1;
    if (!ra)
        return 0;
    c = memcmp(a + la + 1, b + lb + 1, 16);
    if (c != 0)
        return c;
    return na < nb ? -1 : na > nb;
}

void gw_journal_sort_files(const char **files, size_t n)
{
    if (files != NULL && n > 1)
        qsort(files, n, sizeof(*files), cmp_files);
}

void gw_journal_free_files(char **files, size_t n)
{
    if (files == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(files[i]);
    free(files);
}

static void set_err(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(char **err, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL)
        return;
    va_start(ap, fmt);
    if (vasprintf(err, fmt, ap) < 0)
        *err = NULL;
    va_end(ap);
}

int gw_journal_list_files(const char *path, char ***files, size_t *n, char **err)
{
    char ebuf[128];
    char **v = NULL;
    size_t nv = 0, cap = 0;
    int oom = 0;

    if (err)
        *err = NULL;
    *files = NULL;
    *n = 0;
    const char *slash = strrchr(path, '/');
    char *dir = slash == NULL   ? strdup(".")
                : slash == path ? strdup("/")
                                : strndup(path, (size_t)(slash - path));
    const char *base = slash == NULL ? path : slash + 1;
    size_t bl = strlen(base);
    if (dir == NULL || bl == 0) {
        set_err(err, "%s: %s", path, dir == NULL ? "out of memory" : "not a file name");
        free(dir);
        return -1;
    }
    DIR *d = opendir(dir);
    if (d == NULL) {
        set_err(err, "%s: cannot read the directory: %s", path,
                strerror_r(errno, ebuf, sizeof(ebuf)));
        free(dir);
        return -1;
    }
    struct dirent *de;
    size_t l;
    while ((de = readdir(d)) != NULL && !oom) {
        if (strncmp(de->d_name, base, bl) != 0 || de->d_name[bl] != '.' ||
            !gw_journal_rotated_name(de->d_name, &l, NULL, NULL) || l != bl)
            continue;
        if (nv == cap) {
            char **nvv = realloc(v, (cap = cap * 2 + 8) * sizeof(*v));
            if (nvv == NULL) {
                oom = 1;
                break;
            }
            v = nvv;
        }
        if (asprintf(&v[nv], "%.*s%s", (int)(base - path), path, de->d_name) < 0)
            oom = 1;
        else
            nv++;
    }
    closedir(d);
    free(dir);
    if (!oom && access(path, F_OK) == 0) {
        char **nvv = realloc(v, (nv + 1) * sizeof(*v));
        if (nvv == NULL || (nvv[nv] = strdup(path)) == NULL)
            oom = 1;
        else
            nv++;
        if (nvv != NULL)
            v = nvv;
    }
    if (oom || nv == 0) {
        set_err(err, "%s: %s", path, oom ? "out of memory" : "no journal file");
        gw_journal_free_files(v, nv);
        return -1;
    }
    gw_journal_sort_files((const char **)v, nv);
    *files = v;
    *n = nv;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Verifier                                                                 */
/* ------------------------------------------------------------------------ */

const char *gw_jv_kind_name(gw_jv_kind k)
{
    switch (k) {
    case GW_JV_OK:
        return "ok";
    case GW_JV_MODIFIED:
        return "modified";
    case GW_JV_DELETED:
        return "deleted";
    case GW_JV_INSERTED:
        return "inserted";
    case GW_JV_REORDERED:
        return "reordered";
    case GW_JV_MISSING:
        return "missing";
    case GW_JV_TRUNCATED:
        return "truncated";
    case GW_JV_CHECKPOINT:
        return "checkpoint";
    case GW_JV_START:
        return "start";
    case GW_JV_MALFORMED:
        return "malformed";
    case GW_JV_IO:
        return "io";
    }
    return "?";
}

struct vfile {
    const char *name;
    char *data;
    size_t size;
    int mapped;
};

/* Where the next line starts. */
struct pos {
    size_t f, off, line;
};

struct rec {
    size_t f, line;
    const char *p;
    size_t len; /* without the '\n' */
    int nl;     /* the line ended in '\n' */
    int chained;
    int hash_ok;
    gw_journal_link l;
};

struct retention {
    uint64_t last_seq;
    char last_hash[65];
    size_t f, line;
};

struct ring_ent {
    uint64_t seq;
    char hash[65];
    size_t f, line;
};

struct vctx {
    struct vfile *f;
    size_t nf;
    const gw_journal_verify_opts *o;
    FILE *out;
    gw_journal_verify_result *res;
    struct retention *ret;
    size_t nret;
    struct ring_ent *ring;
    int failed;
};

static void say(struct vctx *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct vctx *v, const char *fmt, ...)
{
    va_list ap;
    if (v->out == NULL)
        return;
    va_start(ap, fmt);
    vfprintf(v->out, fmt, ap);
    va_end(ap);
    fputc('\n', v->out);
}

/* Report the first problem: "FILE:LINE: KIND: detail". */
static void problem(struct vctx *v, gw_jv_kind k, size_t f, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void problem(struct vctx *v, gw_jv_kind k, size_t f, size_t line, const char *fmt, ...)
{
    va_list ap;
    if (v->failed)
        return;
    v->failed = 1;
    v->res->kind = k;
    v->res->file = f;
    v->res->line = line;
    if (v->out == NULL)
        return;
    if (line > 0)
        fprintf(v->out, "%s:%zu: %s: ", v->f[f].name, line, gw_jv_kind_name(k));
    else
        fprintf(v->out, "%s: %s: ", v->f[f].name, gw_jv_kind_name(k));
    va_start(ap, fmt);
    vfprintf(v->out, fmt, ap);
    va_end(ap);
    fputc('\n', v->out);
}

static int next_line(const struct vctx *v, struct pos *ps, struct rec *r)
{
    while (ps->f < v->nf && ps->off >= v->f[ps->f].size) {
        ps->f++;
        ps->off = 0;
        ps->line = 1;
    }
    if (ps->f >= v->nf)
        return 0;
    const struct vfile *f = &v->f[ps->f];
    const char *s = f->data + ps->off;
    size_t left = f->size - ps->off;
    const char *e = memchr(s, '\n', left);
    r->f = ps->f;
    r->line = ps->line;
    r->p = s;
    r->len = e != NULL ? (size_t)(e - s) : left;
    r->nl = e != NULL;
    ps->off += r->len + (e != NULL);
    ps->line++;
    r->chained = gw_journal_parse_link(r->p, r->len, &r->l) == 0;
    r->hash_ok = r->chained && gw_journal_link_ok(r->p, &r->l);
    return 1;
}

static int next_rec(const struct vctx *v, struct pos *ps, struct rec *r)
{
    while (next_line(v, ps, r)) {
        if (r->chained)
            return 1;
    }
    return 0;
}

enum find_mode {
    FIND_LINK,  /* seq == a, prev == h, hash verifies: continues the chain */
    FIND_HASH,  /* hash == h, hash verifies */
    FIND_RANGE, /* a <= seq < b */
};

/* The first record within LOOKAHEAD records from <ps> that matches. */
static int find(const struct vctx *v, struct pos ps, enum find_mode m, uint64_t a, uint64_t b,
                const char *h, struct rec *out)
{
    for (int i = 0; i < LOOKAHEAD && next_rec(v, &ps, out); i++) {
        const gw_journal_link *l = &out->l;
        int hit = m == FIND_LINK   ? out->hash_ok && l->seq == a && strcmp(l->prev, h) == 0
                  : m == FIND_HASH ? out->hash_ok && strcmp(l->hash, h) == 0
                                   : l->seq >= a && l->seq < b;
        if (hit)
            return 1;
    }
    return 0;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s != NULL ? s + 1 : p;
}

static json_t *parse_rec(const struct rec *r)
{
    json_error_t e;
    json_t *o = json_loadb(r->p, r->len, JSON_REJECT_DUPLICATES, &e);
    if (o != NULL && !json_is_object(o)) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

static const char *jstr(const json_t *o, const char *k)
{
    const json_t *s = json_object_get(o, k);
    return json_is_string(s) ? json_string_value(s) : NULL;
}

static int jseq(const json_t *o, const char *k, uint64_t *v)
{
    const json_t *n = json_object_get(o, k);
    if (!json_is_integer(n) || json_integer_value(n) < 0)
        return 0;
    *v = (uint64_t)json_integer_value(n);
    return 1;
}

static void range(char *buf, size_t n, uint64_t a, uint64_t b)
{
    if (a == b)
        snprintf(buf, n, "record seq %" PRIu64 " is", a);
    else
        snprintf(buf, n, "records seq %" PRIu64 "..%" PRIu64 " are", a, b);
}

/* <r> does not continue the chain after <last>: say why, as precisely as the
 * records around allow. <after> is the position after <r>. */
static void classify(struct vctx *v, const struct rec *last, const struct rec *r, struct pos after)
{
    const char *fn = v->f[r->f].name;
    uint64_t e = last->l.seq + 1, s = r->l.seq;
    int links = strcmp(r->l.prev, last->l.hash) == 0;
    struct rec n, m;
    char rb[96];

    const struct ring_ent *re = &v->ring[s % RING];
    int copy = r->hash_ok && s < e && re->seq == s && strcmp(re->hash, r->l.hash) == 0;

    if (r->hash_ok && links && s == e)
        return; /* continues the chain */
    if (copy) {
        problem(v, GW_JV_INSERTED, r->f, r->line,
                "this line is a copy of record seq %" PRIu64 " (%s:%zu)", s, v->f[re->f].name,
                re->line);
        return;
    }
    if (r->f != last->f && s < e && r->hash_ok) {
        problem(v, GW_JV_REORDERED, r->f, r->line,
                "this file starts at seq %" PRIu64 ", after seq %" PRIu64
                " (%s:%zu): files not in chain order, or a new chain",
                s, last->l.seq, v->f[last->f].name, last->line);
        return;
    }
    /* Does a later record continue the chain from <last>? Then <r> (and what
     * follows it up to that record) is out of place. */
    if (find(v, after, FIND_LINK, e, 0, last->l.hash, &n)) {
        if (r->hash_ok && s > e && find(v, after, FIND_HASH, 0, 0, r->l.prev, &m))
            problem(v, GW_JV_REORDERED, r->f, r->line,
                    "record seq %" PRIu64 " comes before seq %" PRIu64 " (at %s:%zu)", s, e,
                    v->f[n.f].name, n.line);
        else
            problem(v, GW_JV_INSERTED, r->f, r->line,
                    "this line (seq %" PRIu64 ") is not part of the chain: seq %" PRIu64
                    " at %s:%zu continues it",
                    s, e, v->f[n.f].name, n.line);
        return;
    }
    if (!r->hash_ok) {
        problem(v, GW_JV_MODIFIED, r->f, r->line, "record seq %" PRIu64 " does not match its hash",
                s);
    } else if (s == e) {
        problem(v, GW_JV_MODIFIED, last->f, last->line,
                "record seq %" PRIu64 " was rewritten with its hash recomputed: the next record "
                "(%s:%zu) links to another hash",
                last->l.seq, fn, r->line);
    } else if (links) {
        problem(v, GW_JV_MODIFIED, r->f, r->line,
                "record seq %" PRIu64 " follows seq %" PRIu64
                ": its seq was rewritten and its hash recomputed",
                s, last->l.seq);
    } else if (s > e) {
        if (find(v, after, FIND_RANGE, e, s, NULL, &m)) {
            problem(v, GW_JV_REORDERED, r->f, r->line,
                    "record seq %" PRIu64 " comes before seq %" PRIu64 " (at %s:%zu)", s, m.l.seq,
                    v->f[m.f].name, m.line);
            return;
        }
        range(rb, sizeof(rb), e, s - 1);
        if (r->f == last->f) {
            problem(v, GW_JV_DELETED, r->f, r->line, "%s missing before this line", rb);
            return;
        }
        const char *from = NULL, *lastname = base_name(v->f[last->f].name);
        json_t *o = parse_rec(r);
        const char *t = o != NULL ? jstr(o, "type") : NULL;
        if (t != NULL && strcmp(t, "rotate") == 0)
            from = jstr(o, "from");
        if (from != NULL && strcmp(from, lastname) != 0)
            problem(v, GW_JV_MISSING, r->f, r->line, "%s missing after %s:%zu: file %s is missing",
                    rb, v->f[last->f].name, last->line, from);
        else
            problem(v, GW_JV_MISSING, r->f, r->line,
                    "%s missing after %s:%zu (truncated tail of %s, deleted head of %s, or a "
                    "missing file)",
                    rb, v->f[last->f].name, last->line, lastname, base_name(fn));
        json_decref(o);
    } else {
        /* s < e: this position is already taken. */
        struct pos p2 = after;
        if (s == last->l.seq && strcmp(r->l.prev, last->l.prev) == 0) {
            /* Two records for one position: the one the next links to is genuine. */
            if (next_rec(v, &p2, &n) && strcmp(n.l.prev, r->l.hash) == 0)
                problem(v, GW_JV_INSERTED, last->f, last->line,
                        "this line (seq %" PRIu64 ") is not part of the chain: %s:%zu has "
                        "the same seq and the next record links to it",
                        last->l.seq, fn, r->line);
            else
                problem(v, GW_JV_INSERTED, r->f, r->line,
                        "this line (seq %" PRIu64 ") is not part of the chain: seq %" PRIu64
                        " is at %s:%zu",
                        s, s, v->f[last->f].name, last->line);
        } else if (r->hash_ok && s == 1 && strcmp(r->l.prev, GW_JOURNAL_GENESIS) == 0) {
            problem(v, GW_JV_START, r->f, r->line,
                    "a new chain starts here at seq 1 (the records before belong to another "
                    "chain)");
        } else {
            problem(v, GW_JV_REORDERED, r->f, r->line,
                    "record seq %" PRIu64 " comes after seq %" PRIu64 " (%s:%zu)", s, last->l.seq,
                    v->f[last->f].name, last->line);
        }
    }
}

static const gw_alg all_algs[] = {GW_ALG_ES256, GW_ALG_RS256, GW_ALG_PS256, GW_ALG_EDDSA};

gw_jv_kind gw_journal_check_checkpoint(const json_t *o, const gw_journal_link *l,
                                       const gw_keyset *keys, char *why, size_t whylen)
{
    const char *hh = jstr(o, "head_hash"), *kid = jstr(o, "kid"), *sig = jstr(o, "sig"),
               *ts = jstr(o, "ts");
    uint64_t hs;
    if (hh == NULL || kid == NULL || sig == NULL || ts == NULL || !jseq(o, "head_seq", &hs)) {
        snprintf(why, whylen,
                 "checkpoint seq %" PRIu64 ": head_seq, head_hash, kid, sig or ts missing", l->seq);
        return GW_JV_MALFORMED;
    }
    if (hs != l->seq - 1 || strcmp(hh, l->prev) != 0) {
        snprintf(why, whylen, "checkpoint seq %" PRIu64 ": its head is not the record before it",
                 l->seq);
        return GW_JV_CHECKPOINT;
    }
    if (keys == NULL)
        return GW_JV_OK;
    const gw_keyset *sets[1] = {keys};
    /* checkpoints written before the signer normalised ES256 to low-S stay
     * verifiable (retention: years); malleability does not matter here, the
     * chain carries the integrity */
    gw_jws_rules rules = {.algs = all_algs, .nalgs = 4, .allow_high_s = 1};
    gw_jws jws;
    const char *bad = gw_jws_verify(sig, strlen(sig), sets, 1, &rules, &jws);
    if (bad != NULL) {
        snprintf(why, whylen, "checkpoint seq %" PRIu64 ": signature does not verify (%s, kid %s)",
                 l->seq, bad, kid);
        return GW_JV_CHECKPOINT;
    }
    const char *pk = jstr(jws.header, "kid"), *pp = jstr(jws.payload, "purpose"),
               *ph = jstr(jws.payload, "head_hash"), *pt = jstr(jws.payload, "ts");
    uint64_t ps;
    int same = pk != NULL && strcmp(pk, kid) == 0 && pp != NULL &&
               strcmp(pp, "journal.checkpoint") == 0 && ph != NULL && strcmp(ph, hh) == 0 &&
               pt != NULL && strcmp(pt, ts) == 0 && jseq(jws.payload, "head_seq", &ps) && ps == hs;
    gw_jws_clear(&jws);
    if (!same) {
        snprintf(why, whylen, "checkpoint seq %" PRIu64 ": the signed head is not the record's",
                 l->seq);
        return GW_JV_CHECKPOINT;
    }
    return GW_JV_OK;
}

/* Checks of a record that continues the chain: JSON, and the special
 * records. Returns 0 or reports a problem and returns -1. */
static int check_record(struct vctx *v, const struct rec *r, int *is_cp)
{
    json_t *o = parse_rec(r);
    uint64_t x;
    int rc = -1;
    const char *t;

    *is_cp = 0;
    if (o == NULL) {
        problem(v, GW_JV_MALFORMED, r->f, r->line,
                "record seq %" PRIu64 ": not one JSON object without duplicate members", r->l.seq);
        return -1;
    }
    if (!jseq(o, "seq", &x) || x != r->l.seq || jstr(o, "prev") == NULL ||
        strcmp(jstr(o, "prev"), r->l.prev) != 0 || jstr(o, "hash") == NULL ||
        strcmp(jstr(o, "hash"), r->l.hash) != 0) {
        problem(v, GW_JV_MALFORMED, r->f, r->line,
                "record seq %" PRIu64 ": chain members do not match the line", r->l.seq);
        goto out;
    }
    t = jstr(o, "type");
    if (t != NULL && strcmp(t, "checkpoint") == 0) {
        char why[200];
        gw_jv_kind k = gw_journal_check_checkpoint(o, &r->l, v->o->keys, why, sizeof(why));
        *is_cp = 1;
        if (k != GW_JV_OK) {
            problem(v, k, r->f, r->line, "%s", why);
            goto out;
        }
        v->res->checkpoints++;
        if (v->o->keys != NULL)
            v->res->checkpoints_verified++;
    } else if (t != NULL && strcmp(t, "retention") == 0) {
        if (jstr(o, "deleted") == NULL) {
            problem(v, GW_JV_MALFORMED, r->f, r->line,
                    "retention record seq %" PRIu64 ": \"deleted\" missing", r->l.seq);
            goto out;
        }
    } else if (t != NULL && strcmp(t, "gap") == 0) {
        /* records the gateway knows it lost, or may have lost: reported,
         * and the exit status says so (3) */
        const char *why = jstr(o, "reason");
        uint64_t n = 0;
        int exact = jseq(o, "lost", &n);
        if (!exact && !jseq(o, "lost_max", &n))
            n = 0;
        v->res->gaps++;
        v->res->gap_records += n;
        say(v, "gap: %s:%zu: seq %" PRIu64 ": %s%" PRIu64 " records lost (%s)", v->f[r->f].name,
            r->line, r->l.seq, exact ? "" : "up to ", n, why ? why : "?");
    } else if (t != NULL && strcmp(t, "summary") == 0) {
        uint64_t n = 0;
        jseq(o, "unwritten", &n);
        v->res->summarised += n;
        say(v,
            "info: %s:%zu: seq %" PRIu64 ": %" PRIu64 " refusals counted, not written one by one",
            v->f[r->f].name, r->line, r->l.seq, n);
    }
    rc = 0;
out:
    json_decref(o);
    return rc;
}

/* Retention records anywhere in the files, read before the walk so that the
 * start of the chain can be judged at its first record. Only records whose
 * hash verifies count; the walk checks their place in the chain later. */
static int prescan_retention(struct vctx *v)
{
    static const char needle[] = "\"type\":\"retention\"";
    size_t cap = 0;
    for (size_t f = 0; f < v->nf; f++) {
        const char *d = v->f[f].data;
        size_t size = v->f[f].size, off = 0, line = 1;
        while (off < size) {
            const char *e = memchr(d + off, '\n', size - off);
            size_t len = e != NULL ? (size_t)(e - (d + off)) : size - off;
            gw_journal_link l;
            if (memmem(d + off, len, needle, sizeof(needle) - 1) != NULL &&
                gw_journal_parse_link(d + off, len, &l) == 0 && gw_journal_link_ok(d + off, &l)) {
                struct rec r = {.p = d + off, .len = len};
                json_t *o = parse_rec(&r);
                const char *t = o ? jstr(o, "type") : NULL, *h = o ? jstr(o, "last_hash") : NULL;
                uint64_t ls;
                if (t != NULL && strcmp(t, "retention") == 0 && h != NULL && strlen(h) == 64 &&
                    jseq(o, "last_seq", &ls)) {
                    if (v->nret == cap) {
                        struct retention *n = realloc(v->ret, (cap = cap * 2 + 8) * sizeof(*n));
                        if (n == NULL) {
                            json_decref(o);
                            return -1;
                        }
                        v->ret = n;
                    }
                    struct retention *rt = &v->ret[v->nret++];
                    rt->last_seq = ls;
                    memcpy(rt->last_hash, h, 65);
                    rt->f = f;
                    rt->line = line;
                }
                json_decref(o);
            }
            off += len + (e != NULL);
            line++;
        }
    }
    return 0;
}

/* The first record of the walk: the genesis, or a start that a retention
 * record accounts for, or (information only) a start mid-chain. */
static void check_start(struct vctx *v, const struct rec *r)
{
    const gw_journal_link *l = &r->l;
    int genesis = strcmp(l->prev, GW_JOURNAL_GENESIS) == 0;

    if (l->seq == 1 || genesis) {
        if (l->seq == 1 && genesis) {
            v->res->start_covered = 1;
            say(v, "info: chain starts at seq 1 (genesis)");
        } else {
            problem(v, GW_JV_MALFORMED, r->f, r->line,
                    "record seq %" PRIu64 ": only seq 1 has the genesis prev", l->seq);
        }
        return;
    }
    uint64_t maxl = 0;
    const struct retention *best = NULL;
    for (size_t i = 0; i < v->nret; i++) {
        if (v->ret[i].last_seq == l->seq - 1 && strcmp(v->ret[i].last_hash, l->prev) == 0) {
            v->res->start_covered = 1;
            say(v,
                "info: chain starts at seq %" PRIu64 " after the records deleted by retention "
                "(%s:%zu)",
                l->seq, v->f[v->ret[i].f].name, v->ret[i].line);
            return;
        }
        if (best == NULL || v->ret[i].last_seq > maxl) {
            maxl = v->ret[i].last_seq;
            best = &v->ret[i];
        }
    }
    if (best != NULL && maxl + 1 < l->seq) {
        char rb[96];
        range(rb, sizeof(rb), maxl + 1, l->seq - 1);
        problem(v, GW_JV_START, r->f, r->line,
                "%s missing: the last retention record (%s:%zu) ends at seq %" PRIu64, rb,
                v->f[best->f].name, best->line, maxl);
    } else if (best != NULL && maxl + 1 == l->seq) {
        problem(v, GW_JV_START, r->f, r->line,
                "record seq %" PRIu64 " does not link to the last record deleted by retention "
                "(%s:%zu)",
                l->seq, v->f[best->f].name, best->line);
    } else {
        say(v, "info: chain starts at seq %" PRIu64 " (earlier records not present)", l->seq);
    }
}

static int load_file(struct vfile *f)
{
    int fd = open(f->name, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return errno;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return e;
    }
    if (S_ISREG(st.st_mode)) {
        f->size = (size_t)st.st_size;
        if (f->size > 0) {
            void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
            if (m != MAP_FAILED) {
                f->data = m;
                f->mapped = 1;
                close(fd);
                return 0;
            }
        }
        f->size = 0;
    }
    /* Not mappable (a pipe, /dev/stdin): read it all. */
    gw_buf b = {0};
    char chunk[65536];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            gw_buf_free(&b);
            return e;
        }
        gw_buf_append(&b, chunk, (size_t)n);
    }
    close(fd);
    if (b.oom) {
        gw_buf_free(&b);
        return ENOMEM;
    }
    f->data = b.data;
    f->size = b.len;
    return 0;
}

static void unload_file(struct vfile *f)
{
    if (f->mapped)
        munmap(f->data, f->size);
    else
        free(f->data);
}

static void walk(struct vctx *v)
{
    struct pos ps = {0, 0, 1};
    struct rec r, last;
    int have = 0, is_cp;
    uint64_t warned = 0;
    gw_journal_verify_result *res = v->res;
    const gw_journal_verify_opts *o = v->o;
    int expect_seen = 0;

    while (next_line(v, &ps, &r)) {
        if (!r.chained) {
            int tail = !r.nl;
            res->warnings++;
            if (warned++ < MAX_WARN_LINES)
                say(v, "%s:%zu: warning: %s (not a chained record), skipped", v->f[r.f].name,
                    r.line, tail ? "torn last line" : "torn or foreign line");
            continue;
        }
        if (!have) {
            if (!r.hash_ok) {
                problem(v, GW_JV_MODIFIED, r.f, r.line,
                        "record seq %" PRIu64 " does not match its hash", r.l.seq);
                return;
            }
            check_start(v, &r);
            res->first_seq = r.l.seq;
        } else {
            classify(v, &last, &r, ps);
        }
        if (v->failed || check_record(v, &r, &is_cp) != 0)
            return;
        if (o->expect_seq != 0 && r.l.seq == o->expect_seq) {
            expect_seen = 1;
            if (o->expect_hash == NULL || strcmp(o->expect_hash, r.l.hash) != 0) {
                problem(v, GW_JV_MODIFIED, r.f, r.line,
                        "record seq %" PRIu64 " does not have the expected hash %s", r.l.seq,
                        o->expect_hash ? o->expect_hash : "(none)");
                return;
            }
        }
        res->records++;
        res->after_checkpoint = is_cp ? 0 : res->after_checkpoint + 1;
        struct ring_ent *re = &v->ring[r.l.seq % RING];
        re->seq = r.l.seq;
        memcpy(re->hash, r.l.hash, 65);
        re->f = r.f;
        re->line = r.line;
        last = r;
        have = 1;
    }
    if (warned > MAX_WARN_LINES)
        say(v, "warning: %" PRIu64 " more torn or foreign lines not shown",
            warned - MAX_WARN_LINES);
    if (!have) {
        if (o->expect_seq != 0)
            problem(v, GW_JV_TRUNCATED, v->nf - 1, 0, "no record; seq %" PRIu64 " was expected",
                    o->expect_seq);
        else
            say(v, "info: no record");
        return;
    }
    res->last_seq = last.l.seq;
    memcpy(res->last_hash, last.l.hash, 65);
    if (o->expect_seq != 0 && !expect_seen) {
        if (o->expect_seq > last.l.seq)
            problem(v, GW_JV_TRUNCATED, last.f, last.line,
                    "the journal ends at seq %" PRIu64 "; seq %" PRIu64 " was expected", last.l.seq,
                    o->expect_seq);
        else
            problem(v, GW_JV_START, last.f, 0,
                    "the expected record seq %" PRIu64
                    " is before the start of the chain (seq %" PRIu64 ")",
                    o->expect_seq, res->first_seq);
        return;
    }
    if (o->expect_seq != 0)
        say(v, "info: expected record seq %" PRIu64 " found", o->expect_seq);
    if (res->checkpoints == 0)
        say(v,
            "info: no checkpoint: none of the %" PRIu64
            " records is signed; a truncation would not be detectable",
            res->records);
    else if (o->keys != NULL)
        say(v, "info: checkpoints: %" PRIu64 ", signatures verified", res->checkpoints);
    else
        say(v, "info: checkpoints: %" PRIu64 ", signatures not checked (no keys)",
            res->checkpoints);
    if (res->checkpoints > 0 && res->after_checkpoint > 0)
        say(v,
            "info: %" PRIu64 " records after the last checkpoint: a truncation of these would "
            "not be detectable",
            res->after_checkpoint);
    say(v, "info: head seq=%" PRIu64 " hash=%s", last.l.seq, last.l.hash);
}

int gw_journal_verify_ex(const char *const *files, size_t nfiles,
                         const gw_journal_verify_opts *opts, FILE *report,
                         gw_journal_verify_result *res)
{
    gw_journal_verify_opts none = {0};
    gw_journal_verify_result local;
    struct vctx v = {.o = opts ? opts : &none, .out = report, .res = res ? res : &local};
    int rc = 0;
    char ebuf[128];

    memset(v.res, 0, sizeof(*v.res));
    if (nfiles == 0 || files == NULL) {
        if (report)
            fprintf(report, "FAIL: no journal file\n");
        v.res->kind = GW_JV_IO;
        return 2;
    }
    v.f = calloc(nfiles, sizeof(*v.f));
    v.ring = calloc(RING, sizeof(*v.ring));
    if (v.f == NULL || v.ring == NULL) {
        if (report)
            fprintf(report, "FAIL: out of memory\n");
        free(v.f);
        free(v.ring);
        v.res->kind = GW_JV_IO;
        return 2;
    }
    v.nf = nfiles;
    for (size_t i = 0; i < nfiles; i++) {
        v.f[i].name = files[i];
        int e = load_file(&v.f[i]);
        if (e != 0) {
            if (report)
                fprintf(report, "%s: io: cannot read: %s\nFAIL: %s: io\n", files[i],
                        strerror_r(e, ebuf, sizeof(ebuf)), files[i]);
            v.res->kind = GW_JV_IO;
            v.res->file = i;
            v.nf = i;
            rc = 2;
            goto out;
        }
    }
    if (prescan_retention(&v) != 0) {
        if (report)
            fprintf(report, "FAIL: out of memory\n");
        v.res->kind = GW_JV_IO;
        rc = 2;
        goto out;
    }
    walk(&v);
    if (v.failed) {
        rc = 1;
        if (report) {
            if (v.res->line > 0)
                fprintf(report, "FAIL: %s:%zu: %s\n", v.f[v.res->file].name, v.res->line,
                        gw_jv_kind_name(v.res->kind));
            else
                fprintf(report, "FAIL: %s: %s\n", v.f[v.res->file].name,
                        gw_jv_kind_name(v.res->kind));
        }
    } else if (v.res->gaps > 0) {
        rc = 3;
        if (report)
            fprintf(report,
                    "LOSS: %" PRIu64 " records in %zu file%s, chain intact, %" PRIu64
                    " gap record%s: up to %" PRIu64 " records lost\n",
                    v.res->records, nfiles, nfiles == 1 ? "" : "s", v.res->gaps,
                    v.res->gaps == 1 ? "" : "s", v.res->gap_records);
    } else if (report) {
        fprintf(report, "OK: %" PRIu64 " records in %zu file%s, chain intact\n", v.res->records,
                nfiles, nfiles == 1 ? "" : "s");
    }
out:
    for (size_t i = 0; i < v.nf; i++)
        unload_file(&v.f[i]);
    free(v.f);
    free(v.ring);
    free(v.ret);
    return rc;
}

int gw_journal_verify(const char *const *files, size_t nfiles, const gw_keyset *keys, FILE *report)
{
    gw_journal_verify_opts o = {.keys = keys};
    return gw_journal_verify_ex(files, nfiles, &o, report, NULL);
}
