/*
 * opale-mock: a mock of the API OPALE backend, with fictitious data.
 *
 * It serves the OPALE routes with data that is deterministic per SIREN (and
 * per year on year-bound routes), plus a few /__mock/ endpoints that tests use
 * to observe it (request and connection counters, last request seen) and to
 * inject faults at run time (latency, 500 errors, connection resets).
 *
 * It shares no code with the gateway. It is built on libevent's evhttp, which
 * is lenient as an HTTP parser; that is acceptable here because the mock only
 * ever sits behind the gateway or is called directly by tests.
 *
 * With --jwks, it also verifies the JWT that the gateway signs for the backend
 * (X-JWT-Assertion) with its own small verifier (OpenSSL 3 EVP + jansson), so
 * that a request which bypasses the gateway gets nothing.
 *
 * See docs/mock-opale.md for the contract.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <netdb.h>
#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>

#include <jansson.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#define MOCK_NAME "opale-mock"
#define MOCK_MAX_LATENCY_MS 600000L /* 10 minutes */
#define MOCK_MAX_BODY 65536
#define MOCK_MAX_HEADERS 65536
#define MOCK_MAX_PATHS 1024 /* distinct keys kept in stats.by_path */
#define MOCK_OTHER_PATHS "(autres)"
#define MOCK_CONN_TIMEOUT_S 60      /* evhttp read/write/idle timeout per connection */
#define MOCK_MAX_JWKS (1024 * 1024) /* bytes of the --jwks file */
#define MOCK_MAX_ASSERTION 16384    /* bytes of an X-JWT-Assertion */
#define MOCK_MAX_KID 256
#define MOCK_LEEWAY_S 5         /* on exp, iat and nbf */
#define MOCK_JWKS_RETRY_MS 1000 /* unknown kid: at most one re-read per second */
#define MOCK_DEFAULT_AUD "opale-backend"

#define CT_JSON "application/json; charset=utf-8"
#define JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* ---- state ------------------------------------------------------------- */

struct fault {
    long latency_ms;
    double error_rate;
    double reset_rate;
};

enum outcome {
    OUT_REPLY, /* normal processing */
    OUT_ERROR, /* injected 500 */
    OUT_RESET, /* injected TCP reset, nothing written */
};

struct mock;

/* The backend assertion's verifier. The four algorithms it accepts; each key
 * of the JWKS has exactly one. */
enum jws_alg {
    ALG_ES256,
    ALG_RS256,
    ALG_PS256,
    ALG_EDDSA,
};

static const char *const alg_names[] = {"ES256", "RS256", "PS256", "EdDSA"};

struct jwk {
    char *kid;
    enum jws_alg alg;
    EVP_PKEY *pkey;
};

struct keyset {
    struct jwk *keys;
    size_t n;
};

struct verifier {
    const char *jwks_path; /* NULL: no verification */
    const char *aud;
    const char *iss; /* NULL: not checked */
    struct keyset ks;
    uint64_t last_load_ms; /* CLOCK_MONOTONIC, last (re)load attempt */
};

/* A reply held back by the latency timer (or a reset, which is always
 * deferred to the next loop turn so evhttp is never freed under its own
 * read callback). Owned by the mock's pending list; <req> is owned by evhttp
 * until a reply is sent or until it is detached from its connection (client
 * gone), in which case we free it. */
struct pending {
    struct pending *prev, *next;
    struct mock *m;
    struct evhttp_request *req;
    struct evhttp_connection *evcon; /* the connection <req> arrived on */
    struct event *timer;
    enum outcome outcome;
};

struct mock {
    struct event_base *base;
    struct evhttp *http;
    struct fault fault;
    uint64_t seed;     /* fault-injection seed: --seed, or "seed" in /__mock/config */
    uint64_t rng;      /* fault-injection PRNG state (splitmix64) */
    uint64_t requests; /* served: with --jwks, refused assertions are not counted */
    uint64_t connections;
    uint64_t assertion_refused;
    json_t *by_path; /* path -> count */
    json_t *last;    /* last non-/__mock/ request, or NULL */
    struct pending *pending;
    struct verifier v;
    bool quiet;
};

/* ---- small helpers ------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1): a rate of 1.0 therefore always fires, 0.0 never. */
static double uniform01(uint64_t *s)
{
    return (double)(splitmix64(s) >> 11) * 0x1.0p-53;
}

static uint64_t fnv1a64(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    /* a separator so that ("ab","c") and ("a","bc") differ */
    h ^= 0xff;
    h *= 0x100000001b3ULL;
    return h;
}

static bool all_digits(const char *s, size_t n)
{
    if (strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* A copy of <s> that jansson accepts: <s> itself when it is valid UTF-8,
 * else <s> with every non-ASCII byte replaced by '?'. Caller frees. */
static char *utf8_copy(const char *s)
{
    json_t *probe = json_string(s);
    char *c = strdup(s);

    if (!probe && c)
        for (char *p = c; *p; p++)
            if ((unsigned char)*p >= 0x80)
                *p = '?';
    json_decref(probe);
    return c;
}

static json_t *jstr(const char *s)
{
    char *c = utf8_copy(s);
    json_t *j = json_string(c ? c : "");

    free(c);
    return j;
}

static const char *method_name(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_TRACE:
        return "TRACE";
    case EVHTTP_REQ_CONNECT:
        return "CONNECT";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    }
    return "UNKNOWN";
}

/* ---- responses ---------------------------------------------------------- */

static void access_log(struct mock *m, struct evhttp_request *req, const char *what)
{
    if (m->quiet)
        return;
    fprintf(stderr, MOCK_NAME ": %s %s -> %s\n", method_name(evhttp_request_get_command(req)),
            evhttp_request_get_uri(req), what);
}

static void echo_ids(struct evhttp_request *req)
{
    static const char *const names[] = {"X-Request-ID", "X-Correlation-ID"};
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *v = evhttp_find_header(in, names[i]);
        if (v)
            evhttp_add_header(out, names[i], v); /* refuses CR/LF itself */
    }
}

/* Sends <body> (consumed; may be NULL for an empty 204) with status <code>;
 * <note>, if any, goes to the access log only. */
static void send_json_note(struct mock *m, struct evhttp_request *req, int code, json_t *body,
                           const char *note)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    struct evbuffer *buf = NULL;
    char what[192];

    echo_ids(req);
    if (body) {
        char *text = json_dumps(body, JSON_FLAGS);
        json_decref(body);
        buf = evbuffer_new();
        if (text && buf) {
            evbuffer_add(buf, text, strlen(text));
            evhttp_add_header(out, "Content-Type", CT_JSON);
        } else {
            code = 500;
        }
        free(text);
    }
    if (note)
        snprintf(what, sizeof(what), "%d (%s)", code, note);
    else
        snprintf(what, sizeof(what), "%d", code);
    access_log(m, req, what);
    evhttp_send_reply(req, code, NULL, buf);
    if (buf)
        evbuffer_free(buf);
}

static void send_json(struct mock *m, struct evhttp_request *req, int code, json_t *body)
{
    send_json_note(m, req, code, body, NULL);
}

static json_t *error_body(const char *code, const char *message)
{
    char now[32];
    time_t t = time(NULL);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_pack("{s:{s:s,s:s,s:s}}", "erreur", "code", code, "message", message, "horodatage",
                     now);
}

static void send_error_note(struct mock *m, struct evhttp_request *req, int status,
                            const char *code, const char *message, const char *note)
{
    if (status == 405)
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET");
    send_json_note(m, req, status, error_body(code, message), note);
}

static void send_error(struct mock *m, struct evhttp_request *req, int status, const char *code,
                       const char *message)
{
    send_error_note(m, req, status, code, message, NULL);
}

/* The mock's error codes; docs/mock-opale.md lists them. Messages are
 * constants: an error body never echoes request input. */
#define E400_REQUEST 400, "400000", "Requête invalide"
#define E400_SIREN 400, "400001", "Le SIREN doit comporter 9 chiffres"
#define E400_ANNEE 400, "400002", "Le paramètre annee est obligatoire (format AAAA)"
#define E400_CONFIG 400, "400003", "Configuration invalide"
#define E401_ASSERTION 401, "401001", "Assertion de la passerelle absente ou invalide"
#define E404_PATH 404, "404000", "Ressource inconnue"
#define E404_SIREN 404, "404001", "Entreprise inconnue"
#define E404_NOLAST 404, "404002", "Aucune requête reçue"
#define E405 405, "405000", "Méthode non autorisée"
#define E500 500, "500000", "Erreur interne du service OPALE"

/* ---- fictitious data ------------------------------------------------------
 *
 * Every generator draws from a PRNG seeded with FNV-1a(siren, route, annee),
 * so the same input always yields byte-identical JSON, whatever the time,
 * the order of calls or the fault-injection seed. */

struct gen {
    uint64_t s;
};

static unsigned gen_below(struct gen *g, unsigned n)
{
    return (unsigned)(splitmix64(&g->s) % n);
}

static int gen_range(struct gen *g, int lo, int hi) /* inclusive */
{
    return lo + (int)gen_below(g, (unsigned)(hi - lo + 1));
}

/* An amount in euros with cents, in [lo, hi]. */
static double gen_amount(struct gen *g, long lo, long hi)
{
    long cents = lo * 100 + (long)(splitmix64(&g->s) % (uint64_t)((hi - lo) * 100 + 1));
    return (double)cents / 100.0;
}

#define PICK(g, arr) ((arr)[gen_below((g), sizeof(arr) / sizeof((arr)[0]))])

static void fmt_date(char out[11], int y, int mo, int d)
{
    snprintf(out, 11, "%04u-%02u-%02u", (unsigned)y % 10000u, (unsigned)mo % 100u,
             (unsigned)d % 100u);
}

/* A random day of year <y>, months [mlo, mhi]; days stop at 28 so every month
 * has them. */
static void gen_date(struct gen *g, char out[11], int y, int mlo, int mhi)
{
    fmt_date(out, y, gen_range(g, mlo, mhi), gen_range(g, 1, 28));
}

/* A SIREN with a valid Luhn check digit, never starting with 999. */
static void gen_siren(struct gen *g, char out[10])
{
    int sum = 0;

    out[0] = (char)('1' + gen_below(g, 8));
    for (int i = 1; i < 8; i++)
        out[i] = (char)('0' + gen_below(g, 10));
    /* Luhn over 9 digits: from the right, the check digit is position 1 and
     * every even position (here indexes 7, 5, 3, 1) is doubled. */
    for (int i = 0; i < 8; i++) {
        int d = out[i] - '0';
        if (i % 2 == 1) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    out[8] = (char)('0' + (10 - sum % 10) % 10);
    out[9] = '\0';
}

static json_t *data_declarations(struct gen *g, const char *siren, int y)
{
    static const char *const statuts[] = {"déposée", "déposée", "déposée", "acceptée", "rectifiée"};
    json_t *list = json_array();
    char per[32], depot[32];
    bool monthly = gen_below(g, 4) != 0; /* TVA CA3 (monthly) or CA12 (annual) */

    if (monthly) {
        int n = gen_range(g, 3, 6);
        for (int mo = 1; mo <= n; mo++) {
            snprintf(per, sizeof(per), "%04d-%02d", y % 10000, mo % 100);
            fmt_date(depot, mo == 12 ? y + 1 : y, mo == 12 ? 1 : mo + 1, gen_range(g, 15, 24));
            json_array_append_new(list,
                                  json_pack("{s:s,s:s,s:s,s:f,s:s}", "type", "TVA CA3", "periode",
                                            per, "dateDepot", depot, "montantDeclare",
                                            gen_amount(g, 500, 80000), "statut", PICK(g, statuts)));
        }
    } else {
        snprintf(per, sizeof(per), "%04d", y);
        gen_date(g, depot, y + 1, 4, 5);
        json_array_append_new(list,
                              json_pack("{s:s,s:s,s:s,s:f,s:s}", "type", "TVA CA12", "periode", per,
                                        "dateDepot", depot, "montantDeclare",
                                        gen_amount(g, 2000, 300000), "statut", PICK(g, statuts)));
    }
    snprintf(per, sizeof(per), "%04d", y);
    gen_date(g, depot, y + 1, 4, 5);
    json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:f,s:s}", "type", "IS 2065", "periode",
                                          per, "dateDepot", depot, "montantDeclare",
                                          gen_amount(g, 0, 250000), "statut", PICK(g, statuts)));
    if (gen_below(g, 2)) {
        gen_date(g, depot, y + 1, 5, 5);
        json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:f,s:s}", "type", "CVAE 1330",
                                              "periode", per, "dateDepot", depot, "montantDeclare",
                                              gen_amount(g, 0, 20000), "statut", PICK(g, statuts)));
    }
    return json_pack("{s:s,s:i,s:o}", "siren", siren, "annee", y, "declarations", list);
}

static json_t *data_comptes(struct gen *g, const char *siren, int y)
{
    static const struct {
        const char *name, *bic;
    } banks[] = {
        {"Banque Exemple de Paris", "BQEXFRPPXXX"},
        {"Crédit Fictif du Nord", "CFNOFRPP591"},
        {"Caisse d'Épargne Imaginaire", "CEIMFRPP751"},
        {"Banque Populaire de Démonstration", "BPDEFRPP133"},
        {"Société Bancaire Fictive", "SBFIFRPPXXX"},
    };
    json_t *list = json_array();
    int n = gen_range(g, 1, 3);

    for (int i = 0; i < n; i++) {
        char iban[28], opened[11];
        unsigned b = gen_below(g, sizeof(banks) / sizeof(banks[0]));
        /* 27 characters like a French IBAN; only the last 4 digits shown */
        snprintf(iban, sizeof(iban), "FR76*******************%04u", gen_below(g, 10000));
        gen_date(g, opened, gen_range(g, 1995, 2022), 1, 12);
        json_array_append_new(list,
                              json_pack("{s:s,s:s,s:s,s:s}", "iban", iban, "bic", banks[b].bic,
                                        "dateOuverture", opened, "etablissement", banks[b].name));
    }
    return json_pack("{s:s,s:o}", "siren", siren, "comptes", list);
}

static json_t *data_creances(struct gen *g, const char *siren, int y)
{
    static const char *const natures[] = {"TVA", "IS", "CFE", "Taxe sur les salaires",
                                          "Majoration de retard"};
    json_t *list = json_array();
    int n = gen_range(g, 1, 3);

    for (int i = 0; i < n; i++) {
        char ref[24], due[11];
        double initial = gen_amount(g, 100, 50000);
        double left = floor(initial * (double)gen_range(g, 10, 100)) / 100.0;
        snprintf(ref, sizeof(ref), "CRE-%04d-%06u", y % 10000, gen_below(g, 1000000));
        gen_date(g, due, y, 1, 12);
        json_array_append_new(list, json_pack("{s:s,s:s,s:f,s:f,s:s}", "reference", ref, "nature",
                                              PICK(g, natures), "montantInitial", initial,
                                              "montantRestantDu", left, "dateExigibilite", due));
    }
    return json_pack("{s:s,s:i,s:o}", "siren", siren, "annee", y, "creances", list);
}

static json_t *data_paiements(struct gen *g, const char *siren, int y)
{
    static const char *const moyens[] = {"télérèglement", "prélèvement", "virement",
                                         "carte bancaire"};
    static const char *const impots[] = {"TVA", "IS", "CFE", "Taxe sur les salaires"};
    json_t *list = json_array();
    int n = gen_range(g, 2, 6);

    for (int i = 0; i < n; i++) {
        char when[11];
        int lo = 1 + i * 12 / n, hi = (i + 1) * 12 / n; /* increasing dates */
        gen_date(g, when, y, lo, hi);
        json_array_append_new(list, json_pack("{s:s,s:f,s:s,s:s}", "datePaiement", when, "montant",
                                              gen_amount(g, 50, 60000), "moyenPaiement",
                                              PICK(g, moyens), "impot", PICK(g, impots)));
    }
    return json_pack("{s:s,s:i,s:o}", "siren", siren, "annee", y, "paiements", list);
}

static json_t *data_remboursements(struct gen *g, const char *siren, int y)
{
    static const char *const impots[] = {"TVA", "IS", "CIR"};
    json_t *list = json_array();
    int n = gen_range(g, 1, 3);

    for (int i = 0; i < n; i++) {
        char when[11];
        gen_date(g, when, y, 1 + i * 4, 4 + i * 4);
        json_array_append_new(list, json_pack("{s:s,s:f,s:s}", "dateRemboursement", when,
                                              "montantRembourse", gen_amount(g, 100, 40000),
                                              "impot", PICK(g, impots)));
    }
    return json_pack("{s:s,s:i,s:o}", "siren", siren, "annee", y, "remboursements", list);
}

static json_t *data_obligations(struct gen *g, const char *siren, int y)
{
    static const struct {
        const char *regime, *periodicite;
    } tva[] = {{"réel normal", "mensuelle"},
               {"réel simplifié", "annuelle"},
               {"mini-réel", "mensuelle"}},
      is[] = {{"réel normal", "annuelle"}, {"réel simplifié", "annuelle"}};
    json_t *list = json_array();
    char start[11];
    int created = gen_range(g, 1990, 2020);
    unsigned t = gen_below(g, 3), i = gen_below(g, 2);

    gen_date(g, start, created, 1, 12);
    json_array_append_new(list,
                          json_pack("{s:s,s:s,s:s,s:s}", "impot", "TVA", "regime", tva[t].regime,
                                    "periodicite", tva[t].periodicite, "dateDebut", start));
    json_array_append_new(list,
                          json_pack("{s:s,s:s,s:s,s:s}", "impot", "IS", "regime", is[i].regime,
                                    "periodicite", is[i].periodicite, "dateDebut", start));
    if (gen_below(g, 3)) {
        gen_date(g, start, created + 1, 1, 1);
        json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:s}", "impot", "CFE", "regime",
                                              "droit commun", "periodicite", "annuelle",
                                              "dateDebut", start));
    }
    if (gen_below(g, 2)) {
        gen_date(g, start, gen_range(g, created, 2022), 1, 12);
        json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:s}", "impot", "Taxe sur les salaires",
                                              "regime", "droit commun", "periodicite",
                                              gen_below(g, 2) ? "mensuelle" : "trimestrielle",
                                              "dateDebut", start));
    }
    return json_pack("{s:s,s:o}", "siren", siren, "obligations", list);
}

static json_t *data_habilitations(struct gen *g, const char *siren, int y)
{
    static const char *const types[] = {"mandat de télérèglement", "accès à l'espace professionnel",
                                        "dépôt des déclarations", "consultation du compte fiscal"};
    json_t *list = json_array();
    int n = gen_range(g, 1, 3);

    for (int i = 0; i < n; i++) {
        char msiren[10], name[48], from[11], until[11];
        int y0 = gen_range(g, 2015, 2023);
        gen_siren(g, msiren);
        snprintf(name, sizeof(name), "Cabinet Exemple Conseil %02u", gen_below(g, 100));
        gen_date(g, from, y0, 1, 12);
        json_t *fin = json_null();
        if (gen_below(g, 3) == 0) {
            gen_date(g, until, y0 + gen_range(g, 1, 3), 1, 12);
            fin = json_string(until);
        }
        json_array_append_new(list,
                              json_pack("{s:s,s:{s:s,s:s},s:s,s:o}", "typeHabilitation",
                                        PICK(g, types), "mandataire", "siren", msiren,
                                        "denomination", name, "dateDebut", from, "dateFin", fin));
    }
    return json_pack("{s:s,s:o}", "siren", siren, "habilitations", list);
}

struct route {
    const char *name; /* last path segment */
    bool year_bound;
    json_t *(*gen)(struct gen *g, const char *siren, int annee);
};

static const struct route routes[] = {
    {"declarations", true, data_declarations},
    {"comptes-bancaires", false, data_comptes},
    {"creances", true, data_creances},
    {"paiements", true, data_paiements},
    {"remboursements", true, data_remboursements},
    {"obligations-fiscales", false, data_obligations},
    {"habilitations", false, data_habilitations},
};

/* ---- OPALE routes ------------------------------------------------------- */

#define PREFIX_ENTREPRISES "/opale/v1/entreprises/"

/* Copies the first "annee" query parameter into <out> (size 8); false if
 * there is none. Deliberately lenient, like common backends: names are
 * percent-decoded and matched case-insensitively, the first one wins
 * ("%61nnee=1990&annee=2023" and "ANNEE=1990&annee=2023" both mean 1990).
 * The gateway must never let such a query through (tests/integration/
 * test_canonical.py relies on this leniency). */
static bool query_annee(const char *query, char *out, size_t outsz)
{
    struct evkeyvalq params;
    struct evkeyval *kv;
    bool found = false;

    if (!query)
        return false;
    TAILQ_INIT(&params);
    if (evhttp_parse_query_str(query, &params) == 0) {
        TAILQ_FOREACH(kv, &params, next)
        {
            char *name = evhttp_uridecode(kv->key, 0, NULL);
            bool match = name && evutil_ascii_strcasecmp(name, "annee") == 0;
            free(name);
            if (!match)
                continue;
            if (strlen(kv->value) < outsz) {
                strcpy(out, kv->value);
                found = true;
            }
            break;
        }
    }
    evhttp_clear_headers(&params);
    return found;
}

static void serve_opale(struct mock *m, struct evhttp_request *req)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    bool is_get = evhttp_request_get_command(req) == EVHTTP_REQ_GET;
    const struct route *rt = NULL;
    char siren[16] = "", annee[8] = "";

    if (!path) {
        send_error(m, req, E400_REQUEST);
        return;
    }
    if (strcmp(path, "/opale/v1/etatSante") == 0) {
        if (!is_get)
            send_error(m, req, E405);
        else
            send_json(m, req, 200,
                      json_pack("{s:s}", "message", "L'API est disponible et opérationnelle"));
        return;
    }
    if (strncmp(path, PREFIX_ENTREPRISES, strlen(PREFIX_ENTREPRISES)) == 0) {
        const char *seg = path + strlen(PREFIX_ENTREPRISES);
        const char *slash = strchr(seg, '/');
        if (slash) {
            size_t n = (size_t)(slash - seg);
            for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
                if (strcmp(slash + 1, routes[i].name) == 0)
                    rt = &routes[i];
            if (n < sizeof(siren)) { /* else stays empty: refused as not 9 digits */
                memcpy(siren, seg, n);
                siren[n] = '\0';
            }
        }
    }
    if (!rt) {
        send_error(m, req, E404_PATH);
        return;
    }
    if (!is_get) {
        send_error(m, req, E405);
        return;
    }
    if (!all_digits(siren, 9)) {
        send_error(m, req, E400_SIREN);
        return;
    }
    if (rt->year_bound &&
        (!query_annee(evhttp_uri_get_query(uri), annee, sizeof(annee)) || !all_digits(annee, 4))) {
        send_error(m, req, E400_ANNEE);
        return;
    }
    if (strncmp(siren, "999", 3) == 0) {
        send_error(m, req, E404_SIREN);
        return;
    }

    struct gen g;
    g.s = fnv1a64(fnv1a64(fnv1a64(0xcbf29ce484222325ULL, siren), rt->name), annee);
    send_json(m, req, 200, rt->gen(&g, siren, rt->year_bound ? atoi(annee) : 0));
}

/* ---- fault injection ------------------------------------------------------ */

static void pending_drop(struct mock *m, struct pending *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        m->pending = p->next;
    if (p->next)
        p->next->prev = p->prev;
    event_free(p->timer);
    free(p);
}

/* Drops the connection of <req> with a TCP RST and without writing a byte.
 *
 * evhttp_connection_free() calls shutdown(SHUT_WR) before closing, which
 * would send a FIN and turn the reset into a clean EOF. So the socket is
 * closed first, with SO_LINGER {1, 0}, by dup3()-ing a fresh unconnected
 * socket over its descriptor: the kernel sends the RST, and evhttp later
 * shuts down and closes the harmless placeholder. */
static void reset_connection(struct mock *m, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;

    access_log(m, req, "RESET");
    if (fd >= 0) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        int placeholder;

        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        placeholder = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (placeholder >= 0) {
            dup3(placeholder, fd, O_CLOEXEC);
            close(placeholder);
        }
    }
    evhttp_connection_free(evcon); /* frees <req> too */
}

static void finish(struct mock *m, struct evhttp_request *req, enum outcome o)
{
    switch (o) {
    case OUT_RESET:
        reset_connection(m, req);
        break;
    case OUT_ERROR:
        send_error(m, req, E500);
        break;
    case OUT_REPLY:
        serve_opale(m, req);
        break;
    }
}

static void on_pending_timer(evutil_socket_t fd, short what, void *arg)
{
    struct pending *p = arg;
    struct mock *m = p->m;
    struct evhttp_request *req = p->req;
    enum outcome o = p->outcome;

    pending_drop(m, p);
    if (!evhttp_request_get_connection(req)) {
        /* client gone and evhttp detached the request: it is ours to free */
        evhttp_request_free(req);
        return;
    }
    finish(m, req, o);
}

/* evhttp calls this when a connection goes away: on client close (after it
 * detached the in-flight request, which becomes ours), on our own reset, and
 * at shutdown (request still attached; evhttp frees it). Cancel whatever
 * reply is pending on that connection. */
static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    struct mock *m = arg;
    struct pending *p = m->pending, *next;

    for (; p; p = next) {
        next = p->next;
        if (p->evcon != evcon)
            continue;
        if (!evhttp_request_get_connection(p->req)) {
            access_log(m, p->req, "client closed before reply");
            evhttp_request_free(p->req);
        }
        pending_drop(m, p);
    }
}

static int defer(struct mock *m, struct evhttp_request *req, enum outcome o, long delay_ms)
{
    struct pending *p = calloc(1, sizeof(*p));
    struct timeval tv = {.tv_sec = delay_ms / 1000, .tv_usec = (delay_ms % 1000) * 1000};

    if (!p)
        return -1;
    p->m = m;
    p->req = req;
    p->evcon = evhttp_request_get_connection(req);
    p->outcome = o;
    p->timer = evtimer_new(m->base, on_pending_timer, p);
    if (!p->timer || evtimer_add(p->timer, &tv) != 0) {
        if (p->timer)
            event_free(p->timer);
        free(p);
        return -1;
    }
    p->next = m->pending;
    if (p->next)
        p->next->prev = p;
    m->pending = p;
    return 0;
}

/* ---- backend assertion (X-JWT-Assertion) ---------------------------------
 *
 * With --jwks, every OPALE request must carry the JWT that the gateway signs
 * for the backend. The verifier is deliberately small and strict: compact JWS
 * only, four asymmetric algorithms, keys only from the JWKS file (never from
 * the token: jwk, jku, x5u and x5c are ignored), "crit" refused. */

static uint64_t monotonic_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int b64url_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Decodes <n> characters of strict base64url (RFC 7515 §2): only the URL-safe
 * alphabet, no padding, no whitespace, and the unused low bits of the last
 * character zero, so that every byte string has exactly one encoding. Returns
 * a malloc'd buffer with a NUL after its <*outlen> bytes, or NULL (also for
 * an empty input). */
static unsigned char *b64url_decode(const char *s, size_t n, size_t *outlen)
{
    unsigned char *out;
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;

    if (n == 0 || n % 4 == 1)
        return NULL;
    out = malloc(n / 4 * 3 + 3);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_val((unsigned char)s[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) { /* non-zero leftover bits: not the canonical encoding */
        free(out);
        return NULL;
    }
    out[o] = '\0';
    *outlen = o;
    return out;
}

static void keyset_free(struct keyset *ks)
{
    for (size_t i = 0; i < ks->n; i++) {
        free(ks->keys[i].kid);
        EVP_PKEY_free(ks->keys[i].pkey);
    }
    free(ks->keys);
    ks->keys = NULL;
    ks->n = 0;
}

static const struct jwk *keyset_find(const struct keyset *ks, const char *kid)
{
    for (size_t i = 0; i < ks->n; i++)
        if (strcmp(ks->keys[i].kid, kid) == 0)
            return &ks->keys[i];
    return NULL;
}

/* The base64url member <name> of JWK <k>, decoded. */
static unsigned char *jwk_member(json_t *k, const char *name, size_t *len)
{
    const char *s = json_string_value(json_object_get(k, name));

    return s ? b64url_decode(s, strlen(s), len) : NULL;
}

/* A public key from OSSL_PARAMs, for EVP_PKEY type <type>. */
static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = params ? EVP_PKEY_CTX_new_from_name(NULL, type, NULL) : NULL;
    EVP_PKEY *pkey = NULL;

    if (!ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

/* P-256 public key from the JWK's x and y (32 bytes each), checked to be a
 * point of the curve. */
static EVP_PKEY *jwk_ec_p256(json_t *k, const char **err)
{
    unsigned char pub[65];
    unsigned char *x = NULL, *y = NULL;
    size_t xlen = 0, ylen = 0;
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *check = NULL;

    x = jwk_member(k, "x", &xlen);
    y = jwk_member(k, "y", &ylen);
    if (!x || !y || xlen != 32 || ylen != 32) {
        *err = "EC key: x and y must be base64url of 32 bytes each";
        goto out;
    }
    pub[0] = 0x04; /* uncompressed point */
    memcpy(pub + 1, x, 32);
    memcpy(pub + 33, y, 32);
    bld = OSSL_PARAM_BLD_new();
    if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub))) {
        *err = "out of memory";
        goto out;
    }
    pkey = pkey_fromdata("EC", bld);
    check = pkey ? EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL) : NULL;
    if (!check || EVP_PKEY_public_check(check) != 1) {
        *err = "EC key: not a point of P-256";
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
out:
    EVP_PKEY_CTX_free(check);
    OSSL_PARAM_BLD_free(bld);
    free(x);
    free(y);
    return pkey;
}

/* RSA public key from the JWK's n and e (unsigned big-endian, no leading
 * zero octet, RFC 7518 §6.3.1); n of 2048 to 16384 bits. */
static EVP_PKEY *jwk_rsa(json_t *k, const char **err)
{
    unsigned char *n = NULL, *e = NULL;
    size_t nlen = 0, elen = 0;
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY *pkey = NULL;

    n = jwk_member(k, "n", &nlen);
    e = jwk_member(k, "e", &elen);
    if (!n || !e || n[0] == 0 || e[0] == 0 || elen > 8) {
        *err = "RSA key: n and e must be base64url unsigned integers without leading zeros";
        goto out;
    }
    if (nlen < 256 || nlen > 2048 || !(n[nlen - 1] & 1) || !(e[elen - 1] & 1) ||
        (elen == 1 && e[0] < 3)) {
        *err = "RSA key: n must have 2048 to 16384 bits, n and e must be odd, e >= 3";
        goto out;
    }
    bn_n = BN_bin2bn(n, (int)nlen, NULL);
    bn_e = BN_bin2bn(e, (int)elen, NULL);
    bld = OSSL_PARAM_BLD_new();
    if (!bn_n || !bn_e || !bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e)) {
        *err = "out of memory";
        goto out;
    }
    pkey = pkey_fromdata("RSA", bld);
    if (!pkey)
        *err = "RSA key: refused by OpenSSL";
out:
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    free(n);
    free(e);
    return pkey;
}

static EVP_PKEY *jwk_ed25519(json_t *k, const char **err)
{
    size_t xlen = 0;
    unsigned char *x = jwk_member(k, "x", &xlen);
    EVP_PKEY *pkey = NULL;

    if (!x || xlen != 32)
        *err = "OKP key: x must be base64url of 32 bytes";
    else if (!(pkey = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, x, xlen)))
        *err = "OKP key: refused by OpenSSL";
    free(x);
    return pkey;
}

/* Parses one JWK. Returns 1 with <out> filled; 0 for a key to skip (a kty or
 * curve the mock does not verify with, or "use" other than "sig"); -1 with
 * <*err> set when a key of a supported kind is malformed. */
static int jwk_parse(json_t *k, struct jwk *out, const char **err)
{
    static const char *const private_members[] = {"d", "p", "q", "dp", "dq", "qi", "oth"};
    const char *kty, *crv, *kid, *alg = NULL;
    json_t *v;
    enum jws_alg want;
    EVP_PKEY *pkey;

    if (!json_is_object(k)) {
        *err = "a key is not a JSON object";
        return -1;
    }
    kty = json_string_value(json_object_get(k, "kty"));
    if (!kty) {
        *err = "a key has no string \"kty\"";
        return -1;
    }
    v = json_object_get(k, "use");
    if (v && !json_is_string(v)) {
        *err = "\"use\" is not a string";
        return -1;
    }
    if (v && strcmp(json_string_value(v), "sig") != 0)
        return 0;
    crv = json_string_value(json_object_get(k, "crv"));
    if (strcmp(kty, "EC") == 0 && crv && strcmp(crv, "P-256") == 0)
        want = ALG_ES256;
    else if (strcmp(kty, "OKP") == 0 && crv && strcmp(crv, "Ed25519") == 0)
        want = ALG_EDDSA;
    else if (strcmp(kty, "RSA") == 0)
        want = ALG_RS256; /* or PS256: decided by "alg" below */
    else
        return 0;

    v = json_object_get(k, "alg");
    if (v && !json_is_string(v)) {
        *err = "\"alg\" is not a string";
        return -1;
    }
    alg = json_string_value(v);
    if (want == ALG_RS256) {
        if (alg && strcmp(alg, "PS256") == 0)
            want = ALG_PS256;
        else if (!alg || strcmp(alg, "RS256") != 0) {
            *err = "an RSA key needs \"alg\" RS256 or PS256";
            return -1;
        }
    } else if (alg && strcmp(alg, alg_names[want]) != 0) {
        *err = want == ALG_ES256 ? "an EC P-256 key can only be ES256"
                                 : "an Ed25519 key can only be EdDSA";
        return -1;
    }
    for (size_t i = 0; i < sizeof(private_members) / sizeof(private_members[0]); i++)
        if (json_object_get(k, private_members[i])) {
            *err = "private key material in the JWKS";
            return -1;
        }
    kid = json_string_value(json_object_get(k, "kid"));
    if (!kid || !*kid || strlen(kid) > MOCK_MAX_KID) {
        *err = "a key needs a \"kid\" string of 1 to 256 bytes";
        return -1;
    }

    if (want == ALG_ES256)
        pkey = jwk_ec_p256(k, err);
    else if (want == ALG_EDDSA)
        pkey = jwk_ed25519(k, err);
    else
        pkey = jwk_rsa(k, err);
    ERR_clear_error();
    if (!pkey)
        return -1;
    out->kid = strdup(kid);
    if (!out->kid) {
        EVP_PKEY_free(pkey);
        *err = "out of memory";
        return -1;
    }
    out->alg = want;
    out->pkey = pkey;
    return 1;
}

/* Reads the JWKS document at <path> into <out> (all or nothing). Returns 0,
 * or -1 with a message in <err>. A document without a usable key is refused. */
static int jwks_load(const char *path, struct keyset *out, size_t *skipped, char *err, size_t errsz)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    char *text = NULL;
    size_t len = 0, nkeys;
    json_t *root = NULL, *keys;
    json_error_t jerr;
    struct keyset ks = {0};
    int rc = -1;

    *skipped = 0;
    if (!f || fstat(fileno(f), &st) != 0) {
        snprintf(err, errsz, "%s", strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > MOCK_MAX_JWKS) {
        snprintf(err, errsz, "not a regular file of at most %d bytes", MOCK_MAX_JWKS);
        goto out;
    }
    text = malloc((size_t)st.st_size + 1);
    if (!text) {
        snprintf(err, errsz, "out of memory");
        goto out;
    }
    len = fread(text, 1, (size_t)st.st_size + 1, f);
    if (ferror(f) || len > (size_t)st.st_size) {
        snprintf(err, errsz, "read error or file growing");
        goto out;
    }
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errsz, "invalid JSON at line %d: %s", jerr.line, jerr.text);
        goto out;
    }
    keys = json_object_get(root, "keys");
    if (!json_is_object(root) || !json_is_array(keys)) {
        snprintf(err, errsz, "expected a JSON object with a \"keys\" array");
        goto out;
    }
    nkeys = json_array_size(keys);
    ks.keys = calloc(nkeys ? nkeys : 1, sizeof(*ks.keys));
    if (!ks.keys) {
        snprintf(err, errsz, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nkeys; i++) {
        const char *why = NULL;
        struct jwk k = {0};
        int r = jwk_parse(json_array_get(keys, i), &k, &why);
        if (r < 0) {
            snprintf(err, errsz, "keys[%zu]: %s", i, why);
            goto out;
        }
        if (r == 0) {
            (*skipped)++;
            continue;
        }
        if (keyset_find(&ks, k.kid)) {
            snprintf(err, errsz, "keys[%zu]: duplicate kid", i);
            free(k.kid);
            EVP_PKEY_free(k.pkey);
            goto out;
        }
        ks.keys[ks.n++] = k;
    }
    if (ks.n == 0) {
        snprintf(err, errsz, "no usable key (EC P-256, RSA or OKP Ed25519, \"use\" absent or sig)");
        goto out;
    }
    *out = ks;
    ks = (struct keyset){0};
    rc = 0;
out:
    keyset_free(&ks);
    json_decref(root);
    free(text);
    if (f)
        fclose(f);
    return rc;
}

/* Re-reads the JWKS file; on failure the current keys stay. */
static void jwks_reload(struct mock *m, const char *why)
{
    struct keyset ks;
    size_t skipped;
    char err[256];

    m->v.last_load_ms = monotonic_ms();
    if (jwks_load(m->v.jwks_path, &ks, &skipped, err, sizeof(err)) != 0) {
        fprintf(stderr, MOCK_NAME ": jwks reload (%s) failed, keeping %zu key(s): %s: %s\n", why,
                m->v.ks.n, m->v.jwks_path, err);
        return;
    }
    keyset_free(&m->v.ks);
    m->v.ks = ks;
    if (!m->quiet)
        fprintf(stderr, MOCK_NAME ": jwks reloaded (%s): %zu key(s), %zu skipped\n", why, ks.n,
                skipped);
}

/* The value of the one <name> header of <req>; NULL if absent or repeated. */
static const char *single_header(struct evhttp_request *req, const char *name)
{
    struct evkeyval *kv;
    const char *found = NULL;

    TAILQ_FOREACH(kv, evhttp_request_get_input_headers(req), next)
    {
        if (evutil_ascii_strcasecmp(kv->key, name) != 0)
            continue;
        if (found)
            return NULL;
        found = kv->value;
    }
    return found;
}

/* ES256 signatures are R || S, 32 bytes each (RFC 7518 §3.4); OpenSSL wants
 * the DER ECDSA-Sig-Value. Returns the DER length, or 0. */
static int es256_to_der(const unsigned char *sig, unsigned char **der)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
    int len = 0;

    if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
        r = s = NULL; /* owned by <es> now */
        len = i2d_ECDSA_SIG(es, der);
        if (len < 0)
            len = 0;
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return len;
}

static bool verify_signature(const struct jwk *k, const unsigned char *tbs, size_t tbslen,
                             const unsigned char *sig, size_t siglen)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char *der = NULL;
    bool ok = false;

    switch (k->alg) {
    case ALG_ES256:
    case ALG_EDDSA:
        if (siglen != 64)
            goto out;
        break;
    case ALG_RS256:
    case ALG_PS256:
        if (siglen != (size_t)EVP_PKEY_get_size(k->pkey))
            goto out;
        break;
    }
    if (!md || EVP_DigestVerifyInit(md, &pctx, k->alg == ALG_EDDSA ? NULL : EVP_sha256(), NULL,
                                    k->pkey) != 1)
        goto out;
    if (k->alg == ALG_RS256 && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
        goto out;
    if (k->alg == ALG_PS256 && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                                EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1 ||
                                EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) != 1))
        goto out;
    if (k->alg == ALG_ES256) {
        int derlen = es256_to_der(sig, &der);
        if (derlen <= 0)
            goto out;
        sig = der;
        siglen = (size_t)derlen;
    }
    ok = EVP_DigestVerify(md, sig, siglen, tbs, tbslen) == 1;
out:
    OPENSSL_free(der);
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    return ok;
}

/* Checks the verified payload <c> against the configuration and against this
 * request. Returns NULL, or why it is refused (a constant: never input). */
static const char *check_claims(const struct verifier *v, json_t *c, struct evhttp_request *req)
{
    json_int_t now = (json_int_t)time(NULL);
    json_t *exp = json_object_get(c, "exp"), *iat = json_object_get(c, "iat");
    json_t *nbf = json_object_get(c, "nbf"), *aud = json_object_get(c, "aud");
    json_t *iss = json_object_get(c, "iss");
    const char *client_id = json_string_value(json_object_get(c, "client_id"));
    const char *request_id = json_string_value(json_object_get(c, "request_id"));
    const char *h;
    bool aud_ok = false;

    if (!json_is_integer(exp))
        return "exp absent or not an integer";
    if (json_integer_value(exp) < now - MOCK_LEEWAY_S)
        return "expired";
    if (!json_is_integer(iat))
        return "iat absent or not an integer";
    if (json_integer_value(iat) > now + MOCK_LEEWAY_S)
        return "iat in the future";
    if (nbf && !json_is_integer(nbf))
        return "nbf not an integer";
    if (nbf && json_integer_value(nbf) > now + MOCK_LEEWAY_S)
        return "nbf in the future";
    if (json_is_string(aud)) {
        aud_ok = strcmp(json_string_value(aud), v->aud) == 0;
    } else if (json_is_array(aud)) {
        size_t i;
        json_t *a;
        json_array_foreach(aud, i, a)
        {
            if (!json_is_string(a))
                return "aud array holds a non-string";
            if (strcmp(json_string_value(a), v->aud) == 0)
                aud_ok = true;
        }
    }
    if (!aud_ok)
        return "aud absent or without the configured audience";
    if (iss && !json_is_string(iss))
        return "iss not a string";
    if (v->iss && (!iss || strcmp(json_string_value(iss), v->iss) != 0))
        return "iss absent or not the configured issuer";
    if (!client_id || !*client_id)
        return "client_id absent or not a string";
    if (!request_id || !*request_id)
        return "request_id absent or not a string";
    h = single_header(req, "X-Request-ID");
    if (!h || strcmp(h, request_id) != 0)
        return "request_id differs from X-Request-ID (or header absent or repeated)";
    h = single_header(req, "X-Consumer-Id");
    if (!h || strcmp(h, client_id) != 0)
        return "client_id differs from X-Consumer-Id (or header absent or repeated)";
    return NULL;
}

/* Verifies the request's X-JWT-Assertion. Returns its claims (a new
 * reference), or NULL with <*why> set to a constant reason for the log. */
static json_t *verify_assertion(struct mock *m, struct evhttp_request *req, const char **why)
{
    const char *tok = single_header(req, "X-JWT-Assertion");
    const char *d1, *d2, *alg, *kid;
    size_t len, hlen = 0, plen = 0, slen = 0;
    unsigned char *hdr = NULL, *pay = NULL, *sig = NULL;
    json_t *header = NULL, *claims = NULL;
    const struct jwk *key;
    json_t *v;
    int a;

    *why = NULL;
    if (!tok) {
        *why = "X-JWT-Assertion absent or repeated";
        goto out;
    }
    len = strlen(tok);
    if (len > MOCK_MAX_ASSERTION) {
        *why = "too long";
        goto out;
    }
    d1 = memchr(tok, '.', len);
    d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok))) {
        *why = "not 3 segments";
        goto out;
    }
    hdr = b64url_decode(tok, (size_t)(d1 - tok), &hlen);
    pay = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &plen);
    sig = b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - tok), &slen);
    if (!hdr || !pay || !sig) {
        *why = "a segment is empty or not strict base64url";
        goto out;
    }

    header = json_loadb((const char *)hdr, hlen, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(header)) {
        *why = "header is not a JSON object";
        goto out;
    }
    alg = json_string_value(json_object_get(header, "alg"));
    for (a = 0; alg && a < (int)(sizeof(alg_names) / sizeof(alg_names[0])); a++)
        if (strcmp(alg, alg_names[a]) == 0)
            break;
    if (!alg || a == (int)(sizeof(alg_names) / sizeof(alg_names[0]))) {
        *why = "alg absent or not ES256, RS256, PS256 or EdDSA";
        goto out;
    }
    if (json_object_get(header, "crit")) {
        *why = "crit header parameter";
        goto out;
    }
    v = json_object_get(header, "kid");
    kid = json_string_value(v);
    if (!kid || !*kid || strlen(kid) > MOCK_MAX_KID) {
        *why = "kid absent or not a string of 1 to 256 bytes";
        goto out;
    }
    key = keyset_find(&m->v.ks, kid);
    if (!key && monotonic_ms() - m->v.last_load_ms >= MOCK_JWKS_RETRY_MS) {
        jwks_reload(m, "unknown kid");
        key = keyset_find(&m->v.ks, kid);
    }
    if (!key) {
        *why = "unknown kid";
        goto out;
    }
    if (key->alg != (enum jws_alg)a) {
        *why = "alg does not match the key";
        goto out;
    }
    if (!verify_signature(key, (const unsigned char *)tok, (size_t)(d2 - tok), sig, slen)) {
        *why = "bad signature";
        goto out;
    }

    claims = json_loadb((const char *)pay, plen, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(claims)) {
        *why = "payload is not a JSON object";
        goto out;
    }
    *why = check_claims(&m->v, claims, req);
out:
    if (*why) {
        json_decref(claims);
        claims = NULL;
    }
    json_decref(header);
    free(hdr);
    free(pay);
    free(sig);
    return claims;
}

/* ---- /__mock/ control endpoints ------------------------------------------ */

/* Counts a served request and keeps it as "last", with <claims> (consumed;
 * NULL without --jwks) as its verified assertion. */
static void record(struct mock *m, struct evhttp_request *req, const char *path, json_t *claims)
{
    struct evkeyvalq *hdrs = evhttp_request_get_input_headers(req);
    struct evkeyval *kv;
    json_t *list = json_array();
    json_t *cnt;
    char *key = utf8_copy(path);

    m->requests++;
    if (key) {
        cnt = json_object_get(m->by_path, key);
        if (!cnt && json_object_size(m->by_path) >= MOCK_MAX_PATHS) {
            free(key);
            key = strdup(MOCK_OTHER_PATHS);
        }
    }
    if (key) {
        cnt = json_object_get(m->by_path, key);
        json_object_set_new(m->by_path, key, json_integer(cnt ? json_integer_value(cnt) + 1 : 1));
        free(key);
    }

    TAILQ_FOREACH(kv, hdrs, next)
    {
        json_array_append_new(list, json_pack("[o,o]", jstr(kv->key), jstr(kv->value)));
    }
    /* the request line as evhttp read it, and the body's size, so that a test
     * can prove what the backend received (and that no body came up) */
    const char *mname = method_name(evhttp_request_get_command(req));
    const char *uri = evhttp_request_get_uri(req);
    char *line = NULL;
    if (asprintf(&line, "%s %s HTTP/%d.%d", mname, uri ? uri : "", (int)req->major,
                 (int)req->minor) < 0)
        line = NULL;
    size_t body_len = evbuffer_get_length(evhttp_request_get_input_buffer(req));
    json_decref(m->last);
    m->last = json_pack("{s:s,s:o,s:o,s:o,s:o,s:I}", "method", mname, "uri", jstr(uri),
                        "request_line", jstr(line ? line : ""), "headers", list, "assertion",
                        claims ? claims : json_null(), "body_len", (json_int_t)body_len);
    free(line);
}

/* Applies a {"latency_ms":N,"error_rate":P,"reset_rate":P,"seed":S} subset;
 * all or nothing. Returns NULL on success, else a constant message. */
static const char *apply_config(struct mock *m, const char *data, size_t len)
{
    json_error_t jerr;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    struct fault f = m->fault;
    const char *key, *err = NULL;
    json_t *v, *seed = NULL;

    if (!root || !json_is_object(root)) {
        err = "un objet JSON est attendu";
        goto out;
    }
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "latency_ms") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                json_integer_value(v) > MOCK_MAX_LATENCY_MS) {
                err = "latency_ms : entier entre 0 et 600000 attendu";
                goto out;
            }
            f.latency_ms = (long)json_integer_value(v);
        } else if (strcmp(key, "error_rate") == 0 || strcmp(key, "reset_rate") == 0) {
            double r = json_is_number(v) ? json_number_value(v) : -1;
            if (!(r >= 0.0 && r <= 1.0)) {
                err = key[0] == 'e' ? "error_rate : nombre entre 0 et 1 attendu"
                                    : "reset_rate : nombre entre 0 et 1 attendu";
                goto out;
            }
            if (key[0] == 'e')
                f.error_rate = r;
            else
                f.reset_rate = r;
        } else if (strcmp(key, "seed") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0) {
                err = "seed : entier positif ou nul attendu";
                goto out;
            }
            seed = v;
        } else {
            err = "clé inconnue (latency_ms, error_rate, reset_rate, seed)";
            goto out;
        }
    }
    m->fault = f;
    if (seed) {
        m->seed = (uint64_t)json_integer_value(seed);
        m->rng = m->seed;
    }
out:
    json_decref(root);
    return err;
}

static void serve_control(struct mock *m, struct evhttp_request *req, const char *what)
{
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

    if (strcmp(what, "stats") == 0) {
        if (cmd != EVHTTP_REQ_GET)
            goto method;
        send_json(m, req, 200,
                  json_pack("{s:I,s:I,s:O,s:I}", "requests", (json_int_t)m->requests, "connections",
                            (json_int_t)m->connections, "by_path", m->by_path, "assertion_refused",
                            (json_int_t)m->assertion_refused));
    } else if (strcmp(what, "reset") == 0) {
        if (cmd != EVHTTP_REQ_POST)
            goto method;
        m->requests = 0;
        m->connections = 0;
        m->assertion_refused = 0;
        m->rng = m->seed; /* the fault sequence restarts too */
        json_object_clear(m->by_path);
        json_decref(m->last);
        m->last = NULL;
        send_json(m, req, 204, NULL);
    } else if (strcmp(what, "last") == 0) {
        if (cmd != EVHTTP_REQ_GET)
            goto method;
        if (!m->last)
            send_error(m, req, E404_NOLAST);
        else
            send_json(m, req, 200, json_incref(m->last));
    } else if (strcmp(what, "config") == 0) {
        if (cmd == EVHTTP_REQ_GET) {
            send_json(m, req, 200,
                      json_pack("{s:I,s:f,s:f,s:I}", "latency_ms", (json_int_t)m->fault.latency_ms,
                                "error_rate", m->fault.error_rate, "reset_rate",
                                m->fault.reset_rate, "seed", (json_int_t)m->seed));
        } else if (cmd == EVHTTP_REQ_POST) {
            struct evbuffer *in = evhttp_request_get_input_buffer(req);
            size_t len = evbuffer_get_length(in);
            const char *data = (const char *)evbuffer_pullup(in, -1);
            const char *err = apply_config(m, data ? data : "", len);
            if (err) {
                if (!m->quiet)
                    fprintf(stderr, MOCK_NAME ": config refused: %s\n", err);
                send_error(m, req, E400_CONFIG);
            } else {
                if (!m->quiet)
                    fprintf(stderr,
                            MOCK_NAME ": config latency_ms=%ld error_rate=%g reset_rate=%g\n",
                            m->fault.latency_ms, m->fault.error_rate, m->fault.reset_rate);
                send_json(m, req, 204, NULL);
            }
        } else {
            goto method;
        }
    } else {
        send_error(m, req, E404_PATH);
    }
    return;
method:
    send_error(m, req, E405);
}

/* ---- request entry point ------------------------------------------------- */

static void on_request(struct evhttp_request *req, void *arg)
{
    struct mock *m = arg;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    enum outcome o = OUT_REPLY;
    double u_reset, u_error;

    if (evcon) {
        struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
        evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
        int one = 1;
        if (fd >= 0)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        evhttp_connection_set_closecb(evcon, on_conn_close, m);
    }
    if (!path)
        path = "";
    if (strncmp(path, "/__mock/", 8) == 0) {
        serve_control(m, req, path + 8);
        return;
    }

    if (m->v.jwks_path) {
        /* Checked first: a refused request is not counted as served, draws
         * nothing from the fault PRNG and is answered at once. */
        const char *why;
        json_t *claims = verify_assertion(m, req, &why);
        if (!claims) {
            m->assertion_refused++;
            send_error_note(m, req, E401_ASSERTION, why);
            return;
        }
        record(m, req, path, claims);
    } else {
        record(m, req, path, NULL);
    }
    /* Two draws per request whatever the rates, so that the outcome of the
     * n-th request depends only on the seed, n and the rates. */
    u_reset = uniform01(&m->rng);
    u_error = uniform01(&m->rng);
    if (u_reset < m->fault.reset_rate)
        o = OUT_RESET;
    else if (u_error < m->fault.error_rate)
        o = OUT_ERROR;

    if (m->fault.latency_ms == 0 && o != OUT_RESET) {
        finish(m, req, o);
        return;
    }
    /* A reset is deferred even without latency: freeing the connection from
     * inside evhttp's own read callback is not something to rely on. */
    if (defer(m, req, o, m->fault.latency_ms) != 0) {
        if (o == OUT_RESET)
            o = OUT_ERROR; /* cannot defer: answer rather than hang */
        finish(m, req, o);
    }
}

/* Called by evhttp for each accepted connection, before the first request:
 * the one place where every TCP connection can be counted. */
static struct bufferevent *on_new_conn(struct event_base *base, void *arg)
{
    struct mock *m = arg;

    m->connections++;
    return bufferevent_socket_new(base, -1, 0);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct mock *m = arg;

    event_base_loopexit(m->base, NULL);
}

static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
    jwks_reload(arg, "SIGHUP");
}

/* ---- command line ---------------------------------------------------------- */

struct options {
    const char *listen;
    long port;
    const char *port_file;
    long latency_ms;
    double error_rate;
    double reset_rate;
    uint64_t seed;
    const char *jwks;
    const char *assertion_aud;
    const char *assertion_iss;
    bool quiet;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: " MOCK_NAME " [--listen ADDR] --port N [--port-file FILE]\n"
               "                  [--latency-ms N] [--error-rate P] [--reset-rate P]\n"
               "                  [--seed S] [--quiet]\n"
               "                  [--jwks FILE [--assertion-aud AUD] [--assertion-iss ISS]]\n"
               "  --listen ADDR     IPv4 or IPv6 literal to bind (default 127.0.0.1)\n"
               "  --port N          TCP port, 0 for an ephemeral one\n"
               "  --port-file FILE  write the bound port there (atomically)\n"
               "  --latency-ms N    delay every OPALE reply by N ms (0..600000)\n"
               "  --error-rate P    fraction of OPALE requests answered 500 (0..1)\n"
               "  --reset-rate P    fraction of OPALE requests reset without reply (0..1)\n"
               "  --seed S          seed of the fault-injection PRNG, 0..2^63-1 (default 1)\n"
               "  --quiet           no access log on stderr\n"
               "  --jwks FILE       require a valid X-JWT-Assertion signed by a key of this\n"
               "                    JWKS file (re-read on SIGHUP and on an unknown kid)\n"
               "  --assertion-aud AUD  audience the assertion must name (default " MOCK_DEFAULT_AUD
               ")\n"
               "  --assertion-iss ISS  issuer the assertion must name (default: not checked)\n");
}

static bool parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_rate(const char *s, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0.0 && v <= 1.0))
        return false;
    *out = v;
    return true;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (*s == '-')
        return false;
    errno = 0;
    v = strtoull(s, &end, 0);
    if (errno || end == s || *end || v > (unsigned long long)INT64_MAX)
        return false;
    *out = v;
    return true;
}

/* Returns 0, 1 for --help, or -1 with a message on stderr. */
static int parse_args(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"port", required_argument, NULL, 'p'},
        {"port-file", required_argument, NULL, 'f'},
        {"latency-ms", required_argument, NULL, 'L'},
        {"error-rate", required_argument, NULL, 'e'},
        {"reset-rate", required_argument, NULL, 'r'},
        {"seed", required_argument, NULL, 's'},
        {"quiet", no_argument, NULL, 'q'},
        {"jwks", required_argument, NULL, 'J'},
        {"assertion-aud", required_argument, NULL, 'A'},
        {"assertion-iss", required_argument, NULL, 'I'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    *o = (struct options){.listen = "127.0.0.1", .port = -1, .seed = 1};
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:", longopts, NULL)) != -1) {
        switch (c) {
        case 'l':
            o->listen = optarg;
            break;
        case 'p':
            if (!parse_long(optarg, 0, 65535, &o->port)) {
                fprintf(stderr, MOCK_NAME ": --port: expected an integer in 0..65535\n");
                return -1;
            }
            break;
        case 'f':
            if (!*optarg) {
                fprintf(stderr, MOCK_NAME ": --port-file: empty file name\n");
                return -1;
            }
            o->port_file = optarg;
            break;
        case 'L':
            if (!parse_long(optarg, 0, MOCK_MAX_LATENCY_MS, &o->latency_ms)) {
                fprintf(stderr, MOCK_NAME ": --latency-ms: expected an integer in 0..%ld\n",
                        MOCK_MAX_LATENCY_MS);
                return -1;
            }
            break;
        case 'e':
        case 'r':
            if (!parse_rate(optarg, c == 'e' ? &o->error_rate : &o->reset_rate)) {
                fprintf(stderr, MOCK_NAME ": --%s: expected a number in [0, 1]\n",
                        c == 'e' ? "error-rate" : "reset-rate");
                return -1;
            }
            break;
        case 's':
            if (!parse_u64(optarg, &o->seed)) {
                fprintf(stderr, MOCK_NAME ": --seed: expected an integer in 0..2^63-1\n");
                return -1;
            }
            break;
        case 'q':
            o->quiet = true;
            break;
        case 'J':
        case 'A':
        case 'I':
            if (!*optarg) {
                fprintf(stderr, MOCK_NAME ": --%s: empty value\n",
                        c == 'J'   ? "jwks"
                        : c == 'A' ? "assertion-aud"
                                   : "assertion-iss");
                return -1;
            }
            *(c == 'J' ? &o->jwks : c == 'A' ? &o->assertion_aud : &o->assertion_iss) = optarg;
            break;
        case 'h':
            return 1;
        case ':':
            fprintf(stderr, MOCK_NAME ": %s: missing value\n", argv[optind - 1]);
            return -1;
        default:
            fprintf(stderr, MOCK_NAME ": unknown option: %s\n", argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, MOCK_NAME ": unexpected argument: %s\n", argv[optind]);
        return -1;
    }
    if (o->port < 0) {
        fprintf(stderr, MOCK_NAME ": --port is required\n");
        return -1;
    }
    if (!o->jwks && (o->assertion_aud || o->assertion_iss)) {
        fprintf(stderr, MOCK_NAME ": --assertion-aud and --assertion-iss need --jwks\n");
        return -1;
    }
    return 0;
}

/* Fills <ss> from an IPv4 or IPv6 literal (brackets allowed around IPv6). */
static int parse_addr(const char *addr, long port, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(addr);
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_PASSIVE, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;

    if (n >= sizeof(host))
        return -1;
    if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']') {
        memcpy(host, addr + 1, n - 2);
        host[n - 2] = '\0';
    } else {
        memcpy(host, addr, n + 1);
    }
    if (getaddrinfo(host, NULL, &hints, &ai) != 0 || !ai)
        return -1;
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *len = ai->ai_addrlen;
    freeaddrinfo(ai);
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    else
        return -1;
    return 0;
}

static int write_port_file(const char *path, unsigned port)
{
    size_t n = strlen(path) + 5;
    char *tmp = malloc(n);
    FILE *f = NULL;
    int rc = -1;

    if (!tmp)
        goto out;
    snprintf(tmp, n, "%s.tmp", path);
    f = fopen(tmp, "w");
    if (!f)
        goto out;
    if (fprintf(f, "%u\n", port) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fclose(f);
        goto out;
    }
    if (fclose(f) != 0)
        goto out;
    if (rename(tmp, path) != 0)
        goto out;
    rc = 0;
out:
    if (rc != 0)
        fprintf(stderr, MOCK_NAME ": %s: %s\n", path, strerror(errno));
    free(tmp);
    return rc;
}

int main(int argc, char **argv)
{
    struct options opt;
    struct mock m = {0};
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    struct evconnlistener *lev = NULL;
    struct event *sigterm = NULL, *sigint = NULL, *sighup = NULL;
    char host[INET6_ADDRSTRLEN];
    unsigned port;
    int rc = 1;

    switch (parse_args(argc, argv, &opt)) {
    case 1:
        usage(stdout);
        return 0;
    case -1:
        usage(stderr);
        return 2;
    }
    if (parse_addr(opt.listen, opt.port, &ss, &sslen) != 0) {
        fprintf(stderr, MOCK_NAME ": --listen: not an IPv4 or IPv6 literal: %s\n", opt.listen);
        return 2;
    }

    if (opt.jwks) {
        char err[256];
        size_t skipped;
        if (jwks_load(opt.jwks, &m.v.ks, &skipped, err, sizeof(err)) != 0) {
            fprintf(stderr, MOCK_NAME ": --jwks %s: %s\n", opt.jwks, err);
            return 2;
        }
        m.v.jwks_path = opt.jwks;
        m.v.aud = opt.assertion_aud ? opt.assertion_aud : MOCK_DEFAULT_AUD;
        m.v.iss = opt.assertion_iss;
        m.v.last_load_ms = monotonic_ms();
        if (!opt.quiet)
            fprintf(stderr, MOCK_NAME ": jwks %s: %zu key(s), %zu skipped\n", opt.jwks, m.v.ks.n,
                    skipped);
    }

    signal(SIGPIPE, SIG_IGN);
    m.fault = (struct fault){opt.latency_ms, opt.error_rate, opt.reset_rate};
    m.seed = opt.seed;
    m.rng = opt.seed;
    m.quiet = opt.quiet;
    m.by_path = json_object();
    m.base = event_base_new();
    m.http = m.base ? evhttp_new(m.base) : NULL;
    if (!m.by_path || !m.http) {
        fprintf(stderr, MOCK_NAME ": out of memory\n");
        goto out;
    }
    evhttp_set_allowed_methods(m.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                           EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                           EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT |
                                           EVHTTP_REQ_PATCH);
    evhttp_set_max_body_size(m.http, MOCK_MAX_BODY);
    evhttp_set_max_headers_size(m.http, MOCK_MAX_HEADERS);
    evhttp_set_timeout(m.http, MOCK_CONN_TIMEOUT_S);
    evhttp_set_gencb(m.http, on_request, &m);
    evhttp_set_bevcb(m.http, on_new_conn, &m);

    lev = evconnlistener_new_bind(m.base, NULL, NULL,
                                  LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                                  128, (struct sockaddr *)&ss, (int)sslen);
    if (!lev) {
        fprintf(stderr, MOCK_NAME ": cannot listen on %s port %ld: %s\n", opt.listen, opt.port,
                strerror(errno));
        goto out;
    }
    /* evhttp takes the listener over (and frees it with the evhttp); it
     * accepts on it, and on_new_conn counts each accepted connection. */
    if (!evhttp_bind_listener(m.http, lev)) {
        evconnlistener_free(lev);
        fprintf(stderr, MOCK_NAME ": cannot attach the listener\n");
        goto out;
    }

    sslen = sizeof(ss);
    if (getsockname(evconnlistener_get_fd(lev), (struct sockaddr *)&ss, &sslen) != 0) {
        fprintf(stderr, MOCK_NAME ": getsockname: %s\n", strerror(errno));
        goto out;
    }
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        evutil_inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        port = ntohs(s6->sin6_port);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        evutil_inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        port = ntohs(s4->sin_port);
    }

    sigterm = evsignal_new(m.base, SIGTERM, on_signal, &m);
    sigint = evsignal_new(m.base, SIGINT, on_signal, &m);
    if (!sigterm || !sigint || evsignal_add(sigterm, NULL) || evsignal_add(sigint, NULL)) {
        fprintf(stderr, MOCK_NAME ": cannot install signal handlers\n");
        goto out;
    }
    if (m.v.jwks_path) { /* without --jwks, SIGHUP keeps its default action */
        sighup = evsignal_new(m.base, SIGHUP, on_sighup, &m);
        if (!sighup || evsignal_add(sighup, NULL)) {
            fprintf(stderr, MOCK_NAME ": cannot install signal handlers\n");
            goto out;
        }
    }

    if (opt.port_file && write_port_file(opt.port_file, port) != 0)
        goto out;
    if (ss.ss_family == AF_INET6)
        printf(MOCK_NAME " listening on [%s]:%u\n", host, port);
    else
        printf(MOCK_NAME " listening on %s:%u\n", host, port);
    fflush(stdout);

    if (event_base_dispatch(m.base) < 0) {
        fprintf(stderr, MOCK_NAME ": event loop failed\n");
        goto out;
    }
    rc = 0;
out:
    /* evhttp_free() closes every connection; on_conn_close drops the
     * pending replies of those connections, so the list ends up empty. */
    if (m.http)
        evhttp_free(m.http);
    while (m.pending) {
        struct pending *p = m.pending;
        if (!evhttp_request_get_connection(p->req))
            evhttp_request_free(p->req);
        pending_drop(&m, p);
    }
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    if (sighup)
        event_free(sighup);
    if (m.base)
        event_base_free(m.base);
    json_decref(m.by_path);
    json_decref(m.last);
    keyset_free(&m.v.ks);
    return rc;
}
