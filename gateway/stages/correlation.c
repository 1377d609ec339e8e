/* correlation: X-Correlation-ID is required and must be a UUID (DGFIP code
 * 910000). The request module echoes a valid one on every response, read
 * with the same function (gw_correlation_read). Needs nothing. */
#include <string.h>

#include "lib/util.h"
#include "stages/stages.h"

int gw_correlation_read(const gw_http_request *http, char id[37])
{
    size_t n = 0;
    const char *v = gw_http_request_header(http, "X-Correlation-ID", &n);
    if (v == NULL)
        return 0;
    if (!gw_is_uuid(v, n))
        return -1;
    memcpy(id, v, 36);
    id[36] = '\0';
    return 1;
}

static gw_verdict run(const gw_stage_call *c)
{
    char id[37];
    int r = gw_correlation_read(c->req->http, id);
    if (r == 0)
        return gw_reply_reject(c->reply, GW_ERR_CORRELATION_MISSING, NULL);
    if (r < 0)
        return gw_reply_reject(c->reply, GW_ERR_CORRELATION_MISSING, "correlation.invalid");
    return GW_STAGE_NEXT;
}

const gw_stage gw_stage_correlation = {
    .name = "correlation",
    .out = -1,
    .run = run,
};
