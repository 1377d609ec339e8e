/*
 * opale-gateway --extract -c FILE [--consumer ID] [--siren S] [--from ISO]
 * [--to ISO] JOURNAL...   and   opale-gateway --verify-extract -c FILE EXTRACT
 *
 * An extract is JSON Lines (docs/journal.md, "Verified extracts"):
 *   line 1      header {"type":"opale.extract","v":1,...,"segments":[[A,C],...],
 *               "matches":[seq,...]}
 *   then        for each segment, the journal lines seq A..C verbatim: A is a
 *               matching record, C the first signed checkpoint after the
 *               segment's last matching record
 *   last line   {"signature":"<JWS>"} over every byte before it
 * Each segment is a piece of the chain that ends in a signed checkpoint: it
 * proves its records were in the gateway's chain without the rest of it.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "evidence/evidence.h"
#include "token/jose.h"

typedef struct ex_filter {
    const char *consumer, *siren;
    int64_t from, to; /* -1: open */
} ex_filter;

/* 1 when access record <o> (ts <ts_ms>) matches <f>. */
static int matches(const json_t *o, int64_t ts_ms, const ex_filter *f)
{
    if (gw_ev_str(o, "type") != NULL)
        return 0;
    if (f->consumer != NULL) {
        const char *c = gw_ev_str(o, "consumer"), *cid = gw_ev_str(o, "client_id");
        if (!((c && strcmp(c, f->consumer) == 0) || (cid && strcmp(cid, f->consumer) == 0)))
            return 0;
    }
    if (f->siren != NULL) {
        const char *s = gw_ev_str(o, "siren");
        if (s == NULL || strcmp(s, f->siren) != 0)
            return 0;
    }
    if ((f->from >= 0 || f->to >= 0) && ts_ms < 0)
        return 0;
    if (f->from >= 0 && ts_ms < f->from)
        return 0;
    if (f->to >= 0 && ts_ms >= f->to)
        return 0;
    return 1;
}

int gw_evidence_extract_main(int argc, char **argv, int first)
{
    gw_ev_args args;
    if (gw_ev_parse_args(argc, argv, first, "-c --consumer --siren --from --to", 0, &args) < 0 ||
        args.conf == NULL || args.nfiles == 0) {
        fprintf(stderr, "usage: opale-gateway --extract -c FILE [--consumer ID] [--siren S] "
                        "[--from ISO] [--to ISO] JOURNAL...\n");
        gw_ev_args_clear(&args);
        return 2;
    }
    ex_filter f = {
        .consumer = args.consumer, .siren = args.siren, .from = args.from, .to = args.to};
    gw_ev_conf c;
    gw_ev_journal j;
    json_t *hdr = NULL;
    char *body = NULL;
    size_t blen = 0;
    FILE *o = NULL;
    int rc = gw_ev_open("extract", &args, &c, &j);
    if (rc != 0)
        goto out;
    rc = 1;
    /* segments: from a matching record to the first checkpoint after it
     * (and after every match in between) */
    json_t *segs = json_array(), *ms = json_array();
    size_t uncovered = 0, nmatch = 0;
    size_t seg_start = SIZE_MAX;
    for (size_t i = 0; i < j.n; i++) {
        const gw_ev_rec *r = &j.recs[i];
        if (matches(r->obj, r->ts_ms, &f)) {
            if (j.last_checkpoint == SIZE_MAX || i > j.last_checkpoint) {
                uncovered++;
                continue;
            }
            if (seg_start == SIZE_MAX)
                seg_start = i;
            json_array_append_new(ms, json_integer((json_int_t)r->seq));
            nmatch++;
        } else if (seg_start != SIZE_MAX && r->type != NULL && strcmp(r->type, "checkpoint") == 0) {
            json_array_append_new(
                segs, json_pack("[I,I]", (json_int_t)j.recs[seg_start].seq, (json_int_t)r->seq));
            seg_start = SIZE_MAX;
        }
    }
    char now[32], fs[32] = "", ts[32] = "";
    gw_ev_now(now);
    if (f.from >= 0)
        gw_ev_format_time(f.from, fs);
    if (f.to >= 0)
        gw_ev_format_time(f.to, ts);
    json_t *jf = json_array();
    for (size_t i = 0; i < j.nfiles; i++)
        json_array_append_new(jf, json_string(j.files[i]));
    hdr = json_pack("{s:s,s:i,s:s,s:{s:s?,s:s?,s:s?,s:s?},s:{s:o,s:I,s:s},s:o,s:o,s:I}", "type",
                    "opale.extract", "v", 1, "created", now, "filter", "consumer", f.consumer,
                    "siren", f.siren, "from", f.from >= 0 ? fs : NULL, "to", f.to >= 0 ? ts : NULL,
                    "journal", "files", jf, "head_seq", (json_int_t)j.res.last_seq, "head_hash",
                    j.res.last_hash, "segments", segs, "matches", ms, "uncovered",
                    (json_int_t)uncovered);
    o = open_memstream(&body, &blen);
    if (hdr == NULL || o == NULL)
        goto out;
    json_dumpf(hdr, o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    fputc('\n', o);
    size_t i;
    json_t *sg;
    size_t k = 0;
    json_array_foreach(segs, i, sg)
    {
        uint64_t a = (uint64_t)json_integer_value(json_array_get(sg, 0));
        uint64_t b = (uint64_t)json_integer_value(json_array_get(sg, 1));
        while (k < j.n && j.recs[k].seq < a)
            k++;
        for (; k < j.n && j.recs[k].seq <= b; k++) {
            fwrite(j.recs[k].line, 1, j.recs[k].len, o);
            fputc('\n', o);
        }
    }
    fclose(o);
    o = NULL;
    rc = gw_ev_emit(&c, "extract", "evidence.extract", body, blen, GW_EV_SIG_JSON);
    if (rc != 0)
        goto out;
    if (uncovered > 0)
        fprintf(stderr,
                "opale-gateway: extract: %zu matching records after the last signed checkpoint "
                "are left out (no checkpoint proves them yet)\n",
                uncovered);
    fprintf(stderr, "opale-gateway: extract: %zu matching records\n", nmatch);
out:
    if (o != NULL)
        fclose(o);
    free(body);
    json_decref(hdr);
    gw_ev_journal_clear(&j);
    gw_ev_conf_clear(&c);
    gw_ev_args_clear(&args);
    return rc;
}

/* Check the checkpoint <cp> (parsed) whose previous record is <prev>: head,
 * signature with <keys>, signed content. NULL or a reason (static). */
static const char *check_checkpoint(const gw_ev_rec *cp, const gw_ev_rec *prev,
                                    const gw_keyset *keys, char *kid_out)
{
    const char *sig = gw_ev_str(cp->obj, "sig"), *kid = gw_ev_str(cp->obj, "kid"),
               *hh = gw_ev_str(cp->obj, "head_hash"), *ts = gw_ev_str(cp->obj, "ts");
    long long hs = gw_ev_int(cp->obj, "head_seq");
    if (sig == NULL || kid == NULL || hh == NULL || ts == NULL || hs < 0)
        return "a checkpoint lacks its members";
    if ((uint64_t)hs != prev->seq || strcmp(hh, prev->hash) != 0)
        return "a checkpoint's head is not the record before it";
    static const gw_alg algs[] = {GW_ALG_ES256, GW_ALG_RS256, GW_ALG_PS256, GW_ALG_EDDSA};
    gw_jws_rules rules = {.algs = algs, .nalgs = 4, .allow_high_s = 1};
    const gw_keyset *sets[1] = {keys};
    gw_jws v;
    memset(&v, 0, sizeof(v));
    if (gw_jws_verify(sig, strlen(sig), sets, 1, &rules, &v) != NULL)
        return "a checkpoint's signature does not verify";
    const char *pk = json_string_value(json_object_get(v.header, "kid"));
    const char *pp = gw_ev_str(v.payload, "purpose"), *ph = gw_ev_str(v.payload, "head_hash"),
               *pt = gw_ev_str(v.payload, "ts");
    json_t *ps = json_object_get(v.payload, "head_seq");
    int same = pk && strcmp(pk, kid) == 0 && pp && strcmp(pp, "journal.checkpoint") == 0 && ph &&
               strcmp(ph, hh) == 0 && pt && strcmp(pt, ts) == 0 && json_is_integer(ps) &&
               json_integer_value(ps) == hs;
    snprintf(kid_out, 65, "%s", kid);
    gw_jws_clear(&v);
    return same ? NULL : "a checkpoint's signed content is not the record's";
}

/* Verify the extract <doc>/<len>; prints the outcome. 0 OK, 1 FAIL. */
static int verify_extract(const char *name, const char *doc, size_t len, const gw_keyset *keys)
{
    size_t body_len = 0;
    char *purpose = NULL;
    const char *why = gw_ev_verify_signed(doc, len, keys, &purpose, NULL, NULL, &body_len);
    if (why == NULL && strcmp(purpose, "evidence.extract") != 0)
        why = "the signature is not an extract's";
    free(purpose);
    json_t *hdr = NULL;
    gw_ev_rec *recs = NULL;
    size_t n = 0, cap = 0, ncp = 0;
    char kid[65] = "";
    if (why != NULL)
        goto out;
    const char *nl = memchr(doc, '\n', body_len);
    hdr = nl ? json_loadb(doc, (size_t)(nl - doc), JSON_REJECT_DUPLICATES, NULL) : NULL;
    const char *t = gw_ev_str(hdr, "type");
    json_t *segs = json_object_get(hdr, "segments"), *ms = json_object_get(hdr, "matches");
    json_t *filt = json_object_get(hdr, "filter");
    if (t == NULL || strcmp(t, "opale.extract") != 0 || gw_ev_int(hdr, "v") != 1 ||
        !json_is_array(segs) || !json_is_array(ms) || !json_is_object(filt)) {
        why = "the first line is not an extract header";
        goto out;
    }
    ex_filter f = {.consumer = gw_ev_str(filt, "consumer"),
                   .siren = gw_ev_str(filt, "siren"),
                   .from = -1,
                   .to = -1};
    if ((gw_ev_str(filt, "from") && gw_ev_parse_time(gw_ev_str(filt, "from"), &f.from) < 0) ||
        (gw_ev_str(filt, "to") && gw_ev_parse_time(gw_ev_str(filt, "to"), &f.to) < 0)) {
        why = "the header's filter is invalid";
        goto out;
    }
    for (size_t pos = (size_t)(nl - doc) + 1; pos < body_len;) {
        const char *e = memchr(doc + pos, '\n', body_len - pos);
        size_t end = e ? (size_t)(e - doc) : body_len;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            gw_ev_rec *nr = realloc(recs, cap * sizeof(*nr));
            if (nr == NULL) {
                why = "out of memory";
                goto out;
            }
            recs = nr;
        }
        gw_journal_link l;
        if (gw_journal_parse_link(doc + pos, end - pos, &l) < 0 ||
            !gw_journal_link_ok(doc + pos, &l) ||
            gw_ev_rec_parse(doc + pos, end - pos, &recs[n]) < 0) {
            why = "a record does not match its hash";
            goto out;
        }
        n++;
        pos = end + 1;
    }
    /* the records are the segments, each a piece of chain ending in a
     * verified checkpoint */
    size_t k = 0, i;
    json_t *sg;
    uint64_t last_end = 0;
    json_array_foreach(segs, i, sg)
    {
        json_t *ja = json_array_get(sg, 0), *jb = json_array_get(sg, 1);
        if (!json_is_integer(ja) || !json_is_integer(jb) || json_integer_value(ja) < 1 ||
            json_integer_value(jb) <= json_integer_value(ja) ||
            (uint64_t)json_integer_value(ja) <= last_end) {
            why = "the header's segments are invalid";
            goto out;
        }
        uint64_t a = (uint64_t)json_integer_value(ja), b = (uint64_t)json_integer_value(jb);
        last_end = b;
        if (k >= n || recs[k].seq != a) {
            why = "a segment does not start where the header says";
            goto out;
        }
        for (k++; k < n && recs[k].seq <= b; k++) {
            if (recs[k].seq != recs[k - 1].seq + 1 || strcmp(recs[k].prev, recs[k - 1].hash) != 0) {
                why = "a record does not link to the one before it";
                goto out;
            }
        }
        const gw_ev_rec *cp = &recs[k - 1];
        if (cp->seq != b || cp->type == NULL || strcmp(cp->type, "checkpoint") != 0 || k - 1 == 0 ||
            recs[k - 2].seq + 1 != b) {
            why = "a segment does not end in a checkpoint";
            goto out;
        }
        if ((why = check_checkpoint(cp, &recs[k - 2], keys, kid)) != NULL)
            goto out;
        ncp++;
    }
    if (k != n) {
        why = "records outside the header's segments";
        goto out;
    }
    /* the matches are exactly the records of the segments that match the
     * filter */
    size_t mi = 0, nm = 0;
    for (k = 0; k < n; k++) {
        if (!matches(recs[k].obj, recs[k].ts_ms, &f))
            continue;
        json_t *m = json_array_get(ms, mi++);
        if (!json_is_integer(m) || (uint64_t)json_integer_value(m) != recs[k].seq) {
            why = "the header's matches are not the records that match the filter";
            goto out;
        }
        nm++;
    }
    if (mi != json_array_size(ms))
        why = "the header's matches are not the records that match the filter";
out:
    if (why != NULL) {
        printf("FAIL: %s: %s\n", name, why);
    } else {
        printf("OK: %s: %zu matching records, %zu records in %zu segments, %zu checkpoints "
               "verified%s%s%s, extract signature verified\n",
               name, nm, n, json_array_size(segs), ncp, ncp ? " (kid " : "", ncp ? kid : "",
               ncp ? ")" : "");
    }
    for (size_t x = 0; x < n; x++)
        gw_ev_rec_clear(&recs[x]);
    free(recs);
    json_decref(hdr);
    return why != NULL ? 1 : 0;
}

int gw_evidence_verify_extract_main(int argc, char **argv, int first)
{
    gw_ev_conf c;
    const char *file;
    char *doc = NULL;
    size_t len = 0;
    int rc = gw_ev_open_document(
        argc, argv, first, "opale-gateway --verify-extract -c FILE EXTRACT", &c, &file, &doc, &len);
    if (rc == 0)
        rc = verify_extract(file, doc, len, &c.oauth->own);
    free(doc);
    gw_ev_conf_clear(&c);
    return rc;
}
