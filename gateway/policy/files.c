/*
 * The policy module's file system side: absolute directories, a certificate file's fingerprint, and
 * the sorted list of a directory's "*.json" files. Contracts in policy/files.h.
 */
#include "policy/files.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "lib/file.h"
#include "lib/path.h"
#include "lib/util.h"

/* <d> made absolute and canonical (links resolved when it exists). Caller
 * frees. */
char *gw_policy_dir_abs(const char *d)
{
    char *real = realpath(d, NULL);
    if (real != NULL)
        return real;
    if (d[0] == '/')
        return strdup(d);
    char *cwd = getcwd(NULL, 0);
    char *abs = gw_path_resolve(cwd != NULL ? cwd : "/", d);
    free(cwd);
    return abs;
}

/* Absolute, canonical directory of <file>. */
char *gw_policy_file_dir(const char *file)
{
    const char *slash = strrchr(file, '/');
    char *d = slash == NULL   ? strdup(".")
              : slash == file ? strdup("/")
                              : strndup(file, (size_t)(slash - file));
    if (d == NULL)
        return NULL;
    char *abs = gw_policy_dir_abs(d);
    free(d);
    return abs;
}

/* SHA-256 of the DER of the first certificate in the PEM file <abs>, as
 * lowercase hex. Returns NULL or a message into <why> (a system error or
 * "not a PEM certificate"). */
const char *gw_policy_cert_sha256(const char *abs, char out[65], char *why, size_t whysz)
{
    char *pem = NULL;
    size_t len = 0;
    unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    const char *res = why;

    int e = gw_file_read(abs, GW_POLICY_CERT_MAX_FILE, GW_POLICY_READ, &pem, &len);
    if (e != 0) {
        snprintf(why, whysz, "%s", e == EINVAL ? "not a regular file" : strerror(e));
        return res;
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509 *crt = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    int dlen = crt != NULL ? i2d_X509(crt, &der) : -1;
    if (crt == NULL || dlen <= 0) {
        snprintf(why, whysz, "not a PEM certificate");
    } else if (EVP_Digest(der, (size_t)dlen, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
        snprintf(why, whysz, "cannot compute its SHA-256");
    } else {
        gw_hex(md, 32, out);
        res = NULL;
    }
    ERR_clear_error();
    OPENSSL_free(der);
    X509_free(crt);
    BIO_free(bio);
    free(pem);
    return res;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The "*.json" entries of <dir> (hidden files skipped), sorted. Returns 0 or
 * an errno value. */
int gw_policy_list_json(const char *dir, char ***names, size_t *count)
{
    char **v = NULL;
    size_t n = 0, cap = 0;
    int e = 0;

    DIR *d = opendir(dir);
    if (d == NULL)
        return errno;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (de == NULL) {
            e = errno;
            break;
        }
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len <= 5 || strcmp(de->d_name + len - 5, ".json") != 0)
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            char **nv = realloc(v, ncap * sizeof(*v));
            if (nv == NULL) {
                e = ENOMEM;
                break;
            }
            v = nv;
            cap = ncap;
        }
        if ((v[n] = strdup(de->d_name)) == NULL) {
            e = ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (e != 0) {
        for (size_t i = 0; i < n; i++)
            free(v[i]);
        free(v);
        return e;
    }
    if (n > 1)
        qsort(v, n, sizeof(*v), name_cmp);
    *names = v;
    *count = n;
    return 0;
}
