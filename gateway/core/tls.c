#include "core/tls.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "lib/util.h"
#include "revoc/revoc.h"

/*
 * The connection's gw_tls_peer, for the verify callbacks, rides on the SSL
 * as the argument of its record-padding callback: a plain pointer in the
 * SSL that OpenSSL reads only to pass it to that callback, and the gateway
 * installs none (no SSL_CTX_set_record_padding_callback anywhere). An ex_data
 * index (SSL_set_ex_data) would allocate a stack and its array on each
 * SSL, 96 bytes of heap held for as long as the connection lives (S5).
 */
static gw_tls_peer *peer_of(SSL *ssl)
{
    return ssl != NULL ? SSL_get_record_padding_callback_arg(ssl) : NULL;
}

static const char *ossl_err(void)
{
    static __thread char buf[256];
    unsigned long e = ERR_peek_last_error();
    if (e == 0)
        return "unknown error";
    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return buf;
}

/* <md>: the certificate's SHA-256 when the caller has it, else NULL. */
static void describe_cert_md(X509 *x, gw_tls_peer *p, const unsigned char *md32)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (md32 != NULL) {
        gw_hex(md32, 32, p->sha256);
        p->has_cert = 1;
    } else if (X509_digest(x, gw_sha256_md(), md, &mdlen) == 1 && mdlen == 32) {
        gw_hex(md, 32, p->sha256);
        p->has_cert = 1;
    }
    /* A connection keeps the subject as long as it lives: its length, not
     * the 255 bytes it may take (the bench's S5 holds 10,000 connections). */
    BIO *b = BIO_new(BIO_s_mem());
    if (b != NULL) {
        char buf[256];
        X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
        int n = BIO_read(b, buf, (int)sizeof(buf) - 1);
        buf[n > 0 ? n : 0] = '\0';
        BIO_free(b);
        free(p->subject);
        p->subject = strdup(buf);
    }
    /* notAfter, for the cert.expiring security event */
    struct tm tm;
    const ASN1_TIME *na = X509_get0_notAfter(x);
    if (na != NULL && ASN1_TIME_to_tm(na, &tm) == 1)
        p->not_after = (long long)timegm(&tm);
}

static void describe_cert(X509 *x, gw_tls_peer *p)
{
    describe_cert_md(x, p, NULL);
}

/* Records what the chain check found without changing its verdict: the
 * journal must say why a certificate was refused and which one it was. */
static int verify_cb(int ok, X509_STORE_CTX *ctx)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(ctx, SSL_get_ex_data_X509_STORE_CTX_idx());
    gw_tls_peer *p = peer_of(ssl);
    if (p == NULL)
        return ok;
    int depth = X509_STORE_CTX_get_error_depth(ctx);
    if (depth == 0 && !p->has_cert) {
        X509 *x = X509_STORE_CTX_get_current_cert(ctx);
        if (x != NULL)
            describe_cert(x, p);
    }
    if (!p->has_cert) {
        /* the leaf is always available from the context */
        X509 *leaf = X509_STORE_CTX_get0_cert(ctx);
        if (leaf != NULL)
            describe_cert(leaf, p);
    }
    /* a CRL past its nextUpdate within crl_refresh.grace_s is still used */
    if (!ok && X509_STORE_CTX_get_error(ctx) == X509_V_ERR_CRL_HAS_EXPIRED &&
        gw_revoc_crl_grace(ssl))
        return 1;
    /* the chain is good: the OCSP status of the leaf, from the cache only */
    if (ok && depth == 0 && !p->revoc_asked) {
        p->revoc_asked = 1;
        p->revoc_refusal = gw_revoc_handshake(ssl, ctx);
        if (p->revoc_refusal != NULL) {
            X509_STORE_CTX_set_error(ctx, X509_V_ERR_APPLICATION_VERIFICATION);
            return 0;
        }
    }
    if (!ok && p->verify_err == 0)
        p->verify_err = X509_STORE_CTX_get_error(ctx);
    return ok;
}

/*
 * Verdicts kept per worker thread. A partner's client certificate is
 * checked at each of its handshakes: the chain built from the store, the
 * signatures of the certificate and of the CRL verified again (two ECDSA
 * verifications, 1.9 M of the 10.7 M instructions of an mTLS handshake).
 * What the check decides depends only on the certificates the client sent,
 * the store (client CAs and CRL) and the time: an accepted chain is kept,
 * keyed by the SHA-256 of the fingerprints of the certificates sent and by
 * the store's generation (revoc/revoc.h: a new CRL is a new store, so a
 * revocation takes effect at the next handshake), until the earliest
 * notAfter of the chain or the CRL's nextUpdate. A handshake that finds
 * its chain there skips X509_verify_cert, and takes the peer's description
 * (subject, notAfter) kept with the verdict instead of printing the same
 * leaf's subject again; the rest is as before: the leaf's fingerprint, the
 * OCSP decision (asked at each handshake; a refusal goes through the full
 * check, which records why), the client's CertificateVerify (OpenSSL's,
 * outside this callback). Only accepted
 * chains are kept: every refusal is the full check's, with its reason.
 * Direct-mapped (VC_SLOTS entries, the last verdict of a slot wins), made
 * on the thread's first handshake, freed when the thread ends.
 */
#define VC_SLOTS 1024u

typedef struct {
    unsigned char key[32];
    unsigned long long gen; /* the store's generation; 0: empty */
    time_t verified_at, until;
    /* the leaf's description (describe_cert_md), given to the handshakes
     * that find the verdict: the key holds the leaf's SHA-256, so it is the
     * same certificate, and its subject need not be printed again */
    char *subject;
    long long not_after;
} vc_entry;

static pthread_key_t vc_key;
static int vc_key_ok;
static pthread_once_t vc_once = PTHREAD_ONCE_INIT;
static __thread unsigned long vc_hits;

static void vc_free(void *arg)
{
    vc_entry *t = arg;
    for (unsigned i = 0; i < VC_SLOTS; i++)
        free(t[i].subject);
    free(t);
}

static void vc_init(void)
{
    vc_key_ok = pthread_key_create(&vc_key, vc_free) == 0;
}

static vc_entry *vc_slot(const unsigned char key[32])
{
    pthread_once(&vc_once, vc_init);
    if (!vc_key_ok)
        return NULL;
    vc_entry *t = pthread_getspecific(vc_key);
    if (t == NULL) {
        t = calloc(VC_SLOTS, sizeof(*t));
        if (t == NULL || pthread_setspecific(vc_key, t) != 0) {
            free(t);
            return NULL;
        }
    }
    unsigned h = (unsigned)key[0] | (unsigned)key[1] << 8 | (unsigned)key[2] << 16;
    return &t[h & (VC_SLOTS - 1)];
}

unsigned long gw_tls_verify_cache_hits(void)
{
    return vc_hits;
}

/* The key of the chain the client sent (<sent>, leaf first; NULL: the leaf
 * alone): SHA-256 over the fingerprints of its certificates. <leaf_md> is
 * the leaf's. 0, or -1. */
static int vc_chain_key(STACK_OF(X509) * sent, const unsigned char leaf_md[32],
                        unsigned char key[32])
{
    unsigned char buf[32 * 5];
    size_t n = 0;
    memcpy(buf, leaf_md, 32);
    n = 32;
    for (int i = 1; sent != NULL && i < sk_X509_num(sent); i++) {
        if (n + 32 > sizeof(buf))
            return -1; /* longer than the verify depth allows: not kept */
        unsigned int len = 0;
        if (X509_digest(sk_X509_value(sent, i), gw_sha256_md(), buf + n, &len) != 1 || len != 32)
            return -1;
        n += 32;
    }
    return gw_sha256(buf, n, key);
}

/* The earliest notAfter of <chain>, or 0 when one cannot be read. */
static time_t chain_until(STACK_OF(X509) * chain)
{
    time_t until = 0;
    for (int i = 0; chain != NULL && i < sk_X509_num(chain); i++) {
        struct tm tm;
        const ASN1_TIME *na = X509_get0_notAfter(sk_X509_value(chain, i));
        if (na == NULL || ASN1_TIME_to_tm(na, &tm) != 1)
            return 0;
        time_t t = timegm(&tm);
        if (until == 0 || t < until)
            until = t;
    }
    return until;
}

/* OpenSSL's certificate check of a client chain (SSL_CTX_set_cert_verify_
 * callback): a kept verdict, or X509_verify_cert (with verify_cb). */
static int cert_verify_cb(X509_STORE_CTX *xs, void *arg)
{
    (void)arg;
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    gw_tls_peer *p = peer_of(ssl);
    X509 *leaf = X509_STORE_CTX_get0_cert(xs);
    unsigned long long gen = 0;
    time_t crl_next = 0, now = time(NULL);
    unsigned char md[EVP_MAX_MD_SIZE], key[32];
    unsigned int mdlen = 0;
    vc_entry *e = NULL;
    int kept = 0;
    if (p != NULL && leaf != NULL && !p->has_cert &&
        X509_digest(leaf, gw_sha256_md(), md, &mdlen) == 1 && mdlen == 32) {
        if (gw_revoc_store_info(X509_STORE_CTX_get0_store(xs), &gen, &crl_next) &&
            vc_chain_key(X509_STORE_CTX_get0_untrusted(xs), md, key) == 0)
            e = vc_slot(key);
        kept = e != NULL && e->gen == gen && memcmp(e->key, key, 32) == 0 &&
               now >= e->verified_at && now < e->until;
        if (kept && e->subject != NULL) {
            /* the same leaf (its SHA-256 is in the key): described as the
             * full check described it */
            gw_hex(md, 32, p->sha256);
            p->has_cert = 1;
            free(p->subject);
            p->subject = strdup(e->subject);
            p->not_after = e->not_after;
        } else {
            describe_cert_md(leaf, p, md);
        }
    }
    ERR_clear_error();
    if (kept) {
        p->revoc_asked = 1;
        p->revoc_refusal = gw_revoc_handshake(ssl, xs);
        if (p->revoc_refusal == NULL) {
            vc_hits++;
            X509_STORE_CTX_set_error(xs, X509_V_OK);
            return 1;
        }
        /* refused by OCSP: the full check decides again and says why */
        p->revoc_asked = 0;
        p->revoc_refusal = NULL;
    }
    int ok = X509_verify_cert(xs);
    if (ok == 1 && e != NULL && p->revoc_refusal == NULL && p->verify_err == 0 &&
        X509_STORE_CTX_get_error(xs) == X509_V_OK) {
        time_t until = chain_until(X509_STORE_CTX_get0_chain(xs));
        if (crl_next != 0 && crl_next < until)
            until = crl_next;
        if (until > now) {
            memcpy(e->key, key, 32);
            e->gen = gen;
            e->verified_at = now;
            e->until = until;
            free(e->subject);
            e->subject = p->subject != NULL ? strdup(p->subject) : NULL;
            e->not_after = p->not_after;
        }
    }
    return ok;
}

/* A session offered for resumption skips the chain check: its certificate
 * would keep resuming (each resumption brings a new ticket) after a CRL
 * revoked it or after it expired. Its ticket is not used (a full handshake
 * follows, whose check refuses it with its reason) when the certificate
 * has expired, when the verify store's CRL for it is past its nextUpdate
 * (the full check applies the grace rule) or missing, or when that CRL
 * revokes it. No signature verified here: the store's CRLs were when the
 * store was built. */
static int resumable(SSL *ssl, const SSL_SESSION *ss)
{
    X509 *peer = SSL_SESSION_get0_peer((SSL_SESSION *)ss);
    if (peer == NULL)
        return 0;
    if (X509_cmp_time(X509_get0_notAfter(peer), NULL) <= 0)
        return 0;
    X509_STORE *st = NULL;
    if (SSL_get0_verify_cert_store(ssl, &st) != 1 || st == NULL)
        st = SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl));
    if (st == NULL)
        return 0;
    if ((X509_VERIFY_PARAM_get_flags(X509_STORE_get0_param(st)) & X509_V_FLAG_CRL_CHECK) == 0)
        return 1; /* no CRL on this listener */
    unsigned long long gen = 0;
    time_t crl_next = 0;
    if (!gw_revoc_store_info(st, &gen, &crl_next) || (crl_next != 0 && time(NULL) >= crl_next))
        return 0;
    int found = 0, ok = 1;
    STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(st);
    for (int i = 0; i < sk_X509_OBJECT_num(objs) && ok; i++) {
        X509_CRL *crl = X509_OBJECT_get0_X509_CRL(sk_X509_OBJECT_value(objs, i));
        if (crl == NULL || X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_issuer_name(peer)) != 0)
            continue;
        found = 1;
        X509_REVOKED *rev = NULL;
        if (X509_CRL_get0_by_cert(crl, &rev, peer) == 1)
            ok = 0;
    }
    ERR_clear_error();
    return found && ok;
}

static SSL_TICKET_RETURN ticket_dec_cb(SSL *ssl, SSL_SESSION *ss, const unsigned char *keyname,
                                       size_t keyname_len, SSL_TICKET_STATUS status, void *arg)
{
    (void)keyname, (void)keyname_len, (void)arg;
    switch (status) {
    case SSL_TICKET_SUCCESS:
        return resumable(ssl, ss) ? SSL_TICKET_RETURN_USE : SSL_TICKET_RETURN_IGNORE_RENEW;
    case SSL_TICKET_SUCCESS_RENEW:
        return resumable(ssl, ss) ? SSL_TICKET_RETURN_USE_RENEW : SSL_TICKET_RETURN_IGNORE_RENEW;
    case SSL_TICKET_FATAL_ERR_MALLOC:
    case SSL_TICKET_FATAL_ERR_OTHER:
        return SSL_TICKET_RETURN_ABORT;
    default: /* OpenSSL's own answer to an empty or undecryptable ticket */
        return SSL_TICKET_RETURN_IGNORE_RENEW;
    }
}

/* The offered protocol <want>/<wn> in the client's list, or NULL. */
static const unsigned char *alpn_find(const unsigned char *in, unsigned int inlen, const char *want,
                                      unsigned wn)
{
    for (unsigned int i = 0; i < inlen;) {
        unsigned int n = in[i];
        if (i + 1 + n > inlen)
            break;
        if (n == wn && memcmp(in + i + 1, want, wn) == 0)
            return in + i + 1;
        i += 1 + n;
    }
    return NULL;
}

/* Our preference: "h2" when the listener offers it (listeners[].http2.
 * enabled, <arg> non-NULL), then "http/1.1"; anything else offered: no ALPN
 * (HTTP/1.1; never HTTP/2 without ALPN). */
static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    const unsigned char *p = arg != NULL ? alpn_find(in, inlen, "h2", 2) : NULL;
    if (p != NULL) {
        *out = p;
        *outlen = 2;
        return SSL_TLSEXT_ERR_OK;
    }
    p = alpn_find(in, inlen, "http/1.1", 8);
    if (p != NULL) {
        *out = p;
        *outlen = 8;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

#define GW_TLS12_CIPHERS                                                                           \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* TLS 1.3: AES-128-GCM first, as in TLS 1.2 (the server's preference:
 * SSL_OP_CIPHER_SERVER_PREFERENCE), instead of OpenSSL's default
 * TLS_AES_256_GCM_SHA384 first. Its SHA-256 is the transcript hash and the
 * HKDF's (SHA-NI where the CPU has it), and a connection keeps two SHA-256
 * contexts instead of two SHA-384 ones for as long as it lives: 185 bytes
 * of heap per idle connection (S5). The three suites stay accepted. */
#define GW_TLS13_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

static int common_setup(SSL_CTX *ctx)
{
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        return -1;
    if (SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1)
        return -1;
    if (SSL_CTX_set_cipher_list(ctx, GW_TLS12_CIPHERS) != 1)
        return -1;
    if (SSL_CTX_set_ciphersuites(ctx, GW_TLS13_SUITES) != 1)
        return -1;
    if (SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384") != 1)
        return -1;
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Idle connections hold no record buffers (S5 of bench/README.md). */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return 0;
}

/* Each certificate of <ctx> without a chain from its file gets the chain
 * OpenSSL would build from <ctx>'s store at every handshake otherwise
 * (ssl_add_cert_chain's auto-chain: an X509_verify_cert of our own
 * certificate per handshake, its signature and the CRL's verified again,
 * 1.8 M of the 12.5 M instructions of an mTLS handshake): built once here,
 * from the same store, with the same tolerance of a chain that does not
 * reach a trusted root, it is the same chain on the wire. The store does
 * not change after start-up (revocation swaps the verify store of each
 * handshake, revoc/revoc.c, not this one). A chain that cannot be built
 * here (a CA below the security level) is left to the handshake, as
 * before. */
static void build_chains(SSL_CTX *ctx)
{
    X509 *current = SSL_CTX_get0_certificate(ctx);
    for (int r = SSL_CTX_set_current_cert(ctx, SSL_CERT_SET_FIRST); r == 1;
         r = SSL_CTX_set_current_cert(ctx, SSL_CERT_SET_NEXT)) {
        STACK_OF(X509) *chain = NULL;
        if (SSL_CTX_get0_chain_certs(ctx, &chain) == 1 && chain != NULL)
            continue; /* the file's chain is sent as it is */
        if (SSL_CTX_build_cert_chain(ctx, SSL_BUILD_CHAIN_FLAG_IGNORE_ERROR |
                                              SSL_BUILD_CHAIN_FLAG_CLEAR_ERROR) <= 0)
            ERR_clear_error();
    }
    if (current != NULL)
        SSL_CTX_select_current_cert(ctx, current); /* the last loaded, as before */
    ERR_clear_error();
}

SSL_CTX *gw_tls_server_ctx_new(const gw_conf_listener *l, size_t idx, char **err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL || common_setup(ctx) < 0) {
        *err = gw_strdupf("listeners[%zu].tls: cannot create TLS context: %s", idx, ossl_err());
        goto fail;
    }
    for (size_t i = 0; i < l->ncerts; i++) {
        if (SSL_CTX_use_certificate_chain_file(ctx, l->certs[i].cert) != 1) {
            *err = gw_strdupf("listeners[%zu].tls.certificates[%zu].cert: %s", idx, i, ossl_err());
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, l->certs[i].key, SSL_FILETYPE_PEM) != 1) {
            *err = gw_strdupf("listeners[%zu].tls.certificates[%zu].key: %s", idx, i, ossl_err());
            goto fail;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            *err = gw_strdupf(
                "listeners[%zu].tls.certificates[%zu]: key does not match certificate", idx, i);
            goto fail;
        }
    }
    if (l->client_auth == GW_CLIENT_AUTH_REQUIRED) {
        if (SSL_CTX_load_verify_locations(ctx, l->client_ca, NULL) != 1) {
            *err = gw_strdupf("listeners[%zu].tls.client_ca: %s", idx, ossl_err());
            goto fail;
        }
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(l->client_ca);
        if (names == NULL) {
            *err = gw_strdupf("listeners[%zu].tls.client_ca: no certificate found", idx);
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        if (l->crl != NULL) {
            X509_STORE *st = SSL_CTX_get_cert_store(ctx);
            if (X509_STORE_load_file(st, l->crl) != 1) {
                *err = gw_strdupf("listeners[%zu].tls.crl: %s", idx, ossl_err());
                goto fail;
            }
            X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK);
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb);
        SSL_CTX_set_verify_depth(ctx, 4);
        SSL_CTX_set_cert_verify_callback(ctx, cert_verify_cb, NULL);
        /* its verdicts are kept by generation (revoc/revoc.h): marked
         * once complete, before any handshake */
        gw_revoc_store_mark(SSL_CTX_get_cert_store(ctx));
        SSL_CTX_set_session_ticket_cb(ctx, NULL, ticket_dec_cb, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    /* Resumption with client certificates needs a session id context. */
    static const unsigned char sid_ctx[] = "opale-gateway";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    if (!l->session_tickets)
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    /* TLS 1.3: one ticket per handshake, not OpenSSL's default two. OpenSSL
     * 3.0 builds each stateless ticket from a fresh copy of the session,
     * decoded again from its DER (construct_stateless_ticket: i2d, d2i,
     * i2d; the peer certificate and its key through the provider
     * decoders): 1,630 of the 7,450 allocations of an mTLS handshake per
     * ticket, and handshakes per proxy CPU-second 310 -> 373 with one (the
     * bench's S4 load). A client resumes with the ticket it got, and each
     * resumption brings a new one. */
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, 20000);
    SSL_CTX_set_timeout(ctx, 3600);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, l->http2.enabled ? (void *)l : NULL);
    /* One read() per record (header and body together, and whatever came
     * after it) instead of a 5-byte header read then a body read. OpenSSL
     * then holds records bufferevent_openssl does not see (it looks only at
     * SSL_pending(), which counts decrypted bytes): core/conn.c activates
     * the read wherever some may be left (gw_bev_read_pending, core/bev.h).
     * Not on the upstream side (gw_tls_client_ctx_new), whose reads do not
     * check for them. */
    SSL_CTX_set_read_ahead(ctx, 1);
    build_chains(ctx);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

SSL_CTX *gw_tls_client_ctx_new(const gw_conf_upstream *u, size_t idx, char **err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL || common_setup(ctx) < 0) {
        *err = gw_strdupf("upstreams[%zu].tls: cannot create TLS context: %s", idx, ossl_err());
        goto fail;
    }
    if (SSL_CTX_load_verify_locations(ctx, u->tls_ca, NULL) != 1) {
        *err = gw_strdupf("upstreams[%zu].tls.ca: %s", idx, ossl_err());
        goto fail;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (u->tls_cert != NULL) {
        if (SSL_CTX_use_certificate_chain_file(ctx, u->tls_cert) != 1) {
            *err = gw_strdupf("upstreams[%zu].tls.cert: %s", idx, ossl_err());
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, u->tls_key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            *err = gw_strdupf("upstreams[%zu].tls.key: %s", idx, ossl_err());
            goto fail;
        }
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
    build_chains(ctx);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

void gw_tls_peer_clear(gw_tls_peer *peer)
{
    free(peer->subject);
    peer->subject = NULL;
}

void gw_tls_attach_peer(SSL *ssl, gw_tls_peer *peer)
{
    SSL_set_record_padding_callback_arg(ssl, peer); /* peer_of() */
}

void gw_tls_peer_complete(SSL *ssl, gw_tls_peer *peer)
{
    peer->version = SSL_get_version(ssl);
    if (!peer->has_cert) {
        X509 *x = SSL_get0_peer_certificate(ssl);
        if (x != NULL)
            describe_cert(x, peer);
    }
    /* The handshake is over: the server's certificates and keys are not
     * used again (no renegotiation: SSL_OP_NO_RENEGOTIATION; a TLS 1.3
     * ticket is sent before the handshake ends; a key update needs none).
     * SSL_new gave the connection its own copy of the context's (the
     * chain of each certificate duplicated): about 200 bytes of heap per
     * connection held idle (S5). */
    SSL_certs_clear(ssl);
}

const char *gw_tls_refusal_reason(const gw_tls_peer *peer, unsigned long ssl_err)
{
    if (peer->revoc_refusal != NULL)
        return peer->revoc_refusal;
    switch (peer->verify_err) {
    case 0:
        break;
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return "tls.cert_expired";
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return "tls.cert_not_yet_valid";
    case X509_V_ERR_CERT_REVOKED:
        return "tls.cert_revoked";
    case X509_V_ERR_UNABLE_TO_GET_CRL:
    case X509_V_ERR_CRL_HAS_EXPIRED:
    case X509_V_ERR_CRL_NOT_YET_VALID:
    case X509_V_ERR_CRL_SIGNATURE_FAILURE:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
        return "tls.crl";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
        return "tls.cert_unknown_ca";
    default:
        return "tls.cert_invalid";
    }
    if (ssl_err != 0) {
        int r = ERR_GET_REASON(ssl_err);
        if (r == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
            return "tls.no_cert";
        if (r == SSL_R_UNSUPPORTED_PROTOCOL || r == SSL_R_WRONG_VERSION_NUMBER ||
            r == SSL_R_NO_SHARED_CIPHER || r == SSL_R_HTTP_REQUEST || r == SSL_R_VERSION_TOO_LOW ||
            r == SSL_R_NO_PROTOCOLS_AVAILABLE)
            return "tls.protocol";
    }
    return "tls.handshake";
}
