#include <stdio.h>

#include "stages/stage.h"

void gw_access_resp_header(gw_access *a, const char *name, const char *value)
{
    if (a->nresp_headers < GW_ACCESS_MAX_HEADERS)
        a->resp_headers[a->nresp_headers++] = (gw_extra_header){name, value};
}

void gw_access_up_header(gw_access *a, const char *name, const char *value)
{
    if (a->nup_headers < GW_ACCESS_MAX_HEADERS)
        a->up_headers[a->nup_headers++] = (gw_extra_header){name, value};
}

gw_verdict gw_access_reject(gw_access *a, gw_err_id err, const char *reason)
{
    a->err = err;
    a->reason = reason;
    return GW_STAGE_REJECT;
}
