/* (being written) */
#ifndef DFS_COMMON_RESOLVER_H
#define DFS_COMMON_RESOLVER_H
#endif
