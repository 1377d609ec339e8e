/* Named operators and their tokens (see operators.h). */
#include "admin/operators.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

static char *fmt_err(const char *path, const char *msg, const char *arg)
{
    char buf[600];
    snprintf(buf, sizeof(buf), "%s: %s%s", path, msg, arg != NULL ? arg : "");
    return strdup(buf);
}

/* Append one operator named <name> with <role>, its token read from <file>;
 * <path> names it in errors. */
static int add_one(gw_admin_operators *o, const char *path, const char *name, int role,
                   const char *file, char **err)
{
    size_t len = 0;
    char *tok = gw_admin_token_read(file, &len);
    if (tok == NULL) {
        *err = fmt_err(path, "cannot read a token from ", file);
        return -1;
    }
    for (size_t i = 0; i < o->n; i++) {
        if (o->ops[i].token_len == len && CRYPTO_memcmp(o->ops[i].token, tok, len) == 0) {
            char msg[200];
            snprintf(msg, sizeof(msg), "the same token as operator \"%s\"", o->ops[i].name);
            *err = fmt_err(path, msg, NULL);
            OPENSSL_cleanse(tok, len);
            free(tok);
            return -1;
        }
    }
    gw_admin_operator *op = &o->ops[o->n++];
    snprintf(op->name, sizeof(op->name), "%s", name);
    op->role = role;
    memcpy(op->token, tok, len + 1);
    op->token_len = len;
    OPENSSL_cleanse(tok, len);
    free(tok);
    return 0;
}

int gw_admin_operators_load(gw_admin_operators *o, const gw_conf_admin *a, char **err)
{
    memset(o, 0, sizeof(*o));
    o->ops = calloc(a->noperators + 1, sizeof(*o->ops));
    if (o->ops == NULL) {
        *err = strdup("out of memory");
        return -1;
    }
    if (a->token_file != NULL &&
        add_one(o, "admin.token_file", "admin", GW_ROLE_OPERATOR, a->token_file, err) < 0)
        goto fail;
    for (size_t i = 0; i < a->noperators; i++) {
        char path[64];
        snprintf(path, sizeof(path), "admin.operators[%zu].token_file", i);
        if (add_one(o, path, a->operators[i].name, a->operators[i].role, a->operators[i].token_file,
                    err) < 0)
            goto fail;
    }
    return 0;
fail:
    gw_admin_operators_clear(o);
    return -1;
}

void gw_admin_operators_clear(gw_admin_operators *o)
{
    if (o->ops != NULL)
        OPENSSL_cleanse(o->ops, o->n * sizeof(*o->ops));
    free(o->ops);
    o->ops = NULL;
    o->n = 0;
}

const gw_admin_operator *gw_admin_operator_by_auth(const gw_admin_operators *o,
                                                   const char *authorization)
{
    const gw_admin_operator *found = NULL;
    for (size_t i = 0; i < o->n; i++)
        if (gw_admin_token_ok(authorization, o->ops[i].token, o->ops[i].token_len) && found == NULL)
            found = &o->ops[i];
    return found;
}

const char *gw_admin_role_name(int role)
{
    return role == GW_ROLE_OPERATOR ? "operator" : "read";
}
