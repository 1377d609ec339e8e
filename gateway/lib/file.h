/*
 * Reading a file whole, within a cap: the configuration (conf/conf.c), the
 * policy files and the PEM certificates they name (policy/files.c), the
 * kill-switch file (policy/suspend.c); the journals and documents of the
 * evidence commands (evidence/evidence.c, no cap). The only file I/O of
 * gateway/lib/: no socket, no event loop, no message (each caller words its
 * own "cannot read: ..." from the errno returned here).
 */
#ifndef GW_LIB_FILE_H
#define GW_LIB_FILE_H

#include <stddef.h>

/* gw_file_read's <flags>. */
#define GW_FILE_NONBLOCK 1u /* open without blocking (a FIFO without a writer) */
#define GW_FILE_REGULAR 2u  /* refuse what is neither a regular file nor a directory: EINVAL */

/* Reads all of <path> into a NUL-terminated buffer (<*out>, caller frees;
 * its length without the NUL in <*outlen>; an empty file gives ""). At most
 * <cap> bytes: a larger file is refused (EFBIG), from its size when it is a
 * regular file, else when the bytes read pass <cap>. Without
 * GW_FILE_REGULAR a pipe or a device is read to its end (a configuration
 * given as /dev/stdin).
 *
 * Returns 0, or an errno value with <*out> untouched: open()'s (ENOENT,
 * EACCES, ...), EISDIR for a directory, EINVAL for another kind of file
 * under GW_FILE_REGULAR, EFBIG, ENOMEM, read()'s. */
int gw_file_read(const char *path, size_t cap, unsigned flags, char **out, size_t *outlen);

#endif
