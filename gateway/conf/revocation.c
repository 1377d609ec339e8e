/* "listeners[].tls" revocation settings: docs/configuration.md. */
#include "conf/revocation.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/path.h"

static int is_http_url(const char *s)
{
    return strncmp(s, "http://", 7) == 0 && s[7] != '\0' && s[7] != '/';
}

/* An "http://" URL (no TLS: OCSP and CRLs are signed objects, RFC 6960 and
 * RFC 5280 fetch them over plain HTTP). */
static void get_url(gw_jsonv *v, json_t *o, const char *p, const char *key, char **out)
{
    const char *s;
    char pk[GW_JSONV_PATH];
    if (gw_jsonv_str(v, o, p, key, GW_JSONV_OPTIONAL, &s) != GW_JSONV_SET)
        return;
    gw_jsonv_path_key(pk, p, key);
    if (!is_http_url(s) || strlen(s) > 1024 || strpbrk(s, " \t\r\n") != NULL) {
        gw_jsonv_err(v, pk, "must be an http:// URL");
        return;
    }
    *out = gw_jsonv_strdup(v, pk, s);
}

/* A path resolved against <dir> that must exist (a regular file, or a
 * directory when <want_dir>). */
static void get_path(gw_jsonv *v, const char *dir, json_t *o, const char *p, const char *key,
                     int want_dir, char **out)
{
    const char *s;
    char pk[GW_JSONV_PATH];
    if (gw_jsonv_str(v, o, p, key, GW_JSONV_OPTIONAL, &s) != GW_JSONV_SET)
        return;
    gw_jsonv_path_key(pk, p, key);
    if (s[0] == '\0') {
        gw_jsonv_err(v, pk, "must not be empty");
        return;
    }
    char *abs = gw_path_resolve(dir, s);
    struct stat st;
    if (abs == NULL) {
        gw_jsonv_err(v, pk, "out of memory");
        return;
    }
    if (stat(abs, &st) < 0 || (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))) {
        char cb[512];
        gw_jsonv_err(v, pk, "cannot read \"%s\": not a %s",
                     gw_jsonv_clean(cb, sizeof(cb), abs, 400),
                     want_dir ? "directory" : "regular file");
        free(abs);
        return;
    }
    *out = abs;
}

static void get_uint(gw_jsonv *v, json_t *o, const char *p, const char *key, long long min,
                     long long max, unsigned *out)
{
    long long n;
    if (gw_jsonv_int(v, o, p, key, GW_JSONV_OPTIONAL, min, max, &n) == GW_JSONV_SET)
        *out = (unsigned)n;
}

static void parse_crl(gw_jsonv *v, json_t *o, const char *p, gw_conf_listener *l)
{
    static const char *const keys[] = {"poll_s", "url", "fetch_s", "grace_s", "timeout_ms", NULL};
    gw_conf_revocation *r = &l->revoc;
    gw_jsonv_keys(v, o, p, keys);
    get_uint(v, o, p, "poll_s", 0, 86400, &r->crl_poll_s);
    get_url(v, o, p, "url", &r->crl_url);
    get_uint(v, o, p, "fetch_s", 10, 7 * 86400, &r->crl_fetch_s);
    get_uint(v, o, p, "grace_s", 0, 30 * 86400, &r->crl_grace_s);
    get_uint(v, o, p, "timeout_ms", 100, 60000, &r->crl_timeout_ms);
    if (l->crl == NULL && r->crl_url == NULL)
        gw_jsonv_err(v, p, "needs \"crl\" (a file) or \"url\"");
}

static void parse_ocsp(gw_jsonv *v, const char *dir, json_t *o, const char *p,
                       gw_conf_revocation *r)
{
    static const char *const keys[] = {"mode",  "responder",        "refresh_s", "timeout_ms",
                                       "nonce", "certificates_dir", NULL};
    const char *s;
    char pk[GW_JSONV_PATH];
    gw_jsonv_keys(v, o, p, keys);
    if (gw_jsonv_str(v, o, p, "mode", GW_JSONV_OPTIONAL, &s) == GW_JSONV_SET) {
        if (strcmp(s, "off") == 0) {
            r->ocsp_mode = GW_OCSP_OFF;
        } else if (strcmp(s, "soft") == 0) {
            r->ocsp_mode = GW_OCSP_SOFT;
        } else if (strcmp(s, "hard") == 0) {
            r->ocsp_mode = GW_OCSP_HARD;
        } else {
            gw_jsonv_path_key(pk, p, "mode");
            gw_jsonv_err(v, pk, "must be \"off\", \"soft\" or \"hard\"");
        }
    } else {
        r->ocsp_mode = GW_OCSP_SOFT; /* the object given without a mode */
    }
    get_url(v, o, p, "responder", &r->ocsp_responder);
    get_uint(v, o, p, "refresh_s", 5, 86400, &r->ocsp_refresh_s);
    get_uint(v, o, p, "timeout_ms", 100, 60000, &r->ocsp_timeout_ms);
    gw_jsonv_bool(v, o, p, "nonce", GW_JSONV_OPTIONAL, &r->ocsp_nonce);
    get_path(v, dir, o, p, "certificates_dir", 1, &r->ocsp_certs_dir);
}

static void parse_stapling(gw_jsonv *v, const char *dir, json_t *o, const char *p,
                           gw_conf_revocation *r)
{
    static const char *const keys[] = {"responder", "issuer", "refresh_s", "timeout_ms", NULL};
    gw_jsonv_keys(v, o, p, keys);
    r->stapling = 1;
    get_url(v, o, p, "responder", &r->staple_responder);
    get_path(v, dir, o, p, "issuer", 0, &r->staple_issuer);
    get_uint(v, o, p, "refresh_s", 5, 7 * 86400, &r->staple_refresh_s);
    get_uint(v, o, p, "timeout_ms", 100, 60000, &r->staple_timeout_ms);
}

void gw_conf_revocation_parse(gw_jsonv *v, const char *dir, json_t *tls, const char *path,
                              gw_conf_listener *l)
{
    gw_conf_revocation *r = &l->revoc;
    char pk[GW_JSONV_PATH];
    r->crl_poll_s = 5;
    r->crl_fetch_s = 3600;
    r->crl_timeout_ms = 5000;
    r->ocsp_refresh_s = 300;
    r->ocsp_timeout_ms = 3000;
    r->staple_refresh_s = 3600;
    r->staple_timeout_ms = 3000;

    json_t *o = gw_jsonv_obj(v, tls, path, "crl_refresh", GW_JSONV_OPTIONAL);
    if (o != NULL) {
        gw_jsonv_path_key(pk, path, "crl_refresh");
        parse_crl(v, o, pk, l);
    }
    o = gw_jsonv_obj(v, tls, path, "ocsp", GW_JSONV_OPTIONAL);
    if (o != NULL) {
        gw_jsonv_path_key(pk, path, "ocsp");
        parse_ocsp(v, dir, o, pk, r);
    }
    o = gw_jsonv_obj(v, tls, path, "stapling", GW_JSONV_OPTIONAL);
    if (o != NULL) {
        gw_jsonv_path_key(pk, path, "stapling");
        parse_stapling(v, dir, o, pk, r);
    }
    if ((r->ocsp_mode != GW_OCSP_OFF || r->crl_url != NULL) && l->client_ca == NULL)
        gw_jsonv_err(v, path, "revocation checks need \"client_ca\"");
}

void gw_conf_revocation_free(gw_conf_revocation *r)
{
    free(r->crl_url);
    free(r->ocsp_responder);
    free(r->ocsp_certs_dir);
    free(r->staple_responder);
    free(r->staple_issuer);
}
