/* The registry of op groups and the router's and loop's walks over it. */
#include "ops.h"

#include <string.h>

/* Adding a capability: define its group in its own file, declare it in ops.h and list
 * it here. Order is the order of poll_add and tick. */
/* One group per line, so adding a capability stays a one-line change. */
/* clang-format off */
static const struct pyro_op_group *const groups[] = {
    &pyro_system_ops,
    &pyro_exec_ops,
    &pyro_files_ops,
    &pyro_service_ops,
    &pyro_shell_ops,
    &pyro_net_ops,
};
/* clang-format on */

#define GROUP_COUNT (sizeof groups / sizeof groups[0])

const struct pyro_op *pyro_ops_find(const char *name)
{
    for (size_t g = 0; g < GROUP_COUNT; g++)
        for (const struct pyro_op *op = groups[g]->ops; op->name; op++)
            if (strcmp(op->name, name) == 0)
                return op;
    return NULL;
}

bool pyro_ops_channel_busy(const struct pyro_conn *conn, uint32_t channel)
{
    for (size_t g = 0; g < GROUP_COUNT; g++)
        if (groups[g]->channel_busy && groups[g]->channel_busy(conn, channel))
            return true;
    return false;
}

bool pyro_ops_take_stdin(struct pyro_conn *conn, uint32_t channel, const uint8_t *data,
                         size_t len, bool eof)
{
    for (size_t g = 0; g < GROUP_COUNT; g++)
        if (groups[g]->take_stdin && groups[g]->take_stdin(conn, channel, data, len, eof))
            return true;
    return false;
}

void pyro_ops_drop_conn(struct pyro_conn *conn)
{
    for (size_t g = 0; g < GROUP_COUNT; g++)
        if (groups[g]->drop_conn)
            groups[g]->drop_conn(conn);
}

void pyro_ops_poll_add(struct pyro_pollset *ps)
{
    for (size_t g = 0; g < GROUP_COUNT; g++)
        if (groups[g]->poll_add)
            groups[g]->poll_add(ps);
}

void pyro_ops_tick(int64_t now_ms)
{
    for (size_t g = 0; g < GROUP_COUNT; g++)
        if (groups[g]->tick)
            groups[g]->tick(now_ms);
}
