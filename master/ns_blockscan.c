/* The walk over the blocks files reference. */
#include "master/ns_blockscan.h"

#include <sys/stat.h>

#include "master/ns_internal.h"

int ns_scan_blocks(struct ns *ns, int (*fn)(void *arg, const struct ns_block *b), void *arg)
{
    for (uint32_t ino = 1; ino < ns->n_slots; ino++) {
        const struct ns_inode *in = &ns->inodes[ino];
        if (in->nlink == 0 || !S_ISREG(in->mode) || in->u.ext == NULL)
            continue;
        for (uint32_t k = 0; k < in->u.ext->n; k++) {
            int rc = fn(arg, &in->u.ext->e[k].block);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}
