/* The poll set rebuilt on every turn of the main loop, and the nearest timer.
 *
 * Each pollfd has a tag naming what it belongs to, so the loop can route readiness to
 * the right capability; handlers re-check that the object still owns tag.fd because
 * an earlier handler in the same turn may have closed it. */
#ifndef PYRO_LOOP_H
#define PYRO_LOOP_H

#include "log.h"

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

/* 3 pipes per exec, plus connections, listeners and the signal pipe. */
#define PYRO_POLL_MAX 512

enum pyro_poll_kind {
    PYRO_POLL_EXEC_STDOUT,
    PYRO_POLL_EXEC_STDERR,
    PYRO_POLL_EXEC_STDIN,
    PYRO_POLL_SHELL,
    PYRO_POLL_CONN,
    PYRO_POLL_LISTENER,
    PYRO_POLL_SIGNAL_PIPE
};

struct pyro_poll_tag {
    enum pyro_poll_kind kind;
    void *object;
    int fd;
};

struct pyro_pollset {
    struct pollfd fds[PYRO_POLL_MAX];
    struct pyro_poll_tag tags[PYRO_POLL_MAX];
    size_t count;
    int64_t deadline_ms; /* earliest timer on CLOCK_MONOTONIC; INT64_MAX for none */
};

static inline void pyro_pollset_reset(struct pyro_pollset *ps)
{
    ps->count = 0;
    ps->deadline_ms = INT64_MAX;
}

static inline void pyro_pollset_add(struct pyro_pollset *ps, int fd, short events,
                                    enum pyro_poll_kind kind, void *object)
{
    if (ps->count >= PYRO_POLL_MAX) {
        LOG_ERROR("poll set full; descriptor %d not watched this turn", fd);
        return;
    }
    ps->fds[ps->count] = (struct pollfd){.fd = fd, .events = events};
    ps->tags[ps->count] = (struct pyro_poll_tag){.kind = kind, .object = object, .fd = fd};
    ps->count++;
}

static inline void pyro_pollset_timer(struct pyro_pollset *ps, int64_t when_ms)
{
    if (when_ms < ps->deadline_ms)
        ps->deadline_ms = when_ms;
}

#endif
