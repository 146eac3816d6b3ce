#include "ring.h"

#include <string.h>

void pyro_ring_init(struct pyro_ring *ring, uint8_t *buf, size_t cap)
{
    *ring = (struct pyro_ring){.buf = buf, .cap = cap};
}

void pyro_ring_append(struct pyro_ring *ring, const uint8_t *data, size_t len)
{
    /* Only the newest cap bytes of a longer append can survive it. */
    if (len > ring->cap) {
        ring->end += len - ring->cap;
        data += len - ring->cap;
        len = ring->cap;
    }
    size_t at = (size_t)(ring->end % ring->cap);
    size_t first = len < ring->cap - at ? len : ring->cap - at;
    memcpy(ring->buf + at, data, first);
    memcpy(ring->buf, data + first, len - first);
    ring->end += len;
}

uint64_t pyro_ring_oldest(const struct pyro_ring *ring)
{
    return ring->end > ring->cap ? ring->end - ring->cap : 0;
}

struct pyro_ring_span pyro_ring_span(const struct pyro_ring *ring, uint64_t cursor,
                                     uint64_t max_bytes)
{
    uint64_t oldest = pyro_ring_oldest(ring);
    struct pyro_ring_span s = {.start = cursor, .truncated = cursor < oldest};
    if (cursor < oldest)
        s.start = oldest;
    else if (cursor > ring->end)
        s.start = ring->end;
    s.end = ring->end - s.start < max_bytes ? ring->end : s.start + max_bytes;
    return s;
}

void pyro_ring_copy(const struct pyro_ring *ring, uint64_t start, uint8_t *out, size_t len)
{
    size_t at = (size_t)(start % ring->cap);
    size_t first = len < ring->cap - at ? len : ring->cap - at;
    memcpy(out, ring->buf + at, first);
    memcpy(out + first, ring->buf, len - first);
}
