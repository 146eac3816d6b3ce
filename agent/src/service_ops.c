/* service_list and service_logs: read-only views of the service table. */
#include "exec.h"
#include "service_table.h"

#include <stdlib.h>

void pyro_service_write_exit(struct pyro_json_writer *w, const struct pyro_service *s)
{
    pyro_write_wait_state(w, s->reaped, s->status);
    pyro_json_key(w, "ended_at_ms");
    if (s->reaped)
        pyro_json_int(w, s->ended_at_ms);
    else
        pyro_json_null(w);
}

static void write_entry(struct pyro_json_writer *w, const struct pyro_service *s)
{
    pyro_json_object_begin(w);
    pyro_json_key(w, "name");
    pyro_json_string(w, s->name);
    pyro_json_key(w, "pid");
    pyro_json_int(w, s->pid);
    pyro_json_key(w, "started_at_ms");
    pyro_json_int(w, s->started_at_ms);
    pyro_service_write_exit(w, s);
    pyro_json_object_end(w);
}

/* The used entry started after `after` and before every other such entry. */
static const struct pyro_service *next_started(uint64_t after)
{
    const struct pyro_service *next = NULL;
    for (size_t i = 0; i < PYRO_MAX_SERVICES; i++) {
        const struct pyro_service *s = &pyro_services[i];
        if (s->used && s->seq > after && (!next || s->seq < next->seq))
            next = s;
    }
    return next;
}

/* In start order. 32 entries of at most ~250 bytes fit a control frame easily. */
void pyro_service_list(struct pyro_conn *conn, uint32_t channel,
                       const struct pyro_json_value *req)
{
    static char buf[PYRO_MAX_CONTROL_BYTES];
    struct pyro_json_writer w;
    if (!pyro_list_begin(conn, channel, req, "service_list", &w, buf, sizeof buf, "services"))
        return;
    for (const struct pyro_service *s = next_started(0); s; s = next_started(s->seq))
        write_entry(&w, s);
    pyro_json_array_end(&w);
    pyro_json_object_end(&w);
    pyro_send_control(conn, channel, &w);
}

/* Sends one stream's tail as frames of at most PYRO_OUTPUT_CHUNK_BYTES. */
static bool send_tail(struct pyro_conn *conn, uint32_t channel, uint8_t frame_type,
                      const struct pyro_service_stream *st, int64_t tail_lines,
                      int64_t max_bytes, bool *truncated, struct pyro_error *e)
{
    struct pyro_log_tail tail;
    if (!pyro_service_log_tail(st->log.path, (uint64_t)tail_lines, (size_t)max_bytes, &tail, e))
        return false;
    for (size_t off = 0; off < tail.len; off += PYRO_OUTPUT_CHUNK_BYTES) {
        size_t n = tail.len - off;
        pyro_conn_send(conn, channel, frame_type, tail.data + off,
                       n < PYRO_OUTPUT_CHUNK_BYTES ? n : PYRO_OUTPUT_CHUNK_BYTES);
    }
    free(tail.data);
    *truncated = tail.truncated || st->log.discarded;
    return true;
}

/* The service a service_logs request names, with its limits; NULL with e set. */
static struct pyro_service *parse_logs(const struct pyro_json_value *req, int64_t *tail_lines,
                                       int64_t *max_bytes, struct pyro_error *e)
{
    static const char *const fields[] = {"op", "name", "tail_lines", "max_bytes", NULL};
    char name[PYRO_NAME_MAX + 1];
    if (!pyro_fields_known(req, "service_logs", fields, e) ||
        !pyro_field_name(req, "service_logs", "name", name, e) ||
        !pyro_field_int(req, "service_logs", "tail_lines", 1, PYRO_SERVICE_MAX_TAIL_LINES, NULL,
                        tail_lines, e) ||
        !pyro_field_int(req, "service_logs", "max_bytes", 1, PYRO_SERVICE_MAX_LOG_READ_BYTES,
                        NULL, max_bytes, e))
        return NULL;
    struct pyro_service *s = pyro_service_find(name);
    if (!s)
        pyro_error_set(e, PYRO_ERR_NOT_FOUND, 0, "no service named %s", name);
    return s;
}

void pyro_service_logs(struct pyro_conn *conn, uint32_t channel,
                       const struct pyro_json_value *req)
{
    int64_t tail_lines = PYRO_SERVICE_DEFAULT_TAIL_LINES;
    int64_t max_bytes = PYRO_SERVICE_DEFAULT_LOG_READ_BYTES;
    bool out_truncated = false, err_truncated = false;
    struct pyro_error e;
    struct pyro_service *s = parse_logs(req, &tail_lines, &max_bytes, &e);
    if (s)
        pyro_service_pump_now(s, PYRO_SERVICE_MAX_LOG_READ_BYTES);
    /* Frames may already be out when stderr fails; the error still ends the channel. */
    if (!s ||
        !send_tail(conn, channel, PYRO_FRAME_STDOUT, &s->out, tail_lines, max_bytes,
                   &out_truncated, &e) ||
        !send_tail(conn, channel, PYRO_FRAME_STDERR, &s->err, tail_lines, max_bytes,
                   &err_truncated, &e)) {
        pyro_send_error(conn, channel, &e);
        return;
    }
    static char buf[512];
    struct pyro_json_writer w;
    pyro_result_begin(&w, buf, sizeof buf, "name", s->name);
    pyro_json_key(&w, "stdout_truncated");
    pyro_json_bool(&w, out_truncated);
    pyro_json_key(&w, "stderr_truncated");
    pyro_json_bool(&w, err_truncated);
    pyro_json_object_end(&w);
    pyro_send_control(conn, channel, &w);
}
