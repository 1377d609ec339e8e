/* The console's embedded files and the admin answers' headers (see
 * console.h). */
#include "admin/console.h"

#include <string.h>

const gw_admin_header gw_admin_security_headers[] = {
    {"Content-Security-Policy",
     "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"},
    {"X-Frame-Options", "DENY"},
    {"X-Content-Type-Options", "nosniff"},
    {"Referrer-Policy", "no-referrer"},
    {"Cache-Control", "no-store"},
    {NULL, NULL},
};

#define PREFIX "/console/"

const gw_console_file *gw_console_find(const char *path)
{
    if (strncmp(path, PREFIX, strlen(PREFIX)) != 0)
        return NULL;
    const char *name = path + strlen(PREFIX);
    if (name[0] == '\0')
        name = "index.html";
    if (strchr(name, '/') != NULL || name[0] == '.')
        return NULL;
    for (size_t i = 0; i < gw_console_nfiles; i++)
        if (strcmp(gw_console_files[i].name, name) == 0)
            return &gw_console_files[i];
    return NULL;
}

const char *gw_console_mime(const char *name)
{
    static const struct {
        const char *ext;
        const char *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".json", "application/json"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot != NULL && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}
