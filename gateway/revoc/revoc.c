#include "revoc/revoc.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "lib/util.h"
#include "revoc/cache.h"
#include "revoc/fetch.h"

#define MAX_ENTRIES 100000 /* partner certificates tracked per listener */
#define MAX_STAPLES 4      /* = listener certificates */
#define TICK_S 1

/* One certificate whose status is kept. <leaf>, <issuer> and <url> are set
 * before the entry is published and never change; <st>, <next_fetch> and
 * <soft_state> are under the listener's tab lock. */
typedef struct rv_entry {
    unsigned char fp[32];
    X509 *leaf, *issuer;
    char *url; /* NULL: no responder known */
    gw_rv_status st;
    time_t next_fetch;
    int soft_state; /* state last reported as a soft-fail, -1: none */
} rv_entry;

typedef struct rv_staple {
    X509 *cert, *issuer;
    char *url;
    unsigned char *der; /* under staple_mu */
    int der_len;
    time_t next_update, fetched_at; /* under staple_mu */
    time_t next_fetch;              /* thread only */
    unsigned failures;              /* thread only */
} rv_staple;

typedef struct rv_lis {
    gw_revoc *r;
    size_t idx;
    const gw_conf_listener *conf;
    const gw_conf_revocation *rc;
    /* Entries whose answer is "revoked": changed under the tab lock (by the
     * thread, on a transition only), read by every request
     * (gw_revoc_revoked) without the lock: while it is 0, a request takes
     * no lock and writes nothing shared. Kept with the read-only fields
     * above, apart from the lock and counters that handshakes write. */
    atomic_ulong nrevoked;
    char pad_[64];
    STACK_OF(X509) * cas; /* the client CA file's certificates */
    X509_STORE *trust;    /* the same, for OCSP signer checks (no CRL flags) */
    /* CRL */
    int crl_on;
    pthread_mutex_t store_mu;
    X509_STORE *store;       /* client CA + CRL, under store_mu */
    atomic_llong crl_next;   /* earliest nextUpdate of the CRL in use, 0: none */
    atomic_llong crl_loaded; /* when it was installed */
    struct stat crl_seen;    /* thread only: the file as last looked at */
    time_t crl_next_poll, crl_next_fetch;
    unsigned crl_fetch_failures;
    int crl_state_reported; /* gw_crl_state last alerted */
    atomic_ulong crl_ok, crl_failed;
    /* OCSP */
    pthread_rwlock_t tab_mu;
    gw_rv_table tab;
    rv_entry **ent; /* by table index */
    atomic_ulong ocsp_ok, ocsp_failed, ocsp_soft;
    /* stapling */
    pthread_mutex_t staple_mu;
    rv_staple staples[MAX_STAPLES];
    size_t nstaples;
    atomic_ulong staple_ok, staple_failed;
} rv_lis;

struct gw_revoc {
    rv_lis *lis;
    size_t n;
    gw_revoc_alert_fn alert;
    void *alert_arg;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop, reload, kick; /* under mu */
};

static _Atomic(gw_revoc *) current;
static int lis_idx = -1;
static pthread_once_t lis_idx_once = PTHREAD_ONCE_INIT;

static void lis_idx_init(void)
{
    lis_idx = SSL_CTX_get_ex_new_index(0, "gw_revoc listener", NULL, NULL, NULL);
}

static void alert(rv_lis *l, const char *event, json_t *fields)
{
    if (fields == NULL)
        fields = json_object();
    json_object_set_new(fields, "listener", json_string(l->conf->name));
    if (l->r->alert != NULL)
        l->r->alert(l->r->alert_arg, event, fields);
    else
        json_decref(fields);
}

static void fp_hex(const unsigned char fp[32], char out[65])
{
    gw_hex(fp, 32, out);
}

static int cert_fp(X509 *x, unsigned char fp[32])
{
    unsigned int n = 0;
    return X509_digest(x, EVP_sha256(), fp, &n) == 1 && n == 32 ? 0 : -1;
}

/* ---- certificates from files ---- */

/* Every certificate of the PEM file <path>, or NULL. */
static STACK_OF(X509) * read_certs(const char *path)
{
    BIO *b = BIO_new_file(path, "r");
    STACK_OF(X509) *sk = b != NULL ? sk_X509_new_null() : NULL;
    X509 *x;
    while (sk != NULL && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
        if (!sk_X509_push(sk, x))
            X509_free(x);
    ERR_clear_error();
    BIO_free(b);
    if (sk != NULL && sk_X509_num(sk) == 0) {
        sk_X509_free(sk);
        sk = NULL;
    }
    return sk;
}

static X509 *find_issuer(STACK_OF(X509) * cands, X509 *x)
{
    for (int i = 0; cands != NULL && i < sk_X509_num(cands); i++) {
        X509 *c = sk_X509_value(cands, i);
        if (X509_cmp(c, x) != 0 && X509_check_issued(c, x) == X509_V_OK)
            return c;
    }
    return NULL;
}

/* ---- store marks (revoc.h) ---- */

typedef struct {
    unsigned long long gen;
    time_t crl_next;
} store_mark;

static int store_idx = -1;
static pthread_once_t store_idx_once = PTHREAD_ONCE_INIT;
static atomic_ullong store_gen;

static void store_mark_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                            void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    free(ptr);
}

static void store_idx_init(void)
{
    store_idx = X509_STORE_get_ex_new_index(0, "gw_revoc store mark", NULL, NULL, store_mark_free);
}

int gw_revoc_store_mark(X509_STORE *st)
{
    pthread_once(&store_idx_once, store_idx_init);
    store_mark *m = calloc(1, sizeof(*m));
    if (st == NULL || store_idx < 0 || m == NULL) {
        free(m);
        return -1;
    }
    m->gen = atomic_fetch_add(&store_gen, 1) + 1;
    STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(st);
    for (int i = 0; i < sk_X509_OBJECT_num(objs); i++) {
        X509_CRL *c = X509_OBJECT_get0_X509_CRL(sk_X509_OBJECT_value(objs, i));
        time_t nu = c != NULL ? gw_rv_asn1_time(X509_CRL_get0_nextUpdate(c)) : 0;
        if (nu != 0 && (m->crl_next == 0 || nu < m->crl_next))
            m->crl_next = nu;
    }
    if (X509_STORE_set_ex_data(st, store_idx, m) != 1) {
        free(m);
        return -1;
    }
    return 0;
}

int gw_revoc_store_info(X509_STORE *st, unsigned long long *gen, time_t *crl_next)
{
    pthread_once(&store_idx_once, store_idx_init);
    const store_mark *m =
        st != NULL && store_idx >= 0 ? X509_STORE_get_ex_data(st, store_idx) : NULL;
    if (m == NULL)
        return 0;
    *gen = m->gen;
    *crl_next = m->crl_next;
    return 1;
}

/* ---- CRL ---- */

/* A verify store: the client CAs and <crls>, CRL checking on. */
static X509_STORE *build_store(rv_lis *l, STACK_OF(X509_CRL) * crls)
{
    X509_STORE *st = X509_STORE_new();
    if (st == NULL)
        return NULL;
    for (int i = 0; i < sk_X509_num(l->cas); i++)
        if (X509_STORE_add_cert(st, sk_X509_value(l->cas, i)) != 1)
            goto fail;
    for (int i = 0; i < sk_X509_CRL_num(crls); i++)
        if (X509_STORE_add_crl(st, sk_X509_CRL_value(crls, i)) != 1)
            goto fail;
    X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK);
    gw_revoc_store_mark(st); /* before any handshake sees it */
    return st;
fail:
    ERR_clear_error();
    X509_STORE_free(st);
    return NULL;
}

/* Each CRL must be signed by one of the client CAs. Returns NULL when all
 * are, else why not. Fills <*next> with the earliest nextUpdate. */
static const char *check_crls(rv_lis *l, STACK_OF(X509_CRL) * crls, time_t *next)
{
    *next = 0;
    if (sk_X509_CRL_num(crls) == 0)
        return "no CRL in the file";
    for (int i = 0; i < sk_X509_CRL_num(crls); i++) {
        X509_CRL *c = sk_X509_CRL_value(crls, i);
        int signed_ok = 0;
        for (int k = 0; k < sk_X509_num(l->cas) && !signed_ok; k++) {
            X509 *ca = sk_X509_value(l->cas, k);
            if (X509_NAME_cmp(X509_get_subject_name(ca), X509_CRL_get_issuer(c)) == 0 &&
                X509_CRL_verify(c, X509_get0_pubkey(ca)) == 1)
                signed_ok = 1;
        }
        ERR_clear_error();
        if (!signed_ok)
            return "a CRL is not signed by a client CA";
        time_t nu = gw_rv_asn1_time(X509_CRL_get0_nextUpdate(c));
        if (nu != 0 && (*next == 0 || nu < *next))
            *next = nu;
    }
    return NULL;
}

static void install_store(rv_lis *l, X509_STORE *st, time_t next)
{
    pthread_mutex_lock(&l->store_mu);
    X509_STORE *old = l->store;
    l->store = st;
    pthread_mutex_unlock(&l->store_mu);
    X509_STORE_free(old); /* handshakes in progress hold their own reference */
    atomic_store(&l->crl_next, (long long)next);
    atomic_store(&l->crl_loaded, (long long)time(NULL));
}

/* Takes <crls> (freed here): checks, builds and installs. NULL or why not. */
static const char *use_crls(rv_lis *l, STACK_OF(X509_CRL) * crls)
{
    time_t next;
    const char *why = check_crls(l, crls, &next);
    if (why == NULL) {
        X509_STORE *st = build_store(l, crls);
        if (st == NULL)
            why = "cannot build the verify store";
        else
            install_store(l, st, next);
    }
    sk_X509_CRL_pop_free(crls, X509_CRL_free);
    return why;
}

static STACK_OF(X509_CRL) * read_crl_file(const char *path)
{
    BIO *b = BIO_new_file(path, "r");
    STACK_OF(X509_CRL) *sk = b != NULL ? sk_X509_CRL_new_null() : NULL;
    X509_CRL *c;
    while (sk != NULL && (c = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)) != NULL)
        if (!sk_X509_CRL_push(sk, c))
            X509_CRL_free(c);
    if (sk != NULL && sk_X509_CRL_num(sk) == 0 && BIO_reset(b) == 0 &&
        (c = d2i_X509_CRL_bio(b, NULL)) != NULL && !sk_X509_CRL_push(sk, c))
        X509_CRL_free(c);
    ERR_clear_error();
    BIO_free(b);
    return sk;
}

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Re-reads the CRL file when it changed (or <force>). A file that cannot be
 * used keeps the last good CRL in place and raises "tls.crl_invalid" once
 * per version of the file. */
static void crl_file_tick(rv_lis *l, time_t now, int force)
{
    if (l->conf->crl == NULL || (!force && (l->rc->crl_poll_s == 0 || now < l->crl_next_poll)))
        return;
    l->crl_next_poll = now + (time_t)l->rc->crl_poll_s;
    struct stat st;
    if (stat(l->conf->crl, &st) < 0) {
        memset(&st, 0, sizeof(st));
        if (!force && l->crl_seen.st_ino == 0)
            return;
    }
    if (!force && same_file(&st, &l->crl_seen))
        return;
    l->crl_seen = st;
    const char *why = st.st_ino == 0 ? strerror(errno) : NULL;
    if (why == NULL)
        why = use_crls(l, read_crl_file(l->conf->crl));
    if (why == NULL) {
        atomic_fetch_add(&l->crl_ok, 1);
        fprintf(stderr, "opale-gateway: listener %s: CRL %s loaded\n", l->conf->name, l->conf->crl);
        return;
    }
    atomic_fetch_add(&l->crl_failed, 1);
    fprintf(stderr, "opale-gateway: listener %s: CRL %s not used (%s): the last good one stays\n",
            l->conf->name, l->conf->crl, why);
    alert(l, "tls.crl_invalid", json_pack("{s:s,s:s}", "file", l->conf->crl, "error", why));
}

static void crl_url_tick(rv_lis *l, time_t now, int force)
{
    if (l->rc->crl_url == NULL || (!force && now < l->crl_next_fetch))
        return;
    const char *why = NULL;
    X509_CRL *c = gw_rv_fetch_crl(l->rc->crl_url, l->rc->crl_timeout_ms, &why);
    STACK_OF(X509_CRL) *sk = c != NULL ? sk_X509_CRL_new_null() : NULL;
    if (sk != NULL && !sk_X509_CRL_push(sk, c)) {
        sk_X509_CRL_free(sk);
        sk = NULL;
    }
    if (sk == NULL) {
        X509_CRL_free(c);
        if (why == NULL)
            why = "out of memory";
    } else {
        why = use_crls(l, sk);
    }
    if (why == NULL) {
        l->crl_fetch_failures = 0;
        atomic_fetch_add(&l->crl_ok, 1);
    } else {
        l->crl_fetch_failures++;
        atomic_fetch_add(&l->crl_failed, 1);
        alert(l, "tls.crl_fetch_failed",
              json_pack("{s:s,s:s,s:i}", "url", l->rc->crl_url, "error", why, "failures",
                        (int)l->crl_fetch_failures));
    }
    l->crl_next_fetch = gw_crl_next_fetch((time_t)atomic_load(&l->crl_next), now,
                                          l->rc->crl_fetch_s, l->crl_fetch_failures);
}

/* Alerts when the CRL in use goes past its nextUpdate (within the grace
 * period: still used; past it: handshakes refused with tls.crl). */
static void crl_age_tick(rv_lis *l, time_t now)
{
    time_t next = (time_t)atomic_load(&l->crl_next);
    gw_crl_state s = gw_crl_decide(next, now, l->rc->crl_grace_s);
    if ((int)s == l->crl_state_reported)
        return;
    l->crl_state_reported = (int)s;
    if (s == GW_CRL_CURRENT)
        return;
    alert(l, "tls.crl_expired",
          json_pack("{s:I,s:I,s:b}", "next_update", (json_int_t)next, "grace_s",
                    (json_int_t)l->rc->crl_grace_s, "refusing", s == GW_CRL_EXPIRED));
}

/* ---- OCSP for partner certificates ---- */

/* Adds <leaf> (issued by <issuer>) to the table unless there; the caller
 * holds the write lock. Returns the entry or NULL. */
static rv_entry *entry_add_locked(rv_lis *l, const unsigned char fp[32], X509 *leaf, X509 *issuer)
{
    long k = gw_rv_table_find(&l->tab, fp);
    if (k >= 0)
        return l->ent[k];
    if (l->tab.n >= MAX_ENTRIES)
        return NULL;
    if (l->tab.n == l->tab.cap) {
        /* the table grows its keys first: keep ent as large */
        void *p = realloc(l->ent, (l->tab.cap ? l->tab.cap * 2 : 16) * sizeof(*l->ent));
        if (p == NULL)
            return NULL;
        l->ent = p;
    }
    rv_entry *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    memcpy(e->fp, fp, 32);
    e->url = l->rc->ocsp_responder != NULL ? strdup(l->rc->ocsp_responder) : gw_rv_aia_ocsp(leaf);
    e->soft_state = -1;
    X509_up_ref(leaf);
    X509_up_ref(issuer);
    e->leaf = leaf;
    e->issuer = issuer;
    k = gw_rv_table_add(&l->tab, fp);
    if (k < 0) {
        X509_free(e->leaf);
        X509_free(e->issuer);
        free(e->url);
        free(e);
        return NULL;
    }
    l->ent[k] = e;
    return e;
}

/* The partner certificates of ocsp.certificates_dir (*.pem, *.crt), each
 * with its issuer among the client CAs. Returns how many were added. */
static size_t preload_dir(rv_lis *l)
{
    const char *dir = l->rc->ocsp_certs_dir;
    size_t added = 0;
    DIR *d = dir != NULL ? opendir(dir) : NULL;
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (de->d_name[0] == '.' || n < 5 ||
            (strcmp(de->d_name + n - 4, ".pem") != 0 && strcmp(de->d_name + n - 4, ".crt") != 0))
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        STACK_OF(X509) *sk = read_certs(path);
        for (int i = 0; sk != NULL && i < sk_X509_num(sk); i++) {
            X509 *x = sk_X509_value(sk, i);
            X509 *iss = find_issuer(l->cas, x);
            unsigned char fp[32];
            if (iss == NULL || cert_fp(x, fp) < 0)
                continue;
            pthread_rwlock_wrlock(&l->tab_mu);
            size_t before = l->tab.n;
            entry_add_locked(l, fp, x, iss);
            added += l->tab.n - before;
            pthread_rwlock_unlock(&l->tab_mu);
        }
        sk_X509_pop_free(sk, X509_free);
    }
    if (d != NULL)
        closedir(d);
    return added;
}

static void ocsp_fetch(rv_lis *l, rv_entry *e, time_t now)
{
    gw_rv_ocsp_result res;
    const char *why = "no OCSP responder (no AIA and none configured)";
    int rc = -1;
    if (e->url != NULL)
        rc = gw_rv_ocsp_query(e->url, e->leaf, e->issuer, l->trust, l->rc->ocsp_nonce,
                              l->rc->ocsp_timeout_ms, 0, &res, &why);
    pthread_rwlock_wrlock(&l->tab_mu);
    int was_revoked = e->st.answer == GW_RV_ANS_REVOKED;
    int newly_revoked = rc == 0 && res.answer == GW_RV_ANS_REVOKED && !was_revoked;
    if (rc == 0) {
        e->st.answer = res.answer;
        e->st.this_update = res.this_update;
        e->st.next_update = res.next_update;
        e->st.fetched_at = now;
        e->st.failures = 0;
    } else {
        e->st.failures++;
    }
    e->next_fetch = gw_rv_next_fetch(&e->st, now, l->rc->ocsp_refresh_s, rc != 0);
    unsigned failures = e->st.failures;
    /* before the lock is released: a request that starts after this
     * returns sees the count, then the entry under the lock */
    if (newly_revoked)
        atomic_fetch_add(&l->nrevoked, 1);
    else if (was_revoked && e->st.answer != GW_RV_ANS_REVOKED)
        atomic_fetch_sub(&l->nrevoked, 1);
    pthread_rwlock_unlock(&l->tab_mu);
    char hex[65];
    fp_hex(e->fp, hex);
    if (rc == 0) {
        atomic_fetch_add(&l->ocsp_ok, 1);
        if (newly_revoked)
            alert(l, "tls.ocsp_revoked", json_pack("{s:s,s:s}", "cert_sha256", hex, "url", e->url));
        return;
    }
    atomic_fetch_add(&l->ocsp_failed, 1);
    if (failures == 1) /* once per run of failures */
        alert(l, "tls.ocsp_fetch_failed",
              json_pack("{s:s,s:s?,s:s}", "cert_sha256", hex, "url", e->url, "error", why));
}

static void ocsp_tick(gw_revoc *r, rv_lis *l, time_t now, int force)
{
    if (l->rc->ocsp_mode == GW_OCSP_OFF)
        return;
    size_t i = 0;
    for (;;) {
        rv_entry *due = NULL;
        pthread_rwlock_wrlock(&l->tab_mu);
        for (; i < l->tab.n && due == NULL; i++) {
            rv_entry *e = l->ent[i];
            if (force)
                e->next_fetch = 0;
            if (e->next_fetch <= now)
                due = e;
        }
        pthread_rwlock_unlock(&l->tab_mu);
        if (due == NULL)
            return;
        ocsp_fetch(l, due, now);
        pthread_mutex_lock(&r->mu);
        int stop = r->stop;
        pthread_mutex_unlock(&r->mu);
        if (stop)
            return;
        now = time(NULL);
    }
}

const char *gw_revoc_handshake(SSL *ssl, X509_STORE_CTX *ctx)
{
    pthread_once(&lis_idx_once, lis_idx_init);
    rv_lis *l = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), lis_idx);
    if (l == NULL || l->rc->ocsp_mode == GW_OCSP_OFF)
        return NULL;
    STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
    X509 *leaf = X509_STORE_CTX_get0_cert(ctx);
    X509 *issuer = chain != NULL && sk_X509_num(chain) > 1 ? sk_X509_value(chain, 1) : NULL;
    X509 *looked_up = NULL; /* the chain is not built: a verdict core/tls.c kept */
    unsigned char fp[32];
    if (leaf == NULL || cert_fp(leaf, fp) < 0)
        return "tls.ocsp_unavailable";
    time_t now = time(NULL);
    gw_rv_status st;
    memset(&st, 0, sizeof(st));
    int found = 0, report = 0, soft_state = -1;
    pthread_rwlock_rdlock(&l->tab_mu);
    long k = gw_rv_table_find(&l->tab, fp);
    if (k >= 0) {
        st = l->ent[k]->st;
        soft_state = l->ent[k]->soft_state;
        found = 1;
    }
    pthread_rwlock_unlock(&l->tab_mu);
    if (!found && issuer == NULL && chain == NULL &&
        X509_STORE_CTX_get1_issuer(&looked_up, ctx, leaf) == 1)
        issuer = looked_up;
    ERR_clear_error();
    if (!found && issuer != NULL) {
        /* first sight: the thread fetches it; this handshake follows the
         * soft/hard-fail rule */
        pthread_rwlock_wrlock(&l->tab_mu);
        entry_add_locked(l, fp, leaf, issuer);
        pthread_rwlock_unlock(&l->tab_mu);
        pthread_mutex_lock(&l->r->mu);
        l->r->kick = 1;
        pthread_cond_signal(&l->r->cv);
        pthread_mutex_unlock(&l->r->mu);
    }
    X509_free(looked_up);
    gw_rv_state s = gw_rv_decide(&st, now, l->rc->ocsp_refresh_s);
    const char *reason;
    gw_rv_verdict v = gw_rv_policy(s, l->rc->ocsp_mode, &reason);
    if (v == GW_RV_ACCEPT_SOFT) {
        atomic_fetch_add(&l->ocsp_soft, 1);
        /* the write lock only when this state was not reported yet: while a
         * responder stays down, every handshake of every worker soft-fails
         * the same way and would queue behind the others for nothing */
        if (!found || soft_state != (int)s) {
            pthread_rwlock_wrlock(&l->tab_mu);
            k = gw_rv_table_find(&l->tab, fp);
            if (k >= 0 && l->ent[k]->soft_state != (int)s) {
                l->ent[k]->soft_state = (int)s;
                report = 1;
            }
            pthread_rwlock_unlock(&l->tab_mu);
        }
        if (report) {
            char hex[65];
            fp_hex(fp, hex);
            alert(l, "tls.ocsp_soft_fail",
                  json_pack("{s:s,s:s}", "cert_sha256", hex, "reason", reason));
        }
        return NULL;
    }
    return v == GW_RV_REFUSE ? reason : NULL;
}

int gw_revoc_revoked(const char *sha256_hex)
{
    gw_revoc *r = atomic_load(&current);
    unsigned char fp[32];
    if (r == NULL || sha256_hex == NULL || gw_rv_fp_from_hex(sha256_hex, fp) < 0)
        return 0;
    int revoked = 0;
    for (size_t i = 0; i < r->n && !revoked; i++) {
        rv_lis *l = &r->lis[i];
        if (l->rc == NULL || l->rc->ocsp_mode == GW_OCSP_OFF)
            continue;
        /* none revoked on this listener (the usual case): no lock */
        if (atomic_load(&l->nrevoked) == 0)
            continue;
        pthread_rwlock_rdlock(&l->tab_mu);
        long k = gw_rv_table_find(&l->tab, fp);
        revoked = k >= 0 && l->ent[k]->st.answer == GW_RV_ANS_REVOKED;
        pthread_rwlock_unlock(&l->tab_mu);
    }
    return revoked;
}

int gw_revoc_crl_grace(SSL *ssl)
{
    pthread_once(&lis_idx_once, lis_idx_init);
    rv_lis *l = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), lis_idx);
    if (l == NULL || !l->crl_on)
        return 0;
    return gw_crl_decide((time_t)atomic_load(&l->crl_next), time(NULL), l->rc->crl_grace_s) ==
           GW_CRL_GRACE;
}

/* ---- stapling ---- */

static void staple_tick(rv_lis *l, time_t now, int force)
{
    for (size_t i = 0; i < l->nstaples; i++) {
        rv_staple *s = &l->staples[i];
        if (!force && now < s->next_fetch)
            continue;
        gw_rv_ocsp_result res;
        const char *why;
        int rc = gw_rv_ocsp_query(s->url, s->cert, s->issuer, l->trust, 0, l->rc->staple_timeout_ms,
                                  1, &res, &why);
        if (rc == 0 && res.next_update != 0 && res.next_update + GW_RV_LEEWAY_S < now) {
            rc = -1;
            why = "the answer is past its nextUpdate";
            free(res.der);
        }
        gw_rv_status st = {.answer = rc == 0 ? res.answer : GW_RV_ANS_NONE,
                           .this_update = rc == 0 ? res.this_update : 0,
                           .next_update = rc == 0 ? res.next_update : 0,
                           .fetched_at = now,
                           .failures = rc == 0 ? 0 : s->failures + 1};
        s->failures = st.failures;
        s->next_fetch = gw_rv_next_fetch(&st, now, l->rc->staple_refresh_s, rc != 0);
        if (rc != 0) {
            atomic_fetch_add(&l->staple_failed, 1);
            if (s->failures == 1)
                alert(l, "tls.staple_failed", json_pack("{s:s,s:s}", "url", s->url, "error", why));
            continue;
        }
        atomic_fetch_add(&l->staple_ok, 1);
        pthread_mutex_lock(&l->staple_mu);
        unsigned char *old = s->der;
        s->der = res.der;
        s->der_len = res.der_len;
        s->next_update = res.next_update;
        s->fetched_at = now;
        pthread_mutex_unlock(&l->staple_mu);
        free(old);
    }
}

/* The status callback: the staple of the certificate this handshake uses,
 * when one is held and not past its nextUpdate; else no staple. */
static int status_cb(SSL *ssl, void *arg)
{
    rv_lis *l = arg;
    X509 *cert = SSL_get_certificate(ssl);
    if (cert == NULL || SSL_get_tlsext_status_type(ssl) != TLSEXT_STATUSTYPE_ocsp)
        return SSL_TLSEXT_ERR_NOACK;
    unsigned char *copy = NULL;
    int len = 0;
    time_t now = time(NULL);
    pthread_mutex_lock(&l->staple_mu);
    for (size_t i = 0; i < l->nstaples; i++) {
        rv_staple *s = &l->staples[i];
        if (s->der == NULL || X509_cmp(s->cert, cert) != 0 ||
            (s->next_update != 0 && s->next_update + GW_RV_LEEWAY_S < now))
            continue;
        copy = OPENSSL_malloc((size_t)s->der_len);
        if (copy != NULL) {
            memcpy(copy, s->der, (size_t)s->der_len);
            len = s->der_len;
        }
        break;
    }
    pthread_mutex_unlock(&l->staple_mu);
    if (copy == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    if (SSL_set_tlsext_status_ocsp_resp(ssl, copy, len) != 1) {
        OPENSSL_free(copy);
        return SSL_TLSEXT_ERR_NOACK;
    }
    return SSL_TLSEXT_ERR_OK;
}

static char *setup_staples(rv_lis *l)
{
    const gw_conf_listener *c = l->conf;
    STACK_OF(X509) *extra = l->rc->staple_issuer != NULL ? read_certs(l->rc->staple_issuer) : NULL;
    char *err = NULL;
    for (size_t i = 0; i < c->ncerts && i < MAX_STAPLES && err == NULL; i++) {
        STACK_OF(X509) *chain = read_certs(c->certs[i].cert);
        X509 *leaf = chain != NULL ? sk_X509_value(chain, 0) : NULL;
        X509 *iss = leaf != NULL ? find_issuer(chain, leaf) : NULL;
        if (iss == NULL && leaf != NULL)
            iss = find_issuer(extra, leaf);
        if (iss == NULL && leaf != NULL)
            iss = find_issuer(l->cas, leaf);
        rv_staple *s = &l->staples[l->nstaples];
        char *url = NULL;
        if (leaf != NULL)
            url = l->rc->staple_responder != NULL ? strdup(l->rc->staple_responder)
                                                  : gw_rv_aia_ocsp(leaf);
        if (leaf == NULL)
            err =
                gw_strdupf("listeners[%zu].tls.certificates[%zu].cert: no certificate", l->idx, i);
        else if (iss == NULL)
            err = gw_strdupf(
                "listeners[%zu].tls.stapling: no issuer for certificates[%zu] (not in its "
                "chain file, stapling.issuer or client_ca)",
                l->idx, i);
        else if (url == NULL)
            err = gw_strdupf(
                "listeners[%zu].tls.stapling: certificates[%zu] has no OCSP URL (AIA) and "
                "stapling.responder is not set",
                l->idx, i);
        if (err == NULL) {
            X509_up_ref(leaf);
            X509_up_ref(iss);
            s->cert = leaf;
            s->issuer = iss;
            s->url = url;
            l->nstaples++;
            /* the issuer must be a trust anchor for the signer check */
            if (X509_STORE_add_cert(l->trust, iss) != 1)
                ERR_clear_error();
        } else {
            free(url);
        }
        sk_X509_pop_free(chain, X509_free);
    }
    sk_X509_pop_free(extra, X509_free);
    return err;
}

/* ---- set-up ---- */

static int client_hello_cb(SSL *ssl, int *al, void *arg)
{
    rv_lis *l = arg;
    pthread_mutex_lock(&l->store_mu);
    X509_STORE *st = l->store;
    if (st != NULL)
        X509_STORE_up_ref(st);
    pthread_mutex_unlock(&l->store_mu);
    if (st != NULL)
        SSL_set0_verify_cert_store(ssl, st); /* takes the reference */
    return SSL_CLIENT_HELLO_SUCCESS;
}

static char *lis_init(gw_revoc *r, rv_lis *l, size_t i, const gw_conf_listener *c, SSL_CTX *ctx)
{
    l->r = r;
    l->idx = i;
    l->conf = c;
    l->rc = &c->revoc;
    l->crl_state_reported = GW_CRL_CURRENT;
    pthread_mutex_init(&l->store_mu, NULL);
    pthread_rwlock_init(&l->tab_mu, NULL);
    pthread_mutex_init(&l->staple_mu, NULL);
    if (c->client_auth != GW_CLIENT_AUTH_REQUIRED && !c->revoc.stapling)
        return NULL;
    int want_crl =
        c->client_auth == GW_CLIENT_AUTH_REQUIRED && (c->crl != NULL || c->revoc.crl_url != NULL);
    int want_ocsp = c->client_auth == GW_CLIENT_AUTH_REQUIRED && c->revoc.ocsp_mode != GW_OCSP_OFF;
    if (!want_crl && !want_ocsp && !c->revoc.stapling)
        return NULL;
    l->trust = X509_STORE_new();
    if (l->trust == NULL)
        return strdup("out of memory");
    if (c->client_ca != NULL) {
        l->cas = read_certs(c->client_ca);
        if (l->cas == NULL)
            return gw_strdupf("listeners[%zu].tls.client_ca: no certificate found", i);
        for (int k = 0; k < sk_X509_num(l->cas); k++)
            if (X509_STORE_add_cert(l->trust, sk_X509_value(l->cas, k)) != 1)
                ERR_clear_error();
    }
    pthread_once(&lis_idx_once, lis_idx_init);
    SSL_CTX_set_ex_data(ctx, lis_idx, l);
    if (want_crl) {
        l->crl_on = 1;
        if (c->crl != NULL) {
            stat(c->crl, &l->crl_seen);
            const char *why = use_crls(l, read_crl_file(c->crl));
            if (why != NULL)
                return gw_strdupf("listeners[%zu].tls.crl: %s", i, why);
        } else {
            /* only a URL: until the first fetch, the CA without CRL, CRL
             * checking on (every handshake refused with tls.crl) */
            STACK_OF(X509_CRL) *none = sk_X509_CRL_new_null();
            X509_STORE *st = none != NULL ? build_store(l, none) : NULL;
            sk_X509_CRL_free(none);
            if (st == NULL)
                return strdup("out of memory");
            install_store(l, st, 0);
        }
        SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, l);
    }
    if (want_ocsp)
        preload_dir(l);
    if (c->revoc.stapling) {
        char *err = setup_staples(l);
        if (err != NULL)
            return err;
        SSL_CTX_set_tlsext_status_cb(ctx, status_cb);
        SSL_CTX_set_tlsext_status_arg(ctx, l);
    }
    return NULL;
}

gw_revoc *gw_revoc_new(const gw_conf *conf, SSL_CTX *const *ctxs, char **err)
{
    gw_revoc *r = calloc(1, sizeof(*r));
    if (r == NULL ||
        (r->lis = calloc(conf->nlisteners ? conf->nlisteners : 1, sizeof(*r->lis))) == NULL) {
        free(r);
        *err = strdup("out of memory");
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    for (size_t i = 0; i < conf->nlisteners; i++) {
        r->n = i + 1;
        *err = lis_init(r, &r->lis[i], i, &conf->listeners[i], ctxs[i]);
        if (*err != NULL) {
            gw_revoc_free(r);
            return NULL;
        }
    }
    return r;
}

void gw_revoc_set_alert(gw_revoc *r, gw_revoc_alert_fn fn, void *arg)
{
    r->alert = fn;
    r->alert_arg = arg;
}

static int needs_thread(const rv_lis *l)
{
    return l->crl_on || (l->trust != NULL && l->rc->ocsp_mode != GW_OCSP_OFF) || l->nstaples > 0;
}

static void *thread_main(void *arg)
{
    gw_revoc *r = arg;
    int first = 1, force = 0;
    for (;;) {
        time_t now = time(NULL);
        for (size_t i = 0; i < r->n; i++) {
            rv_lis *l = &r->lis[i];
            if (!needs_thread(l))
                continue;
            if (l->crl_on) {
                /* the file was read by gw_revoc_new; the URL is
                 * fetched at once */
                crl_file_tick(l, now, force);
                crl_url_tick(l, now, force || first);
                crl_age_tick(l, now);
            }
            if (force && l->rc->ocsp_certs_dir != NULL && l->rc->ocsp_mode != GW_OCSP_OFF)
                preload_dir(l);
            ocsp_tick(r, l, now, force);
            staple_tick(l, now, force);
        }
        first = 0;
        pthread_mutex_lock(&r->mu);
        if (!r->stop && !r->reload && !r->kick) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += TICK_S;
            pthread_cond_timedwait(&r->cv, &r->mu, &ts);
        }
        int stop = r->stop;
        force = r->reload;
        r->reload = 0;
        r->kick = 0;
        pthread_mutex_unlock(&r->mu);
        if (stop)
            break;
    }
    return NULL;
}

int gw_revoc_start(gw_revoc *r, char **err)
{
    atomic_store(&current, r);
    int need = 0;
    for (size_t i = 0; i < r->n; i++)
        need |= needs_thread(&r->lis[i]);
    if (!need)
        return 0;
    if (pthread_create(&r->thread, NULL, thread_main, r) != 0) {
        *err = strdup("cannot start the revocation thread");
        return -1;
    }
    r->started = 1;
    pthread_setname_np(r->thread, "gw-revoc");
    return 0;
}

void gw_revoc_reload(gw_revoc *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    r->reload = 1;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

void gw_revoc_free(gw_revoc *r)
{
    if (r == NULL)
        return;
    gw_revoc *self = r;
    atomic_compare_exchange_strong(&current, &self, NULL);
    if (r->started) {
        pthread_mutex_lock(&r->mu);
        r->stop = 1;
        pthread_cond_signal(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
    }
    for (size_t i = 0; i < r->n; i++) {
        rv_lis *l = &r->lis[i];
        for (size_t k = 0; k < l->tab.n; k++) {
            X509_free(l->ent[k]->leaf);
            X509_free(l->ent[k]->issuer);
            free(l->ent[k]->url);
            free(l->ent[k]);
        }
        free(l->ent);
        gw_rv_table_free(&l->tab);
        for (size_t k = 0; k < l->nstaples; k++) {
            X509_free(l->staples[k].cert);
            X509_free(l->staples[k].issuer);
            free(l->staples[k].url);
            free(l->staples[k].der);
        }
        X509_STORE_free(l->store);
        X509_STORE_free(l->trust);
        sk_X509_pop_free(l->cas, X509_free);
        pthread_mutex_destroy(&l->store_mu);
        pthread_rwlock_destroy(&l->tab_mu);
        pthread_mutex_destroy(&l->staple_mu);
    }
    free(r->lis);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

/* ---- metrics ---- */

static int has_ocsp(const rv_lis *l)
{
    return l->trust != NULL && l->rc->ocsp_mode != GW_OCSP_OFF;
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void ocsp_counts(rv_lis *l, time_t now, unsigned long by[5], long long *oldest)
{
    *oldest = 0;
    pthread_rwlock_rdlock(&l->tab_mu);
    for (size_t k = 0; k < l->tab.n; k++) {
        const gw_rv_status *s = &l->ent[k]->st;
        by[gw_rv_decide(s, now, l->rc->ocsp_refresh_s)]++;
        long long age = s->fetched_at != 0 ? (long long)(now - s->fetched_at) : -1;
        if (*oldest >= 0 && (age < 0 || age > *oldest))
            *oldest = age;
    }
    pthread_rwlock_unlock(&l->tab_mu);
}

char *gw_revoc_metrics(gw_revoc *r)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        return NULL;
    time_t now = time(NULL);
    size_t n = r != NULL ? r->n : 0;
    /* a family is written only with a sample (a listener using it) */
    int any_crl = 0, any_ocsp = 0, any_staple = 0, any_crl_next = 0;
    for (size_t i = 0; i < n; i++) {
        any_crl |= r->lis[i].crl_on;
        any_crl_next |= r->lis[i].crl_on && atomic_load(&r->lis[i].crl_next) != 0;
        any_ocsp |= has_ocsp(&r->lis[i]);
        any_staple |= r->lis[i].nstaples > 0;
    }
    if (any_crl)
        family(f, "opale_crl_reloads_total", "counter",
               "CRL loads (file change, SIGHUP, URL fetch) by outcome.");
    for (size_t i = 0; i < n; i++) {
        rv_lis *l = &r->lis[i];
        if (!l->crl_on)
            continue;
        fprintf(f, "opale_crl_reloads_total{listener=\"%s\",outcome=\"ok\"} %lu\n", l->conf->name,
                atomic_load(&l->crl_ok));
        fprintf(f, "opale_crl_reloads_total{listener=\"%s\",outcome=\"failed\"} %lu\n",
                l->conf->name, atomic_load(&l->crl_failed));
    }
    if (any_crl)
        family(f, "opale_crl_age_seconds", "gauge", "Seconds since the CRL in use was installed.");
    for (size_t i = 0; i < n; i++)
        if (r->lis[i].crl_on)
            fprintf(f, "opale_crl_age_seconds{listener=\"%s\"} %lld\n", r->lis[i].conf->name,
                    (long long)now - atomic_load(&r->lis[i].crl_loaded));
    if (any_crl_next)
        family(f, "opale_crl_next_update_seconds", "gauge",
               "Seconds until the nextUpdate of the CRL in use (negative: past).");
    for (size_t i = 0; i < n; i++) {
        long long nu = atomic_load(&r->lis[i].crl_next);
        if (r->lis[i].crl_on && nu != 0)
            fprintf(f, "opale_crl_next_update_seconds{listener=\"%s\"} %lld\n",
                    r->lis[i].conf->name, nu - (long long)now);
    }
    if (any_ocsp)
        family(f, "opale_ocsp_fetches_total", "counter",
               "OCSP queries for partner certificates by outcome.");
    for (size_t i = 0; i < n; i++) {
        rv_lis *l = &r->lis[i];
        if (!has_ocsp(l))
            continue;
        fprintf(f, "opale_ocsp_fetches_total{listener=\"%s\",outcome=\"ok\"} %lu\n", l->conf->name,
                atomic_load(&l->ocsp_ok));
        fprintf(f, "opale_ocsp_fetches_total{listener=\"%s\",outcome=\"failed\"} %lu\n",
                l->conf->name, atomic_load(&l->ocsp_failed));
    }
    if (any_ocsp)
        family(f, "opale_ocsp_soft_fail_total", "counter",
               "Handshakes accepted without a usable OCSP status (soft-fail).");
    for (size_t i = 0; i < n; i++)
        if (has_ocsp(&r->lis[i]))
            fprintf(f, "opale_ocsp_soft_fail_total{listener=\"%s\"} %lu\n", r->lis[i].conf->name,
                    atomic_load(&r->lis[i].ocsp_soft));
    /* both OCSP gauges from one pass per listener */
    unsigned long(*by)[5] = calloc(n ? n : 1, sizeof(*by));
    long long *oldest = calloc(n ? n : 1, sizeof(*oldest));
    for (size_t i = 0; by != NULL && oldest != NULL && i < n; i++)
        if (has_ocsp(&r->lis[i]))
            ocsp_counts(&r->lis[i], now, by[i], &oldest[i]);
    if (any_ocsp && by != NULL && oldest != NULL) {
        family(f, "opale_ocsp_certificates", "gauge",
               "Partner certificates tracked, by status now.");
        for (size_t i = 0; i < n; i++)
            for (int s = GW_RV_GOOD; s <= GW_RV_UNAVAILABLE && has_ocsp(&r->lis[i]); s++)
                fprintf(f, "opale_ocsp_certificates{listener=\"%s\",state=\"%s\"} %lu\n",
                        r->lis[i].conf->name, gw_rv_state_name((gw_rv_state)s), by[i][s]);
        family(f, "opale_ocsp_oldest_answer_age_seconds", "gauge",
               "Age of the oldest OCSP answer held (-1: a certificate has none).");
        for (size_t i = 0; i < n; i++)
            if (has_ocsp(&r->lis[i]))
                fprintf(f, "opale_ocsp_oldest_answer_age_seconds{listener=\"%s\"} %lld\n",
                        r->lis[i].conf->name, oldest[i]);
    }
    free(by);
    free(oldest);
    if (any_staple)
        family(f, "opale_ocsp_staple_fetches_total", "counter",
               "OCSP queries for the listener's own certificates (stapling) by outcome.");
    for (size_t i = 0; i < n; i++) {
        rv_lis *l = &r->lis[i];
        if (l->nstaples == 0)
            continue;
        fprintf(f, "opale_ocsp_staple_fetches_total{listener=\"%s\",outcome=\"ok\"} %lu\n",
                l->conf->name, atomic_load(&l->staple_ok));
        fprintf(f, "opale_ocsp_staple_fetches_total{listener=\"%s\",outcome=\"failed\"} %lu\n",
                l->conf->name, atomic_load(&l->staple_failed));
    }
    if (any_staple)
        family(f, "opale_ocsp_staple_age_seconds", "gauge",
               "Age of the staple held for each listener certificate (-1: none).");
    for (size_t i = 0; i < n; i++) {
        rv_lis *l = &r->lis[i];
        pthread_mutex_lock(&l->staple_mu);
        for (size_t k = 0; k < l->nstaples; k++)
            fprintf(f, "opale_ocsp_staple_age_seconds{listener=\"%s\",certificate=\"%zu\"} %lld\n",
                    l->conf->name, k,
                    l->staples[k].der != NULL ? (long long)(now - l->staples[k].fetched_at) : -1LL);
        pthread_mutex_unlock(&l->staple_mu);
    }
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
