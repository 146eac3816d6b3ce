#include "sha256.h"
#include "test.h"

#include <string.h>

static int digest_is(const void *data, size_t len, const char *hex)
{
    struct pyro_sha256 h;
    uint8_t digest[PYRO_SHA256_BYTES];
    char out[2 * PYRO_SHA256_BYTES + 1];
    pyro_sha256_init(&h);
    pyro_sha256_update(&h, data, len);
    pyro_sha256_final(&h, digest);
    pyro_sha256_hex(digest, out);
    return strcmp(out, hex) == 0;
}

/* FIPS 180-4 examples (NIST CSRC "SHA256.pdf") and the one-million-a vector. */
static void test_standard_vectors(void)
{
    CHECK(digest_is("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    CHECK(digest_is("abc", 3,
                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    CHECK(digest_is(two_blocks, strlen(two_blocks),
                    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
    static char million[1000000];
    memset(million, 'a', sizeof million);
    CHECK(digest_is(million, sizeof million,
                    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
}

/* Every length up to 300 bytes, fed in pieces of 1 to 130 bytes, gives the one-shot digest:
 * the block buffering is where an off-by-one would hide (55, 56, 63, 64 bytes). */
static void test_split_updates(void)
{
    uint8_t data[300];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 31 + 7);
    for (size_t total = 0; total <= sizeof data; total += 1) {
        struct pyro_sha256 whole, parts;
        uint8_t a[PYRO_SHA256_BYTES], b[PYRO_SHA256_BYTES];
        pyro_sha256_init(&whole);
        pyro_sha256_update(&whole, data, total);
        pyro_sha256_final(&whole, a);
        size_t piece = total % 130 + 1;
        pyro_sha256_init(&parts);
        for (size_t at = 0; at < total; at += piece)
            pyro_sha256_update(&parts, data + at, total - at < piece ? total - at : piece);
        pyro_sha256_final(&parts, b);
        CHECK(memcmp(a, b, sizeof a) == 0);
    }
}

void test_sha256(void)
{
    test_standard_vectors();
    test_split_updates();
}
