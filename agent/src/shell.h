/* Shells: programs on a pseudo-terminal, addressed by a host-chosen id.
 *
 * A shell is not bound to the request or the connection that opened it: it runs until
 * shell_close, its own exit, or the agent's shutdown. Its output is read from the PTY
 * master in the main loop into a 1 MiB ring (ring.h) that shell_read serves by absolute
 * cursor; input from shell_write goes through a bounded queue. protocol/README.md
 * (Shells) is the contract.
 *
 * The hooks below are all the rest of the agent needs: the op handlers for the request
 * table, and the poll/reap/tick/kill-all hooks for the main loop. */
#ifndef PYRO_SHELL_H
#define PYRO_SHELL_H

#include "json.h"
#include "loop.h"
#include "transport.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Open shells, and exited ones not yet closed. */
#define PYRO_MAX_SHELLS 16
#define PYRO_SHELL_RING_BYTES (1024 * 1024)
/* Input the PTY has not taken yet; a write beyond it is refused (busy). */
#define PYRO_SHELL_WRITE_QUEUE_BYTES (256 * 1024)
#define PYRO_SHELL_MAX_WRITE_BYTES 32768
#define PYRO_SHELL_DEFAULT_READ_BYTES 65536
#define PYRO_SHELL_MAX_READ_BYTES (1024 * 1024)
#define PYRO_SHELL_DEFAULT_COLS 120
#define PYRO_SHELL_DEFAULT_ROWS 30
#define PYRO_SHELL_MAX_SIZE 1000
/* After shell_close's HUP, a process group still alive this long gets KILL. */
#define PYRO_SHELL_CLOSE_KILL_MS 1000

/* Op handlers: each answers on its channel within the call. */
void pyro_shell_open(struct pyro_conn *conn, uint32_t channel, const struct pyro_json_value *req);
void pyro_shell_read(struct pyro_conn *conn, uint32_t channel, const struct pyro_json_value *req);
void pyro_shell_write(struct pyro_conn *conn, uint32_t channel,
                      const struct pyro_json_value *req);
void pyro_shell_signal(struct pyro_conn *conn, uint32_t channel,
                       const struct pyro_json_value *req);
void pyro_shell_close(struct pyro_conn *conn, uint32_t channel,
                      const struct pyro_json_value *req);
void pyro_shell_list(struct pyro_conn *conn, uint32_t channel, const struct pyro_json_value *req);

/* Runs the handler of a shell_* op; false when op is not one. */
bool pyro_shell_dispatch(struct pyro_conn *conn, uint32_t channel, const char *op,
                         const struct pyro_json_value *req);

/* Main-loop hooks. */
void pyro_shell_poll_add(struct pyro_pollset *ps);
void pyro_shell_on_ready(const struct pyro_poll_tag *tag, short revents);
/* True when pid was a shell's process (open or closing). */
bool pyro_shell_on_reaped(pid_t pid, int status);
/* Sends the KILL that is due to closed shells that did not exit on HUP. */
void pyro_shell_tick(int64_t now_ms);
/* Shutdown or host exit: KILL every shell's process group and forget the shells. */
void pyro_shell_kill_all(void);

#endif
