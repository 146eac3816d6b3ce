#include "frame.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct pyro_frame_reader reader;

static size_t make_frame(uint8_t *out, uint32_t channel, uint8_t type, const void *payload,
                         uint32_t len)
{
    struct pyro_frame_header h = {.payload_len = len, .channel = channel, .type = type};
    pyro_frame_header_encode(out, &h);
    if (len)
        memcpy(out + PYRO_FRAME_HEADER_SIZE, payload, len);
    return PYRO_FRAME_HEADER_SIZE + len;
}

static void header_layout_is_little_endian(void)
{
    struct pyro_frame_header h = {.payload_len = 0x01020304,
                                  .channel = 0xA0B0C0D0,
                                  .type = PYRO_FRAME_STDERR,
                                  .flags = 0x11,
                                  .reserved = 0x2233};
    uint8_t b[PYRO_FRAME_HEADER_SIZE];
    static const uint8_t want[] = {4, 3, 2, 1, 0xD0, 0xC0, 0xB0, 0xA0, 3, 0x11, 0x33, 0x22};
    pyro_frame_header_encode(b, &h);
    CHECK(memcmp(b, want, sizeof want) == 0);
    struct pyro_frame_header back;
    pyro_frame_header_decode(b, &back);
    CHECK(back.payload_len == h.payload_len && back.channel == h.channel);
    CHECK(back.type == h.type && back.flags == h.flags && back.reserved == h.reserved);
}

static void whole_frame_in_one_push(void)
{
    uint8_t buf[64];
    size_t n = make_frame(buf, 7, PYRO_FRAME_CONTROL, "{\"op\":1}", 8), used;
    pyro_frame_reader_reset(&reader);
    CHECK(pyro_frame_reader_push(&reader, buf, n, &used) == PYRO_FRAME_READY);
    CHECK(used == n);
    CHECK(reader.header.channel == 7 && reader.header.payload_len == 8);
    CHECK(memcmp(reader.payload, "{\"op\":1}", 8) == 0);
}

static void byte_by_byte_and_back_to_back(void)
{
    uint8_t buf[128];
    size_t n = make_frame(buf, 1, PYRO_FRAME_STDIN, "abc", 3);
    n += make_frame(buf + n, 2, PYRO_FRAME_STDIN_EOF, NULL, 0);
    n += make_frame(buf + n, 3, PYRO_FRAME_STDIN, "xyz!", 4);
    pyro_frame_reader_reset(&reader);
    uint32_t channels[3];
    int frames = 0;
    for (size_t i = 0; i < n; i++) {
        size_t used;
        enum pyro_frame_status st = pyro_frame_reader_push(&reader, buf + i, 1, &used);
        CHECK(used == 1);
        if (st == PYRO_FRAME_READY && frames < 3)
            channels[frames++] = reader.header.channel;
    }
    CHECK(frames == 3);
    CHECK(channels[0] == 1 && channels[1] == 2 && channels[2] == 3);
    CHECK(memcmp(reader.payload, "xyz!", 4) == 0);

    /* All three in one buffer: one frame per call, consumed counts add up. */
    pyro_frame_reader_reset(&reader);
    size_t off = 0, used;
    frames = 0;
    while (off < n) {
        if (pyro_frame_reader_push(&reader, buf + off, n - off, &used) == PYRO_FRAME_READY)
            frames++;
        off += used;
    }
    CHECK(frames == 3 && off == n);
}

static void length_limits(void)
{
    static uint8_t big[PYRO_FRAME_HEADER_SIZE + PYRO_MAX_PAYLOAD_BYTES];
    size_t used;
    memset(big, 'x', sizeof big);
    size_t n = make_frame(big, 9, PYRO_FRAME_STDIN, big + PYRO_FRAME_HEADER_SIZE,
                          PYRO_MAX_PAYLOAD_BYTES);
    pyro_frame_reader_reset(&reader);
    CHECK(pyro_frame_reader_push(&reader, big, n, &used) == PYRO_FRAME_READY);
    CHECK(used == n && reader.header.payload_len == PYRO_MAX_PAYLOAD_BYTES);

    uint8_t hdr[PYRO_FRAME_HEADER_SIZE];
    struct pyro_frame_header h = {.payload_len = PYRO_MAX_PAYLOAD_BYTES + 1, .channel = 1};
    pyro_frame_header_encode(hdr, &h);
    pyro_frame_reader_reset(&reader);
    CHECK(pyro_frame_reader_push(&reader, hdr, 6, &used) == PYRO_FRAME_NEED_MORE);
    CHECK(pyro_frame_reader_push(&reader, hdr + 6, 6, &used) == PYRO_FRAME_TOO_LARGE);
    /* Sticky: nothing after an oversized header is trusted. */
    CHECK(pyro_frame_reader_push(&reader, big, 100, &used) == PYRO_FRAME_TOO_LARGE);
    CHECK(used == 0);
    h.payload_len = 0xFFFFFFFF;
    pyro_frame_header_encode(hdr, &h);
    pyro_frame_reader_reset(&reader);
    CHECK(pyro_frame_reader_push(&reader, hdr, sizeof hdr, &used) == PYRO_FRAME_TOO_LARGE);
    pyro_frame_reader_reset(&reader);
    n = make_frame(big, 4, PYRO_FRAME_CONTROL, "{}", 2);
    CHECK(pyro_frame_reader_push(&reader, big, n, &used) == PYRO_FRAME_READY);
}

static void write_all_through_a_full_socket(void)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK(fcntl(sv[0], F_SETFL, O_NONBLOCK) == 0);
    size_t len = 8 << 20;
    uint8_t *data = malloc(len);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i * 31);
    pid_t pid = fork();
    if (pid == 0) {
        /* A slow reader forces EAGAIN and the poll path in the writer. */
        close(sv[0]);
        size_t total = 0, bad = 0;
        uint8_t buf[4096];
        ssize_t n;
        while ((n = read(sv[1], buf, sizeof buf)) > 0) {
            for (ssize_t i = 0; i < n; i++)
                bad += buf[i] != (uint8_t)((total + (size_t)i) * 31);
            total += (size_t)n;
        }
        _exit(total == len && bad == 0 ? 0 : 1);
    }
    close(sv[1]);
    CHECK(pyro_write_all(sv[0], data, len) == 0);
    close(sv[0]);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    free(data);
}

static void write_all_reports_a_gone_peer(void)
{
    int p[2];
    CHECK(pipe(p) == 0);
    close(p[0]);
    errno = 0;
    CHECK(pyro_write_all(p[1], "x", 1) == -1 && errno == EPIPE);
    close(p[1]);
}

void test_frame(void)
{
    header_layout_is_little_endian();
    whole_frame_in_one_push();
    byte_by_byte_and_back_to_back();
    length_limits();
    write_all_through_a_full_socket();
    write_all_reports_a_gone_peer();
}
