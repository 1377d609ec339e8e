/* The policy parser (policy/parse.c). Internal to gateway/policy/; the
 * public entry point is gw_policy_parse() (policy.h). */
#ifndef GW_POLICY_PARSE_H
#define GW_POLICY_PARSE_H

#include <stddef.h>

#include "policy/policy.h"

#define GW_POLICY_MAX_CERTS 16 /* consumer.certificates entries */

/* One file's text (<len> bytes) -> a policy valid on its own, or NULL with
 * every problem in <errs> as "<file>: json.path: message". <dir> is the
 * file's absolute directory (certificates given by "file" are read relative
 * to it); <rules> (may be NULL) the scopes the route table knows. */
gw_policy *gw_policy_parse_text(const char *file, const char *dir, const char *text, size_t len,
                                const gw_policy_rules *rules, gw_errlist *errs);

#endif
