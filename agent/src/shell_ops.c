/* shell_read, shell_write, shell_signal, shell_close and shell_list. */
#include "exec.h"
#include "log.h"
#include "ops.h"
#include "proc.h"
#include "shell_table.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>

/* Output frames of a read hold at most this much each. */
#define READ_FRAME_BYTES 65536

static void send_id_result(struct pyro_conn *conn, uint32_t channel, const char *id)
{
    char buf[256];
    struct pyro_json_writer w;
    pyro_result_begin(&w, buf, sizeof buf, "shell_id", id);
    pyro_json_object_end(&w);
    pyro_send_control(conn, channel, &w);
}

/* Looks the shell up after checking the fields; sends the error itself. */
static struct pyro_shell *request_shell(struct pyro_conn *conn, uint32_t channel,
                                        const struct pyro_json_value *req, const char *op,
                                        const char *const *fields)
{
    struct pyro_error e;
    struct pyro_shell *sh = NULL;
    char id[PYRO_NAME_MAX + 1];
    if (!pyro_fields_known(req, op, fields, &e) ||
        !pyro_shell_parse_id(req, op, true, id, &sh, &e)) {
        pyro_send_error(conn, channel, &e);
        return NULL;
    }
    return sh;
}

static void send_span(struct pyro_conn *conn, uint32_t channel, const struct pyro_shell *sh,
                      struct pyro_ring_span span)
{
    static uint8_t frame[READ_FRAME_BYTES];
    for (uint64_t at = span.start; at < span.end;) {
        size_t len =
            span.end - at < READ_FRAME_BYTES ? (size_t)(span.end - at) : READ_FRAME_BYTES;
        pyro_ring_copy(&sh->ring, at, frame, len);
        pyro_conn_send(conn, channel, PYRO_FRAME_STDOUT, frame, len);
        at += len;
    }
}

static bool parse_read(const struct pyro_json_value *req, int64_t *cursor, int64_t *max_bytes,
                       struct pyro_error *e)
{
    bool has_cursor = false;
    if (!pyro_field_int(req, "shell_read", "cursor", 0, INT64_MAX, &has_cursor, cursor, e) ||
        !pyro_field_int(req, "shell_read", "max_bytes", 1, PYRO_SHELL_MAX_READ_BYTES, NULL,
                        max_bytes, e))
        return false;
    if (!has_cursor)
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0, "shell_read: cursor is required");
    return has_cursor;
}

static void shell_read(struct pyro_conn *conn, uint32_t channel,
                       const struct pyro_json_value *req)
{
    static const char *const fields[] = {"op", "shell_id", "cursor", "max_bytes", NULL};
    struct pyro_shell *sh = request_shell(conn, channel, req, "shell_read", fields);
    struct pyro_error e;
    int64_t cursor = 0, max_bytes = PYRO_SHELL_DEFAULT_READ_BYTES;
    if (!sh)
        return;
    if (!parse_read(req, &cursor, &max_bytes, &e)) {
        pyro_send_error(conn, channel, &e);
        return;
    }
    pyro_shell_pump(sh); /* serve what the terminal has now, not what the last turn saw */
    struct pyro_ring_span span =
        pyro_ring_span(&sh->ring, (uint64_t)cursor, (uint64_t)max_bytes);
    send_span(conn, channel, sh, span);
    char buf[512];
    struct pyro_json_writer w;
    pyro_result_begin(&w, buf, sizeof buf, "shell_id", sh->id);
    pyro_json_key(&w, "cursor");
    pyro_json_int(&w, (int64_t)span.start);
    pyro_json_key(&w, "next_cursor");
    pyro_json_int(&w, (int64_t)span.end);
    pyro_json_key(&w, "available");
    pyro_json_int(&w, (int64_t)sh->ring.end);
    pyro_json_key(&w, "truncated");
    pyro_json_bool(&w, span.truncated);
    pyro_write_wait_state(&w, sh->reaped, sh->status);
    pyro_json_object_end(&w);
    pyro_send_control(conn, channel, &w);
}

/* Queues data behind what is already waiting, then writes what the PTY takes now. */
static bool queue_input(struct pyro_shell *sh, const char *data, size_t len,
                        struct pyro_error *e)
{
    if (sh->queue_len + len > PYRO_SHELL_WRITE_QUEUE_BYTES) {
        pyro_error_set(e, PYRO_ERR_BUSY, 0,
                       "shell_write: shell %s has %zu bytes of input waiting; read its "
                       "output and write again later",
                       sh->id, sh->queue_len);
        return false;
    }
    if (!sh->queue && !(sh->queue = malloc(PYRO_SHELL_WRITE_QUEUE_BYTES))) {
        pyro_error_set(e, PYRO_ERR_BUSY, ENOMEM, "shell_write: no memory for the input");
        return false;
    }
    memcpy(sh->queue + sh->queue_len, data, len);
    sh->queue_len += len;
    pyro_shell_flush(sh);
    return true;
}

static void shell_write(struct pyro_conn *conn, uint32_t channel,
                        const struct pyro_json_value *req)
{
    static const char *const fields[] = {"op", "shell_id", "data", NULL};
    struct pyro_shell *sh = request_shell(conn, channel, req, "shell_write", fields);
    struct pyro_error e;
    if (!sh)
        return;
    const struct pyro_json_value *data = pyro_json_get(req, "data");
    if (!data || data->type != PYRO_JSON_STRING || data->len > PYRO_SHELL_MAX_WRITE_BYTES) {
        pyro_error_set(&e, PYRO_ERR_INVALID_ARGUMENT, 0,
                       "shell_write: data must be a string of at most %d bytes",
                       PYRO_SHELL_MAX_WRITE_BYTES);
    } else if (sh->reaped || sh->master_fd < 0) {
        /* A running shell without a terminal closed every descriptor of it. */
        pyro_error_set(&e, PYRO_ERR_INVALID_ARGUMENT, 0, "shell_write: shell %s has %s", sh->id,
                       sh->reaped ? "exited" : "closed its terminal");
    } else if (queue_input(sh, data->str, data->len, &e)) {
        char buf[256];
        struct pyro_json_writer w;
        pyro_result_begin(&w, buf, sizeof buf, "shell_id", sh->id);
        pyro_json_key(&w, "bytes_written");
        pyro_json_int(&w, (int64_t)data->len);
        pyro_json_object_end(&w);
        pyro_send_control(conn, channel, &w);
        return;
    }
    pyro_send_error(conn, channel, &e);
}

static void shell_signal(struct pyro_conn *conn, uint32_t channel,
                         const struct pyro_json_value *req)
{
    static const char *const fields[] = {"op", "shell_id", "signal", NULL};
    struct pyro_shell *sh = request_shell(conn, channel, req, "shell_signal", fields);
    if (!sh)
        return;
    const struct pyro_json_value *name = pyro_json_get(req, "signal");
    int signo = pyro_json_is_cstring(name) ? pyro_signal_from_name(name->str) : -1;
    if (signo < 0) {
        struct pyro_error e;
        pyro_error_set(&e, PYRO_ERR_INVALID_ARGUMENT, 0,
                       "shell_signal: signal must be one of INT, TERM, KILL, HUP, QUIT, USR1, "
                       "USR2");
        pyro_send_error(conn, channel, &e);
        return;
    }
    /* The foreground job is what ^C would reach; without one (the shell's session is
     * gone, or tcgetpgrp fails) the shell's own group, unless it was reaped (its id may
     * be reused by now). */
    pid_t fg = sh->master_fd >= 0 ? tcgetpgrp(sh->master_fd) : -1;
    if (fg > 0)
        pyro_proc_kill_group(fg, signo);
    else if (!sh->reaped)
        pyro_proc_kill_group(sh->pid, signo);
    send_id_result(conn, channel, sh->id);
}

static void shell_close(struct pyro_conn *conn, uint32_t channel,
                        const struct pyro_json_value *req)
{
    static const char *const fields[] = {"op", "shell_id", NULL};
    struct pyro_shell *sh = request_shell(conn, channel, req, "shell_close", fields);
    if (!sh)
        return;
    char buf[256];
    struct pyro_json_writer w;
    pyro_result_begin(&w, buf, sizeof buf, "shell_id", sh->id);
    pyro_json_key(&w, "closed");
    pyro_json_bool(&w, true);
    pyro_json_object_end(&w);
    LOG_DEBUG("shell %s: closed", sh->id);
    pyro_shell_release(sh);
    pyro_send_control(conn, channel, &w);
}

static void write_entry(struct pyro_json_writer *w, struct pyro_shell *sh)
{
    pyro_shell_pump(sh);
    pyro_json_object_begin(w);
    pyro_json_key(w, "shell_id");
    pyro_json_string(w, sh->id);
    pyro_json_key(w, "pid");
    pyro_json_int(w, sh->pid);
    pyro_json_key(w, "cols");
    pyro_json_int(w, sh->cols);
    pyro_json_key(w, "rows");
    pyro_json_int(w, sh->rows);
    pyro_json_key(w, "available");
    pyro_json_int(w, (int64_t)sh->ring.end);
    pyro_write_wait_state(w, sh->reaped, sh->status);
    pyro_json_object_end(w);
}

static void shell_list(struct pyro_conn *conn, uint32_t channel,
                       const struct pyro_json_value *req)
{
    static char buf[PYRO_MAX_SHELLS * 512];
    struct pyro_json_writer w;
    if (!pyro_list_begin(conn, channel, req, "shell_list", &w, buf, sizeof buf, "shells"))
        return;
    for (size_t i = 0; i < PYRO_MAX_SHELLS; i++)
        if (pyro_shell_at(i))
            write_entry(&w, pyro_shell_at(i));
    pyro_json_array_end(&w);
    pyro_json_object_end(&w);
    pyro_send_control(conn, channel, &w);
}

static const struct pyro_op ops[] = {
    {"shell_open", pyro_shell_open},
    {"shell_read", shell_read},
    {"shell_write", shell_write},
    {"shell_signal", shell_signal},
    {"shell_close", shell_close},
    {"shell_list", shell_list},
    {NULL, NULL},
};

/* Shells answer every op within the call and belong to no connection: no busy
 * channels, no stdin frames, nothing to drop with a connection. */
const struct pyro_op_group pyro_shell_ops = {
    .name = "shell",
    .ops = ops,
    .poll_add = pyro_shell_poll_add,
    .tick = pyro_shell_tick,
};
