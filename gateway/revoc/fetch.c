#include "revoc/fetch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/http.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

time_t gw_rv_asn1_time(const ASN1_TIME *t)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return timegm(&tm);
}

static int timeout_s(unsigned ms)
{
    return (int)((ms + 999) / 1000);
}

/* One HTTP exchange: GET when <req> is NULL, else POST of <req> as
 * <ctype>. The proxy is never taken from the environment ("" below): the
 * responders are named by the CA or the configuration. */
static BIO *http(const char *url, const char *ctype, BIO *req, const char *expect_ct,
                 unsigned timeout_ms, const char **why)
{
    char *host = NULL, *port = NULL, *path = NULL;
    int use_ssl = 0;
    BIO *resp = NULL;
    if (OSSL_HTTP_parse_url(url, &use_ssl, NULL, &host, &port, NULL, &path, NULL, NULL) != 1 ||
        use_ssl) {
        *why = "bad URL (http:// only)";
        goto out;
    }
    resp =
        OSSL_HTTP_transfer(NULL, host, port, path, 0, "", NULL, NULL, NULL, NULL, NULL, 0, NULL,
                           ctype, req, expect_ct, 1, GW_RV_MAX_RESPONSE, timeout_s(timeout_ms), 0);
    if (resp == NULL) {
        /* the first OpenSSL error says which step (connect, timeout, HTTP
         * status, content type); kept per thread for the caller */
        static __thread char buf[300];
        unsigned long e = ERR_peek_error();
        char es[256] = "unknown";
        if (e != 0)
            ERR_error_string_n(e, es, sizeof(es));
        snprintf(buf, sizeof(buf), "HTTP exchange failed: %s", es);
        *why = buf;
    }
out:
    ERR_clear_error();
    OPENSSL_free(host);
    OPENSSL_free(port);
    OPENSSL_free(path);
    return resp;
}

X509_CRL *gw_rv_fetch_crl(const char *url, unsigned timeout_ms, const char **why)
{
    X509_CRL *crl = NULL;
    BIO *b = http(url, NULL, NULL, NULL, timeout_ms, why);
    if (b == NULL)
        return NULL;
    /* DER is the norm (RFC 5280 4.2.1.13); PEM is accepted too */
    BUF_MEM *m = NULL;
    BIO_get_mem_ptr(b, &m);
    if (m != NULL && m->length > 10 && memcmp(m->data, "-----BEGIN", 10) == 0)
        crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL);
    else
        crl = d2i_X509_CRL_bio(b, NULL);
    if (crl == NULL)
        *why = "the answer is not a CRL";
    BIO_free(b);
    ERR_clear_error();
    return crl;
}

char *gw_rv_aia_ocsp(X509 *x)
{
    STACK_OF(OPENSSL_STRING) *l = X509_get1_ocsp(x);
    char *u = NULL;
    if (l != NULL && sk_OPENSSL_STRING_num(l) > 0)
        u = strdup(sk_OPENSSL_STRING_value(l, 0));
    X509_email_free(l);
    return u;
}

int gw_rv_ocsp_query(const char *url, X509 *leaf, X509 *issuer, X509_STORE *trust, int nonce,
                     unsigned timeout_ms, int want_der, gw_rv_ocsp_result *res, const char **why)
{
    int rc = -1;
    OCSP_REQUEST *req = OCSP_REQUEST_new();
    OCSP_CERTID *id = OCSP_cert_to_id(EVP_sha1(), leaf, issuer);
    OCSP_CERTID *rid = id != NULL ? OCSP_CERTID_dup(id) : NULL;
    BIO *reqb = NULL, *respb = NULL;
    OCSP_RESPONSE *resp = NULL;
    OCSP_BASICRESP *bs = NULL;
    STACK_OF(X509) *chain = NULL;
    memset(res, 0, sizeof(*res));
    *why = "out of memory";
    if (req == NULL || id == NULL || rid == NULL || OCSP_request_add0_id(req, rid) == NULL)
        goto out;
    rid = NULL; /* owned by req */
    if (nonce && OCSP_request_add1_nonce(req, NULL, -1) != 1)
        goto out;
    reqb = ASN1_item_i2d_mem_bio(ASN1_ITEM_rptr(OCSP_REQUEST), (const ASN1_VALUE *)req);
    if (reqb == NULL)
        goto out;
    respb =
        http(url, "application/ocsp-request", reqb, "application/ocsp-response", timeout_ms, why);
    if (respb == NULL)
        goto out;
    resp = d2i_OCSP_RESPONSE_bio(respb, NULL);
    if (resp == NULL) {
        *why = "the answer is not an OCSP response";
        goto out;
    }
    if (OCSP_response_status(resp) != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        *why = "the responder refused the request (responseStatus not successful)";
        goto out;
    }
    bs = OCSP_response_get1_basic(resp);
    if (bs == NULL) {
        *why = "no basic response";
        goto out;
    }
    if (nonce && OCSP_check_nonce(req, bs) == 0) {
        *why = "nonce mismatch";
        goto out;
    }
    /* the issuer is a trusted signer of its own statuses, and anchors a
     * delegated responder's chain */
    chain = sk_X509_new_null();
    if (chain == NULL || !sk_X509_push(chain, issuer))
        goto out;
    if (OCSP_basic_verify(bs, chain, trust, 0) <= 0) {
        *why = "bad signature or signer not authorised by the issuer";
        goto out;
    }
    int status = -1, reason = 0;
    ASN1_GENERALIZEDTIME *rev = NULL, *thisupd = NULL, *nextupd = NULL;
    if (OCSP_resp_find_status(bs, id, &status, &reason, &rev, &thisupd, &nextupd) != 1) {
        *why = "no status for the certificate in the answer";
        goto out;
    }
    res->this_update = gw_rv_asn1_time(thisupd);
    res->next_update = gw_rv_asn1_time(nextupd);
    if (res->this_update == 0 || res->this_update > time(NULL) + GW_RV_LEEWAY_S) {
        *why = "thisUpdate missing or in the future";
        goto out;
    }
    if (nextupd != NULL && res->next_update < res->this_update) {
        *why = "nextUpdate before thisUpdate";
        goto out;
    }
    res->answer = status == V_OCSP_CERTSTATUS_GOOD      ? GW_RV_ANS_GOOD
                  : status == V_OCSP_CERTSTATUS_REVOKED ? GW_RV_ANS_REVOKED
                                                        : GW_RV_ANS_UNKNOWN;
    if (want_der) {
        unsigned char *d = NULL;
        int n = i2d_OCSP_RESPONSE(resp, &d);
        if (n <= 0)
            goto out;
        res->der = malloc((size_t)n);
        if (res->der == NULL) {
            OPENSSL_free(d);
            goto out;
        }
        memcpy(res->der, d, (size_t)n);
        res->der_len = n;
        OPENSSL_free(d);
    }
    rc = 0;
    *why = NULL;
out:
    ERR_clear_error();
    sk_X509_free(chain);
    OCSP_BASICRESP_free(bs);
    OCSP_RESPONSE_free(resp);
    BIO_free(respb);
    BIO_free(reqb);
    OCSP_CERTID_free(rid);
    OCSP_CERTID_free(id);
    OCSP_REQUEST_free(req);
    return rc;
}
