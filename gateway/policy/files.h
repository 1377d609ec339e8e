/* The policy module's file system side (policy/files.c). Internal to
 * gateway/policy/. */
#ifndef GW_POLICY_FILES_H
#define GW_POLICY_FILES_H

#include <stddef.h>

#include "lib/file.h"

#define GW_POLICY_MAX_FILE (1u << 20)      /* a policy file larger than this is refused */
#define GW_POLICY_CERT_MAX_FILE (1u << 20) /* a PEM certificate file, likewise */

/* How the policy module reads a file (lib/file.h): a regular file only
 * (EINVAL, "not a regular file", for anything else), opened without
 * blocking. */
#define GW_POLICY_READ (GW_FILE_NONBLOCK | GW_FILE_REGULAR)

/* <d> made absolute and canonical (links resolved when it exists); caller
 * frees. NULL when out of memory. */
char *gw_policy_dir_abs(const char *d);

/* The absolute, canonical directory of <file>; caller frees. */
char *gw_policy_file_dir(const char *file);

/* SHA-256 of the DER of the first certificate in the PEM file <abs>, as 64
 * lowercase hex chars into <out>. Returns NULL, or <why> holding the reason
 * (a system error, "not a regular file" or "not a PEM certificate"). */
const char *gw_policy_cert_sha256(const char *abs, char out[65], char *why, size_t whysz);

/* The "*.json" entries of <dir> (hidden files skipped), sorted by name, in
 * <*names> (<*count> of them; caller frees each and the array). Returns 0 or
 * an errno value. */
int gw_policy_list_json(const char *dir, char ***names, size_t *count);

#endif
