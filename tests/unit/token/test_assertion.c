/* Unit tests for gateway/token/assertion.c: the grant + MAC backend assertion
 * (builder, per-worker cache, verifier), the per_request mode, and the MAC
 * against an independent HMAC of the format docs/oauth2.md documents. */
#include <check.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "token/assertion.h"
#include "token/oauth.h"

#define NOW ((time_t)1790000040) /* second 0 of a minute: 1790000040 % 60 == 0 */
#define KEY "0123456789abcdef0123456789abcdef-shared"
#define TARGET "/opale/v1/entreprises/732829320/declarations?annee=2023"
#define RID "5f0c2e9b-8d7a-4f5e-9d3c-2b1a0f9e8d7c"

static char dir[64];
static gw_conf conf;
static gw_oauth *oauth;

static void write_file(const char *name, const char *text)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static gw_oauth *load(const char *json)
{
    json_error_t je;
    gw_errlist errs;
    memset(&errs, 0, sizeof(errs));
    conf.oauth = json_loads(json, 0, &je);
    ck_assert_ptr_nonnull(conf.oauth);
    gw_oauth *o = gw_oauth_load(&conf, &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.msgs[i]);
    json_decref(conf.oauth);
    conf.oauth = NULL;
    return o;
}

static void setup(void)
{
    strcpy(dir, "/tmp/test_assert.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    char p[128];
    snprintf(p, sizeof(p), "%s/es.pem", dir);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    EVP_PKEY_free(k);
    write_file("mac.key", KEY "\n");
    memset(&conf, 0, sizeof(conf));
    conf.path = "gw.json";
    conf.dir = dir;
    oauth = load("{\"issuer\":\"https://gw.test\",\"assertion_mac_key_file\":\"mac.key\","
                 "\"signing_keys\":[{\"kid\":\"k-es\",\"file\":\"es.pem\",\"active\":true}]}");
    ck_assert_ptr_nonnull(oauth);
}

static void teardown(void)
{
    gw_oauth_free(oauth);
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static gw_assertion_req req(time_t now)
{
    return (gw_assertion_req){
        .client_id = "commune-sandbox",
        .habilitation = "H456",
        .env = GW_ENV_SANDBOX,
        .scope = "api_opale_declarations api_opale_creances",
        .request_id = RID,
        .method = "GET",
        .target = TARGET,
        .target_len = strlen(TARGET),
        .now = now,
    };
}

static gw_assertion_rules rules(time_t now)
{
    return (gw_assertion_rules){
        .keys = &oauth->own,
        .issuer = "https://gw.test",
        .audience = "opale-backend",
        .mac_key = (const unsigned char *)KEY,
        .mac_key_len = strlen(KEY),
        .now = now,
        .leeway_s = 5,
        .skew_s = 30,
    };
}

static gw_assertion_seen seen(const gw_assertion_hdrs *h)
{
    return (gw_assertion_seen){
        .grant = h->assertion,
        .mac = h->mac,
        .request_id = RID,
        .consumer_id = "commune-sandbox",
        .method = "GET",
        .target = TARGET,
        .target_len = strlen(TARGET),
    };
}

static json_t *payload_of(const char *jws)
{
    const char *d1 = strchr(jws, '.'), *d2 = strchr(d1 + 1, '.');
    unsigned char *p = NULL;
    size_t n = 0;
    ck_assert_int_eq(gw_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &p, &n), 0);
    json_t *j = json_loadb((const char *)p, n, 0, NULL);
    free(p);
    ck_assert_ptr_nonnull(j);
    return j;
}

START_TEST(build_then_verify)
{
    gw_assert_cache *c = gw_assert_cache_new(oauth);
    ck_assert_ptr_nonnull(c);
    gw_assertion_req r = req(NOW + 7);
    gw_assertion_hdrs h;
    ck_assert_int_eq(gw_assertion_build(oauth, c, &r, &h), 0);
    ck_assert_ptr_null(h.owned);
    ck_assert_int_eq(strncmp(h.mac, "v1;t=1790000047;mac=", 20), 0);
    ck_assert_uint_eq(strlen(h.mac), 20 + 43);
    json_t *p = payload_of(h.assertion);
    ck_assert_str_eq(json_string_value(json_object_get(p, "client_id")), "commune-sandbox");
    ck_assert_str_eq(json_string_value(json_object_get(p, "sub")), "commune-sandbox");
    ck_assert_str_eq(json_string_value(json_object_get(p, "habilitation")), "H456");
    ck_assert_str_eq(json_string_value(json_object_get(p, "scope")),
                     "api_opale_declarations api_opale_creances");
    ck_assert_str_eq(json_string_value(json_object_get(p, "keytype")), "SANDBOX");
    ck_assert_str_eq(json_string_value(json_object_get(p, "mac")), "v1");
    ck_assert_str_eq(json_string_value(json_object_get(p, "aud")), "opale-backend");
    ck_assert_int_eq(json_integer_value(json_object_get(p, "exp")), NOW + 7 + 60);
    ck_assert_ptr_null(json_object_get(p, "request_id")); /* bound by the MAC instead */
    json_decref(p);

    gw_assertion_rules k = rules(NOW + 8);
    gw_assertion_seen s = seen(&h);
    time_t t = 0;
    ck_assert_ptr_null(gw_assertion_verify(&k, &s, &t));
    ck_assert_int_eq(t, NOW + 7);
    gw_assertion_hdrs_clear(&h);
    gw_assert_cache_free(c);
}
END_TEST

/* Each row changes one thing between what was MACed and what is checked. */
enum {
    T_MAC,
    T_KEY,
    T_PATH,
    T_QUERY,
    T_RID,
    T_METHOD,
    T_CONSUMER,
    T_EXPIRED,
    T_STALE,
    T_FUTURE,
    T_GRANT,
    T_NOMAC,
    T_FORM1,
    T_FORM2,
    T_FORM3,
    T_ISS,
    T_AUD,
    T_COUNT
};

static const struct {
    const char *name, *why;
} tampers[T_COUNT] = {
    [T_MAC] = {"tampered_mac", "mac.mismatch"},
    [T_KEY] = {"wrong_key", "mac.mismatch"},
    [T_PATH] = {"path_changed", "mac.mismatch"},
    [T_QUERY] = {"query_changed", "mac.mismatch"},
    [T_RID] = {"request_id_changed", "mac.mismatch"},
    [T_METHOD] = {"method_changed", "mac.mismatch"},
    [T_CONSUMER] = {"consumer_changed", "grant.consumer"},
    [T_EXPIRED] = {"grant_expired", "grant.expired"},
    [T_STALE] = {"mac_too_old", "mac.stale"},
    [T_FUTURE] = {"mac_in_the_future", "mac.stale"},
    [T_GRANT] = {"grant_resigned_by_another_key", "grant.signature"},
    [T_NOMAC] = {"no_mac", "mac.malformed"},
    [T_FORM1] = {"mac_leading_zero", "mac.malformed"},
    [T_FORM2] = {"mac_short", "mac.malformed"},
    [T_FORM3] = {"mac_version", "mac.malformed"},
    [T_ISS] = {"other_issuer", "grant.claims"},
    [T_AUD] = {"other_audience", "grant.claims"},
};

START_TEST(tampered)
{
    gw_assert_cache *c = gw_assert_cache_new(oauth);
    gw_assertion_req r = req(NOW);
    gw_assertion_hdrs h;
    ck_assert_int_eq(gw_assertion_build(oauth, c, &r, &h), 0);
    gw_assertion_rules k = rules(NOW + 1);
    gw_assertion_seen s = seen(&h);
    char mac[GW_MAC_VALUE_MAX];
    snprintf(mac, sizeof(mac), "%s", h.mac);
    char *forged = NULL;
    gw_jwk other = {0};
    switch (_i) {
    case T_MAC:
        mac[30] = mac[30] == 'A' ? 'B' : 'A';
        s.mac = mac;
        break;
    case T_KEY:
        k.mac_key = (const unsigned char *)"another key, 32 bytes or more....";
        k.mac_key_len = 33;
        break;
    case T_PATH:
        s.target = "/opale/v1/entreprises/552100554/declarations?annee=2023";
        s.target_len = strlen(s.target);
        break;
    case T_QUERY:
        s.target = "/opale/v1/entreprises/732829320/declarations?annee=2022";
        s.target_len = strlen(s.target);
        break;
    case T_RID:
        s.request_id = "5f0c2e9b-8d7a-4f5e-9d3c-2b1a0f9e8d7d";
        break;
    case T_METHOD:
        s.method = "HEAD";
        break;
    case T_CONSUMER:
        s.consumer_id = "departement-sandbox";
        break;
    case T_EXPIRED:
        /* a MAC made now for a grant past its exp + leeway */
        k.now = NOW + 60 + 6;
        {
            unsigned char md[32];
            SHA256((const unsigned char *)h.assertion, strlen(h.assertion), md);
            char *gh = gw_b64url_encode(md, 32);
            ck_assert_int_eq(gw_assertion_mac(k.mac_key, k.mac_key_len, (long long)k.now, RID,
                                              "GET", TARGET, strlen(TARGET), gh, mac),
                             0);
            free(gh);
        }
        s.mac = mac;
        break;
    case T_STALE:
        k.now = NOW + 31;
        break;
    case T_FUTURE:
        k.now = NOW - 31;
        break;
    case T_GRANT: {
        /* the same claims signed by another P-256 key under our kid, with a
         * MAC made with the right key over that grant */
        EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        other = (gw_jwk){.alg = GW_ALG_ES256, .pkey = pk, .can_sign = 1};
        strcpy(other.kid, "k-es");
        json_t *p = payload_of(h.assertion);
        forged = gw_jws_sign(&other, "JWT", p);
        json_decref(p);
        ck_assert_ptr_nonnull(forged);
        unsigned char md[32];
        SHA256((const unsigned char *)forged, strlen(forged), md);
        char *gh = gw_b64url_encode(md, 32);
        ck_assert_int_eq(gw_assertion_mac(k.mac_key, k.mac_key_len, (long long)NOW, RID, "GET",
                                          TARGET, strlen(TARGET), gh, mac),
                         0);
        free(gh);
        s.grant = forged;
        s.mac = mac;
        break;
    }
    case T_NOMAC:
        s.mac = NULL;
        break;
    case T_FORM1:
        memmove(mac + 6, mac + 5, strlen(mac + 5) + 1); /* "v1;t=0NNN…" */
        mac[5] = '0';
        s.mac = mac;
        break;
    case T_FORM2:
        mac[strlen(mac) - 1] = '\0';
        s.mac = mac;
        break;
    case T_FORM3:
        mac[1] = '2';
        s.mac = mac;
        break;
    case T_ISS:
        k.issuer = "https://other.test";
        break;
    case T_AUD:
        k.audience = "another-backend";
        break;
    }
    const char *why = gw_assertion_verify(&k, &s, NULL);
    ck_assert_msg(why != NULL && strcmp(why, tampers[_i].why) == 0, "%s: got %s, want %s",
                  tampers[_i].name, why ? why : "(valid)", tampers[_i].why);
    free(forged);
    gw_jwk_clear(&other);
    gw_assertion_hdrs_clear(&h);
    gw_assert_cache_free(c);
}
END_TEST

/* The MAC is the documented HMAC-SHA256, computed here without the gateway. */
START_TEST(mac_known_format)
{
    char out[GW_MAC_VALUE_MAX];
    const char *gh = "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU";
    ck_assert_int_eq(gw_assertion_mac((const unsigned char *)KEY, strlen(KEY), 1790000047LL, RID,
                                      "GET", TARGET, strlen(TARGET), gh, out),
                     0);
    char text[512];
    int n = snprintf(text, sizeof(text), "OPALE-GW-MAC-v1\n1790000047\n%s\nGET\n%s\n%s", RID,
                     TARGET, gh);
    unsigned char md[32];
    unsigned int ml = 0;
    ck_assert_ptr_nonnull(
        HMAC(EVP_sha256(), KEY, (int)strlen(KEY), (const unsigned char *)text, (size_t)n, md, &ml));
    char *b = gw_b64url_encode(md, 32);
    char want[GW_MAC_VALUE_MAX];
    snprintf(want, sizeof(want), "v1;t=1790000047;mac=%s", b);
    free(b);
    ck_assert_str_eq(out, want);
    /* a line feed in a field would make the input ambiguous: refused */
    ck_assert_int_eq(gw_assertion_mac((const unsigned char *)KEY, strlen(KEY), 1, "a\nb", "GET",
                                      TARGET, strlen(TARGET), gh, out),
                     -1);
}
END_TEST

/* The MAC equals OpenSSL's HMAC() over the documented text for keys of
 * every length around the block size (longer ones are digested first),
 * fields of every length, texts from one block to several (gathered in one
 * buffer or not), and the worker's cached key gives the same as a fresh one. */
START_TEST(mac_matches_hmac)
{
    static const size_t keylens[] = {0, 1, 31, 32, 55, 63, 64, 65, 100, 128, 200};
    unsigned seed = 99;
    unsigned char key[200];
    static char target[3100], text[3400];
    char rid[80], method[16], gh[50], out[GW_MAC_VALUE_MAX];
    for (size_t ki = 0; ki < sizeof(keylens) / sizeof(keylens[0]); ki++) {
        for (size_t i = 0; i < sizeof(key); i++)
            key[i] = (unsigned char)rand_r(&seed);
        for (int r = 0; r < 300; r++) {
            size_t rl = (size_t)rand_r(&seed) % 70,
                   tl = 1 + (size_t)rand_r(&seed) % (r % 3 ? 600 : 3000);
            size_t ml = 1 + (size_t)rand_r(&seed) % 7, gl = (size_t)rand_r(&seed) % 44;
            for (size_t i = 0; i < rl; i++)
                rid[i] = (char)('0' + rand_r(&seed) % 60);
            rid[rl] = '\0';
            for (size_t i = 0; i < ml; i++)
                method[i] = (char)('A' + rand_r(&seed) % 26);
            method[ml] = '\0';
            target[0] = '/';
            for (size_t i = 1; i < tl; i++)
                target[i] = (char)(33 + rand_r(&seed) % 94);
            for (size_t i = 0; i < gl; i++)
                gh[i] = (char)('a' + rand_r(&seed) % 26);
            gh[gl] = '\0';
            long long t = (long long)rand_r(&seed) * (r % 2 ? 1 : -1);
            ck_assert_int_eq(
                gw_assertion_mac(key, keylens[ki], t, rid, method, target, tl, gh, out), 0);
            int n = snprintf(text, sizeof(text), "OPALE-GW-MAC-v1\n%lld\n%s\n%s\n%.*s\n%s", t, rid,
                             method, (int)tl, target, gh);
            unsigned char md[32];
            unsigned int mdl = 0;
            ck_assert_ptr_nonnull(HMAC(EVP_sha256(), key, (int)keylens[ki],
                                       (const unsigned char *)text, (size_t)n, md, &mdl));
            char *b = gw_b64url_encode(md, 32);
            char want[GW_MAC_VALUE_MAX];
            snprintf(want, sizeof(want), "v1;t=%lld;mac=%s", t, b);
            free(b);
            ck_assert_msg(strcmp(out, want) == 0, "key %zu bytes, target %zu bytes: %s, want %s",
                          keylens[ki], tl, out, want);
        }
    }
}
END_TEST

START_TEST(grant_cached_per_minute)
{
    gw_assert_cache *c = gw_assert_cache_new(oauth);
    unsigned long nsig, nhit;
    gw_assertion_req r = req(NOW);
    /* the first second of this key's window (its shift, 0..59 s) */
    const time_t t0 = NOW + (60 - gw_assertion_grant_shift(&r)) % 60;
    r.now = t0;
    gw_assertion_hdrs a, b;
    ck_assert_int_eq(gw_assertion_build(oauth, c, &r, &a), 0);
    char *first = strdup(a.assertion);
    char mac1[GW_MAC_VALUE_MAX];
    strcpy(mac1, a.mac);
    /* same window, another request: same grant, another MAC */
    r.now = t0 + 59;
    r.request_id = "another-request-id";
    ck_assert_int_eq(gw_assertion_build(oauth, c, &r, &b), 0);
    ck_assert_str_eq(b.assertion, first);
    ck_assert_str_ne(b.mac, mac1);
    gw_assert_cache_stats(c, &nsig, &nhit);
    ck_assert_uint_eq(nsig, 1);
    ck_assert_uint_eq(nhit, 1);
    /* another scope set: its own grant */
    r.scope = "api_opale_declarations";
    ck_assert_int_eq(gw_assertion_build(oauth, c, &r, &b), 0);
    ck_assert_str_ne(b.assertion, first);
    /* the next window: a new grant */
    r.scope = req(NOW).scope;
    r.now = t0 + 60;
    ck_assert_int_eq(gw_assertion_build(oauth, c, &r, &b), 0);
    ck_assert_str_ne(b.assertion, first);
    gw_assert_cache_stats(c, &nsig, &nhit);
    ck_assert_uint_eq(nsig, 3);
    ck_assert_uint_eq(nhit, 1);
    /* the production environment is another grant (keytype) */
    r.env = GW_ENV_PRODUCTION;
    ck_assert_int_eq(gw_assertion_build(oauth, c, &r, &b), 0);
    json_t *p = payload_of(b.assertion);
    ck_assert_str_eq(json_string_value(json_object_get(p, "keytype")), "PRODUCTION");
    json_decref(p);
    free(first);
    gw_assert_cache_free(c);
}
END_TEST

/* FNV-1a of a key as the grant table makes it (token/assertion.c); <mix>:
 * then MurmurHash3's finaliser, as the table indexes it now */
static uint64_t key_hash(const char *client_id, const char *hab, const char *scope, int mix)
{
    char k[256];
    int n = snprintf(k, sizeof(k), "%s\n%s\nS\n%s", client_id, hab, scope);
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < n; i++) {
        h ^= (unsigned char)k[i];
        h *= 0x100000001b3ull;
    }
    if (mix) {
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 33;
        h *= 0xc4ceb9fe1a85ec53ull;
        h ^= h >> 33;
    }
    return h;
}

/* Consumers whose keys meet in one slot of the smallest table (16 slots:
 * two sets of 8) keep their grants for the minute: a direct-mapped table
 * evicted one for the other at every request, and each request signed.
 * Beyond eight in a set, the least recently used goes. */
START_TEST(grant_colliding_consumers_kept)
{
    gw_oauth *o = load("{\"issuer\":\"https://gw.test\",\"assertion_mac_key_file\":\"mac.key\","
                       "\"assertion_cache_entries\":16,\"signing_keys\":[{\"kid\":\"k-es\","
                       "\"file\":\"es.pem\",\"active\":true}]}");
    ck_assert_ptr_nonnull(o);
    gw_assert_cache *c = gw_assert_cache_new(o);
    gw_assertion_req r = req(NOW);
    static char ids[9][32];
    int found = 0;
    for (int i = 0; found < 9 && i < 1000000; i++) {
        char id[32];
        snprintf(id, sizeof(id), "partner-%d", i);
        /* one slot of a direct-mapped table of 16, one set of this one */
        if ((key_hash(id, r.habilitation, r.scope, 0) & 15) == 3 &&
            (key_hash(id, r.habilitation, r.scope, 1) & 1) == 1)
            memcpy(ids[found++], id, sizeof(id));
    }
    ck_assert_int_eq(found, 9);
    gw_assertion_hdrs a;
    unsigned long nsig, nhit;
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 8; i++) {
            r.client_id = ids[i];
            ck_assert_int_eq(gw_assertion_build(o, c, &r, &a), 0);
        }
    gw_assert_cache_stats(c, &nsig, &nhit);
    ck_assert_uint_eq(nsig, 8);
    ck_assert_uint_eq(nhit, 8);
    /* a ninth takes the least recently used one's place (ids[1] once
     * ids[0] is used again) */
    r.client_id = ids[0];
    ck_assert_int_eq(gw_assertion_build(o, c, &r, &a), 0);
    r.client_id = ids[8];
    ck_assert_int_eq(gw_assertion_build(o, c, &r, &a), 0);
    for (int i = 0; i < 9; i++) {
        if (i == 1)
            continue;
        r.client_id = ids[i];
        ck_assert_int_eq(gw_assertion_build(o, c, &r, &a), 0);
    }
    gw_assert_cache_stats(c, &nsig, &nhit);
    ck_assert_uint_eq(nsig, 9);
    ck_assert_uint_eq(nhit, 17);
    r.client_id = ids[1]; /* evicted: signed again */
    ck_assert_int_eq(gw_assertion_build(o, c, &r, &a), 0);
    gw_assert_cache_stats(c, &nsig, &nhit);
    ck_assert_uint_eq(nsig, 10);
    gw_assert_cache_free(c);
    gw_oauth_free(o);
}
END_TEST

/* The bench's S8 partners on one worker (5,000 of 10,000 over 2 workers,
 * their names and habilitations as bench/benchlib/partners.py makes them)
 * in the default table: one signature each per minute, but for 0.2%. Indexed by the raw
 * FNV-1a, direct-mapped, 74% of them evicted one another at every request. */
START_TEST(grant_s8_partners_signed_once)
{
    gw_assert_cache *c = gw_assert_cache_new(oauth);
    gw_assertion_req r = req(NOW);
    static char ids[5000][40], habs[5000][16];
    for (int i = 0; i < 5000; i++) {
        snprintf(ids[i], sizeof(ids[i]), "s8-partner-%05d-sandbox", i);
        snprintf(habs[i], sizeof(habs[i]), "H%d", 300000 + i);
    }
    gw_assertion_hdrs a;
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 5000; i++) {
            r.client_id = ids[i];
            r.habilitation = habs[i];
            ck_assert_int_eq(gw_assertion_build(oauth, c, &r, &a), 0);
        }
    unsigned long nsig, nhit;
    gw_assert_cache_stats(c, &nsig, &nhit);
    /* 9 of them in sets of 9 or more keys: their set's least recently used
     * goes at each of their requests (about 8,700 signatures before) */
    ck_assert_uint_le(nsig, 5000 + 50);
    ck_assert_uint_eq(nsig + nhit, 10000);
    gw_assert_cache_free(c);
}
END_TEST

/* Renewals spread over the minute: 600 consumers served every second for
 * two minutes. Windows aligned on the UTC minute renewed all 600 grants in
 * one second (a burst of signatures in the requests' latency); shifted per
 * key, about 10 a second. Each grant still lives one 60-second window: one
 * renewal per consumer in any 60 consecutive seconds, none reused 60 s
 * after it was signed. */
START_TEST(grant_renewals_spread)
{
    enum { N = 600, SECS = 125 };
    gw_assert_cache *c = gw_assert_cache_new(oauth);
    gw_assertion_req r = req(NOW);
    static char ids[N][32], *last[N];
    static time_t since[N];
    static int renew[N][SECS];
    memset(renew, 0, sizeof(renew));
    unsigned shifts[60] = {0};
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "spread-partner-%04d", i);
        last[i] = NULL;
        r.client_id = ids[i];
        shifts[gw_assertion_grant_shift(&r)]++;
    }
    int used = 0;
    for (int k = 0; k < 60; k++)
        used += shifts[k] > 0;
    ck_assert_int_ge(used, 50); /* 600 keys over 60 shifts */
    gw_assertion_hdrs a;
    unsigned long nsig, nhit, before = 0;
    unsigned long most = 0;
    for (int t = 0; t < SECS; t++) {
        r.now = NOW + t;
        for (int i = 0; i < N; i++) {
            r.client_id = ids[i];
            ck_assert_int_eq(gw_assertion_build(oauth, c, &r, &a), 0);
            if (last[i] == NULL || strcmp(last[i], a.assertion) != 0) {
                free(last[i]);
                last[i] = strdup(a.assertion);
                since[i] = r.now;
                renew[i][t] = 1;
            }
            ck_assert_int_lt(r.now - since[i], 60); /* never reused 60 s on */
        }
        gw_assert_cache_stats(c, &nsig, &nhit);
        if (t > 0 && nsig - before > most)
            most = nsig - before;
        before = nsig;
    }
    /* about N / 60 = 10 a second; all 600 at once when aligned */
    ck_assert_uint_le(most, 40);
    for (int i = 0; i < N; i++) {
        for (int t = 1; t + 60 <= SECS; t++) {
            int n = 0;
            for (int u = t; u < t + 60; u++)
                n += renew[i][u];
            ck_assert_int_eq(n, 1);
        }
        free(last[i]);
    }
    gw_assert_cache_free(c);
}
END_TEST

START_TEST(short_lifetime_resigns)
{
    gw_oauth *o = load("{\"issuer\":\"https://gw.test\",\"assertion_mac_key_file\":\"mac.key\","
                       "\"assertion_lifetime_s\":5,\"signing_keys\":[{\"kid\":\"k-es\","
                       "\"file\":\"es.pem\",\"active\":true}]}");
    ck_assert_ptr_nonnull(o);
    gw_assert_cache *c = gw_assert_cache_new(o);
    gw_assertion_req r = req(NOW);
    gw_assertion_hdrs h;
    unsigned long nsig, nhit;
    ck_assert_int_eq(gw_assertion_build(o, c, &r, &h), 0);
    r.now = NOW + 4;
    ck_assert_int_eq(gw_assertion_build(o, c, &r, &h), 0);
    r.now = NOW + 5; /* exp reached: never sent past its exp */
    ck_assert_int_eq(gw_assertion_build(o, c, &r, &h), 0);
    gw_assert_cache_stats(c, &nsig, &nhit);
    ck_assert_uint_eq(nsig, 2);
    ck_assert_uint_eq(nhit, 1);
    gw_assert_cache_free(c);
    gw_oauth_free(o);
}
END_TEST

START_TEST(per_request_mode)
{
    gw_oauth *o =
        load("{\"issuer\":\"https://gw.test\",\"assertion_mode\":\"per_request\","
             "\"signing_keys\":[{\"kid\":\"k-es\",\"file\":\"es.pem\",\"active\":true}]}");
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(o->assertion_mode, GW_ASSERTION_PER_REQUEST);
    gw_assertion_req r = req(NOW);
    gw_assertion_hdrs h;
    ck_assert_int_eq(gw_assertion_build(o, NULL, &r, &h), 0);
    ck_assert_ptr_nonnull(h.owned);
    ck_assert_str_eq(h.mac, "");
    json_t *p = payload_of(h.assertion);
    ck_assert_str_eq(json_string_value(json_object_get(p, "request_id")), RID);
    ck_assert_str_eq(json_string_value(json_object_get(p, "jti")), RID);
    ck_assert_ptr_null(json_object_get(p, "mac"));
    json_decref(p);
    /* verified like any of our JWS */
    const gw_keyset *sets[1] = {&o->own};
    gw_jws_rules jr = {.algs = o->algs, .nalgs = o->nalgs};
    gw_jws jws;
    ck_assert_ptr_null(gw_jws_verify(h.assertion, strlen(h.assertion), sets, 1, &jr, &jws));
    gw_jws_clear(&jws);
    gw_assertion_hdrs_clear(&h);
    ck_assert_ptr_null(h.owned);
    gw_oauth_free(o);
}
END_TEST

START_TEST(thread_cache_follows_the_load)
{
    gw_assert_cache *a = gw_assert_cache_thread(oauth);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_eq(gw_assert_cache_thread(oauth), a);
    gw_oauth *o =
        load("{\"issuer\":\"https://gw.test\",\"assertion_mac_key_file\":\"mac.key\","
             "\"signing_keys\":[{\"kid\":\"k-es\",\"file\":\"es.pem\",\"active\":true}]}");
    ck_assert_ptr_nonnull(o);
    ck_assert_uint_ne(o->gen, oauth->gen);
    gw_assert_cache *b = gw_assert_cache_thread(o); /* a is freed: another load */
    ck_assert_ptr_nonnull(b);
    gw_assertion_req r = req(NOW);
    gw_assertion_hdrs h;
    ck_assert_int_eq(gw_assertion_build(o, b, &r, &h), 0);
    /* a cache of another load is refused rather than used with its key */
    ck_assert_int_eq(gw_assertion_build(oauth, b, &r, &h), -1);
    gw_oauth_free(o);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("assertion");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, build_then_verify);
    tcase_add_loop_test(tc, tampered, 0, T_COUNT);
    tcase_add_test(tc, mac_known_format);
    tcase_add_test(tc, mac_matches_hmac);
    tcase_add_test(tc, grant_cached_per_minute);
    tcase_add_test(tc, grant_colliding_consumers_kept);
    tcase_add_test(tc, grant_s8_partners_signed_once);
    tcase_add_test(tc, grant_renewals_spread);
    tcase_add_test(tc, short_lifetime_resigns);
    tcase_add_test(tc, per_request_mode);
    tcase_add_test(tc, thread_cache_follows_the_load);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
