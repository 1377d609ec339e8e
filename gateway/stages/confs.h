/*
 * Settings of the access stages: the "access" object of the gateway config,
 * validated here (the stages own their keys) with the same located messages
 * as the rest of the config: "FILE: access.maintenance.slots[0].daily: ...".
 *
 *   "access": {
 *     "trusted_proxies": ["10.0.0.0/8"],              peers allowed to state the
 *                                                     client address (XFF, PROXY v2)
 *     "suspensions_file": "state/suspensions.json",   kill-switch state
 *     "maintenance": {"timezone": "Europe/Paris", "force": false,
 *                     "slots": [{"daily": "02:00-03:00"},
 *                               {"from": "2026-12-24T23:00", "until": "2026-12-25T00:00"}]}
 *   }
 *
 * The CGU allow 2 hours of maintenance a night (23:00-06:00 local): each slot
 * must lie in that band, and the slots of one night (the daily ones plus the
 * dated ones of that night, overlaps counted once) must not exceed 2 hours,
 * unless "force" is true.
 */
#ifndef GW_STAGE_CONFS_H
#define GW_STAGE_CONFS_H

#include <stddef.h>
#include <time.h>

#include "conf/conf.h"
#include "lib/civil.h"
#include "policy/policy.h"

typedef struct gw_maint_slot {
    int daily;     /* 1: every day from start_min to end_min (local time) */
    int start_min; /* minutes after local midnight (dated slots too: local start) */
    int end_min;   /* may be < start_min: crosses midnight */
    time_t from;   /* explicit slot, UTC seconds */
    time_t until;
    long night; /* explicit slot: its night, as local days since 1970-01-01 of its evening */
} gw_maint_slot;

typedef struct gw_stage_confs {
    gw_cidr *trusted;
    size_t ntrusted;
    char *suspensions_file; /* absolute */
    gw_tz tz;
    int force;
    gw_maint_slot *slots;
    size_t nslots;
} gw_stage_confs;

/* Parse <c->access> (may be NULL: defaults). Errors go to <errs> with <c->path>
 * as FILE. Returns NULL on error. */
gw_stage_confs *gw_stage_confs_load(const gw_conf *c, gw_errlist *errs);
void gw_stage_confs_free(gw_stage_confs *s);

/* Offset of local time from UTC at <t> for <tz> (Europe/Paris: CET/CEST by
 * the EU rule, last Sunday of March and of October at 01:00 UTC). */

/* When <now> lies in a slot: 1, with <*end> the slot's end (UTC). */
int gw_maintenance_active(const gw_stage_confs *s, time_t now, time_t *end);

/* 1 when <addr> is one of the trusted proxies. */
int gw_is_trusted_proxy(const gw_stage_confs *s, int family, const unsigned char *addr);

#endif
