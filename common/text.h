/* A growing text buffer for building answers such as Prometheus /metrics pages. No I/O. */
#ifndef DFS_COMMON_TEXT_H
#define DFS_COMMON_TEXT_H

#include <stddef.h>

/* Start zeroed: struct cm_text t = {0}. buf is NUL-terminated once anything was added. */
struct cm_text {
    char *buf; /* malloc'd; free with cm_text_free */
    size_t len;
    size_t cap;
    int err; /* 0, or the first failure (CM_E_NOMEM, CM_E_INTERNAL): later appends do nothing */
};

/* Appends formatted text, growing the buffer. */
void cm_text_printf(struct cm_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cm_text_free(struct cm_text *t);

#endif
