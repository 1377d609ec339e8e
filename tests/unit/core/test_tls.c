/* Unit tests for gateway/core/tls.c without the event loop: a PKI made at
 * test time with OpenSSL (a CA, a server certificate, client certificates
 * valid, expired, not yet valid, revoked by a CRL, from another CA), the
 * contexts' settings (TLS 1.2 to 1.3 only, client certificate required and
 * verified, depth, tickets, the CA list sent), their located errors, and
 * handshakes over memory BIOs that show what the verify callback records
 * (fingerprint, subject, notAfter, the first X509 error) and the journal
 * reason of each refusal. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "../common.h"
#include "core/tls.h"
#include "revoc/revoc.h"

static char dir[64];
static char crl_ok_pem[128];
static char ca_pem[128], ca2_pem[128], crl_pem[128], srv_pem[128], srv_key[128], other_key[128];
static EVP_PKEY *ca_key, *ca2_key, *cli_key;
static X509 *ca, *ca2;
static X509 *cli_ok, *cli_expired, *cli_future, *cli_revoked, *cli_foreign;
static long serial = 1;

static void die(const char *what)
{
    fprintf(stderr, "test_tls: setup: %s\n", what);
    ERR_print_errors_fp(stderr);
    abort();
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (e == NULL || X509_add_ext(x, e, -1) != 1)
        die("extension");
    X509_EXTENSION_free(e);
}

/* A certificate for <key> named <cn>, valid from now + <from_s> to now +
 * <to_s>, signed by <issuer> (NULL: self-signed, a CA). */
static X509 *mkcert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, long from_s,
                    long to_s)
{
    X509 *x = X509_new();
    if (x == NULL)
        die("X509_new");
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), from_s);
    X509_gmtime_adj(X509_getm_notAfter(x), to_s);
    X509_set_pubkey(x, key);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"Test", -1, -1, 0);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : n);
    if (issuer == NULL) {
        add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(x, issuer, NID_basic_constraints, "CA:FALSE");
    }
    if (X509_sign(x, issuer_key != NULL ? issuer_key : key, EVP_sha256()) == 0)
        die("X509_sign");
    return x;
}

static void write_cert(const char *path, X509 *x)
{
    FILE *f = fopen(path, "w");
    if (f == NULL || PEM_write_X509(f, x) != 1)
        die(path);
    fclose(f);
}

static void write_key(const char *path, EVP_PKEY *k)
{
    FILE *f = fopen(path, "w");
    if (f == NULL || PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) != 1)
        die(path);
    fclose(f);
}

/* A CRL of <ca> revoking <revoked>. */
static void write_crl(const char *path, X509 *revoked)
{
    X509_CRL *crl = X509_CRL_new();
    X509_CRL_set_version(crl, 1);
    X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca));
    ASN1_TIME *t = ASN1_TIME_adj(NULL, time(NULL), -1, 0);
    X509_CRL_set1_lastUpdate(crl, t);
    ASN1_TIME_adj(t, time(NULL), 30, 0);
    X509_CRL_set1_nextUpdate(crl, t);
    X509_REVOKED *r = X509_REVOKED_new();
    X509_REVOKED_set_serialNumber(r, X509_get_serialNumber(revoked));
    ASN1_TIME_adj(t, time(NULL), -1, 0);
    X509_REVOKED_set_revocationDate(r, t);
    X509_CRL_add0_revoked(crl, r);
    X509_CRL_sort(crl);
    if (X509_CRL_sign(crl, ca_key, EVP_sha256()) == 0)
        die("X509_CRL_sign");
    FILE *f = fopen(path, "w");
    if (f == NULL || PEM_write_X509_CRL(f, crl) != 1)
        die(path);
    fclose(f);
    ASN1_TIME_free(t);
    X509_CRL_free(crl);
}

static void pki_make(void)
{
    strcpy(dir, "/tmp/test_tls.XXXXXX");
    if (mkdtemp(dir) == NULL)
        die("mkdtemp");
    snprintf(ca_pem, sizeof(ca_pem), "%s/ca.pem", dir);
    snprintf(ca2_pem, sizeof(ca2_pem), "%s/ca2.pem", dir);
    snprintf(crl_pem, sizeof(crl_pem), "%s/crl.pem", dir);
    snprintf(crl_ok_pem, sizeof(crl_ok_pem), "%s/crl-ok.pem", dir);
    snprintf(srv_pem, sizeof(srv_pem), "%s/server.pem", dir);
    snprintf(srv_key, sizeof(srv_key), "%s/server.key", dir);
    snprintf(other_key, sizeof(other_key), "%s/other.key", dir);
    const long day = 86400;
    ca_key = EVP_EC_gen("P-256");
    ca2_key = EVP_EC_gen("P-256");
    cli_key = EVP_EC_gen("P-256");
    EVP_PKEY *srv_k = EVP_EC_gen("P-256"), *other = EVP_EC_gen("P-256");
    if (ca_key == NULL || ca2_key == NULL || cli_key == NULL || srv_k == NULL || other == NULL)
        die("EVP_EC_gen");
    ca = mkcert(ca_key, "test-ca", NULL, NULL, -day, 30 * day);
    ca2 = mkcert(ca2_key, "other-ca", NULL, NULL, -day, 30 * day);
    X509 *srv = mkcert(srv_k, "localhost", ca, ca_key, -day, 30 * day);
    cli_ok = mkcert(cli_key, "client-ok", ca, ca_key, -day, 10 * day);
    cli_expired = mkcert(cli_key, "client-expired", ca, ca_key, -3 * day, -day);
    cli_future = mkcert(cli_key, "client-future", ca, ca_key, day, 10 * day);
    cli_revoked = mkcert(cli_key, "client-revoked", ca, ca_key, -day, 10 * day);
    cli_foreign = mkcert(cli_key, "client-foreign", ca2, ca2_key, -day, 10 * day);
    write_cert(ca_pem, ca);
    write_cert(ca2_pem, ca2);
    write_cert(srv_pem, srv);
    write_key(srv_key, srv_k);
    write_key(other_key, other);
    write_crl(crl_pem, cli_revoked);
    write_crl(crl_ok_pem, cli_ok);
    X509_free(srv);
    EVP_PKEY_free(srv_k);
    EVP_PKEY_free(other);
}

static void pki_free(void)
{
    X509 *all[] = {ca, ca2, cli_ok, cli_expired, cli_future, cli_revoked, cli_foreign};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        X509_free(all[i]);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(ca2_key);
    EVP_PKEY_free(cli_key);
    const char *files[] = {ca_pem, ca2_pem, crl_pem, crl_ok_pem, srv_pem, srv_key, other_key};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        unlink(files[i]);
    rmdir(dir);
}

/* A listener with the server certificate, requiring client certificates
 * of the test CA. */
static gw_conf_certpair pair;
static gw_conf_listener listener(void)
{
    gw_conf_listener l;
    memset(&l, 0, sizeof(l));
    pair.cert = srv_pem;
    pair.key = srv_key;
    l.name = "public";
    l.certs = &pair;
    l.ncerts = 1;
    l.client_ca = ca_pem;
    l.client_auth = GW_CLIENT_AUTH_REQUIRED;
    l.session_tickets = 1;
    return l;
}

START_TEST(t_server_ctx_settings)
{
    gw_conf_listener l = listener();
    char *err = NULL;
    SSL_CTX *ctx = gw_tls_server_ctx_new(&l, 0, &err);
    ck_assert_msg(ctx != NULL, "%s", err ? err : "");
    ck_assert_int_eq(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
    ck_assert_int_eq(SSL_CTX_get_max_proto_version(ctx), TLS1_3_VERSION);
    uint64_t want =
        SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE;
    ck_assert((SSL_CTX_get_options(ctx) & want) == want);
    ck_assert((SSL_CTX_get_options(ctx) & SSL_OP_NO_TICKET) == 0);
    ck_assert_int_eq(SSL_CTX_get_verify_mode(ctx),
                     SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
    ck_assert_ptr_nonnull(SSL_CTX_get_verify_callback(ctx));
    ck_assert_int_eq(SSL_CTX_get_verify_depth(ctx), 4);
    /* the CA list sent in the CertificateRequest: the test CA only */
    STACK_OF(X509_NAME) *names = SSL_CTX_get_client_CA_list(ctx);
    ck_assert_int_eq(sk_X509_NAME_num(names), 1);
    ck_assert_int_eq(X509_NAME_cmp(sk_X509_NAME_value(names, 0), X509_get_subject_name(ca)), 0);
    /* no CRL configured: no CRL check */
    X509_VERIFY_PARAM *vp = X509_STORE_get0_param(SSL_CTX_get_cert_store(ctx));
    ck_assert((X509_VERIFY_PARAM_get_flags(vp) & X509_V_FLAG_CRL_CHECK) == 0);
    /* the server certificate's chain (its file has none) is built once
     * here, not by OpenSSL's auto-chain at every handshake: the test CA,
     * from the store, as the auto-chain would send it */
    STACK_OF(X509) *chain = NULL;
    ck_assert_int_eq(SSL_CTX_get0_chain_certs(ctx, &chain), 1);
    ck_assert_ptr_nonnull(chain);
    ck_assert_int_eq(sk_X509_num(chain), 1);
    ck_assert_int_eq(X509_cmp(sk_X509_value(chain, 0), ca), 0);
    SSL_CTX_free(ctx);

    /* tickets off, a CRL, client_auth none */
    l.session_tickets = 0;
    l.crl = crl_pem;
    ctx = gw_tls_server_ctx_new(&l, 0, &err);
    ck_assert_ptr_nonnull(ctx);
    ck_assert((SSL_CTX_get_options(ctx) & SSL_OP_NO_TICKET) != 0);
    vp = X509_STORE_get0_param(SSL_CTX_get_cert_store(ctx));
    ck_assert((X509_VERIFY_PARAM_get_flags(vp) & X509_V_FLAG_CRL_CHECK) != 0);
    SSL_CTX_free(ctx);
    l.client_auth = GW_CLIENT_AUTH_NONE;
    l.client_ca = NULL;
    l.crl = NULL;
    ctx = gw_tls_server_ctx_new(&l, 0, &err);
    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_NONE);
    ck_assert_int_eq(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
    SSL_CTX_free(ctx);
}
END_TEST

/* Each bad file is named by its place in the configuration. */
START_TEST(t_server_ctx_errors)
{
    struct {
        const char *what;
        const char *want; /* the error's beginning */
    } cases[] = {
        {"cert", "listeners[3].tls.certificates[0].cert: "},
        {"key", "listeners[3].tls.certificates[0].key: "},
        /* OpenSSL 3 finds the mismatch when the key is loaded */
        {"mismatch", "listeners[3].tls.certificates[0].key: "},
        {"client_ca", "listeners[3].tls.client_ca: "},
        {"client_ca_empty", "listeners[3].tls.client_ca: "},
        {"crl", "listeners[3].tls.crl: "},
    };
    char missing[160], empty[160];
    snprintf(missing, sizeof(missing), "%s/missing.pem", dir);
    snprintf(empty, sizeof(empty), "%s/empty.pem", dir);
    FILE *f = fopen(empty, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        gw_conf_listener l = listener();
        gw_conf_certpair p = pair;
        l.certs = &p;
        if (strcmp(cases[i].what, "cert") == 0)
            p.cert = missing;
        else if (strcmp(cases[i].what, "key") == 0)
            p.key = missing;
        else if (strcmp(cases[i].what, "mismatch") == 0)
            p.key = other_key;
        else if (strcmp(cases[i].what, "client_ca") == 0)
            l.client_ca = missing;
        else if (strcmp(cases[i].what, "client_ca_empty") == 0)
            l.client_ca = empty;
        else
            l.crl = missing;
        char *err = NULL;
        SSL_CTX *ctx = gw_tls_server_ctx_new(&l, 3, &err);
        ck_assert_msg(ctx == NULL, "%s: accepted", cases[i].what);
        ck_assert_ptr_nonnull(err);
        ck_assert_msg(strncmp(err, cases[i].want, strlen(cases[i].want)) == 0, "%s: %s",
                      cases[i].what, err);
        free(err);
    }
    unlink(empty);
}
END_TEST

START_TEST(t_client_ctx)
{
    gw_conf_upstream u;
    memset(&u, 0, sizeof(u));
    u.tls = 1;
    u.tls_ca = ca_pem;
    char *err = NULL;
    SSL_CTX *ctx = gw_tls_client_ctx_new(&u, 1, &err);
    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_PEER);
    ck_assert_int_eq(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
    SSL_CTX_free(ctx);
    /* upstream mTLS: a certificate and its key */
    u.tls_cert = srv_pem;
    u.tls_key = srv_key;
    ctx = gw_tls_client_ctx_new(&u, 1, &err);
    ck_assert_ptr_nonnull(ctx);
    SSL_CTX_free(ctx);
    u.tls_key = other_key;
    ck_assert_ptr_null(gw_tls_client_ctx_new(&u, 1, &err));
    ck_assert_msg(strncmp(err, "upstreams[1].tls.key: ", 22) == 0, "%s", err);
    free(err);
    u.tls_cert = NULL;
    u.tls_ca = "/nonexistent/ca.pem";
    ck_assert_ptr_null(gw_tls_client_ctx_new(&u, 1, &err));
    ck_assert_msg(strncmp(err, "upstreams[1].tls.ca: ", 21) == 0, "%s", err);
    free(err);
}
END_TEST

/* ---- handshakes over a BIO pair ---- */

typedef struct {
    int ok;                /* the server completed the handshake */
    unsigned long ssl_err; /* the server's first queued error when it failed */
    gw_tls_peer peer;      /* what the server recorded (its subject: below) */
    char subject[256];     /* peer.subject, copied before it is freed */
    char alpn[32];         /* the protocol the server chose, "" none */
    int server_chain;      /* certificates the client received */
} hs_result;

/* A client context trusting the test CA, with <cert> (NULL: none),
 * between TLS <minv> and <maxv>. */
static SSL_CTX *client_ctx(X509 *cert, int minv, int maxv)
{
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(c);
    SSL_CTX_set_security_level(c, 0); /* lets the client offer TLS 1.1 */
    SSL_CTX_set_min_proto_version(c, minv);
    SSL_CTX_set_max_proto_version(c, maxv);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(c), ca);
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    if (cert != NULL) {
        ck_assert_int_eq(SSL_CTX_use_certificate(c, cert), 1);
        ck_assert_int_eq(SSL_CTX_use_PrivateKey(c, cli_key), 1);
    }
    return c;
}

/* The server's verify store for the next handshakes (NULL: the context's),
 * as revoc/revoc.c hands one to each handshake when it manages a CRL. */
static X509_STORE *hs_store;

/* A server SSL of <sctx> and a client SSL of <cctx> joined by an
 * in-memory BIO pair, the server accepting and the client connecting. */
static void bio_pair(SSL_CTX *sctx, SSL_CTX *cctx, SSL **s, SSL **c)
{
    *s = SSL_new(sctx);
    *c = SSL_new(cctx);
    ck_assert(*s != NULL && *c != NULL);
    BIO *sb = NULL, *cb = NULL;
    ck_assert_int_eq(BIO_new_bio_pair(&sb, 0, &cb, 0), 1);
    SSL_set_bio(*s, sb, sb);
    SSL_set_bio(*c, cb, cb);
    SSL_set_accept_state(*s);
    SSL_set_connect_state(*c);
}

/* Pump both ends of an in-memory pair until the server's handshake ends:
 * 1 when it succeeded, 0 when it failed (the server's errors still
 * queued), -1 when it had not ended after 40 rounds. */
static int pump(SSL *s, SSL *c)
{
    int cdone = 0;
    for (int round = 0; round < 40; round++) {
        if (!cdone) {
            int rc = SSL_do_handshake(c);
            int e = rc == 1 ? 0 : SSL_get_error(c, rc);
            if (rc == 1 || (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE))
                cdone = 1;
        }
        ERR_clear_error();
        int rs = SSL_do_handshake(s);
        if (rs == 1)
            return 1;
        int e = SSL_get_error(s, rs);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            return 0;
    }
    return -1;
}

static void handshake(SSL_CTX *sctx, SSL_CTX *cctx, const unsigned char *alpn, unsigned alpn_len,
                      hs_result *r)
{
    memset(r, 0, sizeof(*r));
    SSL *s, *c;
    bio_pair(sctx, cctx, &s, &c);
    if (hs_store != NULL)
        SSL_set1_verify_cert_store(s, hs_store); /* as revoc's client hello callback */
    SSL_set_tlsext_host_name(c, "localhost");
    if (alpn != NULL)
        SSL_set_alpn_protos(c, alpn, alpn_len);
    gw_tls_attach_peer(s, &r->peer);
    int done = pump(s, c);
    ck_assert_msg(done >= 0, "the handshake did not end");
    r->ok = done == 1;
    r->ssl_err = r->ok ? 0 : ERR_peek_error();
    if (r->ok) {
        STACK_OF(X509) *sent = SSL_get_peer_cert_chain(c);
        r->server_chain = sent != NULL ? sk_X509_num(sent) : 0;
        gw_tls_peer_complete(s, &r->peer);
        const unsigned char *p = NULL;
        unsigned n = 0;
        SSL_get0_alpn_selected(s, &p, &n);
        if (n > 0 && n < sizeof(r->alpn)) {
            memcpy(r->alpn, p, n);
            r->alpn[n] = '\0';
        }
    }
    if (r->peer.subject != NULL)
        snprintf(r->subject, sizeof(r->subject), "%s", r->peer.subject);
    gw_tls_peer_clear(&r->peer);
    ck_assert_ptr_null(r->peer.subject);
    ERR_clear_error();
    SSL_free(s);
    SSL_free(c);
}

static SSL_CTX *server_ctx(int with_crl)
{
    gw_conf_listener l = listener();
    if (with_crl)
        l.crl = crl_pem;
    char *err = NULL;
    SSL_CTX *ctx = gw_tls_server_ctx_new(&l, 0, &err);
    ck_assert_msg(ctx != NULL, "%s", err ? err : "");
    return ctx;
}

static void hex_sha256(X509 *x, char out[65])
{
    unsigned char md[32];
    unsigned n = 0;
    ck_assert_int_eq(X509_digest(x, EVP_sha256(), md, &n), 1);
    for (unsigned i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", md[i]);
}

START_TEST(t_handshake_accepted)
{
    SSL_CTX *s = server_ctx(1);
    const int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    const char *names[] = {"TLSv1.2", "TLSv1.3"};
    for (int i = 0; i < 2; i++) {
        SSL_CTX *c = client_ctx(cli_ok, versions[i], versions[i]);
        hs_result r;
        handshake(s, c, NULL, 0, &r);
        ck_assert_msg(r.ok, "%s refused: %lx", names[i], r.ssl_err);
        ck_assert_str_eq(r.peer.version, names[i]);
        ck_assert_int_eq(r.peer.has_cert, 1);
        ck_assert_int_eq(r.peer.verify_err, 0);
        char want[65];
        hex_sha256(cli_ok, want);
        ck_assert_str_eq(r.peer.sha256, want);
        ck_assert_str_eq(r.subject, "CN=client-ok,O=Test");
        ck_assert_int_eq(r.server_chain, 2); /* ours and the CA, as the auto-chain sent */
        long long expect = (long long)time(NULL) + 10 * 86400;
        ck_assert_msg(r.peer.not_after >= expect - 120 && r.peer.not_after <= expect + 5,
                      "not_after %lld, expected about %lld", r.peer.not_after, expect);
        SSL_CTX_free(c);
    }
    SSL_CTX_free(s);
}
END_TEST

/* Each refused client certificate: the server fails, the peer is still
 * described (fingerprint), and the journal reason says why. */
START_TEST(t_handshake_refused)
{
    struct {
        X509 **cert;
        int want_err;
        const char *reason;
    } cases[] = {
        {&cli_expired, X509_V_ERR_CERT_HAS_EXPIRED, "tls.cert_expired"},
        {&cli_future, X509_V_ERR_CERT_NOT_YET_VALID, "tls.cert_not_yet_valid"},
        {&cli_revoked, X509_V_ERR_CERT_REVOKED, "tls.cert_revoked"},
        {&cli_foreign, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, "tls.cert_unknown_ca"},
    };
    SSL_CTX *s = server_ctx(1);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
            SSL_CTX *c = client_ctx(*cases[i].cert, v, v);
            hs_result r;
            handshake(s, c, NULL, 0, &r);
            ck_assert_msg(!r.ok, "%s accepted", cases[i].reason);
            ck_assert_int_eq(r.peer.verify_err, cases[i].want_err);
            ck_assert_int_eq(r.peer.has_cert, 1);
            char want[65];
            hex_sha256(*cases[i].cert, want);
            ck_assert_str_eq(r.peer.sha256, want);
            ck_assert_str_eq(gw_tls_refusal_reason(&r.peer, r.ssl_err), cases[i].reason);
            SSL_CTX_free(c);
        }
    }
    SSL_CTX_free(s);
}
END_TEST

/* A verify store of the test CA and <crl>, CRL checking on, marked (a
 * generation of its own) unless <unmarked>. */
static X509_STORE *store_with(const char *crl, int unmarked)
{
    X509_STORE *st = X509_STORE_new();
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(X509_STORE_add_cert(st, ca), 1);
    ck_assert_int_eq(X509_STORE_load_file(st, crl), 1);
    X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK);
    if (!unmarked)
        ck_assert_int_eq(gw_revoc_store_mark(st), 0);
    return st;
}

/* An accepted chain is kept: the next handshake of the same certificate
 * skips the chain check and describes the peer the same way; a refused
 * one never is; a new store (a new CRL) checks it again, and refuses it
 * when the CRL revokes it; a store without a mark keeps nothing. */
START_TEST(t_verdict_kept)
{
    SSL_CTX *s = server_ctx(1);
    char want[65];
    hex_sha256(cli_ok, want);
    for (int v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
        SSL_CTX *c = client_ctx(cli_ok, v, v);
        hs_result r, first;
        unsigned long h0 = gw_tls_verify_cache_hits();
        handshake(s, c, NULL, 0, &first);
        ck_assert(first.ok);
        handshake(s, c, NULL, 0, &r);
        ck_assert_msg(r.ok, "the kept verdict refused: %lx", r.ssl_err);
        ck_assert_int_eq(r.peer.has_cert, 1);
        ck_assert_int_eq(r.peer.verify_err, 0);
        ck_assert_str_eq(r.peer.sha256, want);
        ck_assert_str_eq(r.subject, "CN=client-ok,O=Test");
        ck_assert(r.peer.not_after > (long long)time(NULL));
        /* a kept verdict describes the peer as the full check did (the
         * subject and notAfter kept with it, not printed again) */
        ck_assert_str_eq(r.subject, first.subject);
        ck_assert_str_eq(r.peer.sha256, first.peer.sha256);
        ck_assert(r.peer.not_after == first.peer.not_after);
        /* the first (TLS 1.2) handshake may already find it: at least one */
        ck_assert_uint_ge(gw_tls_verify_cache_hits(), h0 + 1);
        SSL_CTX_free(c);
    }
    /* refused: checked again each time, never from a kept verdict */
    SSL_CTX *c = client_ctx(cli_revoked, TLS1_3_VERSION, TLS1_3_VERSION);
    unsigned long h0 = gw_tls_verify_cache_hits();
    for (int i = 0; i < 2; i++) {
        hs_result r;
        handshake(s, c, NULL, 0, &r);
        ck_assert(!r.ok);
        ck_assert_str_eq(gw_tls_refusal_reason(&r.peer, r.ssl_err), "tls.cert_revoked");
    }
    ck_assert_uint_eq(gw_tls_verify_cache_hits(), h0);
    SSL_CTX_free(c);
    /* a new CRL revoking the kept certificate: refused at the next
     * handshake, with the full check's reason */
    c = client_ctx(cli_ok, TLS1_3_VERSION, TLS1_3_VERSION);
    hs_store = store_with(crl_ok_pem, 0);
    h0 = gw_tls_verify_cache_hits();
    hs_result r;
    handshake(s, c, NULL, 0, &r);
    ck_assert_msg(!r.ok, "a certificate revoked by the new CRL was accepted");
    ck_assert_int_eq(r.peer.verify_err, X509_V_ERR_CERT_REVOKED);
    ck_assert_str_eq(gw_tls_refusal_reason(&r.peer, r.ssl_err), "tls.cert_revoked");
    ck_assert_uint_eq(gw_tls_verify_cache_hits(), h0);
    X509_STORE_free(hs_store);
    /* a store nobody marked: accepted, checked every time */
    hs_store = store_with(crl_pem, 1);
    for (int i = 0; i < 2; i++) {
        handshake(s, c, NULL, 0, &r);
        ck_assert(r.ok);
    }
    ck_assert_uint_eq(gw_tls_verify_cache_hits(), h0);
    X509_STORE_free(hs_store);
    hs_store = NULL;
    SSL_CTX_free(c);
    SSL_CTX_free(s);
}
END_TEST

/* No client certificate, or an old protocol: refused before any
 * certificate is seen. */
START_TEST(t_handshake_no_cert_old_protocol)
{
    SSL_CTX *s = server_ctx(0);
    for (int v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
        SSL_CTX *c = client_ctx(NULL, v, v);
        hs_result r;
        handshake(s, c, NULL, 0, &r);
        ck_assert(!r.ok);
        ck_assert_int_eq(r.peer.has_cert, 0);
        ck_assert_str_eq(gw_tls_refusal_reason(&r.peer, r.ssl_err), "tls.no_cert");
        SSL_CTX_free(c);
    }
    SSL_CTX *c = client_ctx(cli_ok, TLS1_VERSION, TLS1_1_VERSION);
    hs_result r;
    handshake(s, c, NULL, 0, &r);
    ck_assert(!r.ok);
    ck_assert_int_eq(r.peer.has_cert, 0);
    ck_assert_str_eq(gw_tls_refusal_reason(&r.peer, r.ssl_err), "tls.protocol");
    SSL_CTX_free(c);
    SSL_CTX_free(s);
}
END_TEST

/* ALPN: http/1.1 when offered, else none (never h2). */
START_TEST(t_alpn)
{
    SSL_CTX *s = server_ctx(0);
    SSL_CTX *c = client_ctx(cli_ok, TLS1_2_VERSION, TLS1_3_VERSION);
    static const unsigned char both[] = "\x02h2\x08http/1.1", h2[] = "\x02h2";
    hs_result r;
    handshake(s, c, both, sizeof(both) - 1, &r);
    ck_assert(r.ok);
    ck_assert_str_eq(r.alpn, "http/1.1");
    handshake(s, c, h2, sizeof(h2) - 1, &r);
    ck_assert(r.ok);
    ck_assert_str_eq(r.alpn, "");
    SSL_CTX_free(c);
    SSL_CTX_free(s);
}
END_TEST

/* <from> writes <msg>, <to> reads it back whole. */
static void relay(SSL *from, SSL *to, const char *msg)
{
    char buf[64];
    int n = (int)strlen(msg);
    ck_assert_int_eq(SSL_write(from, msg, n), n);
    int got = 0;
    for (int round = 0; round < 10 && got < n; round++) {
        int r = SSL_read(to, buf + got, (int)sizeof(buf) - 1 - got);
        if (r > 0)
            got += r;
        else
            (void)SSL_read(from, buf, 0); /* lets <from> process what <to> sent (KeyUpdate) */
    }
    ck_assert_int_eq(got, n);
    buf[got] = '\0';
    ck_assert_str_eq(buf, msg);
}

/* One connection of <cctx> to <sctx>, resuming <sess> when not NULL: the
 * server's SSL and peer (completed as core/conn.c does), the client's SSL. */
static void open_pair(SSL_CTX *sctx, SSL_CTX *cctx, SSL_SESSION *sess, SSL **s, SSL **c,
                      gw_tls_peer *peer)
{
    memset(peer, 0, sizeof(*peer));
    bio_pair(sctx, cctx, s, c);
    if (sess != NULL)
        ck_assert_int_eq(SSL_set_session(*c, sess), 1);
    gw_tls_attach_peer(*s, peer);
    ck_assert_msg(pump(*s, *c) == 1, "handshake failed: %lx", ERR_peek_error());
    gw_tls_peer_complete(*s, peer);
}

/* What a connection keeps once its handshake is over (S5, bench/README.md):
 * not the server's certificates (SSL_certs_clear in gw_tls_peer_complete;
 * the chain copies SSL_new made); and it still carries data both ways,
 * takes a TLS 1.3 key update, and its session resumes with the client's
 * identity (ticket in TLS 1.3, the session cache in TLS 1.2). */
START_TEST(t_idle_connection_keeps_less)
{
    SSL_CTX *sctx = server_ctx(1);
    const int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    char want[65];
    hex_sha256(cli_ok, want);
    for (int i = 0; i < 2; i++) {
        SSL_CTX *cctx = client_ctx(cli_ok, versions[i], versions[i]);
        SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_CLIENT);
        SSL *s, *c;
        gw_tls_peer peer;
        open_pair(sctx, cctx, NULL, &s, &c, &peer);
        ck_assert_ptr_null(SSL_get_certificate(s));
        ck_assert_int_eq(peer.has_cert, 1);
        relay(c, s, "GET / HTTP/1.1");
        relay(s, c, "HTTP/1.1 200 OK");
        if (versions[i] == TLS1_3_VERSION) {
            ck_assert_int_eq(SSL_key_update(s, SSL_KEY_UPDATE_REQUESTED), 1);
            relay(s, c, "after the server's key update");
            relay(c, s, "and the client's");
        }
        SSL_SESSION *sess = SSL_get1_session(c);
        ck_assert_ptr_nonnull(sess);
        ck_assert_int_eq(SSL_SESSION_is_resumable(sess), 1);
        SSL *s2, *c2;
        gw_tls_peer peer2;
        open_pair(sctx, cctx, sess, &s2, &c2, &peer2);
        ck_assert_int_eq(SSL_session_reused(s2), 1);
        ck_assert_int_eq(peer2.has_cert, 1);
        ck_assert_str_eq(peer2.sha256, want);
        ck_assert_str_eq(peer2.subject, "CN=client-ok,O=Test");
        ck_assert_ptr_null(SSL_get_certificate(s2));
        relay(c2, s2, "GET / HTTP/1.1");
        SSL_SESSION_free(sess);
        gw_tls_peer_clear(&peer);
        gw_tls_peer_clear(&peer2);
        SSL_free(s);
        SSL_free(c);
        SSL_free(s2);
        SSL_free(c2);
        SSL_CTX_free(cctx);
    }
    SSL_CTX_free(sctx);
}
END_TEST

/* TLS 1.3 suites: TLS_AES_128_GCM_SHA256 when the client offers it, as
 * OpenSSL's clients do (with AES-256 first); the two others still
 * accepted alone. */
START_TEST(t_tls13_suites)
{
    SSL_CTX *sctx = server_ctx(0);
    const char *offer[] = {NULL, "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256",
                           "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"};
    const char *want[] = {"TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256",
                          "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"};
    for (int i = 0; i < 4; i++) {
        SSL_CTX *cctx = client_ctx(cli_ok, TLS1_3_VERSION, TLS1_3_VERSION);
        if (offer[i] != NULL)
            ck_assert_int_eq(SSL_CTX_set_ciphersuites(cctx, offer[i]), 1);
        SSL *s, *c;
        gw_tls_peer peer;
        open_pair(sctx, cctx, NULL, &s, &c, &peer);
        ck_assert_str_eq(SSL_CIPHER_get_name(SSL_get_current_cipher(s)), want[i]);
        relay(c, s, "GET / HTTP/1.1");
        gw_tls_peer_clear(&peer);
        SSL_free(s);
        SSL_free(c);
        SSL_CTX_free(cctx);
    }
    SSL_CTX_free(sctx);
}
END_TEST

/* The reason table itself, for the errors a handshake here does not make. */
START_TEST(t_refusal_reasons)
{
    gw_tls_peer p;
    memset(&p, 0, sizeof(p));
    struct {
        int verify_err;
        const char *reason;
    } v[] = {
        {X509_V_ERR_UNABLE_TO_GET_CRL, "tls.crl"},
        {X509_V_ERR_CRL_HAS_EXPIRED, "tls.crl"},
        {X509_V_ERR_CRL_NOT_YET_VALID, "tls.crl"},
        {X509_V_ERR_CRL_SIGNATURE_FAILURE, "tls.crl"},
        {X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, "tls.cert_unknown_ca"},
        {X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, "tls.cert_unknown_ca"},
        {X509_V_ERR_CERT_SIGNATURE_FAILURE, "tls.cert_unknown_ca"},
        {X509_V_ERR_INVALID_PURPOSE, "tls.cert_invalid"},
        {X509_V_ERR_CERT_CHAIN_TOO_LONG, "tls.cert_invalid"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        p.verify_err = v[i].verify_err;
        /* the certificate's error wins over the TLS one */
        ck_assert_str_eq(
            gw_tls_refusal_reason(&p, ERR_PACK(ERR_LIB_SSL, 0, SSL_R_NO_SHARED_CIPHER)),
            v[i].reason);
    }
    p.verify_err = 0;
    ck_assert_str_eq(gw_tls_refusal_reason(&p, 0), "tls.handshake");
    ck_assert_str_eq(gw_tls_refusal_reason(&p, ERR_PACK(ERR_LIB_SSL, 0, SSL_R_NO_SHARED_CIPHER)),
                     "tls.protocol");
    ck_assert_str_eq(gw_tls_refusal_reason(&p, ERR_PACK(ERR_LIB_SSL, 0, SSL_R_HTTP_REQUEST)),
                     "tls.protocol");
    ck_assert_str_eq(gw_tls_refusal_reason(
                         &p, ERR_PACK(ERR_LIB_SSL, 0, SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC)),
                     "tls.handshake");
}
END_TEST

int main(void)
{
    pki_make();
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("tls");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, t_server_ctx_settings);
    tcase_add_test(tc, t_server_ctx_errors);
    tcase_add_test(tc, t_client_ctx);
    tcase_add_test(tc, t_handshake_accepted);
    tcase_add_test(tc, t_handshake_refused);
    tcase_add_test(tc, t_verdict_kept);
    tcase_add_test(tc, t_handshake_no_cert_old_protocol);
    tcase_add_test(tc, t_alpn);
    tcase_add_test(tc, t_refusal_reasons);
    tcase_add_test(tc, t_idle_connection_keeps_less);
    tcase_add_test(tc, t_tls13_suites);
    suite_add_tcase(s, tc);
    int rc = gw_test_run(s);
    pki_free();
    return rc;
}
