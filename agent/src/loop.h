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

/* 3 pipes per exec, 2 per service, 1 per shell, plus connections, listeners and the
 * signal pipe. */
#define PYRO_POLL_MAX 1024

/* CONN, LISTENER and SIGNAL_PIPE are routed by main.c; a capability's own descriptors
 * (exec and service pipes, PTY masters) are OWNED: the loop calls the tag's on_ready,
 * so a new capability needs no edit here or in main.c. */
enum pyro_poll_kind {
    PYRO_POLL_OWNED,
    PYRO_POLL_CONN,
    PYRO_POLL_LISTENER,
    PYRO_POLL_SIGNAL_PIPE
};

struct pyro_poll_tag;
typedef void pyro_poll_ready_fn(const struct pyro_poll_tag *tag, short revents, int64_t now_ms);

struct pyro_poll_tag {
    enum pyro_poll_kind kind;
    void *object;
    int fd;
    int role;                     /* OWNED: which of object's descriptors this is */
    pyro_poll_ready_fn *on_ready; /* OWNED only */
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

/* Watches one of a capability's descriptors: on_ready(tag, revents, now_ms) is called
 * with object and role when it is ready. */
static inline void pyro_pollset_watch(struct pyro_pollset *ps, int fd, short events,
                                      pyro_poll_ready_fn *on_ready, void *object, int role)
{
    size_t before = ps->count;
    pyro_pollset_add(ps, fd, events, PYRO_POLL_OWNED, object);
    if (ps->count > before) {
        ps->tags[before].role = role;
        ps->tags[before].on_ready = on_ready;
    }
}

static inline void pyro_pollset_timer(struct pyro_pollset *ps, int64_t when_ms)
{
    if (when_ms < ps->deadline_ms)
        ps->deadline_ms = when_ms;
}

#endif
