#include "init.h"

#include "guard.h"
#include "log.h"
#include "park.h"
#include "rootfs.h"
#include "sys.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How long power-off waits for killed processes to be reaped. */
#define POWER_OFF_REAP_MS 2000

static char init_errors[PYRO_INIT_MAX_ERRORS][256];
static size_t init_error_count;

void pyro_init_error(const char *fmt, ...)
{
    if (init_error_count >= PYRO_INIT_MAX_ERRORS)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(init_errors[init_error_count++], sizeof init_errors[0], fmt, ap);
    va_end(ap);
}

size_t pyro_init_error_count(void)
{
    return init_error_count;
}

const char *pyro_init_error_at(size_t i)
{
    return i < init_error_count ? init_errors[i] : "";
}

static void mount_fs(const char *source, const char *target, const char *type,
                     unsigned long flags, const char *data)
{
    if (mkdir(target, 0755) != 0 && errno != EEXIST) {
        LOG_ERRNO("mkdir %s", target);
        pyro_init_error("mkdir %s: %s", target, strerror(errno));
        return;
    }
    if (mount(source, target, type, flags, data) != 0) {
        LOG_ERRNO("mount %s on %s", type, target);
        pyro_init_error("mount %s on %s: %s", type, target, strerror(errno));
    }
}

static void mount_early_filesystems(void)
{
    mount_fs("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
    /* The kernel gives init no console when the initramfs has no /dev/console. */
    pyro_ensure_stdio();
    mount_fs("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    mount_fs("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    mount_fs("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
    /* Workspace secrets land here (host: src/secrets/workspace.ts): root only, and on a
     * tmpfs so that no disk, snapshot or archive ever holds them. */
    if (mkdir("/run/pyro-secrets", 0700) != 0 && errno != EEXIST)
        LOG_ERRNO("mkdir /run/pyro-secrets");
    mount_fs("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
             "gid=5,mode=0620,ptmxmode=0666");
    struct stat st;
    if (lstat("/dev/ptmx", &st) != 0 && symlink("pts/ptmx", "/dev/ptmx") != 0) {
        LOG_ERRNO("symlink /dev/ptmx");
        pyro_init_error("symlink /dev/ptmx: %s", strerror(errno));
    }
    mount_fs("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
}

void pyro_cmdline_parse(const char *cmdline, struct pyro_cmdline *out)
{
    memset(out, 0, sizeof *out);
    const char *p = cmdline;
    while (*p) {
        p += strspn(p, " \t\n");
        size_t len = strcspn(p, " \t\n");
        static const char host_key[] = "pyro.hostname=";
        size_t host_key_len = sizeof host_key - 1;
        if (len > host_key_len && strncmp(p, host_key, host_key_len) == 0) {
            size_t n = len - host_key_len;
            if (n >= sizeof out->hostname)
                n = sizeof out->hostname - 1;
            memcpy(out->hostname, p + host_key_len, n);
            out->hostname[n] = '\0';
        } else if (len == 12 && strncmp(p, "pyro.probe=1", 12) == 0) {
            out->probe = true;
        } else if (len == 16 && strncmp(p, "pyro.state=tmpfs", 16) == 0) {
            out->state_tmpfs = true;
        } else if (len == 14 && strncmp(p, "pyro.verbose=1", 14) == 0) {
            out->verbose = true;
        } else if (len == 11 && strncmp(p, "pyro.park=1", 11) == 0) {
            out->park = PYRO_PARK_EARLY;
        } else if (len == 14 && strncmp(p, "pyro.park=late", 14) == 0) {
            out->park = PYRO_PARK_LATE;
        }
        p += len;
    }
}

static void read_cmdline(struct pyro_cmdline *out)
{
    char buf[4096] = "";
    int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
    ssize_t n = -1;
    if (fd >= 0) {
        do
            n = read(fd, buf, sizeof buf - 1);
        while (n < 0 && errno == EINTR);
        close(fd);
    }
    if (n < 0) {
        LOG_ERRNO("read /proc/cmdline");
        pyro_init_error("read /proc/cmdline: %s", strerror(errno));
        n = 0;
    }
    buf[n] = '\0';
    pyro_cmdline_parse(buf, out);
}

/* Ends the VM with a reset rather than an ACPI power-off: QEMU runs with -no-reboot and
 * Firecracker exits on the i8042 reset (reboot=k), while Firecracker ignores a power-off
 * on x86. The VMM treats either as the end; power-off is the fallback. */
static void power_off_now(void)
{
    reboot(RB_AUTOBOOT);
    LOG_ERRNO("reboot(RB_AUTOBOOT)");
    reboot(RB_POWER_OFF);
    LOG_ERRNO("reboot(RB_POWER_OFF)");
}

static void loopback_up(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        LOG_ERRNO("socket(AF_INET)");
        pyro_init_error("loopback: socket: %s", strerror(errno));
        return;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const char *step = "SIOCSIFADDR";
    int rc = ioctl(fd, SIOCSIFADDR, &ifr);
    if (rc == 0) {
        step = "SIOCSIFNETMASK";
        sin->sin_addr.s_addr = htonl(0xff000000u);
        rc = ioctl(fd, SIOCSIFNETMASK, &ifr);
    }
    if (rc == 0) {
        step = "SIOCGIFFLAGS";
        rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
    }
    if (rc == 0) {
        step = "SIOCSIFFLAGS";
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    if (rc != 0) {
        LOG_ERRNO("loopback: %s", step);
        pyro_init_error("loopback: %s: %s", step, strerror(errno));
    }
    close(fd);
}

int pyro_init_run(void)
{
    struct pyro_cmdline cmdline;
    int parked_port = -1;
    mount_early_filesystems();
    read_cmdline(&cmdline);
    if (cmdline.verbose)
        pyro_log_verbose = true;
    if (cmdline.probe) {
        /* The acceleration probe only asks "does a guest reach init": answer, stop. */
        LOG_INFO("probe ok");
        power_off_now();
    }
    if (cmdline.park == PYRO_PARK_EARLY) {
        /* Before the state disk is touched, with the base (the same for every clone)
         * mounted and lo up already, so that a clone has less to do after the GO. */
        pyro_rootfs_mount_base();
        loopback_up();
        parked_port = pyro_park();
        pyro_park_flush_disks(pyro_rootfs_base_device());
    }
    pyro_rootfs_setup(cmdline.state_tmpfs);
    /* After the root switch: the cgroup mount belongs under the final /sys. */
    pyro_guard_init();
    if (cmdline.hostname[0] != '\0' &&
        sethostname(cmdline.hostname, strlen(cmdline.hostname)) != 0) {
        LOG_ERRNO("sethostname %s", cmdline.hostname);
        pyro_init_error("sethostname %s: %s", cmdline.hostname, strerror(errno));
    }
    if (cmdline.park != PYRO_PARK_EARLY)
        loopback_up();
    if (cmdline.park == PYRO_PARK_LATE)
        parked_port = pyro_park();
    return parked_port;
}

void pyro_init_power_off(void)
{
    LOG_INFO("powering off");
    sync();
    if (kill(-1, SIGKILL) != 0 && errno != ESRCH)
        LOG_ERRNO("kill(-1, SIGKILL)");
    int64_t until_ms = pyro_now_ms() + POWER_OFF_REAP_MS;
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid > 0 || (pid < 0 && errno == EINTR))
            continue;
        if ((pid < 0 && errno == ECHILD) || pyro_now_ms() >= until_ms)
            break;
        struct timespec pause = {.tv_nsec = 10 * 1000000};
        nanosleep(&pause, NULL);
    }
    sync();
    power_off_now();
}
