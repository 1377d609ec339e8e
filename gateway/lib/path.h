/* Path arithmetic on strings: no file system access. */
#ifndef GW_LIB_PATH_H
#define GW_LIB_PATH_H

/* <rel> against the absolute directory <dir>: an absolute <rel> is returned
 * as is; leading "." and ".." components of <rel> are applied to <dir> (so
 * <dir> should hold no symbolic links: make it canonical first), the rest is
 * appended as written, so that a symlinked file keeps its own name
 * (certificate renewals swap links). Returns a malloc'd path, or NULL when
 * out of memory. */
char *gw_path_resolve(const char *dir, const char *rel);

#endif
