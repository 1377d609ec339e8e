/*
 * The chain order of a set of journal files, whatever their names.
 *
 * A journal's files are PATH.<stamp>[-N] (rotated by the gateway), PATH.1,
 * PATH.2.gz... (rotated by logrotate, then decompressed), or copies under
 * any name. Their names cannot be trusted to give the chain order; the seq
 * of each file's first chained record can. Used by the offline commands
 * (--verify-journal, the evidence commands) before they verify files given
 * on the command line.
 */
#ifndef GW_JOURNAL_ORDER_H
#define GW_JOURNAL_ORDER_H

#include <stddef.h>
#include <stdint.h>

/* The seq of the first chained record among the first <max_lines> lines
 * of the file <path>: 1 and <*seq> set, 0 when none (an empty file, lines
 * without the chain members, unreadable). */
int gw_journal_first_seq(const char *path, unsigned max_lines, uint64_t *seq);

/* Sort <files> by the seq of their first chained record (the first 16
 * lines are read); files without one keep their relative order, after the
 * others. Equal seqs (copies of one file) keep their relative order too.
 * When memory runs out, falls back to gw_journal_sort_files() (name order).
 * Sorts the pointers; the strings are not copied. */
void gw_journal_order_by_first_seq(const char **files, size_t n);

#endif
