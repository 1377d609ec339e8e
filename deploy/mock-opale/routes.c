/*
 * opale-mock: the OPALE routes and their fictitious data (mock.h).
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include "mock.h"

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
    return (unsigned)(mock_splitmix64(&g->s) % n);
}

static int gen_range(struct gen *g, int lo, int hi) /* inclusive */
{
    return lo + (int)gen_below(g, (unsigned)(hi - lo + 1));
}

/* An amount in euros with cents, in [lo, hi]. */
static double gen_amount(struct gen *g, long lo, long hi)
{
    long cents = lo * 100 + (long)(mock_splitmix64(&g->s) % (uint64_t)((hi - lo) * 100 + 1));
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

/* ---- the serialised bodies, cached ------------------------------------------
 *
 * A body depends on (route, SIREN, year) alone, so the text made once is the
 * text of every later request for the same three: direct-mapped on their
 * FNV-1a hash, the inputs compared in full. Building and serialising the JSON
 * (jansson, floats through printf) cost ~60 us of the mock's ~70 us per
 * request, and the mock shares the load generator's core in the bench. The
 * mock is single-threaded: no lock. */

#define BODY_CACHE_SLOTS 1024

struct body_slot {
    const struct route *rt; /* NULL: empty */
    char siren[16], annee[8];
    char *text;
    size_t len;
};

static struct body_slot body_cache[BODY_CACHE_SLOTS];

/* The body of <rt> for <siren>/<annee> (hash <h>), cached; NULL when out of
 * memory. The text stays owned by the cache. */
static const char *body_text(const struct route *rt, const char *siren, const char *annee,
                             uint64_t h, size_t *len)
{
    struct body_slot *s = &body_cache[h % BODY_CACHE_SLOTS];
    if (s->rt == rt && strcmp(s->siren, siren) == 0 && strcmp(s->annee, annee) == 0) {
        *len = s->len;
        return s->text;
    }
    struct gen g = {h};
    json_t *body = rt->gen(&g, siren, rt->year_bound ? atoi(annee) : 0);
    char *text = body ? json_dumps(body, JSON_FLAGS) : NULL;
    json_decref(body);
    if (text == NULL)
        return NULL;
    free(s->text);
    s->rt = rt;
    snprintf(s->siren, sizeof(s->siren), "%s", siren);
    snprintf(s->annee, sizeof(s->annee), "%s", annee);
    s->text = text;
    s->len = strlen(text);
    *len = s->len;
    return text;
}

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

void mock_serve_opale(struct mock *m, struct evhttp_request *req)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    bool is_get = evhttp_request_get_command(req) == EVHTTP_REQ_GET;
    const struct route *rt = NULL;
    char siren[16] = "", annee[8] = "";

    if (!path) {
        mock_send_error(m, req, E400_REQUEST);
        return;
    }
    if (strcmp(path, "/opale/v1/etatSante") == 0) {
        if (!is_get)
            mock_send_error(m, req, E405);
        else
            mock_send_json(m, req, 200,
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
        mock_send_error(m, req, E404_PATH);
        return;
    }
    if (!is_get) {
        mock_send_error(m, req, E405);
        return;
    }
    if (!all_digits(siren, 9)) {
        mock_send_error(m, req, E400_SIREN);
        return;
    }
    if (rt->year_bound &&
        (!query_annee(evhttp_uri_get_query(uri), annee, sizeof(annee)) || !all_digits(annee, 4))) {
        mock_send_error(m, req, E400_ANNEE);
        return;
    }
    if (strncmp(siren, "999", 3) == 0) {
        mock_send_error(m, req, E404_SIREN);
        return;
    }

    uint64_t h = fnv1a64(fnv1a64(fnv1a64(0xcbf29ce484222325ULL, siren), rt->name), annee);
    size_t len = 0;
    const char *text = body_text(rt, siren, annee, h, &len);
    mock_send_text(m, req, 200, text, len);
}
