/* Logging: one formatted line per call, one write(2) per line. */
#include "common/log.h"
#include "common/errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

volatile int cm_log_threshold = CM_LOG_INFO;
static char node_name[32] = "-";

void cm_log_init(const char *node, enum cm_log_level level)
{
    if (node != NULL)
        snprintf(node_name, sizeof(node_name), "%s", node);
    cm_log_threshold = level;
}

void cm_log_set_level(enum cm_log_level level)
{
    cm_log_threshold = level;
}

int cm_log_parse_level(const char *s, enum cm_log_level *out)
{
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    if (s == NULL)
        return CM_E_INVAL;
    for (int i = 0; i < 5; i++) {
        if (strcasecmp(s, names[i]) == 0) {
            *out = (enum cm_log_level)i;
            return 0;
        }
    }
    return CM_E_INVAL;
}

void cm_log_write(enum cm_log_level level, const char *file, int line, const char *fmt, ...)
{
    static const char tags[] = "DIWE";
    char buf[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    va_list ap;
    const char *base = strrchr(file, '/');

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, ".%03ldZ %c [%s] %s:%d: ",
                          ts.tv_nsec / 1000000L, tags[level < 4 ? level : 3], node_name,
                          base ? base + 1 : file, line);
    if (n >= sizeof(buf))
        n = sizeof(buf) - 1;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += (size_t)m;
    if (n > sizeof(buf) - 2)
        n = sizeof(buf) - 2; /* truncated: keep the newline */
    buf[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, n);
    (void)w;
}

uint64_t cm_log_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool cm_log_limit_pass(struct cm_log_limit *l, uint64_t now_ms, uint64_t interval_ms,
                       uint64_t *held)
{
    uint64_t next = atomic_load(&l->next_ms);

    /* Of the threads that find the time come, one moves it on and writes its line. */
    if ((next != 0 && now_ms < next) ||
        !atomic_compare_exchange_strong(&l->next_ms, &next, now_ms + interval_ms)) {
        atomic_fetch_add(&l->held, 1);
        return false;
    }
    *held = atomic_exchange(&l->held, 0);
    return true;
}
