/* Transports: the byte streams frames travel on.
 *
 * Host mode: a Unix socket, one client at a time. Guest mode: the virtio-serial port
 * named pyro.agent (QEMU) and an AF_VSOCK listener on port 5005 (Firecracker). Every
 * exec belongs to the connection that started it and dies with it. */
#ifndef PYRO_TRANSPORT_H
#define PYRO_TRANSPORT_H

#include "frame.h"
#include "loop.h"

#include <stdbool.h>
#include <stdint.h>

enum pyro_conn_kind { PYRO_CONN_UNIX, PYRO_CONN_VSOCK, PYRO_CONN_VIRTIO };

struct pyro_conn {
    enum pyro_conn_kind kind;
    const char *name; /* for logs */
    int fd;           /* -1 while there is no peer */
    /* A read or write failed, or the stream lost frame sync; the loop closes it (and
     * reopens a virtio port) at the end of the turn. */
    bool broken;
    bool host_seen;    /* virtio: bytes arrived since the last hang-up */
    int64_t resume_ms; /* virtio: do not poll before this (hang-up back-off) */
    /* Separate static storage (1 MiB each): it stays in .bss, not in the binary. */
    struct pyro_frame_reader *reader;
};

/* Host mode: listen on a Unix socket at path (a stale socket there is removed). */
int pyro_transport_listen_unix(const char *path);

/* Guest mode: listen on vsock if it exists and serve the virtio port: virtio_fd when it
 * is open already (init parked on it, park.h), else once it is found. */
void pyro_transport_start_guest(int64_t now_ms, int virtio_fd);

/* Finds /dev/vportNpM whose /sys/class/virtio-ports entry is named pyro.agent. */
bool pyro_transport_find_virtio_port(char *dev, size_t dev_len);

void pyro_transport_poll_add(struct pyro_pollset *ps, int64_t now_ms);
void pyro_transport_on_ready(const struct pyro_poll_tag *tag, short revents, int64_t now_ms);
/* Closes broken connections, reopens or keeps looking for the virtio port. */
void pyro_transport_maintain(int64_t now_ms);
/* Closes everything; removes the Unix socket path. */
void pyro_transport_close_all(void);

/* Sends one frame; payload_len may be up to PYRO_MAX_PAYLOAD_BYTES. A failed write
 * marks the connection broken and later sends on it are dropped. */
void pyro_conn_send(struct pyro_conn *conn, uint32_t channel, uint8_t type, const void *payload,
                    size_t payload_len);

#endif
