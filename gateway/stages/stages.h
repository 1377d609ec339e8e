/* The stages and the pipeline that runs them in the CGU §4 order. */
#ifndef GW_STAGES_H
#define GW_STAGES_H

#include "lib/util.h"
#include "stages/stage.h"

extern const gw_stage gw_stage_mtls;
extern const gw_stage gw_stage_route;
extern const gw_stage gw_stage_maintenance;
extern const gw_stage gw_stage_ipallow;
extern const gw_stage gw_stage_correlation;
extern const gw_stage gw_stage_teleservice;
extern const gw_stage gw_stage_bearer;
extern const gw_stage gw_stage_rights;
extern const gw_stage gw_stage_quota;

/* The ordered list (pipeline.c) and its length. */
extern const gw_stage *const gw_pipeline[];
extern const size_t gw_pipeline_len;

/* Run the stages from a->next on. Returns NEXT when every stage passed,
 * REJECT when one refused (a->err set), SUSPEND when one waits on I/O: it
 * will call gw_pipeline_resume() later, which ends with a->on_done(). */
gw_verdict gw_pipeline_run(gw_access *a);
/* Called by a suspended stage with its verdict; continues the pipeline and
 * reports the final verdict through a->on_done. */
void gw_pipeline_resume(gw_access *a, gw_verdict v);
/* Call done() of every stage that ran; always, once per request. */
void gw_pipeline_done(gw_access *a);

/* Helpers exported for the unit tests. */
int gw_ipallow_resolve(gw_access *a);

#endif
