/* Process-wide agent state: the mode it runs in and requests for the main loop. */
#ifndef PYRO_AGENT_H
#define PYRO_AGENT_H

#include <stdbool.h>

#ifndef PYRO_AGENT_VERSION
#define PYRO_AGENT_VERSION "0.0.0-dev"
#endif

struct pyro_agent {
    /* PID 1 in a VM: ran init, serves the virtio port and vsock, owns the clock. */
    bool guest_mode;
    bool pid1;
    /* Host mode --root: request paths are resolved under this directory. */
    const char *root_dir;
    /* Set by the shutdown op; acted on by the main loop after the reply is sent. */
    bool shutdown_requested;
    bool power_off_requested;
    /* Host mode: SIGTERM/SIGINT arrived. */
    bool terminate_requested;
};

extern struct pyro_agent pyro_agent;

#endif
