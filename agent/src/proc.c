#include "proc.h"

#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

struct proc_entry {
    pid_t pid; /* 0: free */
    enum pyro_proc_kind kind;
    const struct pyro_conn *conn;
    pyro_proc_reaped_fn *on_reaped;
    void *owner;
};

static struct proc_entry procs[PYRO_PROC_MAX];

static struct proc_entry *find(pid_t pid)
{
    for (size_t i = 0; i < PYRO_PROC_MAX; i++)
        if (procs[i].pid == pid)
            return &procs[i];
    return NULL;
}

bool pyro_proc_add(pid_t pid, enum pyro_proc_kind kind, const struct pyro_conn *conn,
                   pyro_proc_reaped_fn *on_reaped, void *owner)
{
    struct proc_entry *p = pid > 0 ? find(0) : NULL;
    if (!p)
        return false;
    *p = (struct proc_entry){
        .pid = pid, .kind = kind, .conn = conn, .on_reaped = on_reaped, .owner = owner};
    return true;
}

void pyro_proc_forget(pid_t pid)
{
    struct proc_entry *p = pid > 0 ? find(pid) : NULL;
    if (p)
        *p = (struct proc_entry){0};
}

void pyro_proc_kill_group(pid_t pid, int signo)
{
    if (kill(-pid, signo) == 0)
        return;
    if (errno == ESRCH && kill(pid, signo) == 0)
        return;
    if (errno != ESRCH)
        LOG_ERRNO("kill process group %d", (int)pid);
}

/* The session of a live process (field 6 of /proc/PID/stat), or 0 for a zombie or a
 * process that is already gone: signalling either is pointless. */
static pid_t live_session_of(long pid)
{
    char path[32], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* comm may hold spaces and parentheses: the fields resume after the last ')'. */
    const char *rest = strrchr(buf, ')');
    char state;
    int session;
    if (!rest || sscanf(rest + 1, " %c %*d %*d %d", &state, &session) != 2)
        return 0;
    return state == 'Z' || state == 'X' ? 0 : (pid_t)session;
}

/* Signals every live process in session sid; the number signalled. */
static int signal_session_members(pid_t sid, int signo)
{
    DIR *proc = opendir("/proc");
    if (!proc)
        return 0;
    int signalled = 0;
    struct dirent *entry;
    while ((entry = readdir(proc))) {
        char *end;
        long pid = strtol(entry->d_name, &end, 10);
        if (*end == '\0' && pid > 0 && live_session_of(pid) == sid &&
            kill((pid_t)pid, signo) == 0)
            signalled++;
    }
    closedir(proc);
    return signalled;
}

void pyro_proc_kill_session(pid_t pid, int signo)
{
    pyro_proc_kill_group(pid, signo);
    /* A job-control shell puts background jobs in process groups of their own; the
     * session still holds them. Repeat a few times for children forked mid-scan (a KILLed
     * process turns into a zombie, which the scan skips). */
    for (int pass = 0; pass < 4 && signal_session_members(pid, signo) > 0; pass++)
        if (signo != SIGKILL)
            break;
}

static void reaped(pid_t pid, int status, int64_t now_ms)
{
    struct proc_entry *p = find(pid);
    if (!p)
        return; /* an orphan, or a child its owner forgot */
    struct proc_entry was = *p;
    *p = (struct proc_entry){0};
    was.on_reaped(was.owner, pid, status, now_ms);
}

void pyro_proc_reap(int64_t now_ms)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid > 0) {
            reaped(pid, status, now_ms);
            continue;
        }
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid < 0 && errno != ECHILD)
            LOG_ERRNO("waitpid");
        return;
    }
}

void pyro_proc_drop_conn(const struct pyro_conn *conn)
{
    for (size_t i = 0; i < PYRO_PROC_MAX; i++)
        if (procs[i].pid > 0 && procs[i].kind == PYRO_PROC_EXEC && procs[i].conn == conn)
            pyro_proc_kill_session(procs[i].pid, SIGKILL);
}

void pyro_proc_kill_all(void)
{
    for (size_t i = 0; i < PYRO_PROC_MAX; i++)
        if (procs[i].pid > 0)
            pyro_proc_kill_session(procs[i].pid, SIGKILL);
}
