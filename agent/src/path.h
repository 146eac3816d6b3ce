/* Lexical paths for the file operations: cleaning a request path and mapping it onto a
 * workspace root.
 *
 * Pure string functions (no syscalls, no agent state), so they are unit-tested and fuzzed
 * on their own. Symbolic links are not this module's business: confine.h resolves the
 * cleaned path with the kernel. */
#ifndef PYRO_PATH_H
#define PYRO_PATH_H

#include <stdbool.h>
#include <stddef.h>

/* Cleans a '/'-separated path lexically: drops empty and "." components and applies each
 * ".." to the component before it. An absolute path stays absolute ("/.." is "/"); a
 * relative path that would climb above its start fails with EXDEV. The result has no
 * trailing '/' and is "." when nothing is left of a relative path.
 * Returns 0, or -1 with errno EINVAL (empty input) or ENAMETOOLONG (out too small). */
int pyro_path_clean(const char *in, char *out, size_t cap);

/* Maps a request path onto root (an absolute path cleaned by pyro_path_clean): path is
 * relative to root, or absolute and inside it. rel gets the cleaned path relative to
 * root, "." for the root itself. Returns 0, or -1 with errno EXDEV (it leads out of
 * root), EINVAL or ENAMETOOLONG. */
int pyro_path_under_root(const char *root, const char *path, char *rel, size_t cap);

/* True when one of path's components is "..". */
bool pyro_path_has_dotdot(const char *path);

/* Splits path at its last '/': dir gets what comes before it ("." when there is no '/',
 * "/" for a top-level absolute name); returns a pointer to what follows it, inside
 * path. dir needs cap >= strlen(path) + 2; a smaller buffer gets "". */
const char *pyro_path_split(const char *path, char *dir, size_t cap);

#endif
