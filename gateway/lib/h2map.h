/*
 * HTTP/2 <-> the gateway's HTTP/1.1 view, with no I/O and no nghttp2: the
 * pure half of the h2 path (core/h2.c holds the session).
 *
 * Requests: the fields of one HTTP/2 header block are checked as RFC 9113
 * section 8 requires (pseudo-headers, lowercase names, no connection-specific
 * field, TE only "trailers", :authority against Host, no CR/LF/NUL, no
 * leading or trailing whitespace in a value) and rewritten as the header
 * block of an HTTP/1.1 request. That text is then read by the same strict
 * parser as a request received over HTTP/1.1 (lib/http1.c), so names,
 * values, Host, duplicates, methods, the body limit and every later rule are
 * exactly the HTTP/1.1 ones. A body of unknown length (no content-length,
 * no END_STREAM on the header block) is framed as chunked (gw_h2map_chunk),
 * which the parser bounds like any chunked body.
 *
 * Responses: the gateway builds every response as HTTP/1.1 bytes (lib/
 * forward.c); gw_h2map_response() splits such bytes into a status, the
 * fields an HTTP/2 response may carry (lowercase names, connection-specific
 * ones dropped) and the body.
 *
 * Reasons (journal reason labels; the request is answered 400 with the
 * DGFIP error body, docs/errors.md):
 *   h2.bad_pseudo_header     unknown, repeated, empty or misplaced (after a
 *                            regular field) pseudo-header; :scheme not
 *                            "https"; :path, :method or :scheme missing
 *   h2.uppercase_header      a field name with an uppercase letter
 *   h2.bad_header_name       a field name that is empty or not a token
 *   h2.bad_header_value      NUL, CR or LF in a value, or whitespace at
 *                            either end
 *   h2.connection_header     Connection, Keep-Alive, Proxy-Connection,
 *                            Transfer-Encoding or Upgrade
 *   h2.bad_te                TE other than "trailers"
 *   h2.authority_mismatch    Host present and different from :authority
 */
#ifndef GW_H2MAP_H
#define GW_H2MAP_H

#include <stddef.h>

#include "lib/http1.h"
#include "lib/util.h"

/* One header block being read. Zero it, then gw_h2map_field() per field,
 * then gw_h2map_head(); gw_h2map_free() in every case. */
typedef struct gw_h2map {
    gw_buf fields; /* "name: value\r\n" lines of the regular fields */
    char *method, *path, *scheme, *authority, *host;
    int regular_seen;       /* a regular field came: no pseudo-header after it */
    int has_content_length; /* a content-length field */
    size_t nfields;
    const char *err; /* first refusal, constant */
} gw_h2map;

/* Take one field. Returns NULL, or the reason of the first refusal (kept:
 * later fields are ignored once the block is refused). */
const char *gw_h2map_field(gw_h2map *m, const char *name, size_t nlen, const char *value,
                           size_t vlen);

/* The HTTP/1.1 header block of the request (request line, Host from
 * :authority or host, the regular fields, a "Transfer-Encoding: chunked"
 * line when <body_unknown>: a body follows and no content-length was given,
 * the final CRLF), malloc'd into <*out>/<*len>. Returns NULL or the reason
 * of the refusal (then nothing is allocated). */
const char *gw_h2map_head(gw_h2map *m, int body_unknown, char **out, size_t *len);

void gw_h2map_free(gw_h2map *m);

/* The chunk framing of <n> body bytes (n > 0) into <hdr> (at least 20
 * bytes): returns the header's length; the data follows, then "\r\n". The
 * last chunk is "0\r\n\r\n". */
size_t gw_h2map_chunk(size_t n, char *hdr);

/* One field of a response, pointing into the bytes given. */
typedef struct gw_h2_field {
    char name[64]; /* lowercased copy, NUL-terminated */
    size_t name_len;
    const char *value; /* into the response bytes, not NUL-terminated */
    size_t value_len;
} gw_h2_field;

#define GW_H2MAP_MAX_RESP_FIELDS 64

/* Split the HTTP/1.1 response <bytes>/<len> (as lib/forward.c builds them):
 * <*status>, at most <max> fields into <f> (connection-specific ones and
 * names longer than the copy left out), the body (after the blank line;
 * <*body_len> 0 when none). Returns the number of fields, or -1 when the
 * bytes are not such a response. */
int gw_h2map_response(const char *bytes, size_t len, int *status, gw_h2_field *f, size_t max,
                      const char **body, size_t *body_len);

#endif
