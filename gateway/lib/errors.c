#include "lib/errors.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lib/util.h"

/* Keep in step with docs/errors.md. Messages are constants: an error body
 * never echoes request input. */
static const gw_err_def table[GW_ERR__COUNT] = {
    [GW_OK] = {GW_OK, "0", 200, "OK", "ok"},
    [GW_ERR_CORRELATION_MISSING] = {GW_ERR_CORRELATION_MISSING, "910000", 400,
                                    "Le paramètre X-Correlation-ID n'est pas présent dans le "
                                    "header HTTP",
                                    "correlation.missing"},
    [GW_ERR_TOKEN_INVALID] = {GW_ERR_TOKEN_INVALID, "900901", 401, "Invalid Credentials",
                              "bearer.invalid"},
    [GW_ERR_TOKEN_MISSING] = {GW_ERR_TOKEN_MISSING, "900902", 401, "Missing Credentials",
                              "bearer.missing"},
    [GW_ERR_SCOPE] = {GW_ERR_SCOPE, "900910", 403,
                      "The access token does not allow you to access the requested resource",
                      "rights.scope"},
    [GW_ERR_THROTTLED] = {GW_ERR_THROTTLED, "900804", 429, "Message throttled out",
                          "quota.exceeded"},
    [GW_ERR_BAD_REQUEST] = {GW_ERR_BAD_REQUEST, "910400", 400, "Requête HTTP invalide",
                            "http.bad_request"},
    [GW_ERR_NOT_FOUND] = {GW_ERR_NOT_FOUND, "910404", 404, "Ressource inconnue", "route.not_found"},
    [GW_ERR_METHOD_NOT_ALLOWED] = {GW_ERR_METHOD_NOT_ALLOWED, "910405", 405,
                                   "Méthode non autorisée pour cette ressource",
                                   "route.method_not_allowed"},
    [GW_ERR_REQUEST_TIMEOUT] = {GW_ERR_REQUEST_TIMEOUT, "910408", 408,
                                "Délai de réception de la requête dépassé", "http.timeout"},
    [GW_ERR_BODY_TOO_LARGE] = {GW_ERR_BODY_TOO_LARGE, "910413", 413,
                               "Corps de requête trop volumineux", "http.body_too_large"},
    [GW_ERR_HEADERS_TOO_LARGE] = {GW_ERR_HEADERS_TOO_LARGE, "910431", 431,
                                  "En-têtes de requête trop volumineux", "http.headers_too_large"},
    [GW_ERR_NOT_IMPLEMENTED] = {GW_ERR_NOT_IMPLEMENTED, "910501", 501,
                                "Fonctionnalité HTTP non prise en charge", "http.not_implemented"},
    [GW_ERR_OVERLOADED] = {GW_ERR_OVERLOADED, "910503", 503,
                           "Passerelle saturée, réessayez plus tard", "server.overloaded"},
    [GW_ERR_SHUTTING_DOWN] = {GW_ERR_SHUTTING_DOWN, "910504", 503,
                              "Passerelle en cours d'arrêt, réessayez plus tard",
                              "server.shutting_down"},
    [GW_ERR_INTERNAL] = {GW_ERR_INTERNAL, "910500", 500, "Erreur interne de la passerelle",
                         "server.internal"},
    [GW_ERR_UPSTREAM_DOWN] = {GW_ERR_UPSTREAM_DOWN, "910502", 502,
                              "Le service OPALE est injoignable", "upstream.unavailable"},
    [GW_ERR_UPSTREAM_TIMEOUT] = {GW_ERR_UPSTREAM_TIMEOUT, "910514", 504,
                                 "Délai de réponse du service OPALE dépassé", "upstream.timeout"},
    [GW_ERR_UPSTREAM_INVALID] = {GW_ERR_UPSTREAM_INVALID, "910512", 502,
                                 "Réponse invalide du service OPALE", "upstream.invalid"},
    [GW_ERR_CERT_UNKNOWN] = {GW_ERR_CERT_UNKNOWN, "910201", 401,
                             "Certificat client inconnu : aucune habilitation ne lui correspond",
                             "mtls.unknown_cert"},
    [GW_ERR_IP_DENIED] = {GW_ERR_IP_DENIED, "910202", 403,
                          "Adresse IP de l'appelant non autorisée pour cette habilitation",
                          "ipallow.denied"},
    [GW_ERR_TELESERVICE_MISSING] = {GW_ERR_TELESERVICE_MISSING, "910203", 403,
                                    "L'identifiant technique ID_Teleservice est absent",
                                    "teleservice.missing"},
    [GW_ERR_TELESERVICE_MISMATCH] = {GW_ERR_TELESERVICE_MISMATCH, "910204", 403,
                                     "L'identifiant technique ID_Teleservice n'est pas celui de "
                                     "l'habilitation",
                                     "teleservice.mismatch"},
    [GW_ERR_HAB_SUSPENDED] = {GW_ERR_HAB_SUSPENDED, "910205", 403, "Habilitation suspendue",
                              "rights.suspended"},
    [GW_ERR_HAB_REVOKED] = {GW_ERR_HAB_REVOKED, "910206", 403, "Habilitation révoquée",
                            "rights.revoked"},
    [GW_ERR_HAB_NOT_YET_VALID] = {GW_ERR_HAB_NOT_YET_VALID, "910207", 403,
                                  "Habilitation pas encore en vigueur", "rights.not_yet_valid"},
    [GW_ERR_HAB_EXPIRED] = {GW_ERR_HAB_EXPIRED, "910208", 403, "Habilitation expirée",
                            "rights.expired"},
    [GW_ERR_ENVIRONMENT] = {GW_ERR_ENVIRONMENT, "910209", 403,
                            "Habilitation non valable pour cet environnement",
                            "rights.environment"},
    [GW_ERR_YEAR_NOT_GRANTED] = {GW_ERR_YEAR_NOT_GRANTED, "910210", 403,
                                 "Année demandée hors de la période habilitée", "rights.year"},
    [GW_ERR_YEAR_INVALID] = {GW_ERR_YEAR_INVALID, "910211", 400,
                             "Le paramètre annee est absent ou n'est pas une année sur 4 chiffres",
                             "query.bad_value"},
    [GW_ERR_SIREN_INVALID] = {GW_ERR_SIREN_INVALID, "910212", 400,
                              "Le SIREN doit comporter 9 chiffres et une clé de contrôle valide",
                              "rights.bad_siren"},
    [GW_ERR_QUERY_INVALID] = {GW_ERR_QUERY_INVALID, "910214", 400,
                              "Paramètre de requête non défini pour cette ressource, répété, "
                              "encodé ou mal formé",
                              "query.undeclared"},
    [GW_ERR_CONSUMER_SUSPENDED] = {GW_ERR_CONSUMER_SUSPENDED, "910213", 403,
                                   "Accès du consommateur coupé par l'exploitant",
                                   "killswitch.suspended"},
    [GW_ERR_MAINTENANCE] = {GW_ERR_MAINTENANCE, "910220", 503,
                            "L'API est en maintenance programmée", "maintenance.slot"},
    [GW_ERR_QUOTA_UNAVAILABLE] = {GW_ERR_QUOTA_UNAVAILABLE, "910230", 503,
                                  "Décision de quota impossible : stockage indisponible",
                                  "quota.store_unavailable"},
    [GW_ERR_CERT_REVOKED] = {GW_ERR_CERT_REVOKED, "910215", 401, "Certificat client révoqué",
                             "tls.ocsp_revoked"},
    [GW_ERR_JOURNAL_UNAVAILABLE] = {GW_ERR_JOURNAL_UNAVAILABLE, "910240", 503,
                                    "Journal des accès indisponible : aucune donnée n'est "
                                    "transmise",
                                    "journal.unavailable"},
    [GW_ERR_CLIENT_CLOSED] = {GW_ERR_CLIENT_CLOSED, "910499", 499, "Connexion fermée par le client",
                              "client.closed"},
};

const gw_err_def *gw_err(gw_err_id id)
{
    if ((unsigned)id >= GW_ERR__COUNT || table[id].code == NULL)
        id = GW_ERR_INTERNAL;
    return &table[id];
}

const char *gw_http_reason_phrase(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

char *gw_err_body(gw_err_id id, size_t *len)
{
    const gw_err_def *d = gw_err(id);
    char ts[32];
    gw_time_iso(ts);
    json_t *o = json_pack("{s:{s:s,s:s,s:s}}", "erreur", "code", d->code, "message", d->message,
                          "horodatage", ts);
    if (o == NULL)
        return NULL;
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (s != NULL && len != NULL)
        *len = strlen(s);
    return s;
}
