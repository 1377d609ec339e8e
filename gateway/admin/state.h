/*
 * The admin listener's state (struct gw_admin), shared by the files of
 * gateway/admin/ that answer its requests: admin.c (listener, dispatch),
 * gate.c (credential, origin, CSRF, role, sessions), health.c, metrics.c,
 * actions.c (reload, suspensions, cuts, acknowledgements), holds.c (legal
 * holds), pages.c (the console's read views) and trail.c (the journal
 * record and security event of an action). Nothing outside admin/
 * includes it.
 *
 * Everything here runs on the main thread's event loop, one request at a
 * time: <cur> and <cur_session> describe the request being handled and are
 * reset around each one (admin.c, handle()).
 */
#ifndef GW_ADMIN_STATE_H
#define GW_ADMIN_STATE_H

#include <stdint.h>

#include <event2/http.h>

#include "admin/admin.h"
#include "admin/auth.h"
#include "admin/eventlog.h"
#include "admin/operators.h"
#include "admin/recette.h"
#include "admin/series.h"
#include "admin/session.h"

struct gw_admin {
    struct evhttp *http;
    gw_server *srv;
    gw_journal *journal;
    const gw_conf *conf;
    gw_admin_operators ops;        /* named operators and their tokens (admin/operators.h) */
    gw_admin_sessions sessions;    /* console sessions (admin/session.h) */
    const gw_admin_operator *cur;  /* the operator of the request being handled, else NULL */
    gw_admin_session *cur_session; /* its session when it came with the cookie */
    gw_admin_auth auth;            /* failed authentications by source (admin/auth.h) */
    unsigned long auth_failures;   /* metrics: 401 answered */
    unsigned long auth_throttled;  /* metrics: 429 answered to a blocked source */
    gw_holds *holds;               /* legal holds (gw_admin_set_journal), the caller's */
    gw_anchors *anchors;           /* anchoring off the host, NULL when not configured */
    struct event *sweep;           /* expired suspensions, once a second */
    /* the console's figures (admin/series.h), sampled by the sweep */
    gw_series series;
    gw_usage *usage;
    int64_t sampled_s;                 /* the last second sampled */
    uint64_t checkpoints, tail_checks; /* the journal's, at the last sample */
    int64_t last_checkpoint, verified_at;
    gw_eventlog *log;         /* recent security events (admin/eventlog.h) */
    gw_events_observer obs;   /* feeds <log> */
    gw_admin_recette recette; /* the last partner page's report (admin/recette.h) */
};

/* An endpoint's handler (admin.c's table, indexed by gw_admin_ep): answers
 * <req>; <id> is the {id} segment of a templated path, else "". Called
 * after the gates (admin/gate.h) for an endpoint that is not open. */
typedef void (*gw_admin_handler)(gw_admin *a, struct evhttp_request *req, const char *id);

#endif
