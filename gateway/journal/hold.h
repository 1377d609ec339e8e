/*
 * Legal holds on the journal (docs/journal.md, "Legal hold"): while one is
 * set, retention deletes no rotated file, of the access journal nor of the
 * security events. Set and lifted through the admin API
 * (/admin/journal/hold), kept in DIR/.NAME.holds next to the access
 * journal (JSON, written atomically), so that they survive restarts.
 *
 * A hold names a consumer (client_id) or none (everything). Files are not
 * per consumer: any file may hold a consumer's records, so a hold on one
 * consumer keeps every file, as a hold on all does; the consumer is what
 * the hold is about, for the record and for lifting it.
 * Not thread-safe: the admin API runs on the main loop.
 */
#ifndef GW_JOURNAL_HOLD_H
#define GW_JOURNAL_HOLD_H

#include <stddef.h>

struct json_t;
typedef struct gw_holds gw_holds;

/* Load the holds of the journal at <journal_path> (none when the file does
 * not exist). NULL and a malloc'd <*err> when it exists but cannot be read
 * or is not what gw_holds_set writes. */
gw_holds *gw_holds_open(const char *journal_path, char **err);
void gw_holds_free(gw_holds *h);

size_t gw_holds_count(const gw_holds *h);

/* Set the hold of <consumer> (NULL: all), replacing its reason if it exists,
 * and save. 1 set (new), 0 replaced, -1 and a malloc'd <*err> when it could
 * not be saved (then nothing changed). */
int gw_holds_set(gw_holds *h, const char *consumer, const char *reason, const char *by, char **err);

/* Lift the hold of <consumer> (NULL: the hold on all) and save. 1 lifted, 0
 * there was none, -1 and <*err> when it could not be saved. */
int gw_holds_lift(gw_holds *h, const char *consumer, char **err);

/* [{"consumer":…|null,"reason":…,"by":…,"since":…},…] (a new reference). */
struct json_t *gw_holds_json(const gw_holds *h);

/* The file the holds are kept in (DIR/.NAME.holds). */
const char *gw_holds_path(const gw_holds *h);

#endif
