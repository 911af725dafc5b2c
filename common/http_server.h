/* (being written) */
#ifndef DFS_COMMON_HTTP_SERVER_H
#define DFS_COMMON_HTTP_SERVER_H
#endif
