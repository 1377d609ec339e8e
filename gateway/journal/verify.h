/*
 * Hash chain of the access journal: the primitives shared by the writer
 * (journal.c) and the verifier (verify.c), the verifier itself and the helpers
 * that find and order a journal's files.
 *
 * A chained record is one line:
 *
 *   {<the worker's members>,"seq":N,"prev":"<64 hex>","hash":"<64 hex>"}\n
 *
 * hash = SHA-256 of the bytes from '{' up to and including the closing quote
 * of "prev" (the canonical record bytes), lowercase hex. prev is the hash of
 * the record before; the first record of a journal (seq 1) has 64 zeros.
 * docs/journal.md describes the chain, the special records and the verifier's
 * messages.
 */
#ifndef GW_JOURNAL_VERIFY_H
#define GW_JOURNAL_VERIFY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "token/jose.h"

/* prev of the first record of a journal. */
#define GW_JOURNAL_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"

/* The chain members at the end of one record line. */
typedef struct gw_journal_link {
    uint64_t seq;
    char prev[65];    /* as written (64 lowercase hex + NUL) */
    char hash[65];    /* as written */
    size_t canon_len; /* bytes hashed: line[0 .. canon_len) */
} gw_journal_link;

/* Parse the chain members of <line>/<len> (with or without its final '\n').
 * The line must end exactly in ,"seq":N,"prev":"<hex>","hash":"<hex>"} with N
 * in 1..UINT64_MAX without leading zeros and lowercase hex. Only the framing
 * is checked: not the hash, not the JSON before. Returns 0 or -1. */
int gw_journal_parse_link(const char *line, size_t len, gw_journal_link *out);

/* SHA-256 of <p>/<n> as 64 lowercase hex + NUL. */
void gw_journal_sha256_hex(const void *p, size_t n, char out[65]);

/* 1 when the "hash" of <line> (parsed into <l>) is the SHA-256 of its
 * canonical bytes. */
int gw_journal_link_ok(const char *line, const gw_journal_link *l);

/* ---- journal files ---- */

/* 1 when <name> ends in ".YYYYMMDDTHHMMSSZ" or ".YYYYMMDDTHHMMSSZ-N" (a file
 * rotated by the writer), with a valid UTC date; then <*base_len> is the
 * length of the part before that suffix, <*stamp> the time and <*n> the
 * disambiguating number (0 when absent). Any output may be NULL. */
int gw_journal_rotated_name(const char *name, size_t *base_len, time_t *stamp, unsigned *n);

/* Order <files> in chain order: for one journal, its rotated files
 * <path>.<stamp>[-N] by stamp then N, then <path> itself. Names of different
 * journals are grouped by <path> in strcmp() order. Sorts the pointers. */
void gw_journal_sort_files(const char **files, size_t n);

/* The files of the journal at <path> in chain order: every <path>.<stamp>[-N]
 * in its directory, then <path> when it exists. Returns 0 with a malloc'd
 * array of malloc'd names (free with gw_journal_free_files), or -1 and a
 * malloc'd <*err> (unreadable directory, no file at all, out of memory). */
int gw_journal_list_files(const char *path, char ***files, size_t *n, char **err);
void gw_journal_free_files(char **files, size_t n);

/* ---- verifier ---- */

typedef enum gw_jv_kind {
    GW_JV_OK = 0,
    GW_JV_MODIFIED,   /* a record's content no longer matches its hash, or it was
                       * rewritten with its hash recomputed (the next record, or an
                       * expected head, links to another hash) */
    GW_JV_DELETED,    /* records missing inside a file (seq gap, prev mismatch) */
    GW_JV_INSERTED,   /* a line that is not part of the chain, among records that are */
    GW_JV_REORDERED,  /* records present but out of order */
    GW_JV_MISSING,    /* records missing across files: a truncated tail, a deleted
                       * head or a missing file */
    GW_JV_TRUNCATED,  /* the journal ends before the expected head (opts) */
    GW_JV_CHECKPOINT, /* a checkpoint whose head or signature does not verify */
    GW_JV_START,      /* the chain starts after records that no retention record
                       * accounts for */
    GW_JV_MALFORMED,  /* a record whose hash verifies but which is not a valid record
                       * (JSON, duplicate members, chain fields, special records) */
    GW_JV_IO,         /* a file cannot be read */
} gw_jv_kind;

/* "ok", "modified", "deleted", "inserted", "reordered", "missing",
 * "truncated", "checkpoint", "start", "malformed", "io". */
const char *gw_jv_kind_name(gw_jv_kind k);

/* A checkpoint record <o> (parsed) with chain members <l>: its head
 * (head_seq, head_hash) must be the record before it, and, when <keys> is
 * not NULL, its signature must verify with one of them and cover that head.
 * GW_JV_OK, or GW_JV_MALFORMED / GW_JV_CHECKPOINT with a message in <why>.
 * Shared by the verifier and the tail check (tail.h). */
struct json_t;
gw_jv_kind gw_journal_check_checkpoint(const struct json_t *o, const gw_journal_link *l,
                                       const gw_keyset *keys, char *why, size_t whylen);

typedef struct gw_journal_verify_opts {
    /* Keys that may have signed checkpoints (found by kid). NULL: signatures
     * are not checked and the report says so. */
    const gw_keyset *keys;
    /* A head known from elsewhere (the writer's "checkpoint seq=N hash=H"
     * stderr line, a previous verification): the chain must contain record
     * <expect_seq> with hash <expect_hash>. 0: none. */
    uint64_t expect_seq;
    const char *expect_hash;
} gw_journal_verify_opts;

typedef struct gw_journal_verify_result {
    gw_jv_kind kind;  /* the first problem, GW_JV_OK when intact */
    size_t file;      /* its file (index into the caller's array) */
    size_t line;      /* its line, 1-based (0: not tied to a line) */
    uint64_t records; /* chained records verified */
    uint64_t first_seq, last_seq;
    char last_hash[65];
    uint64_t checkpoints;          /* checkpoint records in the verified chain */
    uint64_t checkpoints_verified; /* of which signatures verified (keys given) */
    uint64_t after_checkpoint;     /* records after the last checkpoint */
    uint64_t warnings;             /* torn / foreign lines skipped */
    int start_covered;    /* the chain starts at seq 1, or right after a retention record */
    uint64_t gaps;        /* "gap" records: losses the gateway recorded */
    uint64_t gap_records; /* records they say were lost (an upper bound for "lost_max") */
    uint64_t summarised;  /* refusals counted by "summary" records */
} gw_journal_verify_result;

/* Verify the journal made of <files> (in chain order, e.g. from
 * gw_journal_list_files or sorted with gw_journal_sort_files). Writes a short
 * report to <report> (may be NULL) and, when <res> is not NULL, fills it.
 * Returns 0 when the chain is intact (warnings allowed), 1 at the first
 * problem (the report names file, line and kind), 2 when a file cannot be
 * read. */
int gw_journal_verify_ex(const char *const *files, size_t nfiles,
                         const gw_journal_verify_opts *opts, FILE *report,
                         gw_journal_verify_result *res);

/* gw_journal_verify_ex with only <keys> (may be NULL) and no result. */
int gw_journal_verify(const char *const *files, size_t nfiles, const gw_keyset *keys, FILE *report);

#endif
