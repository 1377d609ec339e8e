/* libFuzzer target for the DataPass webhook body parser
 * (gateway/datapass/webhook.c, gw_dp_event_parse) and, for the bodies it
 * accepts, the policy rewrite (gw_dp_policy_rewrite) over a fixed valid
 * policy.
 *
 * Invariants (abort() when broken):
 *  - a refused body leaves nothing to free and gives a message;
 *  - an accepted body has an id, an event name and an action consistent
 *    with gw_dp_action_of; a policy-changing event has its habilitation,
 *    "H<digits>", and a definition;
 *  - a rewrite, when it succeeds, is a JSON object that keeps the
 *    operator-owned "consumer" section byte for byte. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "datapass/webhook.h"

static const char policy[] =
    "{\"habilitation\":{\"id\":\"H456\",\"definition\":\"api_opale_sandbox\",\"state\":\"active\","
    "\"valid_from\":\"2025-01-01\",\"valid_until\":\"2027-12-31\"},"
    "\"organization\":{\"siret\":\"21920023500014\"},"
    "\"consumer\":{\"client_id\":\"c-sandbox\",\"id_teleservice\":\"TS-1\","
    "\"certificates\":[{\"sha256\":\"00\"}],\"ip_allowlist\":[\"127.0.0.1/32\"]},"
    "\"rights\":{\"scopes\":[\"api_opale_declarations\"],\"years\":{\"from\":2019,\"to\":2025}}}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gw_dp_event ev;
    const char *why = NULL;
    if (gw_dp_event_parse((const char *)data, size, &ev, &why) < 0) {
        if (why == NULL || ev.root != NULL)
            abort();
        return 0;
    }
    if (ev.id[0] == '\0' || ev.name[0] == '\0' || ev.action != gw_dp_action_of(ev.name))
        abort();
    if (ev.action != GW_DP_OTHER &&
        (ev.hab == NULL || ev.hab_id[0] != 'H' || ev.definition[0] == '\0'))
        abort();
    if (ev.action != GW_DP_OTHER) {
        gw_errlist errs;
        memset(&errs, 0, sizeof(errs));
        char *out = gw_dp_policy_rewrite("fuzz.json", policy, &ev, &errs);
        if (out != NULL) {
            json_error_t je;
            json_t *a = json_loads(out, 0, &je), *b = json_loads(policy, 0, &je);
            if (!json_is_object(a) ||
                !json_equal(json_object_get(a, "consumer"), json_object_get(b, "consumer")))
                abort();
            json_decref(a);
            json_decref(b);
        } else if (errs.n == 0) {
            abort();
        }
        free(out);
        gw_errlist_clear(&errs);
    }
    gw_dp_event_clear(&ev);
    return 0;
}
