#include "policy/usable.h"

gw_err_id gw_policy_usable(const gw_policy *p, gw_env env, int today)
{
    if (p->state == GW_HAB_SUSPENDED)
        return GW_ERR_HAB_SUSPENDED;
    if (p->state == GW_HAB_REVOKED)
        return GW_ERR_HAB_REVOKED;
    if (today < p->valid_from)
        return GW_ERR_HAB_NOT_YET_VALID;
    if (today > p->valid_until)
        return GW_ERR_HAB_EXPIRED;
    if (p->env != env)
        return GW_ERR_ENVIRONMENT;
    return GW_OK;
}
