/* Unit tests for gateway/conf/conf.c: a full config read back value by value,
 * the defaults, and a table of bad configs with their exact messages. Every
 * fixture lives in a mkdtemp directory made for the test. */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "conf/conf.h"
#include "lib/util.h"

#include "../common.h"

static char tmp_root[PATH_MAX]; /* %T: canonical temp dir */
static char conf_dir[PATH_MAX]; /* %D: %T/deploy/sandbox, where the configs go */

/* ---- fixture files ---- */

static void write_file(const char *rel, const char *text)
{
    char *p = gw_test_path(conf_dir, rel);
    gw_test_write(p, text);
    free(p);
}

static void mkdir_in(const char *base, const char *rel)
{
    char *p = gw_test_path(base, rel);
    gw_test_mkdir(p);
    free(p);
}

static void setup(void)
{
    gw_test_mkdtemp(tmp_root, "conf");
    mkdir_in(tmp_root, "policies");
    mkdir_in(tmp_root, "deploy");
    mkdir_in(tmp_root, "deploy/sandbox");
    ck_assert_int_lt(snprintf(conf_dir, sizeof(conf_dir), "%.200s/deploy/sandbox", tmp_root),
                     (int)sizeof(conf_dir));
    mkdir_in(conf_dir, "pki");
    mkdir_in(conf_dir, "journal");
    static const char *const files[] = {"pki/server-ecdsa.crt", "pki/server-ecdsa.key",
                                        "pki/server-rsa.crt",   "pki/server-rsa.key",
                                        "pki/ca.crt",           "pki/crl.pem",
                                        "pki/up-ca.crt",        "pki/up.crt",
                                        "pki/up.key",           NULL};
    for (size_t i = 0; files[i] != NULL; i++)
        write_file(files[i], "not parsed by the loader\n");
    write_file("admin.token", "s3cr3t\n");
    write_file("pki/admin.token", "s3cr3t\n"); /* where pki.sh writes it (the sandbox config) */
    write_file("empty.token", " \n");
    write_file("lea.token", "lea-token\n");
    write_file("marc.token", "marc-token\n");
    write_file("same-as-admin.token", "s3cr3t\n");
}

static void teardown(void)
{
    gw_test_rmtree(tmp_root);
}

/* <s> with %T, %D and %F (the config file <file>) replaced. Caller frees. */
static char *subst(const char *s, const char *file)
{
    size_t cap = strlen(s) * 2 + 3 * PATH_MAX + 1;
    char *out = malloc(cap), *o = out;
    ck_assert_ptr_nonnull(out);
    while (*s != '\0') {
        const char *rep = NULL;
        if (s[0] == '%' && s[1] == 'T')
            rep = tmp_root;
        else if (s[0] == '%' && s[1] == 'D')
            rep = conf_dir;
        else if (s[0] == '%' && s[1] == 'F')
            rep = file;
        if (rep != NULL) {
            size_t n = strlen(rep);
            ck_assert_uint_lt((size_t)(o - out) + n, cap);
            memcpy(o, rep, n);
            o += n;
            s += 2;
        } else {
            ck_assert_uint_lt((size_t)(o - out) + 1, cap);
            *o++ = *s++;
        }
    }
    *o = '\0';
    return out;
}

/* Write <text> (after subst) as %D/<name>; returns its absolute path. */
static char *put_config(const char *name, const char *text)
{
    char *path = NULL;
    ck_assert_int_ge(asprintf(&path, "%s/%s", conf_dir, name), 0);
    char *t = subst(text, path);
    write_file(name, t);
    free(t);
    return path;
}

/* ---- the configs ---- */

/* Every key set, most to a non-default value. */
static const char base_conf[] =
    "{\n"
    "  \"workers\": 2,\n"
    "  \"policies_dir\": \"../../policies\",\n"
    "  \"listeners\": [\n"
    "    {\"name\": \"public-sandbox\", \"address\": \"127.0.0.1\", \"port\": 8443,\n"
    "     \"environment\": \"sandbox\",\n"
    "     \"tls\": {\"certificates\": [{\"cert\": \"pki/server-ecdsa.crt\",\n"
    "                                   \"key\": \"pki/server-ecdsa.key\"},\n"
    "                                  {\"cert\": \"./pki/server-rsa.crt\",\n"
    "                                   \"key\": \"%D/pki/server-rsa.key\"}],\n"
    "             \"client_ca\": \"pki/ca.crt\", \"crl\": \"pki/crl.pem\",\n"
    "             \"client_auth\": \"required\", \"session_tickets\": false}},\n"
    "    {\"name\": \"prod.v6\", \"address\": \"::1\", \"port\": 8444,\n"
    "     \"environment\": \"production\",\n"
    "     \"tls\": {\"certificates\": [{\"cert\": \"pki/server-rsa.crt\",\n"
    "                                   \"key\": \"pki/server-rsa.key\"}],\n"
    "             \"client_auth\": \"none\"}}\n"
    "  ],\n"
    "  \"upstreams\": [\n"
    "    {\"name\": \"opale\", \"servers\": [\"127.0.0.1:9080\", \"[::1]:9081\"]},\n"
    "    {\"name\": \"secure\", \"servers\": [\"10.1.2.3:443\"],\n"
    "     \"tls\": {\"ca\": \"pki/up-ca.crt\", \"cert\": \"pki/up.crt\", \"key\": \"pki/up.key\",\n"
    "             \"server_name\": \"opale.internal\"},\n"
    "     \"pool_size\": 0, \"max_connections\": 48, \"queue_timeout_ms\": 700,\n"
    "     \"connect_timeout_ms\": 1500, \"response_timeout_ms\": 7000,\n"
    "     \"max_response_bytes\": 1048576}\n"
    "  ],\n"
    "  \"routes\": [\n"
    "    {\"name\": \"etatSante\", \"method\": \"GET\", \"path\": \"/opale/v1/etatSante\",\n"
    "     \"upstream\": \"opale\", \"scope\": null},\n"
    "    {\"name\": \"declarations\", \"method\": \"GET\",\n"
    "     \"path\": \"/opale/v1/entreprises/{siren}/declarations\", \"upstream\": \"opale\",\n"
    "     \"scope\": \"api_opale_declarations\", \"year_bound\": true,\n"
    "     \"max_response_bytes\": 65536},\n"
    "    {\"method\": \"HEAD\", \"path\": \"/opale/v1/etatSante\", \"upstream\": \"secure\",\n"
    "     \"year_bound\": false, \"quota\": false},\n"
    "    {\"name\": \"token\", \"method\": \"POST\", \"path\": \"/token\", \"upstream\": "
    "\"secure\",\n"
    "     \"query\": [{\"name\": \"page\", \"syntax\": \"digits\"},\n"
    "               {\"name\": \"annee\", \"syntax\": \"year\", \"required\": true}],\n"
    "     \"headers\": [\"X-Extra\"], \"max_body_bytes\": 512}\n"
    "  ],\n"
    "  \"limits\": {\"max_header_bytes\": 8192, \"max_headers\": 50, \"max_body_bytes\": 4096,\n"
    "             \"max_connections\": 500, \"max_pipeline_bytes\": 1024,\n"
    "             \"max_buffered_response_bytes\": 1048576, \"listen_backlog\": 2048},\n"
    "  \"timeouts\": {\"handshake_ms\": 1001, \"header_ms\": 1002, \"body_ms\": 1003,\n"
    "               \"keepalive_ms\": 1004, \"send_ms\": 1005, \"drain_ms\": 1006,\n"
    "               \"dormant_ms\": 0},\n"
    "  \"journal\": {\"path\": \"journal/access.jsonl\", \"queue_size\": 1024, \"sync_ms\": 250},\n"
    "  \"admin\": {\"address\": \"::1\", \"port\": 9901, \"token_file\": \"admin.token\"}\n"
    "}\n";

/* Only what is required. */
static const char min_conf[] =
    "{\"listeners\": [{\"name\": \"l\", \"address\": \"0.0.0.0\", \"port\": 443,\n"
    "                  \"environment\": \"production\",\n"
    "                  \"tls\": {\"certificates\": [{\"cert\": \"pki/server-rsa.crt\",\n"
    "                                             \"key\": \"pki/server-rsa.key\"}],\n"
    "                          \"client_ca\": \"pki/ca.crt\"}}],\n"
    " \"upstreams\": [{\"name\": \"u\", \"servers\": [\"192.0.2.1:80\"]}],\n"
    " \"routes\": [{\"method\": \"GET\", \"path\": \"/a/{x}\", \"upstream\": \"u\"}],\n"
    " \"journal\": {\"path\": \"/tmp/j.jsonl\"}}\n";

static long online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : n;
}

static void assert_path(const char *got, const char *want_tmpl)
{
    char *want = subst(want_tmpl, "");
    ck_assert_ptr_nonnull(got);
    ck_assert_str_eq(got, want);
    free(want);
}

START_TEST(t_good)
{
    gw_errlist errs = {0};
    char *path = put_config("gw.json", base_conf);
    gw_conf *c = gw_conf_load(path, &errs);
    ck_assert_msg(c != NULL, "first error: %s", errs.n ? errs.msgs[0] : "(none)");
    ck_assert_uint_eq(errs.n, 0);
    ck_assert_uint_eq(errs.dropped, 0);

    ck_assert_str_eq(c->path, path);
    assert_path(c->dir, "%D");
    ck_assert_uint_eq(c->workers, 2);
    assert_path(c->policies_dir, "%T/policies");

    ck_assert_uint_eq(c->nlisteners, 2);
    const gw_conf_listener *l = &c->listeners[0];
    ck_assert_str_eq(l->name, "public-sandbox");
    ck_assert_str_eq(l->address, "127.0.0.1");
    ck_assert_uint_eq(l->port, 8443);
    ck_assert_int_eq(l->env, GW_ENV_SANDBOX);
    ck_assert_uint_eq(l->ncerts, 2);
    assert_path(l->certs[0].cert, "%D/pki/server-ecdsa.crt");
    assert_path(l->certs[0].key, "%D/pki/server-ecdsa.key");
    assert_path(l->certs[1].cert, "%D/pki/server-rsa.crt");
    assert_path(l->certs[1].key, "%D/pki/server-rsa.key");
    assert_path(l->client_ca, "%D/pki/ca.crt");
    assert_path(l->crl, "%D/pki/crl.pem");
    ck_assert_int_eq(l->client_auth, GW_CLIENT_AUTH_REQUIRED);
    ck_assert_int_eq(l->session_tickets, 0);
    ck_assert_int_eq(l->access_off, 0);
    l = &c->listeners[1];
    ck_assert_str_eq(l->name, "prod.v6");
    ck_assert_str_eq(l->address, "::1");
    ck_assert_uint_eq(l->port, 8444);
    ck_assert_int_eq(l->env, GW_ENV_PRODUCTION);
    ck_assert_uint_eq(l->ncerts, 1);
    assert_path(l->certs[0].cert, "%D/pki/server-rsa.crt");
    ck_assert_ptr_null(l->client_ca);
    ck_assert_ptr_null(l->crl);
    ck_assert_int_eq(l->client_auth, GW_CLIENT_AUTH_NONE);
    ck_assert_int_eq(l->session_tickets, 1);
    ck_assert_int_eq(l->access_off, 0);

    ck_assert_uint_eq(c->nupstreams, 2);
    const gw_conf_upstream *u = &c->upstreams[0];
    ck_assert_str_eq(u->name, "opale");
    ck_assert_uint_eq(u->nservers, 2);
    ck_assert_str_eq(u->servers[0].host, "127.0.0.1");
    ck_assert_uint_eq(u->servers[0].port, 9080);
    ck_assert_str_eq(u->servers[1].host, "::1");
    ck_assert_uint_eq(u->servers[1].port, 9081);
    ck_assert_int_eq(u->tls, 0);
    ck_assert_ptr_null(u->tls_ca);
    ck_assert_ptr_null(u->tls_cert);
    ck_assert_ptr_null(u->tls_key);
    ck_assert_ptr_null(u->tls_server_name);
    ck_assert_uint_eq(u->pool_size, 32);
    ck_assert_uint_eq(u->max_connections, 0);
    ck_assert_uint_eq(u->queue_timeout_ms, 2000);
    ck_assert_uint_eq(u->connect_timeout_ms, 2000);
    ck_assert_uint_eq(u->response_timeout_ms, 10000);
    ck_assert_uint_eq(u->max_response_bytes, 8388608);
    u = &c->upstreams[1];
    ck_assert_str_eq(u->name, "secure");
    ck_assert_uint_eq(u->nservers, 1);
    ck_assert_str_eq(u->servers[0].host, "10.1.2.3");
    ck_assert_uint_eq(u->servers[0].port, 443);
    ck_assert_int_eq(u->tls, 1);
    assert_path(u->tls_ca, "%D/pki/up-ca.crt");
    assert_path(u->tls_cert, "%D/pki/up.crt");
    assert_path(u->tls_key, "%D/pki/up.key");
    ck_assert_str_eq(u->tls_server_name, "opale.internal");
    ck_assert_uint_eq(u->pool_size, 0);
    ck_assert_uint_eq(u->max_connections, 48);
    ck_assert_uint_eq(u->queue_timeout_ms, 700);
    ck_assert_uint_eq(u->connect_timeout_ms, 1500);
    ck_assert_uint_eq(u->response_timeout_ms, 7000);
    ck_assert_uint_eq(u->max_response_bytes, 1048576);
    ck_assert_ptr_eq(gw_conf_find_upstream(c, "secure"), &c->upstreams[1]);
    ck_assert_ptr_eq(gw_conf_find_upstream(c, "opale"), &c->upstreams[0]);
    ck_assert_ptr_null(gw_conf_find_upstream(c, "Opale"));
    ck_assert_ptr_null(gw_conf_find_upstream(c, NULL));

    ck_assert_uint_eq(c->routes.n, 4);
    const gw_route *r = &c->routes.routes[0];
    ck_assert_str_eq(r->name, "etatSante");
    ck_assert_str_eq(r->method, "GET");
    ck_assert_str_eq(r->path, "/opale/v1/etatSante");
    ck_assert_str_eq(r->upstream, "opale");
    ck_assert_uint_eq(r->upstream_idx, 0);
    ck_assert_ptr_null(r->scope);
    ck_assert_int_eq(r->year_bound, 0);
    ck_assert_int_eq(r->no_quota, 0); /* counted by default */
    ck_assert_int_eq(c->routes.routes[2].no_quota, 1);
    ck_assert_uint_eq(r->nsegs, 3);
    r = &c->routes.routes[1];
    ck_assert_str_eq(r->name, "declarations");
    ck_assert_str_eq(r->path, "/opale/v1/entreprises/{siren}/declarations");
    ck_assert_str_eq(r->scope, "api_opale_declarations");
    ck_assert_int_eq(r->year_bound, 1);
    /* year_bound declares annee (year, required) */
    ck_assert_uint_eq(r->nquery, 1);
    ck_assert_str_eq(r->query[0].name, "annee");
    ck_assert_int_eq(r->query[0].syntax, GW_QSYN_YEAR);
    ck_assert_int_eq(r->query[0].required, 1);
    ck_assert_uint_eq(r->max_body_bytes, 0);
    ck_assert_uint_eq(r->nheaders, 0);
    ck_assert_uint_eq(r->nsegs, 5);
    ck_assert_ptr_null(r->segs[3]);
    ck_assert_str_eq(r->params[3], "siren");
    ck_assert_str_eq(r->segs[4], "declarations");
    r = &c->routes.routes[2];
    ck_assert_str_eq(r->name, "/opale/v1/etatSante"); /* defaults to the path */
    ck_assert_str_eq(r->method, "HEAD");
    ck_assert_str_eq(r->upstream, "secure");
    ck_assert_uint_eq(r->upstream_idx, 1);
    r = &c->routes.routes[3];
    ck_assert_str_eq(r->name, "token");
    ck_assert_str_eq(r->method, "POST");
    ck_assert_uint_eq(r->upstream_idx, 1);
    ck_assert_uint_eq(r->nquery, 2);
    ck_assert_str_eq(r->query[0].name, "page");
    ck_assert_int_eq(r->query[0].syntax, GW_QSYN_DIGITS);
    ck_assert_int_eq(r->query[0].required, 0);
    ck_assert_str_eq(r->query[1].name, "annee");
    ck_assert_int_eq(r->query[1].required, 1);
    ck_assert_uint_eq(r->nheaders, 1);
    ck_assert_str_eq(r->headers[0], "X-Extra");
    ck_assert_uint_eq(r->max_body_bytes, 512);

    ck_assert_uint_eq(c->limits.max_header_bytes, 8192);
    ck_assert_uint_eq(c->limits.max_headers, 50);
    ck_assert_uint_eq(c->limits.max_body_bytes, 4096);
    ck_assert_uint_eq(c->limits.max_connections, 500);
    ck_assert_uint_eq(c->limits.max_pipeline_bytes, 1024);
    ck_assert_uint_eq(c->limits.max_buffered_response_bytes, 1048576);
    ck_assert_uint_eq(c->limits.listen_backlog, 2048);
    ck_assert_uint_eq(c->routes.routes[1].max_response_bytes, 65536);
    ck_assert_uint_eq(c->routes.routes[0].max_response_bytes, 4u << 20);
    ck_assert_uint_eq(c->timeouts.handshake_ms, 1001);
    ck_assert_uint_eq(c->timeouts.header_ms, 1002);
    ck_assert_uint_eq(c->timeouts.body_ms, 1003);
    ck_assert_uint_eq(c->timeouts.keepalive_ms, 1004);
    ck_assert_uint_eq(c->timeouts.send_ms, 1005);
    ck_assert_uint_eq(c->timeouts.drain_ms, 1006);
    ck_assert_uint_eq(c->timeouts.dormant_ms, 0);
    assert_path(c->journal.path, "%D/journal/access.jsonl");
    ck_assert_uint_eq(c->journal.queue_size, 1024);
    ck_assert_uint_eq(c->journal.sync_ms, 250);
    ck_assert_int_eq(c->admin.enabled, 1);
    ck_assert_str_eq(c->admin.address, "::1");
    ck_assert_uint_eq(c->admin.port, 9901);
    assert_path(c->admin.token_file, "%D/admin.token");

    /* The routes are usable as a table. */
    gw_route_match m;
    const char *p = "/opale/v1/entreprises/123456789/declarations";
    ck_assert_int_eq(gw_route_match_path(&c->routes, "GET", p, strlen(p), &m), GW_ROUTE_FOUND);
    ck_assert_ptr_eq(m.route, &c->routes.routes[1]);

    gw_conf_free(c);
    gw_errlist_clear(&errs);
    free(path);
}
END_TEST

START_TEST(t_defaults)
{
    gw_errlist errs = {0};
    char *path = put_config("min.json", min_conf);
    gw_conf *c = gw_conf_load(path, &errs);
    ck_assert_msg(c != NULL, "first error: %s", errs.n ? errs.msgs[0] : "(none)");
    ck_assert_uint_eq(c->workers, (unsigned)online_cpus());
    ck_assert_ptr_null(c->policies_dir);
    ck_assert_int_eq(c->listeners[0].client_auth, GW_CLIENT_AUTH_REQUIRED);
    ck_assert_int_eq(c->listeners[0].session_tickets, 1);
    ck_assert_int_eq(c->listeners[0].env, GW_ENV_PRODUCTION);
    ck_assert_ptr_null(c->listeners[0].crl);
    /* HTTP/2 on by default, with the bounds of docs/security.md */
    const gw_conf_http2 *h2 = &c->listeners[0].http2;
    ck_assert_int_eq(h2->enabled, 1);
    ck_assert_uint_eq(h2->max_concurrent_streams, 100);
    ck_assert_uint_eq(h2->max_header_list_bytes, 32768);
    ck_assert_uint_eq(h2->initial_window_bytes, 65535);
    ck_assert_uint_eq(h2->max_resets_per_s, 100);
    ck_assert_uint_eq(h2->max_control_frames_per_s, 100);
    ck_assert_uint_eq(h2->max_empty_frames_per_s, 100);
    ck_assert_uint_eq(h2->max_continuation_frames, 16);
    ck_assert_uint_eq(h2->stall_ms, 10000);
    const gw_conf_upstream *u = &c->upstreams[0];
    ck_assert_int_eq(u->tls, 0);
    ck_assert_uint_eq(u->pool_size, 32);
    ck_assert_uint_eq(u->connect_timeout_ms, 2000);
    ck_assert_uint_eq(u->response_timeout_ms, 10000);
    ck_assert_uint_eq(u->max_response_bytes, 8u << 20);
    const gw_route *r = &c->routes.routes[0];
    ck_assert_str_eq(r->name, "/a/{x}");
    ck_assert_ptr_null(r->scope);
    ck_assert_int_eq(r->year_bound, 0);
    ck_assert_uint_eq(r->upstream_idx, 0);
    ck_assert_uint_eq(c->limits.max_header_bytes, 16384);
    ck_assert_uint_eq(c->limits.max_headers, 100);
    ck_assert_uint_eq(c->limits.max_body_bytes, 1048576);
    ck_assert_uint_eq(c->limits.max_connections, 10000);
    ck_assert_uint_eq(c->limits.max_pipeline_bytes, 65536);
    ck_assert_uint_eq(c->limits.max_buffered_response_bytes, 64u << 20);
    ck_assert_uint_eq(c->limits.listen_backlog, 4096);
    ck_assert_uint_eq(r->max_response_bytes, 4u << 20);
    ck_assert_uint_eq(c->timeouts.handshake_ms, 10000);
    ck_assert_uint_eq(c->timeouts.header_ms, 10000);
    ck_assert_uint_eq(c->timeouts.body_ms, 30000);
    ck_assert_uint_eq(c->timeouts.keepalive_ms, 60000);
    ck_assert_uint_eq(c->timeouts.send_ms, 30000);
    ck_assert_uint_eq(c->timeouts.drain_ms, 30000);
    ck_assert_uint_eq(c->timeouts.dormant_ms, 1000);
    ck_assert_str_eq(c->journal.path, "/tmp/j.jsonl"); /* absolute stays as written */
    ck_assert_uint_eq(c->journal.queue_size, 65536);
    ck_assert_uint_eq(c->journal.sync_ms, 1000);
    ck_assert_uint_eq(c->journal.batch_ms, 2);
    ck_assert_int_eq(c->admin.enabled, 0);
    ck_assert_ptr_null(c->admin.address);
    ck_assert_ptr_null(c->admin.token_file);
    gw_conf_free(c);
    free(path);
}
END_TEST

/* workers: 0 means the CPU count too; admin.address defaults to 127.0.0.1. */
START_TEST(t_workers_zero_admin_default)
{
    gw_errlist errs = {0};
    char *path = put_config("w.json", base_conf);
    json_t *root = json_load_file(path, 0, NULL);
    ck_assert_ptr_nonnull(root);
    json_object_set_new(root, "workers", json_integer(0));
    json_object_del(json_object_get(root, "admin"), "address");
    ck_assert_int_eq(json_dump_file(root, path, 0), 0);
    json_decref(root);
    gw_conf *c = gw_conf_load(path, &errs);
    ck_assert_msg(c != NULL, "first error: %s", errs.n ? errs.msgs[0] : "(none)");
    ck_assert_uint_eq(c->workers, (unsigned)online_cpus());
    ck_assert_str_eq(c->admin.address, "127.0.0.1");
    ck_assert_int_eq(c->admin.enabled, 1);
    gw_conf_free(c);
    free(path);
}
END_TEST

/* admin.operators without admin.token_file: named operators only. */
START_TEST(t_admin_operators)
{
    gw_errlist errs = {0};
    char *path = put_config("ops.json", base_conf);
    json_t *root = json_load_file(path, 0, NULL);
    ck_assert_ptr_nonnull(root);
    json_t *admin = json_object_get(root, "admin");
    json_object_del(admin, "token_file");
    json_object_set_new(admin, "operators",
                        json_pack("[{s:s,s:s,s:s},{s:s,s:s,s:s}]", "name", "lea.read", "token_file",
                                  "lea.token", "role", "read", "name", "marc_ops-1", "token_file",
                                  "marc.token", "role", "operator"));
    ck_assert_int_eq(json_dump_file(root, path, 0), 0);
    json_decref(root);
    gw_conf *c = gw_conf_load(path, &errs);
    ck_assert_msg(c != NULL, "first error: %s", errs.n ? errs.msgs[0] : "(none)");
    ck_assert_ptr_null(c->admin.token_file);
    ck_assert_uint_eq(c->admin.noperators, 2);
    ck_assert_str_eq(c->admin.operators[0].name, "lea.read");
    ck_assert_int_eq(c->admin.operators[0].role, GW_ROLE_READ);
    assert_path(c->admin.operators[0].token_file, "%D/lea.token");
    ck_assert_str_eq(c->admin.operators[1].name, "marc_ops-1");
    ck_assert_int_eq(c->admin.operators[1].role, GW_ROLE_OPERATOR);
    gw_conf_free(c);
    free(path);
}
END_TEST

/* ---- the bad configs ---- */

typedef struct bad_case {
    const char *raw;        /* the whole file, instead of base_conf + edits */
    const char *edit[4][2]; /* {json path, JSON value or NULL to delete} on base_conf */
    const char *want[5];    /* every expected message, in order */
} bad_case;

#define ADD_ROUTE(spec)                                                                            \
    {                                                                                              \
        "routes[4]", spec                                                                          \
    }

static const bad_case bad[] = {
    /* unknown keys, at several depths */
    {NULL, {{"foo", "1"}}, {"%F: foo: unknown key"}},
    {NULL, {{"listeners[0].tls.foo", "true"}}, {"%F: listeners[0].tls.foo: unknown key"}},
    {NULL,
     {{"listeners[0].tls.certificates[1].pem", "\"x\""}},
     {"%F: listeners[0].tls.certificates[1].pem: unknown key"}},
    {NULL, {{"upstreams[1].tls.verify", "false"}}, {"%F: upstreams[1].tls.verify: unknown key"}},
    {NULL, {{"limits.max_header", "1"}}, {"%F: limits.max_header: unknown key"}},
    {NULL, {{"routes[2].Scope", "null"}}, {"%F: routes[2].Scope: unknown key"}},
    {NULL, {{"admin.bind", "\"127.0.0.1\""}}, {"%F: admin.bind: unknown key"}},
    {NULL, {{"listeners[0].http2", "{\"foo\": 1}"}}, {"%F: listeners[0].http2.foo: unknown key"}},
    {NULL, {{"listeners[0].http2", "true"}}, {"%F: listeners[0].http2: must be an object"}},
    {NULL,
     {{"listeners[0].http2", "{\"enabled\": \"yes\"}"}},
     {"%F: listeners[0].http2.enabled: must be a boolean"}},
    {NULL,
     {{"listeners[0].http2", "{\"max_concurrent_streams\": 0}"}},
     {"%F: listeners[0].http2.max_concurrent_streams: must be between 1 and 10000"}},
    {NULL,
     {{"listeners[0].http2", "{\"stall_ms\": 99}"}},
     {"%F: listeners[0].http2.stall_ms: must be between 100 and 3600000"}},
    {NULL, {{"bad\\u001bkey", "1"}}, {"%F: bad?key: unknown key"}}, /* never echoed raw */
    /* revocation (issue 19): CRL refresh, OCSP, stapling */
    {NULL,
     {{"listeners[0].tls.ocsp", "{\"mode\": \"strict\"}"}},
     {"%F: listeners[0].tls.ocsp.mode: must be \"off\", \"soft\" or \"hard\""}},
    {NULL,
     {{"listeners[0].tls.ocsp", "{\"responder\": \"https://ocsp.example\"}"}},
     {"%F: listeners[0].tls.ocsp.responder: must be an http:// URL"}},
    {NULL,
     {{"listeners[0].tls.ocsp", "{\"refresh_s\": 1}"}},
     {"%F: listeners[0].tls.ocsp.refresh_s: must be between 5 and 86400"}},
    {NULL,
     {{"listeners[0].tls.ocsp", "{\"certificates_dir\": \"nowhere\"}"}},
     {"%F: listeners[0].tls.ocsp.certificates_dir: cannot read \"%D/nowhere\": not a directory"}},
    {NULL,
     {{"listeners[0].tls.ocsp", "{\"nonce\": 1}"}},
     {"%F: listeners[0].tls.ocsp.nonce: must be a boolean"}},
    {NULL,
     {{"listeners[0].tls.crl_refresh", "{\"grace\": 5}"}},
     {"%F: listeners[0].tls.crl_refresh.grace: unknown key"}},
    {NULL,
     {{"listeners[0].tls.crl_refresh", "{\"poll_s\": 1}"}, {"listeners[0].tls.crl", NULL}},
     {"%F: listeners[0].tls.crl_refresh: needs \"crl\" (a file) or \"url\""}},
    {NULL,
     {{"listeners[0].tls.stapling", "{\"issuer\": \"pki\"}"}},
     {"%F: listeners[0].tls.stapling.issuer: cannot read \"%D/pki\": not a regular file"}},
    {NULL,
     {{"listeners[0].tls.stapling", "true"}},
     {"%F: listeners[0].tls.stapling: must be an object"}},
    /* wrong types */
    {NULL, {{"workers", "\"2\""}}, {"%F: workers: must be an integer"}},
    {NULL, {{"workers", "1.5"}}, {"%F: workers: must be an integer"}},
    {NULL, {{"listeners[0].port", "\"8443\""}}, {"%F: listeners[0].port: must be an integer"}},
    {NULL, {{"listeners[0].name", "7"}}, {"%F: listeners[0].name: must be a string"}},
    {NULL,
     {{"listeners[0].tls.session_tickets", "\"yes\""}},
     {"%F: listeners[0].tls.session_tickets: must be a boolean"}},
    {NULL, {{"listeners[0].tls", "[]"}}, {"%F: listeners[0].tls: must be an object"}},
    {NULL, {{"listeners[0]", "\"x\""}}, {"%F: listeners[0]: must be an object"}},
    {NULL,
     {{"listeners[0].tls.certificates[0]", "\"pki/a.crt\""}},
     {"%F: listeners[0].tls.certificates[0]: must be an object"}},
    {NULL, {{"routes", "{}"}}, {"%F: routes: must be an array"}},
    {NULL, {{"limits", "\"x\""}}, {"%F: limits: must be an object"}},
    {NULL, {{"routes[1].scope", "5"}}, {"%F: routes[1].scope: must be a string or null"}},
    {NULL, {{"routes[1].year_bound", "\"true\""}}, {"%F: routes[1].year_bound: must be a boolean"}},
    /* a route's query, headers and body (issue 12) */
    {NULL, {{"routes[1].query", "{}"}}, {"%F: routes[1].query: must be an array"}},
    {NULL, {{"routes[1].query", "[1]"}}, {"%F: routes[1].query[0]: must be an object"}},
    {NULL,
     {{"routes[1].query", "[{\"name\": \"Annee\", \"syntax\": \"year\"}]"}},
     {"%F: routes[1].query[0].name: must be 1 to 32 characters of a-z, 0-9, '_', starting with "
      "a letter"}},
    {NULL,
     {{"routes[1].query", "[{\"name\": \"x\", \"syntax\": \"any\"}]"}},
     {"%F: routes[1].query[0].syntax: must be one of year, digits, token"}},
    {NULL,
     {{"routes[1].query", "[{\"name\": \"x\", \"syntax\": \"token\"}, {\"name\": \"x\", "
                          "\"syntax\": \"digits\"}]"}},
     {"%F: routes[1].query[1].name: duplicate parameter \"x\""}},
    {NULL,
     {{"routes[1].query", "[{\"name\": \"x\", \"syntax\": \"token\", \"extra\": 1}]"}},
     {"%F: routes[1].query[0].extra: unknown key"}},
    {NULL,
     {{"routes[1].query", "[{\"name\": \"annee\", \"syntax\": \"year\"}]"}},
     {"%F: routes[1].query: annee must be a required year on a year_bound route"}},
    {NULL,
     {{"routes[2].query", "[{\"name\": \"annee\", \"syntax\": \"digits\"}]"}},
     {"%F: routes[2].query[0].syntax: annee must be a year (the rights stage checks it against "
      "the granted years)"}},
    {NULL,
     {{"routes[1].headers", "[\"X_Extra\"]"}},
     {"%F: routes[1].headers[0]: must be a header name of 1 to 64 characters of A-Z, a-z, 0-9, "
      "'-'"}},
    {NULL,
     {{"routes[1].headers", "[\"Authorization\"]"}},
     {"%F: routes[1].headers[0]: set or removed by the gateway, cannot be forwarded"}},
    {NULL,
     {{"routes[1].headers", "[\"proxy-foo\"]"}},
     {"%F: routes[1].headers[0]: set or removed by the gateway, cannot be forwarded"}},
    {NULL,
     {{"routes[1].max_body_bytes", "-1"}},
     {"%F: routes[1].max_body_bytes: must be between 0 and 67108864"}},
    {NULL, {{"routes[1].quota", "1"}}, {"%F: routes[1].quota: must be a boolean"}},
    {NULL,
     {{"upstreams[0].servers[0]", "9080"}},
     {"%F: upstreams[0].servers[0]: must be a string"}},
    /* missing required keys */
    {NULL, {{"listeners", NULL}}, {"%F: $: missing key \"listeners\""}},
    {NULL, {{"journal", NULL}}, {"%F: $: missing key \"journal\""}},
    {NULL, {{"listeners[0].port", NULL}}, {"%F: listeners[0]: missing key \"port\""}},
    {NULL,
     {{"listeners[0].tls.certificates[0].key", NULL}},
     {"%F: listeners[0].tls.certificates[0]: missing key \"key\""}},
    {NULL, {{"routes[0].method", NULL}}, {"%F: routes[0]: missing key \"method\""}},
    {NULL, {{"routes[0].upstream", NULL}}, {"%F: routes[0]: missing key \"upstream\""}},
    {NULL, {{"admin.token_file", NULL}}, {"%F: admin: missing key \"token_file\""}},
    {NULL, {{"admin.port", NULL}}, {"%F: admin: missing key \"port\""}},
    {NULL, {{"journal.path", NULL}}, {"%F: journal: missing key \"path\""}},
    {NULL,
     {{"listeners[0].tls.client_ca", NULL}},
     {"%F: listeners[0].tls: missing key \"client_ca\" (required when client_auth is "
      "\"required\")"}},
    {NULL,
     {{"listeners[0].tls.client_ca", NULL}, {"listeners[0].tls.client_auth", NULL}},
     {"%F: listeners[0].tls: missing key \"client_ca\" (required when client_auth is "
      "\"required\")"}},
    {NULL, {{"upstreams[1].tls.ca", NULL}}, {"%F: upstreams[1].tls: missing key \"ca\""}},
    {NULL,
     {{"upstreams[1].tls.key", NULL}},
     {"%F: upstreams[1].tls: missing key \"key\" (required with \"cert\")"}},
    {NULL,
     {{"upstreams[1].tls.cert", NULL}},
     {"%F: upstreams[1].tls: missing key \"cert\" (required with \"key\")"}},
    /* counts and ranges */
    {NULL, {{"listeners", "[]"}}, {"%F: listeners: must have between 1 and 16 entries"}},
    {NULL,
     {{"listeners[0].tls.certificates", "[]"}},
     {"%F: listeners[0].tls.certificates: must have between 1 and 4 entries"}},
    {NULL,
     {{"upstreams[0].servers", "[]"}},
     {"%F: upstreams[0].servers: must have between 1 and 16 entries"}},
    {NULL,
     {{"limits.max_buffered_response_bytes", "1024"}},
     {"%F: limits.max_buffered_response_bytes: must be between 65536 and 4294967296"}},
    {NULL,
     {{"routes[0].max_response_bytes", "0"}},
     {"%F: routes[0].max_response_bytes: must be between 1 and 1073741824"}},
    {NULL, {{"workers", "65"}}, {"%F: workers: must be between 0 and 64"}},
    {NULL, {{"workers", "-1"}}, {"%F: workers: must be between 0 and 64"}},
    {NULL, {{"listeners[0].port", "0"}}, {"%F: listeners[0].port: must be between 1 and 65535"}},
    {NULL,
     {{"listeners[0].port", "65536"}},
     {"%F: listeners[0].port: must be between 1 and 65535"}},
    {NULL,
     {{"upstreams[0].pool_size", "4097"}},
     {"%F: upstreams[0].pool_size: must be between 0 and 4096"}},
    {NULL,
     {{"upstreams[0].max_connections", "8"}},
     {"%F: upstreams[0].max_connections: must be 0 (no limit) or at least pool_size (32)"}},
    {NULL,
     {{"upstreams[0].max_connections", "100001"}},
     {"%F: upstreams[0].max_connections: must be between 0 and 100000"}},
    {NULL,
     {{"upstreams[0].queue_timeout_ms", "0"}},
     {"%F: upstreams[0].queue_timeout_ms: must be between 1 and 600000"}},
    {NULL,
     {{"upstreams[0].max_response_bytes", "0"}},
     {"%F: upstreams[0].max_response_bytes: must be between 1 and 1073741824"}},
    {NULL,
     {{"journal.queue_size", "0"}},
     {"%F: journal.queue_size: must be between 1 and 16777216"}},
    {NULL, {{"journal.sync_ms", "60001"}}, {"%F: journal.sync_ms: must be between 1 and 60000"}},
    {NULL, {{"journal.batch_ms", "1001"}}, {"%F: journal.batch_ms: must be between 0 and 1000"}},
    {NULL,
     {{"timeouts.header_ms", "0"}},
     {"%F: timeouts.header_ms: must be between 1 and 3600000"}},
    {NULL,
     {{"limits.max_headers", "1001"}},
     {"%F: limits.max_headers: must be between 1 and 1000"}},
    {NULL,
     {{"limits.listen_backlog", "0"}},
     {"%F: limits.listen_backlog: must be between 1 and 65535"}},
    {NULL,
     {{"limits.listen_backlog", "65536"}},
     {"%F: limits.listen_backlog: must be between 1 and 65535"}},
    {NULL,
     {{"limits.listen_backlog", "\"4096\""}},
     {"%F: limits.listen_backlog: must be an integer"}},
    /* values */
    {NULL,
     {{"listeners[0].address", "\"localhost\""}},
     {"%F: listeners[0].address: must be a numeric IPv4 or IPv6 address"}},
    {NULL,
     {{"listeners[0].address", "\"127.1\""}},
     {"%F: listeners[0].address: must be a numeric IPv4 or IPv6 address"}},
    {NULL,
     {{"listeners[0].environment", "\"prod\""}},
     {"%F: listeners[0].environment: must be \"sandbox\" or \"production\""}},
    {NULL,
     {{"listeners[0].name", "\"public sandbox\""}},
     {"%F: listeners[0].name: must match [A-Za-z0-9_.-]{1,64}"}},
    {NULL,
     {{"listeners[0].tls.client_auth", "\"optional\""}},
     {"%F: listeners[0].tls.client_auth: must be \"required\" or \"none\""}},
    /* "access": "off" only on a sandbox listener without client certificates */
    {NULL,
     {{"listeners[1].access", "\"off\""}},
     {"%F: listeners[1].access: \"off\" is only allowed on a sandbox listener"}},
    {NULL,
     {{"listeners[0].access", "\"off\""}},
     {"%F: listeners[0].access: \"off\" requires tls.client_auth \"none\" (bench only)"}},
    {NULL,
     {{"listeners[0].access", "\"off\""}, {"listeners[0].tls.client_auth", NULL}},
     {"%F: listeners[0].access: \"off\" requires tls.client_auth \"none\" (bench only)"}},
    {NULL,
     {{"listeners[1].environment", "\"sandbox\""}, {"listeners[1].access", "\"on\""}},
     {"%F: listeners[1].access: must be \"enforce\" or \"off\""}},
    {NULL, {{"listeners[0].access", "true"}}, {"%F: listeners[0].access: must be a string"}},
    {NULL,
     {{"upstreams[0].servers[0]", "\"localhost:9080\""}},
     {"%F: upstreams[0].servers[0]: must be \"IPv4:port\" or \"[IPv6]:port\""}},
    {NULL,
     {{"upstreams[0].servers[1]", "\"::1:9081\""}},
     {"%F: upstreams[0].servers[1]: must be \"IPv4:port\" or \"[IPv6]:port\""}},
    {NULL,
     {{"upstreams[0].servers[0]", "\"127.0.0.1\""}},
     {"%F: upstreams[0].servers[0]: must be \"IPv4:port\" or \"[IPv6]:port\""}},
    {NULL,
     {{"upstreams[0].servers[0]", "\"127.0.0.1:0\""}},
     {"%F: upstreams[0].servers[0]: port must be between 1 and 65535"}},
    {NULL,
     {{"upstreams[1].tls.server_name", "\"bad name\""}},
     {"%F: upstreams[1].tls.server_name: must be a host name"}},
    {NULL,
     {{"routes[0].method", "\"get\""}},
     {"%F: routes[0].method: must be one of GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS"}},
    {NULL,
     {{"routes[1].scope", "\"api opale\""}},
     {"%F: routes[1].scope: must be 1 to 128 printable ASCII characters, without space, '\"' or "
      "'\\'"}},
    {NULL,
     {{"routes[0].name", "\"opale declarations\""}},
     {"%F: routes[0].name: must be 1 to 128 printable ASCII characters, without space, '\"' or "
      "'\\'"}},
    {NULL,
     {{"routes[0].upstream", "\"nope\""}},
     {"%F: routes[0].upstream: unknown upstream \"nope\""}},
    /* route templates */
    {NULL,
     {{"routes[0].path", "\"opale/v1/etatSante\""}},
     {"%F: routes[0].path: must start with '/'"}},
    {NULL, {{"routes[0].path", "\"/opale//etatSante\""}}, {"%F: routes[0].path: empty segment"}},
    {NULL,
     {{"routes[1].path", "\"/opale/v1/entreprises/x{siren}/declarations\""}},
     {"%F: routes[1].path: parameter must be a whole segment"}},
    {NULL,
     {{"routes[1].path", "\"/opale/v1/entreprises/{Siren}/declarations\""}},
     {"%F: routes[1].path: bad parameter name"}},
    /* files and directories */
    {NULL,
     {{"listeners[0].tls.certificates[1].cert", "\"pki/missing.crt\""}},
     {"%F: listeners[0].tls.certificates[1].cert: cannot read \"%D/pki/missing.crt\": No such "
      "file or directory"}},
    {NULL,
     {{"listeners[0].tls.crl", "\"pki\""}},
     {"%F: listeners[0].tls.crl: cannot read \"%D/pki\": Is a directory"}},
    {NULL,
     {{"listeners[0].tls.client_ca", "\"\""}},
     {"%F: listeners[0].tls.client_ca: must not be empty"}},
    {NULL,
     {{"policies_dir", "\"../../nope\""}},
     {"%F: policies_dir: cannot use directory \"%T/nope\": No such file or directory"}},
    {NULL,
     {{"journal.path", "\"nodir/access.jsonl\""}},
     {"%F: journal.path: cannot use directory \"%D/nodir\": No such file or directory"}},
    {NULL, {{"journal.path", "\"journal\""}}, {"%F: journal.path: \"%D/journal\" is a directory"}},
    {NULL,
     {{"admin.token_file", "\"empty.token\""}},
     {"%F: admin.token_file: file \"%D/empty.token\" is empty"}},
    /* admin.operators (docs/console.md) */
    {NULL,
     {{"admin.operators",
       "[{\"name\": \"Lea\", \"token_file\": \"lea.token\", \"role\": \"read\"}]"}},
     {"%F: admin.operators[0].name: must match [a-z0-9._-]{1,32}"}},
    {NULL,
     {{"admin.operators",
       "[{\"name\": \"abcdefghijabcdefghijabcdefghijabc\", \"token_file\": \"lea.token\", "
       "\"role\": \"read\"}]"}},
     {"%F: admin.operators[0].name: must match [a-z0-9._-]{1,32}"}},
    {NULL,
     {{"admin.operators",
       "[{\"name\": \"lea\", \"token_file\": \"lea.token\", \"role\": \"root\"}]"}},
     {"%F: admin.operators[0].role: must be \"read\" or \"operator\""}},
    {NULL,
     {{"admin.operators",
       "[{\"name\": \"lea\", \"token_file\": \"lea.token\", \"role\": \"read\", \"x\": 1}]"}},
     {"%F: admin.operators[0].x: unknown key"}},
    {NULL,
     {{"admin.operators", "[{\"name\": \"lea\", \"role\": \"read\"}]"}},
     {"%F: admin.operators[0]: missing key \"token_file\""}},
    {NULL, {{"admin.operators", "[1]"}}, {"%F: admin.operators[0]: must be an object"}},
    {NULL,
     {{"admin.operators",
       "[{\"name\": \"admin\", \"token_file\": \"lea.token\", \"role\": \"read\"}]"}},
     {"%F: admin.operators[0].name: \"admin\" is the operator of admin.token_file"}},
    {NULL,
     {{"admin.operators",
       "[{\"name\": \"lea\", \"token_file\": \"lea.token\", \"role\": \"read\"}, "
       "{\"name\": \"lea\", \"token_file\": \"marc.token\", \"role\": \"operator\"}]"}},
     {"%F: admin.operators[1].name: duplicate of admin.operators[0].name"}},
    {NULL,
     {{"admin.operators",
       "[{\"name\": \"lea\", \"token_file\": \"lea.token\", \"role\": \"read\"}, "
       "{\"name\": \"marc\", \"token_file\": \"lea.token\", \"role\": \"operator\"}]"}},
     {"%F: admin.operators[1].token_file: the same token as admin.operators[0]"}},
    {NULL,
     {{"admin.operators",
       "[{\"name\": \"lea\", \"token_file\": \"same-as-admin.token\", \"role\": \"read\"}]"}},
     {"%F: admin.operators[0].token_file: the same token as admin.token_file"}},
    {NULL,
     {{"admin.operators",
       "[{\"name\": \"lea\", \"token_file\": \"empty.token\", \"role\": \"read\"}]"}},
     {"%F: admin.operators[0].token_file: file \"%D/empty.token\" is empty"}},
    {NULL,
     {{"admin.operators", "[]"}},
     {"%F: admin.operators: must have between 1 and 64 entries"}},
    /* admin */
    {NULL, {{"admin.address", "\"10.0.0.1\""}}, {"%F: admin.address: must be a loopback address"}},
    {NULL, {{"admin.address", "\"::\""}}, {"%F: admin.address: must be a loopback address"}},
    {NULL,
     {{"admin.address", "\"::ffff:127.0.0.1\""}},
     {"%F: admin.address: must be a loopback address"}},
    {NULL,
     {{"admin.address", "\"localhost\""}},
     {"%F: admin.address: must be a numeric IPv4 or IPv6 address"}},
    {NULL,
     {{"admin.address", "\"127.0.0.1\""}, {"admin.port", "8443"}},
     {"%F: admin: address and port already used by listeners[0]"}},
    /* uniqueness */
    {NULL,
     {{"listeners[1].name", "\"public-sandbox\""}},
     {"%F: listeners[1].name: duplicate of listeners[0].name"}},
    {NULL,
     {{"listeners[0].address", "\"0:0::1\""}, {"listeners[0].port", "8444"}},
     {"%F: listeners[1]: address and port already used by listeners[0]"}},
    {NULL,
     {{"upstreams[0].servers[1]", "\"127.0.0.1:9080\""}},
     {"%F: upstreams[0].servers[1]: duplicate of upstreams[0].servers[0]"}},
    {NULL,
     {{"upstreams[1].name", "\"opale\""}},
     {"%F: upstreams[1].name: duplicate of upstreams[0].name",
      "%F: routes[2].upstream: unknown upstream \"secure\"",
      "%F: routes[3].upstream: unknown upstream \"secure\""}},
    /* an invalid upstream name does not cascade into "unknown upstream" */
    {NULL,
     {{"upstreams[1].name", "\"sec ure\""}},
     {"%F: upstreams[1].name: must match [A-Za-z0-9_.-]{1,64}"}},
    {NULL,
     {ADD_ROUTE("{\"name\": \"dup\", \"method\": \"GET\", \"upstream\": \"opale\","
                " \"path\": \"/opale/v1/entreprises/{id}/declarations\"}")},
     {"%F: routes[4]: method and path already used by routes[1]"}},
    {NULL,
     {ADD_ROUTE("{\"name\": \"late\", \"method\": \"GET\", \"upstream\": \"opale\","
                " \"path\": \"/opale/v1/entreprises/123/declarations\"}")},
     {"%F: routes[4].path: unreachable, routes[1] matches first"}},
    {NULL,
     {{"routes[3].name", "\"declarations\""}},
     {"%F: routes[3].name: duplicate of routes[1].name"}},
    {NULL,
     {ADD_ROUTE("{\"method\": \"POST\", \"path\": \"/opale/v1/etatSante\", \"upstream\": "
                "\"opale\"}")},
     {"%F: routes[4]: missing key \"name\" (the default, its path, is already used by "
      "routes[2])"}},
    /* the file as a whole */
    {"{\"workers\": 2,}",
     {{NULL}},
     {"%F: $: invalid JSON at line 1, column 15: string or '}' expected near '}'"}},
    {"",
     {{NULL}},
     {"%F: $: invalid JSON at line 1, column 0: '[' or '{' expected near end of file"}},
    {"{\"workers\": 1, \"workers\": 2}",
     {{NULL}},
     {"%F: $: invalid JSON at line 1, column 24: duplicate object key near '\"workers\"'"}},
    {"[]", {{NULL}}, {"%F: $: must be an object"}},
    {"{}",
     {{NULL}},
     {"%F: $: missing key \"listeners\"", "%F: $: missing key \"upstreams\"",
      "%F: $: missing key \"routes\"", "%F: $: missing key \"journal\""}},
    /* several errors in one file, all reported, in file order */
    {NULL,
     {{"workers", "-1"},
      {"listeners[0].tls.foo", "1"},
      {"routes[0].upstream", "\"nope\""},
      {"admin.address", "\"8.8.8.8\""}},
     {"%F: workers: must be between 0 and 64", "%F: listeners[0].tls.foo: unknown key",
      "%F: routes[0].upstream: unknown upstream \"nope\"",
      "%F: admin.address: must be a loopback address"}},
};

/* Set (or delete, when <value> is NULL) the member at <path>, a JSON path
 * like "listeners[0].tls.foo"; an index equal to the array size appends. */
static void edit(json_t *root, const char *path, const char *value)
{
    char *v = value != NULL ? subst(value, "") : NULL;
    json_t *nv = NULL;
    if (v != NULL) {
        json_error_t je;
        nv = json_loads(v, JSON_DECODE_ANY, &je);
        ck_assert_msg(nv != NULL, "bad edit value %s: %s", v, je.text);
    }
    json_t *cur = root;
    const char *p = path;
    for (;;) {
        char key[128];
        size_t klen = strcspn(p, ".[");
        long idx = -1;
        if (klen > 0) {
            ck_assert_uint_lt(klen, sizeof(key));
            memcpy(key, p, klen);
            key[klen] = '\0';
            /* JSON escapes in keys (a test of control bytes) */
            if (strstr(key, "\\u") != NULL) {
                char q[160];
                snprintf(q, sizeof(q), "\"%s\"", key);
                json_t *k = json_loads(q, JSON_DECODE_ANY, NULL);
                ck_assert_ptr_nonnull(k);
                snprintf(key, sizeof(key), "%s", json_string_value(k));
                json_decref(k);
            }
            p += klen;
        } else {
            ck_assert_int_eq(*p, '[');
            idx = strtol(p + 1, (char **)&p, 10);
            ck_assert_int_eq(*p, ']');
            p++;
        }
        if (*p == '.')
            p++;
        int last = *p == '\0';
        if (idx < 0) {
            ck_assert_msg(json_is_object(cur), "%s: not an object", path);
            if (!last) {
                cur = json_object_get(cur, key);
                ck_assert_msg(cur != NULL, "%s: no %s", path, key);
            } else if (nv != NULL) {
                json_object_set_new(cur, key, nv);
            } else {
                ck_assert_int_eq(json_object_del(cur, key), 0);
            }
        } else {
            ck_assert_msg(json_is_array(cur), "%s: not an array", path);
            if (!last) {
                cur = json_array_get(cur, (size_t)idx);
                ck_assert_msg(cur != NULL, "%s: no [%ld]", path, idx);
            } else if (nv != NULL && (size_t)idx == json_array_size(cur)) {
                json_array_append_new(cur, nv);
            } else if (nv != NULL) {
                ck_assert_int_eq(json_array_set_new(cur, (size_t)idx, nv), 0);
            } else {
                ck_assert_int_eq(json_array_remove(cur, (size_t)idx), 0);
            }
        }
        if (last)
            break;
    }
    free(v);
}

START_TEST(t_bad)
{
    const bad_case *bc = &bad[_i];
    gw_errlist errs = {0};
    char *path = NULL;

    if (bc->raw != NULL) {
        path = put_config("bad.json", bc->raw);
    } else {
        path = put_config("bad.json", base_conf);
        json_error_t je;
        json_t *root = json_load_file(path, 0, &je);
        ck_assert_msg(root != NULL, "base: %s", je.text);
        for (size_t k = 0; k < 4 && bc->edit[k][0] != NULL; k++)
            edit(root, bc->edit[k][0], bc->edit[k][1]);
        ck_assert_int_eq(json_dump_file(root, path, JSON_INDENT(2)), 0);
        json_decref(root);
    }

    gw_conf *c = gw_conf_load(path, &errs);
    ck_assert_ptr_null(c);
    size_t nwant = 0;
    while (nwant < 5 && bc->want[nwant] != NULL)
        nwant++;
    for (size_t k = 0; k < nwant && k < errs.n; k++) {
        char *want = subst(bc->want[k], path);
        ck_assert_str_eq(errs.msgs[k], want);
        free(want);
    }
    ck_assert_msg(errs.n == nwant, "case %d: %zu messages, want %zu; first: %s", _i, errs.n, nwant,
                  errs.n ? errs.msgs[0] : "(none)");
    ck_assert_uint_eq(errs.dropped, 0);
    gw_errlist_clear(&errs);
    free(path);
}
END_TEST

/* "access": "off" is accepted on a sandbox listener with client_auth "none";
 * "enforce" is the default and is accepted anywhere. */
START_TEST(t_access_off)
{
    gw_errlist errs = {0};
    char *path = put_config("access.json", base_conf);
    json_t *root = json_load_file(path, 0, NULL);
    ck_assert_ptr_nonnull(root);
    edit(root, "listeners[0].access", "\"enforce\"");
    edit(root, "listeners[1].environment", "\"sandbox\"");
    edit(root, "listeners[1].access", "\"off\"");
    ck_assert_int_eq(json_dump_file(root, path, JSON_INDENT(2)), 0);
    json_decref(root);
    gw_conf *c = gw_conf_load(path, &errs);
    ck_assert_msg(c != NULL, "first error: %s", errs.n ? errs.msgs[0] : "(none)");
    ck_assert_int_eq(c->listeners[0].access_off, 0);
    ck_assert_int_eq(c->listeners[1].access_off, 1);
    ck_assert_int_eq(c->listeners[1].env, GW_ENV_SANDBOX);
    ck_assert_int_eq(c->listeners[1].client_auth, GW_CLIENT_AUTH_NONE);
    gw_conf_free(c);
    free(path);
}
END_TEST

/* ---- the rest of the contract ---- */

START_TEST(t_cannot_read)
{
    gw_errlist errs = {0};
    char *missing = NULL, *want = NULL;
    ck_assert_int_ge(asprintf(&missing, "%s/nope.json", conf_dir), 0);
    ck_assert_ptr_null(gw_conf_load(missing, &errs));
    ck_assert_uint_eq(errs.n, 1);
    ck_assert_int_ge(asprintf(&want, "%s: $: cannot read: No such file or directory", missing), 0);
    ck_assert_str_eq(errs.msgs[0], want);
    free(want);

    ck_assert_ptr_null(gw_conf_load(conf_dir, &errs));
    ck_assert_uint_eq(errs.n, 2);
    ck_assert_int_ge(asprintf(&want, "%s: $: cannot read: Is a directory", conf_dir), 0);
    ck_assert_str_eq(errs.msgs[1], want);
    free(want);

    ck_assert_ptr_null(gw_conf_load(NULL, &errs));
    ck_assert_uint_eq(errs.n, 3);
    ck_assert_str_eq(errs.msgs[2], "-: $: cannot read: Invalid argument");
    gw_errlist_clear(&errs);
    free(missing);
}
END_TEST

/* FILE in messages is the path as given; relative paths still resolve
 * against the file's directory, not the working directory. */
START_TEST(t_relative_file)
{
    gw_errlist errs = {0};
    free(put_config("gw.json", base_conf));
    free(put_config("bad.json", "{\"listeners\": 1}"));
    ck_assert_int_eq(chdir(tmp_root), 0);

    gw_conf *c = gw_conf_load("deploy/sandbox/gw.json", &errs);
    ck_assert_msg(c != NULL, "first error: %s", errs.n ? errs.msgs[0] : "(none)");
    ck_assert_str_eq(c->path, "deploy/sandbox/gw.json"); /* as given: messages name it so */
    assert_path(c->dir, "%D");
    assert_path(c->listeners[0].client_ca, "%D/pki/ca.crt");
    assert_path(c->policies_dir, "%T/policies");
    gw_conf_free(c);

    ck_assert_ptr_null(gw_conf_load("deploy/sandbox/bad.json", &errs));
    ck_assert_uint_ge(errs.n, 1);
    ck_assert_str_eq(errs.msgs[0], "deploy/sandbox/bad.json: listeners: must be an array");
    gw_errlist_clear(&errs);

    ck_assert_int_eq(chdir(conf_dir), 0);
    ck_assert_ptr_null(gw_conf_load("bad.json", &errs));
    ck_assert_str_eq(errs.msgs[0], "bad.json: listeners: must be an array");
    gw_errlist_clear(&errs);
}
END_TEST

/* gw_conf_load_check: a config with errors still gives its conf, so that the
 * sections checked elsewhere (access, oauth, quota, policies) can be checked
 * in the same pass; the conf says which parts are not to be trusted. */
static const char check_conf[] =
    "{\"workers\": \"two\", \"policies_dir\": \"nope\",\n"
    " \"listeners\": [{\"name\": \"l\", \"address\": \"0.0.0.0\", \"port\": 443,\n"
    "                  \"environment\": \"production\",\n"
    "                  \"tls\": {\"certificates\": [{\"cert\": \"pki/server-rsa.crt\",\n"
    "                                             \"key\": \"pki/server-rsa.key\"}],\n"
    "                          \"client_ca\": \"pki/ca.crt\"}}],\n"
    " \"upstreams\": [{\"name\": \"u\", \"servers\": [\"192.0.2.1:80\"]}],\n"
    " \"routes\": [{\"method\": \"GET\", \"path\": \"/a/{x}\", \"upstream\": \"v\"}],\n"
    " \"journal\": {\"path\": \"/tmp/j.jsonl\"},\n"
    " \"access\": {\"x\": 1}, \"oauth\": {\"y\": 2}, \"quota\": {\"z\": 3}}\n";

START_TEST(t_load_check)
{
    gw_errlist errs = {0};
    size_t nerrs = 99;
    char *path = put_config("check.json", check_conf);
    ck_assert_int_eq(chdir(conf_dir), 0);
    gw_conf *c = gw_conf_load_check("check.json", &errs, &nerrs);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(nerrs, 3);
    ck_assert_uint_eq(c->nerrs, 3);
    ck_assert_uint_eq(errs.n, 3);
    char *want = subst("check.json: policies_dir: cannot use directory \"%D/nope\": No such file "
                       "or directory",
                       "");
    ck_assert_str_eq(errs.msgs[0], "check.json: workers: must be an integer");
    ck_assert_str_eq(errs.msgs[1], want);
    ck_assert_str_eq(errs.msgs[2], "check.json: routes[0].upstream: unknown upstream \"v\"");
    free(want);
    ck_assert_str_eq(c->path, "check.json");
    ck_assert_int_eq(c->routes_bad, 1);
    ck_assert_int_eq(c->policies_dir_bad, 1);
    ck_assert_ptr_null(c->policies_dir);
    /* the sections checked elsewhere are there, as written */
    ck_assert_int_eq(json_integer_value(json_object_get(c->access, "x")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(c->oauth, "y")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(c->quota, "z")), 3);
    gw_conf_free(c);
    gw_errlist_clear(&errs);

    /* the same file through gw_conf_load: NULL, same errors */
    ck_assert_ptr_null(gw_conf_load("check.json", &errs));
    ck_assert_uint_eq(errs.n, 3);
    gw_errlist_clear(&errs);

    /* a valid one: no error, nothing flagged */
    free(put_config("min.json", min_conf));
    c = gw_conf_load_check("min.json", &errs, &nerrs);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(nerrs, 0);
    ck_assert_uint_eq(errs.n, 0);
    ck_assert_int_eq(c->routes_bad, 0);
    ck_assert_int_eq(c->policies_dir_bad, 0);
    gw_conf_free(c);

    /* nothing to check further: no conf */
    free(put_config("syntax.json", "{\"workers\": 2,,}"));
    ck_assert_ptr_null(gw_conf_load_check("syntax.json", &errs, &nerrs));
    ck_assert_uint_eq(nerrs, 0);
    ck_assert_uint_eq(errs.n, 1);
    gw_errlist_clear(&errs);
    free(put_config("array.json", "[1]"));
    ck_assert_ptr_null(gw_conf_load_check("array.json", &errs, &nerrs));
    ck_assert_str_eq(errs.msgs[0], "array.json: $: must be an object");
    gw_errlist_clear(&errs);
    ck_assert_ptr_null(gw_conf_load_check("missing.json", &errs, &nerrs));
    ck_assert_str_eq(errs.msgs[0], "missing.json: $: cannot read: No such file or directory");
    gw_errlist_clear(&errs);
    free(path);
}
END_TEST

START_TEST(t_parse_text)
{
    gw_errlist errs = {0};
    char *path = NULL;
    ck_assert_int_ge(asprintf(&path, "%s/virtual.json", conf_dir), 0);
    char *text = subst(base_conf, "");
    gw_conf *c = gw_conf_parse(path, text, &errs);
    ck_assert_msg(c != NULL, "first error: %s", errs.n ? errs.msgs[0] : "(none)");
    ck_assert_str_eq(c->path, path);
    assert_path(c->journal.path, "%D/journal/access.jsonl");
    gw_conf_free(c);

    ck_assert_ptr_null(gw_conf_parse("mem.json", "{\"workers\": true}", &errs));
    ck_assert_str_eq(errs.msgs[0], "mem.json: workers: must be an integer");
    gw_errlist_clear(&errs);
    free(text);
    free(path);
}
END_TEST

/* Errors already in the list are kept and do not fail a later good load. */
START_TEST(t_errlist_append)
{
    gw_errlist errs = {0};
    gw_errlist_add(&errs, "%s: %d", "earlier", 1);
    char *path = put_config("gw.json", base_conf);
    gw_conf *c = gw_conf_load(path, &errs);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(errs.n, 1);
    ck_assert_str_eq(errs.msgs[0], "earlier: 1");
    gw_conf_free(c);
    gw_errlist_clear(&errs);
    ck_assert_uint_eq(errs.n, 0);
    ck_assert_uint_eq(errs.dropped, 0);
    gw_errlist_clear(&errs); /* twice is fine */
    gw_errlist_add(NULL, "ignored");
    gw_errlist_clear(NULL);
    gw_conf_free(NULL);
    free(path);
}
END_TEST

/* More than GW_CONF_MAX_ERRORS errors: the first ones are kept, the rest
 * counted. */
START_TEST(t_errlist_overflow)
{
    gw_errlist errs = {0};
    gw_buf b = {0};
    gw_buf_puts(&b, "{");
    for (int i = 0; i < 70; i++)
        gw_buf_printf(&b, "\"k%02d\": 0, ", i);
    gw_buf_puts(&b, "\"workers\": 2}");
    char *path = put_config("many.json", b.data);
    gw_buf_free(&b);
    ck_assert_ptr_null(gw_conf_load(path, &errs));
    ck_assert_uint_eq(errs.n, GW_CONF_MAX_ERRORS);
    /* 70 unknown keys + 4 missing keys */
    ck_assert_uint_eq(errs.dropped, 70 + 4 - GW_CONF_MAX_ERRORS);
    char *want = NULL;
    ck_assert_int_ge(asprintf(&want, "%s: k63: unknown key", path), 0);
    ck_assert_str_eq(errs.msgs[GW_CONF_MAX_ERRORS - 1], want);
    free(want);
    gw_errlist_clear(&errs);
    free(path);
}
END_TEST

START_TEST(t_env_name)
{
    ck_assert_str_eq(gw_env_name(GW_ENV_SANDBOX), "sandbox");
    ck_assert_str_eq(gw_env_name(GW_ENV_PRODUCTION), "production");
    ck_assert_str_eq(gw_env_name((gw_env)7), "unknown");
}
END_TEST

/* The example shipped for `make run`, loaded from a copy in the test's tree
 * (same layout: deploy/sandbox/ next to policies/, and stand-in PKI files,
 * since the real ones are generated later by a script). */
START_TEST(t_sandbox_example)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/deploy/sandbox/gateway.json", gw_test_srcdir());
    json_error_t je;
    json_t *root = json_load_file(p, JSON_REJECT_DUPLICATES, &je);
    ck_assert_msg(root != NULL, "%s: %s", p, je.text);
    char *copy = NULL;
    ck_assert_int_ge(asprintf(&copy, "%s/gateway.json", conf_dir), 0);
    ck_assert_int_eq(json_dump_file(root, copy, 0), 0);
    json_decref(root);

    gw_errlist errs = {0};
    gw_conf *c = gw_conf_load(copy, &errs);
    ck_assert_msg(c != NULL, "first error: %s", errs.n ? errs.msgs[0] : "(none)");
    ck_assert_uint_eq(c->workers, (unsigned)online_cpus());
    assert_path(c->policies_dir, "%T/policies");
    ck_assert_uint_eq(c->nlisteners, 1);
    const gw_conf_listener *l = &c->listeners[0];
    ck_assert_str_eq(l->name, "public-sandbox");
    ck_assert_str_eq(l->address, "127.0.0.1");
    ck_assert_uint_eq(l->port, 8443);
    ck_assert_int_eq(l->env, GW_ENV_SANDBOX);
    ck_assert_uint_eq(l->ncerts, 2);
    assert_path(l->certs[0].cert, "%D/pki/server-ecdsa.crt");
    assert_path(l->certs[0].key, "%D/pki/server-ecdsa.key");
    assert_path(l->certs[1].cert, "%D/pki/server-rsa.crt");
    assert_path(l->certs[1].key, "%D/pki/server-rsa.key");
    assert_path(l->client_ca, "%D/pki/ca.crt");
    assert_path(l->crl, "%D/pki/crl.pem");
    ck_assert_int_eq(l->client_auth, GW_CLIENT_AUTH_REQUIRED);
    ck_assert_uint_eq(c->nupstreams, 1);
    ck_assert_str_eq(c->upstreams[0].name, "opale");
    ck_assert_uint_eq(c->upstreams[0].nservers, 1);
    ck_assert_str_eq(c->upstreams[0].servers[0].host, "127.0.0.1");
    ck_assert_uint_eq(c->upstreams[0].servers[0].port, 9080);
    assert_path(c->journal.path, "%D/journal/access.jsonl");
    ck_assert_int_eq(c->admin.enabled, 1);
    ck_assert_str_eq(c->admin.address, "127.0.0.1");
    ck_assert_uint_eq(c->admin.port, 9901);
    assert_path(c->admin.token_file, "%D/pki/admin.token");

    static const char *const want[8][4] = {
        {"etatSante", "/opale/v1/etatSante", NULL, "0"},
        {"declarations", "/opale/v1/entreprises/{siren}/declarations", "api_opale_declarations",
         "1"},
        {"comptes-bancaires", "/opale/v1/entreprises/{siren}/comptes-bancaires",
         "api_opale_bancaires", "0"},
        {"creances", "/opale/v1/entreprises/{siren}/creances", "api_opale_creances", "1"},
        {"paiements", "/opale/v1/entreprises/{siren}/paiements", "api_opale_paiements", "1"},
        {"remboursements", "/opale/v1/entreprises/{siren}/remboursements",
         "api_opale_remboursements", "1"},
        {"obligations-fiscales", "/opale/v1/entreprises/{siren}/obligations-fiscales",
         "api_opale_obligations_fiscales", "0"},
        {"habilitations", "/opale/v1/entreprises/{siren}/habilitations", "api_opale_habilitations",
         "0"},
    };
    ck_assert_uint_eq(c->routes.n, 8);
    for (size_t i = 0; i < 8; i++) {
        const gw_route *r = &c->routes.routes[i];
        ck_assert_str_eq(r->name, want[i][0]);
        ck_assert_str_eq(r->method, "GET");
        ck_assert_str_eq(r->path, want[i][1]);
        ck_assert_uint_eq(r->upstream_idx, 0);
        if (want[i][2] == NULL)
            ck_assert_ptr_null(r->scope);
        else
            ck_assert_str_eq(r->scope, want[i][2]);
        ck_assert_int_eq(r->year_bound, want[i][3][0] == '1');
    }
    gw_conf_free(c);
    free(copy);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("conf");
    TCase *tc = tcase_create("conf");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, t_good);
    tcase_add_test(tc, t_defaults);
    tcase_add_test(tc, t_workers_zero_admin_default);
    tcase_add_test(tc, t_admin_operators);
    tcase_add_loop_test(tc, t_bad, 0, (int)(sizeof(bad) / sizeof(bad[0])));
    tcase_add_test(tc, t_access_off);
    tcase_add_test(tc, t_cannot_read);
    tcase_add_test(tc, t_relative_file);
    tcase_add_test(tc, t_load_check);
    tcase_add_test(tc, t_parse_text);
    tcase_add_test(tc, t_errlist_append);
    tcase_add_test(tc, t_errlist_overflow);
    tcase_add_test(tc, t_env_name);
    tcase_add_test(tc, t_sandbox_example);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
