#include "path.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

/* Length of the component starting at p (up to the next '/' or the end). */
static size_t component_len(const char *p)
{
    size_t n = 0;
    while (p[n] != '\0' && p[n] != '/')
        n++;
    return n;
}

static bool is_dot(const char *p, size_t n)
{
    return n == 1 && p[0] == '.';
}

static bool is_dotdot(const char *p, size_t n)
{
    return n == 2 && p[0] == '.' && p[1] == '.';
}

int pyro_path_clean(const char *in, char *out, size_t cap)
{
    if (in == NULL || in[0] == '\0') {
        errno = EINVAL;
        return -1;
    }
    if (cap < 2) {
        errno = ENAMETOOLONG;
        return -1;
    }
    bool absolute = in[0] == '/';
    size_t base = absolute ? 1 : 0; /* out[0..base) is never popped by ".." */
    size_t len = 0;
    if (absolute)
        out[len++] = '/';
    for (const char *p = in; *p != '\0';) {
        while (*p == '/')
            p++;
        size_t n = component_len(p);
        const char *comp = p;
        p += n;
        if (n == 0 || is_dot(comp, n))
            continue;
        if (is_dotdot(comp, n)) {
            if (len == base) {
                if (absolute)
                    continue; /* "/.." is "/" */
                errno = EXDEV;
                return -1;
            }
            while (len > base && out[len - 1] != '/')
                len--;
            if (len > base)
                len--; /* the separator before the dropped component */
            continue;
        }
        size_t sep = len > base ? 1 : 0;
        if (len + sep + n + 1 > cap) {
            errno = ENAMETOOLONG;
            return -1;
        }
        if (sep)
            out[len++] = '/';
        memcpy(out + len, comp, n);
        len += n;
    }
    if (len == 0)
        out[len++] = '.';
    out[len] = '\0';
    return 0;
}

int pyro_path_under_root(const char *root, const char *path, char *rel, size_t cap)
{
    if (path == NULL || path[0] != '/')
        return pyro_path_clean(path, rel, cap);
    char abs[PATH_MAX];
    if (pyro_path_clean(path, abs, sizeof abs) != 0)
        return -1;
    size_t root_len = strlen(root);
    const char *rest;
    if (strcmp(root, "/") == 0)
        rest = abs + 1;
    else if (strncmp(abs, root, root_len) == 0 &&
             (abs[root_len] == '\0' || abs[root_len] == '/'))
        rest = abs[root_len] == '/' ? abs + root_len + 1 : abs + root_len;
    else {
        errno = EXDEV;
        return -1;
    }
    if (*rest == '\0')
        rest = ".";
    size_t n = strlen(rest);
    if (n + 1 > cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(rel, rest, n + 1);
    return 0;
}

bool pyro_path_has_dotdot(const char *path)
{
    for (const char *p = path; *p != '\0';) {
        while (*p == '/')
            p++;
        size_t n = component_len(p);
        if (is_dotdot(p, n))
            return true;
        p += n;
    }
    return false;
}

const char *pyro_path_split(const char *path, char *dir, size_t cap)
{
    size_t len = strlen(path);
    const char *slash = strrchr(path, '/');
    if (cap < len + 2) {
        if (cap > 0)
            dir[0] = '\0';
        return slash ? slash + 1 : path;
    }
    if (slash == NULL) {
        strcpy(dir, ".");
        return path;
    }
    size_t n = (size_t)(slash - path);
    if (n == 0)
        n = 1; /* "/name": the directory is "/" */
    memcpy(dir, path, n);
    dir[n] = '\0';
    return slash + 1;
}
