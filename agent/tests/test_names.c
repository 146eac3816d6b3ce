/* Service names and shell ids: ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$. */
#include "request.h"
#include "test.h"

#include <string.h>

static bool valid(const char *s)
{
    return pyro_name_valid(s, strlen(s));
}

void test_names(void)
{
    char longest[PYRO_NAME_MAX + 2];
    memset(longest, 'a', sizeof longest);
    longest[PYRO_NAME_MAX] = '\0';
    CHECK(valid("web") && valid("a") && valid("9.x_y-z") && valid("sh-0123abcd"));
    CHECK(valid(longest));
    longest[PYRO_NAME_MAX] = 'a';
    longest[PYRO_NAME_MAX + 1] = '\0';
    CHECK(!valid(longest));
    CHECK(!valid("") && !valid(".hidden") && !valid("-x") && !valid("_x"));
    CHECK(!valid("a/b") && !valid("..") && !valid("a b") && !valid("caf\xc3\xa9"));
    CHECK(!pyro_name_valid("a\0b", 3)); /* a NUL inside is not a name character */
}
