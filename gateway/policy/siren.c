/*
 * French company identifiers: the Luhn checksum, SIREN (9 digits) and SIRET
 * (14 digits, with La Poste's exception). Used by the policy parser
 * (organization.siret), the DataPass import and the rights stage (the SIREN
 * of a request path).
 */
#include "policy/siren.h"

#include <string.h>

static int luhn_ok(const char *s, size_t n)
{
    int sum = 0;
    for (size_t i = 0; i < n; i++) {
        int d = s[n - 1 - i] - '0';
        if (i % 2 == 1) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    return sum % 10 == 0;
}

static int all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
    }
    return 1;
}

const char *gw_siret_check(const char *s)
{
    if (s == NULL || strlen(s) != 14 || !all_digits(s, 14))
        return "must be 14 digits";
    if (memcmp(s, "000000000", 9) == 0)
        return "invalid SIRET (SIREN 000000000)";
    if (memcmp(s, "356000000", 9) == 0) {
        int sum = 0;
        for (size_t i = 0; i < 14; i++)
            sum += s[i] - '0';
        return sum % 5 == 0 ? NULL : "invalid SIRET (La Poste: digit sum not a multiple of 5)";
    }
    return luhn_ok(s, 14) ? NULL : "invalid SIRET (Luhn checksum)";
}

int gw_siren_valid(const char *s, size_t len)
{
    return s != NULL && len == 9 && all_digits(s, 9) && memcmp(s, "000000000", 9) != 0 &&
           luhn_ok(s, 9);
}
