/* mtls identity: the verified client certificate names exactly one
 * habilitation (the policy loader refuses a fingerprint used twice). The
 * chain, dates and CRL were checked by the TLS handshake (core/tls.c), and
 * the OCSP status when the listener asks for it; an OCSP "revoked" learnt
 * after the handshake refuses the next request of an open connection here
 * (revoc/revoc.h, docs/security.md "Revocation").
 * Needs nothing; its result is the habilitation (gw_mtls_out.policy). */
#include "revoc/revoc.h"
#include "stages/stages.h"

static gw_verdict run(const gw_stage_call *c)
{
    gw_mtls_out *out = c->out;
    if (!c->req->has_cert || c->svc->policies == NULL)
        return gw_reply_reject(c->reply, GW_ERR_CERT_UNKNOWN,
                               c->req->has_cert ? NULL : "mtls.no_cert");
    if (gw_revoc_revoked(c->req->cert_sha256))
        return gw_reply_reject(c->reply, GW_ERR_CERT_REVOKED, NULL);
    out->policy = gw_policy_by_cert(c->svc->policies, c->req->cert_sha256);
    if (out->policy == NULL)
        return gw_reply_reject(c->reply, GW_ERR_CERT_UNKNOWN, NULL);
    return GW_STAGE_NEXT;
}

const gw_stage gw_stage_mtls = {
    .name = "mtls",
    .out = offsetof(gw_results, mtls),
    .run = run,
};
