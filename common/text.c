/* The growing text buffer. */
#include "common/text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/errors.h"

void cm_text_printf(struct cm_text *t, const char *fmt, ...)
{
    if (t->err != 0)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = t->buf ? vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap)
                       : vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->err = CM_E_INTERNAL;
            return;
        }
        if (t->buf != NULL && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap * 2 : 4096;
        while (cap - t->len <= (size_t)n)
            cap *= 2;
        char *nb = realloc(t->buf, cap);
        if (nb == NULL) {
            t->err = CM_E_NOMEM;
            return;
        }
        t->buf = nb;
        t->cap = cap;
    }
}

void cm_text_free(struct cm_text *t)
{
    free(t->buf);
    t->buf = NULL;
    t->len = t->cap = 0;
}
