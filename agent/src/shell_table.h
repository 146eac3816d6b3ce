/* The shell table shared by the shell's files (shell.c: table, PTY I/O and lifetime;
 * shell_open.c: starting one; shell_ops.c: the other ops). Not for the rest of the
 * agent, which uses shell.h. */
#ifndef PYRO_SHELL_TABLE_H
#define PYRO_SHELL_TABLE_H

#include "json.h"
#include "loop.h"
#include "request.h"
#include "ring.h"
#include "shell.h"
#include "transport.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct pyro_shell {
    bool used;
    char id[PYRO_NAME_MAX + 1];
    pid_t pid;     /* also its process group and session id */
    int master_fd; /* non-blocking; -1 once the terminal is drained (EIO) */
    struct pyro_ring ring;
    uint8_t *queue; /* input waiting for the PTY; PYRO_SHELL_WRITE_QUEUE_BYTES */
    size_t queue_len;
    int cols, rows;
    bool reaped;
    int status; /* wait status, once reaped */
};

/* The shell with this id, or NULL. */
struct pyro_shell *pyro_shell_find(const char *id);
/* A free slot, or NULL when PYRO_MAX_SHELLS are in use. */
struct pyro_shell *pyro_shell_free_slot(void);
struct pyro_shell *pyro_shell_at(size_t index);

/* The request's shell_id, validated (invalid_argument) into id (PYRO_NAME_MAX + 1
 * bytes) and, when must_exist, looked up (not_found). False with e set; *found gets the
 * shell or NULL. */
bool pyro_shell_parse_id(const struct pyro_json_value *req, const char *op, bool must_exist,
                         char *id, struct pyro_shell **found, struct pyro_error *e);

/* Makes sh the owner of its process in the process table; false when the table is full. */
bool pyro_shell_track(struct pyro_shell *sh);

/* Moves what the terminal has for us into the ring (bounded per call). */
void pyro_shell_pump(struct pyro_shell *sh);
/* Writes queued input as far as the PTY takes it now. */
void pyro_shell_flush(struct pyro_shell *sh);
/* Closes the terminal, frees the buffers and empties the slot; a process still running
 * is HUP'd and gets KILL PYRO_SHELL_CLOSE_KILL_MS later unless it exits. */
void pyro_shell_release(struct pyro_shell *sh);

/* shell_open's handler (shell_open.c). */
void pyro_shell_open(struct pyro_conn *conn, uint32_t channel,
                     const struct pyro_json_value *req);

/* Loop hooks of pyro_shell_ops. */
void pyro_shell_poll_add(struct pyro_pollset *ps);
void pyro_shell_tick(int64_t now_ms);

#endif
