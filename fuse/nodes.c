/* The table of inodes the kernel knows: ino -> generation, lookup count, open file. */
#include <stdlib.h>

#include "fuse/dfs_fuse.h"

struct node *fz_node_get(struct fz *z, uint64_t ino)
{
    struct node *n;

    HASH_FIND(hh, z->nodes, &ino, sizeof(ino), n);
    return n;
}

struct node *fz_node_ref(struct fz *z, uint64_t ino, uint64_t gen)
{
    struct node *n = fz_node_get(z, ino);

    if (n != NULL) {
        if (n->gen != gen && n->nopen == 0) {
            /* The masters reused the number for a new inode. The kernel counts lookups per
             * number across generations (its forgets of the old one come later), so the count
             * goes on. */
            n->gen = gen;
        }
        return n;
    }
    if ((n = calloc(1, sizeof(*n))) == NULL)
        return NULL;
    n->ino = ino;
    n->gen = gen;
    HASH_ADD(hh, z->nodes, ino, sizeof(n->ino), n);
    return n;
}

void fz_node_maybe_free(struct fz *z, struct node *n)
{
    if (n == NULL || n->nlookup > 0 || n->nopen > 0 || n->ino == DFS_ROOT_INO)
        return;
    HASH_DEL(z->nodes, n);
    free(n->hidden_name);
    free(n);
}

void fz_nodes_free(struct fz *z)
{
    struct node *n, *t;

    HASH_ITER(hh, z->nodes, n, t)
    {
        HASH_DEL(z->nodes, n);
        dfs_file_close(n->file);
        free(n->hidden_name);
        free(n);
    }
}
