/* Unit tests for gateway/journal/record.c: the access record encoder (gw_journal_format), byte for
 * byte against jansson. */
#include "journal_fixtures.h"

static const char full_line[] =
    "{\"v\":1,\"ts\":\"2025-03-21T09:00:00.123Z\","
    "\"request_id\":\"5b8f0c1e-8c1a-4a47-9c55-0c9b6f7c1a11\","
    "\"correlation_id\":\"0e4a2b6c-1d3f-4e5a-8b7c-9d0e1f2a3b4c\","
    "\"env\":\"sandbox\",\"listener\":\"public\",\"client_ip\":\"192.0.2.10\","
    "\"client_port\":51234,"
    "\"tls\":{\"version\":\"TLSv1.3\","
    "\"cert_sha256\":\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\","
    "\"subject\":\"CN=acme-prod,O=ACME,C=FR\"},"
    "\"method\":\"GET\",\"route\":\"liasse\",\"path\":\"/opale/v1/liasses/732829320/2024\","
    "\"query\":\"annee=2024\","
    "\"siren\":\"732829320\",\"annee\":\"2024\",\"decision\":\"deny\",\"reason\":\"quota\","
    "\"code\":\"E429\",\"status\":429,"
    "\"upstream\":{\"addr\":\"127.0.0.1:9000\",\"status\":200,\"ms\":12},"
    "\"ms\":15,\"bytes_in\":0,\"bytes_out\":321}\n";

static const char *top_keys[] = {
    "v",         "ts",          "request_id", "correlation_id", "env",       "listener",
    "client_ip", "client_port", "tls",        "method",         "route",     "path",
    "query",     "siren",       "annee",      "decision",       "reason",    "code",
    "status",    "upstream",    "ms",         "bytes_in",       "bytes_out",
};
#define N_TOP_KEYS (sizeof(top_keys) / sizeof(top_keys[0]))

/* Format <r>, check the line's framing, parse it back. */
static json_t *format_parse(const gw_journal_rec *r, char **line_out)
{
    size_t len = 0;
    char *line = gw_journal_format(r, &len);
    ck_assert_ptr_nonnull(line);
    ck_assert_uint_eq(len, strlen(line));
    ck_assert_uint_ge(len, 3);
    ck_assert_int_eq(line[len - 1], '\n');
    ck_assert_ptr_eq(strchr(line, '\n'), line + len - 1); /* one line, exactly */
    json_error_t e;
    /* No JSON_DISABLE_EOF_CHECK: anything after the object is an error. */
    json_t *o = json_loadb(line, len - 1, 0, &e);
    ck_assert_msg(o != NULL, "line does not parse: %s: %s", e.text, line);
    ck_assert(json_is_object(o));
    if (line_out)
        *line_out = line;
    else
        free(line);
    return o;
}

START_TEST(format_full_exact)
{
    gw_journal_rec r = full_rec();
    size_t len = 0;
    char *line = gw_journal_format(&r, &len);
    ck_assert_ptr_nonnull(line);
    ck_assert_str_eq(line, full_line);
    ck_assert_uint_eq(len, sizeof(full_line) - 1);
    free(line);
}
END_TEST

START_TEST(format_full_parses_in_order)
{
    gw_journal_rec r = full_rec();
    json_t *o = format_parse(&r, NULL);

    ck_assert_uint_eq(json_object_size(o), N_TOP_KEYS);
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        ck_assert_uint_lt(i, N_TOP_KEYS);
        ck_assert_str_eq(k, top_keys[i]);
        i++;
    }
    ck_assert_int_eq(json_integer_value(json_object_get(o, "v")), GW_JOURNAL_SCHEMA_VERSION);
    ck_assert(json_is_integer(json_object_get(o, "client_port")));
    ck_assert_int_eq(json_integer_value(json_object_get(o, "status")), 429);
    ck_assert_str_eq(json_string_value(json_object_get(o, "path")), r.path);
    json_t *tls = json_object_get(o, "tls");
    ck_assert(json_is_object(tls));
    ck_assert_uint_eq(json_object_size(tls), 3);
    ck_assert_str_eq(json_string_value(json_object_get(tls, "subject")), r.tls_subject);
    json_t *up = json_object_get(o, "upstream");
    ck_assert(json_is_object(up));
    ck_assert_uint_eq(json_object_size(up), 3);
    ck_assert_int_eq(json_integer_value(json_object_get(up, "ms")), 12);
    json_decref(o);
}
END_TEST

START_TEST(format_empty_record)
{
    gw_journal_rec r = {.client_port = -1,
                        .status = 0,
                        .upstream_status = -1,
                        .upstream_ms = -1,
                        .ms = -1,
                        .bytes_in = -1,
                        .bytes_out = -1};
    size_t len;
    char *line = gw_journal_format(&r, &len);
    ck_assert_ptr_nonnull(line);
    ck_assert_str_eq(line, "{\"v\":1}\n");
    ck_assert_uint_eq(len, 8);
    free(line);
}
END_TEST

/* Zero is a value (port 0, 0 bytes, 0 ms); only status 0 means "none". */
START_TEST(format_zero_numbers)
{
    gw_journal_rec r = full_rec();
    r.client_port = 0;
    r.ms = 0;
    r.bytes_in = 0;
    r.bytes_out = 0;
    r.upstream_ms = 0;
    r.status = 0;
    r.upstream_status = 0;
    json_t *o = format_parse(&r, NULL);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "client_port")), 0);
    ck_assert(json_is_integer(json_object_get(o, "ms")));
    ck_assert(json_is_integer(json_object_get(o, "bytes_in")));
    ck_assert(json_is_integer(json_object_get(o, "bytes_out")));
    ck_assert_ptr_null(json_object_get(o, "status"));
    json_t *up = json_object_get(o, "upstream");
    ck_assert_ptr_null(json_object_get(up, "status"));
    ck_assert(json_is_integer(json_object_get(up, "ms")));
    json_decref(o);
}
END_TEST

/* One case per omissible field: blank it, it disappears, nothing else does. */
static const struct omit_case {
    const char *parent; /* NULL: top level */
    const char *key;    /* key that must vanish */
} omit_cases[] = {
    {NULL, "ts"},           {NULL, "request_id"},   {NULL, "correlation_id"}, {NULL, "env"},
    {NULL, "listener"},     {NULL, "client_ip"},    {NULL, "client_port"},    {"tls", "version"},
    {"tls", "cert_sha256"}, {"tls", "subject"},     {NULL, "method"},         {NULL, "route"},
    {NULL, "path"},         {NULL, "siren"},        {NULL, "annee"},          {NULL, "decision"},
    {NULL, "reason"},       {NULL, "code"},         {NULL, "status"},         {NULL, "status"},
    {NULL, "upstream"},     {"upstream", "status"}, {"upstream", "status"},   {"upstream", "ms"},
    {NULL, "ms"},           {NULL, "bytes_in"},     {NULL, "bytes_out"},      {NULL, "query"},
};
#define N_OMIT (sizeof(omit_cases) / sizeof(omit_cases[0]))

static void blank(gw_journal_rec *r, int i)
{
    switch (i) {
    case 0:
        r->ts = NULL;
        break;
    case 1:
        r->request_id = NULL;
        break;
    case 2:
        r->correlation_id = NULL;
        break;
    case 3:
        r->env = NULL;
        break;
    case 4:
        r->listener = NULL;
        break;
    case 5:
        r->client_ip = NULL;
        break;
    case 6:
        r->client_port = -1;
        break;
    case 7:
        r->tls_version = NULL;
        break;
    case 8:
        r->tls_cert_sha256 = NULL;
        break;
    case 9:
        r->tls_subject = NULL;
        break;
    case 10:
        r->method = NULL;
        break;
    case 11:
        r->route = NULL;
        break;
    case 12:
        r->path = NULL;
        break;
    case 13:
        r->siren = NULL;
        break;
    case 14:
        r->annee = NULL;
        break;
    case 15:
        r->decision = NULL;
        break;
    case 16:
        r->reason = NULL;
        break;
    case 17:
        r->code = NULL;
        break;
    case 18:
        r->status = 0;
        break;
    case 19:
        r->status = -1;
        break;
    case 20:
        r->upstream_addr = NULL;
        break; /* status and ms still set */
    case 21:
        r->upstream_status = 0;
        break;
    case 22:
        r->upstream_status = -1;
        break;
    case 23:
        r->upstream_ms = -1;
        break;
    case 24:
        r->ms = -1;
        break;
    case 25:
        r->bytes_in = -1;
        break;
    case 26:
        r->bytes_out = -1;
        break;
    case 27:
        r->query = NULL;
        break;
    default:
        ck_abort_msg("no case %d", i);
    }
}

START_TEST(format_omits_field)
{
    const struct omit_case *c = &omit_cases[_i];
    gw_journal_rec r = full_rec();
    blank(&r, _i);
    json_t *o = format_parse(&r, NULL);
    if (c->parent == NULL) {
        ck_assert_msg(json_object_get(o, c->key) == NULL, "case %d: %s still present", _i, c->key);
        ck_assert_uint_eq(json_object_size(o), N_TOP_KEYS - 1);
    } else {
        json_t *p = json_object_get(o, c->parent);
        ck_assert_ptr_nonnull(p);
        ck_assert_msg(json_object_get(p, c->key) == NULL, "case %d: %s.%s still present", _i,
                      c->parent, c->key);
        ck_assert_uint_eq(json_object_size(p), 2);
        ck_assert_uint_eq(json_object_size(o), N_TOP_KEYS);
    }
    json_decref(o);
}
END_TEST

START_TEST(format_tls_object_rules)
{
    gw_journal_rec r = full_rec();
    r.tls_version = r.tls_cert_sha256 = r.tls_subject = NULL;
    json_t *o = format_parse(&r, NULL);
    ck_assert_ptr_null(json_object_get(o, "tls"));
    json_decref(o);

    r.tls_subject = "CN=only";
    char *line;
    o = format_parse(&r, &line);
    ck_assert_ptr_nonnull(strstr(line, "\"tls\":{\"subject\":\"CN=only\"}"));
    free(line);
    json_decref(o);
}
END_TEST

START_TEST(format_upstream_object_rules)
{
    gw_journal_rec r = full_rec();
    r.upstream_status = 0;
    r.upstream_ms = -1;
    char *line;
    json_t *o = format_parse(&r, &line);
    ck_assert_ptr_nonnull(strstr(line, "\"upstream\":{\"addr\":\"127.0.0.1:9000\"}"));
    free(line);
    json_decref(o);
}
END_TEST

/* Issue 13: a retried request carries its attempts, in order, inside
 * "upstream"; without attempts the object is unchanged. */
START_TEST(format_upstream_attempts)
{
    gw_journal_rec r = full_rec();
    const gw_journal_attempt at[2] = {
        {.addr = "127.0.0.1:9000", .outcome = "reset", .status = 0, .ms = 3},
        {.addr = "127.0.0.1:9001", .outcome = "ok", .status = 200, .ms = -1},
    };
    r.upstream_attempts = at;
    r.upstream_nattempts = 2;
    char *line;
    json_t *o = format_parse(&r, &line);
    ck_assert_ptr_nonnull(strstr(line, "\"upstream\":{\"addr\":\"127.0.0.1:9000\",\"status\":200,"
                                       "\"ms\":12,\"attempts\":[{\"addr\":\"127.0.0.1:9000\","
                                       "\"outcome\":\"reset\",\"ms\":3},{\"addr\":"
                                       "\"127.0.0.1:9001\",\"outcome\":\"ok\",\"status\":200}]},"));
    json_t *arr = json_object_get(json_object_get(o, "upstream"), "attempts");
    ck_assert(json_is_array(arr));
    ck_assert_uint_eq(json_array_size(arr), 2);
    free(line);
    json_decref(o);

    r.upstream_nattempts = 0;
    o = format_parse(&r, &line);
    ck_assert_ptr_null(strstr(line, "attempts"));
    free(line);
    json_decref(o);
}
END_TEST

START_TEST(format_escapes)
{
    static const char nasty[] = "/a\"b\\c\nd\re\tf\x01g\x1fh\x7fi</script>";
    gw_journal_rec r = full_rec();
    r.path = nasty;
    r.tls_subject = "CN=\"x\\\",O=\n";
    char *line;
    json_t *o = format_parse(&r, &line);

    for (const char *p = line; p[1] != '\0'; p++)
        ck_assert_msg((unsigned char)*p >= 0x20, "raw control byte 0x%02x in line", *p);
    ck_assert_ptr_nonnull(
        strstr(line, "\"path\":\"/a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u001Fh\x7fi<"));
    ck_assert_str_eq(json_string_value(json_object_get(o, "path")), nasty);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "tls"), "subject")),
                     r.tls_subject);
    free(line);
    json_decref(o);
}
END_TEST

/* Invalid UTF-8: each offending byte becomes U+FFFD; valid text is kept. */
#define FFFD "\xEF\xBF\xBD"
static const struct {
    const char *in, *out;
} utf8_cases[] = {
    {"caf\xC3\xA9", "caf\xC3\xA9"},                                     /* valid 2-byte */
    {"\xE2\x82\xAC \xF0\x9D\x84\x9E", "\xE2\x82\xAC \xF0\x9D\x84\x9E"}, /* 3 and 4 bytes */
    {"\xF4\x8F\xBF\xBF\xEF\xBF\xBF", "\xF4\x8F\xBF\xBF\xEF\xBF\xBF"},   /* U+10FFFF, U+FFFF */
    {"a\x80z", "a" FFFD "z"},                                           /* lone continuation */
    {"a\xC3", "a" FFFD},                                                /* truncated at end */
    {"\xC3(", FFFD "("},                                                /* bad continuation */
    {"\xC0\xAF", FFFD FFFD},                                            /* overlong '/' */
    {"\xE0\x80\xAF", FFFD FFFD FFFD},                                   /* overlong, 3 bytes */
    {"\xED\xA0\x80", FFFD FFFD FFFD},                                   /* surrogate U+D800 */
    {"\xF4\x90\x80\x80", FFFD FFFD FFFD FFFD},                          /* above U+10FFFF */
    {"\xFF\xFE", FFFD FFFD},                                            /* never valid */
    {"\xF0\x9D\x84", FFFD FFFD FFFD},                                   /* truncated 4-byte */
    {"ok\xE2\x82\xAC\xE2\x82", "ok\xE2\x82\xAC" FFFD FFFD},             /* valid then cut */
};
#define N_UTF8 (sizeof(utf8_cases) / sizeof(utf8_cases[0]))

START_TEST(format_invalid_utf8)
{
    gw_journal_rec r = full_rec();
    r.path = utf8_cases[_i].in;
    r.tls_subject = utf8_cases[_i].in;
    r.reason = utf8_cases[_i].in;
    char *line;
    json_t *o = format_parse(&r, &line); /* the record never disappears */
    ck_assert_uint_eq(json_object_size(o), N_TOP_KEYS);
    ck_assert_str_eq(json_string_value(json_object_get(o, "path")), utf8_cases[_i].out);
    ck_assert_str_eq(json_string_value(json_object_get(o, "reason")), utf8_cases[_i].out);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "tls"), "subject")),
                     utf8_cases[_i].out);
    /* Not ASCII-escaped: UTF-8 goes out as is. */
    ck_assert_ptr_nonnull(strstr(line, utf8_cases[_i].out));
    free(line);
    json_decref(o);
}
END_TEST

/* The record is written by hand (not by jansson) for speed: it must be
 * byte for byte what jansson writes for the same values. Random strings
 * (every byte value, quotes, backslashes, controls, valid and invalid
 * UTF-8) in every string field; the line is parsed and dumped again by
 * jansson with the flags the journal documents, and must come back
 * identical. */
START_TEST(format_matches_jansson_dump)
{
    static const char *const pieces[] = {"\"",
                                         "\\",
                                         "/",
                                         "\b",
                                         "\f",
                                         "\n",
                                         "\r",
                                         "\t",
                                         "\x01",
                                         "\x1f",
                                         "\x7f",
                                         "a",
                                         "Z",
                                         " ",
                                         "é",
                                         "€",
                                         "\xF0\x9F\x98\x80",
                                         "\xE2\x80\xA8",
                                         "\xC3",
                                         "\xC0\xAF",
                                         "\xED\xA0\x80",
                                         "\xFF",
                                         "\x80",
                                         "{}[]:,"};
    const size_t np = sizeof(pieces) / sizeof(pieces[0]);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int iter = 0; iter < 3000; iter++) {
        char strs[9][256];
        for (int f = 0; f < 9; f++) {
            size_t len = 0;
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            int count = (int)(x % 12);
            strs[f][0] = '\0';
            for (int k = 0; k < count; k++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                const char *p = pieces[x % np];
                size_t pl = strlen(p);
                if (len + pl >= sizeof(strs[f]))
                    break;
                memcpy(strs[f] + len, p, pl + 1);
                len += pl;
            }
        }
        gw_journal_rec r = full_rec();
        r.path = strs[0];
        r.tls_subject = strs[1];
        r.reason = strs[2];
        r.correlation_id = strs[3];
        r.teleservice = strs[4];
        r.upstream_addr = strs[5];
        r.consumer = strs[6];
        r.annee = strs[7];
        r.query = strs[8];
        r.client_port = iter % 3 == 0 ? -1 : iter;
        r.quota_store = iter % 2 ? "redis" : NULL;
        r.quota_limit = 500;
        r.quota_remaining = iter % 7 - 1;
        gw_journal_attempt at[3] = {
            {.addr = strs[5], .outcome = strs[6], .status = iter % 5 == 0 ? 0 : 502, .ms = 1},
            {.addr = strs[7], .outcome = "ok", .status = 200, .ms = iter % 4 == 0 ? -1 : iter},
            {.addr = NULL, .outcome = strs[0], .status = -1, .ms = 0},
        };
        r.upstream_attempts = at;
        r.upstream_nattempts = (size_t)(iter % 4);
        size_t n = 0;
        char *line = gw_journal_format(&r, &n);
        ck_assert_ptr_nonnull(line);
        ck_assert_uint_eq(n, strlen(line));
        ck_assert_int_eq(line[n - 1], '\n');
        json_error_t e;
        json_t *o = json_loadb(line, n - 1, 0, &e);
        ck_assert_msg(o != NULL, "not JSON (%s): %s", e.text, line);
        char *again = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        ck_assert_ptr_nonnull(again);
        ck_assert_msg(strlen(again) == n - 1 && memcmp(again, line, n - 1) == 0,
                      "differs from jansson:\n  ours    %s  jansson %s\n", line, again);
        free(again);
        json_decref(o);
        free(line);
    }
}
END_TEST

/* The same record built as a jansson object, member by member in the
 * documented order (docs/journal.md), independently of record.c, and dumped
 * with the journal's flags. Strings must be valid UTF-8 and short enough
 * not to be cut. */
static void ref_str(json_t *o, const char *k, const char *v)
{
    if (v != NULL)
        ck_assert_int_eq(json_object_set_new(o, k, json_string(v)), 0);
}

static void ref_num(json_t *o, const char *k, long long v)
{
    if (v >= 0)
        ck_assert_int_eq(json_object_set_new(o, k, json_integer(v)), 0);
}

static char *ref_dump(const gw_journal_rec *r)
{
    json_t *o = json_object();
    ck_assert_ptr_nonnull(o);
    ref_num(o, "v", GW_JOURNAL_SCHEMA_VERSION);
    ref_str(o, "ts", r->ts);
    ref_str(o, "request_id", r->request_id);
    ref_str(o, "correlation_id", r->correlation_id);
    ref_str(o, "env", r->env);
    ref_str(o, "listener", r->listener);
    ref_str(o, "client_ip", r->client_ip);
    ref_num(o, "client_port", r->client_port);
    if (r->tls_version || r->tls_cert_sha256 || r->tls_subject) {
        json_t *t = json_object();
        ref_str(t, "version", r->tls_version);
        ref_str(t, "cert_sha256", r->tls_cert_sha256);
        ref_str(t, "subject", r->tls_subject);
        json_object_set_new(o, "tls", t);
    }
    ref_str(o, "protocol", r->protocol);
    ref_str(o, "consumer", r->consumer);
    ref_str(o, "habilitation", r->habilitation);
    ref_str(o, "teleservice", r->teleservice);
    ref_str(o, "method", r->method);
    ref_str(o, "route", r->route);
    ref_str(o, "path", r->path);
    ref_str(o, "query", r->query);
    ref_str(o, "siren", r->siren);
    ref_str(o, "annee", r->annee);
    ref_str(o, "scope", r->scope);
    if (r->quota_store != NULL) {
        json_t *q = json_object();
        json_object_set_new(q, "limit", json_integer(r->quota_limit));
        json_object_set_new(q, "remaining", json_integer(r->quota_remaining));
        ref_str(q, "store", r->quota_store);
        json_object_set_new(o, "quota", q);
    }
    ref_str(o, "token_jti", r->token_jti);
    ref_str(o, "client_id", r->token_client_id);
    ref_str(o, "decision", r->decision);
    ref_str(o, "reason", r->reason);
    ref_str(o, "code", r->code);
    if (r->status > 0)
        ref_num(o, "status", r->status);
    if (r->upstream_addr != NULL) {
        json_t *u = json_object();
        ref_str(u, "addr", r->upstream_addr);
        if (r->upstream_status > 0)
            ref_num(u, "status", r->upstream_status);
        ref_num(u, "ms", r->upstream_ms);
        if (r->upstream_nattempts > 0) {
            json_t *arr = json_array();
            for (size_t i = 0; i < r->upstream_nattempts; i++) {
                const gw_journal_attempt *a = &r->upstream_attempts[i];
                json_t *e = json_object();
                ref_str(e, "addr", a->addr);
                ref_str(e, "outcome", a->outcome);
                if (a->status > 0)
                    ref_num(e, "status", a->status);
                ref_num(e, "ms", a->ms);
                json_array_append_new(arr, e);
            }
            json_object_set_new(u, "attempts", arr);
        }
        json_object_set_new(o, "upstream", u);
    }
    ref_num(o, "ms", r->ms);
    ref_num(o, "bytes_in", r->bytes_in);
    ref_num(o, "bytes_out", r->bytes_out);
    char *d = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    ck_assert_ptr_nonnull(d);
    json_decref(o);
    return d;
}

/* The encoder against that reference, byte for byte (what is hash-chained
 * must not change with the encoder): every field present or absent at
 * random, valid strings of every length up to the field bounds (the fast
 * 8-byte copy and its tail), with and without bytes to escape, negative
 * and zero numbers. */
START_TEST(format_matches_jansson_built_record)
{
    static const char *const pieces[] = {
        "a",        "Z",       "0",  "-",  "/",    " ",    ":", "=", "'",
        "\"",       "\\",      "\n", "\t", "\x01", "\x7f", "é", "€", "\xF0\x9F\x98\x80",
        "abcdefgh", "01234567"};
    const size_t np = sizeof(pieces) / sizeof(pieces[0]);
    uint64_t x = 0x2545F4914F6CDD1Dull;
#define RND() (x ^= x << 13, x ^= x >> 7, x ^= x << 17, x)
    char strs[28][128];
    for (int iter = 0; iter < 4000; iter++) {
        const char *v[28];
        for (int f = 0; f < 28; f++) {
            size_t len = 0, want = RND() % 100;
            int plain = RND() % 3 != 0; /* most values have nothing to escape */
            strs[f][0] = '\0';
            while (len < want) {
                const char *p = pieces[RND() % np];
                if (plain && (p[0] == '"' || p[0] == '\\' || (unsigned char)p[0] < 0x20))
                    p = "x";
                size_t pl = strlen(p);
                if (len + pl >= sizeof(strs[f]))
                    break;
                memcpy(strs[f] + len, p, pl + 1);
                len += pl;
            }
            v[f] = RND() % 5 == 0 ? NULL : strs[f];
        }
        gw_journal_attempt at[3];
        for (int i = 0; i < 3; i++)
            at[i] = (gw_journal_attempt){v[22 + i], v[25 + i], (int)(RND() % 600) - 100,
                                         (long)(RND() % 40) - 10};
        gw_journal_rec r = {
            .ts = v[0],
            .request_id = v[1],
            .correlation_id = v[2],
            .env = v[3],
            .listener = v[4],
            .client_ip = v[5],
            .client_port = (int)(RND() % 70000) - 1000,
            .tls_version = v[6],
            .tls_cert_sha256 = v[7],
            .tls_subject = v[8],
            .protocol = v[9],
            .consumer = v[10],
            .habilitation = v[11],
            .teleservice = v[12],
            .method = v[13],
            .route = v[14],
            .path = v[15],
            .query = v[16],
            .siren = v[17],
            .annee = v[18],
            .scope = v[19],
            .token_jti = v[20],
            .token_client_id = v[21],
            .quota_limit = (long)(RND() % 2000),
            .quota_remaining = (long)(RND() % 2000) - 1000,
            .quota_store = RND() % 2 ? "redis" : NULL,
            .decision = RND() % 4 ? "allow" : NULL,
            .reason = v[22],
            .code = v[23],
            .status = (int)(RND() % 700) - 100,
            .upstream_addr = v[24],
            .upstream_status = (int)(RND() % 700) - 100,
            .upstream_ms = (long)(RND() % 50) - 10,
            .upstream_attempts = at,
            .upstream_nattempts = (size_t)(RND() % 4),
            .ms = (long)(RND() % 50) - 10,
            .bytes_in = (long)(RND() % 100000) - 10,
            .bytes_out = (long)(RND() % 100000) - 10,
        };
        size_t n = 0;
        char *line = gw_journal_format(&r, &n);
        ck_assert_ptr_nonnull(line);
        char *ref = ref_dump(&r);
        ck_assert_msg(strlen(ref) + 1 == n && memcmp(ref, line, n - 1) == 0 && line[n - 1] == '\n',
                      "differs from jansson's record:\n  ours    %s  jansson %s\n", line, ref);
        free(ref);
        free(line);
    }
#undef RND
}
END_TEST

/* A caller controls the path, its headers and (refused handshakes) the
 * certificate subject: each value is bounded, cut at a character with the
 * marker, and its length kept under "truncated"; the line is still what
 * jansson writes. */
START_TEST(format_truncates_long_values)
{
    size_t pl = 16384, tl = 5000;
    char *path = malloc(pl + 1), *tele = malloc(tl * 2 + 1);
    ck_assert_ptr_nonnull(path);
    ck_assert_ptr_nonnull(tele);
    memset(path, 'a', pl);
    path[0] = '/';
    path[pl] = '\0';
    for (size_t i = 0; i < tl; i++)
        memcpy(tele + 2 * i, "\xC3\xA9", 2); /* é: never cut in half */
    tele[tl * 2] = '\0';
    gw_journal_rec r = full_rec();
    r.path = path;
    r.teleservice = tele;
    char *line = NULL;
    json_t *o = format_parse(&r, &line);
    ck_assert_uint_le(strlen(line), GW_JOURNAL_LINE_MAX);
    const char *p = json_string_value(json_object_get(o, "path"));
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_le(strlen(p), GW_JOURNAL_PATH_MAX);
    ck_assert_str_eq(p + strlen(p) - 14, "...[truncated]");
    ck_assert_int_eq(strncmp(p, path, strlen(p) - 14), 0);
    const char *t = json_string_value(json_object_get(o, "teleservice"));
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_le(strlen(t), GW_JOURNAL_FIELD_MAX);
    ck_assert_int_eq((strlen(t) - 14) % 2, 0);
    ck_assert_int_eq(strncmp(t, tele, strlen(t) - 14), 0);
    json_t *cut = json_object_get(o, "truncated");
    ck_assert(json_is_object(cut));
    ck_assert_int_eq(json_object_size(cut), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(cut, "path")), (json_int_t)pl);
    ck_assert_int_eq(json_integer_value(json_object_get(cut, "teleservice")), (json_int_t)(2 * tl));
    char *again = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    ck_assert_ptr_nonnull(again);
    ck_assert_uint_eq(strlen(again), strlen(line) - 1);
    ck_assert_int_eq(memcmp(again, line, strlen(again)), 0);
    free(again);
    json_decref(o);
    free(line);
    /* a value that fits exactly is not cut */
    memset(path, 'b', GW_JOURNAL_PATH_MAX);
    path[GW_JOURNAL_PATH_MAX] = '\0';
    r = full_rec();
    r.path = path;
    o = format_parse(&r, &line);
    ck_assert_str_eq(json_string_value(json_object_get(o, "path")), path);
    ck_assert_ptr_null(json_object_get(o, "truncated"));
    json_decref(o);
    free(line);
    free(path);
    free(tele);
}
END_TEST

/* The documented bound holds in the worst case: every string at 100 KB of
 * control bytes (6 bytes each once escaped), room left for the writer's
 * seq, prev and hash. */
START_TEST(format_line_bound_worst_case)
{
    size_t n = 100000;
    char *big = malloc(n + 1);
    ck_assert_ptr_nonnull(big);
    memset(big, 0x01, n);
    big[n] = '\0';
    gw_journal_rec r = {
        .ts = big,
        .request_id = big,
        .correlation_id = big,
        .env = big,
        .listener = big,
        .client_ip = big,
        .client_port = 65535,
        .tls_version = big,
        .tls_cert_sha256 = big,
        .tls_subject = big,
        .consumer = big,
        .habilitation = big,
        .teleservice = big,
        .method = big,
        .route = big,
        .path = big,
        .siren = big,
        .annee = big,
        .scope = big,
        .token_jti = big,
        .token_client_id = big,
        .quota_limit = 2147483647,
        .quota_remaining = 2147483647,
        .quota_store = big,
        .decision = big,
        .reason = big,
        .code = big,
        .status = 599,
        .upstream_addr = big,
        .upstream_status = 599,
        .upstream_ms = 2147483647,
        .ms = 2147483647,
        .bytes_in = 2147483647,
        .bytes_out = 2147483647,
    };
    size_t len = 0;
    char *line = gw_journal_format(&r, &len);
    ck_assert_ptr_nonnull(line);
    /* ,"seq":20 digits,"prev":"64 hex","hash":"64 hex" */
    size_t chain = 7 + 20 + 9 + 64 + 9 + 64;
    ck_assert_msg(len + chain <= GW_JOURNAL_LINE_MAX, "line of %zu bytes", len);
    json_error_t e;
    json_t *o = json_loadb(line, len - 1, 0, &e);
    ck_assert_msg(o != NULL, "not JSON: %s", e.text);
    ck_assert_int_eq(json_object_size(json_object_get(o, "truncated")), 25);
    json_decref(o);
    free(line);
    free(big);
}
END_TEST

/* Every field a record can carry, set, the token-related ones with the
 * values a verified request gives them (the access token's jti and
 * client_id claim). The record must hold the jti, never the token, and no
 * member for an Authorization header, a token, a Basic credential or a
 * client secret: the only credential-looking keys allowed are "token_jti"
 * and "client_id", holding exactly the identifiers given. The access token,
 * the Authorization header value and the client secret of the request this
 * record describes must appear nowhere on the line. */
#define CRED_JWT                                                                                   \
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.eyJqdGkiOiJqdGktNDIiLCJjbGllbnRfaWQiOiJhY21lIn0.c2ln"
#define CRED_SECRET "s3cr3t-client-secret-value"
#define CRED_BASIC "YWNtZS1wcm9kOnMzY3IzdC1jbGllbnQtc2VjcmV0LXZhbHVl" /* acme-prod:<secret> */

static void check_credential_keys(json_t *o, int *seen_jti, int *seen_client)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        if (strcmp(k, "token_jti") == 0) {
            ck_assert_str_eq(json_string_value(v), "jti-42");
            (*seen_jti)++;
            continue;
        }
        if (strcmp(k, "client_id") == 0) {
            ck_assert_str_eq(json_string_value(v), "acme-prod");
            (*seen_client)++;
            continue;
        }
        ck_assert_msg(strcasestr(k, "auth") == NULL && strcasestr(k, "token") == NULL &&
                          strcasestr(k, "secret") == NULL && strcasestr(k, "bearer") == NULL &&
                          strcasestr(k, "password") == NULL && strcasestr(k, "basic") == NULL,
                      "record has a credential-looking key: %s", k);
        if (json_is_object(v))
            check_credential_keys(v, seen_jti, seen_client);
    }
}

START_TEST(format_no_credentials)
{
    gw_journal_rec r = full_rec();
    gw_journal_attempt at[1] = {
        {.addr = "127.0.0.1:9000", .outcome = "ok", .status = 200, .ms = 3}};
    /* every optional field set: nothing left out that the check would skip */
    r.consumer = "acme", r.habilitation = "H456", r.teleservice = "TS1", r.scope = "liasse";
    r.token_jti = "jti-42", r.token_client_id = "acme-prod";
    r.quota_store = "memory", r.quota_limit = 10, r.quota_remaining = 9;
    r.upstream_attempts = at, r.upstream_nattempts = 1;
    char *line;
    json_t *o = format_parse(&r, &line);
    int seen_jti = 0, seen_client = 0;
    check_credential_keys(o, &seen_jti, &seen_client);
    /* the fixture did set the token fields: the check above saw them */
    ck_assert_int_eq(seen_jti, 1);
    ck_assert_int_eq(seen_client, 1);
    ck_assert_ptr_nonnull(json_object_get(o, "quota"));
    ck_assert_ptr_nonnull(json_object_get(o, "consumer"));
    static const char *const never[] = {CRED_JWT, "eyJ",   CRED_SECRET,    CRED_BASIC,
                                        "Bearer", "Basic", "Authorization"};
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
        ck_assert_msg(strstr(line, never[i]) == NULL, "the record holds \"%s\": %s", never[i],
                      line);
    json_decref(o);
    free(line);
}
END_TEST
/* ------------------------------------------------------------------------ */
/* Writer                                                                   */
/* ------------------------------------------------------------------------ */

/* seq, prev, hash and type belong to the writer: a worker's record never
 * has them, at any depth. */
static void check_no_writer_keys(json_t *o)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        ck_assert_msg(strcmp(k, "seq") != 0 && strcmp(k, "prev") != 0 && strcmp(k, "hash") != 0 &&
                          strcmp(k, "type") != 0,
                      "the formatter wrote the writer's member \"%s\"", k);
        if (json_is_object(v))
            check_no_writer_keys(v);
    }
}

START_TEST(format_no_chain_members)
{
    gw_journal_rec r = full_rec();
    r.consumer = "acme", r.habilitation = "H456", r.teleservice = "TS1", r.scope = "liasse";
    r.token_jti = "jti-1", r.token_client_id = "acme-prod";
    char *line;
    json_t *o = format_parse(&r, &line);
    check_no_writer_keys(o);
    ck_assert_ptr_null(strstr(line, "\"seq\""));
    ck_assert_ptr_null(strstr(line, "\"hash\""));
    json_decref(o);
    free(line);
}
END_TEST

static Suite *record_suite(void)
{
    Suite *s = suite_create("record");
    TCase *tc;
    tc = tcase_create("format");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, format_full_exact);
    tcase_add_test(tc, format_full_parses_in_order);
    tcase_add_test(tc, format_empty_record);
    tcase_add_test(tc, format_zero_numbers);
    tcase_add_loop_test(tc, format_omits_field, 0, N_OMIT);
    tcase_add_test(tc, format_tls_object_rules);
    tcase_add_test(tc, format_upstream_object_rules);
    tcase_add_test(tc, format_upstream_attempts);
    tcase_add_test(tc, format_escapes);
    tcase_add_loop_test(tc, format_invalid_utf8, 0, N_UTF8);
    tcase_add_test(tc, format_matches_jansson_dump);
    tcase_add_test(tc, format_matches_jansson_built_record);
    tcase_add_test(tc, format_truncates_long_values);
    tcase_add_test(tc, format_line_bound_worst_case);
    tcase_add_test(tc, format_no_credentials);
    tcase_add_test(tc, format_no_chain_members);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(record_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
