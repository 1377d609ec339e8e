/* Civil time without the C library's time-zone state: the days of the
 * proleptic Gregorian calendar, and the two zones the gateway knows
 * (Europe/Paris, with the EU summer-time rule, and UTC). Pure functions:
 * no TZ variable, no locale, safe in every thread. */
#ifndef GW_LIB_CIVIL_H
#define GW_LIB_CIVIL_H

#include <time.h>

typedef enum { GW_TZ_PARIS = 0, GW_TZ_UTC = 1 } gw_tz;

/* Days from 1970-01-01 to y-m-d (negative before it). */
long gw_days_from_civil(long y, unsigned m, unsigned d);

/* The zone's offset from UTC, in seconds, at instant <t> (Paris: +3600,
 * or +7200 from the last Sunday of March 01:00 UTC to the last Sunday of
 * October 01:00 UTC). */
long gw_tz_offset(gw_tz tz, time_t t);

/* The local date at <t> in the zone, as YYYYMMDD (the policy's dates are
 * compared with it: "today" for a habilitation's validity). */
int gw_local_yyyymmdd(gw_tz tz, time_t t);

#endif
