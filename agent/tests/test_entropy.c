#include "entropy.h"
#include "test.h"

#include <string.h>

static bool decodes_to(const char *text, const char *want)
{
    uint8_t out[64];
    size_t n;
    return pyro_base64_decode(text, strlen(text), out, sizeof out, &n) && n == strlen(want) &&
           memcmp(out, want, n) == 0;
}

static bool refused(const char *text, size_t cap)
{
    uint8_t out[64];
    size_t n;
    return !pyro_base64_decode(text, strlen(text), out, cap, &n);
}

static void base64_vectors(void)
{
    /* RFC 4648 section 10. */
    CHECK(decodes_to("", ""));
    CHECK(decodes_to("Zg==", "f"));
    CHECK(decodes_to("Zm8=", "fo"));
    CHECK(decodes_to("Zm9v", "foo"));
    CHECK(decodes_to("Zm9vYg==", "foob"));
    CHECK(decodes_to("Zm9vYmE=", "fooba"));
    CHECK(decodes_to("Zm9vYmFy", "foobar"));
    CHECK(decodes_to("+/+/", "\xfb\xff\xbf"));
}

static void base64_refusals(void)
{
    CHECK(refused("Zg=", 64));      /* not a multiple of 4 */
    CHECK(refused("Zg", 64));       /* unpadded */
    CHECK(refused("Zh==", 64));     /* non-zero pad bits */
    CHECK(refused("Zm9=", 64));     /* non-zero pad bits */
    CHECK(refused("Zg==Zm9v", 64)); /* padding in the middle */
    CHECK(refused("Z===", 64));     /* three pad characters */
    CHECK(refused("Zm9v\n", 64));   /* whitespace */
    CHECK(refused("Zm-_", 64));     /* the URL-safe alphabet */
    CHECK(refused("Zm9vYmFy", 5));  /* decodes to more than cap */
    CHECK(!refused("Zm9vYmFy", 6)); /* exactly cap */
    uint8_t out[8];
    size_t n;
    CHECK(!pyro_base64_decode("Zm9v\0Zm9", 8, out, sizeof out, &n)); /* a NUL inside */
}

static void entropy_bounds(void)
{
    uint8_t bytes[PYRO_ENTROPY_BYTES + 1] = {0};
    CHECK(pyro_entropy_add(bytes, sizeof bytes) != 0); /* more than the pool buffer holds */
}

void test_entropy(void)
{
    base64_vectors();
    base64_refusals();
    entropy_bounds();
}
