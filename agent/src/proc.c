#include "proc.h"

#include "log.h"

#include <errno.h>
#include <signal.h>
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
            pyro_proc_kill_group(procs[i].pid, SIGKILL);
}

void pyro_proc_kill_all(void)
{
    for (size_t i = 0; i < PYRO_PROC_MAX; i++)
        if (procs[i].pid > 0)
            pyro_proc_kill_group(procs[i].pid, SIGKILL);
}
