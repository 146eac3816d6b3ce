#include "request.h"

#include "agent.h"
#include "exec.h"
#include "file_list.h"
#include "file_write.h"
#include "files.h"
#include "init.h"
#include "log.h"
#include "shell.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct pyro_json_value json_values[PYRO_JSON_MAX_VALUES];
static char json_strings[PYRO_MAX_CONTROL_BYTES + 1];
static char reply_buf[PYRO_MAX_CONTROL_BYTES];

void pyro_error_set(struct pyro_error *e, const char *code, int err, const char *fmt, ...)
{
    e->code = code;
    e->err = err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

void pyro_send_control(struct pyro_conn *conn, uint32_t channel, struct pyro_json_writer *w)
{
    long len = pyro_json_finish(w);
    if (len < 0) {
        static const char overflow[] =
            "{\"type\":\"error\",\"code\":\"internal\",\"message\":\"reply too large\"}";
        LOG_ERROR("reply on channel %u does not fit in a control frame", channel);
        pyro_conn_send(conn, channel, PYRO_FRAME_CONTROL, overflow, sizeof overflow - 1);
        return;
    }
    pyro_conn_send(conn, channel, PYRO_FRAME_CONTROL, w->buf, (size_t)len);
}

void pyro_send_error(struct pyro_conn *conn, uint32_t channel, const struct pyro_error *e)
{
    struct pyro_json_writer w;
    LOG_DEBUG("channel %u: %s: %s", channel, e->code, e->message);
    pyro_json_writer_init(&w, reply_buf, sizeof reply_buf);
    pyro_json_object_begin(&w);
    pyro_json_key(&w, "type");
    pyro_json_string(&w, "error");
    pyro_json_key(&w, "code");
    pyro_json_string(&w, e->code);
    pyro_json_key(&w, "message");
    pyro_json_string(&w, e->message);
    if (e->err != 0) {
        pyro_json_key(&w, "errno");
        pyro_json_int(&w, e->err);
    }
    pyro_json_object_end(&w);
    pyro_send_control(conn, channel, &w);
}

void pyro_send_result(struct pyro_conn *conn, uint32_t channel)
{
    static const char result[] = "{\"type\":\"result\"}";
    pyro_conn_send(conn, channel, PYRO_FRAME_CONTROL, result, sizeof result - 1);
}

bool pyro_fields_known(const struct pyro_json_value *req, const char *op,
                       const char *const *allowed, struct pyro_error *e)
{
    for (const struct pyro_json_value *m = req->child; m; m = m->next) {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strlen(*a) == m->key_len && memcmp(*a, m->key, m->key_len) == 0;
        if (!ok) {
            pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0, "%s: unknown field \"%.64s\"", op,
                           m->key);
            return false;
        }
    }
    return true;
}

bool pyro_field_bool(const struct pyro_json_value *req, const char *op, const char *field,
                     bool *out, struct pyro_error *e)
{
    const struct pyro_json_value *v = pyro_json_get(req, field);
    if (!v)
        return true;
    if (v->type != PYRO_JSON_BOOL) {
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0, "%s: %s must be a boolean", op, field);
        return false;
    }
    *out = v->boolean;
    return true;
}

bool pyro_field_int(const struct pyro_json_value *req, const char *op, const char *field,
                    int64_t min, int64_t max, bool *present, int64_t *out, struct pyro_error *e)
{
    const struct pyro_json_value *v = pyro_json_get(req, field);
    if (present)
        *present = v != NULL;
    if (!v)
        return true;
    if (v->type != PYRO_JSON_NUMBER || !v->is_int || v->integer < min || v->integer > max) {
        if (max >= INT64_MAX / 2)
            pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0, "%s: %s must be an integer >= %lld",
                           op, field, (long long)min);
        else
            pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0,
                           "%s: %s must be an integer from %lld to %lld", op, field,
                           (long long)min, (long long)max);
        return false;
    }
    *out = v->integer;
    return true;
}

/* Applies hello's time_ms and hostname (only a guest agent owns the clock) and creates
 * its workspace_root (in every mode). Everything is validated before anything is done. */
static bool hello_apply(const struct pyro_json_value *req, struct pyro_error *e)
{
    int64_t time_ms = 0;
    bool has_time = false, has_workspace = false;
    char workspace[PATH_MAX];
    if (!pyro_field_int(req, "hello", "time_ms", 0, INT64_MAX, &has_time, &time_ms, e))
        return false;
    const struct pyro_json_value *host = pyro_json_get(req, "hostname");
    if (host && (!pyro_json_is_cstring(host) || host->len == 0 || host->len > 64)) {
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0,
                       "hello: hostname must be a string of 1 to 64 bytes");
        return false;
    }
    if (!pyro_files_parse_workspace_root(req, workspace, sizeof workspace, &has_workspace, e))
        return false;
    if (has_workspace && !pyro_files_make_workspace_root(workspace, e))
        return false;
    if (!pyro_agent.guest_mode)
        return true;
    if (has_time) {
        struct timespec ts = {.tv_sec = time_ms / 1000, .tv_nsec = (time_ms % 1000) * 1000000};
        if (clock_settime(CLOCK_REALTIME, &ts) != 0) {
            pyro_error_set(e, PYRO_ERR_INTERNAL, errno, "hello: set clock: %s",
                           strerror(errno));
            return false;
        }
    }
    if (host && sethostname(host->str, host->len) != 0) {
        pyro_error_set(e, PYRO_ERR_INTERNAL, errno, "hello: sethostname: %s", strerror(errno));
        return false;
    }
    return true;
}

static void handle_hello(struct pyro_conn *conn, uint32_t channel,
                         const struct pyro_json_value *req)
{
    static const char *const fields[] = {"op", "time_ms", "hostname", "workspace_root", NULL};
    struct pyro_error e;
    if (!pyro_fields_known(req, "hello", fields, &e) || !hello_apply(req, &e)) {
        pyro_send_error(conn, channel, &e);
        return;
    }
    struct pyro_json_writer w;
    pyro_json_writer_init(&w, reply_buf, sizeof reply_buf);
    pyro_json_object_begin(&w);
    pyro_json_key(&w, "type");
    pyro_json_string(&w, "result");
    pyro_json_key(&w, "protocol");
    pyro_json_int(&w, PYRO_PROTOCOL_VERSION);
    pyro_json_key(&w, "agent_version");
    pyro_json_string(&w, PYRO_AGENT_VERSION);
    pyro_json_key(&w, "pid1");
    pyro_json_bool(&w, pyro_agent.pid1);
    pyro_json_key(&w, "init_errors");
    pyro_json_array_begin(&w);
    for (size_t i = 0; i < pyro_init_error_count(); i++)
        pyro_json_string(&w, pyro_init_error_at(i));
    pyro_json_array_end(&w);
    pyro_json_object_end(&w);
    pyro_send_control(conn, channel, &w);
}

static void handle_shutdown(struct pyro_conn *conn, uint32_t channel,
                            const struct pyro_json_value *req)
{
    static const char *const fields[] = {"op", "power_off", NULL};
    struct pyro_error e;
    bool power_off = false;
    if (!pyro_fields_known(req, "shutdown", fields, &e) ||
        !pyro_field_bool(req, "shutdown", "power_off", &power_off, &e)) {
        pyro_send_error(conn, channel, &e);
        return;
    }
    sync();
    pyro_send_result(conn, channel);
    pyro_agent.shutdown_requested = true;
    pyro_agent.power_off_requested = power_off;
}

static void handle_signal(struct pyro_conn *conn, uint32_t channel,
                          const struct pyro_json_value *req)
{
    static const char *const fields[] = {"op", "target_channel", "signal", NULL};
    struct pyro_error e;
    int64_t target = 0;
    bool has_target = false;
    if (!pyro_fields_known(req, "signal", fields, &e) ||
        !pyro_field_int(req, "signal", "target_channel", 1, UINT32_MAX, &has_target, &target,
                        &e)) {
        pyro_send_error(conn, channel, &e);
        return;
    }
    const struct pyro_json_value *name = pyro_json_get(req, "signal");
    int signo = pyro_json_is_cstring(name) ? pyro_signal_from_name(name->str) : -1;
    if (!has_target || signo < 0) {
        pyro_error_set(&e, PYRO_ERR_INVALID_ARGUMENT, 0,
                       has_target ? "signal: signal must be one of INT, TERM, KILL, HUP, "
                                    "QUIT, USR1, USR2"
                                  : "signal: target_channel is required");
        pyro_send_error(conn, channel, &e);
        return;
    }
    if (pyro_exec_signal(conn, (uint32_t)target, signo) != 0) {
        pyro_error_set(&e, PYRO_ERR_NOT_FOUND, 0, "signal: no running exec on channel %lld",
                       (long long)target);
        pyro_send_error(conn, channel, &e);
        return;
    }
    pyro_send_result(conn, channel);
}

static void dispatch_op(struct pyro_conn *conn, uint32_t channel,
                        const struct pyro_json_value *req)
{
    const struct pyro_json_value *op = pyro_json_get(req, "op");
    struct pyro_error e;
    if (!pyro_json_is_cstring(op)) {
        pyro_error_set(&e, PYRO_ERR_INVALID_ARGUMENT, 0, "request needs an \"op\" string");
        pyro_send_error(conn, channel, &e);
        return;
    }
    LOG_DEBUG("%s: channel %u: op %s", conn->name, channel, op->str);
    if (pyro_shell_dispatch(conn, channel, op->str, req))
        return;
    if (strcmp(op->str, "hello") == 0)
        handle_hello(conn, channel, req);
    else if (strcmp(op->str, "exec") == 0)
        pyro_exec_start(conn, channel, req);
    else if (strcmp(op->str, "signal") == 0)
        handle_signal(conn, channel, req);
    else if (strcmp(op->str, "shutdown") == 0)
        handle_shutdown(conn, channel, req);
    else if (strcmp(op->str, "file_list") == 0)
        pyro_file_list(conn, channel, req);
    else if (strcmp(op->str, "file_read") == 0)
        pyro_file_read(conn, channel, req);
    else if (strcmp(op->str, "file_write") == 0)
        pyro_file_write_start(conn, channel, req);
    else if (strcmp(op->str, "file_delete") == 0)
        pyro_file_delete(conn, channel, req);
    else if (strcmp(op->str, "mkdir") == 0)
        pyro_file_mkdir(conn, channel, req);
    else {
        pyro_error_set(&e, PYRO_ERR_INVALID_ARGUMENT, 0, "unknown op \"%.64s\"", op->str);
        pyro_send_error(conn, channel, &e);
    }
}

static void handle_control(struct pyro_conn *conn, uint32_t channel, const uint8_t *payload,
                           uint32_t len)
{
    struct pyro_error e;
    if (pyro_exec_channel_busy(conn, channel) || pyro_file_write_channel_busy(conn, channel)) {
        /* A second terminal frame would break the channel's contract, and replying
         * nothing is the only other choice: the host sent on a busy channel. */
        LOG_ERROR("%s: control frame on channel %u, which has a running exec or "
                  "file_write; dropped (requests need a fresh channel; signal uses "
                  "target_channel)",
                  conn->name, channel);
        return;
    }
    if (channel == 0) {
        pyro_error_set(&e, PYRO_ERR_INVALID_ARGUMENT, 0, "channel 0 carries no requests");
    } else if (len > PYRO_MAX_CONTROL_BYTES) {
        pyro_error_set(&e, PYRO_ERR_INVALID_ARGUMENT, 0,
                       "control message is %u bytes; the limit is %d", len,
                       PYRO_MAX_CONTROL_BYTES);
    } else {
        struct pyro_json_parser parser = {
            .values = json_values,
            .max_values = PYRO_JSON_MAX_VALUES,
            .strings = json_strings,
            .strings_cap = sizeof json_strings,
            .max_input_bytes = PYRO_MAX_CONTROL_BYTES,
        };
        const struct pyro_json_value *req =
            pyro_json_parse(&parser, (const char *)payload, len);
        if (req && req->type == PYRO_JSON_OBJECT) {
            dispatch_op(conn, channel, req);
            return;
        }
        pyro_error_set(&e, PYRO_ERR_INVALID_ARGUMENT, 0, "%s",
                       req ? "a control message must be a JSON object" : parser.error);
    }
    pyro_send_error(conn, channel, &e);
}

void pyro_request_frame(struct pyro_conn *conn, const struct pyro_frame_header *header,
                        const uint8_t *payload)
{
    switch (header->type) {
    case PYRO_FRAME_CONTROL:
        handle_control(conn, header->channel, payload, header->payload_len);
        return;
    case PYRO_FRAME_STDIN:
    case PYRO_FRAME_STDIN_EOF:
        if (!pyro_exec_stdin(conn, header->channel, payload, header->payload_len,
                             header->type == PYRO_FRAME_STDIN_EOF) &&
            !pyro_file_write_stdin(conn, header->channel, payload, header->payload_len,
                                   header->type == PYRO_FRAME_STDIN_EOF))
            LOG_DEBUG("%s: stdin frame for channel %u, which has no process reading "
                      "stdin and no file_write; dropped",
                      conn->name, header->channel);
        return;
    default:
        LOG_ERROR("%s: unexpected frame type %u on channel %u; dropped", conn->name,
                  header->type, header->channel);
        return;
    }
}

void pyro_request_drop_conn(struct pyro_conn *conn)
{
    pyro_exec_drop_conn(conn);
    pyro_file_write_drop_conn(conn);
}
