/*
 * Fetching revocation data over HTTP (OpenSSL's OSSL_HTTP_* client, blocking
 * with a timeout: called from the revocation thread only, never from a
 * worker) and checking OCSP answers.
 */
#ifndef GW_REVOC_FETCH_H
#define GW_REVOC_FETCH_H

#include <time.h>

#include <openssl/ocsp.h>
#include <openssl/x509.h>

#include "revoc/cache.h"

/* Largest answer read: a CRL of a large CA fits, a runaway server does not. */
#define GW_RV_MAX_RESPONSE (8u << 20)

/* GET <url> and parse a CRL (DER or PEM). Returns NULL and a static
 * <*why> on failure. <timeout_ms> bounds connect, send and receive. */
X509_CRL *gw_rv_fetch_crl(const char *url, unsigned timeout_ms, const char **why);

/* What one OCSP exchange gave. */
typedef struct gw_rv_ocsp_result {
    gw_rv_answer answer;
    time_t this_update, next_update; /* next_update 0: none given */
    unsigned char *der;              /* the whole response (DER, malloc'd) when asked */
    int der_len;
} gw_rv_ocsp_result;

/* Asks <url> for the status of <leaf> issued by <issuer> (POST, RFC 6960
 * appendix A) and checks the answer: successful response, signed by
 * <issuer> or by a responder it delegated (id-kp-OCSPSigning), the signer
 * chaining to <trust>; the single response for <leaf> found; thisUpdate not
 * in the future and, with <nonce>, the nonce echoed when the responder sends
 * one. An answer past its nextUpdate is returned (the caller decides it is
 * stale). With <want_der>, res->der gets the response for stapling.
 * Returns 0, or -1 with a static <*why>. */
int gw_rv_ocsp_query(const char *url, X509 *leaf, X509 *issuer, X509_STORE *trust, int nonce,
                     unsigned timeout_ms, int want_der, gw_rv_ocsp_result *res, const char **why);

/* The first OCSP URL of <x>'s AIA, malloc'd, or NULL. */
char *gw_rv_aia_ocsp(X509 *x);

/* ASN1_TIME to Unix time; 0 for NULL or unparsable. */
time_t gw_rv_asn1_time(const ASN1_TIME *t);

#endif
