/*
 * opale-loadgen: the response parser (HTTP/1.1 status line, headers,
 * Content-Length or chunked body). I/O-free: it reads an evbuffer and keeps
 * its state in a struct rparser (tests/unit/loadgen/test_http.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "loadgen.h"

void lg_rp_reset(struct rparser *p)
{
    p->st = RP_HEAD;
    p->status = 0;
    p->close = 0;
    p->remaining = 0;
    p->scanned = 0;
    p->trailer_bytes = 0;
    p->error = NULL;
}

static int rp_fail(struct rparser *p, const char *why)
{
    p->error = why;
    return -1;
}

static int ci_eq(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    return alen == blen && strncasecmp(a, b, blen) == 0;
}

/* The head: h[0..len), ending with CRLF CRLF. */
static int rp_head(struct rparser *p, const char *h, size_t len)
{
    const char *end = h + len - 2; /* the final empty line's CRLF */
    const char *line = h;
    const char *eol = memchr(line, '\r', (size_t)(end - line) + 1);
    if (!eol || eol[1] != '\n')
        return rp_fail(p, "status line");
    size_t ll = (size_t)(eol - line);
    /* HTTP/1.x SP 3DIGIT [SP reason] */
    if (ll < 12 || memcmp(line, "HTTP/1.", 7) != 0 || (line[7] != '0' && line[7] != '1') ||
        line[8] != ' ' || line[9] < '1' || line[9] > '9' || line[10] < '0' || line[10] > '9' ||
        line[11] < '0' || line[11] > '9' || (ll > 12 && line[12] != ' '))
        return rp_fail(p, "status line");
    for (size_t i = 12; i < ll; i++) {
        unsigned char c = (unsigned char)line[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return rp_fail(p, "control character in the reason phrase");
    }
    int http10 = line[7] == '0';
    p->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    if (p->status < 200 || p->status > 599)
        return rp_fail(p, "status code outside 200..599 (1xx unsupported)");

    int have_cl = 0, chunked = 0, keep_alive = 0;
    uint64_t cl = 0;
    int nheaders = 0;
    for (line = eol + 2; line < end; line = eol + 2) {
        eol = memchr(line, '\r', (size_t)(end - line) + 1);
        if (!eol || eol[1] != '\n')
            return rp_fail(p, "bare CR in the head");
        if (++nheaders > 1000)
            return rp_fail(p, "more than 1000 header fields");
        if (memchr(line, '\n', (size_t)(eol - line)))
            return rp_fail(p, "bare LF in the head");
        if (*line == ' ' || *line == '\t')
            return rp_fail(p, "obsolete line folding");
        const char *colon = line;
        while (colon < eol && lg_is_tchar((unsigned char)*colon))
            colon++;
        if (colon == line || colon == eol || *colon != ':')
            return rp_fail(p, "malformed header field");
        size_t nlen = (size_t)(colon - line);
        const char *v = colon + 1, *ve = eol;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        for (const char *q = v; q < ve; q++) {
            unsigned char c = (unsigned char)*q;
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return rp_fail(p, "control character in a field value");
        }
        size_t vlen = (size_t)(ve - v);
        if (ci_eq(line, nlen, "content-length")) {
            if (vlen == 0 || vlen > 15)
                return rp_fail(p, "bad Content-Length");
            uint64_t n = 0;
            for (size_t i = 0; i < vlen; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return rp_fail(p, "bad Content-Length");
                n = n * 10 + (uint64_t)(v[i] - '0');
            }
            if (have_cl && n != cl)
                return rp_fail(p, "conflicting Content-Length");
            have_cl = 1;
            cl = n;
        } else if (ci_eq(line, nlen, "transfer-encoding")) {
            if (chunked || !ci_eq(v, vlen, "chunked"))
                return rp_fail(p, "Transfer-Encoding other than a single 'chunked'");
            chunked = 1;
        } else if (ci_eq(line, nlen, "connection")) {
            const char *t = v;
            while (t < ve) {
                const char *te = memchr(t, ',', (size_t)(ve - t));
                if (!te)
                    te = ve;
                const char *a = t, *b = te;
                while (a < b && (*a == ' ' || *a == '\t'))
                    a++;
                while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
                    b--;
                if (ci_eq(a, (size_t)(b - a), "close"))
                    p->close = 1;
                else if (ci_eq(a, (size_t)(b - a), "keep-alive"))
                    keep_alive = 1;
                t = te + 1;
            }
        }
    }
    if (http10 && !keep_alive)
        p->close = 1;
    if (p->status == 204 || p->status == 304)
        return 1;
    if (chunked && have_cl)
        return rp_fail(p, "both Content-Length and Transfer-Encoding");
    if (chunked) {
        if (http10)
            return rp_fail(p, "chunked HTTP/1.0 response");
        p->st = RP_CHUNK_SIZE;
        return 0;
    }
    if (!have_cl)
        return rp_fail(p, "no Content-Length nor chunked (close-delimited bodies unsupported)");
    if (cl == 0)
        return 1;
    p->remaining = cl;
    p->st = RP_BODY;
    return 0;
}

static int rp_take(struct rparser *p, struct evbuffer *in, size_t n, int body)
{
    if (body && p->capture) {
        if (evbuffer_get_length(p->capture) + n > CAPTURE_MAX)
            return rp_fail(p, "body too large");
        if (evbuffer_remove_buffer(in, p->capture, n) != (int)n)
            return rp_fail(p, "out of memory");
    } else {
        evbuffer_drain(in, n);
    }
    p->consumed += n;
    return 0;
}

/* Consume from IN. Returns 1 when a whole response has been read (the
 * parser must then be reset), 0 when more input is needed, -1 on error.
 * Every iteration consumes input or returns: bounded by the input length. */
int lg_rp_feed(struct rparser *p, struct evbuffer *in)
{
    for (;;) {
        size_t avail = evbuffer_get_length(in);
        switch (p->st) {
        case RP_HEAD: {
            if (avail == 0)
                return 0;
            struct evbuffer_ptr start, pos;
            if (evbuffer_ptr_set(in, &start, p->scanned, EVBUFFER_PTR_SET) != 0)
                return rp_fail(p, "internal: search offset");
            pos = evbuffer_search(in, "\r\n\r\n", 4, &start);
            if (pos.pos < 0) {
                if (avail > HEAD_MAX)
                    return rp_fail(p, "response head over 64 KiB");
                p->scanned = avail > 3 ? avail - 3 : 0;
                return 0;
            }
            size_t hlen = (size_t)pos.pos + 4;
            if (hlen > HEAD_MAX)
                return rp_fail(p, "response head over 64 KiB");
            const char *h = (const char *)evbuffer_pullup(in, (ev_ssize_t)hlen);
            if (!h)
                return rp_fail(p, "out of memory");
            int r = rp_head(p, h, hlen);
            if (r < 0)
                return -1;
            rp_take(p, in, hlen, 0);
            if (r == 1)
                return 1;
            break;
        }
        case RP_BODY: {
            if (avail == 0)
                return 0;
            size_t n = avail < p->remaining ? avail : (size_t)p->remaining;
            if (rp_take(p, in, n, 1) != 0)
                return -1;
            p->remaining -= n;
            if (p->remaining == 0)
                return 1;
            return 0;
        }
        case RP_CHUNK_SIZE:
        case RP_TRAILER: {
            size_t eol_len = 0;
            struct evbuffer_ptr pos =
                evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF_STRICT);
            size_t limit = p->st == RP_CHUNK_SIZE ? CHUNK_LINE_MAX : HEAD_MAX - p->trailer_bytes;
            if (pos.pos < 0) {
                if (avail > limit)
                    return rp_fail(p, p->st == RP_CHUNK_SIZE ? "chunk-size line too long"
                                                             : "trailers too long");
                return 0;
            }
            size_t ll = (size_t)pos.pos;
            if (ll > limit)
                return rp_fail(p, p->st == RP_CHUNK_SIZE ? "chunk-size line too long"
                                                         : "trailers too long");
            if (p->st == RP_TRAILER) {
                rp_take(p, in, ll + 2, 0);
                if (ll == 0)
                    return 1;
                p->trailer_bytes += ll + 2;
                break;
            }
            char line[CHUNK_LINE_MAX + 1];
            evbuffer_copyout(in, line, ll);
            line[ll] = '\0';
            uint64_t size = 0;
            size_t i = 0;
            for (; i < ll; i++) {
                int d;
                char c = line[i];
                if (c >= '0' && c <= '9')
                    d = c - '0';
                else if (c >= 'a' && c <= 'f')
                    d = c - 'a' + 10;
                else if (c >= 'A' && c <= 'F')
                    d = c - 'A' + 10;
                else
                    break;
                if (i >= 15)
                    return rp_fail(p, "chunk size too large");
                size = size * 16 + (uint64_t)d;
            }
            if (i == 0)
                return rp_fail(p, "bad chunk size");
            while (i < ll && (line[i] == ' ' || line[i] == '\t'))
                i++;
            if (i < ll && line[i] != ';')
                return rp_fail(p, "bad chunk size");
            for (; i < ll; i++)
                if (((unsigned char)line[i] < 0x20 && line[i] != '\t') || line[i] == 0x7f)
                    return rp_fail(p, "control character in a chunk extension");
            rp_take(p, in, ll + 2, 0);
            if (size == 0) {
                p->st = RP_TRAILER;
            } else {
                p->remaining = size;
                p->st = RP_CHUNK_DATA;
            }
            break;
        }
        case RP_CHUNK_DATA: {
            if (avail == 0)
                return 0;
            size_t n = avail < p->remaining ? avail : (size_t)p->remaining;
            if (rp_take(p, in, n, 1) != 0)
                return -1;
            p->remaining -= n;
            if (p->remaining > 0)
                return 0;
            p->st = RP_CHUNK_CRLF;
            break;
        }
        case RP_CHUNK_CRLF: {
            if (avail < 2)
                return 0;
            char crlf[2];
            evbuffer_copyout(in, crlf, 2);
            if (crlf[0] != '\r' || crlf[1] != '\n')
                return rp_fail(p, "chunk data not followed by CRLF");
            rp_take(p, in, 2, 0);
            p->st = RP_CHUNK_SIZE;
            break;
        }
        }
    }
}
