/* mtls identity: the verified client certificate names exactly one
 * habilitation (the policy loader refuses a fingerprint used twice). The
 * chain, dates and CRL were checked by the TLS handshake (core/tls.c). */
#include "stages/stages.h"

static gw_verdict run(gw_access *a)
{
    if (!a->has_cert || a->policies == NULL)
        return gw_access_reject(a, GW_ERR_CERT_UNKNOWN, a->has_cert ? NULL : "mtls.no_cert");
    a->policy = gw_policy_by_cert(a->policies, a->cert_sha256);
    if (a->policy == NULL)
        return gw_access_reject(a, GW_ERR_CERT_UNKNOWN, NULL);
    return GW_STAGE_NEXT;
}

const gw_stage gw_stage_mtls = {"mtls", run, NULL};
