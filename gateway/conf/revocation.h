/*
 * The revocation settings of one listener's "tls" object (gw_conf_revocation,
 * conf/conf.h): "crl_refresh", "ocsp" and "stapling". Used by conf.c only.
 */
#ifndef GW_CONF_REVOCATION_H
#define GW_CONF_REVOCATION_H

#include <jansson.h>

#include "conf/conf.h"
#include "lib/jsonv.h"

/* Fill <l>->revoc from the listener's "tls" object <tls> at <path>; relative
 * file names resolve against <dir>. Errors go to <v> ("…tls.ocsp.mode: must
 * be \"off\", \"soft\" or \"hard\""). Defaults are set even on error. */
void gw_conf_revocation_parse(gw_jsonv *v, const char *dir, json_t *tls, const char *path,
                              gw_conf_listener *l);

/* Frees the strings of <r> (not <r>). */
void gw_conf_revocation_free(gw_conf_revocation *r);

#endif
