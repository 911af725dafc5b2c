/* The Raft driver: a loop thread that owns the core and the state machine, and a persist thread
 * that owns the store and group-commits whatever piled up while the last fsync ran. */
#include "master/raft_node.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/log.h"

#define MAX_QUEUED_MSGS   20000
#define MAX_PROPOSE_BATCH 512

/* ---- queue items ---- */

enum item_kind {
    IT_MSG,
    IT_PROPOSE,
    IT_READ,
    IT_PERSISTED,
    IT_SNAPSHOT_DONE,
    IT_TRANSFER,
    IT_CONF,
    IT_SYNC,
};

struct item {
    struct item *next;
    enum item_kind kind;
    union {
        struct raft_msg *msg; /* one allocation with its entries and data */
        struct {
            void *data;
            size_t len;
            rn_done_fn cb;
            void *arg;
        } propose;
        struct {
            rn_read_fn cb;
            void *arg;
        } read;
        struct {
            uint64_t seq;
            char *path; /* the installed snapshot's file, when this report installs one */
        } persisted;
        struct {
            raft_index index;
            raft_term term;
            uint64_t size;
            int err;
            char *path;
        } snap;
        struct {
            raft_id target;
            int op;
            char addr[RAFT_ADDR_MAX];
            rn_done_fn cb;
            void *arg;
            raft_time deadline; /* a conf change refused as BUSY is retried until then */
        } admin;
        struct {
            void (*fn)(void *);
            void *arg;
            bool *done;
        } sync;
    } u;
};

/* ---- persist jobs ---- */

enum job_kind { JOB_WRITE, JOB_CHUNK, JOB_INSTALL, JOB_SNAP_COMMIT };

struct job {
    struct job *next;
    enum job_kind kind;
    uint64_t seq; /* JOB_WRITE / JOB_INSTALL: the persist seq to report */
    struct raft_persist p;
    struct raft_entry *entries; /* owned copies for p */
    uint64_t offset;            /* JOB_CHUNK */
    uint32_t len;
    void *data;
    struct raft_conf conf; /* JOB_INSTALL / JOB_SNAP_COMMIT */
    raft_index index;
    raft_term term;
    struct rs_snapshot_writer *writer; /* JOB_SNAP_COMMIT */
};

/* A proposal waiting for its entry to be applied. */
struct waiter {
    raft_index index;
    raft_term term;
    rn_done_fn cb;
    void *arg;
};

struct ready_read {
    raft_index index;
    rn_read_fn cb;
    void *arg;
};

struct pending_read {
    uint64_t id;
    rn_read_fn cb;
    void *arg;
};

struct rn_node {
    struct rn_config cfg;
    struct rn_fsm fsm;
    struct rn_transport tr;
    struct raft_store *store;
    struct raft *raft;

    pthread_t loop_thread, persist_thread;
    bool loop_started, persist_started;

    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    struct item *qhead, *qtail;
    size_t qmsgs;
    bool stopping;

    pthread_mutex_t jmu;
    pthread_cond_t jcv;
    struct job *jhead, *jtail;
    bool jstopping;
    pthread_cond_t synccv; /* rn_run_sync's callers wait on it, not on qcv (the loop's) */

    /* loop-thread state: the persist jobs of the current pass, handed over together at its end
     * so that one fsync covers them (a batch of appends from the leader: one synced write, and
     * the answer to the batch carries every reply) */
    bool in_pass;
    struct job *phead, *ptail;

    /* loop-thread state */
    raft_time next_timeout;
    raft_index applied;
    raft_term applied_term;
    struct raft_conf applied_conf;
    struct waiter *waiters;
    size_t n_waiters, cap_waiters;
    struct ready_read *ready;
    size_t n_ready, cap_ready;
    struct pending_read *reads;
    size_t n_reads, cap_reads;
    uint64_t next_read_id;
    bool snapshot_running;
    uint64_t install_seq; /* persist seq of a pending snapshot install, 0 if none */
    raft_index install_index;
    raft_term install_term;
    uint64_t install_size;
    struct raft_conf install_conf;
    char *snap_path;
    struct {
        rn_done_fn cb;
        void *arg;
        raft_id target;
        raft_time deadline;
    } transfer;
    struct item *conf_retry; /* conf changes waiting for the previous one (or the leader's
                                first commit of its term) */
    raft_id last_leader;
    struct raft_conf last_conf;
    uint8_t last_role;
    raft_term last_term;

    /* status shared with other threads */
    pthread_mutex_t smu;
    struct rn_status status;

    /* Reads served on the caller's thread (rn_read_fast): the state machine changes under
     * fsm_lock held for writing; lease_until is raft_lease_until as of the last update. */
    pthread_rwlock_t fsm_lock;
    _Atomic raft_time lease_until;
    atomic_uint_fast64_t reads_fast;
};

/* The Raft core's clock. CLOCK_BOOTTIME, not CLOCK_MONOTONIC: it also counts time the machine
 * was suspended, so a leader that wakes up knows its lease ran out meanwhile. */
static raft_time now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (raft_time)ts.tv_sec * 1000u + (raft_time)ts.tv_nsec / 1000000u;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int map_raft_err(int rc)
{
    switch (rc) {
    case RAFT_OK:
        return 0;
    case RAFT_E_NOMEM:
        return CM_E_NOMEM;
    case RAFT_E_NOT_LEADER:
        return CM_E_NOT_LEADER;
    case RAFT_E_BUSY:
    case RAFT_E_TRANSFERRING:
        return CM_E_BUSY;
    case RAFT_E_TOO_BIG:
        return CM_E_TOO_LARGE;
    case RAFT_E_SHUTDOWN:
        return CM_E_UNAVAILABLE;
    default:
        return CM_E_INVAL;
    }
}

/* ---- deep copy of messages ---- */

static struct raft_msg *msg_clone(const struct raft_msg *m)
{
    size_t size = sizeof(*m);
    uint32_t n = 0;
    if (m->type == RAFT_MSG_APPEND) {
        n = m->u.append.n_entries;
        size += (size_t)n * sizeof(struct raft_entry);
        for (uint32_t i = 0; i < n; i++)
            size += m->u.append.entries[i].len;
    } else if (m->type == RAFT_MSG_SNAPSHOT) {
        size += sizeof(struct raft_conf); /* the configuration first: it is 8-aligned too */
        if (m->u.snapshot.data != NULL)
            size += m->u.snapshot.len;
    }
    struct raft_msg *c = malloc(size);
    if (c == NULL)
        return NULL;
    *c = *m;
    unsigned char *p = (unsigned char *)(c + 1);
    if (m->type == RAFT_MSG_APPEND) {
        struct raft_entry *es = (struct raft_entry *)p;
        p += (size_t)n * sizeof(struct raft_entry);
        for (uint32_t i = 0; i < n; i++) {
            es[i] = m->u.append.entries[i];
            if (es[i].len > 0)
                memcpy(p, m->u.append.entries[i].data, es[i].len);
            es[i].data = p;
            p += es[i].len;
        }
        c->u.append.entries = n ? es : NULL;
    } else if (m->type == RAFT_MSG_SNAPSHOT) {
        struct raft_conf *conf = (struct raft_conf *)p;
        p += sizeof(*conf);
        if (m->u.snapshot.conf != NULL) {
            *conf = *m->u.snapshot.conf;
            c->u.snapshot.conf = conf;
        }
        if (m->u.snapshot.data != NULL) {
            memcpy(p, m->u.snapshot.data, m->u.snapshot.len);
            c->u.snapshot.data = p;
        }
    }
    return c;
}

/* ---- the loop's queue ---- */

static void enqueue(struct rn_node *n, struct item *it)
{
    pthread_mutex_lock(&n->qmu);
    it->next = NULL;
    if (n->qtail)
        n->qtail->next = it;
    else
        n->qhead = it;
    n->qtail = it;
    if (it->kind == IT_MSG)
        n->qmsgs++;
    pthread_mutex_unlock(&n->qmu);
    /* After the unlock: a loop woken under the lock would only block on it again (two more
     * futex calls per item, seen with strace). The node outlives every producer. */
    pthread_cond_signal(&n->qcv);
}

static struct item *item_new(enum item_kind kind)
{
    struct item *it = calloc(1, sizeof(*it));
    if (it != NULL)
        it->kind = kind;
    return it;
}

int rn_receive_many(struct rn_node *n, const struct raft_msg *const *ms, size_t k)
{
    pthread_mutex_lock(&n->qmu);
    bool full = n->qmsgs + k > MAX_QUEUED_MSGS || n->stopping;
    pthread_mutex_unlock(&n->qmu);
    if (full)
        return CM_E_BUSY;
    struct item *head = NULL, *tail = NULL;
    for (size_t i = 0; i < k; i++) {
        struct item *it = item_new(IT_MSG);
        if (it == NULL || (it->u.msg = msg_clone(ms[i])) == NULL) {
            free(it);
            while (head != NULL) {
                struct item *next = head->next;
                free(head->u.msg);
                free(head);
                head = next;
            }
            return CM_E_NOMEM;
        }
        if (tail != NULL)
            tail->next = it;
        else
            head = it;
        tail = it;
    }
    if (head == NULL)
        return 0;
    /* All at once: the loop takes them in one pass, so one synced write covers their entries
     * and the answer to the peer's request carries every reply. */
    pthread_mutex_lock(&n->qmu);
    if (n->qtail)
        n->qtail->next = head;
    else
        n->qhead = head;
    n->qtail = tail;
    n->qmsgs += k;
    pthread_mutex_unlock(&n->qmu);
    pthread_cond_signal(&n->qcv);
    return 0;
}

int rn_receive(struct rn_node *n, const struct raft_msg *m)
{
    return rn_receive_many(n, &m, 1);
}

void rn_propose(struct rn_node *n, const void *data, size_t len, rn_done_fn cb, void *arg)
{
    struct item *it = item_new(IT_PROPOSE);
    void *copy = len ? malloc(len) : NULL;
    if (it == NULL || (len && copy == NULL)) {
        free(it);
        free(copy);
        cb(arg, CM_E_NOMEM, NULL, 0);
        return;
    }
    if (len)
        memcpy(copy, data, len);
    it->u.propose.data = copy;
    it->u.propose.len = len;
    it->u.propose.cb = cb;
    it->u.propose.arg = arg;
    enqueue(n, it);
}

void rn_read(struct rn_node *n, rn_read_fn cb, void *arg)
{
    struct item *it = item_new(IT_READ);
    if (it == NULL) {
        cb(arg, CM_E_NOMEM);
        return;
    }
    it->u.read.cb = cb;
    it->u.read.arg = arg;
    enqueue(n, it);
}

void rn_transfer(struct rn_node *n, raft_id target, rn_done_fn cb, void *arg)
{
    struct item *it = item_new(IT_TRANSFER);
    if (it == NULL) {
        cb(arg, CM_E_NOMEM, NULL, 0);
        return;
    }
    it->u.admin.target = target;
    it->u.admin.cb = cb;
    it->u.admin.arg = arg;
    enqueue(n, it);
}

void rn_conf_change(struct rn_node *n, int op, raft_id id, const char *addr, rn_done_fn cb,
                    void *arg)
{
    struct item *it = item_new(IT_CONF);
    if (it == NULL) {
        cb(arg, CM_E_NOMEM, NULL, 0);
        return;
    }
    it->u.admin.op = op;
    it->u.admin.target = id;
    if (addr != NULL)
        snprintf(it->u.admin.addr, RAFT_ADDR_MAX, "%s", addr);
    it->u.admin.cb = cb;
    it->u.admin.arg = arg;
    enqueue(n, it);
}

bool rn_read_fast(struct rn_node *n, void (*fn)(void *), void *arg)
{
    bool served = false;
    pthread_rwlock_rdlock(&n->fsm_lock);
    /* Checked under the lock: what fn reads is the state at this moment. */
    if (now_ms() < atomic_load(&n->lease_until)) {
        fn(arg);
        served = true;
    }
    pthread_rwlock_unlock(&n->fsm_lock);
    if (served)
        atomic_fetch_add(&n->reads_fast, 1);
    return served;
}

void rn_run_sync(struct rn_node *n, void (*fn)(void *), void *arg)
{
    bool done = false;
    struct item *it = item_new(IT_SYNC);
    if (it == NULL)
        return;
    it->u.sync.fn = fn;
    it->u.sync.arg = arg;
    it->u.sync.done = &done;
    enqueue(n, it);
    pthread_mutex_lock(&n->qmu);
    while (!done)
        pthread_cond_wait(&n->synccv, &n->qmu);
    pthread_mutex_unlock(&n->qmu);
}

void rn_leader(struct rn_node *n, raft_id *leader, bool *is_self)
{
    pthread_mutex_lock(&n->smu);
    *leader = n->status.raft.leader;
    *is_self = n->status.raft.leader != 0 && n->status.raft.leader == n->status.raft.id &&
               n->status.raft.role == RAFT_LEADER;
    pthread_mutex_unlock(&n->smu);
}

void rn_get_status(struct rn_node *n, struct rn_status *out)
{
    pthread_mutex_lock(&n->smu);
    *out = n->status;
    pthread_mutex_unlock(&n->smu);
    out->reads_fast = atomic_load(&n->reads_fast);
}

/* ---- the persist thread ---- */

static void fail_oom(void)
{
    LOG_ERROR("raft: out of memory while persisting; this master stops");
    abort();
}

static void job_free(struct job *j)
{
    if (j->entries != NULL) {
        for (uint32_t i = 0; i < j->p.n_entries; i++)
            free((void *)j->entries[i].data);
        free(j->entries);
    }
    free(j->data);
    free(j);
}

/* Hands the jobs from head to tail (linked) to the persist thread. */
static void push_jobs(struct rn_node *n, struct job *head, struct job *tail)
{
    pthread_mutex_lock(&n->jmu);
    if (n->jtail)
        n->jtail->next = head;
    else
        n->jhead = head;
    n->jtail = tail;
    pthread_mutex_unlock(&n->jmu);
    pthread_cond_signal(&n->jcv); /* after the unlock, as in enqueue */
}

static void push_job(struct rn_node *n, struct job *j)
{
    j->next = NULL;
    if (!n->in_pass) {
        push_jobs(n, j, j);
        return;
    }
    if (n->ptail)
        n->ptail->next = j;
    else
        n->phead = j;
    n->ptail = j;
}

/* Ends the loop's pass: its persist jobs go to the persist thread. */
static void end_pass(struct rn_node *n)
{
    n->in_pass = false;
    if (n->phead != NULL)
        push_jobs(n, n->phead, n->ptail);
    n->phead = n->ptail = NULL;
}

static void note_fsync(struct rn_node *n, uint64_t us)
{
    unsigned b = 0;
    while (b < 15 && us >= (64ull << b))
        b++;
    pthread_mutex_lock(&n->smu);
    n->status.fsyncs++;
    n->status.fsync_us_total += us;
    n->status.fsync_hist[b]++;
    pthread_mutex_unlock(&n->smu);
}

/* Reports a durable seq to the loop; path: the snapshot file this seq installed, or NULL. */
static void post_persisted(struct rn_node *n, uint64_t seq, const char *path)
{
    struct item *it = item_new(IT_PERSISTED);
    if (it == NULL || (path != NULL && (it->u.persisted.path = strdup(path)) == NULL))
        fail_oom(); /* the report must not be lost: Raft would stall */
    it->u.persisted.seq = seq;
    enqueue(n, it);
}

static void *persist_main(void *arg)
{
    struct rn_node *n = arg;

    pthread_setname_np(pthread_self(), "raft-persist");
    for (;;) {
        pthread_mutex_lock(&n->jmu);
        while (n->jhead == NULL && !n->jstopping)
            pthread_cond_wait(&n->jcv, &n->jmu);
        struct job *list = n->jhead;
        n->jhead = n->jtail = NULL;
        bool stop = n->jstopping && list == NULL;
        pthread_mutex_unlock(&n->jmu);
        if (stop)
            break;

        while (list != NULL) {
            /* Group commit: every consecutive write job goes into one synced batch. */
            if (list->kind == JOB_WRITE) {
                struct raft_persist ps[256];
                size_t k = 0;
                uint64_t seq = 0;
                struct job *j = list;
                while (j != NULL && j->kind == JOB_WRITE && k < 256) {
                    ps[k++] = j->p;
                    seq = j->seq;
                    j = j->next;
                }
                uint64_t t0 = now_us();
                int rc = rs_write(n->store, ps, k);
                note_fsync(n, now_us() - t0);
                if (rc != 0) {
                    /* A store that cannot write cannot promise anything: stop serving. */
                    LOG_ERROR("raft: persisting the log failed (%s); this master stops",
                              cm_strerror(rc));
                    abort();
                }
                while (list != j) {
                    struct job *next = list->next;
                    job_free(list);
                    list = next;
                }
                if (seq != 0)
                    post_persisted(n, seq, NULL);
                continue;
            }
            struct job *j = list;
            list = j->next;
            int rc = 0;
            if (j->kind == JOB_CHUNK) {
                rc = rs_snapshot_write_chunk(n->store, j->offset, j->data, j->len);
                if (rc != 0)
                    LOG_WARN("raft: writing snapshot chunk at %" PRIu64 " failed: %s", j->offset,
                             cm_strerror(rc));
            } else if (j->kind == JOB_INSTALL) {
                uint64_t size = 0;
                rc = rs_snapshot_install(n->store, j->index, j->term, &j->conf, &size);
                if (rc != 0) {
                    LOG_ERROR("raft: installing snapshot %" PRIu64 " failed (%s); this master "
                              "stops",
                              j->index, cm_strerror(rc));
                    abort();
                }
                post_persisted(n, j->seq, rs_snapshot_path(n->store, NULL));
            } else if (j->kind == JOB_SNAP_COMMIT) {
                uint64_t size = 0;
                rc = rs_snapshot_commit(n->store, j->writer, j->index, j->term, &j->conf, &size);
                struct item *it = item_new(IT_SNAPSHOT_DONE);
                if (it != NULL) {
                    it->u.snap.index = j->index;
                    it->u.snap.term = j->term;
                    it->u.snap.size = size;
                    it->u.snap.err = rc;
                    if (rc == 0)
                        it->u.snap.path = strdup(rs_snapshot_path(n->store, NULL));
                    enqueue(n, it);
                }
            }
            job_free(j);
        }
    }
    return NULL;
}

/* ---- handling updates (loop thread) ---- */

static int copy_entries(const struct raft_entry *src, uint32_t n, struct raft_entry **out)
{
    struct raft_entry *es = calloc(n ? n : 1, sizeof(*es));
    if (es == NULL)
        return CM_E_NOMEM;
    for (uint32_t i = 0; i < n; i++) {
        es[i] = src[i];
        es[i].data = NULL;
        if (src[i].len > 0) {
            void *d = malloc(src[i].len);
            if (d == NULL) {
                for (uint32_t k = 0; k < i; k++)
                    free((void *)es[k].data);
                free(es);
                return CM_E_NOMEM;
            }
            memcpy(d, src[i].data, src[i].len);
            es[i].data = d;
        }
    }
    *out = es;
    return 0;
}

static void queue_persist(struct rn_node *n, const struct raft_update *u)
{
    const struct raft_snapshot_chunk *c = &u->snapshot_chunk;
    if (c->present) {
        struct job *j = calloc(1, sizeof(*j));
        if (j == NULL || (c->len && (j->data = malloc(c->len)) == NULL))
            fail_oom();
        j->kind = JOB_CHUNK;
        j->offset = c->offset;
        j->len = c->len;
        if (c->len)
            memcpy(j->data, c->data, c->len);
        push_job(n, j);
    }
    const struct raft_persist *p = &u->persist;
    if (p->seq == 0)
        return;
    struct job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        fail_oom();
    j->seq = p->seq;
    if (p->has_hard_state || p->truncate_from || p->n_entries) {
        j->kind = JOB_WRITE;
        j->p = *p;
        j->p.install_snapshot = false;
        if (p->n_entries && copy_entries(p->entries, p->n_entries, &j->entries) != 0)
            fail_oom();
        j->p.entries = j->entries;
        j->p.snapshot_conf = NULL;
        if (p->install_snapshot) {
            /* Write first, then install: two jobs, the install reports the seq. */
            j->seq = 0;
            push_job(n, j);
            j = calloc(1, sizeof(*j));
            if (j == NULL)
                fail_oom();
            j->seq = p->seq;
        }
    }
    if (p->install_snapshot) {
        j->kind = JOB_INSTALL;
        j->index = p->snapshot_index;
        j->term = p->snapshot_term;
        j->conf = *p->snapshot_conf;
        n->install_seq = p->seq;
        n->install_index = p->snapshot_index;
        n->install_term = p->snapshot_term;
        n->install_conf = *p->snapshot_conf;
    }
    push_job(n, j);
}

static void waiter_add(struct rn_node *n, raft_index index, raft_term term, rn_done_fn cb,
                       void *arg)
{
    if (n->n_waiters == n->cap_waiters) {
        size_t cap = n->cap_waiters ? n->cap_waiters * 2 : 256;
        struct waiter *w = realloc(n->waiters, cap * sizeof(*w));
        if (w == NULL) {
            cb(arg, CM_E_NOMEM, NULL, 0);
            return;
        }
        n->waiters = w;
        n->cap_waiters = cap;
    }
    /* Keep sorted by index; new entries almost always go at the end. */
    size_t i = n->n_waiters;
    while (i > 0 && n->waiters[i - 1].index > index)
        i--;
    memmove(&n->waiters[i + 1], &n->waiters[i], (n->n_waiters - i) * sizeof(*n->waiters));
    n->waiters[i] = (struct waiter){index, term, cb, arg};
    n->n_waiters++;
}

/* Completes waiters up to index: the one at (index, term) gets the result, others fail. */
static void waiters_complete(struct rn_node *n, raft_index index, raft_term term, int err,
                             const void *res, size_t len)
{
    size_t k = 0;
    while (k < n->n_waiters && n->waiters[k].index <= index) {
        struct waiter *w = &n->waiters[k];
        if (w->index == index && w->term == term)
            w->cb(w->arg, err, res, len);
        else
            w->cb(w->arg, CM_E_UNAVAILABLE, NULL, 0);
        k++;
    }
    if (k > 0) {
        memmove(n->waiters, n->waiters + k, (n->n_waiters - k) * sizeof(*n->waiters));
        n->n_waiters -= k;
    }
}

static void ready_add(struct rn_node *n, raft_index index, rn_read_fn cb, void *arg)
{
    if (index <= n->applied) {
        cb(arg, 0);
        return;
    }
    if (n->n_ready == n->cap_ready) {
        size_t cap = n->cap_ready ? n->cap_ready * 2 : 64;
        struct ready_read *r = realloc(n->ready, cap * sizeof(*r));
        if (r == NULL) {
            cb(arg, CM_E_NOMEM);
            return;
        }
        n->ready = r;
        n->cap_ready = cap;
    }
    n->ready[n->n_ready++] = (struct ready_read){index, cb, arg};
}

static void ready_fire(struct rn_node *n)
{
    size_t k = 0;
    for (size_t i = 0; i < n->n_ready; i++) {
        if (n->ready[i].index <= n->applied)
            n->ready[i].cb(n->ready[i].arg, 0);
        else
            n->ready[k++] = n->ready[i];
    }
    n->n_ready = k;
}

static void apply_entries(struct rn_node *n, const struct raft_update *u)
{
    pthread_rwlock_wrlock(&n->fsm_lock);
    for (uint32_t i = 0; i < u->n_committed; i++) {
        const struct raft_entry *e = &u->committed[i];
        if (e->index <= n->applied)
            continue;
        void *res = NULL;
        size_t rlen = 0;
        int err = 0;
        if (e->type == RAFT_ENTRY_NORMAL)
            err = n->fsm.apply(n->fsm.ctx, e->index, e->data, e->len, &res, &rlen);
        else if (e->type == RAFT_ENTRY_CONF)
            raft_conf_decode(e->data, e->len, &n->applied_conf);
        n->applied = e->index;
        n->applied_term = e->term;
        if (n->n_waiters > 0 && n->waiters[0].index <= e->index)
            waiters_complete(n, e->index, e->term, err, res, rlen);
        free(res);
    }
    pthread_rwlock_unlock(&n->fsm_lock);
    pthread_mutex_lock(&n->smu);
    n->status.applied += u->n_committed;
    pthread_mutex_unlock(&n->smu);
    if (n->n_ready > 0)
        ready_fire(n);
}

static void handle_reads(struct rn_node *n, const struct raft_update *u)
{
    for (uint32_t i = 0; i < u->n_reads; i++) {
        const struct raft_read *r = &u->reads[i];
        for (size_t k = 0; k < n->n_reads; k++) {
            if (n->reads[k].id != r->read_id)
                continue;
            struct pending_read pr = n->reads[k];
            n->reads[k] = n->reads[--n->n_reads];
            if (r->ok)
                ready_add(n, r->index, pr.cb, pr.arg);
            else
                pr.cb(pr.arg, CM_E_UNAVAILABLE);
            break;
        }
    }
}

static void start_snapshot(struct rn_node *n)
{
    struct rs_snapshot_writer *w = NULL;
    if (n->snapshot_running || n->applied == 0)
        return;
    /* The snapshot's conf is the one in effect at the applied index. */
    int rc = rs_snapshot_create(n->store, &w);
    if (rc == 0)
        rc = n->fsm.snapshot(n->fsm.ctx, w);
    if (rc != 0) {
        LOG_WARN("raft: taking a snapshot failed: %s", cm_strerror(rc));
        if (w != NULL)
            rs_snapshot_abort(n->store, w);
        return;
    }
    struct job *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        rs_snapshot_abort(n->store, w);
        return;
    }
    j->kind = JOB_SNAP_COMMIT;
    j->writer = w;
    j->index = n->applied;
    j->term = n->applied_term;
    j->conf = n->applied_conf;
    n->snapshot_running = true;
    push_job(n, j);
}

/* Appends a new leadership (leader, term) to the ring of recent ones, dropping the oldest when
 * full; the same leadership seen again is not repeated. */
static void record_leader_change(struct rn_status *s, raft_term term, raft_id leader)
{
    const struct rn_leader_change *last =
        s->n_recent_leaders > 0 ? &s->recent_leaders[s->n_recent_leaders - 1] : NULL;
    if (leader == 0 || (last != NULL && last->term == term && last->leader == leader))
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (s->n_recent_leaders == RN_LEADER_CHANGES_MAX) {
        memmove(&s->recent_leaders[0], &s->recent_leaders[1],
                (RN_LEADER_CHANGES_MAX - 1) * sizeof(s->recent_leaders[0]));
        s->n_recent_leaders--;
    }
    s->recent_leaders[s->n_recent_leaders++] = (struct rn_leader_change){
        .term = term,
        .leader = leader,
        .unix_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u,
    };
}

static void update_status(struct rn_node *n)
{
    struct raft_status st;
    raft_get_status(n->raft, &st);
    if (st.leader != n->last_leader || st.role != n->last_role || st.term != n->last_term) {
        if (st.role == RAFT_CANDIDATE && n->last_role != RAFT_CANDIDATE) {
            LOG_INFO("Node %" PRIu64 " starting election (term %" PRIu64 ")", st.id, st.term);
            pthread_mutex_lock(&n->smu);
            n->status.elections++;
            pthread_mutex_unlock(&n->smu);
        }
        if (st.role == RAFT_LEADER && n->last_role != RAFT_LEADER)
            LOG_INFO("Node %" PRIu64 " becoming LEADER (term %" PRIu64 ")", st.id, st.term);
        else if (st.role == RAFT_FOLLOWER && n->last_role == RAFT_LEADER)
            LOG_INFO("Node %" PRIu64 " stepping down to FOLLOWER (term %" PRIu64 ")", st.id,
                     st.term);
        if (st.leader != n->last_leader && st.leader != 0) {
            if (st.leader != st.id)
                LOG_INFO("Node %" PRIu64 " following leader %" PRIu64 " (term %" PRIu64 ")", st.id,
                         st.leader, st.term);
            pthread_mutex_lock(&n->smu);
            n->status.leader_changes++;
            pthread_mutex_unlock(&n->smu);
        }
        if (st.leader != 0) {
            pthread_mutex_lock(&n->smu);
            record_leader_change(&n->status, st.term, st.leader);
            pthread_mutex_unlock(&n->smu);
        }
        /* A transfer completes when the target leads, fails when someone else does. */
        if (n->transfer.cb != NULL && st.leader != 0 && st.leader != n->last_leader) {
            bool ok =
                n->transfer.target == 0 ? st.leader != st.id : st.leader == n->transfer.target;
            n->transfer.cb(n->transfer.arg, ok ? 0 : CM_E_BUSY, NULL, 0);
            n->transfer.cb = NULL;
        }
        n->last_leader = st.leader;
        n->last_role = st.role;
        n->last_term = st.term;
    }
    if (n->tr.conf_changed != NULL && memcmp(&st.conf, &n->last_conf, sizeof(st.conf)) != 0) {
        n->last_conf = st.conf;
        n->tr.conf_changed(n->tr.ctx, &st.conf);
    }
    pthread_mutex_lock(&n->smu);
    n->status.raft = st;
    pthread_mutex_unlock(&n->smu);
}

static void handle_update(struct rn_node *n, const struct raft_update *u)
{
    /* A lease that ended (a transfer's TIMEOUT_NOW is among the messages) ends for
     * rn_read_fast before anything is sent; one that began or grew counts once this update's
     * entries are applied. */
    raft_time lease = raft_lease_until(n->raft);
    if (lease < atomic_load(&n->lease_until))
        atomic_store(&n->lease_until, lease);
    queue_persist(n, u);
    for (uint32_t i = 0; i < u->n_msgs; i++)
        n->tr.send(n->tr.ctx, &u->msgs[i], n->snap_path);
    if (u->n_msgs > 0 && n->tr.flush != NULL)
        n->tr.flush(n->tr.ctx);
    handle_reads(n, u);
    if (u->n_committed > 0)
        apply_entries(n, u);
    atomic_store(&n->lease_until, lease);
    if (u->snapshot_wanted)
        start_snapshot(n);
    n->next_timeout = u->next_timeout;
}

static void step(struct rn_node *n, struct raft_event *ev, struct raft_update *u, int *rc_out)
{
    ev->now = now_ms();
    int rc = raft_step(n->raft, ev, u);
    if (rc_out != NULL)
        *rc_out = rc;
    handle_update(n, u);
}

/* Proposes a run of consecutive IT_PROPOSE items as one event. Returns the first item after
 * them. */
static struct item *propose_batch(struct rn_node *n, struct item *it)
{
    struct raft_entry es[MAX_PROPOSE_BATCH];
    struct item *items[MAX_PROPOSE_BATCH];
    uint32_t k = 0;
    while (it != NULL && it->kind == IT_PROPOSE && k < MAX_PROPOSE_BATCH) {
        es[k] = (struct raft_entry){.type = RAFT_ENTRY_NORMAL,
                                    .len = (uint32_t)it->u.propose.len,
                                    .data = it->u.propose.data};
        items[k++] = it;
        it = it->next;
    }
    struct raft_event ev = {.type = RAFT_EV_PROPOSE};
    ev.u.propose.n = k;
    ev.u.propose.entries = es;
    struct raft_update u;
    int rc;
    step(n, &ev, &u, &rc);
    for (uint32_t i = 0; i < k; i++) {
        if (rc == 0)
            waiter_add(n, u.proposed_index + i, u.proposed_term, items[i]->u.propose.cb,
                       items[i]->u.propose.arg);
        else
            items[i]->u.propose.cb(items[i]->u.propose.arg, map_raft_err(rc), NULL, 0);
        free(items[i]->u.propose.data);
        free(items[i]);
    }
    if (rc == 0) {
        pthread_mutex_lock(&n->smu);
        n->status.proposals += k;
        pthread_mutex_unlock(&n->smu);
    }
    return it;
}

static void conf_done(void *arg, int err, const void *res, size_t len)
{
    (void)res;
    (void)len;
    struct item *it = arg;
    it->u.admin.cb(it->u.admin.arg, err, NULL, 0);
    free(it);
}

static void process(struct rn_node *n, struct item *it)
{
    struct raft_event ev = {0};
    struct raft_update u;
    int rc;
    switch (it->kind) {
    case IT_MSG:
        ev.type = RAFT_EV_RECEIVE;
        ev.u.receive.msg = it->u.msg;
        step(n, &ev, &u, NULL);
        free(it->u.msg);
        break;
    case IT_PROPOSE:
        break; /* handled in batches by the caller */
    case IT_READ: {
        if (n->n_reads == n->cap_reads) {
            size_t cap = n->cap_reads ? n->cap_reads * 2 : 64;
            struct pending_read *r = realloc(n->reads, cap * sizeof(*r));
            if (r == NULL) {
                it->u.read.cb(it->u.read.arg, CM_E_NOMEM);
                break;
            }
            n->reads = r;
            n->cap_reads = cap;
        }
        uint64_t id = ++n->next_read_id;
        n->reads[n->n_reads++] = (struct pending_read){id, it->u.read.cb, it->u.read.arg};
        ev.type = RAFT_EV_READ;
        ev.u.read.read_id = id;
        step(n, &ev, &u, &rc);
        if (rc != 0) {
            for (size_t k = 0; k < n->n_reads; k++) {
                if (n->reads[k].id == id) {
                    n->reads[k] = n->reads[--n->n_reads];
                    it->u.read.cb(it->u.read.arg, map_raft_err(rc));
                    break;
                }
            }
        }
        break;
    }
    case IT_PERSISTED:
        if (n->install_seq != 0 && it->u.persisted.seq >= n->install_seq) {
            /* The snapshot is durable: the state machine becomes it before anything after it
             * is applied. */
            uint64_t size = 0;
            char *path = it->u.persisted.path;
            struct stat sb;
            if (path != NULL && stat(path, &sb) == 0)
                size = (uint64_t)sb.st_size;
            pthread_rwlock_wrlock(&n->fsm_lock);
            int err = path == NULL ? CM_E_INTERNAL : n->fsm.restore(n->fsm.ctx, path, size);
            pthread_rwlock_unlock(&n->fsm_lock);
            if (err != 0) {
                LOG_ERROR("raft: restoring snapshot %" PRIu64 " failed (%s); this master stops",
                          n->install_index, cm_strerror(err));
                abort();
            }
            free(n->snap_path);
            n->snap_path = path;
            it->u.persisted.path = NULL;
            waiters_complete(n, n->install_index, 0, CM_E_UNAVAILABLE, NULL, 0);
            n->applied = n->install_index;
            n->applied_term = n->install_term;
            n->applied_conf = n->install_conf;
            n->install_seq = 0;
            pthread_mutex_lock(&n->smu);
            n->status.snapshots_installed++;
            pthread_mutex_unlock(&n->smu);
            LOG_INFO("raft: installed snapshot at index %" PRIu64 " (%" PRIu64 " bytes)",
                     n->install_index, size);
        }
        free(it->u.persisted.path);
        ev.type = RAFT_EV_PERSISTED;
        ev.u.persisted.seq = it->u.persisted.seq;
        step(n, &ev, &u, NULL);
        if (n->n_ready > 0)
            ready_fire(n);
        break;
    case IT_SNAPSHOT_DONE:
        n->snapshot_running = false;
        if (it->u.snap.err != 0) {
            LOG_WARN("raft: saving snapshot failed: %s", cm_strerror(it->u.snap.err));
            break;
        }
        free(n->snap_path);
        n->snap_path = it->u.snap.path;
        pthread_mutex_lock(&n->smu);
        n->status.snapshots_taken++;
        pthread_mutex_unlock(&n->smu);
        LOG_INFO("raft: snapshot at index %" PRIu64 " saved (%" PRIu64 " bytes)", it->u.snap.index,
                 it->u.snap.size);
        ev.type = RAFT_EV_SNAPSHOT_TAKEN;
        ev.u.snapshot_taken.index = it->u.snap.index;
        ev.u.snapshot_taken.term = it->u.snap.term;
        ev.u.snapshot_taken.size = it->u.snap.size;
        step(n, &ev, &u, NULL);
        break;
    case IT_TRANSFER:
        ev.type = RAFT_EV_TRANSFER;
        ev.u.transfer.target = it->u.admin.target;
        step(n, &ev, &u, &rc);
        if (rc != 0) {
            it->u.admin.cb(it->u.admin.arg, map_raft_err(rc), NULL, 0);
        } else {
            if (n->transfer.cb != NULL)
                n->transfer.cb(n->transfer.arg, CM_E_CANCELED, NULL, 0);
            n->transfer.cb = it->u.admin.cb;
            n->transfer.arg = it->u.admin.arg;
            n->transfer.target = it->u.admin.target; /* 0: any other node will do */
            n->transfer.deadline = now_ms() + 2 * n->cfg.raft.election_timeout_max;
        }
        break;
    case IT_CONF: {
        ev.type = RAFT_EV_CONF_CHANGE;
        ev.u.conf_change.op = (uint8_t)it->u.admin.op;
        ev.u.conf_change.id = it->u.admin.target;
        ev.u.conf_change.addr = it->u.admin.addr[0] ? it->u.admin.addr : NULL;
        step(n, &ev, &u, &rc);
        if (rc == RAFT_E_BUSY) {
            /* One change at a time, and only after the leader committed in its term (thesis
             * §4.1): both pass soon, so wait rather than fail the operator's request. */
            if (it->u.admin.deadline == 0)
                it->u.admin.deadline = now_ms() + 10 * n->cfg.raft.election_timeout_max;
            if (now_ms() < it->u.admin.deadline) {
                it->next = n->conf_retry;
                n->conf_retry = it;
                it = NULL;
                break;
            }
        }
        if (rc != 0) {
            it->u.admin.cb(it->u.admin.arg, map_raft_err(rc), NULL, 0);
            break;
        }
        struct raft_status st;
        raft_get_status(n->raft, &st);
        waiter_add(n, st.last_index, st.term, conf_done, it);
        it = NULL; /* owned by the waiter now */
        break;
    }
    case IT_SYNC:
        it->u.sync.fn(it->u.sync.arg);
        pthread_mutex_lock(&n->qmu);
        *it->u.sync.done = true;
        pthread_cond_broadcast(&n->synccv);
        pthread_mutex_unlock(&n->qmu);
        break;
    }
    free(it);
}

static void *loop_main(void *arg)
{
    struct rn_node *n = arg;

    pthread_setname_np(pthread_self(), "raft-loop");
    for (;;) {
        pthread_mutex_lock(&n->qmu);
        while (n->qhead == NULL && !n->stopping) {
            raft_time now = now_ms();
            if (now >= n->next_timeout)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            raft_time wait = n->next_timeout - now;
            ts.tv_sec += (time_t)(wait / 1000);
            ts.tv_nsec += (long)(wait % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&n->qcv, &n->qmu, &ts);
        }
        struct item *list = n->qhead;
        n->qhead = n->qtail = NULL;
        n->qmsgs = 0;
        bool stop = n->stopping;
        pthread_mutex_unlock(&n->qmu);
        n->in_pass = true;
        if (stop) {
            while (list != NULL) {
                struct item *next = list->next;
                if (list->kind == IT_SYNC) {
                    process(n, list);
                } else {
                    if (list->kind == IT_PROPOSE) {
                        list->u.propose.cb(list->u.propose.arg, CM_E_UNAVAILABLE, NULL, 0);
                        free(list->u.propose.data);
                    } else if (list->kind == IT_READ) {
                        list->u.read.cb(list->u.read.arg, CM_E_UNAVAILABLE);
                    } else if (list->kind == IT_TRANSFER || list->kind == IT_CONF) {
                        list->u.admin.cb(list->u.admin.arg, CM_E_UNAVAILABLE, NULL, 0);
                    } else if (list->kind == IT_MSG) {
                        free(list->u.msg);
                    } else if (list->kind == IT_PERSISTED) {
                        free(list->u.persisted.path);
                    } else if (list->kind == IT_SNAPSHOT_DONE) {
                        free(list->u.snap.path);
                    }
                    free(list);
                }
                list = next;
            }
            break;
        }

        if (list == NULL) {
            struct raft_event ev = {.type = RAFT_EV_TICK};
            struct raft_update u;
            step(n, &ev, &u, NULL);
        }
        while (list != NULL) {
            if (list->kind == IT_PROPOSE) {
                list = propose_batch(n, list);
                continue;
            }
            struct item *next = list->next;
            process(n, list);
            list = next;
        }
        if (n->conf_retry != NULL) {
            struct item *retry = n->conf_retry;
            n->conf_retry = NULL;
            while (retry != NULL) {
                struct item *next = retry->next;
                process(n, retry);
                retry = next;
            }
        }
        if (n->transfer.cb != NULL && now_ms() > n->transfer.deadline) {
            n->transfer.cb(n->transfer.arg, CM_E_TIMEOUT, NULL, 0);
            n->transfer.cb = NULL;
        }
        end_pass(n);
        update_status(n);
    }
    end_pass(n);
    return NULL;
}

/* ---- start and stop ---- */

static uint64_t random_seed(raft_id id)
{
    uint64_t seed = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &seed, sizeof(seed)) != (ssize_t)sizeof(seed))
            seed = 0;
        close(fd);
    }
    return seed ^ now_us() ^ (id * 0x9E3779B97F4A7C15ull);
}

int rn_start(const struct rn_config *cfg, const struct rn_fsm *fsm, const struct rn_transport *tr,
             struct rn_node **out)
{
    int rc;
    struct rs_loaded loaded = {0};
    struct rn_node *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return CM_E_NOMEM;
    n->cfg = *cfg;
    n->fsm = *fsm;
    n->tr = *tr;
    pthread_mutex_init(&n->qmu, NULL);
    pthread_cond_init(&n->qcv, NULL);
    pthread_cond_init(&n->synccv, NULL);
    pthread_mutex_init(&n->jmu, NULL);
    pthread_cond_init(&n->jcv, NULL);
    pthread_mutex_init(&n->smu, NULL);
    pthread_rwlockattr_t rwa;
    pthread_rwlockattr_init(&rwa);
    /* Applying must not wait behind a stream of readers. */
    pthread_rwlockattr_setkind_np(&rwa, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&n->fsm_lock, &rwa);
    pthread_rwlockattr_destroy(&rwa);
    atomic_init(&n->lease_until, 0);
    atomic_init(&n->reads_fast, 0);

    n->store = cfg->store;
    struct raft_boot boot = {0};
    boot.conf = cfg->initial;
    if ((rc = rs_load(n->store, &boot, &loaded)) != 0)
        goto fail;
    if (loaded.snapshot_path != NULL) {
        if ((rc = fsm->restore(fsm->ctx, loaded.snapshot_path, boot.snapshot_size)) != 0) {
            LOG_ERROR("raft: restoring the snapshot %s failed: %s", loaded.snapshot_path,
                      cm_strerror(rc));
            goto fail;
        }
        n->snap_path = strdup(loaded.snapshot_path);
    }
    n->applied = boot.applied;
    n->applied_term = boot.snapshot_term;
    n->applied_conf = boot.conf;
    LOG_INFO("raft: recovered term %" PRIu64 ", vote %" PRIu64 ", snapshot %" PRIu64
             ", %u log entries",
             boot.term, boot.vote, boot.snapshot_index, boot.n_entries);

    struct raft_config rc_cfg = cfg->raft;
    rc_cfg.seed = random_seed(rc_cfg.id);
    rc = raft_new(&rc_cfg, &boot, now_ms(), &n->raft);
    rs_loaded_free(&loaded);
    if (rc != 0) {
        rc = map_raft_err(rc);
        goto fail;
    }
    n->next_timeout = now_ms();
    update_status(n);
    n->last_conf = n->status.raft.conf;
    if (n->tr.conf_changed != NULL)
        n->tr.conf_changed(n->tr.ctx, &n->last_conf);

    if (pthread_create(&n->persist_thread, NULL, persist_main, n) != 0) {
        rc = CM_E_NOMEM;
        goto fail;
    }
    n->persist_started = true;
    if (pthread_create(&n->loop_thread, NULL, loop_main, n) != 0) {
        rc = CM_E_NOMEM;
        goto fail;
    }
    n->loop_started = true;
    *out = n;
    return 0;
fail:
    rs_loaded_free(&loaded);
    rn_stop(n);
    return rc;
}

void rn_stop(struct rn_node *n)
{
    if (n == NULL)
        return;
    if (n->loop_started) {
        pthread_mutex_lock(&n->qmu);
        n->stopping = true;
        atomic_store(&n->lease_until, 0);
        pthread_cond_broadcast(&n->qcv);
        pthread_mutex_unlock(&n->qmu);
        pthread_join(n->loop_thread, NULL);
        atomic_store(&n->lease_until, 0); /* an update may have raced with the line above */
    }
    if (n->persist_started) {
        pthread_mutex_lock(&n->jmu);
        n->jstopping = true;
        pthread_cond_broadcast(&n->jcv);
        pthread_mutex_unlock(&n->jmu);
        pthread_join(n->persist_thread, NULL);
    }
    /* Whatever still waits will never be answered by Raft. */
    for (size_t i = 0; i < n->n_waiters; i++)
        n->waiters[i].cb(n->waiters[i].arg, CM_E_UNAVAILABLE, NULL, 0);
    for (size_t i = 0; i < n->n_ready; i++)
        n->ready[i].cb(n->ready[i].arg, CM_E_UNAVAILABLE);
    for (size_t i = 0; i < n->n_reads; i++)
        n->reads[i].cb(n->reads[i].arg, CM_E_UNAVAILABLE);
    if (n->transfer.cb != NULL)
        n->transfer.cb(n->transfer.arg, CM_E_UNAVAILABLE, NULL, 0);
    while (n->conf_retry != NULL) {
        struct item *it = n->conf_retry;
        n->conf_retry = it->next;
        it->u.admin.cb(it->u.admin.arg, CM_E_UNAVAILABLE, NULL, 0);
        free(it);
    }
    while (n->qhead != NULL) { /* reports posted while stopping */
        struct item *it = n->qhead;
        n->qhead = it->next;
        if (it->kind == IT_PERSISTED)
            free(it->u.persisted.path);
        else if (it->kind == IT_SNAPSHOT_DONE)
            free(it->u.snap.path);
        free(it);
    }
    while (n->jhead != NULL) {
        struct job *j = n->jhead;
        n->jhead = j->next;
        if (j->writer != NULL)
            rs_snapshot_abort(n->store, j->writer);
        job_free(j);
    }
    raft_free(n->raft);
    rs_close(n->store);
    free(n->waiters);
    free(n->ready);
    free(n->reads);
    free(n->snap_path);
    pthread_mutex_destroy(&n->qmu);
    pthread_cond_destroy(&n->qcv);
    pthread_cond_destroy(&n->synccv);
    pthread_mutex_destroy(&n->jmu);
    pthread_cond_destroy(&n->jcv);
    pthread_mutex_destroy(&n->smu);
    pthread_rwlock_destroy(&n->fsm_lock);
    free(n);
}
