/* Unit tests for gateway/journal/alerts.c: the alert hook on its own. The
 * command gets the event type and severity as arguments and the record in
 * OPALE_EVENT; records below the minimum severity are not offered to it; the
 * rate limit and a failing or overrunning command are counted. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "journal/alerts.h"

#include "../common.h"

static char dir[PATH_MAX];

static void setup(void)
{
    gw_test_mkdtemp(dir, "alerts");
}

static void teardown(void)
{
    gw_test_rmtree(dir);
}

/* An executable script <name> in the test's directory; its path. */
static char *script(const char *name, const char *body)
{
    char *p = gw_test_path(dir, name);
    gw_test_write(p, body);
    ck_assert_int_eq(chmod(p, 0755), 0);
    return p;
}

/* Waits (at most 10 s) until <a> ran <run> commands of which none is still
 * running and <failed> failed; its final counters in <st>. */
static void wait_for(gw_alerts *a, uint64_t run, uint64_t failed, gw_events_stats *st)
{
    for (int i = 0; i < 1000; i++) {
        memset(st, 0, sizeof(*st));
        gw_alerts_stats(a, st);
        if (st->alerts_run == run && st->alerts_running == 0 && st->alerts_failed == failed)
            return;
        struct timespec ts = {0, 10000000L};
        nanosleep(&ts, NULL);
    }
    ck_abort_msg("alerts: run %llu (want %llu), running %llu, failed %llu (want %llu)",
                 (unsigned long long)st->alerts_run, (unsigned long long)run,
                 (unsigned long long)st->alerts_running, (unsigned long long)st->alerts_failed,
                 (unsigned long long)failed);
}

START_TEST(t_runs_with_args_and_record)
{
    char *out = gw_test_path(dir, "out.txt");
    char *body = NULL;
    ck_assert_int_ge(asprintf(&body,
                              "#!/bin/sh\nprintf '%%s %%s %%s\\n' \"$1\" \"$2\" "
                              "\"$OPALE_EVENT\" >> '%s'\n",
                              out),
                     0);
    char *cmd = script("hook.sh", body);
    char *err = NULL;
    gw_alerts *a = gw_alerts_start(cmd, GW_SEV_MEDIUM, 2, 5000, &err);
    ck_assert_msg(a != NULL, "%s", err ? err : "");
    gw_alerts_offer(a, "{\"n\":1}", 7, GW_EV_AUTH_FAILURES, GW_SEV_HIGH, 1000);
    gw_alerts_offer(a, "{\"n\":2}xx", 7, GW_EV_QUOTA_STORM, GW_SEV_MEDIUM, 1001);
    gw_alerts_offer(a, "{\"n\":3}", 7, GW_EV_ADMIN_RELOAD, GW_SEV_LOW, 1002);   /* below */
    gw_alerts_offer(a, "{\"n\":4}", 7, GW_EV_ADMIN_SUSPEND, GW_SEV_HIGH, 1003); /* 3rd/min */
    gw_events_stats st;
    wait_for(a, 2, 0, &st);
    ck_assert_uint_eq(st.alerts_rate_limited, 1);
    ck_assert_uint_eq(st.alerts_dropped, 0);
    char *text = gw_test_read(out);
    /* the order of two concurrent commands is not fixed */
    ck_assert_msg(strstr(text, "auth.failures high {\"n\":1}\n") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "quota.storm medium {\"n\":2}\n") != NULL, "%s", text);
    ck_assert_uint_eq(strlen(text), strlen("auth.failures high {\"n\":1}\n") +
                                        strlen("quota.storm medium {\"n\":2}\n"));
    /* a minute later the rate limit lets one through again */
    gw_alerts_offer(a, "{\"n\":5}", 7, GW_EV_CERT_UNKNOWN, GW_SEV_MEDIUM, 61001);
    wait_for(a, 3, 0, &st);
    gw_alerts_stop(a);
    free(text);
    text = gw_test_read(out);
    ck_assert_msg(strstr(text, "cert.unknown medium {\"n\":5}\n") != NULL, "%s", text);
    free(text);
    free(cmd);
    free(body);
    free(out);
}
END_TEST

START_TEST(t_failures_counted)
{
    char *fails = script("fail.sh", "#!/bin/sh\nexit 3\n");
    char *slow = script("slow.sh", "#!/bin/sh\nsleep 30\n");
    gw_events_stats st;
    gw_alerts *a = gw_alerts_start(fails, GW_SEV_LOW, 10, 5000, NULL);
    ck_assert_ptr_nonnull(a);
    gw_alerts_offer(a, "{}", 2, GW_EV_AUTH_FAILURES, GW_SEV_HIGH, 1);
    wait_for(a, 1, 1, &st);
    gw_alerts_stop(a);
    /* overrunning the timeout: killed, and counted as failed */
    a = gw_alerts_start(slow, GW_SEV_LOW, 10, 200, NULL);
    ck_assert_ptr_nonnull(a);
    gw_alerts_offer(a, "{}", 2, GW_EV_AUTH_FAILURES, GW_SEV_HIGH, 1);
    wait_for(a, 1, 1, &st);
    gw_alerts_stop(a);
    /* a command that cannot be run */
    a = gw_alerts_start("/nonexistent/hook", GW_SEV_LOW, 10, 200, NULL);
    ck_assert_ptr_nonnull(a);
    gw_alerts_offer(a, "{}", 2, GW_EV_AUTH_FAILURES, GW_SEV_HIGH, 1);
    wait_for(a, 0, 1, &st);
    gw_alerts_stop(a);
    free(fails);
    free(slow);
}
END_TEST

START_TEST(t_null_safe)
{
    gw_events_stats st;
    memset(&st, 0, sizeof(st));
    gw_alerts_offer(NULL, "{}", 2, GW_EV_AUTH_FAILURES, GW_SEV_HIGH, 1);
    gw_alerts_stats(NULL, &st);
    ck_assert_uint_eq(st.alerts_run, 0);
    gw_alerts_stop(NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("alerts");
    TCase *tc = tcase_create("alerts");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, t_runs_with_args_and_record);
    tcase_add_test(tc, t_failures_counted);
    tcase_add_test(tc, t_null_safe);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
