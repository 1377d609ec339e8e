/*
 * Value syntaxes shared by the policy files, the DataPass import and the
 * kill-switch file: a calendar date, an e-mail address, a client_id.
 */
#include "policy/values.h"

#include <string.h>

int gw_date_parse(const char *s, int *out)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return -1;
    for (int i = 0; i < 10; i++) {
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return -1;
    }
    int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    int m = (s[5] - '0') * 10 + (s[6] - '0');
    int d = (s[8] - '0') * 10 + (s[9] - '0');
    if (y == 0 || m < 1 || m > 12 || d < 1)
        return -2;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    int dim = mdays[m - 1] + (m == 2 && leap);
    if (d > dim)
        return -2;
    *out = y * 10000 + m * 100 + d;
    return 0;
}

int gw_email_valid(const char *s)
{
    const char *at = s != NULL ? strchr(s, '@') : NULL;
    if (at == NULL || strlen(s) > 254 || at == s || at - s > 64 || strchr(at + 1, '@') != NULL)
        return 0;
    for (const char *c = s; c < at; c++) {
        unsigned char u = (unsigned char)*c;
        if (u < 0x21 || u > 0x7e || strchr("\"(),:;<>[\\]", u) != NULL)
            return 0;
    }
    size_t labels = 0, len = 0;
    for (const char *c = at + 1;; c++) {
        if (*c == '.' || *c == '\0') {
            if (len == 0 || len > 63 || c[-1] == '-')
                return 0;
            labels++;
            len = 0;
            if (*c == '\0')
                break;
            continue;
        }
        int ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                 (*c == '-' && len > 0);
        if (!ok)
            return 0;
        len++;
    }
    return labels >= 2;
}

int gw_client_id_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 3 || n > 128)
        return 0;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}
