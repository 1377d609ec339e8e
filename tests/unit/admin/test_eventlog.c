/* Unit tests for gateway/admin/eventlog.c: the console's list of recent
 * security events (ids, filters, polling after an id, the bound, the
 * acknowledgement, the certificates of cert.expiring events). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "admin/eventlog.h"

static void add(gw_eventlog *l, gw_event_type type, gw_event_severity sev, const char *consumer)
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf),
                     "{\"v\":1,\"type\":\"security_event\",\"ts\":\"2026-12-02T08:00:00.000Z\","
                     "\"event\":\"%s\",\"severity\":\"%s\"%s%s%s,\"reason\":\"r<x>\","
                     "\"seq\":1,\"prev\":\"00\",\"hash\":\"11\"}",
                     gw_event_type_name(type), gw_event_severity_name(sev),
                     consumer ? ",\"consumer\":\"" : "", consumer ? consumer : "",
                     consumer ? "\"" : "");
    gw_eventlog_observe(l, type, sev, buf, (size_t)n);
}

static json_t *events(json_t *page)
{
    return json_object_get(page, "events");
}

static json_int_t id_at(json_t *page, size_t i)
{
    return json_integer_value(json_object_get(json_array_get(events(page), i), "id"));
}

START_TEST(t_query)
{
    gw_eventlog *l = gw_eventlog_new(0);
    add(l, GW_EV_ADMIN_SUSPEND, GW_SEV_HIGH, "c1");
    add(l, GW_EV_ADMIN_RESUME, GW_SEV_MEDIUM, "c1");
    add(l, GW_EV_AUTH_FAILURES, GW_SEV_HIGH, NULL);
    add(l, GW_EV_JOURNAL_BROKEN, GW_SEV_CRITICAL, NULL);
    ck_assert_uint_eq(gw_eventlog_last_id(l), 4);
    gw_eventlog_query q = {.limit = 100};
    json_t *p = gw_eventlog_query_json(l, &q);
    ck_assert_uint_eq(json_array_size(events(p)), 4);
    ck_assert_int_eq(id_at(p, 0), 1);
    ck_assert_int_eq(id_at(p, 3), 4);
    ck_assert_int_eq(json_integer_value(json_object_get(p, "next")), 4);
    json_t *e = json_array_get(events(p), 0);
    ck_assert_str_eq(json_string_value(json_object_get(e, "type")), "admin.suspend");
    ck_assert_str_eq(json_string_value(json_object_get(e, "severity")), "high");
    ck_assert_str_eq(json_string_value(json_object_get(e, "consumer")), "c1");
    ck_assert_str_eq(json_string_value(json_object_get(e, "time")), "2026-12-02T08:00:00.000Z");
    ck_assert(json_is_null(json_object_get(e, "operator")));
    ck_assert(json_is_null(json_object_get(e, "acked")));
    json_t *d = json_object_get(e, "detail");
    ck_assert_str_eq(json_string_value(json_object_get(d, "reason")), "r<x>");
    ck_assert_ptr_null(json_object_get(d, "hash"));
    ck_assert_ptr_null(json_object_get(d, "event"));
    ck_assert(json_is_null(json_object_get(json_array_get(events(p), 2), "consumer")));
    json_decref(p);
    /* filters */
    q.min_severity = GW_SEV_HIGH;
    p = gw_eventlog_query_json(l, &q);
    ck_assert_uint_eq(json_array_size(events(p)), 3);
    json_decref(p);
    q.min_severity = 0;
    q.type = "admin.resume";
    p = gw_eventlog_query_json(l, &q);
    ck_assert_uint_eq(json_array_size(events(p)), 1);
    ck_assert_int_eq(id_at(p, 0), 2);
    json_decref(p);
    q.type = NULL;
    q.consumer = "c1";
    p = gw_eventlog_query_json(l, &q);
    ck_assert_uint_eq(json_array_size(events(p)), 2);
    json_decref(p);
    /* polling: after an id, oldest first, <limit> of them, next = the last */
    q.consumer = NULL;
    q.after = 1;
    q.limit = 2;
    p = gw_eventlog_query_json(l, &q);
    ck_assert_uint_eq(json_array_size(events(p)), 2);
    ck_assert_int_eq(id_at(p, 0), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(p, "next")), 3);
    json_decref(p);
    /* polling with a filter that matches nothing new still moves next on */
    q.after = 2;
    q.limit = 100;
    q.type = "admin.suspend";
    p = gw_eventlog_query_json(l, &q);
    ck_assert_uint_eq(json_array_size(events(p)), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(p, "next")), 4);
    json_decref(p);
    /* without after: the last <limit>, in increasing order */
    q.after = 0;
    q.type = NULL;
    q.limit = 2;
    p = gw_eventlog_query_json(l, &q);
    ck_assert_int_eq(id_at(p, 0), 3);
    ck_assert_int_eq(id_at(p, 1), 4);
    json_decref(p);
    gw_eventlog_free(l);
}
END_TEST

START_TEST(t_bound_and_ack)
{
    gw_eventlog *l = gw_eventlog_new(3);
    for (int i = 0; i < 5; i++)
        add(l, GW_EV_ADMIN_RELOAD, GW_SEV_MEDIUM, NULL);
    gw_eventlog_query q = {.limit = 100};
    json_t *p = gw_eventlog_query_json(l, &q);
    ck_assert_uint_eq(json_array_size(events(p)), 3);
    ck_assert_int_eq(id_at(p, 0), 3);
    json_decref(p);
    char type[64];
    ck_assert_int_eq(gw_eventlog_ack(l, 1, "lea", "2026-12-02T08:00:00Z", type), -1);
    ck_assert_int_eq(gw_eventlog_ack(l, 9, "lea", "2026-12-02T08:00:00Z", type), -1);
    ck_assert_int_eq(gw_eventlog_ack(l, 4, "lea", "2026-12-02T08:00:01Z", type), 0);
    ck_assert_str_eq(type, "admin.reload");
    ck_assert_int_eq(gw_eventlog_ack(l, 4, "marc", "2026-12-02T08:00:02Z", NULL), 1);
    p = gw_eventlog_query_json(l, &q);
    json_t *acked = json_object_get(json_array_get(events(p), 1), "acked");
    ck_assert_str_eq(json_string_value(json_object_get(acked, "operator")), "lea");
    ck_assert_str_eq(json_string_value(json_object_get(acked, "time")), "2026-12-02T08:00:01Z");
    ck_assert(json_is_null(json_object_get(json_array_get(events(p), 0), "acked")));
    json_decref(p);
    gw_eventlog_free(l);
}
END_TEST

START_TEST(t_certs)
{
    gw_eventlog *l = gw_eventlog_new(0);
    char sha[65], buf[512], na[32];
    memset(sha, 'a', 64);
    sha[64] = '\0';
    int n = snprintf(buf, sizeof(buf),
                     "{\"event\":\"cert.expiring\",\"severity\":\"medium\",\"cert_sha256\":\"%s\","
                     "\"not_after\":\"2027-01-01T00:00:00Z\"}",
                     sha);
    ck_assert_int_eq(gw_eventlog_cert_not_after(l, sha, na), 0);
    gw_eventlog_observe(l, GW_EV_CERT_EXPIRING, GW_SEV_MEDIUM, buf, (size_t)n);
    ck_assert_int_eq(gw_eventlog_cert_not_after(l, sha, na), 1);
    ck_assert_str_eq(na, "2027-01-01T00:00:00Z");
    sha[0] = 'b';
    ck_assert_int_eq(gw_eventlog_cert_not_after(l, sha, na), 0);
    gw_eventlog_free(l);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("admin_eventlog");
    TCase *tc = tcase_create("eventlog");
    tcase_add_test(tc, t_query);
    tcase_add_test(tc, t_bound_and_ack);
    tcase_add_test(tc, t_certs);
    suite_add_tcase(s, tc);
    return gw_test_run(s);
}
