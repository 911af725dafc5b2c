/* Logging to stderr with a level, a timestamp and the node's name. The level is checked before
 * any formatting, so a disabled debug line costs one comparison. Must not allocate. */
#ifndef DFS_COMMON_LOG_H
#define DFS_COMMON_LOG_H

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

#define LOG_DEBUG(...) CM_LOG_AT(CM_LOG_DEBUG, __VA_ARGS__)
#define LOG_INFO(...)  CM_LOG_AT(CM_LOG_INFO, __VA_ARGS__)
#define LOG_WARN(...)  CM_LOG_AT(CM_LOG_WARN, __VA_ARGS__)
#define LOG_ERROR(...) CM_LOG_AT(CM_LOG_ERROR, __VA_ARGS__)

#endif
