/* The chunkserver's wire names, written once: its data API (paths, headers, JSON fields) and the
 * chunkserver-to-master endpoints (docs/chunkserver.md). Constants only; no code. */
#ifndef DFS_CHUNK_CS_PROTO_H
#define DFS_CHUNK_CS_PROTO_H

/* ---- data API (served by dfs-chunkserver) ---- */

#define CS_PATH_BLOCK           "/blocks/{id}"
#define CS_PATH_BLOCK_REPLICATE "/blocks/{id}/replicate"
#define CS_PATH_BLOCKS_PREFIX   "/blocks/"
#define CS_PATH_STATUS          "/status"
#define CS_PATH_METRICS         "/metrics"

/* PUT request headers (or the query arguments of the same meaning, which take precedence). */
#define CS_HDR_PIPELINE   "X-Dfs-Pipeline" /* downstream chunkservers: "host:port,host:port" */
#define CS_HDR_CRC        "X-Dfs-Crc32c"   /* 8 hex digits: CRC32C of the whole block */
#define CS_QUERY_PIPELINE "pipeline"
#define CS_QUERY_CRC      "crc32c"
/* GET answer headers. */
#define CS_HDR_BLOCK_LEN "X-Dfs-Block-Length" /* the whole block's length, decimal */

/* JSON fields of the data API. */
#define CS_F_ID       "id"
#define CS_F_LEN      "len"
#define CS_F_CRC      "crc32c"
#define CS_F_REPLICAS "replicas"
#define CS_F_FAILED   "failed"
#define CS_F_ADDR     "addr"
#define CS_F_ERROR    "error"
#define CS_F_MESSAGE  "message"
#define CS_F_TARGET   "target"

/* GET /status fields beyond the shared ones below. */
#define CS_F_MASTER_LINK      "master_link"
#define CS_F_REGISTERED       "registered"
#define CS_F_LEADER_KNOWN     "master_leader_known"
#define CS_F_LEADER           "master_leader"
#define CS_F_HEARTBEAT_OK     "last_heartbeat_ok"
#define CS_F_HEARTBEAT_MS_AGO "last_heartbeat_ms_ago"
#define CS_F_UPTIME_MS        "uptime_ms"
#define CS_F_SCRUB            "scrub"
#define CS_F_ENABLED          "enabled"
#define CS_F_PASSES           "passes"
#define CS_F_BYTES            "bytes"
#define CS_F_CORRUPT_FOUND    "corrupt_found"
#define CS_F_PASS_DONE        "pass_done"
#define CS_F_PASS_TOTAL       "pass_total"

/* ---- chunkserver -> master (served by the leader master) ---- */

#define MASTER_PATH_CS_REGISTER  "/v1/cs/register"
#define MASTER_PATH_CS_HEARTBEAT "/v1/cs/heartbeat"
#define MASTER_PATH_CS_REPORT    "/v1/cs/report"

#define CS_F_CS_ID       "cs_id"
#define CS_F_STORAGE_ID  "storage_id"
#define CS_F_RACK        "rack"
#define CS_F_CAPACITY    "capacity"
#define CS_F_USED        "used"
#define CS_F_FREE        "free"
#define CS_F_BLOCKS      "blocks"
#define CS_F_BLOCK       "block"
#define CS_F_LOAD        "load"
#define CS_F_REPL_QUEUED "repl_queued"
#define CS_F_NO_SPACE    "no_space"
#define CS_F_BLOCK_SIZE  "block_size"
#define CS_F_ADDED       "added"
#define CS_F_REMOVED     "removed"
#define CS_F_CORRUPT     "corrupt"
#define CS_F_COMMANDS    "commands"
#define CS_F_OP          "op"
#define CS_F_NEED_REPORT "need_full_report"
#define CS_F_REPORT_ID   "report_id"
#define CS_F_PART        "part"
#define CS_F_LAST        "last"

#define CS_OP_DELETE    "delete"
#define CS_OP_REPLICATE "replicate"

#endif
