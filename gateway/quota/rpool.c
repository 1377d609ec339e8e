/*
 * hiredis reply objects from a free list (see rpool.h). The object functions
 * follow hiredis 0.14's own (read.c/hiredis.c: createReplyObject and the
 * create*Object functions, freeReplyObject), with the allocation replaced.
 */
#include "quota/rpool.h"

#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

/* An array of up to SMALL elements keeps its element vector in its object. */
#define SMALL 4
/* Free objects kept; the rest go back to the heap. A quota reply is four. */
#define KEEP 64

typedef struct obj {
    redisReply r; /* first: hiredis holds &o->r */
    gw_rpool *pool;
    struct obj *next; /* on the free list */
    redisReply *small[SMALL];
} obj;

struct gw_rpool {
    size_t refs; /* the owner's (until released) and one per object out */
    int owned;
    obj *free;
    unsigned nfree;
    size_t made;
};

gw_rpool *gw_rpool_new(void)
{
    gw_rpool *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->refs = 1;
    p->owned = 1;
    return p;
}

static void pool_unref(gw_rpool *p)
{
    if (--p->refs > 0)
        return;
    while (p->free != NULL) {
        obj *o = p->free;
        p->free = o->next;
        free(o);
    }
    free(p);
}

void gw_rpool_release(gw_rpool *p)
{
    if (p == NULL)
        return;
    p->owned = 0;
    pool_unref(p);
}

size_t gw_rpool_made(const gw_rpool *p)
{
    return p->made;
}

static obj *obj_new(const redisReadTask *task, int type)
{
    gw_rpool *p = task->privdata;
    obj *o;
    if (p != NULL && p->free != NULL) {
        o = p->free;
        p->free = o->next;
        p->nfree--;
    } else {
        o = malloc(sizeof(*o));
        if (o == NULL)
            return NULL;
        if (p != NULL)
            p->made++;
    }
    memset(&o->r, 0, sizeof(o->r));
    o->r.type = type;
    o->pool = p;
    o->next = NULL;
    if (p != NULL)
        p->refs++;
    return o;
}

static void obj_free(void *reply)
{
    obj *o = reply;
    if (o == NULL)
        return;
    switch (o->r.type) {
    case REDIS_REPLY_ARRAY:
        /* a tree cut short by a protocol error has NULL elements left */
        for (size_t j = 0; j < o->r.elements && o->r.element != NULL; j++)
            obj_free(o->r.element[j]);
        if (o->r.element != o->small)
            free(o->r.element);
        break;
    case REDIS_REPLY_ERROR:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_STRING:
        free(o->r.str);
        break;
    default:
        break;
    }
    gw_rpool *p = o->pool;
    if (p == NULL) {
        free(o);
        return;
    }
    if (p->owned && p->nfree < KEEP) {
        o->next = p->free;
        p->free = o;
        p->nfree++;
    } else {
        free(o);
    }
    pool_unref(p);
}

/* Link <o> into its parent array, as hiredis does. */
static void *linked(const redisReadTask *task, obj *o)
{
    if (task->parent != NULL) {
        redisReply *parent = task->parent->obj;
        parent->element[task->idx] = &o->r;
    }
    return &o->r;
}

static void *create_string(const redisReadTask *task, char *str, size_t len)
{
    obj *o = obj_new(task, task->type);
    if (o == NULL)
        return NULL;
    char *buf = malloc(len + 1);
    if (buf == NULL) {
        obj_free(o);
        return NULL;
    }
    memcpy(buf, str, len);
    buf[len] = '\0';
    o->r.str = buf;
    o->r.len = len;
    return linked(task, o);
}

static void *create_array(const redisReadTask *task, int elements)
{
    obj *o = obj_new(task, REDIS_REPLY_ARRAY);
    if (o == NULL)
        return NULL;
    if (elements > 0) {
        if (elements <= SMALL) {
            memset(o->small, 0, sizeof(o->small));
            o->r.element = o->small;
        } else {
            o->r.element = calloc((size_t)elements, sizeof(redisReply *));
            if (o->r.element == NULL) {
                obj_free(o);
                return NULL;
            }
        }
    }
    o->r.elements = (size_t)elements;
    return linked(task, o);
}

static void *create_integer(const redisReadTask *task, long long value)
{
    obj *o = obj_new(task, REDIS_REPLY_INTEGER);
    if (o == NULL)
        return NULL;
    o->r.integer = value;
    return linked(task, o);
}

static void *create_nil(const redisReadTask *task)
{
    obj *o = obj_new(task, REDIS_REPLY_NIL);
    if (o == NULL)
        return NULL;
    return linked(task, o);
}

static redisReplyObjectFunctions fns = {create_string, create_array, create_integer, create_nil,
                                        obj_free};

void gw_rpool_attach(gw_rpool *p, redisReader *rd)
{
    rd->fn = &fns;
    rd->privdata = p;
}
