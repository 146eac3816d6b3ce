#include "frame.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

static void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

void pyro_frame_header_encode(uint8_t out[PYRO_FRAME_HEADER_SIZE],
                              const struct pyro_frame_header *header)
{
    put_le32(out, header->payload_len);
    put_le32(out + 4, header->channel);
    out[8] = header->type;
    out[9] = header->flags;
    put_le16(out + 10, header->reserved);
}

void pyro_frame_header_decode(const uint8_t in[PYRO_FRAME_HEADER_SIZE],
                              struct pyro_frame_header *header)
{
    header->payload_len = get_le32(in);
    header->channel = get_le32(in + 4);
    header->type = in[8];
    header->flags = in[9];
    header->reserved = get_le16(in + 10);
}

void pyro_frame_reader_reset(struct pyro_frame_reader *reader)
{
    reader->header_have = 0;
    reader->payload_have = 0;
    reader->have_header = false;
    reader->too_large = false;
    memset(&reader->header, 0, sizeof reader->header);
}

enum pyro_frame_status pyro_frame_reader_push(struct pyro_frame_reader *reader,
                                              const uint8_t *data, size_t len, size_t *consumed)
{
    size_t used = 0;
    *consumed = 0;
    if (reader->too_large)
        return PYRO_FRAME_TOO_LARGE;
    /* A READY frame from the previous call is released now. */
    if (reader->have_header && reader->payload_have == reader->header.payload_len) {
        reader->have_header = false;
        reader->header_have = 0;
        reader->payload_have = 0;
    }
    if (!reader->have_header) {
        size_t want = PYRO_FRAME_HEADER_SIZE - reader->header_have;
        size_t take = len < want ? len : want;
        memcpy(reader->header_bytes + reader->header_have, data, take);
        reader->header_have += take;
        used += take;
        if (reader->header_have < PYRO_FRAME_HEADER_SIZE) {
            *consumed = used;
            return PYRO_FRAME_NEED_MORE;
        }
        pyro_frame_header_decode(reader->header_bytes, &reader->header);
        if (reader->header.payload_len > PYRO_MAX_PAYLOAD_BYTES) {
            reader->too_large = true;
            *consumed = used;
            return PYRO_FRAME_TOO_LARGE;
        }
        reader->have_header = true;
        reader->payload_have = 0;
    }
    size_t want = reader->header.payload_len - reader->payload_have;
    size_t avail = len - used;
    size_t take = avail < want ? avail : want;
    memcpy(reader->payload + reader->payload_have, data + used, take);
    reader->payload_have += take;
    used += take;
    *consumed = used;
    if (reader->payload_have == reader->header.payload_len)
        return PYRO_FRAME_READY;
    return PYRO_FRAME_NEED_MORE;
}

static int wait_writable(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    for (;;) {
        int n = poll(&pfd, 1, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (pfd.revents & POLLOUT)
            return 0;
        if (pfd.revents & (POLLHUP | POLLERR | POLLNVAL)) {
            errno = (pfd.revents & POLLNVAL) ? EBADF : EPIPE;
            return -1;
        }
    }
}

int pyro_write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n == 0) {
            errno = EPIPE;
            return -1;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        if (wait_writable(fd) != 0)
            return -1;
    }
    return 0;
}
