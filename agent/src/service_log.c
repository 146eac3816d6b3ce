#include "service_log.h"

#include "frame.h"
#include "log.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* O_NOFOLLOW: a link planted at a log's name is refused rather than followed.
 * O_NONBLOCK: a FIFO planted there would block the open (and the agent) forever; it is
 * refused as not a regular file, and only a regular file is truncated. */
#define LOG_OPEN_FLAGS (O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)

static void rotated_path(const char *path, char *out, size_t cap)
{
    snprintf(out, cap, "%s.1", path);
}

/* The empty regular file at path, created if missing; -1 with errno (EINVAL: something
 * other than a regular file of one name is there). */
static int open_log_file(const char *path)
{
    struct stat st;
    int fd = open(path, LOG_OPEN_FLAGS, 0600);
    /* ENXIO: a FIFO nobody reads, or a device without a driver; ELOOP: a symbolic link;
     * EISDIR: a directory. */
    if (fd < 0 && (errno == ENXIO || errno == ELOOP || errno == EISDIR))
        errno = EINVAL;
    if (fd < 0)
        return -1;
    /* A second name (a hard link) would have the truncation and the output land in a
     * file the log does not own. */
    int err = fstat(fd, &st) != 0                        ? errno
              : !S_ISREG(st.st_mode) || st.st_nlink != 1 ? EINVAL
                                                         : 0;
    if (err == 0 && ftruncate(fd, 0) != 0)
        err = errno;
    if (err != 0) {
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

bool pyro_service_log_open(struct pyro_service_log *log, const char *path, uint64_t max_bytes,
                           struct pyro_error *e)
{
    char old[PATH_MAX + 2];
    *log = (struct pyro_service_log){.fd = -1, .max_bytes = max_bytes};
    if (strlen(path) >= sizeof log->path) {
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0, "service log path is too long");
        return false;
    }
    strcpy(log->path, path);
    rotated_path(path, old, sizeof old);
    if (unlink(old) != 0 && errno != ENOENT)
        LOG_ERRNO("remove %s", old);
    log->fd = open_log_file(path);
    if (log->fd < 0 && errno == EINVAL) {
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, errno,
                       "service log %.256s is not a regular file of its own (a link, a "
                       "FIFO, a directory...); remove it",
                       path);
        return false;
    }
    if (log->fd < 0) {
        pyro_error_set(e, PYRO_ERR_INTERNAL, errno, "service log %.256s: %s", path,
                       strerror(errno));
        return false;
    }
    return true;
}

/* The current file is full: it becomes .1 and a new one begins. */
static void rotate(struct pyro_service_log *log)
{
    char old[PATH_MAX + 2];
    struct stat st;
    rotated_path(log->path, old, sizeof old);
    if (lstat(old, &st) == 0)
        log->discarded = true;
    pyro_close(&log->fd);
    if (rename(log->path, old) != 0)
        LOG_ERRNO("rotate %s", log->path);
    log->fd = open_log_file(log->path);
    if (log->fd < 0)
        LOG_ERRNO("open %s", log->path);
    log->size = 0;
}

static void write_failed(struct pyro_service_log *log)
{
    log->discarded = true;
    if (!log->write_failed_logged)
        LOG_ERRNO("write %s (further failures not logged)", log->path);
    log->write_failed_logged = true;
}

void pyro_service_log_append(struct pyro_service_log *log, const uint8_t *data, size_t len)
{
    while (len > 0) {
        if (log->fd < 0) {
            write_failed(log);
            return;
        }
        uint64_t room = log->max_bytes - log->size;
        size_t n = len < room ? len : (size_t)room;
        if (pyro_write_all(log->fd, data, n) != 0) {
            write_failed(log);
            return;
        }
        log->size += n;
        data += n;
        len -= n;
        if (log->size >= log->max_bytes)
            rotate(log);
    }
}

void pyro_service_log_close(struct pyro_service_log *log)
{
    pyro_close(&log->fd);
}

void pyro_service_log_remove(struct pyro_service_log *log)
{
    char old[PATH_MAX + 2];
    pyro_close(&log->fd);
    if (log->path[0] == '\0')
        return;
    rotated_path(log->path, old, sizeof old);
    if (unlink(log->path) != 0 && errno != ENOENT)
        LOG_ERRNO("remove %s", log->path);
    if (unlink(old) != 0 && errno != ENOENT)
        LOG_ERRNO("remove %s", old);
}

size_t pyro_log_tail_start(const uint8_t *buf, size_t len, uint64_t tail_lines)
{
    size_t end = len > 0 && buf[len - 1] == '\n' ? len - 1 : len;
    uint64_t seen = 0;
    for (size_t i = end; i > 0; i--)
        if (buf[i - 1] == '\n' && ++seen == tail_lines)
            return i;
    return 0;
}

/* Reads the last want bytes of the file at path into buf (fewer if it shrank
 * meanwhile); returns how many, or -1 with errno. A missing file is empty. */
static ssize_t read_end(const char *path, uint8_t *buf, size_t want)
{
    if (want == 0)
        return 0;
    /* O_NONBLOCK: a FIFO swapped in since the caller's lstat must not block. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return 0; /* not a log any more: read as empty, like file_size does */
    }
    uint64_t size = (uint64_t)st.st_size;
    size_t n = size < want ? (size_t)size : want;
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, (off_t)(size - n + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    return (ssize_t)got;
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
}

bool pyro_service_log_tail(const char *path, uint64_t tail_lines, size_t max_bytes,
                           struct pyro_log_tail *out, struct pyro_error *e)
{
    char old[PATH_MAX + 2];
    rotated_path(path, old, sizeof old);
    *out = (struct pyro_log_tail){0};
    uint64_t old_size = file_size(old), cur_size = file_size(path);
    uint64_t total = old_size + cur_size;
    size_t want = total < max_bytes ? (size_t)total : max_bytes;
    if (want == 0)
        return true;
    uint8_t *buf = malloc(want);
    if (!buf) {
        pyro_error_set(e, PYRO_ERR_INTERNAL, ENOMEM, "service_logs: out of memory");
        return false;
    }
    /* The newest bytes are at the end of the current file, the older ones in .1. */
    size_t from_cur = cur_size < want ? (size_t)cur_size : want;
    ssize_t older = read_end(old, buf, want - from_cur);
    ssize_t cur = older < 0 ? -1 : read_end(path, buf + older, from_cur);
    if (cur < 0) {
        pyro_error_set(e, PYRO_ERR_INTERNAL, errno, "service_logs: read %.256s: %s", path,
                       strerror(errno));
        free(buf);
        return false;
    }
    size_t len = (size_t)older + (size_t)cur;
    size_t start = pyro_log_tail_start(buf, len, tail_lines);
    memmove(buf, buf + start, len - start);
    out->data = buf;
    out->len = len - start;
    out->truncated = total > out->len;
    return true;
}
