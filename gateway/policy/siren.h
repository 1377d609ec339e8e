/* SIREN and SIRET numbers (policy/siren.c). Pure functions. */
#ifndef GW_POLICY_SIREN_H
#define GW_POLICY_SIREN_H

#include <stddef.h>

/* 14 digits, Luhn over all 14 (a SIRET whose SIREN is 356000000, La Poste,
 * needs a digit sum divisible by 5 instead), SIREN not 000000000. Returns
 * NULL or a constant message (the ones docs/policies.md lists). */
const char *gw_siret_check(const char *s);

/* <s>/<len>: 9 digits, Luhn, not 000000000. Returns 1 when valid. */
int gw_siren_valid(const char *s, size_t len);

#endif
