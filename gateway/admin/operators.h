/*
 * Named operators of the admin API (docs/console.md, "API and security"):
 * each has a name, a role ("read": GET only; "operator": every action) and
 * a bearer token read from its file at start. The old admin.token_file is
 * one operator named "admin" with role "operator". Main thread only.
 */
#ifndef GW_ADMIN_OPERATORS_H
#define GW_ADMIN_OPERATORS_H

#include <stddef.h>

#include "admin/auth.h"
#include "conf/conf.h"

typedef struct gw_admin_operator {
    char name[GW_CONF_OPERATOR_NAME_MAX + 1];
    int role; /* GW_ROLE_READ or GW_ROLE_OPERATOR (conf/conf.h) */
    char token[GW_ADMIN_TOKEN_MAX + 1];
    size_t token_len;
} gw_admin_operator;

typedef struct gw_admin_operators {
    gw_admin_operator *ops;
    size_t n;
} gw_admin_operators;

/* Read the tokens of every operator of <a> (admin.token_file first, named
 * "admin", then admin.operators in order). 0, or -1 with a malloc'd
 * <*err> ("admin.operators[1].token_file: cannot read a token from F",
 * "... : the same token as admin.operators[0]"). */
int gw_admin_operators_load(gw_admin_operators *o, const gw_conf_admin *a, char **err);

/* Wipe the tokens and free. */
void gw_admin_operators_clear(gw_admin_operators *o);

/* The operator whose token <authorization> ("Bearer <token>", NULL when
 * absent) carries, or NULL. Every token is compared, in constant time for
 * each (gw_admin_token_ok), whichever matches. */
const gw_admin_operator *gw_admin_operator_by_auth(const gw_admin_operators *o,
                                                   const char *authorization);

/* "read" or "operator". */
const char *gw_admin_role_name(int role);

#endif
