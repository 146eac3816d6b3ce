/* Confinement of the file operations to a workspace root.
 *
 * Every lookup below the root goes through openat2(2) with RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS relative to an O_PATH descriptor of the root, so neither ".." nor
 * a symbolic link can lead out of it: the kernel fails such a lookup with EXDEV, which is
 * reported as "path P escapes ROOT". Request paths are cleaned lexically first (path.h),
 * so a ".." in a request applies to its text and never reaches the kernel; ".." inside
 * symlink targets is resolved by the kernel, beneath the root.
 *
 * Where openat2 is missing (ENOSYS: kernels before 5.6, valgrind 3.19) the same rules are
 * applied by a walk in user space, one component at a time with O_NOFOLLOW. Unlike the
 * kernel's check it does not notice a directory being renamed out of the root while the
 * walk is inside it; the VM is the security boundary, this confinement is about which
 * files a request can name. */
#ifndef PYRO_CONFINE_H
#define PYRO_CONFINE_H

#include "json.h"
#include "request.h"

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

/* Symbolic links followed in one lookup, as the kernel's MAXSYMLINKS. */
#define PYRO_CONFINE_MAX_SYMLINKS 40
/* Directories deep that the user-space walk and the tree walks go. */
#define PYRO_CONFINE_MAX_DEPTH 256

struct pyro_confined {
    int root_fd;         /* O_PATH of the root; -1 when not open */
    char root[PATH_MAX]; /* the request's root, cleaned (for messages) */
    char rel[PATH_MAX];  /* the request's path, cleaned, relative to root; "." is root */
    char given[256];     /* the request's path as given, shortened (for messages) */
};

/* Validates an absolute root such as hello's workspace_root or a request's root: a
 * string without NUL and without ".." components (under --root it is appended to DIR).
 * out gets it cleaned. v may be NULL (missing: an error too). */
bool pyro_confine_parse_root(const struct pyro_json_value *v, const char *op, const char *field,
                             char *out, size_t cap, struct pyro_error *e);

/* Where root is on this machine: under --root DIR in host mode, as is otherwise. */
bool pyro_confine_host_path(const char *root, char *out, size_t cap);

/* Parses a request's "root" and "path", maps the path onto the root and opens the root.
 * On success the caller releases c with pyro_confine_release. */
bool pyro_confine_request(const struct pyro_json_value *req, const char *op,
                          struct pyro_confined *c, struct pyro_error *e);
void pyro_confine_release(struct pyro_confined *c);

/* Opens rel (relative to root_fd) with flags, never leaving root_fd's directory. Returns
 * the descriptor (close-on-exec) or -1 with errno; EXDEV means the path escapes. */
int pyro_confine_open(int root_fd, const char *rel, int flags);

/* The user-space walk pyro_confine_open falls back to; exposed for tests. */
int pyro_confine_walk(int root_fd, const char *rel, int flags);

/* Opens the directory that holds rel's last component (O_PATH | O_DIRECTORY) and copies
 * that component to name. rel must not be ".". Returns the descriptor or -1 with errno. */
int pyro_confine_open_parent(int root_fd, const char *rel, char name[NAME_MAX + 1]);

/* mkdir -p of rel below root_fd, each missing directory created with mode (before the
 * umask). Every step is looked up again from the root, so a symbolic link met on the way
 * is followed only while it stays beneath the root. Returns the final directory opened
 * with flags (which must include O_DIRECTORY) or -1 with errno. */
int pyro_confine_mkdirs(int root_fd, const char *rel, int flags, mode_t mode);

/* Fills e for a lookup of c's path that failed with err. creating: the operation makes
 * things, so a non-directory in the way is a bad argument rather than a missing path. */
/* A full disk (ENOSPC, EDQUOT) is for the caller to fix by deleting files, so the error
 * says so rather than a bare strerror. Returns false, setting nothing, for other errors. */
bool pyro_no_space_error(const char *op, const char *path, const char *step, int err,
                         struct pyro_error *e);

void pyro_confine_error(const struct pyro_confined *c, const char *op, int err, bool creating,
                        struct pyro_error *e);

#endif
