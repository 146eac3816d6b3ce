/* A service's log files: bounded, rotated, and read back from the end.
 *
 * Each stream (stdout, stderr) goes to DIR/NAME.stdout (.stderr). When the file reaches
 * max_bytes it is renamed to NAME.stdout.1, replacing the previous .1, and a new file
 * begins. So a stream never takes more than 2 x max_bytes on disk and always keeps at
 * least its last max_bytes. */
#ifndef PYRO_SERVICE_LOG_H
#define PYRO_SERVICE_LOG_H

#include "request.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pyro_service_log {
    int fd;              /* the current file; -1 once closed */
    char path[PATH_MAX]; /* the current file; path + ".1" is the rotated one */
    uint64_t size;       /* bytes in the current file */
    uint64_t max_bytes;
    /* Output was lost: a rotation replaced an older .1, or a write failed. */
    bool discarded;
    bool write_failed_logged;
};

/* Starts a stream's log at path: the file is created or truncated (0600) and an old
 * path.1 removed. A link or anything but a regular file at path is refused
 * (invalid_argument), never followed or blocked on. */
bool pyro_service_log_open(struct pyro_service_log *log, const char *path, uint64_t max_bytes,
                           struct pyro_error *e);

/* Appends data, rotating whenever the current file reaches max_bytes. A failed write
 * (a full disk) drops the bytes and marks the log discarded: the service must go on. */
void pyro_service_log_append(struct pyro_service_log *log, const uint8_t *data, size_t len);

void pyro_service_log_close(struct pyro_service_log *log);

/* Closes the log and deletes its files (path and path.1); links are removed, not
 * followed. */
void pyro_service_log_remove(struct pyro_service_log *log);

/* The last tail_lines lines of the log at path (path.1 then path), at most max_bytes of
 * them (the newest win). data is malloc'd (NULL when empty); truncated says older
 * output exists on disk that is not in data. Missing files read as empty. */
struct pyro_log_tail {
    uint8_t *data;
    size_t len;
    bool truncated;
};
bool pyro_service_log_tail(const char *path, uint64_t tail_lines, size_t max_bytes,
                           struct pyro_log_tail *out, struct pyro_error *e);

/* Where the last tail_lines (>= 1) lines of buf[0..len) begin. A final line without
 * '\n' counts as a line. */
size_t pyro_log_tail_start(const uint8_t *buf, size_t len, uint64_t tail_lines);

#endif
