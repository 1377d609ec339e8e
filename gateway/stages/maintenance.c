/* maintenance: during a configured slot every guarded route answers 503 with
 * Retry-After pointing at the slot's end; etatSante (the route without scope)
 * answers it too, with a body that reports the slot, without reaching the
 * backend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stages/confs.h"
#include "stages/stages.h"

static gw_verdict run(gw_access *a)
{
    time_t end = 0;
    if (a->confs == NULL || !gw_maintenance_active(a->confs, a->now, &end))
        return GW_STAGE_NEXT;
    long secs = (long)(end - a->now);
    if (secs < 1)
        secs = 1;
    if (secs > 31 * 86400L)
        secs = 31 * 86400L;
    snprintf(a->retry_after, sizeof(a->retry_after), "%d", (int)secs);
    gw_access_resp_header(a, "Retry-After", a->retry_after);
    if (a->route->scope == NULL) {
        char until[64];
        time_t local = end + gw_tz_offset(a->confs->tz, end);
        struct tm tm;
        gmtime_r(&local, &tm);
        int off = (int)(gw_tz_offset(a->confs->tz, end) / 60);
        snprintf(until, sizeof(until), "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 off < 0 ? '-' : '+', abs(off) / 60 % 100, abs(off) % 60);
        char *body = malloc(256);
        if (body != NULL) {
            snprintf(body, 256,
                     "{\"message\":\"L'API est en maintenance programmée\","
                     "\"maintenance\":{\"fin\":\"%s\",\"retryAfter\":%d}}",
                     until, (int)secs);
            a->local_body = body;
            a->local_status = 503;
        }
    }
    return gw_access_reject(a, GW_ERR_MAINTENANCE, NULL);
}

const gw_stage gw_stage_maintenance = {"maintenance", run, NULL};
