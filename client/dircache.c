/* The directory cache (dircache.h): per directory a hash of name -> attributes, valid for ttl_ms
 * after its fetch started; per changed inode the stamp of its last change. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uthash.h>

#include "client/dircache.h"

#define DIRS_PRUNE_AT    4096 /* directories remembered before idle ones are pruned */
#define CHANGED_PRUNE_AT 4096 /* changed inodes remembered before old ones are pruned */
#define BACKOFF_TTLS     10   /* after a failed fetch: name by name for this many ttl */
#define PAID_RATIO       64   /* a listing answering 1/64 of its size was worth fetching */
#define OPS_MAX          4096 /* changes logged while a listing is fetched */

struct dc_entry {
    struct dfs_attr attr;
    uint64_t stamp; /* when its attributes were asked for (or reported) */
    uint64_t ms;    /* and at what time */
    int unknown;    /* a change made its state unknown: ask */
    UT_hash_handle hh;
    char name[]; /* key */
};

enum op_kind { OP_ADD, OP_REMOVE, OP_UNKNOWN, OP_DROP };

struct dc_op { /* a change made while the listing was fetched */
    int kind;  /* enum op_kind */
    char *name;
    struct dfs_attr attr;
    uint64_t stamp, ms;
};

struct dc_dir {
    uint64_t ino; /* key */
    uint64_t gen;
    int listed;         /* entries is the whole directory, as of stamp / ms */
    uint64_t stamp, ms; /* of the listing's fetch */
    uint64_t changed;   /* stamp of the last change reported in it */
    int fetching;       /* a DC_FETCH is out */
    struct dc_op *ops;  /* changes made meanwhile */
    size_t nops, capops;
    int spoiled;         /* one of them cannot be replayed: the listing is not kept */
    uint64_t window_ms;  /* lookups without a listing: since */
    unsigned lookups;    /* how many */
    uint64_t hits;       /* lookups the listing answered */
    uint64_t backoff_ms; /* no fetch before */
    /* After a listing that did not pay: lookups within one ttl that end the back-off early (a
     * listing would answer as many: it would pay); 0 for a back-off after a failed fetch. */
    size_t pays_at;
    struct dc_entry *entries;
    size_t n;
    UT_hash_handle hh;
};

struct dc_changed {
    uint64_t ino; /* key */
    uint64_t stamp, ms;
    UT_hash_handle hh;
};

struct dircache {
    uint64_t ttl_ms;
    size_t max_dir, max_total;
    uint64_t stamp; /* the last one given */
    /* Stamp of the last unlink or rename through this client: the inode it removed or replaced
     * may have other names, cached with one link too many, so files with several links cached
     * before it are asked for again. */
    uint64_t links;
    size_t total; /* entries in all listings */
    struct dc_dir *dirs;
    size_t dirs_prune_at;
    struct dc_changed *changed;
    size_t changed_prune_at;
    struct dc_stats st;
};

struct dircache *dc_new(uint64_t ttl_ms, size_t max_dir, size_t max_total)
{
    struct dircache *dc = calloc(1, sizeof(*dc));

    if (dc == NULL)
        return NULL;
    dc->ttl_ms = ttl_ms;
    dc->max_dir = max_dir;
    dc->max_total = max_total;
    dc->dirs_prune_at = DIRS_PRUNE_AT;
    dc->changed_prune_at = CHANGED_PRUNE_AT;
    return dc;
}

static void apply(struct dircache *dc, struct dc_dir *d, enum op_kind k, const char *name,
                  const struct dfs_attr *a, uint64_t stamp, uint64_t now);

static void ops_clear(struct dc_dir *d)
{
    for (size_t i = 0; i < d->nops; i++)
        free(d->ops[i].name);
    free(d->ops);
    d->ops = NULL;
    d->nops = d->capops = 0;
    d->spoiled = 0;
}

static void unlist(struct dircache *dc, struct dc_dir *d)
{
    struct dc_entry *e, *t;

    HASH_ITER(hh, d->entries, e, t)
    {
        HASH_DEL(d->entries, e);
        free(e);
    }
    dc->total -= d->n;
    d->n = 0;
    d->listed = 0;
}

void dc_free(struct dircache *dc)
{
    struct dc_dir *d, *td;
    struct dc_changed *c, *tc;

    if (dc == NULL)
        return;
    HASH_ITER(hh, dc->dirs, d, td)
    {
        unlist(dc, d);
        ops_clear(d);
        HASH_DEL(dc->dirs, d);
        free(d);
    }
    HASH_ITER(hh, dc->changed, c, tc)
    {
        HASH_DEL(dc->changed, c);
        free(c);
    }
    free(dc);
}

static int fresh(const struct dircache *dc, const struct dc_dir *d, uint64_t now)
{
    return d->listed && now < d->ms + dc->ttl_ms;
}

/* Directories without a listing, no fetch out and no recent lookups are forgotten. */
static void prune_dirs(struct dircache *dc, uint64_t now)
{
    struct dc_dir *d, *t;

    HASH_ITER(hh, dc->dirs, d, t)
    {
        if (d->listed && !fresh(dc, d, now))
            unlist(dc, d);
        if (!d->listed && !d->fetching && now >= d->window_ms + dc->ttl_ms &&
            now >= d->backoff_ms) {
            HASH_DEL(dc->dirs, d);
            free(d);
        }
    }
    dc->dirs_prune_at = HASH_COUNT(dc->dirs) * 2;
    if (dc->dirs_prune_at < DIRS_PRUNE_AT)
        dc->dirs_prune_at = DIRS_PRUNE_AT;
}

/* The directory's record (created when create is set; NULL when absent or out of memory). A new
 * generation of the inode number starts afresh. */
static struct dc_dir *dir_of(struct dircache *dc, struct dfs_fh fh, int create, uint64_t now)
{
    struct dc_dir *d;

    HASH_FIND(hh, dc->dirs, &fh.ino, sizeof(fh.ino), d);
    if (d != NULL && d->gen != fh.gen) {
        unlist(dc, d);
        ops_clear(d);
        HASH_DEL(dc->dirs, d);
        free(d);
        d = NULL;
    }
    if (d != NULL || !create)
        return d;
    if (HASH_COUNT(dc->dirs) >= dc->dirs_prune_at)
        prune_dirs(dc, now);
    if ((d = calloc(1, sizeof(*d))) == NULL)
        return NULL;
    d->ino = fh.ino;
    d->gen = fh.gen;
    HASH_ADD(hh, dc->dirs, ino, sizeof(d->ino), d);
    return d;
}

static struct dc_entry *entry_of(struct dc_dir *d, const char *name)
{
    struct dc_entry *e;

    HASH_FIND_STR(d->entries, name, e);
    return e;
}

static void entry_del(struct dircache *dc, struct dc_dir *d, struct dc_entry *e)
{
    HASH_DEL(d->entries, e);
    free(e);
    d->n--;
    dc->total--;
}

/* Adds or replaces name; 0 when out of memory or over the limits (the caller unlists). */
static int entry_put(struct dircache *dc, struct dc_dir *d, const char *name,
                     const struct dfs_attr *a, uint64_t stamp, uint64_t ms, int unknown)
{
    struct dc_entry *e = entry_of(d, name);
    size_t len = strlen(name);

    if (e == NULL) {
        if (d->n >= dc->max_dir || dc->total >= dc->max_total ||
            (e = calloc(1, sizeof(*e) + len + 1)) == NULL)
            return 0;
        memcpy(e->name, name, len + 1);
        HASH_ADD_KEYPTR(hh, d->entries, e->name, len, e);
        d->n++;
        dc->total++;
    }
    if (a != NULL)
        e->attr = *a;
    e->stamp = stamp;
    e->ms = ms;
    e->unknown = unknown;
    return 1;
}

/* Whether a change to ino was reported after stamp. */
static int changed_since(const struct dircache *dc, uint64_t ino, uint64_t stamp)
{
    struct dc_changed *c;

    HASH_FIND(hh, dc->changed, &ino, sizeof(ino), c);
    return c != NULL && c->stamp > stamp;
}

enum dc_answer dc_lookup(struct dircache *dc, struct dfs_fh dir, const char *name, uint64_t now,
                         int fetch, struct dfs_attr *out, uint64_t *age_ms, uint64_t *stamp)
{
    struct dc_dir *d = dir_of(dc, dir, 1, now);
    struct dc_entry *e;

    *age_ms = 0;
    *stamp = ++dc->stamp;
    if (d == NULL) {
        dc->st.asked++;
        return DC_ASK;
    }
    if (d->listed && !fresh(dc, d, now)) {
        /* Just past its time, a listing that paid for itself is fetched again at once; one that
         * did not (a big directory, a few names in it) is not fetched for a while. Long past
         * it, this is a new start. */
        int paid = d->hits >= DC_SCAN_LOOKUPS && d->hits * PAID_RATIO >= d->n;
        int just = now < d->ms + 2 * dc->ttl_ms;
        size_t pays_at = d->n / PAID_RATIO;
        unlist(dc, d);
        d->window_ms = now;
        d->lookups = just && paid ? DC_SCAN_LOOKUPS - 1 : 0;
        if (just && !paid) {
            d->backoff_ms = now + BACKOFF_TTLS * dc->ttl_ms;
            d->pays_at = pays_at > DC_SCAN_LOOKUPS ? pays_at : DC_SCAN_LOOKUPS;
        }
    }
    if (d->listed) {
        if ((e = entry_of(d, name)) == NULL) {
            dc->st.hits++;
            dc->st.absent++;
            d->hits++;
            *age_ms = now > d->ms ? now - d->ms : 0;
            return DC_ABSENT;
        }
        if (!e->unknown && !changed_since(dc, e->attr.ino, e->stamp) &&
            (S_ISDIR(e->attr.mode) || e->attr.nlink <= 1 || e->stamp > dc->links)) {
            dc->st.hits++;
            d->hits++;
            *out = e->attr;
            *age_ms = now > e->ms ? now - e->ms : 0;
            return DC_HIT;
        }
        dc->st.asked++;
        return DC_ASK;
    }
    if (now >= d->window_ms + dc->ttl_ms) {
        d->window_ms = now;
        d->lookups = 0;
    }
    d->lookups++;
    /* A scan started in a directory backed off for a listing that did not pay: as many lookups
     * within one ttl as a listing must answer to pay end the back-off. */
    if (now < d->backoff_ms && d->pays_at > 0 && d->lookups >= d->pays_at)
        d->backoff_ms = now;
    if (fetch && d->lookups >= DC_SCAN_LOOKUPS && !d->fetching && now >= d->backoff_ms) {
        d->fetching = 1;
        d->stamp = *stamp;
        return DC_FETCH;
    }
    dc->st.asked++;
    return DC_ASK;
}

/* Room for n more entries: listings past their time go first. */
static int make_room(struct dircache *dc, size_t n, uint64_t now)
{
    struct dc_dir *d, *t;

    if (dc->total + n <= dc->max_total)
        return 1;
    HASH_ITER(hh, dc->dirs, d, t)
    {
        if (d->listed && !fresh(dc, d, now))
            unlist(dc, d);
    }
    return dc->total + n <= dc->max_total;
}

void dc_fetch_failed(struct dircache *dc, struct dfs_fh dir, uint64_t now)
{
    struct dc_dir *d = dir_of(dc, dir, 0, now);

    if (d == NULL)
        return;
    d->fetching = 0;
    d->backoff_ms = now + BACKOFF_TTLS * dc->ttl_ms;
    d->pays_at = 0;
    ops_clear(d);
}

int dc_install(struct dircache *dc, struct dfs_fh dir, uint64_t stamp, uint64_t started_ms,
               const struct dfs_dirent *e, size_t n, uint64_t now)
{
    struct dc_dir *d = dir_of(dc, dir, 0, now);
    int kept = 0;

    if (d == NULL || !d->fetching || d->stamp != stamp)
        return 0; /* the directory was forgotten or replaced meanwhile */
    d->fetching = 0;
    dc->st.fetches++;
    if (d->spoiled || n > dc->max_dir || !make_room(dc, n, now)) {
        if (!d->spoiled) {
            d->backoff_ms = now + BACKOFF_TTLS * dc->ttl_ms;
            d->pays_at = 0;
        }
        goto out;
    }
    unlist(dc, d);
    for (size_t i = 0; i < n; i++) {
        if (!entry_put(dc, d, e[i].name, &e[i].attr, stamp, started_ms, 0)) {
            unlist(dc, d);
            goto out;
        }
    }
    d->listed = 1;
    d->stamp = stamp;
    d->ms = started_ms;
    d->lookups = 0;
    d->hits = 0;
    /* The changes made while it was fetched. */
    for (size_t i = 0; i < d->nops && d->listed; i++)
        apply(dc, d, d->ops[i].kind, d->ops[i].name, &d->ops[i].attr, d->ops[i].stamp,
              d->ops[i].ms);
    kept = d->listed;
out:
    if (!kept)
        dc->st.discarded++;
    ops_clear(d);
    return kept;
}

void dc_learn(struct dircache *dc, struct dfs_fh dir, const char *name, const struct dfs_attr *a,
              uint64_t stamp, uint64_t asked_ms)
{
    struct dc_dir *d = dir_of(dc, dir, 0, asked_ms);
    struct dc_entry *e;

    /* Only into a listing older than the question, with no change in the directory since. */
    if (d == NULL || !d->listed || d->stamp > stamp || d->changed > stamp)
        return;
    e = entry_of(d, name);
    if (e != NULL && e->stamp > stamp)
        return;
    if (a == NULL) {
        if (e != NULL)
            entry_del(dc, d, e);
    } else if (!entry_put(dc, d, name, a, stamp, asked_ms, 0)) {
        unlist(dc, d);
    }
}

/* A change in a directory: applied to its listing, and logged while a listing is being fetched
 * to be applied to that too once it arrives (whether or not the fetch saw it: applying is the
 * same either way). */
static void apply(struct dircache *dc, struct dc_dir *d, enum op_kind k, const char *name,
                  const struct dfs_attr *a, uint64_t stamp, uint64_t now)
{
    struct dc_entry *e;
    int ok = 1;

    if (!d->listed)
        return;
    switch (k) {
    case OP_ADD:
        ok = entry_put(dc, d, name, a, stamp, now, 0);
        break;
    case OP_REMOVE:
        if ((e = entry_of(d, name)) != NULL) {
            /* Its other names (hard links) have one link less now. */
            if (!e->unknown)
                dc_changed(dc, e->attr.ino, now);
            entry_del(dc, d, e);
        }
        break;
    case OP_UNKNOWN:
        ok = entry_put(dc, d, name, NULL, stamp, now, 1);
        break;
    case OP_DROP:
        ok = 0;
        break;
    }
    if (!ok)
        unlist(dc, d);
}

static void change(struct dircache *dc, struct dc_dir *d, enum op_kind k, const char *name,
                   const struct dfs_attr *a, uint64_t now)
{
    uint64_t s = ++dc->stamp;
    struct dc_op *op;

    if (d == NULL)
        return;
    d->changed = s;
    apply(dc, d, k, name, a, s, now);
    if (!d->fetching || d->spoiled)
        return;
    if (k == OP_DROP || d->nops == OPS_MAX) {
        d->spoiled = 1;
        return;
    }
    if (d->nops == d->capops) {
        size_t c = d->capops ? d->capops * 2 : 16;
        struct dc_op *t = realloc(d->ops, c * sizeof(*t));
        if (t == NULL) {
            d->spoiled = 1;
            return;
        }
        d->ops = t;
        d->capops = c;
    }
    op = &d->ops[d->nops];
    if ((op->name = strdup(name)) == NULL) {
        d->spoiled = 1;
        return;
    }
    op->kind = k;
    op->stamp = s;
    op->ms = now;
    if (a != NULL)
        op->attr = *a;
    d->nops++;
}

void dc_added(struct dircache *dc, struct dfs_fh dir, const char *name, const struct dfs_attr *a,
              uint64_t now)
{
    change(dc, dir_of(dc, dir, 0, now), OP_ADD, name, a, now);
}

void dc_removed(struct dircache *dc, struct dfs_fh dir, const char *name, uint64_t now)
{
    change(dc, dir_of(dc, dir, 0, now), OP_REMOVE, name, NULL, now);
    dc->links = ++dc->stamp;
}

void dc_renamed(struct dircache *dc, struct dfs_fh sdir, const char *sname, struct dfs_fh ddir,
                const char *dname, int exchange, uint64_t now)
{
    struct dc_dir *s = dir_of(dc, sdir, 0, now), *t = dir_of(dc, ddir, 0, now);
    struct dc_entry *se = s != NULL && s->listed ? entry_of(s, sname) : NULL;
    struct dc_entry *te = t != NULL && t->listed ? entry_of(t, dname) : NULL;
    /* The source name is gone only if the destination was known to be another inode or
     * absent: a rename onto another name of the same inode changes nothing. */
    int gone = !exchange && se != NULL && !se->unknown && t != NULL && t->listed &&
               (te == NULL || (!te->unknown && te->attr.ino != se->attr.ino));

    /* The moved inode's ctime changed, and so did a replaced one's links. */
    if (se != NULL && !se->unknown)
        dc_changed(dc, se->attr.ino, now);
    if (te != NULL && !te->unknown)
        dc_changed(dc, te->attr.ino, now);
    change(dc, s, gone ? OP_REMOVE : OP_UNKNOWN, sname, NULL, now);
    change(dc, t, OP_UNKNOWN, dname, NULL, now);
    dc->links = ++dc->stamp;
}

void dc_drop(struct dircache *dc, struct dfs_fh dir, uint64_t now)
{
    change(dc, dir_of(dc, dir, 0, now), OP_DROP, "", NULL, now);
}

void dc_changed(struct dircache *dc, uint64_t ino, uint64_t now)
{
    struct dc_changed *c, *t;

    HASH_FIND(hh, dc->changed, &ino, sizeof(ino), c);
    if (c == NULL) {
        if (HASH_COUNT(dc->changed) >= dc->changed_prune_at) {
            /* A change older than ttl_ms concerns no listing still in use. */
            HASH_ITER(hh, dc->changed, c, t)
            {
                if (now >= c->ms + dc->ttl_ms) {
                    HASH_DEL(dc->changed, c);
                    free(c);
                }
            }
            dc->changed_prune_at = HASH_COUNT(dc->changed) * 2;
            if (dc->changed_prune_at < CHANGED_PRUNE_AT)
                dc->changed_prune_at = CHANGED_PRUNE_AT;
        }
        if ((c = calloc(1, sizeof(*c))) == NULL) {
            /* Without a record the change would go unseen: forget every listing instead. */
            struct dc_dir *d, *td;
            HASH_ITER(hh, dc->dirs, d, td)
            {
                if (d->listed)
                    unlist(dc, d);
            }
            return;
        }
        c->ino = ino;
        HASH_ADD(hh, dc->changed, ino, sizeof(c->ino), c);
    }
    c->stamp = ++dc->stamp;
    c->ms = now;
}

void dc_get_stats(const struct dircache *dc, struct dc_stats *out)
{
    *out = dc->st;
    out->entries = dc->total;
    out->dirs = HASH_COUNT(dc->dirs);
    out->changed = HASH_COUNT(dc->changed);
}
