/*
 * The journal's integrity as the gateway's commands and start see it
 * (docs/journal.md, "Tail check", "Anchoring"): what main.c calls, built on
 * tail.h, anchor.h and events.h with the configuration.
 */
#ifndef GW_JOURNAL_INTEGRITY_H
#define GW_JOURNAL_INTEGRITY_H

#include <stdint.h>

#include "conf/conf.h"
#include "journal/anchor.h"
#include "journal/events.h"
#include "journal/journal.h"
#include "token/jose.h"

/* Exit status of a gateway that refuses to start on a broken journal tail
 * (and of --journal-ack-break when the tail cannot be read). */
#define GW_EXIT_JOURNAL_BROKEN 4

/* The security-events stream's options from <c>, with the access journal's
 * <jo> (path replaced by journal.events.path). */
void gw_integrity_events_opts(const gw_conf *c, const gw_journal_opts *jo, gw_events_opts *eo);

/* The start check: the tail of journal.path (tail.h, signatures checked with
 * <keys>). 0 when it may be served; GW_EXIT_JOURNAL_BROKEN after a clear
 * message on stderr (the file, the record, the hashes, what to do) and a
 * "journal.broken" security event written to the events stream (<eo>). */
int gw_integrity_start_check(const char *conf_path, const gw_conf *c, const gw_keyset *keys,
                             const gw_events_opts *eo);

/* --journal-ack-break -c FILE --reason TEXT: argv from <first>. The exit
 * status: 0 acknowledged, 1 nothing to acknowledge or bad configuration,
 * 2 usage, GW_EXIT_JOURNAL_BROKEN the journal cannot be read or written. */
int gw_integrity_ack_main(int argc, char **argv, int first);

/* The anchor sender journal.anchor configures; NULL with *err NULL when none
 * is configured, NULL with a malloc'd *err on failure. */
gw_anchors *gw_integrity_anchors_start(const gw_conf *c, char **err);

/* The expected head for --verify-journal --anchors SRC: the anchor with the
 * highest seq among those of SRC (a file of anchor lines, or "redis": the
 * list journal.anchor configures in <c>) whose "journal" names one of
 * <files> (same path, or same file name). 0 and <*seq>/<hash>; 1 no anchor
 * for this journal; -1 the anchors cannot be read (message on stderr).
 * <*count>: the anchors that matched. */
int gw_integrity_anchor_head(const char *src, const gw_conf *c, const char *const *files,
                             size_t nfiles, uint64_t *seq, char hash[65], uint64_t *count);

#endif
