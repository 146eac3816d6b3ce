#include "sys.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int64_t pyro_now_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        LOG_ERRNO("clock_gettime(CLOCK_MONOTONIC)");
        return 0;
    }
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int pyro_set_nonblock(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        return -1;
    if (flags & O_NONBLOCK)
        return 0;
    return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

void pyro_close(int *fd)
{
    if (*fd < 0)
        return;
    if (close(*fd) != 0 && errno != EINTR)
        LOG_ERRNO("close(%d)", *fd);
    *fd = -1;
}

bool pyro_write_queued(int fd, uint8_t *queue, size_t *len)
{
    size_t off = 0;
    bool ok = true;
    while (off < *len) {
        ssize_t n = write(fd, queue + off, *len - off);
        if (n > 0) {
            off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            break;
        } else {
            ok = false;
            break;
        }
    }
    if (off > 0) {
        memmove(queue, queue + off, *len - off); /* memmove leaves errno as the write set it */
        *len -= off;
    }
    return ok;
}

void pyro_ensure_stdio(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0)
            continue;
        int opened = open("/dev/console", O_RDWR | O_NOCTTY);
        if (opened < 0)
            opened = open("/dev/null", O_RDWR | O_NOCTTY);
        if (opened < 0)
            return;
        if (opened != fd) {
            /* open() returns the lowest free number, so this only happens when a lower
             * descriptor was closed meanwhile; move it into place. */
            if (dup2(opened, fd) < 0)
                return;
            close(opened);
        }
    }
}

int pyro_mkdir_p(const char *path, unsigned mode)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, mode) != 0 && errno != EEXIST)
            return -1;
        buf[i] = saved;
    }
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}
