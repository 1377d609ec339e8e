/*
 * TLS contexts: the public listeners' (server side, mTLS) and the upstreams'
 * (client side). One SSL_CTX per listener/upstream is built at start-up and
 * shared read-only by every worker thread (SSL_new is thread-safe on it).
 */
#ifndef GW_TLS_H
#define GW_TLS_H

#include <openssl/ssl.h>

#include "conf/conf.h"

/* What we know of the peer of one connection: filled by the verify callback
 * during the handshake (so a refused certificate is still described) and
 * completed once the handshake is done. */
typedef struct gw_tls_peer {
    int has_cert;
    int verify_err; /* first X509_V_ERR_* seen at depth 0..n, 0 when none */
    int revoc_asked;
    char sha256[65]; /* hex of SHA-256(DER), lowercase */
    char *subject;   /* RFC 2253 one-line form, at most 255 bytes, malloc'd
                      * (NULL: none; gw_tls_peer_clear frees it) */
    /* "TLSv1.3" (SSL_get_version's static string), NULL until the
     * handshake is done */
    const char *version;
    /* the certificate's notAfter (Unix time), 0 when unknown */
    long long not_after;
    /* the OCSP decision (revoc/revoc.h): the refusal's journal reason, NULL
     * when accepted; asked once per handshake (revoc_asked) */
    const char *revoc_refusal;
} gw_tls_peer;

/* Build the server context for <l>. Returns NULL and a malloc'd <*err>
 * ("listeners[0].tls.certificates[1]: key does not match certificate"). */
SSL_CTX *gw_tls_server_ctx_new(const gw_conf_listener *l, size_t idx, char **err);

/* Build the client context for upstream <u> (u->tls must be set). */
SSL_CTX *gw_tls_client_ctx_new(const gw_conf_upstream *u, size_t idx, char **err);

/* Free what <peer> owns (its subject); the rest stays as it is. */
void gw_tls_peer_clear(gw_tls_peer *peer);

/* Attach <peer> to <ssl> so that the verify callback fills it. */
void gw_tls_attach_peer(SSL *ssl, gw_tls_peer *peer);

/* After a successful handshake: version, and the certificate if the verify
 * callback did not run (resumed session); then the server's certificates
 * are released from <ssl> (SSL_certs_clear: not needed after the
 * handshake). */
void gw_tls_peer_complete(SSL *ssl, gw_tls_peer *peer);

/* The handshakes of this thread whose client chain was accepted from a
 * kept verdict instead of checked again (core/tls.c, "Verdicts kept per
 * worker thread"). For tests. */
unsigned long gw_tls_verify_cache_hits(void);

/* Journal reason for a failed handshake: "tls.no_cert", "tls.cert_expired",
 * "tls.cert_not_yet_valid", "tls.cert_unknown_ca", "tls.cert_revoked",
 * "tls.crl", "tls.ocsp_revoked", "tls.ocsp_unknown", "tls.ocsp_stale",
 * "tls.ocsp_unavailable", "tls.protocol" or "tls.handshake". <ssl_err> is the OpenSSL error
 * queue code seen by the bufferevent (0 when none). */
const char *gw_tls_refusal_reason(const gw_tls_peer *peer, unsigned long ssl_err);

#endif
