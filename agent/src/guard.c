#include "guard.h"

#include "init.h"
#include "log.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

/* cgroup.procs of the exec leaf: opened once by the agent (close-on-exec, so no command
 * inherits it past exec) and written by each child between fork and exec. */
static int exec_procs_fd = -1;
/* The agent set its own oom_score_adj, so children must undo it. */
static bool oom_protected;

struct pyro_guard_limits pyro_guard_limits_for(uint64_t threads_max, uint64_t ram_bytes)
{
    struct pyro_guard_limits l;
    l.pids_max = threads_max / 2;
    if (l.pids_max > PYRO_GUARD_MAX_EXEC_TASKS)
        l.pids_max = PYRO_GUARD_MAX_EXEC_TASKS;
    if (l.pids_max < 1)
        l.pids_max = 1;
    uint64_t reserve = ram_bytes / 8;
    if (reserve < PYRO_GUARD_MIN_RESERVE_BYTES)
        reserve = PYRO_GUARD_MIN_RESERVE_BYTES;
    if (reserve > PYRO_GUARD_MAX_RESERVE_BYTES)
        reserve = PYRO_GUARD_MAX_RESERVE_BYTES;
    /* A VM too small for the reserve still gets a leaf limit, of half its memory. */
    l.memory_max_bytes = ram_bytes > 2 * reserve ? ram_bytes - reserve : ram_bytes / 2;
    return l;
}

static int write_text(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = strlen(text);
    ssize_t n;
    do
        n = write(fd, text, len);
    while (n < 0 && errno == EINTR);
    int saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)len ? 0 : -1;
}

/* Records a failed guard step as an init error; returns false for chaining. */
static bool guard_failed(const char *what)
{
    LOG_ERRNO("guard: %s", what);
    pyro_init_error("guard: %s: %s", what, strerror(errno));
    return false;
}

static uint64_t read_threads_max(void)
{
    char buf[32] = "";
    int fd = open("/proc/sys/kernel/threads-max", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n;
    do
        n = read(fd, buf, sizeof buf - 1);
    while (n < 0 && errno == EINTR);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return strtoull(buf, NULL, 10);
}

static bool enable_controllers(void)
{
    static const char *const controllers[] = {"+pids", "+memory", "+cpu"};
    bool ok = true;
    for (size_t i = 0; i < sizeof controllers / sizeof controllers[0]; i++) {
        if (write_text(PYRO_GUARD_CGROUP_ROOT "/cgroup.subtree_control", controllers[i]) != 0) {
            char what[64];
            snprintf(what, sizeof what, "enable cgroup controller %s", controllers[i] + 1);
            ok = guard_failed(what);
        }
    }
    return ok;
}

static bool set_limits(void)
{
    struct sysinfo si;
    uint64_t threads_max = read_threads_max();
    if (sysinfo(&si) != 0 || threads_max == 0)
        return guard_failed("read threads-max and RAM size");
    struct pyro_guard_limits l =
        pyro_guard_limits_for(threads_max, (uint64_t)si.totalram * si.mem_unit);
    char pids[32], memory[32];
    snprintf(pids, sizeof pids, "%" PRIu64, l.pids_max);
    snprintf(memory, sizeof memory, "%" PRIu64, l.memory_max_bytes);
    bool ok = true;
    if (write_text(PYRO_GUARD_CGROUP "/pids.max", pids) != 0)
        ok = guard_failed("set pids.max");
    if (write_text(PYRO_GUARD_CGROUP "/memory.max", memory) != 0)
        ok = guard_failed("set memory.max");
    LOG_DEBUG("guard: exec leaf pids.max=%s memory.max=%s", pids, memory);
    return ok;
}

static bool make_exec_leaf(void)
{
    if (mkdir(PYRO_GUARD_CGROUP_ROOT, 0755) != 0 && errno != EEXIST)
        return guard_failed("mkdir " PYRO_GUARD_CGROUP_ROOT);
    if (mount("cgroup2", PYRO_GUARD_CGROUP_ROOT, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              NULL) != 0 &&
        errno != EBUSY)
        return guard_failed("mount cgroup2 on " PYRO_GUARD_CGROUP_ROOT);
    bool ok = enable_controllers();
    if (mkdir(PYRO_GUARD_CGROUP, 0755) != 0 && errno != EEXIST)
        return guard_failed("mkdir " PYRO_GUARD_CGROUP);
    ok = set_limits() && ok;
    /* Without its limits the leaf still groups the children; join it anyway. */
    exec_procs_fd = open(PYRO_GUARD_CGROUP "/cgroup.procs", O_WRONLY | O_CLOEXEC);
    if (exec_procs_fd < 0)
        return guard_failed("open " PYRO_GUARD_CGROUP "/cgroup.procs");
    return ok;
}

void pyro_guard_init(void)
{
    if (write_text("/proc/self/oom_score_adj", "-1000") == 0)
        oom_protected = true;
    else
        guard_failed("set the agent's oom_score_adj to -1000");
    if (make_exec_leaf())
        LOG_DEBUG("guard: exec children go to %s", PYRO_GUARD_CGROUP);
}

bool pyro_guard_active(void)
{
    return exec_procs_fd >= 0;
}

void pyro_guard_enter_child(void)
{
    if (exec_procs_fd >= 0) {
        /* "0" names the writing process itself. */
        ssize_t w = write(exec_procs_fd, "0", 1);
        (void)w;
        close(exec_procs_fd);
    }
    if (!oom_protected)
        return;
    /* Raising it back needs no privilege; the child inherited the agent's -1000. */
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t w = write(fd, "0", 1);
        (void)w;
        close(fd);
    }
}
