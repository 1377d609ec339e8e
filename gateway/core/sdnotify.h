/*
 * systemd's service notification protocol (sd_notify(3)), spoken directly:
 * one AF_UNIX datagram of "KEY=VALUE" lines per message, sent to the socket
 * named by $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace).
 * No libsystemd: the protocol is a documented, stable datagram format.
 *
 * Outside systemd (no $NOTIFY_SOCKET) every call is a no-op that succeeds,
 * so the callers never test whether they run under systemd.
 */
#ifndef GW_SDNOTIFY_H
#define GW_SDNOTIFY_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

typedef struct gw_sdnotify {
    int fd; /* -1: not under systemd (or the socket could not be made) */
    struct sockaddr_un addr;
    socklen_t addrlen;
    uint64_t watchdog_usec; /* 0: no watchdog asked for */
} gw_sdnotify;

/* Fill <n> from <notify_socket> ($NOTIFY_SOCKET), <watchdog_usec>
 * ($WATCHDOG_USEC) and <watchdog_pid> ($WATCHDOG_PID, which must be <self>
 * when set); any of them may be NULL. Returns 0 (also when <notify_socket>
 * is NULL or empty: <n> is then a no-op), or -1 with a malloc'd <*err> when
 * the socket name is unusable (not absolute, not "@...", too long) or the
 * socket cannot be created; <n> is a no-op then too. */
int gw_sdnotify_init(gw_sdnotify *n, const char *notify_socket, const char *watchdog_usec,
                     const char *watchdog_pid, pid_t self, char **err);

/* gw_sdnotify_init() from the environment, then unset the three variables
 * so that no child process (journal alert commands) inherits them. */
int gw_sdnotify_init_env(gw_sdnotify *n, char **err);

/* Send <msg> ("READY=1", "STATUS=...\n", several lines allowed) in one
 * datagram. 0 on success or when <n> is a no-op; -1 when the send failed
 * (errno set). Never blocks: the socket is non-blocking. */
int gw_sdnotify_send(const gw_sdnotify *n, const char *msg);

/* 1 when notifications go somewhere. */
int gw_sdnotify_enabled(const gw_sdnotify *n);

/* The keep-alive interval to use, in microseconds: half of WATCHDOG_USEC
 * (sd_watchdog_enabled(3) advice), 0 when there is no watchdog. */
uint64_t gw_sdnotify_watchdog_interval(const gw_sdnotify *n);

void gw_sdnotify_close(gw_sdnotify *n);

#endif
