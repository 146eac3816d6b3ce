/* A byte ring addressed by absolute cursors, for a shell's terminal output.
 *
 * A cursor is a byte offset since the ring began (u64, never reused), so a reader that
 * keeps its cursor between reads gets exactly the bytes it has not seen, or learns that
 * some of them were overwritten. Pure memory operations: unit-tested on their own. */
#ifndef PYRO_RING_H
#define PYRO_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pyro_ring {
    uint8_t *buf;
    size_t cap;
    uint64_t end; /* bytes ever appended: the cursor one past the newest byte */
};

/* The bytes [start, end) a read from a cursor gets. */
struct pyro_ring_span {
    uint64_t start;
    uint64_t end;
    bool truncated; /* the cursor was older than the oldest byte still held */
};

void pyro_ring_init(struct pyro_ring *ring, uint8_t *buf, size_t cap);

/* Appends len bytes; once full, the oldest bytes are overwritten. */
void pyro_ring_append(struct pyro_ring *ring, const uint8_t *data, size_t len);

/* Cursor of the oldest byte still held (end when empty). */
uint64_t pyro_ring_oldest(const struct pyro_ring *ring);

/* start = max(cursor, oldest), or end when cursor is past it; at most max_bytes. */
struct pyro_ring_span pyro_ring_span(const struct pyro_ring *ring, uint64_t cursor,
                                     uint64_t max_bytes);

/* Copies the len bytes from cursor start, which must lie in [oldest, end). */
void pyro_ring_copy(const struct pyro_ring *ring, uint64_t start, uint8_t *out, size_t len);

#endif
