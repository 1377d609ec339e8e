/* Unit tests for gateway/lib/evtimer.h: on the workers' event base (the
 * coarse clock, no timerfd), a timer armed with gw_evtimer_in() never
 * fires before its time by CLOCK_MONOTONIC, the clock of the journal's
 * "ms", and at most a few ticks late; evtimer_add() alone, on the same
 * base and under the same load, does fire early (the control: the test can
 * see what it checks). The loop is kept busy by a pipe that stays readable,
 * as a loaded worker's loop is: epoll_wait() returns at once and the loop
 * checks its timers at every tick of the coarse clock, which is when an
 * early expiry shows. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "lib/evtimer.h"

#define TRIALS 30
#define TIMEOUT_US 20000

static int64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

struct run {
    struct event_base *base;
    struct event *busy, *timer;
    int precise; /* 1: gw_evtimer_in(), 0: evtimer_add() */
    int trial;
    int64_t armed;
    int64_t early;  /* trials that fired before TIMEOUT_US */
    int64_t min_us; /* shortest observed delay */
    int64_t max_us; /* longest observed delay */
    int64_t spins;  /* busy callbacks run */
};

static void arm(struct run *r)
{
    const struct timeval tv = {0, TIMEOUT_US};
    /* every other trial, a slow callback first (as a TLS handshake is):
     * the loop's cached time is then 3 ms old when the timer is armed */
    if (r->trial % 2 == 1) {
        int64_t until = now_us() + 3000;
        while (now_us() < until)
            ;
    }
    r->armed = now_us();
    int rc = r->precise ? gw_evtimer_in(r->timer, &tv) : evtimer_add(r->timer, &tv);
    ck_assert_int_eq(rc, 0);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct run *r = arg;
    int64_t d = now_us() - r->armed;
    if (d < TIMEOUT_US)
        r->early++;
    if (d < r->min_us)
        r->min_us = d;
    if (d > r->max_us)
        r->max_us = d;
    if (++r->trial == TRIALS) {
        event_base_loopbreak(r->base);
        return;
    }
    arm(r);
}

static void on_busy(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct run *r = arg;
    r->spins++; /* the byte is left in the pipe: readable again at once */
}

static void run_trials(struct run *r, int precise)
{
    *r = (struct run){.precise = precise, .min_us = INT64_MAX};
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(write(p[1], "x", 1), 1);
    r->base = gw_evbase_new();
    ck_assert_ptr_nonnull(r->base);
    r->busy = event_new(r->base, p[0], EV_READ | EV_PERSIST, on_busy, r);
    r->timer = evtimer_new(r->base, on_timer, r);
    ck_assert_ptr_nonnull(r->busy);
    ck_assert_ptr_nonnull(r->timer);
    ck_assert_int_eq(event_add(r->busy, NULL), 0);
    arm(r);
    ck_assert_int_eq(event_base_dispatch(r->base), 0);
    ck_assert_int_eq(r->trial, TRIALS);
    event_free(r->busy);
    event_free(r->timer);
    event_base_free(r->base);
    close(p[0]);
    close(p[1]);
}

START_TEST(never_early)
{
    struct run r;
    run_trials(&r, 1);
    ck_assert_msg(r.early == 0, "%lld of %d timers fired early (shortest: %lld us of %d)",
                  (long long)r.early, TRIALS, (long long)r.min_us, TIMEOUT_US);
    /* late by a few ticks of the coarse clock (4 ms at 250 Hz); the bound
     * leaves room for a loaded CI machine (the coarse clock once lagged
     * 13 ms there) and the sanitizers, and still catches a lag counted in
     * the wrong unit */
    ck_assert_msg(r.max_us < TIMEOUT_US + 250000, "a timer fired %lld us after it was armed",
                  (long long)r.max_us);
    ck_assert_int_gt(r.spins, TRIALS);
}
END_TEST

/* The control: the same load with evtimer_add() alone. The coarse clock
 * lags by a uniform share of a tick when a timer is armed, so some of the
 * 30 fire early; on a kernel whose coarse clock is as fine as the precise
 * one there is nothing to see, and the control says so. */
START_TEST(plain_add_fires_early)
{
    struct timespec res;
    ck_assert_int_eq(clock_getres(CLOCK_MONOTONIC_COARSE, &res), 0);
    if (res.tv_sec == 0 && res.tv_nsec <= 1000) {
        fprintf(stderr, "evtimer: CLOCK_MONOTONIC_COARSE ticks every %ld ns: no lag to see\n",
                res.tv_nsec);
        return;
    }
    struct run r;
    run_trials(&r, 0);
    ck_assert_msg(r.early > 0, "evtimer_add() never fired early in %d trials (shortest %lld us)",
                  TRIALS, (long long)r.min_us);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("evtimer");
    TCase *tc = tcase_create("evtimer");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, never_early);
    tcase_add_test(tc, plain_add_fires_early);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
