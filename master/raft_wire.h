/* The Raft peer protocol on the wire: one HTTP POST per message, JSON bodies except snapshot
 * chunks (raw bytes, metadata in headers). Encoding and validating decoding only; no I/O. The
 * endpoints and fields are documented in docs/protocol.md. */
#ifndef DFS_MASTER_RAFT_WIRE_H
#define DFS_MASTER_RAFT_WIRE_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "raft/raft.h"

/* Paths (under the peer port). */
#define RW_PATH_VOTE            "/raft/vote"
#define RW_PATH_PRE_VOTE        "/raft/pre-vote"
#define RW_PATH_VOTE_RESP       "/raft/vote-response"
#define RW_PATH_APPEND          "/raft/append"
#define RW_PATH_APPEND_RESP     "/raft/append-response"
#define RW_PATH_SNAPSHOT        "/raft/snapshot"
#define RW_PATH_SNAPSHOT_RESP   "/raft/snapshot-response"
#define RW_PATH_TIMEOUT_NOW     "/raft/timeout-now"
#define RW_PATH_READ_INDEX      "/raft/read-index"
#define RW_PATH_READ_INDEX_RESP "/raft/read-index-response"
#define RW_PATH_HELLO           "/raft/hello"
/* Several queued messages for one peer in one request: {"messages":[<message>,...]}, each
 * message the JSON of its own endpoint plus "path" naming that endpoint. */
#define RW_PATH_BATCH "/raft/batch"
#define RW_MAX_BATCH  1024

/* Headers of a snapshot chunk (and X-Dfs-Advertise on every peer request). */
#define RW_HDR_ADVERTISE  "X-Dfs-Advertise"
#define RW_HDR_FROM       "X-Raft-From"
#define RW_HDR_TO         "X-Raft-To"
#define RW_HDR_TERM       "X-Raft-Term"
#define RW_HDR_LAST_INDEX "X-Raft-Last-Index"
#define RW_HDR_LAST_TERM  "X-Raft-Last-Term"
#define RW_HDR_SIZE       "X-Raft-Size"
#define RW_HDR_OFFSET     "X-Raft-Offset"
#define RW_HDR_DONE       "X-Raft-Done"
#define RW_HDR_CONF       "X-Raft-Conf"
/* On every peer request: the sender takes messages back in the answer, {"messages":[...]} as in
 * a batch. The receiver may then hold the answer for a moment (its transport's reply_wait_ms) to
 * send its reply to the request in it (an append's acknowledgement once its entries are
 * durable, a vote), instead of POSTing that reply as a request of its own. */
#define RW_HDR_REPLIES "X-Dfs-Raft-Replies"

/* Largest append body a peer accepts (a batch of entries, base64). */
#define RW_MAX_APPEND_BODY (16u << 20)

/* The path a message is POSTed to. */
const char *rw_path(const struct raft_msg *m);

/* JSON body of a non-snapshot message (entries' data in base64). On success *out is a new tree
 * (cJSON_Delete). Errors: CM_E_INVAL (a snapshot message), CM_E_NOMEM. */
int rw_encode_json(const struct raft_msg *m, cJSON **out);

/* Decodes one element of a batch (its "path" field names the endpoint). Errors as for
 * rw_decode_json; a snapshot chunk or a missing path is CM_E_BAD_FIELD. */
struct rw_msg;
int rw_decode_batch_item(const cJSON *item, struct rw_msg *out);

/* A decoded message and the memory behind its entries. */
struct rw_msg {
    struct raft_msg msg;
    void *mem; /* entries array and data; free with rw_msg_free */
};
void rw_msg_free(struct rw_msg *m);

/* Decodes the JSON body POSTed to path. Errors: CM_E_NO_ROUTE (unknown path),
 * CM_E_MISSING_FIELD / CM_E_BAD_FIELD / CM_E_RANGE (bad fields, ids of 0, more entries than
 * sane, bad base64), CM_E_NOMEM. Nothing is allocated on error. */
int rw_decode_json(const char *path, const cJSON *body, struct rw_msg *out);

/* Snapshot chunks: the header values for m (written as strings into the caller's array of
 * RW_SNAPSHOT_HEADERS name/value pairs, values in buf of cap bytes), and decoding from a header
 * getter. data/len are the chunk body, borrowed by the decoded message; the decoded
 * configuration is written to *conf_storage, which out->u.snapshot.conf points to (both stay
 * the caller's: keep conf_storage alive as long as the message). */
#define RW_SNAPSHOT_HEADERS 9
struct rw_header {
    const char *name;
    const char *value;
};
int rw_encode_snapshot_headers(const struct raft_msg *m, struct rw_header *hdrs, char *buf,
                               size_t cap);
typedef const char *(*rw_header_fn)(void *ctx, const char *name);
int rw_decode_snapshot(rw_header_fn get, void *ctx, const void *data, size_t len,
                       struct raft_msg *out, struct raft_conf *conf_storage);

#endif
