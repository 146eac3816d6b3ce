#include "park.h"

#include "frame.h"
#include "init.h"
#include "log.h"
#include "sys.h"
#include "transport.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* The port may register a little after init starts; as long as the transport waits. */
#define PARK_PORT_SEARCH_MS 5000
#define PARK_RETRY_MS 5
/* virtio-blk disks; only whole disks are listed in /sys/block. */
#define PARK_DISK_PREFIX "vd"

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_nsec = ms * 1000000};
    nanosleep(&ts, NULL);
}

bool pyro_park_feed(struct pyro_park_matcher *m, uint8_t byte)
{
    static const char go[] = PYRO_PARK_GO;
    if ((char)byte == go[m->matched]) {
        m->matched++;
    } else {
        /* No proper prefix of PYRO_PARK_GO is also its suffix, so after a mismatch the
         * only partial match left is this byte starting it over. */
        m->matched = (char)byte == go[0] ? 1 : 0;
    }
    if (m->matched < sizeof go - 1)
        return false;
    m->matched = 0;
    return true;
}

/* Blocking on purpose: init has nothing else to do until the host says go. */
static int open_port(void)
{
    char dev[300];
    int64_t until_ms = pyro_now_ms() + PARK_PORT_SEARCH_MS;
    while (!pyro_transport_find_virtio_port(dev, sizeof dev)) {
        if (pyro_now_ms() >= until_ms) {
            pyro_init_error("park: no virtio-serial port named %s", PYRO_VIRTIO_SERIAL_NAME);
            return -1;
        }
        sleep_ms(PARK_RETRY_MS);
    }
    int fd = open(dev, O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        LOG_ERRNO("park: open %s", dev);
        pyro_init_error("park: open %s: %s", dev, strerror(errno));
    }
    return fd;
}

/* Reads one byte at a time so that nothing after PYRO_PARK_GO is consumed. The port
 * reads 0 bytes while no host is connected: between the template's save and a clone's
 * host connecting, that is expected, so it waits and reads again. */
static bool wait_for_go(int fd)
{
    struct pyro_park_matcher m = {0};
    for (;;) {
        uint8_t byte;
        ssize_t n = read(fd, &byte, 1);
        if (n == 1) {
            if (pyro_park_feed(&m, byte))
                return true;
        } else if (n == 0) {
            sleep_ms(PARK_RETRY_MS);
        } else if (errno != EINTR) {
            LOG_ERRNO("park: read");
            pyro_init_error("park: read: %s", strerror(errno));
            return false;
        }
    }
}

/* The kernel read the template's disks while probing them; a clone has its own state
 * disk behind the same device, so nothing cached from the template may be used. */
void pyro_park_flush_disks(const char *keep)
{
    DIR *dir = opendir("/sys/block");
    if (!dir) {
        pyro_init_error("park: opendir /sys/block: %s", strerror(errno));
        return;
    }
    struct dirent *ent;
    while ((ent = readdir(dir)) != NULL) {
        if (strncmp(ent->d_name, PARK_DISK_PREFIX, strlen(PARK_DISK_PREFIX)) != 0)
            continue;
        char dev[300];
        snprintf(dev, sizeof dev, "/dev/%s", ent->d_name);
        if (keep && strcmp(dev, keep) == 0)
            continue;
        int fd = open(dev, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || ioctl(fd, BLKFLSBUF, 0) != 0) {
            LOG_ERRNO("park: flush %s", dev);
            pyro_init_error("park: flush %s: %s", dev, strerror(errno));
        }
        if (fd >= 0)
            close(fd);
    }
    closedir(dir);
}

static bool signal_and_wait(int fd)
{
    LOG_INFO("parked: waiting for the host");
    if (pyro_write_all(fd, PYRO_PARK_SIGNAL, strlen(PYRO_PARK_SIGNAL)) != 0) {
        LOG_ERRNO("park: write");
        pyro_init_error("park: write: %s", strerror(errno));
        return false;
    }
    if (!wait_for_go(fd))
        return false;
    if (pyro_set_nonblock(fd) != 0) {
        pyro_init_error("park: O_NONBLOCK: %s", strerror(errno));
        return false;
    }
    LOG_INFO("unparked");
    return true;
}

int pyro_park(void)
{
    int fd = open_port();
    if (fd >= 0 && !signal_and_wait(fd))
        pyro_close(&fd);
    return fd;
}
