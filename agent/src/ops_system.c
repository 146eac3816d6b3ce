/* The system ops: hello (handshake, RNG reseed, clock, hostname, workspace root),
 * shutdown, and signal (to the exec running on another channel). */
#include "agent.h"
#include "entropy.h"
#include "exec.h"
#include "files.h"
#include "init.h"
#include "log.h"
#include "ops.h"
#include "request.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char reply_buf[PYRO_MAX_CONTROL_BYTES];

/* hello's optional entropy: exactly PYRO_ENTROPY_BYTES in base64 (entropy.h). */
static bool hello_entropy(const struct pyro_json_value *req, uint8_t *bytes, bool *has,
                          struct pyro_error *e)
{
    const struct pyro_json_value *v = pyro_json_get(req, "entropy");
    size_t len = 0;
    *has = v != NULL;
    if (v && (!pyro_json_is_cstring(v) ||
              !pyro_base64_decode(v->str, v->len, bytes, PYRO_ENTROPY_BYTES, &len) ||
              len != PYRO_ENTROPY_BYTES)) {
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0,
                       "hello: entropy must be %d bytes in base64", PYRO_ENTROPY_BYTES);
        return false;
    }
    return true;
}

/* Applies hello's entropy, time_ms and hostname (only a guest agent owns the RNG and
 * the clock) and creates its workspace_root (in every mode). Everything is validated
 * before anything is done. */
static bool hello_apply(const struct pyro_json_value *req, struct pyro_error *e)
{
    int64_t time_ms = 0;
    bool has_time = false, has_workspace = false, has_entropy = false;
    char workspace[PATH_MAX];
    uint8_t entropy[PYRO_ENTROPY_BYTES];
    if (!pyro_field_int(req, "hello", "time_ms", 0, INT64_MAX, &has_time, &time_ms, e) ||
        !hello_entropy(req, entropy, &has_entropy, e))
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
    if (has_entropy && pyro_entropy_add(entropy, sizeof entropy) != 0) {
        pyro_error_set(e, PYRO_ERR_INTERNAL, errno, "hello: reseed the RNG: %s",
                       strerror(errno));
        return false;
    }
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
    static const char *const fields[] = {"op",      "time_ms", "hostname", "workspace_root",
                                         "entropy", NULL};
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

static const struct pyro_op ops[] = {
    {"hello", handle_hello},
    {"shutdown", handle_shutdown},
    {"signal", handle_signal},
    {NULL, NULL},
};

const struct pyro_op_group pyro_system_ops = {.name = "system", .ops = ops};
