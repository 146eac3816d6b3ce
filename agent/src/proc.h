/* The process table: every child the agent starts (exec, service, shell), with its kind.
 *
 * Reaping, kill-on-disconnect and kill-at-exit are decided here by the kind, not by the
 * file that started the child:
 * - an exec is bound to its connection and its process group is killed when that
 *   connection goes away;
 * - services and shells are bound to no connection: they outlive the client that
 *   started them and end only by their own stop/close op or at shutdown/host exit;
 * - every kind is killed at shutdown and when a host-process agent exits.
 * A reaped child is removed from the table before its owner's callback runs; a child
 * that is not in the table (as PID 1, an orphan the kernel re-parented) is just reaped. */
#ifndef PYRO_PROC_H
#define PYRO_PROC_H

#include "transport.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Execs, services and shells together stay well below this. */
#define PYRO_PROC_MAX 256

enum pyro_proc_kind { PYRO_PROC_EXEC, PYRO_PROC_SERVICE, PYRO_PROC_SHELL };

/* Called once, after waitpid returned pid with status. */
typedef void pyro_proc_reaped_fn(void *owner, pid_t pid, int status, int64_t now_ms);

/* Records a child just forked (it leads its own process group). conn: the connection an
 * exec belongs to; NULL for services and shells. False when the table is full: the
 * caller then kills the child and reports busy. */
bool pyro_proc_add(pid_t pid, enum pyro_proc_kind kind, const struct pyro_conn *conn,
                   pyro_proc_reaped_fn *on_reaped, void *owner);

/* The owner lets go of a child it no longer follows (it was killed, its reap will be
 * ignored). */
void pyro_proc_forget(pid_t pid);

/* Reaps every child that has exited and calls the owners' callbacks. */
void pyro_proc_reap(int64_t now_ms);

/* Kills (SIGKILL) the sessions of the execs bound to conn. Call it before the
 * owners forget the connection's state. */
void pyro_proc_drop_conn(const struct pyro_conn *conn);

/* Kills the session of every child in the table, of every kind. */
void pyro_proc_kill_all(void);

/* Signals the process group led by pid. Between fork() and the child's setsid() the
 * group does not exist yet (ESRCH); the child then has no children of its own, so
 * signalling it directly is enough. Only for a pid not yet reaped (or just reaped:
 * its group id cannot be reused while members remain). */
void pyro_proc_kill_group(pid_t pid, int signo);

/* Signals the process group led by pid and every other live process in the session it
 * leads (every child calls setsid(), so that is what it started, whatever process groups
 * its jobs moved to). What ends a child's processes uses this; a signal the user aims at
 * one group does not. A process that called setsid() itself has left and is not found. */
void pyro_proc_kill_session(pid_t pid, int signo);

#endif
