#include "request.h"

#include "log.h"
#include "ops.h"
#include "proc.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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

void pyro_result_begin(struct pyro_json_writer *w, char *buf, size_t cap, const char *key,
                       const char *value)
{
    pyro_json_writer_init(w, buf, cap);
    pyro_json_object_begin(w);
    pyro_json_key(w, "type");
    pyro_json_string(w, "result");
    pyro_json_key(w, key);
    pyro_json_string(w, value);
}

bool pyro_list_begin(struct pyro_conn *conn, uint32_t channel,
                     const struct pyro_json_value *req, const char *op,
                     struct pyro_json_writer *w, char *buf, size_t cap, const char *key)
{
    static const char *const fields[] = {"op", NULL};
    struct pyro_error e;
    if (!pyro_fields_known(req, op, fields, &e)) {
        pyro_send_error(conn, channel, &e);
        return false;
    }
    pyro_json_writer_init(w, buf, cap);
    pyro_json_object_begin(w);
    pyro_json_key(w, "type");
    pyro_json_string(w, "result");
    pyro_json_key(w, key);
    pyro_json_array_begin(w);
    return true;
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

/* ASCII only, whatever the locale. */
static bool name_alnum(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool pyro_name_valid(const char *s, size_t len)
{
    if (len == 0 || len > PYRO_NAME_MAX || !name_alnum(s[0]))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!name_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return false;
    return true;
}

bool pyro_field_name(const struct pyro_json_value *req, const char *op, const char *field,
                     char *out, struct pyro_error *e)
{
    const struct pyro_json_value *v = pyro_json_get(req, field);
    if (!v || v->type != PYRO_JSON_STRING || !pyro_name_valid(v->str, v->len)) {
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0,
                       "%s: %s must be 1 to %d characters of A-Z a-z 0-9 . _ - starting with "
                       "a letter or digit",
                       op, field, PYRO_NAME_MAX);
        return false;
    }
    memcpy(out, v->str, v->len + 1);
    return true;
}

static void dispatch_op(struct pyro_conn *conn, uint32_t channel,
                        const struct pyro_json_value *req)
{
    const struct pyro_json_value *name = pyro_json_get(req, "op");
    struct pyro_error e;
    if (!pyro_json_is_cstring(name)) {
        pyro_error_set(&e, PYRO_ERR_INVALID_ARGUMENT, 0, "request needs an \"op\" string");
        pyro_send_error(conn, channel, &e);
        return;
    }
    LOG_DEBUG("%s: channel %u: op %s", conn->name, channel, name->str);
    const struct pyro_op *op = pyro_ops_find(name->str);
    if (!op) {
        /* unsupported, not invalid_argument: the host can tell an agent too old for an
         * op from a malformed request. */
        pyro_error_set(&e, PYRO_ERR_UNSUPPORTED, 0, "unknown op \"%.64s\"", name->str);
        pyro_send_error(conn, channel, &e);
        return;
    }
    op->handle(conn, channel, req);
}

static void handle_control(struct pyro_conn *conn, uint32_t channel, const uint8_t *payload,
                           uint32_t len)
{
    struct pyro_error e;
    if (pyro_ops_channel_busy(conn, channel)) {
        /* A second terminal frame would break the channel's contract, and replying
         * nothing is the only other choice: the host sent on a busy channel. */
        LOG_ERROR("%s: control frame on channel %u, whose request has not ended (a "
                  "running exec, a file_write waiting for content, a service_stop); "
                  "dropped (requests need a fresh channel; signal uses target_channel)",
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
        if (!pyro_ops_take_stdin(conn, header->channel, payload, header->payload_len,
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
    /* Kill first: the owners forget their children's pids in drop_conn. */
    pyro_proc_drop_conn(conn);
    pyro_ops_drop_conn(conn);
}
