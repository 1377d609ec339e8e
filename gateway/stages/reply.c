/* The reply being prepared by the stages (stage.h). */
#include "stages/stage.h"

void gw_reply_header(gw_reply *r, const char *name, const char *value)
{
    if (r->nresp_headers < GW_REPLY_MAX_HEADERS)
        r->resp_headers[r->nresp_headers++] = (gw_extra_header){name, value};
}

void gw_reply_up_header(gw_reply *r, const char *name, const char *value)
{
    if (r->nup_headers < GW_REPLY_MAX_HEADERS)
        r->up_headers[r->nup_headers++] = (gw_extra_header){name, value};
}

gw_verdict gw_reply_reject(gw_reply *r, gw_err_id err, const char *reason)
{
    r->err = err;
    r->reason = reason;
    return GW_STAGE_REJECT;
}
