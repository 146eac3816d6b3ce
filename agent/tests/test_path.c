#include "path.h"
#include "test.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

/* Cleans in and compares with want; want NULL expects failure with err. */
static int clean_is(const char *in, const char *want, int err)
{
    char out[64];
    errno = 0;
    int rc = pyro_path_clean(in, out, sizeof out);
    if (want == NULL)
        return rc == -1 && errno == err;
    return rc == 0 && strcmp(out, want) == 0;
}

static int under_is(const char *root, const char *path, const char *want, int err)
{
    char rel[64];
    errno = 0;
    int rc = pyro_path_under_root(root, path, rel, sizeof rel);
    if (want == NULL)
        return rc == -1 && errno == err;
    return rc == 0 && strcmp(rel, want) == 0;
}

static void cleaning(void)
{
    CHECK(clean_is("a/b", "a/b", 0));
    CHECK(clean_is("a/./b//c/", "a/b/c", 0));
    CHECK(clean_is(".", ".", 0));
    CHECK(clean_is("./", ".", 0));
    CHECK(clean_is("a/..", ".", 0));
    CHECK(clean_is("a/b/../../c", "c", 0));
    CHECK(clean_is("a/../b/./../c", "c", 0));
    CHECK(clean_is("...", "...", 0)); /* a name, not a parent */
    CHECK(clean_is("..a/b..", "..a/b..", 0));
    CHECK(clean_is("/", "/", 0));
    CHECK(clean_is("///", "/", 0));
    CHECK(clean_is("/..", "/", 0));
    CHECK(clean_is("/../a/../../b/", "/b", 0));
    CHECK(clean_is("/workspace//src/./x", "/workspace/src/x", 0));
    CHECK(clean_is("..", NULL, EXDEV));
    CHECK(clean_is("../x", NULL, EXDEV));
    CHECK(clean_is("a/../../x", NULL, EXDEV));
    CHECK(clean_is("a/b/../../..", NULL, EXDEV));
    CHECK(clean_is("", NULL, EINVAL));
    CHECK(clean_is(NULL, NULL, EINVAL));
    char long_in[200];
    memset(long_in, 'x', sizeof long_in - 1);
    long_in[sizeof long_in - 1] = '\0';
    CHECK(clean_is(long_in, NULL, ENAMETOOLONG));
    char out[4];
    CHECK(pyro_path_clean("abc", out, sizeof out) == 0 && strcmp(out, "abc") == 0);
    CHECK(pyro_path_clean("abcd", out, sizeof out) == -1 && errno == ENAMETOOLONG);
}

static void mapping_onto_a_root(void)
{
    CHECK(under_is("/workspace", "src/app.py", "src/app.py", 0));
    CHECK(under_is("/workspace", ".", ".", 0));
    CHECK(under_is("/workspace", "/workspace", ".", 0));
    CHECK(under_is("/workspace", "/workspace/", ".", 0));
    CHECK(under_is("/workspace", "/workspace/./src//a/", "src/a", 0));
    CHECK(under_is("/workspace", "/workspace/a/../b", "b", 0));
    CHECK(under_is("/workspace", "/workspacex/y", NULL, EXDEV));
    CHECK(under_is("/workspace", "/etc/passwd", NULL, EXDEV));
    CHECK(under_is("/workspace", "/workspace/../etc", NULL, EXDEV));
    CHECK(under_is("/workspace", "/", NULL, EXDEV));
    CHECK(under_is("/workspace", "../x", NULL, EXDEV));
    CHECK(under_is("/workspace", "src/../../x", NULL, EXDEV));
    CHECK(under_is("/", "/etc/passwd", "etc/passwd", 0));
    CHECK(under_is("/", "/", ".", 0));
    CHECK(under_is("/a/b", "/a/b/c", "c", 0));
    CHECK(under_is("/a/b", "/a", NULL, EXDEV));
    CHECK(under_is("/workspace", "", NULL, EINVAL));
}

static void dotdot_and_split(void)
{
    CHECK(pyro_path_has_dotdot(".."));
    CHECK(pyro_path_has_dotdot("/a/../b"));
    CHECK(pyro_path_has_dotdot("/a/.."));
    CHECK(pyro_path_has_dotdot("//..//"));
    CHECK(!pyro_path_has_dotdot("/a/..b/c.."));
    CHECK(!pyro_path_has_dotdot("/workspace"));
    CHECK(!pyro_path_has_dotdot("..."));
    char dir[PATH_MAX];
    CHECK(strcmp(pyro_path_split("a/b/c", dir, sizeof dir), "c") == 0 &&
          strcmp(dir, "a/b") == 0);
    CHECK(strcmp(pyro_path_split("name", dir, sizeof dir), "name") == 0 &&
          strcmp(dir, ".") == 0);
    CHECK(strcmp(pyro_path_split("/name", dir, sizeof dir), "name") == 0 &&
          strcmp(dir, "/") == 0);
    CHECK(strcmp(pyro_path_split("a/", dir, sizeof dir), "") == 0 && strcmp(dir, "a") == 0);
    char small[3];
    CHECK(strcmp(pyro_path_split("a/b", small, sizeof small), "b") == 0 && small[0] == '\0');
}

void test_path(void)
{
    cleaning();
    mapping_onto_a_root();
    dotdot_and_split();
}
