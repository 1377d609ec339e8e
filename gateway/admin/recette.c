/* The recette report on the console's partner page (see recette.h). */
#include "admin/recette.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "evidence/evidence.h"
#include "evidence/recette.h"
#include "journal/verify.h"

static json_t *unavailable(const char *why)
{
    return json_pack("{s:b,s:s}", "available", 0, "markdown", why);
}

/* The bytes of the journal's files, -1 when they cannot be listed. */
static long long journal_bytes(const char *path)
{
    char **files = NULL, *err = NULL;
    size_t n = 0;
    if (gw_journal_list_files(path, &files, &n, &err) < 0) {
        free(err);
        return -1;
    }
    long long total = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(files[i], &st) == 0)
            total += (long long)st.st_size;
    }
    gw_journal_free_files(files, n);
    return total;
}

static json_t *compute(const char *journal_path, const gw_keyset *keys, const char *client_id)
{
    long long bytes = journal_bytes(journal_path);
    if (bytes < 0)
        return unavailable("The journal cannot be read.");
    if (bytes > (long long)GW_ADMIN_RECETTE_MAX_BYTES)
        return unavailable("The journal is too large to verify here: run `opale-gateway --recette "
                           "CLIENT_ID -c FILE JOURNAL...` (docs/recette.md).");
    gw_ev_journal j;
    char *err = NULL;
    const char *paths[1] = {journal_path};
    if (gw_ev_journal_load(paths, 1, keys, NULL, &j, &err) != 0) {
        char msg[512];
        snprintf(msg, sizeof(msg), "No report: %s.", err != NULL ? err : "the journal is unusable");
        free(err);
        gw_ev_journal_clear(&j);
        return unavailable(msg);
    }
    gw_recette_criteria crit;
    gw_recette_criteria_default(&crit);
    json_t *rep = gw_recette_analyse(j.recs, j.n, client_id, &crit);
    char *md = NULL;
    size_t len = 0;
    FILE *o = rep != NULL ? open_memstream(&md, &len) : NULL;
    if (o == NULL) {
        gw_ev_journal_clear(&j);
        json_decref(rep);
        return unavailable("Out of memory.");
    }
    gw_recette_render_md(o, rep, &j);
    fclose(o);
    gw_ev_journal_clear(&j);
    json_decref(rep);
    json_t *ans = json_pack("{s:b,s:s%}", "available", 1, "markdown", md, len);
    free(md);
    return ans != NULL ? ans : unavailable("Out of memory.");
}

json_t *gw_admin_recette_json(gw_admin_recette *c, const char *journal_path, const gw_keyset *keys,
                              const char *client_id, time_t now)
{
    if (c->answer != NULL && strcmp(c->client_id, client_id) == 0 && now >= c->at &&
        now - c->at < GW_ADMIN_RECETTE_TTL_S)
        return json_incref(c->answer);
    gw_admin_recette_clear(c);
    c->answer = compute(journal_path, keys, client_id);
    snprintf(c->client_id, sizeof(c->client_id), "%s", client_id);
    c->at = now;
    return json_incref(c->answer);
}

void gw_admin_recette_clear(gw_admin_recette *c)
{
    json_decref(c->answer);
    c->answer = NULL;
    c->at = 0;
    c->client_id[0] = '\0';
}
