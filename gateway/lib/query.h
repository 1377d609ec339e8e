/*
 * Query strings: the one parser and canonicaliser (no I/O, no allocation).
 *
 * Each route declares its query parameters (gw_query_decl: a lowercase name,
 * a syntax, required or not). gw_query_parse() checks a received query
 * against those declarations and builds the query the backend gets: only the
 * declared parameters, in declaration order, re-serialised from the validated
 * values. The stages and the journal read the same parsed values
 * (gw_query_get), so what was authorised, what is forwarded and what is
 * journalled cannot differ.
 *
 * Refused (docs/configuration.md, "Query parameters"):
 *   - a pair without '=', an empty pair ("a&&b", trailing '&'), a name with a
 *     byte outside [A-Za-z0-9_.-] (GW_QUERY_MALFORMED);
 *   - a name with '%' (percent-encoded: GW_QUERY_ENCODED_NAME);
 *   - a name that is not declared (GW_QUERY_UNDECLARED), or that is declared
 *     but written in another case ("ANNEE", "Annee": GW_QUERY_CASE);
 *   - a name sent twice (GW_QUERY_REPEATED);
 *   - an empty value (GW_QUERY_EMPTY), a value that breaks the syntax
 *     (GW_QUERY_BAD_VALUE; values are never percent-decoded: no syntax
 *     needs '%', so a '%' is a bad value);
 *   - a required parameter absent (GW_QUERY_MISSING).
 *
 * libFuzzer entry point: gw_query_parse() (pure; any bytes, any length).
 */
#ifndef GW_QUERY_H
#define GW_QUERY_H

#include <stddef.h>

#define GW_QUERY_MAX_PARAMS 8       /* declared per route */
#define GW_QUERY_MAX_NAME 32        /* bytes of a declared name */
#define GW_QUERY_MAX_VALUE 64       /* bytes of a value, whatever the syntax */
#define GW_QUERY_CANONICAL_MAX 1024 /* > 8 * (32 + 1 + 64 + 1) */

typedef enum gw_query_syntax {
    GW_QSYN_YEAR = 0, /* exactly 4 ASCII digits */
    GW_QSYN_DIGITS,   /* 1..GW_QUERY_MAX_VALUE ASCII digits */
    GW_QSYN_TOKEN     /* 1..GW_QUERY_MAX_VALUE of [A-Za-z0-9-._~] */
} gw_query_syntax;

typedef struct gw_query_decl {
    char name[GW_QUERY_MAX_NAME + 1]; /* lowercase [a-z0-9_] */
    gw_query_syntax syntax;
    int required;
} gw_query_decl;

typedef enum gw_query_err {
    GW_QUERY_OK = 0,
    GW_QUERY_MALFORMED,
    GW_QUERY_ENCODED_NAME,
    GW_QUERY_UNDECLARED,
    GW_QUERY_CASE,
    GW_QUERY_REPEATED,
    GW_QUERY_EMPTY,
    GW_QUERY_BAD_VALUE,
    GW_QUERY_MISSING
} gw_query_err;

typedef struct gw_query {
    gw_query_err err;
    int err_decl; /* index of the declaration concerned, -1 when none */
    /* per declaration: 1 when sent, with its validated value */
    int present[GW_QUERY_MAX_PARAMS];
    char value[GW_QUERY_MAX_PARAMS][GW_QUERY_MAX_VALUE + 1];
    size_t value_len[GW_QUERY_MAX_PARAMS];
    const gw_query_decl *decls;
    size_t ndecls;
    /* "annee=2023&x=1" (no '?'), "" when no parameter; NUL-terminated */
    char canonical[GW_QUERY_CANONICAL_MAX];
    size_t canonical_len;
} gw_query;

/* Parse <query>/<len> (the bytes after '?', NULL or len 0 when none) against
 * <decls>/<ndecls> (at most GW_QUERY_MAX_PARAMS) into <out>. Returns
 * out->err. On error, out->canonical is "" and no value is present. Reads
 * nothing past <query>+<len>. */
gw_query_err gw_query_parse(const gw_query_decl *decls, size_t ndecls, const char *query,
                            size_t len, gw_query *out);

/* The validated value of <name> (NUL-terminated; length in <*len>), or NULL
 * when not sent or <q> holds an error. */
const char *gw_query_get(const gw_query *q, const char *name, size_t *len);

/* Journal reason of an error: "query.undeclared", ... ("query.ok" for OK). */
const char *gw_query_err_reason(gw_query_err e);

/* Parse a syntax name ("year", "digits", "token"); -1 when unknown. */
int gw_query_syntax_parse(const char *s, gw_query_syntax *out);

#endif
