/*
 * Anchoring off the host (docs/journal.md, "Anchoring"): every checkpoint's
 * seq and hash, sent to a place the journal's host cannot rewrite, so that
 * a journal cut and re-chained on the host no longer matches its anchors
 * (--verify-journal --anchors).
 *
 * One thread sends the anchors queued by gw_anchors_submit() (called by the
 * journal writers, gw_journal_opts.on_checkpoint), one at a time, oldest
 * first, to one destination: a Redis list (RPUSH), an HTTP(S) endpoint
 * (POST), or a command (the anchor on its stdin). A failure is retried
 * (retry_s, doubling up to 5 min), counted (the stats say whether the last
 * attempt failed, and why: the gateway turns the start of a failure streak
 * into a security event); nothing ever waits for it: a full
 * queue drops its oldest anchor (a newer anchor covers the records of an
 * older one).
 *
 * An anchor is one JSON line:
 *   {"v":1,"type":"journal.anchor","host":"<hostname>","journal":"<path>",
 *    "seq":<checkpoint seq>,"hash":"<checkpoint hash>","ts":"<its ts>"}
 */
#ifndef GW_JOURNAL_ANCHOR_H
#define GW_JOURNAL_ANCHOR_H

#include <stddef.h>
#include <stdint.h>

typedef enum gw_anchor_kind {
    GW_ANCHOR_NONE = 0,
    GW_ANCHOR_REDIS,
    GW_ANCHOR_HTTP,
    GW_ANCHOR_COMMAND,
} gw_anchor_kind;

#define GW_ANCHOR_TIMEOUT_MS 5000
#define GW_ANCHOR_RETRY_S 10
#define GW_ANCHOR_RETRY_MAX_S 300
#define GW_ANCHOR_QUEUE 1024

typedef struct gw_anchor_opts {
    gw_anchor_kind kind;
    const char *redis_host; /* GW_ANCHOR_REDIS */
    unsigned redis_port;
    const char *redis_key;
    const char *redis_password; /* NULL: no AUTH */
    const char *url;            /* GW_ANCHOR_HTTP: http://host[:port]/path or https:// */
    const char *ca_file;        /* https: the CA bundle (NULL: the system's) */
    const char *command;        /* GW_ANCHOR_COMMAND: absolute path, run without a shell */
    unsigned timeout_ms;        /* one attempt; 0: GW_ANCHOR_TIMEOUT_MS */
    unsigned retry_s;           /* first retry delay; 0: GW_ANCHOR_RETRY_S */
    size_t queue_max;           /* 0: GW_ANCHOR_QUEUE */
} gw_anchor_opts;

typedef struct gw_anchors gw_anchors;

typedef struct gw_anchor_stats {
    uint64_t sent;     /* anchors the destination accepted */
    uint64_t failed;   /* attempts that failed (each retry counts) */
    uint64_t dropped;  /* anchors dropped from a full queue */
    uint64_t pending;  /* waiting now */
    int failing;       /* 1 while the last attempt failed */
    uint64_t last_seq; /* seq of the last anchor sent */
    uint64_t streaks;  /* failure streaks so far (a failure after a success, or the first) */
    char last_error[256];
} gw_anchor_stats;

/* Start the sender. NULL and a malloc'd <*err> on failure (an unusable
 * URL, no thread). */
gw_anchors *gw_anchors_start(const gw_anchor_opts *o, char **err);

/* Queue one anchor (copies the strings). Never blocks on I/O; thread-safe.
 * Its signature fits gw_journal_opts.on_checkpoint (<arg>: the gw_anchors). */
void gw_anchors_submit(void *anchors, const char *journal, uint64_t seq, const char *hash,
                       const char *ts);

void gw_anchors_get_stats(gw_anchors *a, gw_anchor_stats *st);

/* Send what is queued, waiting at most <ms> milliseconds, then stop the
 * thread and free. Returns the anchors that were not sent. */
uint64_t gw_anchors_stop(gw_anchors *a, unsigned ms);

/* One attempt to send the anchor <line> (a JSON object, no newline) as <o>
 * says; 0, or -1 with <err> set. Used by the thread and by tests. */
int gw_anchor_send(const gw_anchor_opts *o, const char *line, char *err, size_t errlen);

/* Read the anchors of <o>'s Redis list (LRANGE key 0 -1), each as a
 * malloc'd line, into <*lines>/<*n>. 0, or -1 with <err>. For the check
 * (--verify-journal --anchors redis). */
int gw_anchor_redis_read(const gw_anchor_opts *o, char ***lines, size_t *n, char *err,
                         size_t errlen);

#endif
