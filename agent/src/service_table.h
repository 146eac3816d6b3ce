/* The service table shared by service.c (lifecycle, start, stop) and service_ops.c
 * (list, logs). Not for other capabilities: they go through the ops. */
#ifndef PYRO_SERVICE_TABLE_H
#define PYRO_SERVICE_TABLE_H

#include "json.h"
#include "request.h"
#include "service.h"
#include "service_log.h"
#include "transport.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct pyro_service_stream {
    int pipe_fd; /* read end of the process's stdout/stderr; -1 once drained */
    struct pyro_service_log log;
};

struct pyro_service {
    bool used;
    char name[PYRO_NAME_MAX + 1];
    pid_t pid;                          /* also its process group id */
    uint64_t seq, ended_seq;            /* start and exit order */
    int64_t started_at_ms, ended_at_ms; /* Unix ms */
    bool reaped;                        /* exited: status is valid */
    int status;
    int64_t drain_until_ms;
    struct pyro_service_stream out, err;
    /* service_stop: TERM sent, KILL due at kill_at_ms (killed once sent). */
    bool stopping, killed;
    int64_t kill_at_ms;
    /* The service_stop waiting for the reap; NULL when none (or its client left). */
    struct pyro_conn *stop_conn;
    uint32_t stop_channel;
};

extern struct pyro_service pyro_services[PYRO_MAX_SERVICES];

struct pyro_service *pyro_service_find(const char *name);

/* Moves what is waiting in the service's pipes into its logs now (at most max_bytes per
 * stream), so a service_logs right after the output sees it. */
void pyro_service_pump_now(struct pyro_service *s, size_t max_bytes);

/* Adds "state", "exit_code", "signal" and "ended_at_ms" for s. */
void pyro_service_write_exit(struct pyro_json_writer *w, const struct pyro_service *s);

int64_t pyro_wall_ms(void);

void pyro_service_list(struct pyro_conn *conn, uint32_t channel,
                       const struct pyro_json_value *req);
void pyro_service_logs(struct pyro_conn *conn, uint32_t channel,
                       const struct pyro_json_value *req);

#endif
