/* Services: named long-running processes that belong to no connection.
 *
 * service_start starts one (stdin /dev/null, stdout and stderr into bounded log files,
 * service_log.h); service_list, service_stop (TERM, then KILL after a grace period; the
 * reply waits for the reap) and service_logs act on it by name. An entry stays after
 * its process exits, with the exit status, until its name is started again or the
 * table needs the slot. Services outlive every client; the process table kills them at
 * shutdown and when a host-process agent exits. The ops are in pyro_service_ops
 * (ops.h); protocol/README.md, Services, is the contract. */
#ifndef PYRO_SERVICE_H
#define PYRO_SERVICE_H

/* Entries, running or exited; when full, the entry that exited first is dropped. */
#define PYRO_MAX_SERVICES 32
#define PYRO_SERVICE_LOG_DIR "/run/pyro-services"
#define PYRO_SERVICE_LOG_DIR_MODE 0700
/* Per stream: a file is rotated when it reaches this size. */
#define PYRO_SERVICE_DEFAULT_LOG_BYTES 4194304
#define PYRO_SERVICE_MIN_LOG_BYTES 4096
#define PYRO_SERVICE_MAX_LOG_BYTES 67108864
/* service_stop: from TERM to KILL. */
#define PYRO_SERVICE_DEFAULT_GRACE_MS 5000
#define PYRO_SERVICE_MAX_GRACE_MS 60000
/* service_logs */
#define PYRO_SERVICE_DEFAULT_TAIL_LINES 200
#define PYRO_SERVICE_MAX_TAIL_LINES 100000
#define PYRO_SERVICE_DEFAULT_LOG_READ_BYTES 1048576
#define PYRO_SERVICE_MAX_LOG_READ_BYTES 4194304

#endif
