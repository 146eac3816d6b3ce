/* The walk shared by file_list and file_manifest (file_list.c), and the manifest's
 * hashing (file_manifest.c). Internal to those two files. */
#ifndef PYRO_FILE_WALK_H
#define PYRO_FILE_WALK_H

#include "confine.h"
#include "json.h"
#include "sha256.h"
#include "transport.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PYRO_NO_TARGET SIZE_MAX

enum pyro_artifact { PYRO_ARTIFACT_FILE, PYRO_ARTIFACT_DIRECTORY, PYRO_ARTIFACT_SYMLINK };

struct pyro_walk_entry {
    size_t path;   /* offset in the listing's strings */
    size_t target; /* offset of the link target, or PYRO_NO_TARGET */
    int64_t size_bytes;
    enum pyro_artifact type;
    unsigned mode;                     /* permission bits; file_manifest only */
    uint8_t sha256[PYRO_SHA256_BYTES]; /* of a file's content; file_manifest only */
};

/* Everything gathered; strings are NUL-terminated and addressed by offset because the
 * arena moves when it grows. */
struct pyro_listing {
    char *strings;
    size_t strings_len, strings_cap;
    struct pyro_walk_entry *entries;
    size_t count, entries_cap;
    size_t max_entries;
    bool recursive;
    bool truncated;
    /* file_manifest: hash every file, at most max_hash_bytes of content in all. */
    bool manifest;
    uint64_t hashed_bytes, max_hash_bytes;
    char path[PATH_MAX]; /* the entry being looked at, relative to the root */
};

/* Hashes the regular file name in dir_fd into ent. Returns 0, 1 when the hash budget is
 * spent (the listing is then truncated), 2 when the name is no longer a regular file
 * (skipped, as a raced name is), -1 on error. */
int pyro_manifest_hash_file(struct pyro_listing *l, int dir_fd, const char *name,
                            struct pyro_walk_entry *ent);

/* Adds a manifest line's own fields (mode, sha256) to w. */
void pyro_manifest_write_fields(struct pyro_json_writer *w, const struct pyro_walk_entry *ent);

/* Gathers, sorts and sends l's entries for c, then the result; or the error. */
void pyro_listing_send(struct pyro_conn *conn, uint32_t channel, struct pyro_listing *l,
                       const struct pyro_confined *c, const char *op);

/* Frees l's arrays and releases c. */
void pyro_listing_release(struct pyro_listing *l, struct pyro_confined *c);

#endif
