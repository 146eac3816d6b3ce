/* Frames: the 12-byte little-endian header, an incremental reader and a write loop.
 *
 * The reader keeps its own fixed buffers and checks the declared payload length against
 * PYRO_MAX_PAYLOAD_BYTES before it copies a single payload byte, so a hostile or
 * corrupted length field can never make it allocate or overrun anything. */
#ifndef PYRO_FRAME_H
#define PYRO_FRAME_H

#include "protocol.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct pyro_frame_header {
    uint32_t payload_len;
    uint32_t channel;
    uint8_t type;
    uint8_t flags;
    uint16_t reserved;
};

void pyro_frame_header_encode(uint8_t out[PYRO_FRAME_HEADER_SIZE],
                              const struct pyro_frame_header *header);
void pyro_frame_header_decode(const uint8_t in[PYRO_FRAME_HEADER_SIZE],
                              struct pyro_frame_header *header);

enum pyro_frame_status {
    PYRO_FRAME_NEED_MORE = 0, /* every byte given was consumed; feed more */
    PYRO_FRAME_READY = 1,     /* a whole frame is in header/payload */
    PYRO_FRAME_TOO_LARGE = -1 /* payload_len above the limit; sticky until reset */
};

struct pyro_frame_reader {
    uint8_t header_bytes[PYRO_FRAME_HEADER_SIZE];
    size_t header_have;
    size_t payload_have;
    bool have_header;
    bool too_large;
    struct pyro_frame_header header; /* valid once have_header */
    uint8_t payload[PYRO_MAX_PAYLOAD_BYTES];
};

void pyro_frame_reader_reset(struct pyro_frame_reader *reader);

/* Consumes bytes from data until one frame is complete or data is used up; *consumed
 * says how many were taken. After PYRO_FRAME_READY, reader->header and reader->payload
 * hold the frame until the next call, which starts the next frame. */
enum pyro_frame_status pyro_frame_reader_push(struct pyro_frame_reader *reader,
                                              const uint8_t *data, size_t len,
                                              size_t *consumed);

/* Writes all of buf, retrying on EINTR and waiting in poll(2) on EAGAIN. Fails with
 * EPIPE when poll reports a hang-up or error instead of writability (a virtio-serial
 * port whose host side went away reports POLLHUP). Returns 0 or -1 with errno. */
int pyro_write_all(int fd, const void *buf, size_t len);

#endif
