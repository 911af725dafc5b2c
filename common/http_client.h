/* (being written) */
#ifndef DFS_COMMON_HTTP_CLIENT_H
#define DFS_COMMON_HTTP_CLIENT_H
#endif
