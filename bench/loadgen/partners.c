/*
 * opale-loadgen: --partner-certs and --partner-headers (docs/loadgen.md):
 * connection i (0-based, over all threads) presents partner i's client
 * certificate and sends partner i's extra headers on each request, so that
 * one run plays many partners, each on its own connection (the bench's S8).
 *
 * --partner-certs FILE: PEM, per partner its certificate then its private
 * key, in order. --partner-headers FILE: one line per partner, its headers
 * ("Name: value") separated by tabs. Both are read before the run; -c must
 * not exceed the number of partners.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "loadgen.h"

struct lg_partner {
    X509 *cert;
    EVP_PKEY *key;
    STACK_OF(X509) * chain; /* sent above cert: shared by the partners of one issuer */
    char *hdr;              /* "Name: value\r\n"..., NUL-terminated */
    size_t hdr_len;
};

static struct lg_partner *g_partners;
#define LG_CHAINS 8
static STACK_OF(X509) * g_chains[LG_CHAINS]; /* by issuer (lg_load_partners) */
static size_t g_nchains;
static size_t g_npartners;
size_t lg_partner_hdr_max;

static struct lg_partner *partner_at(size_t i)
{
    if (i >= g_npartners) {
        size_t n = g_npartners ? g_npartners * 2 : 1024;
        while (n <= i)
            n *= 2;
        struct lg_partner *p = realloc(g_partners, n * sizeof *p);
        if (!p)
            lg_die("out of memory");
        memset(p + g_npartners, 0, (n - g_npartners) * sizeof *p);
        g_partners = p;
        g_npartners = n;
    }
    return &g_partners[i];
}

/* Reads certificate + key pairs; returns how many. */
static size_t load_certs(const char *path)
{
    BIO *bio = BIO_new_file(path, "r");
    if (!bio)
        lg_tls_die(path);
    size_t n = 0;
    for (;;) {
        ERR_clear_error();
        X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (!x) {
            unsigned long e = ERR_peek_last_error();
            if (n > 0 && ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
                break; /* the end of the file */
            BIO_free(bio);
            lg_tls_die("--partner-certs: certificate");
        }
        EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
        if (!k) {
            X509_free(x);
            BIO_free(bio);
            lg_tls_die("--partner-certs: private key after a certificate");
        }
        if (X509_check_private_key(x, k) != 1) {
            X509_free(x);
            EVP_PKEY_free(k);
            BIO_free(bio);
            lg_die("--partner-certs: partner %zu: the key does not match the certificate", n + 1);
        }
        struct lg_partner *p = partner_at(n);
        p->cert = x;
        p->key = k;
        n++;
    }
    ERR_clear_error();
    BIO_free(bio);
    return n;
}

/* Reads the header lines; returns how many. */
static size_t load_headers(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        lg_die("--partner-headers: %s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0, n = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        struct lg_partner *p = partner_at(n);
        char *out = malloc((size_t)len * 2 + 3);
        if (!out)
            lg_die("out of memory");
        size_t o = 0;
        char *save = NULL;
        for (char *h = strtok_r(line, "\t", &save); h; h = strtok_r(NULL, "\t", &save)) {
            size_t nl = lg_header_name_len(h);
            if (nl == 0 || strlen(h) > MAX_HEADER_LEN)
                lg_die("--partner-headers: line %zu: expected 'Name: value' separated by tabs",
                       n + 1);
            const char *v = h + nl + 1;
            while (*v == ' ')
                v++;
            o += (size_t)sprintf(out + o, "%.*s: %s\r\n", (int)nl, h, v);
        }
        p->hdr = out;
        p->hdr_len = o;
        if (o > lg_partner_hdr_max)
            lg_partner_hdr_max = o;
        n++;
    }
    free(line);
    if (ferror(f))
        lg_die("--partner-headers: %s: read error", path);
    fclose(f);
    return n;
}

void lg_load_partners(void)
{
    size_t nc = 0, nh = 0;
    if (lg_opt.partner_certs)
        nc = load_certs(lg_opt.partner_certs);
    if (lg_opt.partner_headers)
        nh = load_headers(lg_opt.partner_headers);
    if (lg_opt.partner_certs && lg_opt.partner_headers && nc != nh)
        lg_die("--partner-certs has %zu partners, --partner-headers %zu lines", nc, nh);
    size_t n = lg_opt.partner_certs ? nc : nh;
    if ((size_t)lg_opt.conns > n)
        lg_die("-c %ld: more connections than partners (%zu)", lg_opt.conns, n);
    /* Each partner's chain, built once per issuer instead of by OpenSSL's
     * auto-chain at each connection (the partner's certificate checked
     * against the store, an ECDSA verification): the same certificates
     * sent, less CPU in S8's connect phase. */
    X509 *issuer_of[LG_CHAINS] = {NULL};
    size_t nissuers = 0;
    for (size_t i = 0; i < nc; i++) {
        struct lg_partner *p = &g_partners[i];
        size_t k = 0;
        while (k < nissuers && X509_NAME_cmp(X509_get_issuer_name(issuer_of[k]),
                                             X509_get_issuer_name(p->cert)) != 0)
            k++;
        if (k == nissuers && nissuers < LG_CHAINS) {
            g_chains[k] = lg_tls_chain_of(p->cert);
            issuer_of[k] = p->cert;
            nissuers++;
        }
        p->chain = k < nissuers ? g_chains[k] : NULL; /* NULL: the auto-chain, as before */
    }
    g_nchains = nissuers;
}

int lg_partner_ssl(SSL *ssl, uint64_t gid)
{
    if (!lg_opt.partner_certs)
        return 0;
    const struct lg_partner *p = &g_partners[gid];
    if (SSL_use_certificate(ssl, p->cert) != 1 || SSL_use_PrivateKey(ssl, p->key) != 1 ||
        (p->chain != NULL && SSL_set1_chain(ssl, p->chain) != 1))
        return -1;
    return 0;
}

size_t lg_partner_headers(uint64_t gid, char *out)
{
    if (!lg_opt.partner_headers)
        return 0;
    const struct lg_partner *p = &g_partners[gid];
    memcpy(out, p->hdr, p->hdr_len);
    return p->hdr_len;
}

void lg_free_partners(void)
{
    for (size_t i = 0; i < g_npartners; i++) {
        X509_free(g_partners[i].cert);
        EVP_PKEY_free(g_partners[i].key);
        free(g_partners[i].hdr);
    }
    free(g_partners);
    g_partners = NULL;
    g_npartners = 0;
    for (size_t k = 0; k < g_nchains; k++)
        sk_X509_pop_free(g_chains[k], X509_free);
    g_nchains = 0;
}
