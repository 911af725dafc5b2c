/* Logging to stderr with a level, a timestamp and the node's name. The level is checked before
 * any formatting, so a disabled debug line costs one comparison. Must not allocate. */
#ifndef DFS_COMMON_LOG_H
#define DFS_COMMON_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum cm_log_level {
    CM_LOG_DEBUG = 0,
    CM_LOG_INFO = 1,
    CM_LOG_WARN = 2,
    CM_LOG_ERROR = 3,
    CM_LOG_OFF = 4,
};

/* The process-wide threshold; read by the macros below, written only by cm_log_init and
 * cm_log_set_level. */
extern volatile int cm_log_threshold;

/* Sets the node name shown on every line (copied, at most 31 bytes) and the threshold. */
void cm_log_init(const char *node, enum cm_log_level level);
void cm_log_set_level(enum cm_log_level level);
/* Parses "debug", "info", "warn", "error" or "off"; returns 0 or CM_E_INVAL. */
int cm_log_parse_level(const char *s, enum cm_log_level *out);

/* Writes one line unconditionally; use the macros. The line is written with a single write(2)
 * so lines of concurrent threads never interleave. */
void cm_log_write(enum cm_log_level level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define CM_LOG_AT(lvl, ...)                                                                        \
    do {                                                                                           \
        if ((int)(lvl) >= cm_log_threshold)                                                        \
            cm_log_write((lvl), __FILE__, __LINE__, __VA_ARGS__);                                  \
    } while (0)

/* A line that can repeat for every request while a peer is down (a dead chunkserver named once
 * per block written) is limited per call site: the first is written, then at most one per
 * interval, preceded by how many were held back. The state of one call site (zero: nothing
 * written yet). */
struct cm_log_limit {
    _Atomic uint64_t next_ms; /* no line before this (monotonic ms); 0: none written yet */
    _Atomic uint64_t held;    /* lines held back since the last one written */
};

/* Whether a line limited by l may be written at now_ms (a monotonic clock): then *held gets how
 * many were held back since the previous one, and the next may come interval_ms later. */
bool cm_log_limit_pass(struct cm_log_limit *l, uint64_t now_ms, uint64_t interval_ms,
                       uint64_t *held);
/* CLOCK_MONOTONIC in milliseconds. */
uint64_t cm_log_now_ms(void);

#define CM_LOG_LIMITED(lvl, interval_ms, ...)                                                      \
    do {                                                                                           \
        static struct cm_log_limit cm_lim_;                                                        \
        uint64_t cm_held_;                                                                         \
        if ((int)(lvl) >= cm_log_threshold &&                                                      \
            cm_log_limit_pass(&cm_lim_, cm_log_now_ms(), (interval_ms), &cm_held_)) {              \
            if (cm_held_ > 0)                                                                      \
                cm_log_write((lvl), __FILE__, __LINE__,                                            \
                             "%llu more like the next line since the last one written",            \
                             (unsigned long long)cm_held_);                                        \
            cm_log_write((lvl), __FILE__, __LINE__, __VA_ARGS__);                                  \
        }                                                                                          \
    } while (0)

#define LOG_DEBUG(...) CM_LOG_AT(CM_LOG_DEBUG, __VA_ARGS__)
#define LOG_INFO(...)  CM_LOG_AT(CM_LOG_INFO, __VA_ARGS__)
#define LOG_WARN(...)  CM_LOG_AT(CM_LOG_WARN, __VA_ARGS__)
#define LOG_ERROR(...) CM_LOG_AT(CM_LOG_ERROR, __VA_ARGS__)
/* At most one line per interval_ms from this call site (see struct cm_log_limit). */
#define LOG_WARN_LIMITED(interval_ms, ...) CM_LOG_LIMITED(CM_LOG_WARN, interval_ms, __VA_ARGS__)

#endif
