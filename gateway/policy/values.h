/* Value syntaxes of the policy module's files (policy/values.c). Pure. */
#ifndef GW_POLICY_VALUES_H
#define GW_POLICY_VALUES_H

/* "YYYY-MM-DD" -> yyyymmdd in <*out>. Returns 0, -1 when <s> is not of that
 * form, -2 when it is but names no real day ("2025-02-29"). */
int gw_date_parse(const char *s, int *out);

/* A plain e-mail address, local@domain: at most 254 bytes, one '@', a local
 * part of 1 to 64 printable ASCII characters without space or any of
 * "(),:;<>[\]@, a domain of at least two dot-separated labels of letters,
 * digits and '-' (not at a label's ends). Returns 1 when valid. */
int gw_email_valid(const char *s);
#define GW_EMAIL_RULE "must be an e-mail address (name@domain.tld)"

/* A client_id: 3 to 128 of [A-Za-z0-9._-] (GW_CLIENT_ID_RULE). 1 when valid. */
int gw_client_id_valid(const char *s);
#define GW_CLIENT_ID_RULE "[A-Za-z0-9._-]{3,128}"

#endif
