/* file_manifest: file_list's recursive walk, with each file's content hashed (SHA-256)
 * and each entry's mode, so the host can tell changed files without copying them out. */
#include "exec.h"
#include "file_list.h"
#include "file_walk.h"
#include "request.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The size becomes the bytes hashed, so size and digest agree if the file changes
 * meanwhile. */
int pyro_manifest_hash_file(struct pyro_listing *l, int dir_fd, const char *name,
                            struct pyro_walk_entry *ent)
{
    static uint8_t buf[PYRO_OUTPUT_CHUNK_BYTES];
    /* O_NOFOLLOW and O_NONBLOCK: a name swapped for a link or a fifo since the fstatat
     * is neither followed nor waited on; fstat then says what was opened. */
    int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return errno == ENOENT || errno == ELOOP ? 2 : -1;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int rc = S_ISREG(st.st_mode) ? -1 : 2;
        pyro_close(&fd);
        return rc;
    }
    struct pyro_sha256 h;
    pyro_sha256_init(&h);
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -1 : 0;
            break;
        }
        if (l->hashed_bytes + (uint64_t)n > l->max_hash_bytes) {
            l->truncated = true;
            rc = 1;
            break;
        }
        l->hashed_bytes += (uint64_t)n;
        pyro_sha256_update(&h, buf, (size_t)n);
    }
    int saved = errno;
    pyro_close(&fd);
    errno = saved;
    if (rc == 0) {
        pyro_sha256_final(&h, ent->sha256);
        ent->size_bytes = (int64_t)h.length;
    }
    return rc;
}

void pyro_manifest_write_fields(struct pyro_json_writer *w, const struct pyro_walk_entry *ent)
{
    pyro_json_key(w, "mode");
    pyro_json_int(w, ent->mode);
    pyro_json_key(w, "sha256");
    if (ent->type == PYRO_ARTIFACT_FILE) {
        char hex[2 * PYRO_SHA256_BYTES + 1];
        pyro_sha256_hex(ent->sha256, hex);
        pyro_json_string(w, hex);
    } else {
        pyro_json_null(w);
    }
}

void pyro_file_manifest(struct pyro_conn *conn, uint32_t channel,
                        const struct pyro_json_value *req)
{
    static const char *const fields[] = {"op",          "root",      "path",
                                         "max_entries", "max_bytes", NULL};
    static struct pyro_listing l;
    struct pyro_confined c;
    struct pyro_error e;
    int64_t max_entries = PYRO_FILE_LIST_MAX_ENTRIES;
    int64_t max_bytes = PYRO_FILE_MANIFEST_DEFAULT_BYTES;
    memset(&l, 0, sizeof l);
    if (!pyro_fields_known(req, "file_manifest", fields, &e) ||
        !pyro_field_int(req, "file_manifest", "max_entries", 1, PYRO_FILE_LIST_MAX_ENTRIES,
                        NULL, &max_entries, &e) ||
        !pyro_field_int(req, "file_manifest", "max_bytes", 0, PYRO_FILE_MANIFEST_MAX_BYTES,
                        NULL, &max_bytes, &e) ||
        !pyro_confine_request(req, "file_manifest", &c, &e)) {
        pyro_send_error(conn, channel, &e);
        return;
    }
    l.max_entries = (size_t)max_entries;
    l.recursive = true;
    l.manifest = true;
    l.max_hash_bytes = (uint64_t)max_bytes;
    pyro_listing_send(conn, channel, &l, &c, "file_manifest");
    pyro_listing_release(&l, &c);
}
