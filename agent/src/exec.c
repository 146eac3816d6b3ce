#include "exec.h"

#include "log.h"
#include "ops.h"
#include "proc.h"
#include "request.h"
#include "spawn.h"
#include "sys.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct output_stream {
    int fd;
    uint8_t frame_type;
    uint64_t total; /* bytes the process wrote, including discarded ones */
    uint64_t sent;
    bool truncated;
};

struct exec_channel {
    bool used;
    struct pyro_conn *conn;
    uint32_t channel;
    pid_t pid; /* also the process group id: the child calls setsid() */
    struct output_stream out, err;
    int stdin_fd;
    uint8_t *stdin_buf; /* bytes waiting for the pipe to take them */
    size_t stdin_len, stdin_cap;
    bool stdin_eof_pending;
    uint64_t max_output_bytes;
    bool sync_after;
    int64_t start_ms, deadline_ms, exit_ms, drain_until_ms;
    bool reaped, timed_out;
    int status;
};

static struct exec_channel execs[PYRO_MAX_EXECS];

static const char *const signal_names[] = {
    [SIGHUP] = "HUP",   [SIGINT] = "INT",       [SIGQUIT] = "QUIT", [SIGILL] = "ILL",
    [SIGTRAP] = "TRAP", [SIGABRT] = "ABRT",     [SIGBUS] = "BUS",   [SIGFPE] = "FPE",
    [SIGKILL] = "KILL", [SIGUSR1] = "USR1",     [SIGSEGV] = "SEGV", [SIGUSR2] = "USR2",
    [SIGPIPE] = "PIPE", [SIGALRM] = "ALRM",     [SIGTERM] = "TERM", [SIGSTKFLT] = "STKFLT",
    [SIGCHLD] = "CHLD", [SIGCONT] = "CONT",     [SIGSTOP] = "STOP", [SIGTSTP] = "TSTP",
    [SIGTTIN] = "TTIN", [SIGTTOU] = "TTOU",     [SIGURG] = "URG",   [SIGXCPU] = "XCPU",
    [SIGXFSZ] = "XFSZ", [SIGVTALRM] = "VTALRM", [SIGPROF] = "PROF", [SIGWINCH] = "WINCH",
    [SIGIO] = "IO",     [SIGPWR] = "PWR",       [SIGSYS] = "SYS",
};

int pyro_signal_from_name(const char *name)
{
    static const int allowed[] = {SIGINT, SIGTERM, SIGKILL, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
        if (strcmp(name, signal_names[allowed[i]]) == 0)
            return allowed[i];
    return -1;
}

const char *pyro_signal_name(int signo, char *buf, size_t len)
{
    if (signo > 0 && (size_t)signo < sizeof signal_names / sizeof signal_names[0] &&
        signal_names[signo])
        return signal_names[signo];
    snprintf(buf, len, "SIG%d", signo);
    return buf;
}

void pyro_write_wait_state(struct pyro_json_writer *w, bool reaped, int status)
{
    char signame[16];
    pyro_json_key(w, "state");
    pyro_json_string(w, reaped ? "exited" : "running");
    pyro_json_key(w, "exit_code");
    if (reaped && WIFEXITED(status))
        pyro_json_int(w, WEXITSTATUS(status));
    else
        pyro_json_null(w);
    pyro_json_key(w, "signal");
    if (reaped && WIFSIGNALED(status))
        pyro_json_string(w, pyro_signal_name(WTERMSIG(status), signame, sizeof signame));
    else
        pyro_json_null(w);
}

static struct exec_channel *find_exec(const struct pyro_conn *conn, uint32_t channel)
{
    for (size_t i = 0; i < PYRO_MAX_EXECS; i++)
        if (execs[i].used && execs[i].conn == conn && execs[i].channel == channel)
            return &execs[i];
    return NULL;
}

static bool exec_channel_busy(const struct pyro_conn *conn, uint32_t channel)
{
    return find_exec(conn, channel) != NULL;
}

bool pyro_exec_conn_backlogged(const struct pyro_conn *conn)
{
    for (size_t i = 0; i < PYRO_MAX_EXECS; i++)
        if (execs[i].used && execs[i].conn == conn &&
            execs[i].stdin_len >= PYRO_STDIN_BACKLOG_BYTES)
            return true;
    return false;
}

static void close_stdin(struct exec_channel *e)
{
    pyro_close(&e->stdin_fd);
    free(e->stdin_buf);
    e->stdin_buf = NULL;
    e->stdin_len = e->stdin_cap = 0;
    e->stdin_eof_pending = false;
}

static void release(struct exec_channel *e)
{
    if (e->used && !e->reaped)
        pyro_proc_forget(e->pid);
    pyro_close(&e->out.fd);
    pyro_close(&e->err.fd);
    close_stdin(e);
    memset(e, 0, sizeof *e);
    e->out.fd = e->err.fd = e->stdin_fd = -1;
}

static struct exec_channel *alloc_exec(void)
{
    for (size_t i = 0; i < PYRO_MAX_EXECS; i++)
        if (!execs[i].used)
            return &execs[i];
    return NULL;
}

static void on_reaped(void *owner, pid_t pid, int status, int64_t now_ms);

static void exec_start(struct pyro_conn *conn, uint32_t channel,
                       const struct pyro_json_value *request)
{
    struct pyro_spawn_request req;
    struct pyro_spawned child;
    struct pyro_error e;
    struct exec_channel *x = alloc_exec();
    if (!x) {
        pyro_error_set(&e, PYRO_ERR_BUSY, 0, "exec: %d processes are already running",
                       PYRO_MAX_EXECS);
        pyro_send_error(conn, channel, &e);
        return;
    }
    int64_t start_ms = pyro_now_ms();
    if (!pyro_spawn_parse(request, &req, &e) || !pyro_spawn(&req, &child, &e)) {
        pyro_send_error(conn, channel, &e);
        return;
    }
    if (!pyro_proc_add(child.pid, PYRO_PROC_EXEC, conn, on_reaped, x)) {
        pyro_proc_kill_session(child.pid, SIGKILL);
        pyro_close(&child.stdout_fd);
        pyro_close(&child.stderr_fd);
        pyro_close(&child.stdin_fd);
        pyro_error_set(&e, PYRO_ERR_BUSY, 0, "exec: the agent's process table is full");
        pyro_send_error(conn, channel, &e);
        return;
    }
    *x = (struct exec_channel){
        .used = true,
        .conn = conn,
        .channel = channel,
        .pid = child.pid,
        .out = {.fd = child.stdout_fd, .frame_type = PYRO_FRAME_STDOUT},
        .err = {.fd = child.stderr_fd, .frame_type = PYRO_FRAME_STDERR},
        .stdin_fd = child.stdin_fd,
        .max_output_bytes = (uint64_t)req.max_output_bytes,
        .sync_after = req.sync_after,
        .start_ms = start_ms,
        .deadline_ms = req.timeout_ms > 0 ? start_ms + req.timeout_ms : INT64_MAX,
    };
    LOG_DEBUG("channel %u: started %s as pid %d", channel, req.argv[0], (int)child.pid);
}

/* Writes as much queued stdin as the pipe takes now; closes it on EOF or EPIPE. */
static void flush_stdin(struct exec_channel *e)
{
    if (e->stdin_fd >= 0 && !pyro_write_queued(e->stdin_fd, e->stdin_buf, &e->stdin_len)) {
        if (errno != EPIPE) /* EPIPE: the process closed its stdin; not an error */
            LOG_ERRNO("channel %u: write stdin", e->channel);
        close_stdin(e);
        return;
    }
    if (e->stdin_len == 0 && e->stdin_eof_pending)
        close_stdin(e);
}

static bool queue_stdin(struct exec_channel *e, const uint8_t *data, size_t len)
{
    if (e->stdin_len + len > e->stdin_cap) {
        size_t cap = e->stdin_cap ? e->stdin_cap : 65536;
        while (cap < e->stdin_len + len)
            cap *= 2;
        uint8_t *grown = realloc(e->stdin_buf, cap);
        if (!grown) {
            LOG_ERRNO("channel %u: stdin buffer", e->channel);
            return false;
        }
        e->stdin_buf = grown;
        e->stdin_cap = cap;
    }
    memcpy(e->stdin_buf + e->stdin_len, data, len);
    e->stdin_len += len;
    return true;
}

static bool exec_take_stdin(struct pyro_conn *conn, uint32_t channel, const uint8_t *data,
                            size_t len, bool eof)
{
    struct exec_channel *e = find_exec(conn, channel);
    if (!e || e->stdin_fd < 0 || e->stdin_eof_pending)
        return false;
    if (eof) {
        e->stdin_eof_pending = true;
    } else if (len > 0 && !queue_stdin(e, data, len)) {
        close_stdin(e);
        return true;
    }
    flush_stdin(e);
    return true;
}

int pyro_exec_signal(struct pyro_conn *conn, uint32_t target_channel, int signo)
{
    struct exec_channel *e = find_exec(conn, target_channel);
    if (!e)
        return -1;
    /* Once reaped, the group was already killed and the exit record is on its way;
     * the pid may even be reused, so do not signal it. */
    if (!e->reaped)
        pyro_proc_kill_group(e->pid, signo);
    return 0;
}

enum { ROLE_STDIN, ROLE_STDOUT, ROLE_STDERR };

static void exec_on_ready(const struct pyro_poll_tag *tag, short revents, int64_t now_ms);

static void exec_poll_add(struct pyro_pollset *ps)
{
    for (size_t i = 0; i < PYRO_MAX_EXECS; i++) {
        struct exec_channel *e = &execs[i];
        if (!e->used)
            continue;
        if (e->out.fd >= 0)
            pyro_pollset_watch(ps, e->out.fd, POLLIN, exec_on_ready, e, ROLE_STDOUT);
        if (e->err.fd >= 0)
            pyro_pollset_watch(ps, e->err.fd, POLLIN, exec_on_ready, e, ROLE_STDERR);
        if (e->stdin_fd >= 0 && e->stdin_len > 0)
            pyro_pollset_watch(ps, e->stdin_fd, POLLOUT, exec_on_ready, e, ROLE_STDIN);
        pyro_pollset_timer(ps, e->reaped ? e->drain_until_ms : e->deadline_ms);
    }
}

/* Reads one chunk; sends what fits under max_output_bytes and counts the rest. */
static void read_output(struct exec_channel *e, struct output_stream *s)
{
    static uint8_t buf[PYRO_OUTPUT_CHUNK_BYTES];
    ssize_t n = read(s->fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        if (n < 0)
            LOG_ERRNO("channel %u: read output", e->channel);
        pyro_close(&s->fd);
        return;
    }
    s->total += (uint64_t)n;
    uint64_t room = e->max_output_bytes - s->sent;
    size_t send = (uint64_t)n < room ? (size_t)n : (size_t)room;
    if (send < (size_t)n)
        s->truncated = true;
    if (send > 0) {
        pyro_conn_send(e->conn, e->channel, s->frame_type, buf, send);
        s->sent += send;
    }
}

static void exec_on_ready(const struct pyro_poll_tag *tag, short revents, int64_t now_ms)
{
    struct exec_channel *e = tag->object;
    (void)revents;
    (void)now_ms;
    if (!e->used)
        return;
    if (tag->role == ROLE_STDOUT && e->out.fd == tag->fd)
        read_output(e, &e->out);
    else if (tag->role == ROLE_STDERR && e->err.fd == tag->fd)
        read_output(e, &e->err);
    else if (tag->role == ROLE_STDIN && e->stdin_fd == tag->fd)
        flush_stdin(e);
}

static void on_reaped(void *owner, pid_t pid, int status, int64_t now_ms)
{
    struct exec_channel *e = owner;
    if (!e->used || e->reaped || e->pid != pid)
        return;
    e->reaped = true;
    e->status = status;
    /* now_ms was read before this turn's requests ran: an exec started and killed in
     * the same turn (a cancel right behind the exec) would end before it began. */
    e->exit_ms = now_ms > e->start_ms ? now_ms : e->start_ms;
    e->drain_until_ms = e->exit_ms + PYRO_DRAIN_MS;
    /* Background children must not outlive the command, and must not keep the output
     * pipes open. The session id cannot be reused yet: it still has members or it is
     * gone. */
    pyro_proc_kill_session(pid, SIGKILL);
    close_stdin(e);
}

static void send_exit(struct exec_channel *e)
{
    static char buf[1024];
    struct pyro_json_writer w;
    char signame[16];
    bool exited = !e->timed_out && WIFEXITED(e->status);
    const char *sig = NULL;
    if (e->sync_after)
        sync();
    if (e->timed_out)
        sig = "KILL";
    else if (WIFSIGNALED(e->status))
        sig = pyro_signal_name(WTERMSIG(e->status), signame, sizeof signame);
    pyro_json_writer_init(&w, buf, sizeof buf);
    pyro_json_object_begin(&w);
    pyro_json_key(&w, "type");
    pyro_json_string(&w, "exit");
    pyro_json_key(&w, "exit_code");
    if (exited)
        pyro_json_int(&w, WEXITSTATUS(e->status));
    else
        pyro_json_null(&w);
    pyro_json_key(&w, "signal");
    if (sig)
        pyro_json_string(&w, sig);
    else
        pyro_json_null(&w);
    pyro_json_key(&w, "timed_out");
    pyro_json_bool(&w, e->timed_out);
    pyro_json_key(&w, "stdout_truncated");
    pyro_json_bool(&w, e->out.truncated);
    pyro_json_key(&w, "stderr_truncated");
    pyro_json_bool(&w, e->err.truncated);
    pyro_json_key(&w, "stdout_bytes");
    pyro_json_int(&w, (int64_t)e->out.total);
    pyro_json_key(&w, "stderr_bytes");
    pyro_json_int(&w, (int64_t)e->err.total);
    pyro_json_key(&w, "duration_ms");
    pyro_json_int(&w, e->exit_ms - e->start_ms);
    pyro_json_object_end(&w);
    pyro_send_control(e->conn, e->channel, &w);
}

static void exec_tick(int64_t now_ms)
{
    for (size_t i = 0; i < PYRO_MAX_EXECS; i++) {
        struct exec_channel *e = &execs[i];
        if (!e->used)
            continue;
        if (!e->reaped && now_ms >= e->deadline_ms) {
            LOG_DEBUG("channel %u: timed out; killing process group %d", e->channel,
                      (int)e->pid);
            pyro_proc_kill_session(e->pid, SIGKILL);
            e->timed_out = true;
            e->deadline_ms = INT64_MAX;
        }
        bool drained = e->out.fd < 0 && e->err.fd < 0;
        if (e->reaped && (drained || now_ms >= e->drain_until_ms)) {
            send_exit(e);
            release(e);
        }
    }
}

/* The process table has killed the connection's process groups already. */
static void exec_drop_conn(struct pyro_conn *conn)
{
    for (size_t i = 0; i < PYRO_MAX_EXECS; i++)
        if (execs[i].used && execs[i].conn == conn)
            release(&execs[i]);
}

static const struct pyro_op ops[] = {
    {"exec", exec_start},
    {NULL, NULL},
};

const struct pyro_op_group pyro_exec_ops = {
    .name = "exec",
    .ops = ops,
    .channel_busy = exec_channel_busy,
    .take_stdin = exec_take_stdin,
    .drop_conn = exec_drop_conn,
    .poll_add = exec_poll_add,
    .tick = exec_tick,
};
