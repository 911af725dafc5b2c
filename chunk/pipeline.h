/* One pipeline hop: streams a block being received on to the next chunkserver through a bounded
 * buffer, on a pooled thread of its own while it runs. Never touches the store; never holds more
 * than the buffer. */
#ifndef DFS_CHUNK_PIPELINE_H
#define DFS_CHUNK_PIPELINE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "common/http_client.h"

#define CS_FWD_DEFAULT_BUFFER (2 * 1024 * 1024)

/* Counts running forwarder threads so their owner can wait for all of them before freeing
 * what they use (the HTTP client). */
struct cs_waitgroup {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned n;
};

/* Returns 0 or CM_E_NOMEM. */
int cs_waitgroup_init(struct cs_waitgroup *wg);
void cs_waitgroup_destroy(struct cs_waitgroup *wg);
/* Waits until every forwarder started with wg has ended. */
void cs_waitgroup_wait(struct cs_waitgroup *wg);

/* Called once on the forwarder thread when the downstream answered or failed: rc as
 * cm_http_call gives it; resp holds the answer (the callee may steal resp->json) and is cleared
 * afterwards. It may complete a deferred HTTP answer; it must not call into this forwarder. */
typedef void (*cs_fwd_done_fn)(void *ctx, int rc, struct cm_http_response *resp);

struct cs_fwd_config {
    struct cm_http_client *http; /* borrowed; must outlive the thread (see wg) */
    const char *url;             /* the PUT, copied */
    int64_t len;                 /* the body's length, or -1: unknown (chunked) */
    long timeout_ms;             /* the whole transfer; 0: the client's */
    size_t buffer;               /* bytes buffered at most; 0: CS_FWD_DEFAULT_BUFFER */
    cs_fwd_done_fn done;         /* required */
    void *ctx;
    struct cs_waitgroup *wg; /* required */
};

struct cs_fwd;

/* Starts the upload on a pooled thread. Errors: CM_E_INVAL, CM_E_NOMEM, CM_E_IO (no thread); done
 * is then never called. Release with cs_fwd_release. */
int cs_fwd_start(const struct cs_fwd_config *cfg, struct cs_fwd **out);
/* Queues bytes for the downstream, waiting while the buffer is full. Returns 0, or once the
 * transfer has ended early, its error (the bytes are dropped; later pushes fail the same way). */
int cs_fwd_push(struct cs_fwd *f, const void *buf, size_t len);
/* The body is complete: the upload ends when the buffer has drained. */
void cs_fwd_end(struct cs_fwd *f);
/* The body will not be complete: the upload fails (the downstream keeps nothing). */
void cs_fwd_abort(struct cs_fwd *f);
/* The feeding side lets go of f (aborting it unless ended). The thread lives on until the
 * downstream answered, then calls done and frees f. */
void cs_fwd_release(struct cs_fwd *f);

#endif
