/* Small syscall helpers shared by every capability: clocks, file descriptors. */
#ifndef PYRO_SYS_H
#define PYRO_SYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Milliseconds on CLOCK_MONOTONIC; never goes backwards, unaffected by clock_settime. */
int64_t pyro_now_ms(void);

int pyro_set_nonblock(int fd);

/* Closes *fd if it is open and sets it to -1. Never retries on EINTR: on Linux the
 * descriptor is released even when close(2) reports EINTR. */
void pyro_close(int *fd);

/* Writes the first *len bytes of queue to the non-blocking fd as far as it takes them
 * now, and moves what is left to the front of queue. False when a write failed (errno
 * says why); what was not written is still queued. */
bool pyro_write_queued(int fd, uint8_t *queue, size_t *len);

/* Makes sure descriptors 0, 1 and 2 are open (on /dev/console or /dev/null), so the
 * pipes and sockets the agent opens never land on them. */
void pyro_ensure_stdio(void);

/* Like mkdir -p: creates missing parents; an existing directory is not an error. */
int pyro_mkdir_p(const char *path, unsigned mode);

#endif
