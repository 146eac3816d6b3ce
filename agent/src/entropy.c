#include "entropy.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int base64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decodes one 4-character group into 1 to 3 bytes; '=' only at the end of the text. */
static int decode_group(const char *g, bool last, uint8_t bytes[3])
{
    int pad = g[3] == '=' ? (g[2] == '=' ? 2 : 1) : 0;
    if (pad > 0 && !last)
        return -1;
    uint32_t bits = 0;
    for (int i = 0; i < 4 - pad; i++) {
        int v = base64_value(g[i]);
        if (v < 0)
            return -1;
        bits |= (uint32_t)v << (18 - 6 * i);
    }
    /* Canonical only: the bits the padding stands for must be zero. */
    if ((pad == 1 && (bits & 0xff) != 0) || (pad == 2 && (bits & 0xffff) != 0))
        return -1;
    bytes[0] = (uint8_t)(bits >> 16);
    bytes[1] = (uint8_t)(bits >> 8);
    bytes[2] = (uint8_t)bits;
    return 3 - pad;
}

bool pyro_base64_decode(const char *text, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    *out_len = 0;
    if (len % 4 != 0)
        return false;
    for (size_t at = 0; at < len; at += 4) {
        uint8_t bytes[3];
        int n = decode_group(text + at, at + 4 == len, bytes);
        if (n < 0 || *out_len + (size_t)n > cap)
            return false;
        memcpy(out + *out_len, bytes, (size_t)n);
        *out_len += (size_t)n;
    }
    return true;
}

int pyro_entropy_add(const uint8_t *bytes, size_t len)
{
    if (len > PYRO_ENTROPY_BYTES) {
        errno = EINVAL;
        return -1;
    }
    /* struct rand_pool_info: int entropy_count (bits), int buf_size (bytes), then the
     * bytes; laid out by hand to avoid a flexible array member on the stack. */
    uint32_t pool[2 + PYRO_ENTROPY_BYTES / 4] = {0};
    int header[2] = {(int)len * 8, (int)len};
    memcpy(pool, header, sizeof header);
    memcpy(pool + 2, bytes, len);
    int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = ioctl(fd, RNDADDENTROPY, pool);
    if (rc == 0)
        rc = ioctl(fd, RNDRESEEDCRNG);
    int saved = errno;
    close(fd);
    explicit_bzero(pool, sizeof pool);
    errno = saved;
    return rc;
}
