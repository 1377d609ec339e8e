/*
 * opale-loadgen: the client TLS context (certificate, verification, groups).
 */

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "loadgen.h"

SSL_CTX *lg_ctx;

void lg_tls_die(const char *what)
{
    char buf[256];
    unsigned long e = ERR_get_error();
    ERR_error_string_n(e, buf, sizeof buf);
    lg_die("%s: %s", what, e ? buf : "failed");
}

void lg_tls_setup(void)
{
    lg_ctx = SSL_CTX_new(TLS_client_method());
    if (!lg_ctx)
        lg_tls_die("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(lg_ctx, TLS1_2_VERSION);
    SSL_CTX_set_session_cache_mode(lg_ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(lg_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(lg_ctx, SSL_MODE_RELEASE_BUFFERS);
    /* One read() per TLS record instead of two (its 5-byte header, then its
     * body): the generator shares its core with the mock and Redis in the
     * bench. A record read ahead with the one before it is not counted by
     * SSL_pending(), so conn.c's on_read() runs the read callback again
     * while SSL_has_pending() (bufferevent_openssl would otherwise wait for
     * the socket to be readable again). */
    SSL_CTX_set_read_ahead(lg_ctx, 1);
    if (lg_opt.sigalgs && SSL_CTX_set1_sigalgs_list(lg_ctx, lg_opt.sigalgs) != 1)
        lg_tls_die("--sigalgs");
    if (lg_opt.groups && SSL_CTX_set1_groups_list(lg_ctx, lg_opt.groups) != 1)
        lg_tls_die("--groups");
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(lg_ctx, alpn, sizeof alpn - 1);
    if (lg_opt.cert) {
        if (SSL_CTX_use_certificate_chain_file(lg_ctx, lg_opt.cert) != 1)
            lg_tls_die(lg_opt.cert);
        if (SSL_CTX_use_PrivateKey_file(lg_ctx, lg_opt.key, SSL_FILETYPE_PEM) != 1)
            lg_tls_die(lg_opt.key);
        if (SSL_CTX_check_private_key(lg_ctx) != 1)
            lg_tls_die("--key does not match --cert");
    }
    if (lg_opt.insecure) {
        SSL_CTX_set_verify(lg_ctx, SSL_VERIFY_NONE, NULL);
    } else {
        if (lg_opt.cacert) {
            if (SSL_CTX_load_verify_locations(lg_ctx, lg_opt.cacert, NULL) != 1)
                lg_tls_die(lg_opt.cacert);
        } else if (SSL_CTX_set_default_verify_paths(lg_ctx) != 1) {
            lg_tls_die("default CA paths");
        }
        SSL_CTX_set_verify(lg_ctx, SSL_VERIFY_PEER, NULL);
        if (X509_VERIFY_PARAM_set1_host(SSL_CTX_get0_param(lg_ctx), lg_opt.sni, 0) != 1)
            lg_tls_die("--sni");
    }
    /* --cert without a chain in its file: the chain OpenSSL's auto-chain
     * would send (our certificate checked against the context's store at
     * every handshake, an ECDSA verification each), built once here: the
     * same certificates on the wire, less CPU per new connection (S4) */
    STACK_OF(X509) *chain = NULL;
    if (lg_opt.cert && SSL_CTX_get0_chain_certs(lg_ctx, &chain) == 1 && chain == NULL &&
        SSL_CTX_build_cert_chain(lg_ctx, SSL_BUILD_CHAIN_FLAG_IGNORE_ERROR |
                                             SSL_BUILD_CHAIN_FLAG_CLEAR_ERROR) <= 0)
        ERR_clear_error();
}

/* The chain OpenSSL's auto-chain would send with <cert> (what is above it
 * in the context's store, the certificate itself left out; may be empty),
 * or NULL. */
STACK_OF(X509) * lg_tls_chain_of(X509 *cert)
{
    X509_STORE_CTX *xs = X509_STORE_CTX_new();
    STACK_OF(X509) *chain = NULL;
    if (xs && X509_STORE_CTX_init(xs, SSL_CTX_get_cert_store(lg_ctx), cert, NULL) == 1) {
        (void)X509_verify_cert(xs); /* as the auto-chain: whatever was built */
        chain = X509_STORE_CTX_get1_chain(xs);
        if (chain && sk_X509_num(chain) > 0)
            X509_free(sk_X509_shift(chain));
    }
    X509_STORE_CTX_free(xs);
    ERR_clear_error();
    return chain;
}
