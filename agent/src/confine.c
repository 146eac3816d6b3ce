#include "confine.h"

#include "agent.h"
#include "log.h"
#include "path.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437 /* the same number on every architecture */
#endif

/* openat2 fails with EAGAIN when a rename or mount raced a ".." step; it may be retried. */
#define OPENAT2_ATTEMPTS 8

static bool openat2_missing;

bool pyro_confine_parse_root(const struct pyro_json_value *v, const char *op, const char *field,
                             char *out, size_t cap, struct pyro_error *e)
{
    if (!pyro_json_is_cstring(v) || v->str[0] != '/' || pyro_path_has_dotdot(v->str) ||
        pyro_path_clean(v->str, out, cap) != 0) {
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0,
                       "%s: %s must be an absolute path without .. components, shorter than "
                       "%zu bytes",
                       op, field, cap);
        return false;
    }
    return true;
}

bool pyro_confine_host_path(const char *root, char *out, size_t cap)
{
    const char *prefix = pyro_agent.root_dir ? pyro_agent.root_dir : "";
    int n = snprintf(out, cap, "%s%s", prefix, root);
    return n >= 0 && (size_t)n < cap;
}

static bool open_root(struct pyro_confined *c, const char *op, struct pyro_error *e)
{
    char host[PATH_MAX];
    if (!pyro_confine_host_path(c->root, host, sizeof host)) {
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0, "%s: root is too long", op);
        return false;
    }
    c->root_fd = open(host, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (c->root_fd >= 0)
        return true;
    if (errno == ENOENT)
        pyro_error_set(e, PYRO_ERR_NOT_FOUND, errno, "root %.256s does not exist", c->root);
    else if (errno == ENOTDIR)
        pyro_error_set(e, PYRO_ERR_NOT_FOUND, errno, "root %.256s is not a directory", c->root);
    else
        pyro_error_set(e, PYRO_ERR_INTERNAL, errno, "%s: root %.256s: %s", op, c->root,
                       strerror(errno));
    return false;
}

bool pyro_confine_request(const struct pyro_json_value *req, const char *op,
                          struct pyro_confined *c, struct pyro_error *e)
{
    c->root_fd = -1;
    if (!pyro_confine_parse_root(pyro_json_get(req, "root"), op, "root", c->root,
                                 sizeof c->root, e))
        return false;
    const struct pyro_json_value *path = pyro_json_get(req, "path");
    if (!pyro_json_is_cstring(path) || path->len == 0) {
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0,
                       "%s: path must be a non-empty string without NUL bytes", op);
        return false;
    }
    snprintf(c->given, sizeof c->given, "%s", path->str);
    if (pyro_path_under_root(c->root, path->str, c->rel, sizeof c->rel) != 0) {
        if (errno == EXDEV)
            pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0, "path %s escapes %.256s", c->given,
                           c->root);
        else
            pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0, "%s: path %s is too long", op,
                           c->given);
        return false;
    }
    return open_root(c, op, e);
}

void pyro_confine_release(struct pyro_confined *c)
{
    pyro_close(&c->root_fd);
}

int pyro_confine_open(int root_fd, const char *rel, int flags)
{
    struct open_how how = {.flags = (unsigned)(flags | O_CLOEXEC),
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    for (int attempt = 0; !openat2_missing && attempt < OPENAT2_ATTEMPTS; attempt++) {
        long fd = syscall(SYS_openat2, root_fd, rel, &how, sizeof how);
        if (fd >= 0)
            return (int)fd;
        if (errno == ENOSYS) {
            LOG_WARN("openat2 is not available; confining file paths in user space");
            openat2_missing = true;
        } else if (errno != EINTR && errno != EAGAIN) {
            return -1;
        }
    }
    if (!openat2_missing)
        return -1; /* EAGAIN every time */
    return pyro_confine_walk(root_fd, rel, flags);
}

/* The user-space walk's state: the directories entered so far (so ".." pops one and
 * can never go above the root) and the path still to resolve. */
struct walk {
    int dirs[PYRO_CONFINE_MAX_DEPTH]; /* owned; the current one is the last */
    size_t depth;
    int root_fd;
    char todo[PATH_MAX];
    size_t pos;
    int links;
};

static int walk_cwd(const struct walk *w)
{
    return w->depth > 0 ? w->dirs[w->depth - 1] : w->root_fd;
}

/* Copies the next component to name; false at the end of the path. */
static bool walk_next(struct walk *w, char name[NAME_MAX + 1], bool *last)
{
    while (w->todo[w->pos] == '/')
        w->pos++;
    if (w->todo[w->pos] == '\0')
        return false;
    size_t n = strcspn(w->todo + w->pos, "/");
    if (n > NAME_MAX) {
        errno = ENAMETOOLONG;
        name[0] = '\0';
        return true;
    }
    memcpy(name, w->todo + w->pos, n);
    name[n] = '\0';
    w->pos += n;
    *last = w->todo[w->pos + strspn(w->todo + w->pos, "/")] == '\0';
    return true;
}

/* Replaces the component just read (a symbolic link opened as link_fd) by its target. */
static int walk_expand_link(struct walk *w, int link_fd)
{
    char target[PATH_MAX], rest[PATH_MAX];
    if (++w->links > PYRO_CONFINE_MAX_SYMLINKS) {
        errno = ELOOP;
        return -1;
    }
    ssize_t n = readlinkat(link_fd, "", target, sizeof target - 1);
    if (n < 0)
        return -1;
    target[n] = '\0';
    if (target[0] == '/') {
        errno = EXDEV; /* RESOLVE_BENEATH refuses absolute links too */
        return -1;
    }
    snprintf(rest, sizeof rest, "%s", w->todo + w->pos);
    int len = snprintf(w->todo, sizeof w->todo, "%s/%s", target, rest);
    if (len < 0 || (size_t)len >= sizeof w->todo) {
        errno = ENAMETOOLONG;
        return -1;
    }
    w->pos = 0;
    return 0;
}

/* One component: returns 1 to go on, 0 when *fd holds the result, -1 on error. */
static int walk_step(struct walk *w, const char *name, bool last, int flags, int *fd)
{
    if (strcmp(name, ".") == 0)
        return 1;
    if (strcmp(name, "..") == 0) {
        if (w->depth == 0) {
            errno = EXDEV;
            return -1;
        }
        pyro_close(&w->dirs[--w->depth]);
        return 1;
    }
    int next = openat(walk_cwd(w), name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (next < 0 || fstat(next, &st) != 0) {
        pyro_close(&next);
        return -1;
    }
    if (S_ISLNK(st.st_mode) && !(last && (flags & O_NOFOLLOW))) {
        int rc = walk_expand_link(w, next);
        pyro_close(&next);
        return rc == 0 ? 1 : -1;
    }
    if (last) {
        /* O_NOFOLLOW: if the name was swapped for a link since, this fails (ELOOP). */
        pyro_close(&next);
        *fd = openat(walk_cwd(w), name, flags | O_NOFOLLOW | O_CLOEXEC);
        return *fd >= 0 ? 0 : -1;
    }
    if (!S_ISDIR(st.st_mode) || w->depth == PYRO_CONFINE_MAX_DEPTH) {
        pyro_close(&next);
        errno = S_ISDIR(st.st_mode) ? ENAMETOOLONG : ENOTDIR;
        return -1;
    }
    w->dirs[w->depth++] = next;
    return 1;
}

int pyro_confine_walk(int root_fd, const char *rel, int flags)
{
    static struct walk w; /* 5 KiB; the agent is single-threaded */
    w.depth = 0;
    w.root_fd = root_fd;
    w.pos = 0;
    w.links = 0;
    if (snprintf(w.todo, sizeof w.todo, "%s", rel) >= (int)sizeof w.todo) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = -1, rc = 1;
    char name[NAME_MAX + 1];
    bool last = false;
    while (rc > 0) {
        if (!walk_next(&w, name, &last)) {
            fd = openat(walk_cwd(&w), ".", flags | O_CLOEXEC); /* "." or ended in ".." */
            rc = fd >= 0 ? 0 : -1;
        } else {
            rc = name[0] == '\0' ? -1 : walk_step(&w, name, last, flags, &fd);
        }
    }
    int saved = errno;
    while (w.depth > 0)
        pyro_close(&w.dirs[--w.depth]);
    errno = saved;
    return rc == 0 ? fd : -1;
}

int pyro_confine_open_parent(int root_fd, const char *rel, char name[NAME_MAX + 1])
{
    char dir[PATH_MAX + 2];
    const char *base = pyro_path_split(rel, dir, sizeof dir);
    if (strlen(base) > NAME_MAX) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(name, base);
    return pyro_confine_open(root_fd, dir, O_PATH | O_DIRECTORY);
}

int pyro_confine_mkdirs(int root_fd, const char *rel, int flags, mode_t mode)
{
    char prefix[PATH_MAX];
    size_t len = strlen(rel);
    if (len >= sizeof prefix) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int parent = -1; /* the directory of the step before; root_fd at first */
    for (size_t end = 0; end <= len && strcmp(rel, ".") != 0; end++) {
        if (rel[end] != '/' && rel[end] != '\0')
            continue;
        memcpy(prefix, rel, end);
        prefix[end] = '\0';
        const char *name = strrchr(prefix, '/') ? strrchr(prefix, '/') + 1 : prefix;
        int fd = pyro_confine_open(root_fd, prefix, O_PATH | O_DIRECTORY);
        if (fd < 0 && errno == ENOENT) {
            /* EEXIST: made meanwhile, or a dangling link, which the lookup then reports. */
            if (mkdirat(parent >= 0 ? parent : root_fd, name, mode) == 0 || errno == EEXIST)
                fd = pyro_confine_open(root_fd, prefix, O_PATH | O_DIRECTORY);
        }
        int saved = errno;
        pyro_close(&parent);
        if (fd < 0) {
            errno = saved;
            return -1;
        }
        parent = fd;
    }
    pyro_close(&parent);
    return pyro_confine_open(root_fd, rel, flags);
}

bool pyro_no_space_error(const char *op, const char *path, const char *step, int err,
                         struct pyro_error *e)
{
    if (err != ENOSPC && err != EDQUOT)
        return false;
    pyro_error_set(e, PYRO_ERR_INTERNAL, err,
                   "%s: path %s:%s%s the disk is full (%s); delete files to free space", op, path,
                   step ? " " : "", step ? step : "", strerror(err));
    return true;
}

void pyro_confine_error(const struct pyro_confined *c, const char *op, int err, bool creating,
                        struct pyro_error *e)
{
    if (pyro_no_space_error(op, c->given, NULL, err, e))
        return;
    switch (err) {
    case EXDEV:
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0, "path %s escapes %.256s", c->given,
                       c->root);
        return;
    case ENOENT:
        pyro_error_set(e, PYRO_ERR_NOT_FOUND, err, "path %s does not exist", c->given);
        return;
    case ENOTDIR:
        pyro_error_set(e, creating ? PYRO_ERR_INVALID_ARGUMENT : PYRO_ERR_NOT_FOUND, err,
                       "path %s: a component is not a directory", c->given);
        return;
    case EISDIR:
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, err, "path %s is a directory", c->given);
        return;
    case ELOOP:
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, err,
                       "path %s: too many levels of symbolic links", c->given);
        return;
    case ENAMETOOLONG:
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, err, "path %s is too long", c->given);
        return;
    default:
        pyro_error_set(e, PYRO_ERR_INTERNAL, err, "%s: path %s: %s", op, c->given,
                       strerror(err));
        return;
    }
}
