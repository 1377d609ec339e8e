/* "Is this habilitation usable today": the one definition, used by the
 * rights stage (gateway/stages/rights.c) and by /token
 * (gateway/token/endpoint.c). */
#ifndef GW_POLICY_USABLE_H
#define GW_POLICY_USABLE_H

#include "lib/errors.h"
#include "policy/policy.h"

/* Whether habilitation <p> may be used on <today> (yyyymmdd in the
 * gateway's time zone) on a listener of <env>: GW_OK, or the refusal, in
 * this order: GW_ERR_HAB_SUSPENDED, GW_ERR_HAB_REVOKED,
 * GW_ERR_HAB_NOT_YET_VALID, GW_ERR_HAB_EXPIRED, GW_ERR_ENVIRONMENT. */
gw_err_id gw_policy_usable(const gw_policy *p, gw_env env, int today);

#endif
