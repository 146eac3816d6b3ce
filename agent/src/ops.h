/* The handler table: each request op by name, grouped by capability, the way envd keeps
 * one file per RPC. A capability defines one pyro_op_group (its ops and the hooks the
 * router and the main loop call) and is registered by one line in handlers.c; nothing
 * else in request.c or main.c names it.
 *
 * A handler owns the request's channel from then on: it must end it with exactly one
 * terminal frame (result, exit or error), at once or in a later turn of the loop. While
 * it has not, channel_busy says so and control frames on that channel are dropped. */
#ifndef PYRO_OPS_H
#define PYRO_OPS_H

#include "json.h"
#include "loop.h"
#include "transport.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef void pyro_op_handler(struct pyro_conn *conn, uint32_t channel,
                             const struct pyro_json_value *req);

struct pyro_op {
    const char *name;
    pyro_op_handler *handle;
};

/* Every hook is optional (NULL). */
struct pyro_op_group {
    const char *name;
    const struct pyro_op *ops; /* ends with {NULL, NULL} */
    /* The group has not yet sent the terminal frame of a request on this channel. */
    bool (*channel_busy)(const struct pyro_conn *conn, uint32_t channel);
    /* Takes a stdin (or stdin_eof) frame; false when nothing of the group reads it. */
    bool (*take_stdin)(struct pyro_conn *conn, uint32_t channel, const uint8_t *data,
                       size_t len, bool eof);
    /* The connection went away: forget what belongs to it, send nothing. Its execs'
     * process groups were already killed by the process table. */
    void (*drop_conn)(struct pyro_conn *conn);
    /* Watches the group's descriptors and timers for the next poll. */
    void (*poll_add)(struct pyro_pollset *ps);
    /* Runs after each poll and reaping: timeouts, due replies. */
    void (*tick)(int64_t now_ms);
};

extern const struct pyro_op_group pyro_system_ops;  /* ops_system.c */
extern const struct pyro_op_group pyro_exec_ops;    /* exec.c */
extern const struct pyro_op_group pyro_files_ops;   /* ops_files.c */
extern const struct pyro_op_group pyro_service_ops; /* service.c */
extern const struct pyro_op_group pyro_shell_ops;   /* shell_ops.c */
extern const struct pyro_op_group pyro_net_ops;     /* ops_net.c */

/* The op named name, or NULL. */
const struct pyro_op *pyro_ops_find(const char *name);

bool pyro_ops_channel_busy(const struct pyro_conn *conn, uint32_t channel);
bool pyro_ops_take_stdin(struct pyro_conn *conn, uint32_t channel, const uint8_t *data,
                         size_t len, bool eof);
void pyro_ops_drop_conn(struct pyro_conn *conn);
void pyro_ops_poll_add(struct pyro_pollset *ps);
void pyro_ops_tick(int64_t now_ms);

#endif
