/* A linearizability checker for client histories of a small key-value store (put, append, get),
 * using Wing & Gong's search with Lowe's memoization (as Porcupine does), one key at a time
 * (linearizability is local, Herlihy & Wing §3.3). It knows nothing of Raft and does no I/O. */
#ifndef DFS_TESTS_RAFT_LINCHECK_H
#define DFS_TESTS_RAFT_LINCHECK_H

#include <stddef.h>
#include <stdint.h>

/* The response time of an operation that never got an answer. */
#define LIN_PENDING UINT64_MAX

enum lin_kind {
    LIN_PUT = 1,    /* key := value */
    LIN_APPEND = 2, /* key := key . value */
    LIN_GET = 3,    /* returned value; a key never written reads as "" */
};

/* One operation of the history. Times are logical and all invoke/response times distinct; an
 * operation took effect at one instant in [invoke, response]. */
struct lin_op {
    uint8_t kind; /* enum lin_kind */
    uint32_t key;
    const char *value; /* put/append: the argument; get: what it returned (len bytes) */
    uint32_t len;
    uint64_t invoke;
    uint64_t response; /* LIN_PENDING: a write that may or may not have happened (a pending get
                          tells nothing and is ignored) */
};

enum lin_result {
    LIN_OK = 0,        /* linearizable */
    LIN_VIOLATION = 1, /* not linearizable: report.key names the first such key */
    LIN_GAVE_UP = 2,   /* the search of report.key explored more than max_states states */
    LIN_NOMEM = -1,
};

struct lin_report {
    uint32_t key;         /* the key the result is about (LIN_VIOLATION, LIN_GAVE_UP) */
    uint64_t states;      /* search states explored over all keys */
    uint64_t max_key_ops; /* most operations of one key */
};

/* Checks whether the history ops[0..n) is linearizable. max_states bounds the search of one key
 * (0: unbounded). ops and their values are borrowed for the call. report may be NULL. Returns an
 * enum lin_result. */
int lin_check(const struct lin_op *ops, size_t n, uint64_t max_states, struct lin_report *report);

#endif
