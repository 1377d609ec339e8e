/*
 * The policy snapshot: every policy of a directory in file-name order, with
 * two hash indexes (certificate fingerprint, client_id -> policy), built
 * file by file with the rules between files, shared by reference counts,
 * and compared with the previous one on a reload. Immutable once built.
 */
#include "policy/policy.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/files.h"
#include "policy/index.h"
#include "policy/parse.h"

struct gw_policy_set {
    atomic_size_t refs;
    gw_policy **items; /* in file-name order; each holds a reference (set_refs) */
    size_t n;
    gw_policy_index by_cert;
    gw_policy_index by_client;
    gw_policy_rejected *rejected; /* files left out, in file-name order */
    size_t nrejected;
};

static void policy_unref(gw_policy *p)
{
    if (p != NULL && atomic_fetch_sub_explicit(&p->set_refs, 1, memory_order_acq_rel) == 1)
        gw_policy_free(p);
}

static void set_free(gw_policy_set *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        policy_unref(s->items[i]);
    free(s->items);
    gw_policy_index_free(&s->by_cert);
    gw_policy_index_free(&s->by_client);
    for (size_t i = 0; i < s->nrejected; i++) {
        free(s->rejected[i].file);
        free(s->rejected[i].error);
    }
    free(s->rejected);
    free(s);
}

/* Builds the snapshot's indexes from its items, which obey the cross-file
 * rules (resolve_conflicts). -1 when out of memory. */
static int index_set(gw_policy_set *s)
{
    size_t ncerts = 0;

    for (size_t i = 0; i < s->n; i++)
        ncerts += s->items[i]->ncerts;
    if (gw_policy_index_init(&s->by_cert, ncerts) < 0 ||
        gw_policy_index_init(&s->by_client, s->n) < 0)
        return -1;
    for (size_t i = 0; i < s->n; i++) {
        const gw_policy *p = s->items[i];
        gw_policy_index_put(&s->by_client, p->client_id, p, i, NULL);
        for (size_t k = 0; k < p->ncerts; k++)
            gw_policy_index_put(&s->by_cert, p->certs[k], p, i, NULL);
    }
    return 0;
}

gw_policy_set *gw_policy_set_empty(void)
{
    gw_policy_set *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    atomic_init(&s->refs, 1);
    if (gw_policy_index_init(&s->by_cert, 0) < 0 || gw_policy_index_init(&s->by_client, 0) < 0) {
        set_free(s);
        return NULL;
    }
    return s;
}

/* One file of the directory while a snapshot is built: the version it will
 * serve (<cand>: the new one when valid, else the previous snapshot's) and,
 * when rejected, its errors. */
typedef struct fent {
    char *file;
    gw_policy *fresh;     /* parsed now, valid on its own; owned until placed */
    const gw_policy *old; /* the previous snapshot's version of the same file */
    const gw_policy *cand;
    int rejected;    /* the version on disk is not served */
    int conflict;    /* this round: involved in a cross-file conflict */
    gw_errlist errs; /* this file's errors, in order */
} fent;

/* Record that <e->cand> shares <what> with <o->cand>; the file whose version
 * on disk is the newer gives way: a fresh version is marked (both, when both
 * are fresh); two previous versions never met, but if they do both go. */
static void conflict(fent *e, const char *epath, fent *o, const char *opath, const char *what)
{
    int efresh = e->cand == e->fresh, ofresh = o->cand == o->fresh;
    if (efresh || !ofresh) {
        e->conflict = 1;
        gw_errlist_add(&e->errs, "%s: %s: %salso used by %s", e->file, epath, what, o->file);
    }
    if (ofresh || !efresh) {
        o->conflict = 1;
        gw_errlist_add(&o->errs, "%s: %s: %salso used by %s", o->file, opath, what, e->file);
    }
}

/* The cross-file rules: a habilitation id, a client_id and a certificate
 * belong to one file only. Every file involved in a conflict loses its new
 * version (it falls back to its previous one, or is left out), then the
 * check runs again, since a previous version may now collide with another
 * file's new one. Each round takes away at least one fresh version, so the
 * loop ends. -1 when out of memory. */
static int resolve_conflicts(fent *f, size_t n)
{
    for (size_t round = 0; round <= 2 * n + 1; round++) {
        gw_policy_index by_id = {0}, by_client = {0}, by_cert = {0};
        size_t ncerts = 0, found = 0;
        for (size_t i = 0; i < n; i++)
            ncerts += f[i].cand != NULL ? f[i].cand->ncerts : 0;
        if (gw_policy_index_init(&by_id, n) < 0 || gw_policy_index_init(&by_client, n) < 0 ||
            gw_policy_index_init(&by_cert, ncerts) < 0) {
            gw_policy_index_free(&by_id);
            gw_policy_index_free(&by_client);
            gw_policy_index_free(&by_cert);
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            const gw_policy *p = f[i].cand;
            if (p == NULL)
                continue;
            size_t j;
            if (gw_policy_index_put(&by_id, p->id, p, i, &j))
                conflict(&f[i], "habilitation.id", &f[j], "habilitation.id", "");
            if (gw_policy_index_put(&by_client, p->client_id, p, i, &j))
                conflict(&f[i], "consumer.client_id", &f[j], "consumer.client_id", "");
            /* a certificate entry is file * GW_POLICY_MAX_CERTS + its index in the file */
            for (size_t k = 0; k < p->ncerts; k++) {
                if (gw_policy_index_put(&by_cert, p->certs[k], p, i * GW_POLICY_MAX_CERTS + k,
                                        &j)) {
                    char pi[64], pj[64];
                    snprintf(pi, sizeof(pi), "consumer.certificates[%zu]", k);
                    snprintf(pj, sizeof(pj), "consumer.certificates[%zu]", j % GW_POLICY_MAX_CERTS);
                    conflict(&f[i], pi, &f[j / GW_POLICY_MAX_CERTS], pj, "fingerprint ");
                }
            }
        }
        gw_policy_index_free(&by_id);
        gw_policy_index_free(&by_client);
        gw_policy_index_free(&by_cert);
        for (size_t i = 0; i < n; i++) {
            if (!f[i].conflict)
                continue;
            found++;
            f[i].conflict = 0;
            f[i].rejected = 1;
            f[i].cand = f[i].cand == f[i].fresh ? f[i].old : NULL;
        }
        if (found == 0)
            return 0;
    }
    return 0;
}

gw_policy_set *gw_policy_set_build(const char *dir, const gw_policy_rules *rules,
                                   const gw_policy_set *prev, gw_errlist *errs)
{
    char **names = NULL;
    size_t nnames = 0;
    char *absdir = NULL;
    fent *f = NULL;
    gw_policy_set *s = NULL;
    gw_policy_index prev_files = {0};
    const char *d = dir != NULL ? dir : "-";
    int oom = 0;

    int e = dir != NULL ? gw_policy_list_json(dir, &names, &nnames) : EINVAL;
    if (e != 0) {
        gw_errlist_add(errs, "%s: $: cannot read: %s", d, strerror(e));
        return NULL;
    }
    absdir = gw_policy_dir_abs(d);
    s = calloc(1, sizeof(*s));
    f = calloc(nnames + 1, sizeof(*f));
    if (absdir == NULL || s == NULL || f == NULL ||
        gw_policy_index_init(&prev_files, prev != NULL ? prev->n : 0) < 0)
        goto oom;
    atomic_init(&s->refs, 1);
    for (size_t i = 0; prev != NULL && i < prev->n; i++)
        gw_policy_index_put(&prev_files, prev->items[i]->file, prev->items[i], i, NULL);

    const char *sep = d[strlen(d) - 1] == '/' ? "" : "/";
    for (size_t i = 0; i < nnames; i++) {
        fent *fe = &f[i];
        char *text = NULL;
        size_t len = 0;
        if (asprintf(&fe->file, "%s%s%s", d, sep, names[i]) < 0) {
            fe->file = NULL;
            goto oom;
        }
        e = gw_file_read(fe->file, GW_POLICY_MAX_FILE, GW_POLICY_READ, &text, &len);
        if (e != 0)
            gw_errlist_add(&fe->errs, "%s: $: cannot read: %s", fe->file,
                           e == EINVAL ? "not a regular file" : strerror(e));
        else
            fe->fresh = gw_policy_parse_text(fe->file, absdir, text, len, rules, &fe->errs);
        free(text);
        fe->old = gw_policy_index_get(&prev_files, fe->file);
        fe->cand = fe->fresh != NULL ? fe->fresh : fe->old;
        fe->rejected = fe->fresh == NULL;
    }
    if (resolve_conflicts(f, nnames) < 0)
        goto oom;

    size_t nrej = 0;
    for (size_t i = 0; i < nnames; i++)
        nrej += f[i].rejected;
    s->items = calloc(nnames + 1, sizeof(*s->items));
    s->rejected = calloc(nrej + 1, sizeof(*s->rejected));
    if (s->items == NULL || s->rejected == NULL)
        goto oom;
    for (size_t i = 0; i < nnames; i++) {
        fent *fe = &f[i];
        for (size_t k = 0; k < fe->errs.n; k++)
            gw_errlist_add(errs, "%s", fe->errs.msgs[k]);
        if (errs != NULL)
            errs->dropped += fe->errs.dropped;
        if (fe->rejected) {
            gw_policy_rejected *r = &s->rejected[s->nrejected++];
            r->file = strdup(fe->file);
            r->error = strdup(fe->errs.n > 0 ? fe->errs.msgs[0] : "out of memory");
            r->kept = fe->cand != NULL;
            oom |= r->file == NULL || r->error == NULL;
        }
        if (fe->cand == NULL)
            continue;
        gw_policy *p = (gw_policy *)fe->cand;
        if (p == fe->fresh) {
            atomic_init(&p->set_refs, 1);
            fe->fresh = NULL; /* now the snapshot's */
        } else {
            atomic_fetch_add_explicit(&p->set_refs, 1, memory_order_relaxed);
        }
        s->items[s->n++] = p;
    }
    if (oom || index_set(s) < 0)
        goto oom;
    goto out;
oom:
    gw_errlist_add(errs, "%s: $: out of memory", d);
    set_free(s);
    s = NULL;
out:
    for (size_t i = 0; f != NULL && i < nnames; i++) {
        free(f[i].file);
        gw_policy_free(f[i].fresh);
        gw_errlist_clear(&f[i].errs);
    }
    free(f);
    gw_policy_index_free(&prev_files);
    for (size_t i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    free(absdir);
    return s;
}

gw_policy_set *gw_policy_set_load(const char *dir, const gw_policy_rules *rules, gw_errlist *errs)
{
    gw_policy_set *s = gw_policy_set_build(dir, rules, NULL, errs);
    if (s != NULL && s->nrejected > 0) {
        gw_policy_set_unref(s);
        s = NULL;
    }
    return s;
}

size_t gw_policy_set_nrejected(const gw_policy_set *s)
{
    return s != NULL ? s->nrejected : 0;
}

const gw_policy_rejected *gw_policy_set_rejected_at(const gw_policy_set *s, size_t i)
{
    return s != NULL && i < s->nrejected ? &s->rejected[i] : NULL;
}

gw_policy_set *gw_policy_set_ref(gw_policy_set *s)
{
    if (s != NULL)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void gw_policy_set_unref(gw_policy_set *s)
{
    if (s == NULL)
        return;
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        set_free(s);
}

size_t gw_policy_set_count(const gw_policy_set *s)
{
    return s != NULL ? s->n : 0;
}

const gw_policy *gw_policy_set_at(const gw_policy_set *s, size_t i)
{
    return s != NULL && i < s->n ? s->items[i] : NULL;
}

const gw_policy *gw_policy_by_cert(const gw_policy_set *s, const char *sha256hex)
{
    return s != NULL ? gw_policy_index_get(&s->by_cert, sha256hex) : NULL;
}

const gw_policy *gw_policy_by_client_id(const gw_policy_set *s, const char *client_id)
{
    return s != NULL ? gw_policy_index_get(&s->by_client, client_id) : NULL;
}

/* ---- reload diff ---- */

static const gw_policy *find_id(const gw_policy_set *s, const char *id)
{
    for (size_t i = 0; s != NULL && i < s->n; i++)
        if (s->items[i]->id != NULL && strcmp(s->items[i]->id, id) == 0)
            return s->items[i];
    return NULL;
}

/* Quadratic in the number of partners: a reload runs rarely, and a few
 * thousand partners compare in milliseconds. */
void gw_policy_set_diff(const gw_policy_set *old, const gw_policy_set *new_set, gw_policy_diff *d)
{
    memset(d, 0, sizeof(*d));
    d->before = old != NULL ? old->n : 0;
    d->after = new_set != NULL ? new_set->n : 0;
    for (size_t i = 0; new_set != NULL && i < new_set->n; i++) {
        const gw_policy *np = new_set->items[i];
        const gw_policy *op = np->id != NULL ? find_id(old, np->id) : NULL;
        if (op == NULL)
            d->added++;
        else if (op != np && op->text_hash != np->text_hash)
            d->changed++;
    }
    for (size_t i = 0; old != NULL && i < old->n; i++)
        if (old->items[i]->id == NULL || find_id(new_set, old->items[i]->id) == NULL)
            d->removed++;
}

int gw_policy_diff_empties(const gw_policy_diff *d)
{
    if (d->before == 0)
        return 0;
    return d->after == 0 || d->removed * 2 > d->before;
}
