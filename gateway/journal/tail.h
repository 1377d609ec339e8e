/*
 * The tail check of a chained journal (docs/journal.md, "Tail check"):
 * are the last records of the journal intact, and do they end where the
 * writer left them?
 *
 * Read at start (a broken tail stops the gateway: no exchange on a chain
 * nobody can trust), by the writer every journal.tail_check_s seconds, and
 * by --journal-ack-break, which records an operator's acknowledgement of a
 * known break and lets the chain go on from there.
 */
#ifndef GW_JOURNAL_TAIL_H
#define GW_JOURNAL_TAIL_H

#include <stddef.h>
#include <stdint.h>

#include "token/jose.h"

/* How much of the file's end is checked: at least this many bytes, more
 * (up to GW_JOURNAL_TAIL_MAX) to reach back to the last checkpoint. */
#define GW_JOURNAL_TAIL_BYTES (1u << 20)
#define GW_JOURNAL_TAIL_MAX (16u << 20)

typedef struct gw_journal_tail {
    int broken;          /* 1: <what> says why */
    char file[4096];     /* the file checked (the journal's, or its newest rotated file) */
    uint64_t offset;     /* where the checked window starts in <file> */
    uint64_t seq;        /* the record at fault (0: none) */
    size_t line;         /* its line, counted from the window's first complete line */
    char expected[65];   /* the hash the chain expects there ("" when not a hash) */
    char actual[65];     /* the hash found */
    char what[256];      /* the problem, one line */
    uint64_t records;    /* records checked */
    uint64_t last_seq;   /* the last record (0: none) */
    char last_hash[65];  /* its hash */
    uint64_t checkpoint; /* seq of the last checkpoint in the window (0: none) */
    uint64_t ack_seq;    /* seq of the last break acknowledgement in the window (0: none) */
    /* the last checkpoint's kid when no key of <keys> has it (a key retired
     * from oauth.signing_keys): its head was checked, not its signature */
    char unknown_kid[128];
} gw_journal_tail;

/* Check the end of the journal whose current file is <path> (when it holds
 * no record, its newest rotated file). Each record must match its hash and
 * link to the one before it (seq + 1, prev), the last checkpoint's head
 * must be the record before it and, with <keys>, its signature must verify.
 * A last line cut by a crash and foreign lines (a write cut short) are not
 * breaks: the writer handles them at open. Records before the last
 * "break_ack" record of the window are not checked: that break is known.
 * <expect_seq>/<expect_hash> (0/NULL: none): the head the writer holds; the
 * file must hold that record with that hash, and nothing may follow it
 * unchecked (a running journal's tail cannot have been cut or rewritten).
 * Returns 0 intact (or no journal yet), 1 broken (<t> says where), 2 the
 * file cannot be read (<t->what>). */
int gw_journal_check_tail(const char *path, const gw_keyset *keys, uint64_t expect_seq,
                          const char *expect_hash, gw_journal_tail *t);

/* Append to <t->file> (the file gw_journal_check_tail found broken) a
 * chained "break_ack" record that names the break (file, seq, line,
 * expected and actual hash, what) with the operator's <reason> and <by>
 * (the user), linked to the file's last record, and fsync it. The chain
 * continues from it; the tail check skips what comes before it. 0, or -1
 * and a malloc'd <*err>. The gateway must not be running. */
int gw_journal_ack_break(const gw_journal_tail *t, const char *reason, const char *by, char **err);

#endif
