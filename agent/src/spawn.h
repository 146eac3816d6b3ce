/* Validating an exec request and starting its process.
 *
 * Everything that can be checked is checked before fork(), so a bad request costs no
 * process and gets a precise error; what remains (exec failure) is reported the way a
 * shell does: a message on the process's stderr and exit status 127 or 126. */
#ifndef PYRO_SPAWN_H
#define PYRO_SPAWN_H

#include "json.h"
#include "request.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define PYRO_DEFAULT_MAX_OUTPUT_BYTES 1048576
#define PYRO_MAX_OUTPUT_BYTES_LIMIT (1024 * 1024 * 1024)

struct pyro_spawn_request {
    char **argv;              /* NULL-terminated; points into the parsed request */
    char **envp;              /* NULL-terminated; defaults merged with overrides */
    char cwd[PATH_MAX];       /* resolved (under --root in host mode) */
    int64_t timeout_ms;       /* 0: none */
    int64_t max_output_bytes; /* per stream */
    bool stdin_pipe;          /* true: stdin frames; false: /dev/null */
    bool sync_after;          /* sync(2) before the exit frame, so what the command
                                 wrote survives a VMM crash right after the reply */
    const char *path;         /* file to execute; NULL: argv[0] (a login shell's argv[0]
                                 is "-sh", not a file) */
    int tty_fd;               /* >= 0: a PTY slave that becomes the child's controlling
                                 terminal and stdio, instead of pipes */
};

/* Fills req from the exec request. The arrays live in static storage owned by this
 * module, valid until the next call. */
bool pyro_spawn_parse(const struct pyro_json_value *json, struct pyro_spawn_request *req,
                      struct pyro_error *e);

/* The part every process-starting op shares with exec (service_start, shell_open):
 * argv (PATH lookup; when !argv_required and absent, req->argv is NULL for the caller to
 * fill), env over the defaults, cwd (under --root in host mode; must be a directory).
 * Messages start with "OP: ". Other fields get exec's defaults (no timeout, no stdin,
 * pipes, argv[0] as the file); the caller checks the request's field names itself. */
bool pyro_spawn_parse_process(const struct pyro_json_value *json, const char *op,
                              bool argv_required, struct pyro_spawn_request *req,
                              struct pyro_error *e);

/* Replaces the default TERM=dumb by entry ("TERM=xterm-256color" for a terminal) unless
 * the request's env set TERM. After pyro_spawn_parse_process. */
void pyro_spawn_default_term(struct pyro_spawn_request *req, const char *entry);

/* fork() for every child the agent starts. Signals are blocked across it, and the child
 * resets every handler to the default before it unblocks them: a signal sent to the new
 * pid at once (a service_stop right after service_start) must not run the agent's own
 * handler in the child, which writes to the agent's self-pipe and so would look like a
 * SIGTERM to the agent itself. */
pid_t pyro_spawn_fork(void);

struct pyro_spawned {
    pid_t pid;
    int stdout_fd; /* parent ends, non-blocking and close-on-exec */
    int stderr_fd;
    int stdin_fd; /* -1 unless stdin_pipe */
    /* All three are -1 for a terminal child (tty_fd). */
};

bool pyro_spawn(const struct pyro_spawn_request *req, struct pyro_spawned *out,
                struct pyro_error *e);

#endif
