/* Shells: programs on a pseudo-terminal, addressed by a host-chosen id.
 *
 * A shell is not bound to the request or the connection that opened it: it runs until
 * shell_close, its own exit, or the agent's shutdown. Its output is read from the PTY
 * master in the main loop into a 1 MiB ring (ring.h) that shell_read serves by absolute
 * cursor; input from shell_write goes through a bounded queue. protocol/README.md
 * (Shells) is the contract.
 */
#ifndef PYRO_SHELL_H
#define PYRO_SHELL_H

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

/* The ops (shell_open, shell_read, shell_write, shell_signal, shell_close, shell_list)
 * and the loop hooks are registered as pyro_shell_ops (ops.h, defined in shell_ops.c);
 * shells' processes are PYRO_PROC_SHELL entries of the process table (proc.h). */

#endif
