#include "shell.h"

#include "log.h"
#include "proc.h"
#include "shell_table.h"
#include "sys.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

/* Reading stops after this much per turn, so a flood on one terminal (`yes`) cannot
 * starve the connections and the other shells. */
#define PUMP_BYTES_PER_CALL (256 * 1024)

static struct pyro_shell shells[PYRO_MAX_SHELLS];

/* Closed shells whose process has not been reaped yet: KILL at kill_at_ms. */
struct closing_shell {
    pid_t pid; /* 0: free */
    int64_t kill_at_ms;
};
static struct closing_shell closing[PYRO_MAX_SHELLS * 2];

struct pyro_shell *pyro_shell_at(size_t index)
{
    return index < PYRO_MAX_SHELLS && shells[index].used ? &shells[index] : NULL;
}

struct pyro_shell *pyro_shell_find(const char *id)
{
    for (size_t i = 0; i < PYRO_MAX_SHELLS; i++)
        if (shells[i].used && strcmp(shells[i].id, id) == 0)
            return &shells[i];
    return NULL;
}

struct pyro_shell *pyro_shell_free_slot(void)
{
    for (size_t i = 0; i < PYRO_MAX_SHELLS; i++)
        if (!shells[i].used)
            return &shells[i];
    return NULL;
}

bool pyro_shell_parse_id(const struct pyro_json_value *req, const char *op, bool must_exist,
                         char *id, struct pyro_shell **found, struct pyro_error *e)
{
    if (!pyro_field_name(req, op, "shell_id", id, e))
        return false;
    *found = pyro_shell_find(id);
    if (must_exist && !*found) {
        pyro_error_set(e, PYRO_ERR_NOT_FOUND, 0, "%s: shell %s does not exist", op, id);
        return false;
    }
    return true;
}

/* EIO: every slave descriptor is closed (the shell and whatever it started are gone)
 * and everything they wrote has been read. */
static void terminal_drained(struct pyro_shell *sh)
{
    LOG_DEBUG("shell %s: terminal drained", sh->id);
    pyro_close(&sh->master_fd);
    sh->queue_len = 0;
}

void pyro_shell_pump(struct pyro_shell *sh)
{
    static uint8_t buf[65536];
    size_t total = 0;
    while (sh->master_fd >= 0 && total < PUMP_BYTES_PER_CALL) {
        ssize_t n = read(sh->master_fd, buf, sizeof buf);
        if (n > 0) {
            pyro_ring_append(&sh->ring, buf, (size_t)n);
            total += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            return;
        } else {
            if (n < 0 && errno != EIO)
                LOG_ERRNO("shell %s: read terminal", sh->id);
            terminal_drained(sh);
        }
    }
}

void pyro_shell_flush(struct pyro_shell *sh)
{
    if (sh->master_fd < 0 || pyro_write_queued(sh->master_fd, sh->queue, &sh->queue_len))
        return;
    if (errno != EIO) /* EIO: nobody holds the terminal any more */
        LOG_ERRNO("shell %s: write terminal", sh->id);
    sh->queue_len = 0;
}

static void on_shell_reaped(void *owner, pid_t pid, int status, int64_t now_ms)
{
    struct pyro_shell *sh = owner;
    (void)now_ms;
    if (!sh->used || sh->reaped || sh->pid != pid)
        return;
    LOG_DEBUG("shell %s: process %d ended", sh->id, (int)pid);
    sh->reaped = true;
    sh->status = status;
    sh->queue_len = 0;
    /* Like an exec: what it left running in its session goes with it. Output still in
     * the terminal stays readable (the master is drained until EIO). */
    pyro_proc_kill_session(pid, SIGKILL);
}

bool pyro_shell_track(struct pyro_shell *sh)
{
    return pyro_proc_add(sh->pid, PYRO_PROC_SHELL, NULL, on_shell_reaped, sh);
}

static void on_closing_reaped(void *owner, pid_t pid, int status, int64_t now_ms)
{
    struct closing_shell *c = owner;
    (void)status;
    (void)now_ms;
    if (c->pid == pid)
        c->pid = 0;
    pyro_proc_kill_session(pid, SIGKILL); /* the rest of its session, as for an open shell */
}

/* The closed shell's process now belongs to a closing slot until it is reaped. */
static void hand_over_to_closing(pid_t pid)
{
    pyro_proc_forget(pid);
    for (size_t i = 0; i < sizeof closing / sizeof closing[0]; i++) {
        struct closing_shell *c = &closing[i];
        if (c->pid == 0 && pyro_proc_add(pid, PYRO_PROC_SHELL, NULL, on_closing_reaped, c)) {
            *c = (struct closing_shell){pid, pyro_now_ms() + PYRO_SHELL_CLOSE_KILL_MS};
            return;
        }
    }
    pyro_proc_kill_session(pid, SIGKILL); /* no room to wait for it: no grace */
}

void pyro_shell_release(struct pyro_shell *sh)
{
    if (sh->master_fd >= 0) {
        pid_t fg = tcgetpgrp(sh->master_fd);
        if (fg > 0)
            pyro_proc_kill_group(fg, SIGHUP);
    }
    if (!sh->reaped) {
        pyro_proc_kill_group(sh->pid, SIGHUP);
        hand_over_to_closing(sh->pid);
    }
    pyro_close(&sh->master_fd);
    free(sh->ring.buf);
    free(sh->queue);
    memset(sh, 0, sizeof *sh);
    sh->master_fd = -1;
}

static void on_terminal_ready(const struct pyro_poll_tag *tag, short revents, int64_t now_ms)
{
    struct pyro_shell *sh = tag->object;
    (void)now_ms;
    if (!sh->used || sh->master_fd != tag->fd)
        return;
    if (revents & POLLOUT)
        pyro_shell_flush(sh);
    if (revents & (POLLIN | POLLHUP | POLLERR))
        pyro_shell_pump(sh);
    /* A hang-up with nothing left to read would wake every poll: the terminal is done. */
    if (sh->master_fd >= 0 && (revents & (POLLHUP | POLLERR)) && !(revents & POLLIN))
        terminal_drained(sh);
}

void pyro_shell_poll_add(struct pyro_pollset *ps)
{
    for (size_t i = 0; i < PYRO_MAX_SHELLS; i++) {
        struct pyro_shell *sh = &shells[i];
        if (!sh->used || sh->master_fd < 0)
            continue;
        short events = POLLIN | (sh->queue_len > 0 ? POLLOUT : 0);
        pyro_pollset_watch(ps, sh->master_fd, events, on_terminal_ready, sh, 0);
    }
    for (size_t i = 0; i < sizeof closing / sizeof closing[0]; i++)
        if (closing[i].pid != 0)
            pyro_pollset_timer(ps, closing[i].kill_at_ms);
}

void pyro_shell_tick(int64_t now_ms)
{
    for (size_t i = 0; i < sizeof closing / sizeof closing[0]; i++) {
        struct closing_shell *c = &closing[i];
        if (c->pid != 0 && now_ms >= c->kill_at_ms) {
            LOG_DEBUG("closed shell process %d outlived HUP; killing it", (int)c->pid);
            pyro_proc_kill_session(c->pid, SIGKILL);
            c->kill_at_ms = INT64_MAX; /* the slot is freed when it is reaped */
        }
    }
}
