#include "spawn.h"

#include "agent.h"
#include "guard.h"
#include "log.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

static const char *const default_env[] = {
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/root",
    "LANG=C.UTF-8",
    "TERM=dumb",
};
#define DEFAULT_ENV_COUNT (sizeof default_env / sizeof default_env[0])

static char *argv_storage[PYRO_MAX_ARGV_ENTRIES + 1];
static char *envp_storage[PYRO_MAX_ENV_ENTRIES + DEFAULT_ENV_COUNT + 1];
/* "KEY=VALUE" strings; the request's strings total less than one control message. */
static char env_strings[PYRO_MAX_CONTROL_BYTES + 64];

static bool parse_argv(const struct pyro_json_value *json, const char *op, bool required,
                       struct pyro_spawn_request *req, struct pyro_error *e)
{
    const struct pyro_json_value *argv = pyro_json_get(json, "argv");
    req->argv = NULL;
    if (!argv && !required)
        return true;
    if (!argv || argv->type != PYRO_JSON_ARRAY || argv->count == 0 ||
        argv->count > PYRO_MAX_ARGV_ENTRIES) {
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0,
                       "%s: argv must be an array of 1 to %d strings", op,
                       PYRO_MAX_ARGV_ENTRIES);
        return false;
    }
    size_t i = 0;
    for (const struct pyro_json_value *a = argv->child; a; a = a->next) {
        if (!pyro_json_is_cstring(a)) {
            pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0,
                           "%s: argv[%zu] must be a string without NUL bytes", op, i);
            return false;
        }
        argv_storage[i++] = (char *)a->str;
    }
    argv_storage[i] = NULL;
    req->argv = argv_storage;
    return true;
}

static bool env_key_valid(const struct pyro_json_value *m)
{
    return m->key_len > 0 && strlen(m->key) == m->key_len && !strchr(m->key, '=');
}

/* Index of the default entry with the same key as override, or -1. */
static int default_env_slot(const char *key, size_t key_len)
{
    for (size_t i = 0; i < DEFAULT_ENV_COUNT; i++)
        if (strncmp(default_env[i], key, key_len) == 0 && default_env[i][key_len] == '=')
            return (int)i;
    return -1;
}

static bool parse_env(const struct pyro_json_value *json, const char *op,
                      struct pyro_spawn_request *req, struct pyro_error *e)
{
    size_t n = DEFAULT_ENV_COUNT, used = 0;
    for (size_t i = 0; i < DEFAULT_ENV_COUNT; i++)
        envp_storage[i] = (char *)default_env[i];
    const struct pyro_json_value *env = pyro_json_get(json, "env");
    if (env && (env->type != PYRO_JSON_OBJECT || env->count > PYRO_MAX_ENV_ENTRIES)) {
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0,
                       "%s: env must be an object of at most %d strings", op,
                       PYRO_MAX_ENV_ENTRIES);
        return false;
    }
    for (const struct pyro_json_value *m = env ? env->child : NULL; m; m = m->next) {
        if (!env_key_valid(m) || !pyro_json_is_cstring(m)) {
            pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0,
                           "%s: env \"%.64s\": names must be non-empty without '=' or NUL "
                           "and values strings without NUL",
                           op, m->key);
            return false;
        }
        size_t need = m->key_len + 1 + m->len + 1;
        if (need > sizeof env_strings - used) {
            pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0, "%s: env too large", op);
            return false;
        }
        char *entry = env_strings + used;
        snprintf(entry, need, "%s=%s", m->key, m->str);
        used += need;
        int slot = default_env_slot(m->key, m->key_len);
        envp_storage[slot >= 0 ? (size_t)slot : n++] = entry;
    }
    envp_storage[n] = NULL;
    req->envp = envp_storage;
    return true;
}

static bool parse_cwd(const struct pyro_json_value *json, const char *op,
                      struct pyro_spawn_request *req, struct pyro_error *e)
{
    const struct pyro_json_value *cwd = pyro_json_get(json, "cwd");
    const char *path = "/";
    if (cwd) {
        if (!pyro_json_is_cstring(cwd) || cwd->str[0] != '/') {
            pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0, "%s: cwd must be an absolute path",
                           op);
            return false;
        }
        path = cwd->str;
    }
    const char *root = pyro_agent.root_dir ? pyro_agent.root_dir : "";
    int n = snprintf(req->cwd, sizeof req->cwd, "%s%s", root, path);
    if (n < 0 || (size_t)n >= sizeof req->cwd) {
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0, "%s: cwd is too long", op);
        return false;
    }
    struct stat st;
    if (stat(req->cwd, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            pyro_error_set(e, PYRO_ERR_NOT_FOUND, errno, "cwd %.256s does not exist", path);
        else
            pyro_error_set(e, PYRO_ERR_INTERNAL, errno, "cwd %.256s: %s", path,
                           strerror(errno));
        return false;
    }
    if (!S_ISDIR(st.st_mode)) {
        pyro_error_set(e, PYRO_ERR_NOT_FOUND, ENOTDIR, "cwd %.256s is not a directory", path);
        return false;
    }
    return true;
}

bool pyro_spawn_parse_process(const struct pyro_json_value *json, const char *op,
                              bool argv_required, struct pyro_spawn_request *req,
                              struct pyro_error *e)
{
    req->timeout_ms = 0;
    req->max_output_bytes = PYRO_DEFAULT_MAX_OUTPUT_BYTES;
    req->stdin_pipe = false;
    req->sync_after = false;
    req->path = NULL;
    req->tty_fd = -1;
    return parse_argv(json, op, argv_required, req, e) && parse_env(json, op, req, e) &&
           parse_cwd(json, op, req, e);
}

bool pyro_spawn_parse(const struct pyro_json_value *json, struct pyro_spawn_request *req,
                      struct pyro_error *e)
{
    static const char *const fields[] = {
        "op", "argv", "env", "cwd", "timeout_ms", "max_output_bytes", "stdin", "sync", NULL};
    if (!pyro_fields_known(json, "exec", fields, e) ||
        !pyro_spawn_parse_process(json, "exec", true, req, e))
        return false;
    return pyro_field_int(json, "exec", "timeout_ms", 1, INT64_MAX / 2, NULL, &req->timeout_ms,
                          e) &&
           pyro_field_int(json, "exec", "max_output_bytes", 0, PYRO_MAX_OUTPUT_BYTES_LIMIT,
                          NULL, &req->max_output_bytes, e) &&
           pyro_field_bool(json, "exec", "stdin", &req->stdin_pipe, e) &&
           pyro_field_bool(json, "exec", "sync", &req->sync_after, e);
}

void pyro_spawn_default_term(struct pyro_spawn_request *req, const char *entry)
{
    int slot = default_env_slot("TERM", 4);
    /* Still the default's own string: the request did not set TERM. */
    if (slot >= 0 && req->envp[slot] == default_env[slot])
        req->envp[slot] = (char *)entry;
}

pid_t pyro_spawn_fork(void)
{
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid != 0) {
        int saved = errno;
        sigprocmask(SIG_SETMASK, &old, NULL);
        errno = saved;
        return pid;
    }
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &dfl, NULL); /* EINVAL for KILL, STOP and libc's own: fine */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    return 0;
}

/* The shell's message and status for a failed exec. */
static void child_fail(const char *what, int err)
{
    char msg[512];
    int n = snprintf(msg, sizeof msg, "pyro-agent: %s: %s\n", what, strerror(err));
    if (n > 0) {
        ssize_t w = write(STDERR_FILENO, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg);
        (void)w;
    }
    _exit(err == ENOENT ? 127 : 126);
}

/* A terminal child: the PTY slave becomes its controlling terminal (it just became a
 * session leader) and its stdin, stdout and stderr. */
static void child_take_terminal(int tty_fd)
{
    if (ioctl(tty_fd, TIOCSCTTY, 0) != 0)
        child_fail("TIOCSCTTY", errno);
    if (dup2(tty_fd, STDIN_FILENO) < 0 || dup2(tty_fd, STDOUT_FILENO) < 0 ||
        dup2(tty_fd, STDERR_FILENO) < 0)
        _exit(126);
}

static void child_take_pipes(const struct pyro_spawn_request *req, const int in[2],
                             const int out[2], const int err[2])
{
    /* Close-on-exec: only its copy at 0 may reach the program (a service kept a stray
     * /dev/null descriptor). */
    int stdin_fd = req->stdin_pipe ? in[0] : open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (stdin_fd < 0)
        child_fail("/dev/null", errno);
    /* Descriptors 0-2 are always open in the agent, so pipe ends are >= 3 and these
     * dup2 calls never clobber one another. The originals are close-on-exec. */
    if (dup2(stdin_fd, STDIN_FILENO) < 0 || dup2(out[1], STDOUT_FILENO) < 0 ||
        dup2(err[1], STDERR_FILENO) < 0)
        _exit(126);
}

/* Runs in the child between fork and exec; never returns. The agent is
 * single-threaded, so the non-async-signal-safe calls here (snprintf) are fine. */
static void child_main(const struct pyro_spawn_request *req, const int in[2], const int out[2],
                       const int err[2])
{
    if (setsid() < 0)
        child_fail("setsid", errno);
    pyro_guard_enter_child();
    if (req->tty_fd >= 0)
        child_take_terminal(req->tty_fd);
    else
        child_take_pipes(req, in, out, err);
    if (chdir(req->cwd) != 0)
        child_fail(req->cwd, errno);
    /* execvpe looks PATH up in the caller's environment, not in envp. */
    environ = req->envp;
    const char *file = req->path ? req->path : req->argv[0];
    execvpe(file, req->argv, req->envp);
    child_fail(file, errno);
}

static void close_pair(int p[2])
{
    pyro_close(&p[0]);
    pyro_close(&p[1]);
}

/* The pipes for the child's stdio; none for a terminal child. */
static bool open_pipes(const struct pyro_spawn_request *req, int in[2], int o[2], int er[2])
{
    if (req->tty_fd >= 0)
        return true;
    return pipe2(o, O_CLOEXEC) == 0 && pipe2(er, O_CLOEXEC) == 0 &&
           (!req->stdin_pipe || pipe2(in, O_CLOEXEC) == 0) && pyro_set_nonblock(o[0]) == 0 &&
           pyro_set_nonblock(er[0]) == 0 && (!req->stdin_pipe || pyro_set_nonblock(in[1]) == 0);
}

bool pyro_spawn(const struct pyro_spawn_request *req, struct pyro_spawned *out,
                struct pyro_error *e)
{
    int in[2] = {-1, -1}, o[2] = {-1, -1}, er[2] = {-1, -1};
    if (!open_pipes(req, in, o, er)) {
        pyro_error_set(e, PYRO_ERR_INTERNAL, errno, "exec: pipe: %s", strerror(errno));
        close_pair(in);
        close_pair(o);
        close_pair(er);
        return false;
    }
    pid_t pid = pyro_spawn_fork();
    if (pid == 0)
        child_main(req, in, o, er);
    int fork_errno = errno;
    pyro_close(&in[0]);
    pyro_close(&o[1]);
    pyro_close(&er[1]);
    if (pid < 0) {
        pyro_error_set(e, fork_errno == EAGAIN ? PYRO_ERR_BUSY : PYRO_ERR_INTERNAL, fork_errno,
                       "exec: fork: %s", strerror(fork_errno));
        close_pair(in);
        close_pair(o);
        close_pair(er);
        return false;
    }
    out->pid = pid;
    out->stdout_fd = o[0];
    out->stderr_fd = er[0];
    out->stdin_fd = in[1];
    return true;
}
