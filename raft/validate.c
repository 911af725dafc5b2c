/* Message validation (see validate.h). */
#include "raft/validate.h"

#include "raft/configuration.h"
#include "raft/membership.h"

#define LIMIT RAFT__INDEX_LIMIT

static int check_vote(const struct raft_msg *m)
{
    const struct raft_msg_vote *v = &m->u.vote;
    if (m->term == 0 || v->last_log_index >= LIMIT || v->last_log_term > m->term ||
        (v->last_log_index == 0) != (v->last_log_term == 0)) {
        return RAFT_E_INVAL;
    }
    return 0;
}

static int check_append(const struct raft_msg *m)
{
    const struct raft_msg_append *a = &m->u.append;
    if (m->term == 0 || a->prev_index >= LIMIT || a->n_entries >= LIMIT - a->prev_index ||
        a->commit >= LIMIT || a->prev_term > m->term || (a->prev_index == 0 && a->prev_term) ||
        (a->prev_index > 0 && a->prev_term == 0) || (a->n_entries > 0 && a->entries == NULL)) {
        return RAFT_E_INVAL;
    }
    raft_term term = a->prev_term;
    for (uint32_t i = 0; i < a->n_entries; i++) {
        const struct raft_entry *e = &a->entries[i];
        /* Consecutive, terms never decreasing (paper §5.3), none newer than the leader. */
        if (e->index != a->prev_index + 1 + i || e->term < term || e->term > m->term ||
            e->term == 0 || e->type > RAFT_ENTRY_CONF || (e->len > 0 && e->data == NULL)) {
            return RAFT_E_INVAL;
        }
        if (e->type == RAFT_ENTRY_CONF) {
            struct raft_conf c;
            if (raft_conf_decode(e->data, e->len, &c) != 0) {
                return RAFT_E_INVAL;
            }
        }
        term = e->term;
    }
    return 0;
}

static int check_snapshot(const struct raft_msg *m)
{
    const struct raft_msg_snapshot *s = &m->u.snapshot;
    if (m->term == 0 || s->last_index == 0 || s->last_index >= LIMIT || s->last_term == 0 ||
        s->last_term > m->term || s->offset > s->size || s->len > s->size - s->offset ||
        (s->len > 0 && s->data == NULL) || s->done != (s->offset + s->len == s->size) ||
        s->conf == NULL || raft__conf_check(s->conf) != 0 || raft__conf_voters(s->conf) == 0) {
        return RAFT_E_INVAL;
    }
    return 0;
}

int raft__validate_msg(const struct raft *r, const struct raft_msg *m)
{
    if (m == NULL || m->from == 0 || m->from == r->id || m->to != r->id || m->term >= LIMIT) {
        return RAFT_E_INVAL;
    }
    switch (m->type) {
    case RAFT_MSG_VOTE:
        return check_vote(m);
    case RAFT_MSG_APPEND:
        return check_append(m);
    case RAFT_MSG_SNAPSHOT:
        return check_snapshot(m);
    case RAFT_MSG_TIMEOUT_NOW:
        return m->term == 0 ? RAFT_E_INVAL : 0;
    case RAFT_MSG_APPEND_RESP:
        if (m->u.append_resp.match_index >= LIMIT || m->u.append_resp.conflict_index >= LIMIT ||
            m->u.append_resp.last_index >= LIMIT) {
            return RAFT_E_INVAL;
        }
        /* fall through */
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_SNAPSHOT_RESP:
    case RAFT_MSG_READ_INDEX:
        /* Answers and requests to a leader come from members of the configuration; requests
         * from leaders and candidates are taken from anyone (they may know a newer one). */
        return raft__conf_has(raft__conf(r), m->from) || raft__pr_find(r, m->from) != NULL
                   ? 0
                   : RAFT_E_INVAL;
    case RAFT_MSG_READ_INDEX_RESP:
        return 0;
    default:
        return RAFT_E_INVAL;
    }
}
