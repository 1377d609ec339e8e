#include "lib/civil.h"

long gw_days_from_civil(long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long)doe - 719468;
}

long gw_tz_offset(gw_tz tz, time_t t)
{
    if (tz == GW_TZ_UTC)
        return 0;
    struct tm tm;
    gmtime_r(&t, &tm);
    long y = tm.tm_year + 1900;
    /* the last Sunday of March and of October, 01:00 UTC */
    long mar31 = gw_days_from_civil(y, 3, 31), oct31 = gw_days_from_civil(y, 10, 31);
    long mar_last_sun = mar31 - ((mar31 + 4) % 7 + 7) % 7;
    long oct_last_sun = oct31 - ((oct31 + 4) % 7 + 7) % 7;
    time_t dst_start = (time_t)(mar_last_sun * 86400L + 3600);
    time_t dst_end = (time_t)(oct_last_sun * 86400L + 3600);
    return (t >= dst_start && t < dst_end) ? 7200 : 3600;
}

int gw_local_yyyymmdd(gw_tz tz, time_t t)
{
    time_t local = t + gw_tz_offset(tz, t);
    struct tm tm;
    gmtime_r(&local, &tm);
    return (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
}
