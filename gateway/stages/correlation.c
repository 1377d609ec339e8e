/* correlation: X-Correlation-ID is required and must be a UUID (DGFIP code
 * 910000). A valid one is echoed on every response by core. */
#include "lib/util.h"
#include "stages/stages.h"

static gw_verdict run(gw_access *a)
{
    size_t n = 0;
    const char *v = gw_http_request_header(a->http, "X-Correlation-ID", &n);
    if (v == NULL)
        return gw_access_reject(a, GW_ERR_CORRELATION_MISSING, NULL);
    if (!gw_is_uuid(v, n))
        return gw_access_reject(a, GW_ERR_CORRELATION_MISSING, "correlation.invalid");
    return GW_STAGE_NEXT;
}

const gw_stage gw_stage_correlation = {"correlation", run, NULL};
