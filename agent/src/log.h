/* Logging to stderr, which is the console when the agent runs as PID 1.
 *
 * Every macro saves and restores errno, so a log line between a failing syscall and
 * the code that inspects errno cannot change the outcome. */
#ifndef PYRO_LOG_H
#define PYRO_LOG_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

extern bool pyro_log_verbose;

/* Formats one line and writes it with a single write(2) so lines from the agent and
 * from children that share the console do not interleave mid-line. */
__attribute__((format(printf, 3, 4))) static inline void
pyro_log_write(const char *level, int err, const char *fmt, ...)
{
    char line[1024];
    int n = snprintf(line, sizeof line, "pyro-agent: %s", level);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    va_list ap;
    va_start(ap, fmt);
    n = vsnprintf(line + len, sizeof line - len, fmt, ap);
    va_end(ap);
    if (n > 0)
        len += (size_t)n < sizeof line - len ? (size_t)n : sizeof line - len - 1;
    if (err != 0 && len < sizeof line - 1) {
        n = snprintf(line + len, sizeof line - len, ": %s", strerror(err));
        if (n > 0)
            len += (size_t)n < sizeof line - len ? (size_t)n : sizeof line - len - 1;
    }
    if (len >= sizeof line - 1)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w;
    do
        w = write(STDERR_FILENO, line, len);
    while (w < 0 && errno == EINTR);
}

#define PYRO_LOG_(level, err, ...)                                                             \
    do {                                                                                       \
        int pyro_saved_errno_ = errno;                                                         \
        pyro_log_write(level, err, __VA_ARGS__);                                               \
        errno = pyro_saved_errno_;                                                             \
    } while (0)

#define LOG_INFO(...) PYRO_LOG_("", 0, __VA_ARGS__)
#define LOG_WARN(...) PYRO_LOG_("warning: ", 0, __VA_ARGS__)
#define LOG_ERROR(...) PYRO_LOG_("error: ", 0, __VA_ARGS__)
/* Appends ": strerror(errno)" using errno as it was when the macro was reached. */
#define LOG_ERRNO(...) PYRO_LOG_("error: ", errno, __VA_ARGS__)
#define LOG_DEBUG(...)                                                                         \
    do {                                                                                       \
        if (pyro_log_verbose)                                                                  \
            PYRO_LOG_("debug: ", 0, __VA_ARGS__);                                              \
    } while (0)

#endif
