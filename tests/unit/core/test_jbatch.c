/* Unit tests for gateway/core/jbatch.c: records and the writer's wake
 * handed over at the end of the event-loop pass, against a real journal
 * (a chained file with its state file) and a real event base. */
#include <event2/event.h>

#include "../journal/journal_fixtures.h"
#include "core/jbatch.h"

static gw_journal *open_journal(void)
{
    gw_journal *j = open_chain((gw_journal_opts){.path = tpath("j.log"), .queue_cap = 100});
    ck_assert_msg(writer_asleep(5000), "the writer never settled in its wait");
    return j;
}

/* A reservation's wake waits for the end of the pass: the state file counts
 * the reservations of the pass only once the loop has run the batch. */
START_TEST(wake_at_end_of_pass)
{
    struct event_base *base = event_base_new();
    gw_journal *j = open_journal();
    gw_jbatch *b = gw_jbatch_new(base, j);
    ck_assert_ptr_nonnull(b);
    for (int i = 0; i < 2; i++) {
        int wake = 0;
        ck_assert_int_eq(gw_journal_reserve_deferred(j, &wake), 0);
        if (wake)
            gw_jbatch_wake(b);
    }
    ck_assert(!state_shows(2, 100));
    event_base_loop(base, EVLOOP_NONBLOCK);
    ck_assert(state_shows(2, 2000));

    /* a record of the same pass as a wake: both handed over */
    char *line = strdup("{\"v\":1,\"n\":1}\n");
    gw_jbatch_add(b, GW_JLINE_RESERVED, line, strlen(line), NULL);
    gw_jbatch_wake(b);
    event_base_loop(base, EVLOOP_NONBLOCK);
    ck_assert(state_shows(1, 2000));
    gw_journal_release(j);
    gw_jbatch_free(b);
    gw_journal_close(j);
    event_base_free(base);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("jbatch");
    TCase *tc = tcase_create("jbatch");
    tcase_add_checked_fixture(tc, setup_dir, teardown_dir);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, wake_at_end_of_pass);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
