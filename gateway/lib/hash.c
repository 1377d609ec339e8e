#include "lib/hash.h"

#define FNV64_PRIME 1099511628211ULL

uint64_t gw_fnv1a64_add(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * FNV64_PRIME;
    return h;
}

uint64_t gw_fnv1a64(const void *data, size_t len)
{
    return gw_fnv1a64_add(GW_FNV1A64_INIT, data, len);
}

uint64_t gw_fnv1a64_str(const char *s)
{
    uint64_t h = GW_FNV1A64_INIT;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * FNV64_PRIME;
    return h;
}
