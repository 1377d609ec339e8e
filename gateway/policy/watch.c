/*
 * Policy directory watch (watch.h): inotify on policies_dir, debounced, on the
 * main thread's event loop.
 */
#include "policy/watch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <event2/event.h>

/* What changes a policy directory: files written or created, entries
 * deleted, renamed in or out (the ConfigMap "..data" swap), and the
 * directory itself going away or moving. */
#define GW_WATCH_MASK                                                                              \
    (IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_ATTRIB |            \
     IN_DELETE_SELF | IN_MOVE_SELF)

struct gw_policy_watch {
    int fd;
    struct event *ev_read;
    struct event *ev_timer;
    struct timeval debounce;
    gw_policy_watch_cb cb;
    void *arg;
};

static void set_err(char **err, const char *what, const char *detail)
{
    char msg[512];
    snprintf(msg, sizeof(msg), "policies_watch: %s: %s", what, detail);
    *err = strdup(msg);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gw_policy_watch *w = arg;
    w->cb(w->arg);
}

/* Drain the inotify queue; any event (or an overflow) re-arms the timer. */
static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    gw_policy_watch *w = arg;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    int seen = 0;
    for (int round = 0; round < 64; round++) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        seen = 1;
    }
    if (seen)
        evtimer_add(w->ev_timer, &w->debounce);
}

gw_policy_watch *gw_policy_watch_start(struct event_base *base, const char *dir,
                                       unsigned debounce_ms, gw_policy_watch_cb cb, void *arg,
                                       char **err)
{
    gw_policy_watch *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        set_err(err, "start", "out of memory");
        return NULL;
    }
    w->cb = cb;
    w->arg = arg;
    w->debounce.tv_sec = debounce_ms / 1000;
    w->debounce.tv_usec = (long)(debounce_ms % 1000) * 1000;
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0) {
        set_err(err, "inotify", strerror(errno));
        free(w);
        return NULL;
    }
    if (inotify_add_watch(w->fd, dir, GW_WATCH_MASK) < 0) {
        set_err(err, dir, strerror(errno));
        gw_policy_watch_stop(w);
        return NULL;
    }
    w->ev_read = event_new(base, w->fd, EV_READ | EV_PERSIST, on_read, w);
    w->ev_timer = evtimer_new(base, on_timer, w);
    if (w->ev_read == NULL || w->ev_timer == NULL || event_add(w->ev_read, NULL) < 0) {
        set_err(err, "start", "out of memory");
        gw_policy_watch_stop(w);
        return NULL;
    }
    return w;
}

void gw_policy_watch_stop(gw_policy_watch *w)
{
    if (w == NULL)
        return;
    if (w->ev_read != NULL)
        event_free(w->ev_read);
    if (w->ev_timer != NULL)
        event_free(w->ev_timer);
    if (w->fd >= 0)
        close(w->fd);
    free(w);
}
