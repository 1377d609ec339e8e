/* Unit tests for gateway/quota/rpool.c (hiredis reply objects from a free
 * list): hiredis's own reader parses real RESP into the pool's objects. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "quota/rpool.h"

static redisReader *reader(gw_rpool *p)
{
    redisReader *rd = redisReaderCreate();
    ck_assert_ptr_nonnull(rd);
    gw_rpool_attach(p, rd);
    return rd;
}

static redisReply *parse(redisReader *rd, const char *resp)
{
    void *rep = NULL;
    ck_assert_int_eq(redisReaderFeed(rd, resp, strlen(resp)), REDIS_OK);
    ck_assert_int_eq(redisReaderGetReply(rd, &rep), REDIS_OK);
    ck_assert_ptr_nonnull(rep);
    return rep;
}

/* The quota FCALL's reply, parsed again and again: its four objects are
 * made once, then served from the free list (the same objects). */
START_TEST(quota_reply_reuses_objects)
{
    gw_rpool *p = gw_rpool_new();
    redisReader *rd = reader(p);
    redisReply *first = NULL;
    for (int i = 0; i < 100; i++) {
        redisReply *r = parse(rd, "*3\r\n:1\r\n:49\r\n:59998\r\n");
        ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
        ck_assert_uint_eq(r->elements, 3);
        ck_assert_int_eq(r->element[0]->type, REDIS_REPLY_INTEGER);
        ck_assert_int_eq(r->element[0]->integer, 1);
        ck_assert_int_eq(r->element[1]->integer, 49);
        ck_assert_int_eq(r->element[2]->integer, 59998);
        if (first == NULL)
            first = r;
        ck_assert_ptr_eq(r, first);
        rd->fn->freeObject(r);
    }
    ck_assert_uint_eq(gw_rpool_made(p), 4);
    redisReaderFree(rd);
    gw_rpool_release(p);
}
END_TEST

/* Every kind of reply, nested, longer than the in-object vector, and the
 * refusal and error shapes the gateway reads. */
START_TEST(every_kind_parsed_as_hiredis_does)
{
    gw_rpool *p = gw_rpool_new();
    redisReader *rd = reader(p);
    for (int round = 0; round < 3; round++) {
        redisReply *r = parse(rd, "*6\r\n$5\r\nhello\r\n+OK\r\n-ERR no\r\n$-1\r\n*0\r\n"
                                  "*5\r\n:1\r\n:2\r\n:3\r\n:4\r\n*2\r\n$0\r\n\r\n*-1\r\n");
        ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
        ck_assert_uint_eq(r->elements, 6);
        ck_assert_int_eq(r->element[0]->type, REDIS_REPLY_STRING);
        ck_assert_str_eq(r->element[0]->str, "hello");
        ck_assert_uint_eq(r->element[0]->len, 5);
        ck_assert_int_eq(r->element[1]->type, REDIS_REPLY_STATUS);
        ck_assert_str_eq(r->element[1]->str, "OK");
        ck_assert_int_eq(r->element[2]->type, REDIS_REPLY_ERROR);
        ck_assert_str_eq(r->element[2]->str, "ERR no");
        ck_assert_int_eq(r->element[3]->type, REDIS_REPLY_NIL);
        ck_assert_int_eq(r->element[4]->type, REDIS_REPLY_ARRAY);
        ck_assert_uint_eq(r->element[4]->elements, 0);
        redisReply *a = r->element[5];
        ck_assert_uint_eq(a->elements, 5);
        for (int i = 0; i < 4; i++)
            ck_assert_int_eq(a->element[i]->integer, i + 1);
        ck_assert_uint_eq(a->element[4]->elements, 2);
        ck_assert_str_eq(a->element[4]->element[0]->str, "");
        ck_assert_int_eq(a->element[4]->element[1]->type, REDIS_REPLY_NIL);
        rd->fn->freeObject(r);
        r = parse(rd, "-NOSCRIPT No matching script\r\n");
        ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
        ck_assert_str_eq(r->str, "NOSCRIPT No matching script");
        rd->fn->freeObject(r);
    }
    /* the 14 objects of the first tree, made in the first round only */
    ck_assert_uint_eq(gw_rpool_made(p), 14);
    redisReaderFree(rd);
    gw_rpool_release(p);
}
END_TEST

/* A reply cut by a protocol error, and a reader freed with a reply half
 * built after the owner released the pool: the objects are freed, the pool
 * with the last of them (ASan/LSan: no leak, no use after free). */
START_TEST(partial_trees_and_late_free)
{
    gw_rpool *p = gw_rpool_new();
    redisReader *rd = reader(p);
    void *rep = NULL;
    const char *cut = "*3\r\n:1\r\n*2\r\n:5\r\n!bad\r\n";
    ck_assert_int_eq(redisReaderFeed(rd, cut, strlen(cut)), REDIS_OK);
    ck_assert_int_eq(redisReaderGetReply(rd, &rep), REDIS_ERR);
    ck_assert_ptr_null(rep);
    redisReaderFree(rd);

    rd = reader(p);
    const char *half = "*3\r\n:1\r\n*2\r\n$3\r\nabc\r\n";
    ck_assert_int_eq(redisReaderFeed(rd, half, strlen(half)), REDIS_OK);
    ck_assert_int_eq(redisReaderGetReply(rd, &rep), REDIS_OK);
    ck_assert_ptr_null(rep); /* incomplete: the reader holds the tree */
    redisReply *whole = NULL;
    redisReader *rd2 = reader(p);
    whole = parse(rd2, "*1\r\n:7\r\n");
    gw_rpool_release(p); /* the owner goes first */
    rd2->fn->freeObject(whole);
    redisReaderFree(rd2);
    redisReaderFree(rd); /* the last objects, then the pool */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rpool");
    TCase *t = tcase_create("core");
    tcase_add_test(t, quota_reply_reuses_objects);
    tcase_add_test(t, every_kind_parsed_as_hiredis_does);
    tcase_add_test(t, partial_trees_and_late_free);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
