#include "token/endpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "lib/util.h"

#define MAX_PARAMS 8

typedef struct form {
    char *names[MAX_PARAMS];
    char *values[MAX_PARAMS];
    size_t n;
} form;

/* One form-urlencoded name or value: '+' is a space, %XX must be valid, no
 * control bytes after decoding. malloc'd, NULL when malformed. */
static char *decode(const char *s, size_t n)
{
    char *o = malloc(n + 1);
    size_t k = 0;
    if (o == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= n) {
                free(o);
                return NULL;
            }
            int h = gw_hexval(s[i + 1]), l = gw_hexval(s[i + 2]);
            if (h < 0 || l < 0) {
                free(o);
                return NULL;
            }
            c = (char)(h << 4 | l);
            i += 2;
        }
        if ((unsigned char)c < 0x20 || c == 0x7f) {
            free(o);
            return NULL;
        }
        o[k++] = c;
    }
    o[k] = '\0';
    return o;
}

static void form_free(form *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->names[i]);
        free(f->values[i]);
    }
    f->n = 0;
}

/* application/x-www-form-urlencoded, strictly: every parameter once (RFC
 * 6749 §3.2), at most MAX_PARAMS. Returns 0 or -1. */
static int parse_form(const char *body, size_t len, form *f)
{
    size_t i = 0;
    memset(f, 0, sizeof(*f));
    while (i < len) {
        const char *amp = memchr(body + i, '&', len - i);
        size_t end = amp ? (size_t)(amp - body) : len;
        const char *eq = memchr(body + i, '=', end - i);
        if (eq == NULL || eq == body + i || f->n == MAX_PARAMS)
            goto bad;
        char *name = decode(body + i, (size_t)(eq - body - i));
        char *value = decode(eq + 1, end - (size_t)(eq - body) - 1);
        if (name == NULL || value == NULL) {
            free(name);
            free(value);
            goto bad;
        }
        for (size_t k = 0; k < f->n; k++) {
            if (strcmp(f->names[k], name) == 0) {
                free(name);
                free(value);
                goto bad;
            }
        }
        f->names[f->n] = name;
        f->values[f->n] = value;
        f->n++;
        i = end + 1;
    }
    return 0;
bad:
    form_free(f);
    return -1;
}

static const char *param(const form *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->names[i], name) == 0)
            return f->values[i];
    return NULL;
}

static void answer(gw_token_out *out, int status, const char *error, const char *desc,
                   const char *reason)
{
    json_t *o = json_pack("{s:s,s:s}", "error", error, "error_description", desc);
    out->status = status;
    out->body = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    out->reason = reason;
}

/* client_secret_basic: "Basic base64(client_id:secret)" (RFC 6749 §2.3.1).
 * Returns 1 when it matches <p>'s secret hash, 0 when not, -1 when absent. */
static int basic_auth(const gw_http_request *r, const gw_policy *p)
{
    size_t n = 0;
    const char *h = gw_http_request_header(r, "Authorization", &n);
    if (h == NULL)
        return -1;
    if (n < 7 || strncasecmp(h, "Basic ", 6) != 0 || n - 6 > 512)
        return 0;
    unsigned char dec[400];
    int len = EVP_DecodeBlock(dec, (const unsigned char *)h + 6, (int)(n - 6));
    if (len <= 0)
        return 0;
    /* EVP_DecodeBlock counts padding bytes as zeros */
    while (len > 0 && h[n - 1] == '=' && dec[len - 1] == '\0') {
        len--;
        n--;
    }
    dec[len] = '\0';
    char *colon = strchr((char *)dec, ':');
    if (colon == NULL)
        return 0;
    *colon = '\0';
    if (strcmp((char *)dec, p->client_id) != 0 || !p->has_secret)
        return 0;
    unsigned char md[32];
    char hex[65];
    if (gw_sha256(colon + 1, strlen(colon + 1), md) != 0) {
        OPENSSL_cleanse(dec, sizeof(dec));
        return 0;
    }
    gw_hex(md, 32, hex);
    OPENSSL_cleanse(dec, sizeof(dec));
    return CRYPTO_memcmp(hex, p->secret_sha256, 64) == 0;
}

/* granted = requested ∩ habilitation (all of the habilitation's when absent);
 * a requested scope outside the habilitation is an error. */
static int grant_scopes(const gw_policy *p, const char *req, char *out, size_t cap)
{
    out[0] = '\0';
    size_t used = 0;
    if (req == NULL) {
        for (size_t i = 0; i < p->nscopes; i++) {
            int w = snprintf(out + used, cap - used, "%s%s", used ? " " : "", p->scopes[i]);
            if (w < 0 || (size_t)w >= cap - used)
                return -1;
            used += (size_t)w;
        }
        return 0;
    }
    if (req[0] == '\0' || req[0] == ' ' || strstr(req, "  ") != NULL)
        return -1;
    char buf[1024];
    if (strlen(req) >= sizeof(buf))
        return -1;
    strcpy(buf, req);
    size_t l = strlen(buf);
    if (l > 0 && buf[l - 1] == ' ')
        return -1;
    char *save = NULL;
    for (char *t = strtok_r(buf, " ", &save); t != NULL; t = strtok_r(NULL, " ", &save)) {
        if (!gw_policy_has_scope(p, t))
            return -1;
        /* a scope asked twice is granted once */
        char pat[160];
        snprintf(pat, sizeof(pat), " %s ", t);
        char have[1100];
        snprintf(have, sizeof(have), " %s ", out);
        if (strstr(have, pat) != NULL)
            continue;
        int w = snprintf(out + used, cap - used, "%s%s", used ? " " : "", t);
        if (w < 0 || (size_t)w >= cap - used)
            return -1;
        used += (size_t)w;
    }
    return 0;
}

void gw_token_endpoint(const gw_oauth *o, const gw_token_in *in, gw_token_out *out)
{
    memset(out, 0, sizeof(*out));
    const gw_http_request *r = in->http;
    form f;
    memset(&f, 0, sizeof(f));
    if (strcmp(r->method, "POST") != 0) {
        answer(out, 400, "invalid_request", "the token endpoint takes POST",
               "token.invalid_request");
        return;
    }
    size_t n = 0;
    const char *ct = gw_http_request_header(r, "Content-Type", &n);
    if (ct == NULL || n < 33 || strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0 ||
        (n > 33 && ct[33] != ';' && ct[33] != ' ')) {
        answer(out, 400, "invalid_request",
               "Content-Type must be application/x-www-form-urlencoded", "token.invalid_request");
        return;
    }
    if (parse_form(r->body ? r->body : "", r->body_len, &f) < 0) {
        answer(out, 400, "invalid_request", "malformed or repeated parameter",
               "token.invalid_request");
        return;
    }
    const char *grant = param(&f, "grant_type");
    if (grant == NULL) {
        answer(out, 400, "invalid_request", "grant_type is required", "token.invalid_request");
        goto done;
    }
    if (strcmp(grant, "client_credentials") != 0) {
        answer(out, 400, "unsupported_grant_type", "only client_credentials is supported",
               "token.unsupported_grant_type");
        goto done;
    }
    for (size_t i = 0; i < f.n; i++) {
        if (strcmp(f.names[i], "grant_type") != 0 && strcmp(f.names[i], "scope") != 0 &&
            strcmp(f.names[i], "client_id") != 0) {
            answer(out, 400, "invalid_request",
                   "unexpected parameter (client_secret must go in Authorization: Basic)",
                   "token.invalid_request");
            goto done;
        }
    }
    /* client authentication: the certificate, always (the mtls stage found
     * its policy; none here is the same refusal) */
    const gw_policy *p = in->policy;
    if (p == NULL) {
        gw_token_refused(GW_ERR_CERT_UNKNOWN, out);
        goto done;
    }
    const char *cid = param(&f, "client_id");
    if (cid != NULL && strcmp(cid, p->client_id) != 0) {
        answer(out, 401, "invalid_client", "client_id is not the certificate's client",
               "token.invalid_client");
        goto done;
    }
    int basic = basic_auth(r, p);
    if (p->has_secret ? basic != 1 : basic != -1) {
        answer(out, 401, "invalid_client",
               p->has_secret ? "client_secret_basic required in addition to the certificate"
                             : "unexpected client credentials",
               "token.invalid_client");
        out->www_authenticate = "Basic realm=\"api-opale\"";
        goto done;
    }
    /* rate of token requests, per client (before any signature work) */
    if (in->rate != NULL) {
        gw_memlog_result rr;
        char key[160];
        snprintf(key, sizeof(key), "token:%s", p->client_id);
        gw_memlog_admit(in->rate, key, o->token_rate_per_minute, 60000, in->now_ms, &rr);
        if (!rr.admitted) {
            answer(out, 429, "invalid_request", "too many token requests, retry later",
                   "token.rate_limited");
            snprintf(out->retry_after, sizeof(out->retry_after), "%u",
                     (unsigned)((rr.reset_ms + 999) / 1000));
            goto done;
        }
    }
    if (grant_scopes(p, param(&f, "scope"), out->scope, sizeof(out->scope)) < 0) {
        answer(out, 400, "invalid_scope", "a requested scope is not granted to this client",
               "token.invalid_scope");
        goto done;
    }
    char x5t[48];
    if (gw_x5t_from_hex(in->cert_sha256, x5t) < 0) {
        answer(out, 401, "invalid_client", "no client certificate", "token.invalid_client");
        goto done;
    }
    gw_uuid4(out->jti);
    json_t *claims = json_pack(
        "{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:s,s:s,s:s,s:{s:s}}", "iss", o->issuer, "sub",
        p->client_id, "client_id", p->client_id, "aud", o->audience, "exp",
        (json_int_t)(in->now + o->token_lifetime_s), "iat", (json_int_t)in->now, "nbf",
        (json_int_t)in->now, "jti", out->jti, "scope", out->scope, "habilitation", p->id, "keytype",
        in->env == GW_ENV_PRODUCTION ? "PRODUCTION" : "SANDBOX", "cnf", "x5t#S256", x5t);
    char *tok = claims ? gw_jws_sign(o->active, "at+jwt", claims) : NULL;
    json_decref(claims);
    if (tok == NULL) {
        answer(out, 500, "server_error", "cannot sign the token", "token.server_error");
        goto done;
    }
    json_t *resp = json_pack("{s:s,s:s,s:I,s:s}", "access_token", tok, "token_type", "Bearer",
                             "expires_in", (json_int_t)o->token_lifetime_s, "scope", out->scope);
    OPENSSL_cleanse(tok, strlen(tok));
    free(tok);
    out->status = 200;
    out->body = resp ? json_dumps(resp, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(resp);
    out->reason = NULL;
    if (out->body == NULL)
        answer(out, 500, "server_error", "out of memory", "token.server_error");
done:
    form_free(&f);
}

int gw_token_refused(gw_err_id err, gw_token_out *out)
{
    static const struct {
        gw_err_id err;
        int status;
        const char *error, *desc, *reason;
    } map[] = {
        {GW_ERR_CERT_UNKNOWN, 401, "invalid_client", "the client certificate names no client",
         "token.invalid_client"},
        {GW_ERR_IP_DENIED, 401, "invalid_client", "caller address not allowed for this client",
         "token.invalid_client"},
        {GW_ERR_CONSUMER_SUSPENDED, 400, "invalid_grant", "client suspended by the operator",
         "token.invalid_grant"},
        {GW_ERR_HAB_SUSPENDED, 400, "invalid_grant", "habilitation suspended",
         "token.invalid_grant"},
        {GW_ERR_HAB_REVOKED, 400, "invalid_grant", "habilitation revoked", "token.invalid_grant"},
        {GW_ERR_HAB_NOT_YET_VALID, 400, "invalid_grant", "habilitation outside its validity dates",
         "token.invalid_grant"},
        {GW_ERR_HAB_EXPIRED, 400, "invalid_grant", "habilitation outside its validity dates",
         "token.invalid_grant"},
        {GW_ERR_ENVIRONMENT, 400, "invalid_grant", "habilitation not valid for this environment",
         "token.invalid_grant"},
    };
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (map[i].err == err) {
            answer(out, map[i].status, map[i].error, map[i].desc, map[i].reason);
            return 0;
        }
    }
    return -1;
}

char *gw_assertion_sign_ids(const gw_oauth *o, const char *client_id, const char *habilitation,
                            gw_env env, const char *scope, const char *request_id, time_t now)
{
    json_t *claims = json_pack(
        "{s:s,s:s,s:I,s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "iss", o->issuer, "aud",
        o->assertion_audience, "iat", (json_int_t)now, "exp",
        (json_int_t)(now + o->assertion_lifetime_s), "jti", request_id, "sub", client_id,
        "client_id", client_id, "habilitation", habilitation, "scope", scope ? scope : "",
        "keytype", env == GW_ENV_PRODUCTION ? "PRODUCTION" : "SANDBOX", "request_id", request_id);
    if (claims == NULL)
        return NULL;
    char *t = gw_jws_sign(o->active, "JWT", claims);
    json_decref(claims);
    return t;
}

char *gw_assertion_sign(const gw_oauth *o, const gw_policy *p, gw_env env, const char *scope,
                        const char *request_id, time_t now)
{
    return gw_assertion_sign_ids(o, p->client_id, p->id, env, scope, request_id, now);
}
