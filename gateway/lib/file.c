/*
 * Reading a small file whole, bounded (contract in lib/file.h).
 */
#include "lib/file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"

int gw_file_read(const char *path, size_t cap, unsigned flags, char **out, size_t *outlen)
{
    gw_buf b = {0};
    struct stat st;
    char chunk[8192];
    int e = 0;

    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY |
                            ((flags & GW_FILE_NONBLOCK) != 0 ? O_NONBLOCK : 0));
    if (fd < 0)
        return errno;
    if (fstat(fd, &st) < 0)
        e = errno;
    else if (S_ISDIR(st.st_mode))
        e = EISDIR;
    else if ((flags & GW_FILE_REGULAR) != 0 && !S_ISREG(st.st_mode))
        e = EINVAL;
    else if (S_ISREG(st.st_mode) && (size_t)st.st_size > cap)
        e = EFBIG;
    while (e == 0) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            e = errno;
            break;
        }
        if (n == 0)
            break;
        if (b.len + (size_t)n > cap) {
            e = EFBIG;
            break;
        }
        gw_buf_append(&b, chunk, (size_t)n);
        if (b.oom)
            e = ENOMEM;
    }
    close(fd);
    if (e == 0 && b.data == NULL)
        gw_buf_puts(&b, "");
    if (e == 0 && b.oom)
        e = ENOMEM;
    if (e != 0) {
        gw_buf_free(&b);
        return e;
    }
    *out = gw_buf_take(&b, outlen);
    return 0;
}
