/* Path arithmetic on strings (lib/path.h). No I/O. */
#include "lib/path.h"

#include <string.h>

#include "lib/util.h"

char *gw_path_resolve(const char *dir, const char *rel)
{
    if (rel[0] == '/')
        return strdup(rel);
    size_t dlen = strlen(dir);
    const char *p = rel;
    for (;;) {
        if (p[0] == '/') {
            p++;
        } else if (p[0] == '.' && (p[1] == '/' || p[1] == '\0')) {
            p += 1;
        } else if (p[0] == '.' && p[1] == '.' && (p[2] == '/' || p[2] == '\0')) {
            while (dlen > 0 && dir[dlen - 1] != '/')
                dlen--;
            if (dlen > 1)
                dlen--;
            p += 2;
        } else {
            break;
        }
    }
    gw_buf b = {0};
    gw_buf_append(&b, dir, dlen);
    if (*p != '\0') {
        if (dlen == 0 || dir[dlen - 1] != '/')
            gw_buf_puts(&b, "/");
        gw_buf_puts(&b, p);
    }
    return gw_buf_take(&b, NULL);
}
