/*
 * Offline evidence commands (issue 18): what they share.
 *
 * Every command (--recette, --availability, --extract) first verifies the
 * journal's chain and checkpoint signatures with the configuration's keys
 * (gw_journal_verify_ex), then reads the files into memory and checks, line
 * by line, that the bytes it computes from are the chain it verified (same
 * hashes, same links, same head). Nothing is computed from a file that did
 * not verify. Documents the commands write are signed with the gateway's
 * active signing key: the last line of the document carries a JWS whose
 * payload holds the SHA-256 of every byte before that line
 * (docs/recette.md, "Signature").
 */
#ifndef GW_EVIDENCE_H
#define GW_EVIDENCE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "conf/conf.h"
#include "journal/verify.h"
#include "stages/stages.h"
#include "token/oauth.h"

/* One chained record of a verified journal. */
typedef struct gw_ev_rec {
    char *line; /* the record's bytes, without the final '\n' (owned) */
    size_t len;
    json_t *obj; /* parsed (owned) */
    uint64_t seq;
    char hash[65];
    char prev[65];
    int64_t ts_ms;    /* "ts" in ms since the epoch, -1 when absent or invalid */
    const char *type; /* "type" member (writer's records), NULL for access records */
    size_t file;      /* index into gw_ev_journal.files */
} gw_ev_rec;

typedef struct gw_ev_journal {
    char **files; /* in chain order (owned) */
    size_t nfiles;
    gw_ev_rec *recs;
    size_t n;
    gw_journal_verify_result res;
    int verify_rc;          /* 0 intact, 3 intact with gap records */
    size_t last_checkpoint; /* index of the last checkpoint record, SIZE_MAX: none */
} gw_ev_journal;

/* What a command needs from the configuration: the keys (verification and
 * signing) and the access settings (maintenance calendar). */
typedef struct gw_ev_conf {
    gw_conf *conf;
    gw_oauth *oauth;
    gw_stage_lists *access;
} gw_ev_conf;

/* Load <path>; errors printed on stderr as "FILE: json.path: message".
 * Returns 0 or -1. */
int gw_ev_conf_load(const char *path, gw_ev_conf *c);
void gw_ev_conf_clear(gw_ev_conf *c);

/* Verify then load the journal made of <paths> (one path: it and its rotated
 * files; several: sorted in chain order). The verifier's report goes to
 * <report> (may be NULL). Returns 0 (chain intact, possibly with gap
 * records: j->verify_rc 3), or the verifier's exit status (1 problem, 2
 * unreadable) with a malloc'd <*err>; also 1 when the files changed between
 * the verification and the read. */
int gw_ev_journal_load(const char *const *paths, size_t npaths, const gw_keyset *keys, FILE *report,
                       gw_ev_journal *j, char **err);
void gw_ev_journal_clear(gw_ev_journal *j);

/* Parse one chained line (without '\n') into <r> (copying it). 0 or -1. */
int gw_ev_rec_parse(const char *line, size_t len, gw_ev_rec *r);
void gw_ev_rec_clear(gw_ev_rec *r);

/* Member helpers: the string at <key> ("a" or "a.b"), NULL when absent or
 * not a string; the integer, -1 when absent. */
const char *gw_ev_str(const json_t *o, const char *key);
long long gw_ev_int(const json_t *o, const char *key);

/* "YYYY-MM-DD", "YYYY-MM-DDTHH:MM[:SS[.fff]]Z" (UTC) -> ms since the epoch.
 * 0 or -1. */
int gw_ev_parse_time(const char *s, int64_t *ms);
/* ms since the epoch -> "YYYY-MM-DDTHH:MM:SS.mmmZ" into <out>. */
void gw_ev_format_time(int64_t ms, char out[32]);

/* ---- signed documents ---- */

typedef enum { GW_EV_SIG_HTML = 0, GW_EV_SIG_JSON = 1 } gw_ev_sig_style;

/* Append the signature line to <body>/<len> (which must end in '\n') with
 * <key>: HTML style "<!-- opale-gateway signature: JWS -->\n" (Markdown and
 * HTML), JSON style {"signature":"JWS"}\n (JSON Lines). The JWS payload is
 * {"purpose":<purpose>,"sha256":<hex of body>,"ts":<now>}. Returns the
 * malloc'd signed document (length in <*out_len>) or NULL. */
char *gw_ev_sign(const gw_jwk *key, const char *purpose, const char *body, size_t len,
                 gw_ev_sig_style style, size_t *out_len);

/* Check the signature line of <doc>/<len> with <keys>: the last line is a
 * signature line of either style, its JWS verifies (strict base64url, key by
 * kid), and its sha256 is that of every byte before the line. Returns NULL
 * and fills <*purpose>/<*kid>/<*ts> (malloc'd, may be NULL) and
 * <*body_len>, or a constant reason. */
const char *gw_ev_verify_signed(const char *doc, size_t len, const gw_keyset *keys, char **purpose,
                                char **kid, char **ts, size_t *body_len);

/* Read a whole file (NUL-terminated). NULL with errno on failure. */
char *gw_ev_read_file(const char *path, size_t *len);

/* Append <s> HTML-escaped (& < > " ') to <b>. */
void gw_ev_html_escape(FILE *b, const char *s);

/* ---- command lines ---- */

typedef struct gw_ev_args {
    const char *conf, *criteria, *format, *consumer, *siren;
    const char *positional; /* the argument before the journals (--recette's CLIENT_ID) */
    int64_t from, to;       /* -1: not given */
    const char **files;     /* the journals (malloc'd array, strings are argv's) */
    size_t nfiles;
} gw_ev_args;

/* Parse <argv>[<first>..] into <a>: the options named in <allowed> (a
 * space-separated list among "-c --criteria --format --consumer --siren
 * --from --to", each taking a value), with <positional> set the first other
 * argument in <a->positional>, the rest in <a->files>. Returns 0; -1 on an
 * option not allowed, a missing value or a bad time (a message on stderr
 * for the time). Free with gw_ev_args_clear. */
int gw_ev_parse_args(int argc, char **argv, int first, const char *allowed, int positional,
                     gw_ev_args *a);
void gw_ev_args_clear(gw_ev_args *a);

/* Load the configuration <a->conf>, then verify and load the journal
 * <a->files> with its keys (the verifier's report on stderr). Returns 0, or
 * the exit status: 2 configuration or unreadable file, 1 journal refused
 * (stderr: "opale-gateway: <cmd>: REASON"). <c> and <j> are set either way
 * and must be cleared. */
int gw_ev_open(const char *cmd, const gw_ev_args *a, gw_ev_conf *c, gw_ev_journal *j);

/* Sign <body>/<len> with the active key of <c> (gw_ev_sign) and write the
 * document to stdout. 0, or 1 (stderr says why). */
int gw_ev_emit(const gw_ev_conf *c, const char *cmd, const char *purpose, const char *body,
               size_t len, gw_ev_sig_style style);

/* "-c FILE DOCUMENT" (--verify-report, --verify-extract): parse, load the
 * configuration into <c> and read the document (malloc'd <*doc>). Returns 0,
 * or the exit status 2 (usage <usage>, configuration, unreadable file). <c>
 * must be cleared and <*doc> freed either way. */
int gw_ev_open_document(int argc, char **argv, int first, const char *usage, gw_ev_conf *c,
                        const char **file, char **doc, size_t *len);

/* The current UTC time as gw_ev_format_time writes it. */
void gw_ev_now(char out[32]);

/* Entry points of the commands; <argv>[<first>..] are the command's
 * arguments (after the option that named it). Return the exit status. */
int gw_evidence_recette_main(int argc, char **argv, int first);
int gw_evidence_availability_main(int argc, char **argv, int first);
int gw_evidence_extract_main(int argc, char **argv, int first);
int gw_evidence_verify_extract_main(int argc, char **argv, int first);
int gw_evidence_verify_report_main(int argc, char **argv, int first);

#endif
