/* Membership changes (see membership.h). */
#include "raft/membership.h"

#include <stdlib.h>
#include <string.h>

#include "raft/configuration.h"
#include "raft/convert.h"
#include "raft/replication.h"
#include "raft/transfer.h"
#include "raft/update.h"

bool raft__removed(const struct raft *r)
{
    const struct raft_conf *c = raft__conf(r);
    return c->n > 0 && !raft__conf_has(c, r->id);
}

bool raft__can_campaign(const struct raft *r)
{
    return raft__conf_is_voter(raft__conf(r), r->id);
}

int raft__conf_init(struct raft *r, raft_index index, const struct raft_conf *c)
{
    if (raft__grow((void **)&r->confs, &r->cap_confs, 1, sizeof *r->confs) != 0) {
        return RAFT_E_NOMEM;
    }
    r->confs[0].index = index;
    r->confs[0].conf = *c;
    r->n_confs = 1;
    return 0;
}

int raft__conf_reserve(struct raft *r, uint32_t more)
{
    return raft__grow((void **)&r->confs, &r->cap_confs, r->n_confs + more, sizeof *r->confs);
}

/* The configuration in effect changed: the leader tracks exactly its members. */
static void conf_changed(struct raft *r)
{
    if (r->role != RAFT_LEADER) {
        return;
    }
    raft__progress_sync(r, false);
    if (r->transfer_target != 0 && !raft__conf_is_voter(raft__conf(r), r->transfer_target)) {
        raft__transfer_clear(r);
    }
}

void raft__conf_appended(struct raft *r, raft_index index, const struct raft_conf *c)
{
    struct raft__conf_rec *rec = &r->confs[r->n_confs++];
    rec->index = index;
    rec->conf = *c;
    conf_changed(r);
}

void raft__conf_truncated(struct raft *r, raft_index from)
{
    uint32_t n = r->n_confs;
    while (r->n_confs > 1 && r->confs[r->n_confs - 1].index >= from) {
        r->n_confs--;
    }
    if (n != r->n_confs) {
        conf_changed(r);
    }
}

void raft__conf_compacted(struct raft *r, raft_index index)
{
    uint32_t k = 0;
    while (k + 1 < r->n_confs && r->confs[k + 1].index <= index) {
        k++;
    }
    if (k > 0) {
        memmove(r->confs, r->confs + k, (r->n_confs - k) * sizeof *r->confs);
        r->n_confs -= k;
    }
}

void raft__conf_installed(struct raft *r, raft_index index, const struct raft_conf *c,
                          bool keep_log)
{
    uint32_t k = 0;
    if (keep_log) {
        while (k < r->n_confs && r->confs[k].index <= index) {
            k++;
        }
    } else {
        k = r->n_confs;
    }
    /* Keep the records after the snapshot; the snapshot's configuration becomes the base. */
    uint32_t rest = r->n_confs - k;
    memmove(r->confs + 1, r->confs + k, rest * sizeof *r->confs);
    r->confs[0].index = index;
    r->confs[0].conf = *c;
    r->n_confs = 1 + rest;
    conf_changed(r);
}

const struct raft_conf *raft__conf_at(const struct raft *r, raft_index index)
{
    uint32_t i = r->n_confs - 1;
    while (i > 0 && r->confs[i].index > index) {
        i--;
    }
    return &r->confs[i].conf;
}

struct raft__progress *raft__pr_find(const struct raft *r, raft_id id)
{
    for (uint32_t i = 0; i < RAFT_MAX_NODES; i++) {
        if (r->prs[i].id == id && id != 0) {
            return (struct raft__progress *)&r->prs[i];
        }
    }
    return NULL;
}

/* Adds a progress slot for id unless it has one. */
static void track(struct raft *r, raft_id id, bool voter, bool leaving, raft_index next)
{
    struct raft__progress *pr = raft__pr_find(r, id);
    if (pr != NULL) {
        pr->voter = voter;
        pr->leaving = leaving;
        return;
    }
    for (uint32_t i = 0; i < RAFT_MAX_NODES; i++) {
        if (r->prs[i].id == 0) {
            raft__pr_init(&r->prs[i], id, voter, next, r->now,
                          r->infl_pool + (size_t)i * r->infl_cap, r->infl_cap);
            r->prs[i].leaving = leaving;
            return;
        }
    }
}

void raft__progress_sync(struct raft *r, bool reset)
{
    const struct raft_conf *c = raft__conf(r);
    /* Nodes an uncommitted configuration removes still get the log, so that they learn of
     * their removal (and stop campaigning); they count for nothing. */
    const struct raft_conf *old = raft__conf_at(r, r->commit);
    raft_index next = raft__log_last(&r->log) + 1;
    for (uint32_t i = 0; i < RAFT_MAX_NODES; i++) {
        struct raft__progress *pr = &r->prs[i];
        if (reset || (pr->id != 0 && !raft__conf_has(c, pr->id) && !raft__conf_has(old, pr->id))) {
            pr->id = 0;
        }
    }
    for (uint32_t k = 0; k < c->n; k++) {
        if (c->nodes[k].id != r->id) {
            track(r, c->nodes[k].id, c->nodes[k].voter, false, next);
        }
    }
    for (uint32_t k = 0; k < old->n; k++) {
        if (old->nodes[k].id != r->id && !raft__conf_has(c, old->nodes[k].id)) {
            track(r, old->nodes[k].id, false, true, next);
        }
    }
}

/* Thesis §4.1: one change at a time, and only once this leader committed an entry of its
 * term (so no change of an earlier leader is still pending unseen, thesis §4.1 bug fix). */
static bool change_allowed(const struct raft *r)
{
    return raft__conf_index(r) <= r->commit && r->commit >= r->term_start;
}

static int propose_conf(struct raft *r, const struct raft_conf *c)
{
    uint8_t buf[2 + RAFT_MAX_NODES * (10 + RAFT_ADDR_MAX)];
    size_t len = raft_conf_encode(c, buf, sizeof buf);
    if (len == 0) {
        return RAFT_E_INVAL;
    }
    void *data = malloc(len);
    if (data == NULL) {
        return RAFT_E_NOMEM;
    }
    memcpy(data, buf, len);
    int rv = raft__leader_append(r, RAFT_ENTRY_CONF, (uint32_t)len, data);
    if (rv != 0) {
        free(data);
        return rv;
    }
    raft__replicate_all(r, false);
    raft__maybe_commit(r);
    return 0;
}

int raft__conf_change(struct raft *r, uint8_t op, raft_id id, const char *addr)
{
    if (raft__removed(r)) {
        return RAFT_E_SHUTDOWN;
    }
    if (r->role != RAFT_LEADER) {
        return RAFT_E_NOT_LEADER;
    }
    if (r->transfer_target != 0) {
        return RAFT_E_BUSY;
    }
    struct raft_conf c = *raft__conf(r);
    int pos = id != 0 ? raft__conf_pos(&c, id) : -1;
    switch (op) {
    case RAFT_CONF_ADD: {
        size_t len = addr != NULL ? strnlen(addr, RAFT_ADDR_MAX) : 0;
        if (id == 0 || pos >= 0 || c.n >= RAFT_MAX_NODES || len >= RAFT_ADDR_MAX) {
            return RAFT_E_INVAL;
        }
        struct raft_node *nd = &c.nodes[c.n++];
        memset(nd, 0, sizeof *nd);
        nd->id = id;
        nd->voter = false;
        memcpy(nd->addr, addr != NULL ? addr : "", len);
        break;
    }
    case RAFT_CONF_PROMOTE:
        if (pos < 0 || c.nodes[pos].voter) {
            return RAFT_E_INVAL;
        }
        c.nodes[pos].voter = true;
        break;
    case RAFT_CONF_REMOVE:
        if (pos < 0 || (c.nodes[pos].voter && raft__conf_voters(&c) == 1)) {
            return RAFT_E_INVAL;
        }
        memmove(&c.nodes[pos], &c.nodes[pos + 1], (c.n - (uint32_t)pos - 1) * sizeof c.nodes[0]);
        c.n--;
        memset(&c.nodes[c.n], 0, sizeof c.nodes[0]);
        break;
    default:
        return RAFT_E_INVAL;
    }
    if (!change_allowed(r)) {
        return RAFT_E_BUSY;
    }
    return propose_conf(r, &c);
}

void raft__maybe_promote(struct raft *r)
{
    if (r->role != RAFT_LEADER || r->transfer_target != 0 || !change_allowed(r) ||
        raft__removed(r)) {
        return;
    }
    const struct raft_conf *c = raft__conf(r);
    for (uint32_t k = 0; k < c->n; k++) {
        const struct raft_node *nd = &c->nodes[k];
        struct raft__progress *pr = nd->voter ? NULL : raft__pr_find(r, nd->id);
        /* Thesis §4.2.1: caught up once it holds everything committed at this check. */
        if (pr != NULL && pr->match >= r->commit) {
            struct raft_conf next = *c;
            next.nodes[k].voter = true;
            propose_conf(r, &next);
            return;
        }
    }
}

void raft__membership_on_commit(struct raft *r, raft_index old_commit)
{
    raft_index ci = raft__conf_index(r);
    if (r->role != RAFT_LEADER || ci > r->commit || ci <= old_commit) {
        return;
    }
    /* The configuration in effect just committed: stop tracking the nodes it removed. */
    raft__progress_sync(r, false);
    if (!raft__removed(r)) {
        return;
    }
    /* Thesis §4.2.2: a leader removed by the configuration it just committed steps down. Tell
     * the followers the commit index first, and hand over to the most up-to-date voter. */
    raft__heartbeat(r);
    raft__transfer_handoff(r);
    raft__become_follower(r, r->term, 0);
}
