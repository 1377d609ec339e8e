/* Console sessions, cookies, Origin and CSRF (see session.h). */
#include "admin/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "conf/conf.h"
#include "token/jose.h"

int gw_admin_secret(char out[GW_ADMIN_SECRET_LEN + 1])
{
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    char *s = gw_b64url_encode(raw, sizeof(raw));
    OPENSSL_cleanse(raw, sizeof(raw));
    if (s == NULL || strlen(s) != GW_ADMIN_SECRET_LEN) {
        free(s);
        return -1;
    }
    memcpy(out, s, GW_ADMIN_SECRET_LEN + 1);
    OPENSSL_cleanse(s, GW_ADMIN_SECRET_LEN);
    free(s);
    return 0;
}

static uint64_t idle_ms(const gw_admin_sessions *t)
{
    return (t->idle_s > 0 ? t->idle_s : GW_ADMIN_SESSION_IDLE_S) * 1000ull;
}

static int ended(const gw_admin_sessions *t, const gw_admin_session *s, uint64_t now)
{
    /* a clock read earlier than the last use (another caller's) is not an expiry */
    return !s->live || (now > s->last_ms && now - s->last_ms >= idle_ms(t)) ||
           (now > s->opened_ms && now - s->opened_ms >= GW_ADMIN_SESSION_MAX_S * 1000ull);
}

gw_admin_session *gw_admin_session_open(gw_admin_sessions *t, size_t op, uint64_t now)
{
    gw_admin_session *slot = NULL;
    for (size_t i = 0; i < GW_ADMIN_SESSIONS; i++) {
        gw_admin_session *s = &t->s[i];
        if (ended(t, s, now)) {
            slot = s;
            break;
        }
        if (slot == NULL || s->last_ms < slot->last_ms)
            slot = s;
    }
    gw_admin_session_end(slot);
    if (gw_admin_secret(slot->id) < 0 || gw_admin_secret(slot->csrf) < 0) {
        gw_admin_session_end(slot);
        return NULL;
    }
    slot->op = op;
    slot->opened_ms = now;
    slot->last_ms = now;
    slot->live = 1;
    return slot;
}

gw_admin_session *gw_admin_session_find(gw_admin_sessions *t, const char *id, uint64_t now)
{
    if (id == NULL || strlen(id) != GW_ADMIN_SECRET_LEN)
        return NULL;
    gw_admin_session *found = NULL;
    for (size_t i = 0; i < GW_ADMIN_SESSIONS; i++) {
        gw_admin_session *s = &t->s[i];
        if (s->live && CRYPTO_memcmp(s->id, id, GW_ADMIN_SECRET_LEN) == 0)
            found = s;
    }
    if (found == NULL)
        return NULL;
    if (ended(t, found, now)) {
        gw_admin_session_end(found);
        return NULL;
    }
    found->last_ms = now;
    return found;
}

void gw_admin_session_end(gw_admin_session *s)
{
    OPENSSL_cleanse(s, sizeof(*s));
    s->live = 0;
}

unsigned gw_admin_session_expires_in(const gw_admin_sessions *t, const gw_admin_session *s,
                                     uint64_t now)
{
    uint64_t idle = s->last_ms + idle_ms(t);
    uint64_t abs = s->opened_ms + GW_ADMIN_SESSION_MAX_S * 1000ull;
    uint64_t end = idle < abs ? idle : abs;
    /* rounded up: a session opened a millisecond ago still has its 900 s */
    return end > now ? (unsigned)((end - now + 999) / 1000) : 0;
}

int gw_admin_cookie_get(const char *header, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    const char *p = header;
    while (p != NULL && *p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len > nl + 1 && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            size_t vl = len - nl - 1;
            if (vl + 1 > outlen)
                return 0;
            memcpy(out, p + nl + 1, vl);
            out[vl] = '\0';
            return 1;
        }
        p = end;
    }
    return 0;
}

int gw_admin_origin_ok(const char *origin, const char *address, unsigned port)
{
    char want[128];
    if (origin == NULL || address == NULL)
        return 0;
    int v6 = strchr(address, ':') != NULL;
    snprintf(want, sizeof(want), v6 ? "http://[%s]:%u" : "http://%s:%u", address, port);
    if (strcmp(origin, want) == 0)
        return 1;
    /* the admin listener is on loopback (conf.c): "localhost" names it too */
    snprintf(want, sizeof(want), "http://localhost:%u", port);
    return strcmp(origin, want) == 0;
}

int gw_admin_csrf_ok(const char *got, const char *want)
{
    if (got == NULL || want == NULL || strlen(got) != strlen(want) || want[0] == '\0')
        return 0;
    return CRYPTO_memcmp(got, want, strlen(want)) == 0;
}

int gw_admin_access(const gw_admin_access_in *in, const char **error)
{
    *error = NULL;
    if (in->origin_present && !in->origin_ok)
        *error = "origin";
    else if (in->by_session && !in->is_get && !in->csrf_ok)
        *error = "csrf";
    else if (in->ep_is_action && in->role != GW_ROLE_OPERATOR)
        *error = "forbidden";
    return *error != NULL ? 403 : 0;
}
