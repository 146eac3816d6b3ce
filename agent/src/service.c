/* The service table and its lifecycle: start, output into the logs, reap, stop with
 * escalation. The read-only ops (list, logs) are in service_ops.c. */
#include "service.h"

#include "agent.h"
#include "exec.h"
#include "log.h"
#include "ops.h"
#include "path.h"
#include "proc.h"
#include "service_table.h"
#include "spawn.h"
#include "sys.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct pyro_service pyro_services[PYRO_MAX_SERVICES];
static uint64_t next_seq = 1;

int64_t pyro_wall_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct pyro_service *pyro_service_find(const char *name)
{
    for (size_t i = 0; i < PYRO_MAX_SERVICES; i++)
        if (pyro_services[i].used && strcmp(pyro_services[i].name, name) == 0)
            return &pyro_services[i];
    return NULL;
}

/* --- output --- */

/* Reads one chunk of a stream's pipe into its log; closes the pipe at EOF. Returns the
 * bytes read (0 when nothing was waiting or it closed). */
static size_t pump(struct pyro_service_stream *st)
{
    static uint8_t buf[PYRO_OUTPUT_CHUNK_BYTES];
    if (st->pipe_fd < 0)
        return 0;
    ssize_t n = read(st->pipe_fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (n <= 0) {
        if (n < 0)
            LOG_ERRNO("service log pipe");
        pyro_close(&st->pipe_fd);
        return 0;
    }
    pyro_service_log_append(&st->log, buf, (size_t)n);
    return (size_t)n;
}

void pyro_service_pump_now(struct pyro_service *s, size_t max_bytes)
{
    size_t moved = 0;
    for (size_t n; moved < max_bytes && (n = pump(&s->out)) > 0;)
        moved += n;
    moved = 0;
    for (size_t n; moved < max_bytes && (n = pump(&s->err)) > 0;)
        moved += n;
}

enum { ROLE_STDOUT, ROLE_STDERR };

static void on_ready(const struct pyro_poll_tag *tag, short revents, int64_t now_ms)
{
    struct pyro_service *s = tag->object;
    struct pyro_service_stream *st = tag->role == ROLE_STDOUT ? &s->out : &s->err;
    (void)revents;
    (void)now_ms;
    if (s->used && st->pipe_fd == tag->fd)
        pump(st);
}

/* --- lifecycle --- */

static void close_streams(struct pyro_service *s)
{
    pyro_close(&s->out.pipe_fd);
    pyro_close(&s->err.pipe_fd);
    pyro_service_log_close(&s->out.log);
    pyro_service_log_close(&s->err.log);
}

static bool drained(const struct pyro_service *s)
{
    return s->out.pipe_fd < 0 && s->err.pipe_fd < 0;
}

static void send_stop_reply(struct pyro_service *s)
{
    static char buf[1024];
    struct pyro_json_writer w;
    pyro_result_begin(&w, buf, sizeof buf, "name", s->name);
    pyro_service_write_exit(&w, s);
    pyro_json_key(&w, "killed");
    pyro_json_bool(&w, s->killed);
    pyro_json_object_end(&w);
    pyro_send_control(s->stop_conn, s->stop_channel, &w);
    s->stop_conn = NULL;
}

/* Ends an exited entry's output (what is still in the pipes is lost) and answers a
 * waiting service_stop. */
static void finish(struct pyro_service *s)
{
    close_streams(s);
    if (s->stop_conn)
        send_stop_reply(s);
    s->stopping = false;
}

/* Frees a slot. A slot never used holds zeroes, not -1 descriptors: nothing of it is
 * closed, it is only made ready for use. */
static void release(struct pyro_service *s)
{
    if (s->used) {
        if (!s->reaped)
            pyro_proc_forget(s->pid);
        finish(s);
    }
    memset(s, 0, sizeof *s);
    s->out.pipe_fd = s->err.pipe_fd = s->out.log.fd = s->err.log.fd = -1;
}

static void on_reaped(void *owner, pid_t pid, int status, int64_t now_ms)
{
    struct pyro_service *s = owner;
    if (!s->used || s->reaped || s->pid != pid)
        return;
    s->reaped = true;
    s->status = status;
    s->ended_at_ms = pyro_wall_ms();
    s->ended_seq = next_seq++;
    s->drain_until_ms = now_ms + PYRO_DRAIN_MS;
    /* As for exec: the rest of its session must not outlive the service or hold its
     * pipes open. */
    pyro_proc_kill_session(pid, SIGKILL);
}

static void service_tick(int64_t now_ms)
{
    for (size_t i = 0; i < PYRO_MAX_SERVICES; i++) {
        struct pyro_service *s = &pyro_services[i];
        if (!s->used)
            continue;
        if (!s->reaped && s->stopping && !s->killed && now_ms >= s->kill_at_ms) {
            LOG_DEBUG("service %s: not gone after TERM; killing its group", s->name);
            pyro_proc_kill_session(s->pid, SIGKILL);
            s->killed = true;
        }
        if (s->reaped && (drained(s) || now_ms >= s->drain_until_ms) &&
            (s->stopping || s->out.log.fd >= 0 || s->err.log.fd >= 0))
            finish(s);
    }
}

static void service_poll_add(struct pyro_pollset *ps)
{
    for (size_t i = 0; i < PYRO_MAX_SERVICES; i++) {
        struct pyro_service *s = &pyro_services[i];
        if (!s->used)
            continue;
        if (s->out.pipe_fd >= 0)
            pyro_pollset_watch(ps, s->out.pipe_fd, POLLIN, on_ready, s, ROLE_STDOUT);
        if (s->err.pipe_fd >= 0)
            pyro_pollset_watch(ps, s->err.pipe_fd, POLLIN, on_ready, s, ROLE_STDERR);
        if (s->reaped && (s->stopping || s->out.log.fd >= 0 || s->err.log.fd >= 0))
            pyro_pollset_timer(ps, s->drain_until_ms);
        else if (!s->reaped && s->stopping && !s->killed)
            pyro_pollset_timer(ps, s->kill_at_ms);
    }
}

/* --- service_start --- */

struct start_request {
    char name[PYRO_NAME_MAX + 1];
    char log_dir[PATH_MAX]; /* under --root */
    int64_t max_log_bytes;
    struct pyro_spawn_request spawn;
};

static bool parse_log_dir(const struct pyro_json_value *req, char *out, size_t cap,
                          struct pyro_error *e)
{
    const struct pyro_json_value *v = pyro_json_get(req, "log_dir");
    const char *dir = PYRO_SERVICE_LOG_DIR;
    if (v) {
        if (!pyro_json_is_cstring(v) || v->str[0] != '/' || pyro_path_has_dotdot(v->str)) {
            pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0,
                           "service_start: log_dir must be an absolute path without ..");
            return false;
        }
        dir = v->str;
    }
    const char *root = pyro_agent.root_dir ? pyro_agent.root_dir : "";
    int n = snprintf(out, cap, "%s%s", root, dir);
    /* Room for "/NAME.stdout.1" after it. */
    if (n < 0 || (size_t)n + PYRO_NAME_MAX + 16 >= cap) {
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0, "service_start: log_dir is too long");
        return false;
    }
    return true;
}

static bool parse_start(const struct pyro_json_value *json, struct start_request *r,
                        struct pyro_error *e)
{
    static const char *const fields[] = {"op",  "name",    "argv",          "env",
                                         "cwd", "log_dir", "max_log_bytes", NULL};
    r->max_log_bytes = PYRO_SERVICE_DEFAULT_LOG_BYTES;
    return pyro_fields_known(json, "service_start", fields, e) &&
           pyro_field_name(json, "service_start", "name", r->name, e) &&
           pyro_field_int(json, "service_start", "max_log_bytes", PYRO_SERVICE_MIN_LOG_BYTES,
                          PYRO_SERVICE_MAX_LOG_BYTES, NULL, &r->max_log_bytes, e) &&
           parse_log_dir(json, r->log_dir, sizeof r->log_dir, e) &&
           pyro_spawn_parse_process(json, "service_start", true, &r->spawn, e);
}

static struct pyro_service *free_slot(void)
{
    for (size_t i = 0; i < PYRO_MAX_SERVICES; i++)
        if (!pyro_services[i].used)
            return &pyro_services[i];
    return NULL;
}

static struct pyro_service *oldest_exited(void)
{
    struct pyro_service *oldest = NULL;
    for (size_t i = 0; i < PYRO_MAX_SERVICES; i++) {
        struct pyro_service *s = &pyro_services[i];
        if (s->used && s->reaped && (!oldest || s->ended_seq < oldest->ended_seq))
            oldest = s;
    }
    return oldest;
}

/* The slot for a new entry named name: its own exited entry, a free one, or the entry
 * that exited first. NULL (busy) when the name runs or every slot runs. */
static struct pyro_service *claim_slot(const char *name, struct pyro_error *e)
{
    struct pyro_service *slot = pyro_service_find(name);
    if (slot && !slot->reaped) {
        pyro_error_set(e, PYRO_ERR_BUSY, 0, "service %s is already running", name);
        return NULL;
    }
    if (!slot)
        slot = free_slot();
    if (!slot)
        slot = oldest_exited();
    if (!slot) {
        pyro_error_set(e, PYRO_ERR_BUSY, 0,
                       "%d services are running; stop one before starting another",
                       PYRO_MAX_SERVICES);
        return NULL;
    }
    /* Nothing can read the old entry's logs once it is gone; kept, they would pile up
     * (in /run: memory) with every new name. A new entry of the same name and log_dir
     * starts them again anyway. */
    if (slot->used) {
        pyro_service_log_remove(&slot->out.log);
        pyro_service_log_remove(&slot->err.log);
    }
    release(slot);
    return slot;
}

static bool open_log(struct pyro_service_log *log, const struct start_request *r,
                     const char *stream, struct pyro_error *e)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%s.%s", r->log_dir, r->name, stream);
    if (n < 0 || (size_t)n >= sizeof path) {
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0, "service_start: log_dir is too long");
        return false;
    }
    return pyro_service_log_open(log, path, (uint64_t)r->max_log_bytes, e);
}

/* Creates the log directory and both logs, then the process. */
static bool launch(struct pyro_service *s, const struct start_request *r, struct pyro_error *e)
{
    if (pyro_mkdir_p(r->log_dir, PYRO_SERVICE_LOG_DIR_MODE) != 0) {
        pyro_error_set(e, errno == ENOTDIR ? PYRO_ERR_INVALID_ARGUMENT : PYRO_ERR_INTERNAL,
                       errno, "service_start: log_dir: %s", strerror(errno));
        return false;
    }
    if (!open_log(&s->out.log, r, "stdout", e) || !open_log(&s->err.log, r, "stderr", e))
        return false;
    struct pyro_spawned child;
    if (!pyro_spawn(&r->spawn, &child, e))
        return false;
    s->pid = child.pid;
    s->out.pipe_fd = child.stdout_fd;
    s->err.pipe_fd = child.stderr_fd;
    if (!pyro_proc_add(child.pid, PYRO_PROC_SERVICE, NULL, on_reaped, s)) {
        pyro_proc_kill_session(child.pid, SIGKILL);
        pyro_error_set(e, PYRO_ERR_BUSY, 0, "service_start: the process table is full");
        return false;
    }
    return true;
}

static void service_start(struct pyro_conn *conn, uint32_t channel,
                          const struct pyro_json_value *json)
{
    static struct start_request r;
    struct pyro_error e;
    struct pyro_service *s;
    if (!parse_start(json, &r, &e) || !(s = claim_slot(r.name, &e))) {
        pyro_send_error(conn, channel, &e);
        return;
    }
    s->used = true;
    strcpy(s->name, r.name);
    s->started_at_ms = pyro_wall_ms();
    s->seq = next_seq++;
    if (!launch(s, &r, &e)) {
        release(s);
        pyro_send_error(conn, channel, &e);
        return;
    }
    LOG_DEBUG("service %s: started %s as pid %d", s->name, r.spawn.argv[0], (int)s->pid);
    static char buf[512];
    struct pyro_json_writer w;
    pyro_result_begin(&w, buf, sizeof buf, "name", s->name);
    pyro_json_key(&w, "pid");
    pyro_json_int(&w, s->pid);
    pyro_json_key(&w, "started_at_ms");
    pyro_json_int(&w, s->started_at_ms);
    pyro_json_object_end(&w);
    pyro_send_control(conn, channel, &w);
}

/* --- service_stop --- */

/* TERM now, KILL at kill_at_ms if the process is not reaped by then (service_tick); the
 * reply goes out once it is reaped and its output drained. */
static void service_stop(struct pyro_conn *conn, uint32_t channel,
                         const struct pyro_json_value *json)
{
    static const char *const fields[] = {"op", "name", "grace_ms", NULL};
    char name[PYRO_NAME_MAX + 1];
    int64_t grace_ms = PYRO_SERVICE_DEFAULT_GRACE_MS;
    struct pyro_error e;
    if (!pyro_fields_known(json, "service_stop", fields, &e) ||
        !pyro_field_name(json, "service_stop", "name", name, &e) ||
        !pyro_field_int(json, "service_stop", "grace_ms", 0, PYRO_SERVICE_MAX_GRACE_MS, NULL,
                        &grace_ms, &e)) {
        pyro_send_error(conn, channel, &e);
        return;
    }
    struct pyro_service *s = pyro_service_find(name);
    if (!s) {
        pyro_error_set(&e, PYRO_ERR_NOT_FOUND, 0, "no service named %s", name);
    } else if (s->stop_conn) {
        pyro_error_set(&e, PYRO_ERR_BUSY, 0, "service %s is already being stopped", name);
    } else {
        s->stop_conn = conn;
        s->stop_channel = channel;
        if (s->reaped) {
            send_stop_reply(s); /* exited already: its record, at once */
            return;
        }
        if (!s->stopping) {
            s->stopping = true;
            s->kill_at_ms = pyro_now_ms() + grace_ms;
            pyro_proc_kill_session(s->pid, SIGTERM);
        }
        return;
    }
    pyro_send_error(conn, channel, &e);
}

static bool service_channel_busy(const struct pyro_conn *conn, uint32_t channel)
{
    for (size_t i = 0; i < PYRO_MAX_SERVICES; i++)
        if (pyro_services[i].used && pyro_services[i].stop_conn == conn &&
            pyro_services[i].stop_channel == channel)
            return true;
    return false;
}

/* Nobody waits for the reply any more; the stop itself goes on. */
static void service_drop_conn(struct pyro_conn *conn)
{
    for (size_t i = 0; i < PYRO_MAX_SERVICES; i++)
        if (pyro_services[i].stop_conn == conn)
            pyro_services[i].stop_conn = NULL;
}

static const struct pyro_op ops[] = {
    {"service_start", service_start},
    {"service_list", pyro_service_list},
    {"service_stop", service_stop},
    {"service_logs", pyro_service_logs},
    {NULL, NULL},
};

const struct pyro_op_group pyro_service_ops = {
    .name = "service",
    .ops = ops,
    .channel_busy = service_channel_busy,
    .drop_conn = service_drop_conn,
    .poll_add = service_poll_add,
    .tick = service_tick,
};
