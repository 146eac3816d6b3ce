/* The process table with real children: reaping goes to the owner by pid, and a
 * dropped connection kills its execs but not services or shells. */
#include "proc.h"
#include "test.h"

#include <signal.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct owner {
    int calls;
    pid_t pid;
    int status;
};

static void on_reaped(void *owner, pid_t pid, int status, int64_t now_ms)
{
    struct owner *o = owner;
    (void)now_ms;
    o->calls++;
    o->pid = pid;
    o->status = status;
}

/* A child in its own process group that waits to be killed. */
static pid_t sleeper(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        for (;;)
            pause();
    }
    return pid;
}

/* Reaps until the owner has been called, for at most ~5 s. */
static bool reap_until(const struct owner *o)
{
    for (int i = 0; i < 500 && o->calls == 0; i++) {
        pyro_proc_reap(0);
        struct timespec pause_10ms = {.tv_nsec = 10 * 1000000};
        nanosleep(&pause_10ms, NULL);
    }
    return o->calls > 0;
}

static void drop_conn_kills_only_execs(void)
{
    struct pyro_conn conn = {.fd = -1};
    struct owner exec_owner = {0}, service_owner = {0}, shell_owner = {0};
    pid_t exec_pid = sleeper(), service_pid = sleeper(), shell_pid = sleeper();
    CHECK(pyro_proc_add(exec_pid, PYRO_PROC_EXEC, &conn, on_reaped, &exec_owner));
    CHECK(pyro_proc_add(service_pid, PYRO_PROC_SERVICE, NULL, on_reaped, &service_owner));
    CHECK(pyro_proc_add(shell_pid, PYRO_PROC_SHELL, NULL, on_reaped, &shell_owner));
    pyro_proc_drop_conn(&conn);
    CHECK(reap_until(&exec_owner));
    CHECK(exec_owner.calls == 1 && exec_owner.pid == exec_pid);
    CHECK(WIFSIGNALED(exec_owner.status) && WTERMSIG(exec_owner.status) == SIGKILL);
    CHECK(service_owner.calls == 0 && shell_owner.calls == 0);
    CHECK(kill(service_pid, 0) == 0 && kill(shell_pid, 0) == 0);
    pyro_proc_kill_all();
    CHECK(reap_until(&service_owner) && reap_until(&shell_owner));
    CHECK(service_owner.pid == service_pid && shell_owner.pid == shell_pid);
    CHECK(exec_owner.calls == 1); /* removed at its reap: called once */
}

static void forgotten_child_is_reaped_silently(void)
{
    struct owner o = {0};
    pid_t pid = sleeper();
    CHECK(pyro_proc_add(pid, PYRO_PROC_EXEC, NULL, on_reaped, &o));
    pyro_proc_forget(pid);
    pyro_proc_kill_group(pid, SIGKILL);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid); /* still our child, just not followed */
    pyro_proc_reap(0);
    CHECK(o.calls == 0);
}

static void table_is_bounded(void)
{
    struct owner o = {0};
    int added = 0;
    /* Fake pids far above pid_max: never a real child, never signalled here. */
    for (int i = 0; i < PYRO_PROC_MAX + 1; i++)
        added += pyro_proc_add(0x3fffff00 + i, PYRO_PROC_SERVICE, NULL, on_reaped, &o);
    CHECK(added == PYRO_PROC_MAX);
    for (int i = 0; i < PYRO_PROC_MAX + 1; i++)
        pyro_proc_forget(0x3fffff00 + i);
    CHECK(!pyro_proc_add(0, PYRO_PROC_EXEC, NULL, on_reaped, &o));
}

void test_proc(void)
{
    drop_conn_kills_only_execs();
    forgotten_child_is_reaped_silently();
    table_is_bounded();
}
