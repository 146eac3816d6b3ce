/* Exec channels: one running process per channel, its output streamed as frames, its
 * stdin fed from frames, a timeout, and one exit record at the end. */
#ifndef PYRO_EXEC_H
#define PYRO_EXEC_H

#include "json.h"
#include "loop.h"
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

/* Handles an exec request on a fresh channel (replies with an error or, eventually,
 * an exit record). */
void pyro_exec_start(struct pyro_conn *conn, uint32_t channel,
                     const struct pyro_json_value *request);

bool pyro_exec_channel_busy(const struct pyro_conn *conn, uint32_t channel);
bool pyro_exec_conn_backlogged(const struct pyro_conn *conn);

/* Feeds a stdin (or stdin_eof) frame; false when no exec on that channel takes stdin. */
bool pyro_exec_stdin(struct pyro_conn *conn, uint32_t channel, const uint8_t *data, size_t len,
                     bool eof);

/* Signals the process group of the exec on target_channel; -1 if there is none. */
int pyro_exec_signal(struct pyro_conn *conn, uint32_t target_channel, int signo);

void pyro_exec_poll_add(struct pyro_pollset *ps);
void pyro_exec_on_ready(const struct pyro_poll_tag *tag, short revents);
/* A child was reaped (any child: as PID 1 the agent also reaps orphans). */
void pyro_exec_on_reaped(pid_t pid, int status, int64_t now_ms);
/* Enforces timeouts and drain deadlines and sends exit records that are due. */
void pyro_exec_tick(int64_t now_ms);

/* Kills and forgets the execs of a connection that went away (no frames are sent). */
void pyro_exec_drop_conn(struct pyro_conn *conn);
void pyro_exec_kill_all(void);

/* Allowlisted request signal names (INT, TERM, KILL, HUP, QUIT, USR1, USR2) -> number,
 * or -1. */
int pyro_signal_from_name(const char *name);
/* Name for an exit record ("TERM", "SEGV"; "SIG<n>" for others) in buf. */
const char *pyro_signal_name(int signo, char *buf, size_t len);

#endif
