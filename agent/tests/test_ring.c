#include "ring.h"
#include "test.h"

#include <stdint.h>
#include <string.h>

/* Byte i of the test stream is (i * 7 + 3) mod 251: distinct over any window shorter
 * than 251 bytes, so a wrong offset shows as wrong content. */
static uint8_t stream_byte(uint64_t i)
{
    return (uint8_t)((i * 7 + 3) % 251);
}

static void append_stream(struct pyro_ring *ring, uint64_t *written, size_t len)
{
    uint8_t chunk[512];
    for (size_t i = 0; i < len; i++)
        chunk[i] = stream_byte(*written + i);
    pyro_ring_append(ring, chunk, len);
    *written += len;
}

static int span_matches_stream(const struct pyro_ring *ring, struct pyro_ring_span s)
{
    uint8_t out[512];
    size_t len = (size_t)(s.end - s.start);
    if (len > sizeof out)
        return 0;
    pyro_ring_copy(ring, s.start, out, len);
    for (size_t i = 0; i < len; i++)
        if (out[i] != stream_byte(s.start + i))
            return 0;
    return 1;
}

static void test_empty_ring(void)
{
    uint8_t buf[16];
    struct pyro_ring ring;
    pyro_ring_init(&ring, buf, sizeof buf);
    struct pyro_ring_span s = pyro_ring_span(&ring, 0, 100);
    CHECK(s.start == 0 && s.end == 0 && !s.truncated);
    CHECK(pyro_ring_oldest(&ring) == 0);
    s = pyro_ring_span(&ring, 5, 100); /* a cursor from the future reads nothing */
    CHECK(s.start == 0 && s.end == 0 && !s.truncated);
}

static void test_exact_ranges_before_wrap(void)
{
    uint8_t buf[16];
    struct pyro_ring ring;
    uint64_t written = 0;
    pyro_ring_init(&ring, buf, sizeof buf);
    append_stream(&ring, &written, 10);
    struct pyro_ring_span s = pyro_ring_span(&ring, 3, 4);
    CHECK(s.start == 3 && s.end == 7 && !s.truncated && span_matches_stream(&ring, s));
    s = pyro_ring_span(&ring, 7, 100); /* max_bytes beyond the end stops at the end */
    CHECK(s.start == 7 && s.end == 10 && span_matches_stream(&ring, s));
    s = pyro_ring_span(&ring, 10, 100);
    CHECK(s.start == 10 && s.end == 10 && !s.truncated);
    s = pyro_ring_span(&ring, 11, 100);
    CHECK(s.start == 10 && s.end == 10 && !s.truncated);
}

static void test_overflow_truncates_old_cursors(void)
{
    uint8_t buf[16];
    struct pyro_ring ring;
    uint64_t written = 0;
    pyro_ring_init(&ring, buf, sizeof buf);
    append_stream(&ring, &written, 10);
    append_stream(&ring, &written, 10); /* wraps: bytes 0..3 are gone */
    CHECK(ring.end == 20 && pyro_ring_oldest(&ring) == 4);
    struct pyro_ring_span s = pyro_ring_span(&ring, 0, 100);
    CHECK(s.start == 4 && s.end == 20 && s.truncated && span_matches_stream(&ring, s));
    s = pyro_ring_span(&ring, 4, 100);
    CHECK(s.start == 4 && !s.truncated && span_matches_stream(&ring, s));
    s = pyro_ring_span(&ring, 13, 5); /* a range across the wrap point */
    CHECK(s.start == 13 && s.end == 18 && span_matches_stream(&ring, s));
}

static void test_append_longer_than_ring_keeps_newest(void)
{
    uint8_t buf[16];
    struct pyro_ring ring;
    uint64_t written = 0;
    pyro_ring_init(&ring, buf, sizeof buf);
    append_stream(&ring, &written, 5);
    append_stream(&ring, &written, 40);
    CHECK(ring.end == 45 && pyro_ring_oldest(&ring) == 29);
    struct pyro_ring_span s = pyro_ring_span(&ring, 6, 1000);
    CHECK(s.start == 29 && s.end == 45 && s.truncated && span_matches_stream(&ring, s));
}

/* Many uneven appends: every read from every cursor returns exactly the stream's bytes. */
static void test_cursor_arithmetic_over_many_wraps(void)
{
    uint8_t buf[37];
    struct pyro_ring ring;
    uint64_t written = 0;
    int bad = 0;
    pyro_ring_init(&ring, buf, sizeof buf);
    for (size_t round = 0; round < 300; round++) {
        append_stream(&ring, &written, (round * 13) % 50);
        for (uint64_t cursor = written > 60 ? written - 60 : 0; cursor <= written + 2;
             cursor++) {
            struct pyro_ring_span s = pyro_ring_span(&ring, cursor, 1 + round % 40);
            uint64_t oldest = written > sizeof buf ? written - sizeof buf : 0;
            uint64_t start = cursor < oldest ? oldest : cursor > written ? written : cursor;
            uint64_t end = written - start < 1 + round % 40 ? written : start + 1 + round % 40;
            if (s.start != start || s.end != end || s.truncated != (cursor < oldest) ||
                !span_matches_stream(&ring, s))
                bad++;
        }
    }
    CHECK(bad == 0);
    CHECK(ring.end == written);
}

void test_ring(void)
{
    test_empty_ring();
    test_exact_ranges_before_wrap();
    test_overflow_truncates_old_cursors();
    test_append_longer_than_ring_keeps_newest();
    test_cursor_arithmetic_over_many_wraps();
}
