/*
 * sd_notify(3) datagram protocol; see sdnotify.h.
 */
#include "core/sdnotify.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *errdup(const char *what, const char *detail)
{
    size_t len = strlen(what) + strlen(detail) + 3;
    char *s = malloc(len);
    if (s != NULL)
        snprintf(s, len, "%s: %s", what, detail);
    return s;
}

/* A decimal unsigned integer, all of <s>, not empty. */
static int parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (s == NULL || *s == '\0')
        return -1;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

int gw_sdnotify_init(gw_sdnotify *n, const char *notify_socket, const char *watchdog_usec,
                     const char *watchdog_pid, pid_t self, char **err)
{
    memset(n, 0, sizeof(*n));
    n->fd = -1;
    if (notify_socket == NULL || *notify_socket == '\0')
        return 0;
    size_t len = strlen(notify_socket);
    if (notify_socket[0] != '/' && notify_socket[0] != '@') {
        *err = errdup("NOTIFY_SOCKET", "must be an absolute path or start with '@'");
        return -1;
    }
    if (len >= sizeof(n->addr.sun_path)) {
        *err = errdup("NOTIFY_SOCKET", "name too long");
        return -1;
    }
    n->addr.sun_family = AF_UNIX;
    memcpy(n->addr.sun_path, notify_socket, len);
    if (notify_socket[0] == '@') {
        /* abstract namespace: a leading NUL, and the length says where the
         * name ends (no terminating NUL) */
        n->addr.sun_path[0] = '\0';
        n->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    } else {
        n->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    }
    uint64_t usec = 0, pid = 0;
    if (parse_u64(watchdog_usec, &usec) == 0 && usec > 0 &&
        (watchdog_pid == NULL || (parse_u64(watchdog_pid, &pid) == 0 && pid == (uint64_t)self)))
        n->watchdog_usec = usec;
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (n->fd < 0) {
        *err = errdup("NOTIFY_SOCKET: socket", strerror(errno));
        n->watchdog_usec = 0;
        return -1;
    }
    return 0;
}

int gw_sdnotify_init_env(gw_sdnotify *n, char **err)
{
    int rc = gw_sdnotify_init(n, getenv("NOTIFY_SOCKET"), getenv("WATCHDOG_USEC"),
                              getenv("WATCHDOG_PID"), getpid(), err);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    return rc;
}

int gw_sdnotify_send(const gw_sdnotify *n, const char *msg)
{
    if (n == NULL || n->fd < 0)
        return 0;
    ssize_t w = sendto(n->fd, msg, strlen(msg), MSG_NOSIGNAL, (const struct sockaddr *)&n->addr,
                       n->addrlen);
    return w < 0 ? -1 : 0;
}

int gw_sdnotify_enabled(const gw_sdnotify *n)
{
    return n != NULL && n->fd >= 0;
}

uint64_t gw_sdnotify_watchdog_interval(const gw_sdnotify *n)
{
    return n != NULL && n->fd >= 0 ? n->watchdog_usec / 2 : 0;
}

void gw_sdnotify_close(gw_sdnotify *n)
{
    if (n->fd >= 0)
        close(n->fd);
    n->fd = -1;
}
