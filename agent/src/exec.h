/* Exec channels: one running process per channel, its output streamed as frames, its
 * stdin fed from frames, a timeout, and one exit record at the end. */
#ifndef PYRO_EXEC_H
#define PYRO_EXEC_H

#include "json.h"
#include "transport.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Concurrent execs across all connections. */
#define PYRO_MAX_EXECS 128
/* Output is sent in frames of at most this many bytes. */
#define PYRO_OUTPUT_CHUNK_BYTES 65536
/* After the main process exits, its pipes are drained for at most this long. */
#define PYRO_DRAIN_MS 100
/* A connection stops being read while one of its processes has this much stdin
 * queued, so a process that does not read stdin cannot make the agent buffer without
 * bound. */
#define PYRO_STDIN_BACKLOG_BYTES (1024 * 1024)

/* The exec op and its hooks are in pyro_exec_ops (ops.h). */

/* A connection stops being read while one of its execs has PYRO_STDIN_BACKLOG_BYTES
 * queued. */
bool pyro_exec_conn_backlogged(const struct pyro_conn *conn);

/* Signals the process group of the exec on target_channel; -1 if there is none. */
int pyro_exec_signal(struct pyro_conn *conn, uint32_t target_channel, int signo);

/* Allowlisted request signal names (INT, TERM, KILL, HUP, QUIT, USR1, USR2) -> number,
 * or -1. */
int pyro_signal_from_name(const char *name);
/* Name for an exit record ("TERM", "SEGV"; "SIG<n>" for others) in buf. */
const char *pyro_signal_name(int signo, char *buf, size_t len);
/* Adds "state" ("running" or "exited"), "exit_code" and "signal" (null unless the
 * process was reaped and exited, or was killed, that way) for a service or shell. */
void pyro_write_wait_state(struct pyro_json_writer *w, bool reaped, int status);

#endif
