#include "park.h"
#include "test.h"

#include <string.h>

/* Feeds text and returns the offset just after the first completed PYRO_PARK_GO, or -1. */
static long go_at(const char *text)
{
    struct pyro_park_matcher m = {0};
    for (size_t i = 0; text[i] != '\0'; i++)
        if (pyro_park_feed(&m, (uint8_t)text[i]))
            return (long)i + 1;
    return -1;
}

static void park_bytes(void)
{
    /* The wire bytes are fixed by the design; the host (src/guest/park.ts) matches them. */
    CHECK(strcmp(PYRO_PARK_SIGNAL, "PYRO-PARKED\n") == 0 && strlen(PYRO_PARK_SIGNAL) == 12);
    CHECK(strcmp(PYRO_PARK_GO, "PYRO-GO\n") == 0 && strlen(PYRO_PARK_GO) == 8);
}

static void park_matcher(void)
{
    CHECK(go_at("PYRO-GO\n") == 8);
    CHECK(go_at("junk\x01\xffPYRO-GO\nhello") == 14);
    CHECK(go_at("PYRO-PYRO-GO\n") == 13); /* a restart inside a partial match */
    CHECK(go_at("PPYRO-GO\n") == 9);
    CHECK(go_at("PYRO-GO") == -1);
    CHECK(go_at("PYRO-GO\r\n") == -1);
    CHECK(go_at("pyro-go\n") == -1);
    CHECK(go_at("PYRO-PARKED\n") == -1);
    CHECK(go_at("") == -1);
    /* The matcher starts over after a match: a second GO needs all eight bytes again. */
    struct pyro_park_matcher m = {0};
    const char *twice = "PYRO-GO\nGO\n";
    int matches = 0;
    for (size_t i = 0; twice[i] != '\0'; i++)
        matches += pyro_park_feed(&m, (uint8_t)twice[i]);
    CHECK(matches == 1);
}

void test_park(void)
{
    park_bytes();
    park_matcher();
}
