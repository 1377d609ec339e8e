/* The admin token and the authentication back-off (see auth.h). */
#include "admin/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

static gw_admin_auth_src *source_of(gw_admin_auth *t, const char *ip, uint64_t now)
{
    gw_admin_auth_src *victim = NULL;
    for (size_t i = 0; i < t->n; i++) {
        gw_admin_auth_src *s = &t->srcs[i];
        if (strcmp(s->ip, ip) == 0)
            return s;
        if (s->blocked_until_ms <= now && (victim == NULL || s->last_ms < victim->last_ms))
            victim = s;
    }
    if (t->n < GW_ADMIN_AUTH_SOURCES)
        victim = &t->srcs[t->n++];
    if (victim == NULL)
        return NULL; /* every slot blocked: nothing forgotten early */
    memset(victim, 0, sizeof(*victim));
    snprintf(victim->ip, sizeof(victim->ip), "%s", ip);
    return victim;
}

gw_admin_auth_verdict gw_admin_auth_decide(gw_admin_auth *t, const char *ip, int token_ok,
                                           uint64_t now)
{
    gw_admin_auth_verdict v = {0, 0, 0, 0};
    gw_admin_auth_src *src = source_of(t, ip != NULL ? ip : "", now);
    if (src != NULL)
        src->last_ms = now;
    if (src != NULL && src->blocked_until_ms > now) {
        v.status = 429;
        v.retry_after_s = (unsigned)((src->blocked_until_ms - now + 999) / 1000);
        return v;
    }
    if (token_ok) {
        if (src != NULL)
            src->failures = 0;
        return v;
    }
    v.status = 401;
    if (src == NULL)
        return v;
    if (now - src->window_start_ms >= GW_ADMIN_AUTH_WINDOW_S * 1000ull) {
        src->window_start_ms = now;
        src->failures = 0;
    }
    src->failures++;
    v.failures = src->failures;
    if (src->failures >= GW_ADMIN_AUTH_MAX_FAILURES) {
        src->blocked_until_ms = now + GW_ADMIN_AUTH_BLOCK_S * 1000ull;
        src->failures = 0;
        src->window_start_ms = now;
        v.blocked_s = GW_ADMIN_AUTH_BLOCK_S;
    }
    return v;
}

int gw_admin_token_ok(const char *authorization, const char *token, size_t token_len)
{
    if (authorization == NULL || strncmp(authorization, "Bearer ", 7) != 0)
        return 0;
    const char *t = authorization + 7;
    size_t n = strlen(t);
    return n == token_len && CRYPTO_memcmp(t, token, n) == 0;
}

char *gw_admin_token_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    char buf[GW_ADMIN_TOKEN_MAX + 2]; /* one byte more than a token may have */
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    char *tok = NULL;
    if (n > 0 && n <= GW_ADMIN_TOKEN_MAX) {
        buf[n] = '\0';
        tok = strdup(buf);
        if (tok != NULL)
            *len = n;
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    return tok;
}
