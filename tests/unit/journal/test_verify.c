/* Unit tests for gateway/journal/verify.c: the verifier on crafted journals,
 * the chain primitives and the file helpers. The journals are built here
 * with OpenSSL's SHA256() directly, not with the writer or verify.c. */
#include "journal/verify.h"

#include <check.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "token/jose.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static char tmpdir[64];

static void setup_dir(void)
{
    strcpy(tmpdir, "/tmp/test_verify.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

static void teardown_dir(void)
{
    nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *tpath(const char *name)
{
    static char buf[8][256];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    return p;
}

static const char zeros64[] = "0000000000000000000000000000000000000000000000000000000000000000";

static void sha_hex(const void *p, size_t n, char out[65])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(p, n, md);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* "{…}" + seq + prev -> the chained line (malloc'd, with '\n'); its hash. */
static char *chain_obj(const char *obj, unsigned long long seq, const char *prev, char hash[65])
{
    char *canon = NULL, *line = NULL;
    size_t n = strlen(obj);
    ck_assert(n >= 2 && obj[n - 1] == '}');
    ck_assert_int_gt(
        asprintf(&canon, "%.*s,\"seq\":%llu,\"prev\":\"%s\"", (int)(n - 1), obj, seq, prev), 0);
    sha_hex(canon, strlen(canon), hash);
    ck_assert_int_gt(asprintf(&line, "%s,\"hash\":\"%s\"}\n", canon, hash), 0);
    free(canon);
    return line;
}

/* A journal being built: lines and their hashes. */
#define MAXL 64
struct jn {
    char *l[MAXL];
    char h[MAXL][65];
    int n;
    unsigned long long seq; /* of the last line */
    char head[65];
};

static void jn_init(struct jn *j, unsigned long long first_seq, const char *prev)
{
    memset(j, 0, sizeof(*j));
    j->seq = first_seq - 1;
    strcpy(j->head, prev);
}

static void jn_add(struct jn *j, const char *obj)
{
    ck_assert_int_lt(j->n, MAXL);
    j->l[j->n] = chain_obj(obj, j->seq + 1, j->head, j->h[j->n]);
    strcpy(j->head, j->h[j->n]);
    j->seq++;
    j->n++;
}

static void jn_rec(struct jn *j)
{
    char obj[200];
    snprintf(obj, sizeof(obj),
             "{\"v\":1,\"ts\":\"2025-03-21T09:00:00.000Z\",\"n\":%llu,\"status\":200,"
             "\"path\":\"/opale/v1/liasses/732829320/2024\"}",
             j->seq + 1);
    jn_add(j, obj);
}

static void jn_rotate(struct jn *j, const char *from)
{
    char obj[300];
    snprintf(obj, sizeof(obj),
             "{\"v\":1,\"type\":\"rotate\",\"ts\":\"2025-03-22T00:00:00.000Z\",\"reason\":\"day\","
             "\"from\":\"%s\"}",
             from);
    jn_add(j, obj);
}

/* A checkpoint over the current head, signed with <key> (through jose). */
static void jn_checkpoint(struct jn *j, const gw_jwk *key, const char *kid)
{
    const char *ts = "2025-03-21T10:00:00.000Z";
    json_t *p = json_pack("{s:s,s:I,s:s,s:s}", "purpose", "journal.checkpoint", "head_seq",
                          (json_int_t)j->seq, "head_hash", j->head, "ts", ts);
    char *sig = gw_jws_sign(key, NULL, p);
    ck_assert_ptr_nonnull(sig);
    json_decref(p);
    char *obj = NULL;
    ck_assert_int_gt(asprintf(&obj,
                              "{\"v\":1,\"type\":\"checkpoint\",\"ts\":\"%s\",\"head_seq\":%llu,"
                              "\"head_hash\":\"%s\",\"kid\":\"%s\",\"sig\":\"%s\"}",
                              ts, j->seq, j->head, kid ? kid : key->kid, sig),
                     0);
    jn_add(j, obj);
    free(obj);
    free(sig);
}

static void jn_retention(struct jn *j, const char *name, unsigned long long first,
                         unsigned long long last, const char *last_hash)
{
    char obj[400];
    snprintf(
        obj, sizeof(obj),
        "{\"v\":1,\"type\":\"retention\",\"ts\":\"2025-03-23T00:00:00.000Z\",\"deleted\":\"%s\","
        "\"first_seq\":%llu,\"last_seq\":%llu,\"last_hash\":\"%s\"}",
        name, first, last, last_hash);
    jn_add(j, obj);
}

static void jn_free(struct jn *j)
{
    for (int i = 0; i < j->n; i++)
        free(j->l[i]);
    j->n = 0;
}

/* A mutable copy of lines, for tampering. */
struct lines {
    char *l[MAXL + 8];
    int n;
};

static void lines_from(struct lines *L, const struct jn *j, int from, int to)
{
    L->n = 0;
    for (int i = from; i < to; i++)
        L->l[L->n++] = strdup(j->l[i]);
}

static void lines_free(struct lines *L)
{
    for (int i = 0; i < L->n; i++)
        free(L->l[i]);
    L->n = 0;
}

static void lines_delete(struct lines *L, int at, int count)
{
    for (int i = at; i < at + count; i++)
        free(L->l[i]);
    memmove(&L->l[at], &L->l[at + count], (size_t)(L->n - at - count) * sizeof(char *));
    L->n -= count;
}

static void lines_insert(struct lines *L, int at, const char *line)
{
    memmove(&L->l[at + 1], &L->l[at], (size_t)(L->n - at) * sizeof(char *));
    L->l[at] = strdup(line);
    L->n++;
}

/* Replace the first <from> in line <i> by <to>. */
static void lines_edit(struct lines *L, int i, const char *from, const char *to)
{
    char *p = strstr(L->l[i], from), *n = NULL;
    ck_assert_msg(p != NULL, "line %d has no %s", i, from);
    ck_assert_int_gt(asprintf(&n, "%.*s%s%s", (int)(p - L->l[i]), L->l[i], to, p + strlen(from)),
                     0);
    free(L->l[i]);
    L->l[i] = n;
}

/* Flip one hex digit of the member <key> ("prev", "hash") of line <i>. */
static void lines_flip(struct lines *L, int i, const char *key)
{
    char k[16];
    snprintf(k, sizeof(k), "\"%s\":\"", key);
    char *p = strstr(L->l[i], k);
    ck_assert_ptr_nonnull(p);
    p += strlen(k) + 10;
    *p = *p == 'a' ? 'b' : 'a';
}

/* What an attacker without the key can do: rechain lines <from>.. (keep each
 * body and seq, recompute prev and hash). */
static void lines_rechain(struct lines *L, int from)
{
    for (int i = from; i < L->n; i++) {
        char *l = L->l[i], *k = NULL, *p = l, prev[65], hash[65], *body = NULL;
        unsigned long long seq;
        while ((p = strstr(p, ",\"seq\":")) != NULL)
            k = p++;
        ck_assert_ptr_nonnull(k);
        ck_assert_int_eq(sscanf(k, ",\"seq\":%llu,\"prev\":\"%64[0-9a-f]\"", &seq, prev), 2);
        if (i > 0) {
            const char *h = strstr(L->l[i - 1], ",\"hash\":\"");
            ck_assert_ptr_nonnull(h);
            memcpy(prev, h + 9, 64);
            prev[64] = '\0';
        }
        ck_assert_int_gt(asprintf(&body, "%.*s}", (int)(k - l), l), 0);
        L->l[i] = chain_obj(body, seq, prev, hash);
        free(body);
        free(l);
    }
}

static void write_lines(const char *path, const struct lines *L)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < L->n; i++)
        fputs(L->l[i], f);
    ck_assert_int_eq(fclose(f), 0);
}

static void write_jn(const char *path, const struct jn *j, int from, int to)
{
    struct lines L;
    lines_from(&L, j, from, to);
    write_lines(path, &L);
    lines_free(&L);
}

/* Verify; the report text goes to <*report> (malloc'd). */
static int run(const char *const *files, size_t n, const gw_journal_verify_opts *o,
               gw_journal_verify_result *res, char **report)
{
    size_t len;
    FILE *m = open_memstream(report, &len);
    int rc = gw_journal_verify_ex(files, n, o, m, res);
    fclose(m);
    return rc;
}

static gw_jwk key_new(const char *kid)
{
    gw_jwk k;
    memset(&k, 0, sizeof(k));
    snprintf(k.kid, sizeof(k.kid), "%s", kid);
    k.alg = GW_ALG_ES256;
    k.can_sign = 1;
    k.pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ck_assert_ptr_nonnull(k.pkey);
    return k;
}

/* ------------------------------------------------------------------------ */
/* Chain primitives                                                         */
/* ------------------------------------------------------------------------ */

START_TEST(parse_link_and_hash)
{
    char h[65];
    char *line = chain_obj("{\"v\":1}", 1, zeros64, h);
    gw_journal_link l;
    ck_assert_int_eq(gw_journal_parse_link(line, strlen(line), &l), 0);
    ck_assert_uint_eq(l.seq, 1);
    ck_assert_str_eq(l.prev, zeros64);
    ck_assert_str_eq(l.hash, h);
    ck_assert_str_eq(h, "c4932dffa24f7fc636c1321fc46ccd133450723f91a7dfdb2baa4d8441abd251");
    ck_assert_uint_eq(l.canon_len, strlen("{\"v\":1,\"seq\":1,\"prev\":\"") + 64 + 1);
    ck_assert_int_eq(gw_journal_link_ok(line, &l), 1);
    /* Without its '\n' too. */
    ck_assert_int_eq(gw_journal_parse_link(line, strlen(line) - 1, &l), 0);
    line[2] = 'w';
    ck_assert_int_eq(gw_journal_link_ok(line, &l), 0);
    free(line);
    char x[65];
    gw_journal_sha256_hex("abc", 3, x);
    ck_assert_str_eq(x, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
END_TEST

#define P64 "1111111111111111111111111111111111111111111111111111111111111111"
static const char *const bad_links[] = {
    "{\"v\":1,\"seq\":1,\"prev\":\"" P64 "\"}",                       /* no hash */
    "{\"v\":1,\"seq\":0,\"prev\":\"" P64 "\",\"hash\":\"" P64 "\"}",  /* seq 0 */
    "{\"v\":1,\"seq\":01,\"prev\":\"" P64 "\",\"hash\":\"" P64 "\"}", /* leading 0 */
    "{\"v\":1,\"seq\":-1,\"prev\":\"" P64 "\",\"hash\":\"" P64 "\"}", /* sign */
    "{\"v\":1,\"seq\":18446744073709551616,\"prev\":\"" P64 "\",\"hash\":\"" P64 "\"}", /* > max */
    "{\"v\":1,\"seq\":1,\"prev\":\"" P64 "\",\"hash\":\"" P64 "\"} ",        /* trailing */
    "{\"v\":1,\"seq\":1,\"prev\":\"" P64 "\",\"hash\":\"" P64 "\",\"x\":1}", /* not last */
    "{\"v\":1,\"seq\":1,\"prev\":\"" P64 "\",\"hash\":\"" P64 "A\"}",        /* 65 hex */
    "{\"v\":1,\"seq\":1,\"prev\":\"" P64
    "\",\"hash\":\"111111111111111111111111111111111111111111111111111111111111111F\"}",
    "[\"v\",\"seq\":1,\"prev\":\"" P64 "\",\"hash\":\"" P64 "\"}",   /* not '{' */
    "{\"v\":1,\"Seq\":1,\"prev\":\"" P64 "\",\"hash\":\"" P64 "\"}", /* name */
    "{\"seq\":1,\"prev\":\"" P64 "\",\"hash\":\"" P64 "\"}",         /* no comma */
    "",
};
#define N_BAD_LINKS (sizeof(bad_links) / sizeof(bad_links[0]))

START_TEST(parse_link_rejects)
{
    gw_journal_link l;
    ck_assert_msg(gw_journal_parse_link(bad_links[_i], strlen(bad_links[_i]), &l) == -1,
                  "accepted: %s", bad_links[_i]);
}
END_TEST

START_TEST(parse_link_max_seq)
{
    const char *ok =
        "{\"v\":1,\"seq\":18446744073709551615,\"prev\":\"" P64 "\",\"hash\":\"" P64 "\"}\n";
    gw_journal_link l;
    ck_assert_int_eq(gw_journal_parse_link(ok, strlen(ok), &l), 0);
    ck_assert_uint_eq(l.seq, UINT64_MAX);
}
END_TEST

static const struct {
    const char *name;
    int ok;
    size_t base_len;
    long long stamp;
    unsigned n;
} names[] = {
    {"/var/log/j.log.20250321T000000Z", 1, 14, 1742515200, 0},
    {"j.log.20250321T000000Z-2", 1, 5, 1742515200, 2},
    {"j.log.20250321T000000Z-12", 1, 5, 1742515200, 12},
    {"j.log.20250321T000000Z-0", 0, 0, 0, 0},
    {"j.log.20250321T000000Z-", 0, 0, 0, 0},
    {"j.log.20250321T000000", 0, 0, 0, 0},
    {"j.log.20250231T000000Z", 0, 0, 0, 0}, /* 31 February */
    {"j.log.20251321T000000Z", 0, 0, 0, 0},
    {"j.log.20250321T240000Z", 0, 0, 0, 0},
    {"j.log.20250321T000000Z.gz", 0, 0, 0, 0},
    {"j.log.1", 0, 0, 0, 0},
    {"j.log", 0, 0, 0, 0},
    {".20250321T000000Z", 0, 0, 0, 0},
};
#define N_NAMES (sizeof(names) / sizeof(names[0]))

START_TEST(rotated_names)
{
    size_t bl = 99;
    time_t t = 0;
    unsigned n = 99;
    int ok = gw_journal_rotated_name(names[_i].name, &bl, &t, &n);
    ck_assert_msg(ok == names[_i].ok, "%s: %d", names[_i].name, ok);
    if (ok) {
        ck_assert_uint_eq(bl, names[_i].base_len);
        ck_assert_int_eq((long long)t, names[_i].stamp);
        ck_assert_uint_eq(n, names[_i].n);
    }
}
END_TEST

START_TEST(sort_files)
{
    const char *in[] = {
        "/l/j.log",
        "/l/j.log.20250322T000000Z",
        "/l/a.log",
        "/l/j.log.20250321T000000Z-10",
        "/l/j.log.20250321T000000Z",
        "/l/j.log.20250321T000000Z-2",
        "/l/j.log.20241231T235959Z",
        "/l/a.log.20250101T000000Z",
    };
    const char *want[] = {
        "/l/a.log.20250101T000000Z",   "/l/a.log",
        "/l/j.log.20241231T235959Z",   "/l/j.log.20250321T000000Z",
        "/l/j.log.20250321T000000Z-2", "/l/j.log.20250321T000000Z-10",
        "/l/j.log.20250322T000000Z",   "/l/j.log",
    };
    gw_journal_sort_files(in, 8);
    for (int i = 0; i < 8; i++)
        ck_assert_str_eq(in[i], want[i]);
}
END_TEST

START_TEST(list_files)
{
    const char *names_on_disk[] = {
        "j.log",   "j.log.20250102T000000Z",    "j.log.20250101T000000Z",
        "j.log.1", "j.log.20250101T000000Z.gz", "k.log.20250101T000000Z"};
    for (size_t i = 0; i < 6; i++) {
        FILE *f = fopen(tpath(names_on_disk[i]), "w");
        ck_assert_ptr_nonnull(f);
        fclose(f);
    }
    char **files = NULL, *err = NULL;
    size_t n = 0;
    ck_assert_int_eq(gw_journal_list_files(tpath("j.log"), &files, &n, &err), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(files[0], tpath("j.log.20250101T000000Z"));
    ck_assert_str_eq(files[1], tpath("j.log.20250102T000000Z"));
    ck_assert_str_eq(files[2], tpath("j.log"));
    gw_journal_free_files(files, n);

    ck_assert_int_eq(gw_journal_list_files(tpath("none.log"), &files, &n, &err), -1);
    ck_assert_ptr_nonnull(err);
    free(err);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Verifier: one file                                                       */
/* ------------------------------------------------------------------------ */

#define NREC 10

static void ten(struct jn *j)
{
    jn_init(j, 1, zeros64);
    for (int i = 0; i < NREC; i++)
        jn_rec(j);
}

START_TEST(intact_single_file)
{
    struct jn j;
    ten(&j);
    const char *p = tpath("j.log");
    write_jn(p, &j, 0, NREC);
    gw_journal_verify_result res;
    char *rep, want[1024];
    ck_assert_int_eq(run(&p, 1, NULL, &res, &rep), 0);
    snprintf(want, sizeof(want),
             "info: chain starts at seq 1 (genesis)\n"
             "info: no checkpoint: none of the 10 records is signed; a truncation would not be "
             "detectable\n"
             "info: head seq=10 hash=%s\n"
             "OK: 10 records in 1 file, chain intact\n",
             j.head);
    ck_assert_str_eq(rep, want);
    ck_assert_int_eq(res.kind, GW_JV_OK);
    ck_assert_uint_eq(res.records, NREC);
    ck_assert_uint_eq(res.first_seq, 1);
    ck_assert_uint_eq(res.last_seq, NREC);
    ck_assert_str_eq(res.last_hash, j.head);
    ck_assert_int_eq(res.start_covered, 1);
    ck_assert_int_eq(gw_journal_verify(&p, 1, NULL, NULL), 0);
    free(rep);
    jn_free(&j);
}
END_TEST

typedef void (*mutator)(struct lines *L, const struct jn *j);

/* Lines are 0-based here; the reports' line numbers are 1-based. */
static void m_field(struct lines *L, const struct jn *j)
{
    lines_edit(L, 3, "\"status\":200", "\"status\":403");
}
static void m_prev(struct lines *L, const struct jn *j)
{
    lines_flip(L, 3, "prev");
}
static void m_hash(struct lines *L, const struct jn *j)
{
    lines_flip(L, 3, "hash");
}
static void m_seq(struct lines *L, const struct jn *j)
{
    lines_edit(L, 3, "\"seq\":4,", "\"seq\":9,");
}
static void m_rehash(struct lines *L, const struct jn *j)
{
    /* The field is changed and the record's own hash recomputed, not the
     * next record's prev. */
    lines_edit(L, 3, "\"status\":200", "\"status\":403");
    struct lines one = {.l = {L->l[0], L->l[1], L->l[2], L->l[3]}, .n = 4};
    lines_rechain(&one, 3);
    L->l[3] = one.l[3];
}
static void m_delete(struct lines *L, const struct jn *j)
{
    lines_delete(L, 3, 1);
}
static void m_delete3(struct lines *L, const struct jn *j)
{
    lines_delete(L, 3, 3);
}
static void m_insert_forged_before(struct lines *L, const struct jn *j)
{
    /* Claims seq 4 and links to seq 3 with a valid hash: the genuine seq 4
     * follows, and seq 5 links to the genuine one. */
    char h[65];
    char *f = chain_obj("{\"v\":1,\"n\":99,\"status\":200}", 4, j->h[2], h);
    lines_insert(L, 3, f);
    free(f);
}
static void m_insert_forged_after(struct lines *L, const struct jn *j)
{
    char h[65];
    char *f = chain_obj("{\"v\":1,\"n\":99,\"status\":200}", 4, j->h[2], h);
    lines_insert(L, 4, f);
    free(f);
}
static void m_insert_top(struct lines *L, const struct jn *j)
{
    char h[65];
    char *f = chain_obj("{\"v\":1,\"n\":0}", 1, zeros64, h);
    lines_insert(L, 0, f);
    free(f);
}
static void m_insert_copy(struct lines *L, const struct jn *j)
{
    lines_insert(L, 5, j->l[1]);
}
static void m_insert_bad_hash(struct lines *L, const struct jn *j)
{
    lines_insert(L, 3, j->l[3]);
    lines_edit(L, 3, "\"status\":200", "\"status\":201");
}
static void m_insert_far_seq(struct lines *L, const struct jn *j)
{
    char h[65];
    char *f = chain_obj("{\"v\":1,\"n\":99}", 100, P64, h);
    lines_insert(L, 3, f);
    free(f);
}
static void m_swap(struct lines *L, const struct jn *j)
{
    char *t = L->l[3];
    L->l[3] = L->l[4];
    L->l[4] = t;
}
static void m_move_far(struct lines *L, const struct jn *j)
{
    char *t = L->l[3]; /* seq 4 after seq 7 */
    memmove(&L->l[3], &L->l[4], 3 * sizeof(char *));
    L->l[6] = t;
}
static void m_move_back(struct lines *L, const struct jn *j)
{
    char *t = L->l[7]; /* seq 8 right after seq 2 */
    memmove(&L->l[3], &L->l[2], 5 * sizeof(char *));
    L->l[2] = t;
}
static void m_restart(struct lines *L, const struct jn *j)
{
    char h[65];
    char *f = chain_obj("{\"v\":1,\"n\":1}", 1, zeros64, h);
    free(L->l[5]);
    L->l[5] = f;
    lines_rechain(L, 6);
}
static void m_malformed(struct lines *L, const struct jn *j)
{
    /* Valid hash, but a duplicate member. */
    lines_edit(L, 3, "\"status\":200", "\"status\":200,\"status\":403");
    lines_rechain(L, 3);
}

static const struct tamper {
    const char *name;
    mutator m;
    gw_jv_kind kind;
    size_t line;
    const char *msg; /* in the report, after "FILE:LINE: " */
} tampers[] = {
    {"modified field", m_field, GW_JV_MODIFIED, 4,
     "modified: record seq 4 does not match its hash"},
    {"modified prev", m_prev, GW_JV_MODIFIED, 4, "modified: record seq 4 does not match its hash"},
    {"modified hash", m_hash, GW_JV_MODIFIED, 4, "modified: record seq 4 does not match its hash"},
    {"modified seq", m_seq, GW_JV_MODIFIED, 4, "modified: record seq 9 does not match its hash"},
    {"modified, rehashed", m_rehash, GW_JV_MODIFIED, 4,
     "modified: record seq 4 was rewritten with its hash recomputed"},
    {"deleted line", m_delete, GW_JV_DELETED, 4,
     "deleted: record seq 4 is missing before this line"},
    {"deleted lines", m_delete3, GW_JV_DELETED, 4,
     "deleted: records seq 4..6 are missing before this line"},
    {"inserted before", m_insert_forged_before, GW_JV_INSERTED, 4,
     "inserted: this line (seq 4) is not part of the chain"},
    {"inserted after", m_insert_forged_after, GW_JV_INSERTED, 5,
     "inserted: this line (seq 4) is not part of the chain"},
    {"inserted at the top", m_insert_top, GW_JV_INSERTED, 1,
     "inserted: this line (seq 1) is not part of the chain"},
    {"inserted copy", m_insert_copy, GW_JV_INSERTED, 6,
     "inserted: this line is a copy of record seq 2"},
    {"inserted bad hash", m_insert_bad_hash, GW_JV_INSERTED, 4,
     "inserted: this line (seq 4) is not part of the chain: seq 4 at"},
    {"inserted far seq", m_insert_far_seq, GW_JV_INSERTED, 4,
     "inserted: this line (seq 100) is not part of the chain"},
    {"swapped", m_swap, GW_JV_REORDERED, 4, "reordered: record seq 5 comes before seq 4 (at"},
    {"moved later", m_move_far, GW_JV_REORDERED, 4,
     "reordered: record seq 5 comes before seq 4 (at"},
    {"moved earlier", m_move_back, GW_JV_REORDERED, 3,
     "reordered: record seq 8 comes before seq 3 (at"},
    {"new chain", m_restart, GW_JV_START, 6, "start: a new chain starts here at seq 1"},
    {"duplicate member", m_malformed, GW_JV_MALFORMED, 4,
     "malformed: record seq 4: not one JSON object without duplicate members"},
};
#define N_TAMPERS (sizeof(tampers) / sizeof(tampers[0]))

START_TEST(tampered_single_file)
{
    const struct tamper *t = &tampers[_i];
    struct jn j;
    struct lines L;
    ten(&j);
    lines_from(&L, &j, 0, NREC);
    t->m(&L, &j);
    const char *p = tpath("j.log");
    write_lines(p, &L);
    gw_journal_verify_result res;
    char *rep, want[512], fail[512];
    int rc = run(&p, 1, NULL, &res, &rep);
    ck_assert_msg(rc == 1, "%s: rc %d, report:\n%s", t->name, rc, rep);
    ck_assert_msg(res.kind == t->kind, "%s: kind %s, report:\n%s", t->name,
                  gw_jv_kind_name(res.kind), rep);
    ck_assert_uint_eq(res.file, 0);
    ck_assert_msg(res.line == t->line, "%s: line %zu, report:\n%s", t->name, res.line, rep);
    snprintf(want, sizeof(want), "%s:%zu: %s", p, t->line, t->msg);
    ck_assert_msg(strstr(rep, want) != NULL, "%s: [%s] not in report:\n%s", t->name, want, rep);
    snprintf(fail, sizeof(fail), "FAIL: %s:%zu: %s\n", p, t->line, gw_jv_kind_name(t->kind));
    ck_assert_msg(strlen(rep) >= strlen(fail) &&
                      strcmp(rep + strlen(rep) - strlen(fail), fail) == 0,
                  "%s: last line is not [%s]:\n%s", t->name, fail, rep);
    free(rep);
    lines_free(&L);
    jn_free(&j);
}
END_TEST

/* What the attacker without the key achieves: one record rewritten and the
 * whole chain after it recomputed. Without a checkpoint nothing shows; the
 * checkpoint after it catches both ways of going on. */
START_TEST(rewritten_chain_needs_checkpoint)
{
    struct jn j;
    struct lines L;
    gw_jwk k = key_new("jrn-1");
    gw_keyset ks = {.keys = &k, .n = 1};
    gw_journal_verify_opts o = {.keys = &ks};
    gw_journal_verify_result res;
    char *rep;
    const char *p = tpath("j.log");

    ten(&j);
    lines_from(&L, &j, 0, NREC);
    lines_edit(&L, 2, "\"status\":200", "\"status\":404");
    lines_rechain(&L, 2);
    write_lines(p, &L);
    ck_assert_int_eq(run(&p, 1, &o, &res, &rep), 0); /* the documented limit */
    free(rep);
    lines_free(&L);
    jn_free(&j);

    /* Same, with a checkpoint (line 6) after the record. */
    jn_init(&j, 1, zeros64);
    for (int i = 0; i < 5; i++)
        jn_rec(&j);
    jn_checkpoint(&j, &k, NULL);
    for (int i = 0; i < 3; i++)
        jn_rec(&j);
    for (int variant = 0; variant < 2; variant++) {
        lines_from(&L, &j, 0, j.n);
        lines_edit(&L, 2, "\"status\":200", "\"status\":404");
        lines_rechain(&L, 2);
        if (variant == 1) {
            /* Also point the checkpoint's head_hash at the new chain. */
            const char *h = strstr(L.l[4], ",\"hash\":\"") + 9;
            char nh[65];
            memcpy(nh, h, 64);
            nh[64] = '\0';
            lines_edit(&L, 5, j.h[4], nh);
            lines_rechain(&L, 5);
        }
        write_lines(p, &L);
        ck_assert_int_eq(run(&p, 1, &o, &res, &rep), 1);
        ck_assert_int_eq(res.kind, GW_JV_CHECKPOINT);
        ck_assert_uint_eq(res.line, 6);
        ck_assert_ptr_nonnull(strstr(rep, variant == 0 ? "its head is not the record before it"
                                                       : "the signed head is not the record's"));
        free(rep);
        lines_free(&L);
    }
    jn_free(&j);
    EVP_PKEY_free(k.pkey);
}
END_TEST

/* Torn and foreign lines are warnings: they are not records, and the chain
 * shows whether a record is missing. */
START_TEST(torn_and_foreign_lines)
{
    struct jn j;
    struct lines L;
    gw_journal_verify_result res;
    char *rep;
    const char *p = tpath("j.log");
    ten(&j);

    /* Torn last line: half of record 10, no newline. */
    lines_from(&L, &j, 0, NREC);
    L.l[9][strlen(L.l[9]) / 2] = '\0';
    write_lines(p, &L);
    ck_assert_int_eq(run(&p, 1, NULL, &res, &rep), 0);
    ck_assert_uint_eq(res.warnings, 1);
    ck_assert_uint_eq(res.last_seq, 9);
    char want[300];
    snprintf(want, sizeof(want), "%s:10: warning: torn last line (not a chained record), skipped",
             p);
    ck_assert_msg(strstr(rep, want) != NULL, "no [%s] in:\n%s", want, rep);
    free(rep);
    lines_free(&L);

    /* A fragment ended by the writer, then the chain goes on; plus a foreign
     * line and an empty one. */
    lines_from(&L, &j, 0, NREC);
    lines_insert(&L, 4, "{\"v\":1,\"n\":5,\"seq\":5,\"pr\n");
    lines_insert(&L, 7, "{\"v\":1,\"note\":\"hello\"}\n");
    lines_insert(&L, 8, "\n");
    write_lines(p, &L);
    ck_assert_int_eq(run(&p, 1, NULL, &res, &rep), 0);
    ck_assert_uint_eq(res.warnings, 3);
    ck_assert_uint_eq(res.records, NREC);
    snprintf(want, sizeof(want), "%s:5: warning: torn or foreign line", p);
    ck_assert_msg(strstr(rep, want) != NULL, "no [%s] in:\n%s", want, rep);
    free(rep);
    lines_free(&L);

    /* A record cut where it matters: the chain shows the loss. */
    lines_from(&L, &j, 0, NREC);
    L.l[4][20] = '\n';
    L.l[4][21] = '\0';
    write_lines(p, &L);
    ck_assert_int_eq(run(&p, 1, NULL, &res, &rep), 1);
    ck_assert_int_eq(res.kind, GW_JV_DELETED);
    ck_assert_uint_eq(res.line, 6);
    free(rep);
    lines_free(&L);
    jn_free(&j);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Verifier: checkpoints and truncation                                     */
/* ------------------------------------------------------------------------ */

/* 5 records, checkpoint (seq 6), 5 records, checkpoint (seq 12), 3 records. */
static void with_checkpoints(struct jn *j, const gw_jwk *k)
{
    jn_init(j, 1, zeros64);
    for (int i = 0; i < 5; i++)
        jn_rec(j);
    jn_checkpoint(j, k, NULL);
    for (int i = 0; i < 5; i++)
        jn_rec(j);
    jn_checkpoint(j, k, NULL);
    for (int i = 0; i < 3; i++)
        jn_rec(j);
}

START_TEST(checkpoints_verify)
{
    struct jn j;
    gw_jwk k = key_new("jrn-1");
    gw_keyset ks = {.keys = &k, .n = 1};
    gw_journal_verify_opts o = {.keys = &ks};
    gw_journal_verify_result res;
    char *rep;
    const char *p = tpath("j.log");
    with_checkpoints(&j, &k);
    write_jn(p, &j, 0, j.n);

    ck_assert_int_eq(run(&p, 1, &o, &res, &rep), 0);
    ck_assert_uint_eq(res.checkpoints, 2);
    ck_assert_uint_eq(res.checkpoints_verified, 2);
    ck_assert_uint_eq(res.after_checkpoint, 3);
    ck_assert_ptr_nonnull(strstr(rep, "info: checkpoints: 2, signatures verified\n"));
    ck_assert_ptr_nonnull(strstr(rep, "info: 3 records after the last checkpoint: a truncation of "
                                      "these would not be detectable\n"));
    free(rep);

    ck_assert_int_eq(run(&p, 1, NULL, &res, &rep), 0);
    ck_assert_uint_eq(res.checkpoints, 2);
    ck_assert_uint_eq(res.checkpoints_verified, 0);
    ck_assert_ptr_nonnull(strstr(rep, "info: checkpoints: 2, signatures not checked (no keys)\n"));
    free(rep);
    jn_free(&j);
    EVP_PKEY_free(k.pkey);
}
END_TEST

/* _i: 0 signature altered, 1 signed by another key under the same kid, 2 an
 * unknown kid, 3 the head in the record changed. The chain after the
 * checkpoint is recomputed each time, so only the checkpoint can tell. */
START_TEST(checkpoint_tampered)
{
    struct jn j;
    struct lines L;
    gw_jwk k = key_new("jrn-1"), evil = key_new("jrn-1"), other = key_new("jrn-9");
    gw_keyset ks = {.keys = &k, .n = 1};
    gw_journal_verify_opts o = {.keys = &ks};
    gw_journal_verify_result res;
    char *rep;
    const char *p = tpath("j.log");
    static const char *const why[] = {"signature does not verify (jws.",
                                      "signature does not verify (jws.signature, kid jrn-1)",
                                      "signature does not verify (jws.unknown_kid, kid jrn-9)",
                                      "its head is not the record before it"};

    jn_init(&j, 1, zeros64);
    for (int i = 0; i < 5; i++)
        jn_rec(&j);
    jn_checkpoint(&j, _i == 1 ? &evil : _i == 2 ? &other : &k, NULL);
    for (int i = 0; i < 3; i++)
        jn_rec(&j);
    lines_from(&L, &j, 0, j.n);
    if (_i == 0) {
        char *s = strstr(L.l[5], "\"sig\":\"");
        s = strchr(s + 7, '.');
        s = strchr(s + 1, '.') + 5;
        *s = *s == 'A' ? 'B' : 'A';
    } else if (_i == 3) {
        lines_flip(&L, 5, "head_hash");
    }
    lines_rechain(&L, 5);
    write_lines(p, &L);
    ck_assert_int_eq(run(&p, 1, &o, &res, &rep), 1);
    ck_assert_int_eq(res.kind, GW_JV_CHECKPOINT);
    ck_assert_uint_eq(res.line, 6);
    ck_assert_msg(strstr(rep, why[_i]) != NULL, "no [%s] in:\n%s", why[_i], rep);
    free(rep);
    /* Without keys, only the head check remains. */
    ck_assert_int_eq(run(&p, 1, NULL, &res, &rep), _i == 3 ? 1 : 0);
    free(rep);
    lines_free(&L);
    jn_free(&j);
    EVP_PKEY_free(k.pkey);
    EVP_PKEY_free(evil.pkey);
    EVP_PKEY_free(other.pkey);
}
END_TEST

/* Cut before the last checkpoint: a valid prefix, undetectable from the file
 * alone; detected with the head known from elsewhere. */
START_TEST(truncated_before_last_checkpoint)
{
    struct jn j;
    gw_jwk k = key_new("jrn-1");
    gw_keyset ks = {.keys = &k, .n = 1};
    gw_journal_verify_result res;
    char *rep;
    const char *p = tpath("j.log");
    with_checkpoints(&j, &k);
    write_jn(p, &j, 0, 11); /* up to seq 11: the checkpoint seq 12 is gone */

    gw_journal_verify_opts o = {.keys = &ks};
    ck_assert_int_eq(run(&p, 1, &o, &res, &rep), 0);
    ck_assert_uint_eq(res.after_checkpoint, 5);
    free(rep);

    o.expect_seq = 12;
    o.expect_hash = j.h[11];
    ck_assert_int_eq(run(&p, 1, &o, &res, &rep), 1);
    ck_assert_int_eq(res.kind, GW_JV_TRUNCATED);
    ck_assert_uint_eq(res.line, 11);
    char want[300];
    snprintf(want, sizeof(want),
             "%s:11: truncated: the journal ends at seq 11; seq 12 was expected\n", p);
    ck_assert_msg(strstr(rep, want) != NULL, "no [%s] in:\n%s", want, rep);
    free(rep);

    /* The expected head must also have the expected hash. */
    write_jn(p, &j, 0, j.n);
    o.expect_hash = j.h[10];
    ck_assert_int_eq(run(&p, 1, &o, &res, &rep), 1);
    ck_assert_int_eq(res.kind, GW_JV_MODIFIED);
    ck_assert_uint_eq(res.line, 12);
    free(rep);
    jn_free(&j);
    EVP_PKEY_free(k.pkey);
}
END_TEST

/* Cut after the last checkpoint: what the report warns about. */
START_TEST(truncated_after_last_checkpoint)
{
    struct jn j;
    gw_jwk k = key_new("jrn-1");
    gw_keyset ks = {.keys = &k, .n = 1};
    gw_journal_verify_result res;
    char *rep;
    const char *p = tpath("j.log");
    with_checkpoints(&j, &k);
    write_jn(p, &j, 0, 13); /* 2 of the 3 records after seq 12 are gone */

    gw_journal_verify_opts o = {.keys = &ks, .expect_seq = 12, .expect_hash = j.h[11]};
    ck_assert_int_eq(run(&p, 1, &o, &res, &rep), 0);
    ck_assert_uint_eq(res.after_checkpoint, 1);
    ck_assert_uint_eq(res.last_seq, 13);
    ck_assert_ptr_nonnull(strstr(rep, "info: expected record seq 12 found\n"));
    ck_assert_ptr_nonnull(strstr(rep, "info: 1 records after the last checkpoint"));
    free(rep);
    jn_free(&j);
    EVP_PKEY_free(k.pkey);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Verifier: several files                                                  */
/* ------------------------------------------------------------------------ */

#define F1 "j.log.20250101T000000Z"
#define F2 "j.log.20250102T000000Z"

/* F1: seq 1-4; F2: rotate + 5 records (5-10); j.log: rotate + 3 records +
 * checkpoint (11-15). Returns the line index where each file starts. */
static void three_files(struct jn *j, const gw_jwk *k, int start[4])
{
    jn_init(j, 1, zeros64);
    start[0] = 0;
    for (int i = 0; i < 4; i++)
        jn_rec(j);
    start[1] = j->n;
    jn_rotate(j, F1);
    for (int i = 0; i < 5; i++)
        jn_rec(j);
    start[2] = j->n;
    jn_rotate(j, F2);
    for (int i = 0; i < 3; i++)
        jn_rec(j);
    jn_checkpoint(j, k, NULL);
    start[3] = j->n;
}

START_TEST(intact_multi_file)
{
    struct jn j;
    int s[4];
    gw_jwk k = key_new("jrn-1");
    gw_keyset ks = {.keys = &k, .n = 1};
    three_files(&j, &k, s);
    write_jn(tpath(F1), &j, s[0], s[1]);
    write_jn(tpath(F2), &j, s[1], s[2]);
    write_jn(tpath("j.log"), &j, s[2], s[3]);
    char **files = NULL, *err = NULL, *rep;
    size_t n;
    ck_assert_int_eq(gw_journal_list_files(tpath("j.log"), &files, &n, &err), 0);
    ck_assert_uint_eq(n, 3);
    gw_journal_verify_opts o = {.keys = &ks};
    gw_journal_verify_result res;
    ck_assert_int_eq(run((const char *const *)files, n, &o, &res, &rep), 0);
    ck_assert_uint_eq(res.records, 15);
    ck_assert_uint_eq(res.checkpoints_verified, 1);
    ck_assert_uint_eq(res.after_checkpoint, 0);
    ck_assert_ptr_nonnull(strstr(rep, "OK: 15 records in 3 files, chain intact\n"));
    free(rep);

    /* Files given out of order: caught. */
    const char *wrong[] = {files[1], files[0], files[2]};
    ck_assert_int_eq(run(wrong, 3, &o, &res, &rep), 1);
    ck_assert_int_eq(res.kind, GW_JV_REORDERED);
    ck_assert_uint_eq(res.file, 1);
    ck_assert_uint_eq(res.line, 1);
    ck_assert_ptr_nonnull(strstr(rep, "reordered: this file starts at seq 1, after seq 10"));
    free(rep);
    gw_journal_free_files(files, n);
    jn_free(&j);
    EVP_PKEY_free(k.pkey);
}
END_TEST

/* The tail of a rotated file was cut: the next file does not link. */
START_TEST(gap_across_rotation)
{
    struct jn j;
    int s[4];
    gw_jwk k = key_new("jrn-1");
    three_files(&j, &k, s);
    write_jn(tpath(F1), &j, s[0], s[1] - 2); /* seq 3 and 4 cut */
    write_jn(tpath(F2), &j, s[1], s[2]);
    write_jn(tpath("j.log"), &j, s[2], s[3]);
    const char *files[] = {tpath(F1), tpath(F2), tpath("j.log")};
    gw_journal_verify_result res;
    char *rep, want[400];
    ck_assert_int_eq(run(files, 3, NULL, &res, &rep), 1);
    ck_assert_int_eq(res.kind, GW_JV_MISSING);
    ck_assert_uint_eq(res.file, 1);
    ck_assert_uint_eq(res.line, 1);
    snprintf(want, sizeof(want),
             "%s:1: missing: records seq 3..4 are missing after %s:2 (truncated tail of " F1
             ", deleted head of " F2 ", or a missing file)\n",
             files[1], files[0]);
    ck_assert_msg(strstr(rep, want) != NULL, "no [%s] in:\n%s", want, rep);
    free(rep);
    jn_free(&j);
    EVP_PKEY_free(k.pkey);
}
END_TEST

/* The middle file is gone: the rotate record of the next one names it. */
START_TEST(deleted_middle_file)
{
    struct jn j;
    int s[4];
    gw_jwk k = key_new("jrn-1");
    three_files(&j, &k, s);
    write_jn(tpath(F1), &j, s[0], s[1]);
    write_jn(tpath("j.log"), &j, s[2], s[3]);
    char **files = NULL, *err = NULL, *rep, want[400];
    size_t n;
    ck_assert_int_eq(gw_journal_list_files(tpath("j.log"), &files, &n, &err), 0);
    ck_assert_uint_eq(n, 2);
    gw_journal_verify_result res;
    ck_assert_int_eq(run((const char *const *)files, n, NULL, &res, &rep), 1);
    ck_assert_int_eq(res.kind, GW_JV_MISSING);
    ck_assert_uint_eq(res.file, 1);
    ck_assert_uint_eq(res.line, 1);
    snprintf(want, sizeof(want),
             "%s:1: missing: records seq 5..10 are missing after %s:4: file " F2 " is missing\n",
             files[1], files[0]);
    ck_assert_msg(strstr(rep, want) != NULL, "no [%s] in:\n%s", want, rep);
    free(rep);
    gw_journal_free_files(files, n);
    jn_free(&j);
    EVP_PKEY_free(k.pkey);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Verifier: where the chain starts                                         */
/* ------------------------------------------------------------------------ */

/* _i: 0 no retention record (information only), 1 a retention record that
 * accounts for the start, 2 one that leaves a gap, 3 one that ends at the
 * right seq with another hash. */
START_TEST(start_mid_chain)
{
    struct jn j;
    jn_init(&j, 1, zeros64);
    for (int i = 0; i < 10; i++)
        jn_rec(&j); /* seq 1-10; F1 held 1-5 and was deleted */
    unsigned long long last = _i == 2 ? 3 : 5;
    const char *lh = _i == 3 ? P64 : j.h[last - 1];
    jn_rotate(&j, F2);
    if (_i > 0)
        jn_retention(&j, F1, 1, last, lh);
    jn_rec(&j);
    write_jn(tpath(F2), &j, 5, 10);
    write_jn(tpath("j.log"), &j, 10, j.n);
    const char *files[] = {tpath(F2), tpath("j.log")};
    gw_journal_verify_result res;
    char *rep;
    int rc = run(files, 2, NULL, &res, &rep);
    switch (_i) {
    case 0:
        ck_assert_int_eq(rc, 0);
        ck_assert_int_eq(res.start_covered, 0);
        ck_assert_ptr_nonnull(strstr(rep, "info: chain starts at seq 6 (earlier records not "
                                          "present)\n"));
        break;
    case 1:
        ck_assert_int_eq(rc, 0);
        ck_assert_int_eq(res.start_covered, 1);
        ck_assert_ptr_nonnull(strstr(rep, "info: chain starts at seq 6 after the records deleted "
                                          "by retention"));
        break;
    default:
        ck_assert_int_eq(rc, 1);
        ck_assert_int_eq(res.kind, GW_JV_START);
        ck_assert_uint_eq(res.file, 0);
        ck_assert_uint_eq(res.line, 1);
        ck_assert_ptr_nonnull(strstr(rep, _i == 2 ? "start: records seq 4..5 are missing"
                                                  : "start: record seq 6 does not link"));
        break;
    }
    ck_assert_uint_eq(res.first_seq, 6);
    free(rep);
    jn_free(&j);
}
END_TEST

START_TEST(unreadable_and_empty)
{
    const char *files[] = {tpath("none.log")};
    gw_journal_verify_result res;
    char *rep;
    ck_assert_int_eq(run(files, 1, NULL, &res, &rep), 2);
    ck_assert_int_eq(res.kind, GW_JV_IO);
    ck_assert_ptr_nonnull(strstr(rep, "io: cannot read: No such file or directory"));
    free(rep);
    ck_assert_int_eq(run(files, 0, NULL, &res, &rep), 2);
    free(rep);

    /* An empty file: nothing to verify, nothing wrong. */
    FILE *f = fopen(tpath("j.log"), "w");
    fclose(f);
    files[0] = tpath("j.log");
    ck_assert_int_eq(run(files, 1, NULL, &res, &rep), 0);
    ck_assert_uint_eq(res.records, 0);
    free(rep);
    /* ... unless a head was expected. */
    gw_journal_verify_opts o = {.expect_seq = 3, .expect_hash = P64};
    ck_assert_int_eq(run(files, 1, &o, &res, &rep), 1);
    ck_assert_int_eq(res.kind, GW_JV_TRUNCATED);
    free(rep);
}
END_TEST

static Suite *verify_suite(void)
{
    Suite *s = suite_create("verify");
    TCase *tc = tcase_create("primitives");
    tcase_add_checked_fixture(tc, setup_dir, teardown_dir);
    tcase_add_test(tc, parse_link_and_hash);
    tcase_add_loop_test(tc, parse_link_rejects, 0, N_BAD_LINKS);
    tcase_add_test(tc, parse_link_max_seq);
    tcase_add_loop_test(tc, rotated_names, 0, N_NAMES);
    tcase_add_test(tc, sort_files);
    tcase_add_test(tc, list_files);
    suite_add_tcase(s, tc);

    tc = tcase_create("verifier");
    tcase_add_checked_fixture(tc, setup_dir, teardown_dir);
    tcase_add_test(tc, intact_single_file);
    tcase_add_loop_test(tc, tampered_single_file, 0, N_TAMPERS);
    tcase_add_test(tc, rewritten_chain_needs_checkpoint);
    tcase_add_test(tc, torn_and_foreign_lines);
    tcase_add_test(tc, checkpoints_verify);
    tcase_add_loop_test(tc, checkpoint_tampered, 0, 4);
    tcase_add_test(tc, truncated_before_last_checkpoint);
    tcase_add_test(tc, truncated_after_last_checkpoint);
    tcase_add_test(tc, intact_multi_file);
    tcase_add_test(tc, gap_across_rotation);
    tcase_add_test(tc, deleted_middle_file);
    tcase_add_loop_test(tc, start_mid_chain, 0, 4);
    tcase_add_test(tc, unreadable_and_empty);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(verify_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
