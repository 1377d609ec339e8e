/*
 * The operator console's static files (docs/console.md), embedded into the
 * binary at build time (cmake/embed_console.cmake generates the table from
 * gateway/admin/console/), and the headers every console and admin JSON
 * answer carries. No libevent here: admin.c serves what this finds.
 */
#ifndef GW_ADMIN_CONSOLE_H
#define GW_ADMIN_CONSOLE_H

#include <stddef.h>

typedef struct gw_console_file {
    const char *name;          /* "index.html" */
    const unsigned char *data; /* its bytes (followed by a NUL not counted) */
    size_t len;
} gw_console_file;

/* The generated table: gw_console_nfiles entries, then {NULL, NULL, 0}. */
extern const gw_console_file gw_console_files[];
extern const size_t gw_console_nfiles;

/* The file a path under the console names: <path> is the request's path
 * (query removed), "/console/" gives index.html, "/console/app.js" that
 * file. NULL for any other path (one segment only: no "..", no
 * sub-directory). */
const gw_console_file *gw_console_find(const char *path);

/* The Content-Type of <name> by its extension ("text/html; charset=utf-8",
 * ...; "application/octet-stream" for one not known). */
const char *gw_console_mime(const char *name);

/* The security headers of every console and admin JSON answer, NULL-name
 * terminated (Content-Security-Policy without unsafe-inline, framing
 * denied, no sniffing, no referrer, no caching). */
typedef struct gw_admin_header {
    const char *name;
    const char *value;
} gw_admin_header;

extern const gw_admin_header gw_admin_security_headers[];

#endif
