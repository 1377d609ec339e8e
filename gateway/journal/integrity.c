/*
 * The journal's integrity for main.c (integrity.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strndup */
#endif
#include "journal/integrity.h"

#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "journal/tail.h"
#include "lib/errors.h"
#include "token/oauth.h"

void gw_integrity_events_opts(const gw_conf *c, const gw_journal_opts *jo, gw_events_opts *eo)
{
    const gw_conf_events *ce = &c->journal.events;
    memset(eo, 0, sizeof(*eo));
    eo->journal = *jo;
    eo->journal.path = ce->path;
    eo->auth_threshold = ce->auth_threshold;
    eo->auth_window_s = ce->auth_window_s;
    eo->enum_distinct = ce->enum_distinct;
    eo->enum_window_s = ce->enum_window_s;
    eo->storm_refusals = ce->storm_refusals;
    eo->storm_window_s = ce->storm_window_s;
    eo->cert_expiry_days = ce->cert_expiry_days;
    eo->cert_expiry_off = ce->cert_expiry_days == 0;
    eo->alert_command = ce->alert_command;
    eo->alert_min_severity = (gw_event_severity)ce->alert_min_severity;
    eo->alert_max_per_minute = ce->alert_max_per_minute;
}

/* The break as event members. */
static json_t *break_fields(const gw_journal_tail *t)
{
    return json_pack("{s:s,s:I,s:I,s:s,s:s,s:s}", "file", t->file, "record_seq", (json_int_t)t->seq,
                     "line", (json_int_t)t->line, "expected", t->expected, "actual", t->actual,
                     "what", t->what);
}

/* Write one event to the events stream (opened for it, then closed). */
static void offline_event(const gw_events_opts *eo, gw_event_type type, json_t *fields)
{
    char *err = NULL;
    gw_events_opts o = *eo;
    o.journal.tail_check_s = 0;
    o.journal.on_checkpoint = NULL; /* no anchor sender outside the running gateway */
    gw_events *ev = gw_events_open(&o, &err);
    if (ev == NULL) {
        fprintf(stderr, "opale-gateway: journal.events.path: %s (the event is not written)\n",
                err ? err : "cannot open");
        free(err);
        json_decref(fields);
        return;
    }
    gw_events_integrity(ev, type, fields);
    gw_events_close(ev);
}

int gw_integrity_start_check(const char *conf_path, const gw_conf *c, const gw_keyset *keys,
                             const gw_events_opts *eo)
{
    gw_journal_tail t;
    int rc = gw_journal_check_tail(c->journal.path, keys, 0, NULL, &t);
    if (rc == 0 && t.unknown_kid[0] != '\0')
        fprintf(stderr,
                "opale-gateway: journal %s: warning: the last checkpoint (seq %" PRIu64
                ") is signed by kid %s, which oauth.signing_keys no longer has: its head was "
                "checked, not its signature (docs/journal.md, \"Tail check\")\n",
                t.file, t.checkpoint, t.unknown_kid);
    if (rc == 0)
        return 0;
    if (rc == 2) {
        fprintf(stderr,
                "opale-gateway: journal %s: the tail cannot be checked: %s; refusing to serve "
                "(exit %d)\n",
                t.file, t.what, GW_EXIT_JOURNAL_BROKEN);
        snprintf(t.expected, sizeof(t.expected), "%s", "");
    } else {
        fprintf(stderr,
                "opale-gateway: journal %s: BROKEN at line %zu of the checked tail (offset %" PRIu64
                "), seq %" PRIu64 ": %s; expected %s, found %s\n"
                "opale-gateway: refusing to serve (exit %d): investigate (--verify-journal), "
                "then acknowledge the break to start again: opale-gateway --journal-ack-break -c "
                "%s --reason TEXT (docs/journal.md, \"Tail check\")\n",
                t.file, t.line, t.offset, t.seq, t.what, t.expected[0] ? t.expected : "-",
                t.actual[0] ? t.actual : "-", GW_EXIT_JOURNAL_BROKEN, conf_path);
    }
    json_t *f = break_fields(&t);
    if (f != NULL)
        json_object_set_new(f, "at", json_string("start"));
    offline_event(eo, GW_EV_JOURNAL_BROKEN, f);
    return GW_EXIT_JOURNAL_BROKEN;
}

/* Who runs the command: the user behind sudo, else the real user. */
static const char *operator_name(char *buf, size_t n)
{
    const char *s = getenv("SUDO_USER");
    struct passwd *pw = getpwuid(getuid());
    snprintf(buf, n, "%s", s != NULL && *s ? s : pw != NULL ? pw->pw_name : "unknown");
    return buf;
}

int gw_integrity_ack_main(int argc, char **argv, int first)
{
    const char *conf_path = NULL, *reason = NULL;
    for (int i = first; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            conf_path = argv[++i];
        else if (strcmp(argv[i], "--reason") == 0 && i + 1 < argc)
            reason = argv[++i];
        else
            conf_path = NULL, i = argc;
    }
    if (conf_path == NULL || reason == NULL || reason[0] == '\0' || strlen(reason) > 1024) {
        fprintf(stderr, "usage: opale-gateway --journal-ack-break -c FILE --reason TEXT\n");
        return 2;
    }
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    gw_conf *c = gw_conf_load(conf_path, &errs);
    gw_oauth *o = c ? gw_oauth_load(c, &errs) : NULL;
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.msgs[i]);
    gw_errlist_clear(&errs);
    if (o == NULL) {
        gw_conf_free(c);
        return 1;
    }
    gw_journal_tail t;
    int rc = gw_journal_check_tail(c->journal.path, &o->own, 0, NULL, &t);
    int out = 1;
    if (rc == 0) {
        fprintf(stderr,
                "opale-gateway: journal %s: the tail is intact (last seq %" PRIu64
                "): nothing to acknowledge\n",
                t.file, t.last_seq);
    } else if (rc == 2) {
        fprintf(stderr, "opale-gateway: journal %s: %s\n", t.file, t.what);
        out = GW_EXIT_JOURNAL_BROKEN;
    } else {
        char who[64], *err = NULL;
        operator_name(who, sizeof(who));
        if (gw_journal_ack_break(&t, reason, who, &err) != 0) {
            fprintf(stderr, "opale-gateway: journal %s\n", err ? err : "out of memory");
            free(err);
            out = GW_EXIT_JOURNAL_BROKEN;
        } else {
            fprintf(stderr,
                    "opale-gateway: journal %s: break at seq %" PRIu64
                    " (%s) acknowledged by %s; the chain goes on from the acknowledgement, seq "
                    "%" PRIu64 "\n",
                    t.file, t.seq, t.what, who, t.last_seq + 1);
            gw_journal_opts jo = {.path = c->journal.path,
                                  .queue_cap = 64,
                                  .sync_ms = c->journal.sync_ms,
                                  .rotate_bytes = c->journal.rotate_bytes,
                                  .rotate_daily = c->journal.rotate_daily,
                                  .checkpoint_s = c->journal.checkpoint_s,
                                  .signer = o->active};
            gw_events_opts eo;
            gw_integrity_events_opts(c, &jo, &eo);
            json_t *f = break_fields(&t);
            if (f != NULL) {
                json_object_set_new(f, "reason", json_string(reason));
                json_object_set_new(f, "operator", json_string(who));
                json_object_set_new(f, "ack_seq", json_integer((json_int_t)t.last_seq + 1));
            }
            offline_event(&eo, GW_EV_JOURNAL_BREAK_ACK, f);
            out = 0;
        }
    }
    gw_oauth_free(o);
    gw_conf_free(c);
    return out;
}

/* The first line of <path>, without its end of line: malloc'd or NULL. */
static char *first_line(const char *path)
{
    FILE *f = fopen(path, "r");
    char buf[1024];
    if (f == NULL)
        return NULL;
    char *s = fgets(buf, sizeof(buf), f) != NULL ? strndup(buf, strcspn(buf, "\r\n")) : NULL;
    fclose(f);
    return s;
}

gw_anchors *gw_integrity_anchors_start(const gw_conf *c, char **err)
{
    const gw_conf_anchor *an = &c->journal.anchor;
    *err = NULL;
    if (an->kind == 0)
        return NULL;
    char *password = NULL;
    if (an->redis_password_file != NULL &&
        (password = first_line(an->redis_password_file)) == NULL) {
        if (asprintf(err, "journal.anchor.redis.password_file: cannot read %s",
                     an->redis_password_file) < 0)
            *err = NULL;
        return NULL;
    }
    gw_anchor_opts o = {.kind = (gw_anchor_kind)an->kind,
                        .redis_host = an->redis_host,
                        .redis_port = an->redis_port,
                        .redis_key = an->redis_key,
                        .redis_password = password,
                        .url = an->url,
                        .ca_file = an->ca_file,
                        .command = an->command,
                        .timeout_ms = an->timeout_ms,
                        .retry_s = an->retry_s};
    gw_anchors *a = gw_anchors_start(&o, err);
    if (password != NULL) {
        memset(password, 0, strlen(password));
        free(password);
    }
    return a;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

int gw_integrity_anchor_head(const char *src, const gw_conf *c, const char *const *files,
                             size_t nfiles, uint64_t *seq, char hash[65], uint64_t *count)
{
    char **lines = NULL;
    size_t n = 0;
    char err[256];
    *seq = 0;
    *count = 0;
    hash[0] = '\0';
    if (strcmp(src, "redis") == 0) {
        const gw_conf_anchor *an = c != NULL ? &c->journal.anchor : NULL;
        if (an == NULL || an->kind != GW_ANCHOR_REDIS) {
            fprintf(stderr, "--anchors redis: needs -c FILE with journal.anchor.redis\n");
            return -1;
        }
        char *password =
            an->redis_password_file != NULL ? first_line(an->redis_password_file) : NULL;
        gw_anchor_opts o = {.kind = GW_ANCHOR_REDIS,
                            .redis_host = an->redis_host,
                            .redis_port = an->redis_port,
                            .redis_key = an->redis_key,
                            .redis_password = password,
                            .timeout_ms = an->timeout_ms};
        int r = gw_anchor_redis_read(&o, &lines, &n, err, sizeof(err));
        free(password);
        if (r != 0) {
            fprintf(stderr, "--anchors redis: %s\n", err);
            return -1;
        }
    } else {
        FILE *f = fopen(src, "r");
        char *line = NULL;
        size_t cap = 0, lcap = 0;
        ssize_t len;
        if (f == NULL) {
            fprintf(stderr, "--anchors %s: cannot read\n", src);
            return -1;
        }
        while ((len = getline(&line, &cap, f)) > 0) {
            if (n == lcap) {
                char **nl = realloc(lines, (lcap = lcap ? 2 * lcap : 64) * sizeof(char *));
                if (nl == NULL)
                    break;
                lines = nl;
            }
            lines[n++] = strndup(line, (size_t)len);
        }
        free(line);
        fclose(f);
    }
    for (size_t i = 0; i < n; i++) {
        json_t *o = lines[i] != NULL ? json_loads(lines[i], 0, NULL) : NULL;
        const char *j = json_string_value(json_object_get(o, "journal"));
        const char *h = json_string_value(json_object_get(o, "hash"));
        json_t *s = json_object_get(o, "seq");
        int mine = 0;
        for (size_t k = 0; j != NULL && k < nfiles && !mine; k++)
            mine = strcmp(j, files[k]) == 0 || strcmp(base_name(j), base_name(files[k])) == 0;
        if (mine && h != NULL && strlen(h) == 64 && json_is_integer(s) &&
            json_integer_value(s) > 0) {
            (*count)++;
            if ((uint64_t)json_integer_value(s) > *seq) {
                *seq = (uint64_t)json_integer_value(s);
                memcpy(hash, h, 65);
            }
        }
        json_decref(o);
        free(lines[i]);
    }
    free(lines);
    return *count > 0 ? 0 : 1;
}
