#include "datapass/webhook.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/hmac.h>

#include "lib/util.h"
#include "policy/policy.h"

gw_dp_action gw_dp_action_of(const char *n)
{
    static const char *const revoke[] = {"revoke", "archive", NULL};
    static const char *const update[] = {"approve", "update", "admin_update", "update_by_api",
                                         NULL};
    for (size_t i = 0; revoke[i] != NULL; i++)
        if (strcmp(n, revoke[i]) == 0)
            return GW_DP_REVOKE;
    for (size_t i = 0; update[i] != NULL; i++)
        if (strcmp(n, update[i]) == 0)
            return GW_DP_UPDATE;
    return GW_DP_OTHER;
}

void gw_dp_event_clear(gw_dp_event *ev)
{
    json_decref(ev->root);
    memset(ev, 0, sizeof(*ev));
}

static int printable(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
            return 0;
    return 1;
}

int gw_dp_event_parse(const char *body, size_t len, gw_dp_event *ev, const char **why)
{
    json_error_t je;
    memset(ev, 0, sizeof(*ev));
    /* JSON_REJECT_DUPLICATES: two "event" keys must not mean two things */
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        *why = "body: not JSON";
        return -1;
    }
    ev->root = root;
    if (!json_is_object(root)) {
        *why = "body: must be an object";
        goto bad;
    }
    json_t *v = json_object_get(root, "id");
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        snprintf(ev->id, sizeof(ev->id), "%lld", (long long)json_integer_value(v));
    } else if (json_is_string(v) && json_string_length(v) >= 1 &&
               json_string_length(v) < sizeof(ev->id) &&
               strlen(json_string_value(v)) == json_string_length(v) &&
               printable(json_string_value(v))) {
        memcpy(ev->id, json_string_value(v), json_string_length(v) + 1);
    } else {
        *why = "id: must be an integer or a string of 1 to 64 printable characters";
        goto bad;
    }
    v = json_object_get(root, "event");
    size_t n = json_is_string(v) ? json_string_length(v) : 0;
    if (n == 0 || n >= sizeof(ev->name) ||
        strspn(json_string_value(v), "abcdefghijklmnopqrstuvwxyz_") != n) {
        *why = "event: must be an event name";
        goto bad;
    }
    memcpy(ev->name, json_string_value(v), n + 1);
    v = json_object_get(root, "fired_at");
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        *why = "fired_at: must be a Unix time in seconds";
        goto bad;
    }
    ev->fired_at = (long long)json_integer_value(v);
    ev->action = gw_dp_action_of(ev->name);
    json_t *d = json_object_get(root, "data");
    if (ev->action == GW_DP_OTHER && d == NULL)
        return 0;
    if (!json_is_object(d)) {
        *why = "data: must be the habilitation (an object)";
        goto bad;
    }
    v = json_object_get(d, "id");
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > 999999999999LL) {
        *why = "data.id: must be a positive integer";
        goto bad;
    }
    snprintf(ev->hab_id, sizeof(ev->hab_id), "H%lld", (long long)json_integer_value(v));
    v = json_object_get(d, "definition_id");
    n = json_is_string(v) ? json_string_length(v) : 0;
    if (n == 0 || n >= sizeof(ev->definition) || !printable(json_string_value(v))) {
        *why = "data.definition_id: must be a definition name";
        goto bad;
    }
    memcpy(ev->definition, json_string_value(v), n + 1);
    ev->hab = d;
    return 0;
bad:
    gw_dp_event_clear(ev);
    return -1;
}

int gw_dp_signature_ok(const unsigned char *secret, size_t secret_len, const char *body, size_t len,
                       const char *header)
{
    unsigned char want[32], got[EVP_MAX_MD_SIZE];
    unsigned int glen = 0;
    if (header == NULL || strncmp(header, "sha256=", 7) != 0 || strlen(header + 7) != 64)
        return 0;
    for (size_t i = 0; i < 32; i++) {
        int hi = gw_hexval(header[7 + 2 * i]), lo = gw_hexval(header[8 + 2 * i]);
        if (hi < 0 || lo < 0)
            return 0;
        want[i] = (unsigned char)(hi << 4 | lo);
    }
    if (HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)body, len, got, &glen) ==
            NULL ||
        glen != 32)
        return 0;
    return CRYPTO_memcmp(want, got, 32) == 0;
}

/* Set <obj>.<key> to a copy of <from>.<key>, or remove it when <from> has
 * none (DataPass no longer gives it). */
static int take(json_t *obj, json_t *from, const char *key)
{
    json_t *v = from != NULL ? json_object_get(from, key) : NULL;
    if (v == NULL)
        return json_object_del(obj, key), 0;
    return json_object_set(obj, key, v);
}

/* The object <key> of <root>, created (after <after> in order) if absent. */
static json_t *child(json_t *root, const char *key)
{
    json_t *o = json_object_get(root, key);
    if (json_is_object(o))
        return o;
    o = json_object();
    if (o == NULL || json_object_set_new(root, key, o) < 0)
        return NULL;
    return o;
}

char *gw_dp_policy_rewrite(const char *file, const char *old_text, const gw_dp_event *ev,
                           gw_errlist *errs)
{
    char *out = NULL, *skel_text = NULL, *hab_text = NULL;
    json_t *skel = NULL, *pol = NULL;
    json_error_t je;

    if (old_text != NULL) {
        pol = json_loads(old_text, JSON_REJECT_DUPLICATES, &je);
        if (!json_is_object(pol)) {
            gw_errlist_add(errs, "%s: $: the policy file is not a JSON object", file);
            goto out;
        }
    }
    if (ev->action == GW_DP_REVOKE) {
        if (pol == NULL) {
            gw_errlist_add(errs, "%s: $: no policy to revoke", file);
            goto out;
        }
        json_t *h = child(pol, "habilitation");
        if (h == NULL || json_object_set_new(h, "state", json_string("revoked")) < 0)
            goto oom;
        goto dump;
    }
    hab_text = json_dumps(ev->hab, JSON_COMPACT);
    if (hab_text == NULL)
        goto oom;
    skel_text = gw_datapass_import(file, hab_text, errs);
    if (skel_text == NULL)
        goto out;
    skel = json_loads(skel_text, 0, &je);
    if (skel == NULL)
        goto oom;
    if (pol == NULL) {
        pol = skel;
        skel = NULL;
        goto dump;
    }
    json_t *sh = json_object_get(skel, "habilitation");
    json_t *ph = child(pol, "habilitation");
    const char *pdef = json_string_value(json_object_get(ph, "definition"));
    if (pdef != NULL && strcmp(pdef, json_string_value(json_object_get(sh, "definition"))) != 0) {
        gw_errlist_add(errs,
                       "%s: habilitation.definition: \"%s\" in the file, DataPass says \"%s\"",
                       file, pdef, ev->definition);
        goto out;
    }
    json_t *po = child(pol, "organization");
    json_t *pc = child(pol, "contacts");
    json_t *pq = child(pol, "quota");
    if (ph == NULL || po == NULL || pc == NULL || pq == NULL || take(ph, sh, "state") < 0 ||
        take(ph, sh, "legal_basis") < 0 || take(ph, sh, "retention_months") < 0 ||
        take(po, json_object_get(skel, "organization"), "siret") < 0 ||
        take(po, json_object_get(skel, "organization"), "name") < 0 ||
        take(pc, json_object_get(skel, "contacts"), "technical") < 0 ||
        take(pq, json_object_get(skel, "quota"), "per_minute") < 0)
        goto oom;
    /* an emptied optional object would be refused by no one, but reads badly */
    if (json_object_size(pc) == 0)
        json_object_del(pol, "contacts");
    if (json_object_size(pq) == 0)
        json_object_del(pol, "quota");
dump:
    out = json_dumps(pol, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (out == NULL)
        goto oom;
    size_t n = strlen(out);
    char *t = realloc(out, n + 2);
    if (t == NULL)
        goto oom;
    out = t;
    memcpy(out + n, "\n", 2);
    goto out;
oom:
    free(out);
    out = NULL;
    gw_errlist_add(errs, "%s: $: out of memory", file);
out:
    json_decref(pol);
    json_decref(skel);
    free(skel_text);
    free(hab_text);
    return out;
}

char *gw_dp_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    gw_buf b;
    memset(&b, 0, sizeof(b));
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        gw_buf_append(&b, chunk, n);
    int bad = ferror(f);
    fclose(f);
    gw_buf_append(&b, "", 1);
    size_t l = 0;
    char *s = gw_buf_take(&b, &l);
    if (bad || s == NULL) {
        free(s);
        errno = bad ? EIO : ENOMEM;
        return NULL;
    }
    if (len != NULL)
        *len = l - 1;
    return s;
}

int gw_dp_write_atomic(const char *path, const char *text, int crash_before_rename, char **err)
{
    char tmp[PATH_MAX], dir[PATH_MAX], base[PATH_MAX];
    const char *step = NULL;
    int fd = -1, dfd = -1, rc = -1;

    snprintf(dir, sizeof(dir), "%s", path);
    snprintf(base, sizeof(base), "%s", path);
    const char *d = dirname(dir), *b = basename(base);
    if (snprintf(tmp, sizeof(tmp), "%s/.%s.datapass-tmp", d, b) >= (int)sizeof(tmp)) {
        step = "path too long";
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        step = "cannot create the temporary file";
        goto out;
    }
    size_t n = strlen(text), off = 0;
    while (off < n) {
        ssize_t w = write(fd, text + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            step = "cannot write the temporary file";
            goto out;
        }
        off += (size_t)w;
    }
    if (fsync(fd) < 0) {
        step = "cannot fsync the temporary file";
        goto out;
    }
    close(fd);
    fd = -1;
    if (crash_before_rename)
        _exit(86);
    if (rename(tmp, path) < 0) {
        step = "cannot rename the temporary file";
        goto out;
    }
    dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0) {
        step = "cannot fsync the directory";
        goto out;
    }
    rc = 0;
out:
    if (rc < 0) {
        int e = errno;
        if (asprintf(err, "%s: %s: %s", path, step, strerror(e)) < 0)
            *err = NULL;
        if (fd >= 0)
            unlink(tmp);
    }
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    return rc;
}
