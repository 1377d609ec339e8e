/*
 * Access journal: signed checkpoints (journal_int.h lists the files).
 */
#include "journal/journal_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/util.h"

/* A signed checkpoint over the head, unless the head is one already (an
 * idle journal gets no new checkpoint). */
void gw_jn_write_checkpoint(gw_journal *j)
{
    char ts[32];

    j->next_cp_ms = gw_jn_mono_ms() + (uint64_t)j->checkpoint_s * 1000u;
    if (!j->has_signer || j->seq == 0 || j->head_is_cp)
        return;
    gw_jn_maybe_rotate(j); /* before the head is read: the checkpoint must follow it */
    gw_jn_wall_iso(j, ts);
    json_t *p = json_pack("{s:s,s:I,s:s,s:s}", "purpose", "journal.checkpoint", "head_seq",
                          (json_int_t)j->seq, "head_hash", j->head, "ts", ts);
    char *sig = p != NULL ? gw_jws_sign(&j->signer, NULL, p) : NULL;
    json_decref(p);
    if (sig == NULL) {
        fprintf(stderr, "opale-gateway: journal %s: checkpoint: signing failed\n", j->path);
        return;
    }
    json_t *o = gw_jn_own_record("checkpoint", ts);
    if (o != NULL && (json_object_set_new(o, "head_seq", json_integer((json_int_t)j->seq)) != 0 ||
                      json_object_set_new(o, "head_hash", json_string(j->head)) != 0 ||
                      json_object_set_new(o, "kid", json_string(j->signer.kid)) != 0 ||
                      json_object_set_new(o, "sig", json_string(sig)) != 0)) {
        json_decref(o);
        o = NULL;
    }
    free(sig);
    if (gw_jn_emit(j, o) == 0) {
        j->head_is_cp = 1;
        pthread_mutex_lock(&j->mu);
        j->st_checkpoints++;
        pthread_mutex_unlock(&j->mu);
        /* A copy of the head outside the file: the anchor that makes a
         * truncation before this checkpoint detectable (--expect-head). */
        fprintf(stderr, "opale-gateway: journal %s: checkpoint seq=%" PRIu64 " hash=%s\n", j->path,
                j->seq, j->head);
        if (j->on_cp != NULL)
            j->on_cp(j->on_cp_arg, j->path, j->seq, j->head, ts);
    }
}
