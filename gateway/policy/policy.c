/*
 * Policy files -> one immutable snapshot. Every object is checked against its
 * list of known keys, every value against its type and bounds, and every
 * error is collected (not just the first) as "FILE: JSON.PATH: MESSAGE", with
 * the wording of the validation toolkit (gateway/lib/jsonv.h).
 * docs/policies.md lists every message; keep the two in step.
 *
 * The snapshot holds the policies in file-name order plus two open-addressing
 * hash tables (FNV-1a, linear probing, at most half full) from certificate
 * fingerprint and from client_id to the policy: a lookup costs the same with
 * 1 or 10,000 partners.
 */
#include "policy/policy.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "lib/hash.h"
#include "lib/jsonv.h"
#include "lib/util.h"

#define POLICY_MAX_FILE (1u << 20) /* a policy file larger than this is refused */
#define CERT_MAX_FILE (1u << 20)   /* a PEM certificate file, likewise */
#define MAX_CERTS 16               /* consumer.certificates entries */
#define HAB_ID_RULE "H[1-9][0-9]{0,9}"
#define CLIENT_ID_RULE "[A-Za-z0-9._-]{3,128}"
#define TOKEN_RULE "must be 1 to 128 printable ASCII characters, without space, '\"' or '\\'"

typedef struct ctx {
    gw_jsonv v;      /* this file's errors, named as given */
    const char *dir; /* absolute directory of the file, for "file" certificates */
    const gw_policy_rules *rules;
} ctx;

/* ---- value rules ---- */

static int valid_hab_id(const char *s)
{
    size_t n = strlen(s);
    if (n < 2 || n > 11 || s[0] != 'H' || s[1] < '1' || s[1] > '9')
        return 0;
    return strspn(s + 1, "0123456789") == n - 1;
}

static int valid_client_id(const char *s)
{
    size_t n = strlen(s);
    if (n < 3 || n > 128)
        return 0;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* 1..<max> bytes of printable ASCII; <more> lists extra refused bytes. */
static int valid_printable(const char *s, size_t max, const char *more)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || strchr(more, c) != NULL)
            return 0;
    }
    return 1;
}

int gw_date_parse(const char *s, int *out)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return -1;
    for (int i = 0; i < 10; i++) {
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return -1;
    }
    int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    int m = (s[5] - '0') * 10 + (s[6] - '0');
    int d = (s[8] - '0') * 10 + (s[9] - '0');
    if (y == 0 || m < 1 || m > 12 || d < 1)
        return -2;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    int dim = mdays[m - 1] + (m == 2 && leap);
    if (d > dim)
        return -2;
    *out = y * 10000 + m * 100 + d;
    return 0;
}

static int luhn_ok(const char *s, size_t n)
{
    int sum = 0;
    for (size_t i = 0; i < n; i++) {
        int d = s[n - 1 - i] - '0';
        if (i % 2 == 1) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    return sum % 10 == 0;
}

static int all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
    }
    return 1;
}

const char *gw_siret_check(const char *s)
{
    if (s == NULL || strlen(s) != 14 || !all_digits(s, 14))
        return "must be 14 digits";
    if (memcmp(s, "000000000", 9) == 0)
        return "invalid SIRET (SIREN 000000000)";
    if (memcmp(s, "356000000", 9) == 0) {
        int sum = 0;
        for (size_t i = 0; i < 14; i++)
            sum += s[i] - '0';
        return sum % 5 == 0 ? NULL : "invalid SIRET (La Poste: digit sum not a multiple of 5)";
    }
    return luhn_ok(s, 14) ? NULL : "invalid SIRET (Luhn checksum)";
}

int gw_email_valid(const char *s)
{
    const char *at = s != NULL ? strchr(s, '@') : NULL;
    if (at == NULL || strlen(s) > 254 || at == s || at - s > 64 || strchr(at + 1, '@') != NULL)
        return 0;
    for (const char *c = s; c < at; c++) {
        unsigned char u = (unsigned char)*c;
        if (u < 0x21 || u > 0x7e || strchr("\"(),:;<>[\\]", u) != NULL)
            return 0;
    }
    size_t labels = 0, len = 0;
    for (const char *c = at + 1;; c++) {
        if (*c == '.' || *c == '\0') {
            if (len == 0 || len > 63 || c[-1] == '-')
                return 0;
            labels++;
            len = 0;
            if (*c == '\0')
                break;
            continue;
        }
        int ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                 (*c == '-' && len > 0);
        if (!ok)
            return 0;
        len++;
    }
    return labels >= 2;
}

int gw_siren_valid(const char *s, size_t len)
{
    return s != NULL && len == 9 && all_digits(s, 9) && memcmp(s, "000000000", 9) != 0 &&
           luhn_ok(s, 9);
}

/* "ab12…" (64 hex) or "AB:12:…" (32 pairs joined by ':'), either case, into
 * 64 lowercase hex chars. 0 or -1. */
static int norm_sha256(const char *s, char out[65])
{
    size_t n = strlen(s), k = 0;
    int colons = n == 95;
    if (n != 64 && !colons)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (colons && i % 3 == 2) {
            if (c != ':')
                return -1;
            continue;
        }
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return -1;
        out[k++] = c;
    }
    out[k] = '\0';
    return k == 64 ? 0 : -1;
}

/* ---- CIDR ---- */

static int is_v4mapped(const unsigned char *a)
{
    static const unsigned char pfx[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(a, pfx, 12) == 0;
}

/* 1 when the first <bits> bits of <a> and <b> are equal. */
static int prefix_eq(const unsigned char *a, const unsigned char *b, unsigned bits)
{
    unsigned full = bits / 8, rest = bits % 8;
    if (memcmp(a, b, full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

const char *gw_cidr_parse(const char *s, gw_cidr *out)
{
    char buf[INET6_ADDRSTRLEN];
    gw_cidr c;
    unsigned max;

    memset(&c, 0, sizeof(c));
    if (s == NULL)
        return "not a CIDR";
    const char *slash = strchr(s, '/');
    size_t alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
    if (alen == 0 || alen >= sizeof(buf))
        return "not a CIDR";
    memcpy(buf, s, alen);
    buf[alen] = '\0';
    if (memchr(buf, ':', alen) != NULL) {
        if (inet_pton(AF_INET6, buf, c.addr) != 1)
            return "not a CIDR";
        c.family = AF_INET6;
        max = 128;
    } else {
        if (inet_pton(AF_INET, buf, c.addr) != 1)
            return "not a CIDR";
        c.family = AF_INET;
        max = 32;
    }
    c.prefix = max;
    if (slash != NULL) {
        const char *q = slash + 1;
        size_t n = strlen(q);
        if (n == 0 || n > 3 || !all_digits(q, n) || (n > 1 && q[0] == '0'))
            return "not a CIDR";
        unsigned v = (unsigned)atoi(q);
        if (v > max)
            return "prefix out of range";
        c.prefix = v;
    }
    if (c.family == AF_INET6 && c.prefix >= 96 && is_v4mapped(c.addr)) {
        memmove(c.addr, c.addr + 12, 4);
        memset(c.addr + 4, 0, 12);
        c.family = AF_INET;
        c.prefix -= 96;
        max = 32;
    }
    for (unsigned bit = c.prefix; bit < max; bit++) {
        if (c.addr[bit / 8] & (0x80 >> (bit % 8)))
            return "host bits set";
    }
    if (out != NULL)
        *out = c;
    return NULL;
}

int gw_cidr_match(const gw_cidr *c, int family, const unsigned char *addr)
{
    if (c == NULL || addr == NULL)
        return 0;
    if (family == AF_INET6 && is_v4mapped(addr)) {
        family = AF_INET;
        addr += 12;
    }
    if (family != c->family)
        return 0;
    return prefix_eq(c->addr, addr, c->prefix);
}

/* ---- files ---- */

/* Read all of <path> (at most <cap> bytes) into a NUL-terminated buffer.
 * Returns 0 or an errno value (EISDIR, EFBIG, ...). */
static int slurp(const char *path, size_t cap, char **out, size_t *outlen)
{
    gw_buf b = {0};
    struct stat st;
    char chunk[8192];
    int e = 0;

    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return errno;
    if (fstat(fd, &st) < 0) {
        e = errno;
    } else if (S_ISDIR(st.st_mode)) {
        e = EISDIR;
    } else if (!S_ISREG(st.st_mode)) {
        e = EINVAL;
    } else if ((size_t)st.st_size > cap) {
        e = EFBIG;
    }
    while (e == 0) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            e = errno;
            break;
        }
        if (n == 0)
            break;
        if (b.len + (size_t)n > cap) {
            e = EFBIG;
            break;
        }
        gw_buf_append(&b, chunk, (size_t)n);
        if (b.oom)
            e = ENOMEM;
    }
    close(fd);
    if (e == 0 && b.data == NULL)
        gw_buf_puts(&b, "");
    if (e == 0 && b.oom)
        e = ENOMEM;
    if (e != 0) {
        gw_buf_free(&b);
        return e;
    }
    *out = gw_buf_take(&b, outlen);
    return 0;
}

/* <rel> against the absolute directory <dir>: leading "./" and "../" are
 * applied to <dir>, the rest appended as written. Caller frees. */
static char *resolve(const char *dir, const char *rel)
{
    if (rel[0] == '/')
        return strdup(rel);
    size_t dlen = strlen(dir);
    const char *p = rel;
    for (;;) {
        if (p[0] == '/') {
            p++;
        } else if (p[0] == '.' && (p[1] == '/' || p[1] == '\0')) {
            p += 1;
        } else if (p[0] == '.' && p[1] == '.' && (p[2] == '/' || p[2] == '\0')) {
            while (dlen > 0 && dir[dlen - 1] != '/')
                dlen--;
            if (dlen > 1)
                dlen--;
            p += 2;
        } else {
            break;
        }
    }
    gw_buf b = {0};
    gw_buf_append(&b, dir, dlen);
    if (*p != '\0') {
        if (dlen == 0 || dir[dlen - 1] != '/')
            gw_buf_puts(&b, "/");
        gw_buf_puts(&b, p);
    }
    return gw_buf_take(&b, NULL);
}

/* <d> made absolute and canonical (links resolved when it exists). Caller
 * frees. */
static char *dir_abs(const char *d)
{
    char *real = realpath(d, NULL);
    if (real != NULL)
        return real;
    if (d[0] == '/')
        return strdup(d);
    char *cwd = getcwd(NULL, 0);
    char *abs = resolve(cwd != NULL ? cwd : "/", d);
    free(cwd);
    return abs;
}

/* Absolute, canonical directory of <file>. */
static char *file_dir(const char *file)
{
    const char *slash = strrchr(file, '/');
    char *d = slash == NULL   ? strdup(".")
              : slash == file ? strdup("/")
                              : strndup(file, (size_t)(slash - file));
    if (d == NULL)
        return NULL;
    char *abs = dir_abs(d);
    free(d);
    return abs;
}

/* SHA-256 of the DER of the first certificate in the PEM file <abs>, as
 * lowercase hex. Returns NULL or a message into <why> (a system error or
 * "not a PEM certificate"). */
static const char *cert_file_sha256(const char *abs, char out[65], char *why, size_t whysz)
{
    char *pem = NULL;
    size_t len = 0;
    unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    const char *res = why;

    int e = slurp(abs, CERT_MAX_FILE, &pem, &len);
    if (e != 0) {
        snprintf(why, whysz, "%s", e == EINVAL ? "not a regular file" : strerror(e));
        return res;
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509 *crt = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    int dlen = crt != NULL ? i2d_X509(crt, &der) : -1;
    if (crt == NULL || dlen <= 0) {
        snprintf(why, whysz, "not a PEM certificate");
    } else if (EVP_Digest(der, (size_t)dlen, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
        snprintf(why, whysz, "cannot compute its SHA-256");
    } else {
        gw_hex(md, 32, out);
        res = NULL;
    }
    ERR_clear_error();
    OPENSSL_free(der);
    X509_free(crt);
    BIO_free(bio);
    free(pem);
    return res;
}

/* ---- sections ---- */

static void parse_habilitation(ctx *x, json_t *root, gw_policy *p)
{
    static const char *const keys[] = {
        "id",          "definition",       "state", "valid_from", "valid_until",
        "legal_basis", "retention_months", NULL};
    static const char *const P = "habilitation";
    char pk[GW_JSONV_PATH];
    const char *s;
    long long v;
    int from_ok = 0, until_ok = 0;

    json_t *o = gw_jsonv_obj(&x->v, root, "$", P, 1);
    if (o == NULL)
        return;
    gw_jsonv_keys(&x->v, o, P, keys);
    if (gw_jsonv_str(&x->v, o, P, "id", 1, &s) == GW_JSONV_SET) {
        if (valid_hab_id(s))
            p->id = gw_jsonv_strdup(&x->v, "habilitation.id", s);
        else
            gw_jsonv_err(&x->v, "habilitation.id", "must match " HAB_ID_RULE);
    }
    if (gw_jsonv_str(&x->v, o, P, "definition", 1, &s) == GW_JSONV_SET) {
        if (strcmp(s, "api_opale_sandbox") == 0 || strcmp(s, "api_opale") == 0) {
            p->env = s[9] == '\0' ? GW_ENV_PRODUCTION : GW_ENV_SANDBOX;
            p->definition = gw_jsonv_strdup(&x->v, "habilitation.definition", s);
        } else {
            gw_jsonv_err(&x->v, "habilitation.definition",
                         "must be \"api_opale_sandbox\" or \"api_opale\"");
        }
    }
    if (gw_jsonv_str(&x->v, o, P, "state", 1, &s) == GW_JSONV_SET) {
        if (strcmp(s, "active") == 0)
            p->state = GW_HAB_ACTIVE;
        else if (strcmp(s, "suspended") == 0)
            p->state = GW_HAB_SUSPENDED;
        else if (strcmp(s, "revoked") == 0)
            p->state = GW_HAB_REVOKED;
        else
            gw_jsonv_err(&x->v, "habilitation.state",
                         "must be \"active\", \"suspended\" or \"revoked\"");
    }
    static const char *const dates[2] = {"valid_from", "valid_until"};
    int *dst[2] = {&p->valid_from, &p->valid_until};
    int *ok[2] = {&from_ok, &until_ok};
    for (int i = 0; i < 2; i++) {
        if (gw_jsonv_str(&x->v, o, P, dates[i], 1, &s) != GW_JSONV_SET)
            continue;
        gw_jsonv_path_key(pk, P, dates[i]);
        int r = gw_date_parse(s, dst[i]);
        if (r == -1)
            gw_jsonv_err(&x->v, pk, "must be a date YYYY-MM-DD");
        else if (r == -2)
            gw_jsonv_err(&x->v, pk, "must be a real calendar date");
        else
            *ok[i] = 1;
    }
    if (from_ok && until_ok && p->valid_from > p->valid_until)
        gw_jsonv_err(&x->v, "habilitation.valid_until", "must not be before valid_from");
    if (gw_jsonv_str(&x->v, o, P, "legal_basis", 0, &s) == GW_JSONV_SET) {
        if (s[0] == '\0')
            gw_jsonv_err(&x->v, "habilitation.legal_basis", "must not be empty");
        else
            p->legal_basis = gw_jsonv_strdup(&x->v, "habilitation.legal_basis", s);
    }
    p->retention_months = -1;
    if (gw_jsonv_int(&x->v, o, P, "retention_months", 0, 1, 120, &v) == GW_JSONV_SET)
        p->retention_months = (int)v;
}

static void parse_organization(ctx *x, json_t *root, gw_policy *p)
{
    static const char *const keys[] = {"siret", "name", NULL};
    static const char *const P = "organization";
    const char *s;

    json_t *o = gw_jsonv_obj(&x->v, root, "$", P, 1);
    if (o == NULL)
        return;
    gw_jsonv_keys(&x->v, o, P, keys);
    if (gw_jsonv_str(&x->v, o, P, "siret", 1, &s) == GW_JSONV_SET) {
        const char *why = gw_siret_check(s);
        if (why != NULL)
            gw_jsonv_err(&x->v, "organization.siret", "%s", why);
        else
            p->org_siret = gw_jsonv_strdup(&x->v, "organization.siret", s);
    }
    if (gw_jsonv_str(&x->v, o, P, "name", 0, &s) == GW_JSONV_SET) {
        if (s[0] == '\0')
            gw_jsonv_err(&x->v, "organization.name", "must not be empty");
        else
            p->org_name = gw_jsonv_strdup(&x->v, "organization.name", s);
    }
}

static void parse_cert(ctx *x, json_t *v, const char *pe, char out[65], int *ok)
{
    static const char *const keys[] = {"sha256", "file", NULL};
    char pk[GW_JSONV_PATH], cb[512], why[128];
    const char *s;

    if (!json_is_object(v)) {
        gw_jsonv_err(&x->v, pe, "must be an object");
        return;
    }
    gw_jsonv_keys(&x->v, v, pe, keys);
    int has_sha = json_object_get(v, "sha256") != NULL;
    int has_file = json_object_get(v, "file") != NULL;
    if (has_sha && has_file) {
        gw_jsonv_err(&x->v, pe, "must have \"sha256\" or \"file\", not both");
    } else if (!has_sha && !has_file) {
        gw_jsonv_err(&x->v, pe, "missing key \"sha256\" or \"file\"");
    } else if (has_sha) {
        if (gw_jsonv_str(&x->v, v, pe, "sha256", 1, &s) != GW_JSONV_SET)
            return;
        gw_jsonv_path_key(pk, pe, "sha256");
        if (norm_sha256(s, out) < 0)
            gw_jsonv_err(&x->v, pk,
                         "must be 64 hexadecimal characters (SHA-256), optionally ':'-separated");
        else
            *ok = 1;
    } else {
        if (gw_jsonv_str(&x->v, v, pe, "file", 1, &s) != GW_JSONV_SET)
            return;
        gw_jsonv_path_key(pk, pe, "file");
        if (s[0] == '\0') {
            gw_jsonv_err(&x->v, pk, "must not be empty");
            return;
        }
        char *abs = x->dir != NULL ? resolve(x->dir, s) : NULL;
        if (abs == NULL) {
            gw_jsonv_err(&x->v, pk, "out of memory");
            return;
        }
        if (cert_file_sha256(abs, out, why, sizeof(why)) != NULL) {
            if (strcmp(why, "not a PEM certificate") == 0)
                gw_jsonv_err(&x->v, pk, "\"%s\" is not a PEM certificate",
                             gw_jsonv_clean(cb, sizeof(cb), abs, 400));
            else
                gw_jsonv_err(&x->v, pk, "cannot read \"%s\": %s",
                             gw_jsonv_clean(cb, sizeof(cb), abs, 400), why);
        } else {
            *ok = 1;
        }
        free(abs);
    }
}

static void parse_certs(ctx *x, json_t *o, gw_policy *p)
{
    static const char *const P = "consumer.certificates";
    char pe[GW_JSONV_PATH];

    json_t *a = gw_jsonv_array(&x->v, o, "consumer", "certificates", 1, 1, MAX_CERTS);
    if (a == NULL || json_array_size(a) == 0)
        return;
    size_t n = json_array_size(a);
    char(*certs)[65] = gw_jsonv_calloc(&x->v, P, n, sizeof(*certs));
    int *ok = gw_jsonv_calloc(&x->v, P, n, sizeof(int));
    if (certs == NULL || ok == NULL) {
        free(certs);
        free(ok);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        gw_jsonv_path_idx(pe, P, i);
        parse_cert(x, json_array_get(a, i), pe, certs[i], &ok[i]);
        for (size_t j = 0; ok[i] && j < i; j++) {
            if (ok[j] && strcmp(certs[i], certs[j]) == 0) {
                gw_jsonv_err(&x->v, pe, "duplicate of consumer.certificates[%zu]", j);
                break;
            }
        }
    }
    free(ok);
    p->certs = certs;
    p->ncerts = n;
}

static void parse_ips(ctx *x, json_t *o, gw_policy *p)
{
    static const char *const P = "consumer.ip_allowlist";
    char pe[GW_JSONV_PATH];

    json_t *a = gw_jsonv_array(&x->v, o, "consumer", "ip_allowlist", 1, 1, 256);
    if (a == NULL || json_array_size(a) == 0)
        return;
    size_t n = json_array_size(a);
    gw_cidr *ips = gw_jsonv_calloc(&x->v, P, n, sizeof(*ips));
    if (ips == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(a, i);
        gw_jsonv_path_idx(pe, P, i);
        if (!json_is_string(v)) {
            gw_jsonv_err(&x->v, pe, "must be a string");
            continue;
        }
        const char *why = gw_cidr_parse(json_string_value(v), &ips[i]);
        if (why != NULL) {
            gw_jsonv_err(&x->v, pe, "%s", why);
            continue;
        }
        for (size_t j = 0; j < i; j++) {
            if (ips[j].family == ips[i].family && ips[j].prefix == ips[i].prefix &&
                memcmp(ips[j].addr, ips[i].addr, 16) == 0) {
                gw_jsonv_err(&x->v, pe, "duplicate of consumer.ip_allowlist[%zu]", j);
                break;
            }
        }
    }
    p->ips = ips;
    p->nips = n;
}

static void parse_consumer(ctx *x, json_t *root, gw_policy *p)
{
    static const char *const keys[] = {"client_id",    "id_teleservice",       "certificates",
                                       "ip_allowlist", "client_secret_sha256", NULL};
    static const char *const P = "consumer";
    const char *s;

    json_t *o = gw_jsonv_obj(&x->v, root, "$", P, 1);
    if (o == NULL)
        return;
    gw_jsonv_keys(&x->v, o, P, keys);
    if (gw_jsonv_str(&x->v, o, P, "client_id", 1, &s) == GW_JSONV_SET) {
        if (valid_client_id(s))
            p->client_id = gw_jsonv_strdup(&x->v, "consumer.client_id", s);
        else
            gw_jsonv_err(&x->v, "consumer.client_id", "must match " CLIENT_ID_RULE);
    }
    if (gw_jsonv_str(&x->v, o, P, "id_teleservice", 1, &s) == GW_JSONV_SET) {
        if (valid_printable(s, 64, ""))
            p->id_teleservice = gw_jsonv_strdup(&x->v, "consumer.id_teleservice", s);
        else
            gw_jsonv_err(&x->v, "consumer.id_teleservice",
                         "must be 1 to 64 printable ASCII characters, without space");
    }
    /* Optional client_secret_basic on top of the certificate at /token: the
     * SHA-256 (hex) of a high-entropy random secret, never the secret. */
    if (gw_jsonv_str(&x->v, o, P, "client_secret_sha256", 0, &s) == GW_JSONV_SET) {
        char hex[65];
        if (norm_sha256(s, hex) == 0) {
            memcpy(p->secret_sha256, hex, sizeof(hex));
            p->has_secret = 1;
        } else {
            gw_jsonv_err(&x->v, "consumer.client_secret_sha256",
                         "must be 64 hexadecimal characters");
        }
    }
    parse_certs(x, o, p);
    parse_ips(x, o, p);
}

static int known_scope(const gw_policy_rules *r, const char *s)
{
    for (size_t i = 0; i < r->nknown_scopes; i++) {
        if (r->known_scopes[i] != NULL && strcmp(r->known_scopes[i], s) == 0)
            return 1;
    }
    return 0;
}

static void parse_rights(ctx *x, json_t *root, gw_policy *p)
{
    static const char *const keys[] = {"scopes", "years", NULL};
    static const char *const ykeys[] = {"from", "to", NULL};
    static const char *const P = "rights";
    char pe[GW_JSONV_PATH], cb[96];
    long long from = 0, to = 0;

    json_t *o = gw_jsonv_obj(&x->v, root, "$", P, 1);
    if (o == NULL)
        return;
    gw_jsonv_keys(&x->v, o, P, keys);
    json_t *a = gw_jsonv_array(&x->v, o, P, "scopes", 1, 1, 32);
    if (a != NULL && json_array_size(a) > 0) {
        size_t n = json_array_size(a);
        p->scopes = gw_jsonv_calloc(&x->v, "rights.scopes", n, sizeof(char *));
        for (size_t i = 0; p->scopes != NULL && i < n; i++) {
            json_t *v = json_array_get(a, i);
            gw_jsonv_path_idx(pe, "rights.scopes", i);
            if (!json_is_string(v)) {
                gw_jsonv_err(&x->v, pe, "must be a string");
                continue;
            }
            const char *s = json_string_value(v);
            if (x->rules != NULL && !known_scope(x->rules, s)) {
                gw_jsonv_err(&x->v, pe, "unknown scope \"%s\"",
                             gw_jsonv_clean(cb, sizeof(cb), s, 64));
                continue;
            }
            if (x->rules == NULL && !valid_printable(s, 128, "\"\\")) {
                gw_jsonv_err(&x->v, pe, TOKEN_RULE);
                continue;
            }
            size_t j = 0;
            while (j < i && (p->scopes[j] == NULL || strcmp(p->scopes[j], s) != 0))
                j++;
            if (j < i) {
                gw_jsonv_err(&x->v, pe, "duplicate of rights.scopes[%zu]", j);
                continue;
            }
            p->scopes[i] = gw_jsonv_strdup(&x->v, pe, s);
        }
        if (p->scopes != NULL)
            p->nscopes = n;
    }
    json_t *y = gw_jsonv_obj(&x->v, o, P, "years", 1);
    if (y != NULL) {
        gw_jsonv_keys(&x->v, y, "rights.years", ykeys);
        int rf = gw_jsonv_int(&x->v, y, "rights.years", "from", 1, 1990, 2100, &from);
        int rt = gw_jsonv_int(&x->v, y, "rights.years", "to", 1, 1990, 2100, &to);
        if (rf == GW_JSONV_SET && rt == GW_JSONV_SET && from > to)
            gw_jsonv_err(&x->v, "rights.years.to", "must not be less than from");
        p->year_from = (int)from;
        p->year_to = (int)to;
    }
}

static void parse_quota(ctx *x, json_t *root, gw_policy *p)
{
    static const char *const keys[] = {"per_minute", NULL};
    long long v;

    p->quota_per_minute = p->env == GW_ENV_PRODUCTION ? 500 : 50;
    json_t *o = gw_jsonv_obj(&x->v, root, "$", "quota", 0);
    if (o == NULL)
        return;
    gw_jsonv_keys(&x->v, o, "quota", keys);
    if (gw_jsonv_int(&x->v, o, "quota", "per_minute", 1, 1, 1000000, &v) == GW_JSONV_SET)
        p->quota_per_minute = (unsigned)v;
}

/* "contacts": optional, who to call about this habilitation. */
static void parse_contacts(ctx *x, json_t *root, gw_policy *p)
{
    static const char *const keys[] = {"technical", NULL};
    const char *s;

    json_t *o = gw_jsonv_obj(&x->v, root, "$", "contacts", 0);
    if (o == NULL)
        return;
    gw_jsonv_keys(&x->v, o, "contacts", keys);
    if (gw_jsonv_str(&x->v, o, "contacts", "technical", 0, &s) == GW_JSONV_SET) {
        if (gw_email_valid(s))
            p->contact_technical = gw_jsonv_strdup(&x->v, "contacts.technical", s);
        else
            gw_jsonv_err(&x->v, "contacts.technical", GW_EMAIL_RULE);
    }
}

static void parse_root(ctx *x, json_t *root, gw_policy *p)
{
    static const char *const keys[] = {"habilitation", "organization", "contacts", "consumer",
                                       "rights",       "quota",        NULL};
    gw_jsonv_keys(&x->v, root, "$", keys);
    parse_habilitation(x, root, p);
    parse_organization(x, root, p);
    parse_contacts(x, root, p);
    parse_consumer(x, root, p);
    parse_rights(x, root, p);
    parse_quota(x, root, p);
}

/* Parse one file's text; <dir> is the file's absolute directory. */
static gw_policy *parse_text(const char *file, const char *dir, const char *text, size_t len,
                             const gw_policy_rules *rules, gw_errlist *errs)
{
    ctx x = {.v = gw_jsonv_init(file, errs), .dir = dir, .rules = rules};
    json_t *root = NULL;
    gw_policy *p = calloc(1, sizeof(*p));

    if (p == NULL) {
        gw_jsonv_err(&x.v, "$", "out of memory");
        return NULL;
    }
    p->retention_months = -1;
    p->file = gw_jsonv_strdup(&x.v, "$", file);
    p->text_hash = gw_fnv1a64(text, len);
    root = gw_jsonv_parse(&x.v, text, len);
    if (root == NULL)
        goto out;
    if (!json_is_object(root)) {
        gw_jsonv_err(&x.v, "$", "must be an object");
        goto out;
    }
    parse_root(&x, root, p);
out:
    json_decref(root);
    if (x.v.nerrs > 0) {
        gw_policy_free(p);
        p = NULL;
    }
    return p;
}

gw_policy *gw_policy_parse(const char *file, const char *text, const gw_policy_rules *rules,
                           gw_errlist *errs)
{
    const char *f = file != NULL ? file : "-";
    if (text == NULL) {
        gw_errlist_add(errs, "%s: $: cannot read: %s", f, strerror(EINVAL));
        return NULL;
    }
    char *dir = file_dir(f);
    if (dir == NULL) {
        gw_errlist_add(errs, "%s: $: out of memory", f);
        return NULL;
    }
    gw_policy *p = parse_text(f, dir, text, strlen(text), rules, errs);
    free(dir);
    return p;
}

void gw_policy_free(gw_policy *p)
{
    if (p == NULL)
        return;
    free(p->file);
    free(p->id);
    free(p->definition);
    free(p->legal_basis);
    free(p->org_siret);
    free(p->org_name);
    free(p->client_id);
    free(p->id_teleservice);
    free(p->contact_technical);
    free(p->certs);
    free(p->ips);
    for (size_t i = 0; p->scopes != NULL && i < p->nscopes; i++)
        free(p->scopes[i]);
    free(p->scopes);
    free(p);
}

int gw_policy_ip_allowed(const gw_policy *p, int family, const unsigned char *addr)
{
    if (p == NULL)
        return 0;
    for (size_t i = 0; i < p->nips; i++) {
        if (gw_cidr_match(&p->ips[i], family, addr))
            return 1;
    }
    return 0;
}

int gw_policy_has_scope(const gw_policy *p, const char *scope)
{
    if (p == NULL || scope == NULL)
        return 0;
    for (size_t i = 0; i < p->nscopes; i++) {
        if (strcmp(p->scopes[i], scope) == 0)
            return 1;
    }
    return 0;
}

/* ---- hash tables ---- */

typedef struct slot {
    const char *key; /* points into the policy; NULL = empty */
    const gw_policy *p;
    size_t idx; /* while a snapshot is built: the file's index */
} slot;

typedef struct htab {
    slot *slots;
    size_t mask; /* capacity - 1, capacity a power of two */
} htab;

/* Room for <n> keys with the table at most half full. */
static int htab_init(htab *t, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    t->slots = calloc(cap, sizeof(slot));
    t->mask = cap - 1;
    return t->slots == NULL ? -1 : 0;
}

/* Insert <key> -> <p>, or return the policy already holding <key>. */
static const gw_policy *htab_put(htab *t, const char *key, const gw_policy *p)
{
    size_t i = (size_t)gw_fnv1a64_str(key) & t->mask;
    while (t->slots[i].key != NULL) {
        if (strcmp(t->slots[i].key, key) == 0)
            return t->slots[i].p;
        i = (i + 1) & t->mask;
    }
    t->slots[i].key = key;
    t->slots[i].p = p;
    return NULL;
}

/* Insert <key> -> <p> (index <idx>); 1 with <*other> the index of the
 * entry already holding <key>, else 0. */
static int htab_put_idx(htab *t, const char *key, const gw_policy *p, size_t idx, size_t *other)
{
    size_t i = (size_t)gw_fnv1a64_str(key) & t->mask;
    while (t->slots[i].key != NULL) {
        if (strcmp(t->slots[i].key, key) == 0) {
            *other = t->slots[i].idx;
            return 1;
        }
        i = (i + 1) & t->mask;
    }
    t->slots[i].key = key;
    t->slots[i].p = p;
    t->slots[i].idx = idx;
    return 0;
}

static const gw_policy *htab_get(const htab *t, const char *key)
{
    if (t->slots == NULL || key == NULL)
        return NULL;
    size_t i = (size_t)gw_fnv1a64_str(key) & t->mask;
    while (t->slots[i].key != NULL) {
        if (strcmp(t->slots[i].key, key) == 0)
            return t->slots[i].p;
        i = (i + 1) & t->mask;
    }
    return NULL;
}

/* ---- the snapshot ---- */

struct gw_policy_set {
    atomic_size_t refs;
    gw_policy **items; /* in file-name order; each holds a reference (set_refs) */
    size_t n;
    htab by_cert;
    htab by_client;
    gw_policy_rejected *rejected; /* files left out, in file-name order */
    size_t nrejected;
};

static void policy_unref(gw_policy *p)
{
    if (p != NULL && atomic_fetch_sub_explicit(&p->set_refs, 1, memory_order_acq_rel) == 1)
        gw_policy_free(p);
}

static void set_free(gw_policy_set *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        policy_unref(s->items[i]);
    free(s->items);
    free(s->by_cert.slots);
    free(s->by_client.slots);
    for (size_t i = 0; i < s->nrejected; i++) {
        free(s->rejected[i].file);
        free(s->rejected[i].error);
    }
    free(s->rejected);
    free(s);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The "*.json" entries of <dir> (hidden files skipped), sorted. Returns 0 or
 * an errno value. */
static int list_json(const char *dir, char ***names, size_t *count)
{
    char **v = NULL;
    size_t n = 0, cap = 0;
    int e = 0;

    DIR *d = opendir(dir);
    if (d == NULL)
        return errno;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (de == NULL) {
            e = errno;
            break;
        }
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len <= 5 || strcmp(de->d_name + len - 5, ".json") != 0)
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            char **nv = realloc(v, ncap * sizeof(*v));
            if (nv == NULL) {
                e = ENOMEM;
                break;
            }
            v = nv;
            cap = ncap;
        }
        if ((v[n] = strdup(de->d_name)) == NULL) {
            e = ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (e != 0) {
        for (size_t i = 0; i < n; i++)
            free(v[i]);
        free(v);
        return e;
    }
    if (n > 1)
        qsort(v, n, sizeof(*v), name_cmp);
    *names = v;
    *count = n;
    return 0;
}

/* Builds the snapshot's indexes from its items, which obey the cross-file
 * rules (resolve_conflicts). -1 when out of memory. */
static int index_set(gw_policy_set *s)
{
    size_t ncerts = 0;

    for (size_t i = 0; i < s->n; i++)
        ncerts += s->items[i]->ncerts;
    if (htab_init(&s->by_cert, ncerts) < 0 || htab_init(&s->by_client, s->n) < 0)
        return -1;
    for (size_t i = 0; i < s->n; i++) {
        const gw_policy *p = s->items[i];
        htab_put(&s->by_client, p->client_id, p);
        for (size_t k = 0; k < p->ncerts; k++)
            htab_put(&s->by_cert, p->certs[k], p);
    }
    return 0;
}

gw_policy_set *gw_policy_set_empty(void)
{
    gw_policy_set *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    atomic_init(&s->refs, 1);
    if (htab_init(&s->by_cert, 0) < 0 || htab_init(&s->by_client, 0) < 0) {
        set_free(s);
        return NULL;
    }
    return s;
}

/* One file of the directory while a snapshot is built: the version it will
 * serve (<cand>: the new one when valid, else the previous snapshot's) and,
 * when rejected, its errors. */
typedef struct fent {
    char *file;
    gw_policy *fresh;     /* parsed now, valid on its own; owned until placed */
    const gw_policy *old; /* the previous snapshot's version of the same file */
    const gw_policy *cand;
    int rejected;    /* the version on disk is not served */
    int conflict;    /* this round: involved in a cross-file conflict */
    gw_errlist errs; /* this file's errors, in order */
} fent;

/* Record that <e->cand> shares <what> with <o->cand>; the file whose version
 * on disk is the newer gives way: a fresh version is marked (both, when both
 * are fresh); two previous versions never met, but if they do both go. */
static void conflict(fent *e, const char *epath, fent *o, const char *opath, const char *what)
{
    int efresh = e->cand == e->fresh, ofresh = o->cand == o->fresh;
    if (efresh || !ofresh) {
        e->conflict = 1;
        gw_errlist_add(&e->errs, "%s: %s: %salso used by %s", e->file, epath, what, o->file);
    }
    if (ofresh || !efresh) {
        o->conflict = 1;
        gw_errlist_add(&o->errs, "%s: %s: %salso used by %s", o->file, opath, what, e->file);
    }
}

/* The cross-file rules: a habilitation id, a client_id and a certificate
 * belong to one file only. Every file involved in a conflict loses its new
 * version (it falls back to its previous one, or is left out), then the
 * check runs again, since a previous version may now collide with another
 * file's new one. Each round takes away at least one fresh version, so the
 * loop ends. -1 when out of memory. */
static int resolve_conflicts(fent *f, size_t n)
{
    for (size_t round = 0; round <= 2 * n + 1; round++) {
        htab by_id = {0}, by_client = {0}, by_cert = {0};
        size_t ncerts = 0, found = 0;
        for (size_t i = 0; i < n; i++)
            ncerts += f[i].cand != NULL ? f[i].cand->ncerts : 0;
        if (htab_init(&by_id, n) < 0 || htab_init(&by_client, n) < 0 ||
            htab_init(&by_cert, ncerts) < 0) {
            free(by_id.slots);
            free(by_client.slots);
            free(by_cert.slots);
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            const gw_policy *p = f[i].cand;
            if (p == NULL)
                continue;
            size_t j;
            if (htab_put_idx(&by_id, p->id, p, i, &j))
                conflict(&f[i], "habilitation.id", &f[j], "habilitation.id", "");
            if (htab_put_idx(&by_client, p->client_id, p, i, &j))
                conflict(&f[i], "consumer.client_id", &f[j], "consumer.client_id", "");
            /* a certificate entry is file * MAX_CERTS + its index in the file */
            for (size_t k = 0; k < p->ncerts; k++) {
                if (htab_put_idx(&by_cert, p->certs[k], p, i * MAX_CERTS + k, &j)) {
                    char pi[64], pj[64];
                    snprintf(pi, sizeof(pi), "consumer.certificates[%zu]", k);
                    snprintf(pj, sizeof(pj), "consumer.certificates[%zu]", j % MAX_CERTS);
                    conflict(&f[i], pi, &f[j / MAX_CERTS], pj, "fingerprint ");
                }
            }
        }
        free(by_id.slots);
        free(by_client.slots);
        free(by_cert.slots);
        for (size_t i = 0; i < n; i++) {
            if (!f[i].conflict)
                continue;
            found++;
            f[i].conflict = 0;
            f[i].rejected = 1;
            f[i].cand = f[i].cand == f[i].fresh ? f[i].old : NULL;
        }
        if (found == 0)
            return 0;
    }
    return 0;
}

gw_policy_set *gw_policy_set_build(const char *dir, const gw_policy_rules *rules,
                                   const gw_policy_set *prev, gw_errlist *errs)
{
    char **names = NULL;
    size_t nnames = 0;
    char *absdir = NULL;
    fent *f = NULL;
    gw_policy_set *s = NULL;
    htab prev_files = {0};
    const char *d = dir != NULL ? dir : "-";
    int oom = 0;

    int e = dir != NULL ? list_json(dir, &names, &nnames) : EINVAL;
    if (e != 0) {
        gw_errlist_add(errs, "%s: $: cannot read: %s", d, strerror(e));
        return NULL;
    }
    absdir = dir_abs(d);
    s = calloc(1, sizeof(*s));
    f = calloc(nnames + 1, sizeof(*f));
    if (absdir == NULL || s == NULL || f == NULL ||
        htab_init(&prev_files, prev != NULL ? prev->n : 0) < 0)
        goto oom;
    atomic_init(&s->refs, 1);
    for (size_t i = 0; prev != NULL && i < prev->n; i++)
        htab_put(&prev_files, prev->items[i]->file, prev->items[i]);

    const char *sep = d[strlen(d) - 1] == '/' ? "" : "/";
    for (size_t i = 0; i < nnames; i++) {
        fent *fe = &f[i];
        char *text = NULL;
        size_t len = 0;
        if (asprintf(&fe->file, "%s%s%s", d, sep, names[i]) < 0) {
            fe->file = NULL;
            goto oom;
        }
        e = slurp(fe->file, POLICY_MAX_FILE, &text, &len);
        if (e != 0)
            gw_errlist_add(&fe->errs, "%s: $: cannot read: %s", fe->file,
                           e == EINVAL ? "not a regular file" : strerror(e));
        else
            fe->fresh = parse_text(fe->file, absdir, text, len, rules, &fe->errs);
        free(text);
        fe->old = htab_get(&prev_files, fe->file);
        fe->cand = fe->fresh != NULL ? fe->fresh : fe->old;
        fe->rejected = fe->fresh == NULL;
    }
    if (resolve_conflicts(f, nnames) < 0)
        goto oom;

    size_t nrej = 0;
    for (size_t i = 0; i < nnames; i++)
        nrej += f[i].rejected;
    s->items = calloc(nnames + 1, sizeof(*s->items));
    s->rejected = calloc(nrej + 1, sizeof(*s->rejected));
    if (s->items == NULL || s->rejected == NULL)
        goto oom;
    for (size_t i = 0; i < nnames; i++) {
        fent *fe = &f[i];
        for (size_t k = 0; k < fe->errs.n; k++)
            gw_errlist_add(errs, "%s", fe->errs.msgs[k]);
        if (errs != NULL)
            errs->dropped += fe->errs.dropped;
        if (fe->rejected) {
            gw_policy_rejected *r = &s->rejected[s->nrejected++];
            r->file = strdup(fe->file);
            r->error = strdup(fe->errs.n > 0 ? fe->errs.msgs[0] : "out of memory");
            r->kept = fe->cand != NULL;
            oom |= r->file == NULL || r->error == NULL;
        }
        if (fe->cand == NULL)
            continue;
        gw_policy *p = (gw_policy *)fe->cand;
        if (p == fe->fresh) {
            atomic_init(&p->set_refs, 1);
            fe->fresh = NULL; /* now the snapshot's */
        } else {
            atomic_fetch_add_explicit(&p->set_refs, 1, memory_order_relaxed);
        }
        s->items[s->n++] = p;
    }
    if (oom || index_set(s) < 0)
        goto oom;
    goto out;
oom:
    gw_errlist_add(errs, "%s: $: out of memory", d);
    set_free(s);
    s = NULL;
out:
    for (size_t i = 0; f != NULL && i < nnames; i++) {
        free(f[i].file);
        gw_policy_free(f[i].fresh);
        gw_errlist_clear(&f[i].errs);
    }
    free(f);
    free(prev_files.slots);
    for (size_t i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    free(absdir);
    return s;
}

gw_policy_set *gw_policy_set_load(const char *dir, const gw_policy_rules *rules, gw_errlist *errs)
{
    gw_policy_set *s = gw_policy_set_build(dir, rules, NULL, errs);
    if (s != NULL && s->nrejected > 0) {
        gw_policy_set_unref(s);
        s = NULL;
    }
    return s;
}

size_t gw_policy_set_nrejected(const gw_policy_set *s)
{
    return s != NULL ? s->nrejected : 0;
}

const gw_policy_rejected *gw_policy_set_rejected_at(const gw_policy_set *s, size_t i)
{
    return s != NULL && i < s->nrejected ? &s->rejected[i] : NULL;
}

gw_policy_set *gw_policy_set_ref(gw_policy_set *s)
{
    if (s != NULL)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void gw_policy_set_unref(gw_policy_set *s)
{
    if (s == NULL)
        return;
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        set_free(s);
}

size_t gw_policy_set_count(const gw_policy_set *s)
{
    return s != NULL ? s->n : 0;
}

const gw_policy *gw_policy_set_at(const gw_policy_set *s, size_t i)
{
    return s != NULL && i < s->n ? s->items[i] : NULL;
}

const gw_policy *gw_policy_by_cert(const gw_policy_set *s, const char *sha256hex)
{
    return s != NULL ? htab_get(&s->by_cert, sha256hex) : NULL;
}

const gw_policy *gw_policy_by_client_id(const gw_policy_set *s, const char *client_id)
{
    return s != NULL ? htab_get(&s->by_client, client_id) : NULL;
}

/* ---- reload diff ---- */

static const gw_policy *find_id(const gw_policy_set *s, const char *id)
{
    for (size_t i = 0; s != NULL && i < s->n; i++)
        if (s->items[i]->id != NULL && strcmp(s->items[i]->id, id) == 0)
            return s->items[i];
    return NULL;
}

/* Quadratic in the number of partners: a reload runs rarely, and a few
 * thousand partners compare in milliseconds. */
void gw_policy_set_diff(const gw_policy_set *old, const gw_policy_set *new_set, gw_policy_diff *d)
{
    memset(d, 0, sizeof(*d));
    d->before = old != NULL ? old->n : 0;
    d->after = new_set != NULL ? new_set->n : 0;
    for (size_t i = 0; new_set != NULL && i < new_set->n; i++) {
        const gw_policy *np = new_set->items[i];
        const gw_policy *op = np->id != NULL ? find_id(old, np->id) : NULL;
        if (op == NULL)
            d->added++;
        else if (op != np && op->text_hash != np->text_hash)
            d->changed++;
    }
    for (size_t i = 0; old != NULL && i < old->n; i++)
        if (old->items[i]->id == NULL || find_id(new_set, old->items[i]->id) == NULL)
            d->removed++;
}

int gw_policy_diff_empties(const gw_policy_diff *d)
{
    if (d->before == 0)
        return 0;
    return d->after == 0 || d->removed * 2 > d->before;
}
