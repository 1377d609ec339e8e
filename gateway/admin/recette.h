/*
 * The recette report on a sandbox partner's console page (GET
 * /admin/partners/{client_id}, docs/console.md): the access journal
 * verified (chain and checkpoint signatures, with the gateway's own keys)
 * and analysed exactly as `opale-gateway --recette CLIENT_ID --format md`
 * does (docs/recette.md), shown unsigned (the signed document stays the
 * offline command's). This runs on the admin listener's loop, so it is
 * bounded: not computed when the journal's files hold more than
 * GW_ADMIN_RECETTE_MAX_BYTES, and kept GW_ADMIN_RECETTE_TTL_S seconds for
 * the partner last asked (the page polls). Main thread only.
 */
#ifndef GW_ADMIN_RECETTE_H
#define GW_ADMIN_RECETTE_H

#include <jansson.h>
#include <time.h>

#include "token/jose.h"

#define GW_ADMIN_RECETTE_MAX_BYTES (64u << 20)
#define GW_ADMIN_RECETTE_TTL_S 30

typedef struct gw_admin_recette {
    char client_id[160];
    time_t at;      /* when it was computed, 0: never */
    json_t *answer; /* {"available", "markdown"} */
} gw_admin_recette;

/* {"available": true, "markdown": the report} for <client_id> from the
 * journal at <journal_path> (it and its rotated files), verified with
 * <keys>; {"available": false, "markdown": why} when it cannot be made (the
 * journal does not verify, is too large, ...). A new reference; <c> keeps
 * the last one. */
json_t *gw_admin_recette_json(gw_admin_recette *c, const char *journal_path, const gw_keyset *keys,
                              const char *client_id, time_t now);

void gw_admin_recette_clear(gw_admin_recette *c);

#endif
