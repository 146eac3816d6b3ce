/* file_list (and file_manifest): the entries of a directory (or of its whole tree), or a single
 * file, as newline-delimited JSON objects in stdout frames, then a result with the count.
 *
 * Streaming keeps the reply within the 64 KiB control limit whatever the listing's size,
 * and the host has a single way to read it. Entries are gathered first, then sorted by
 * path (byte order) and sent. Symbolic links are reported, never followed, so a
 * recursive listing does not descend into linked directories. */
#ifndef PYRO_FILE_LIST_H
#define PYRO_FILE_LIST_H

#include "json.h"
#include "transport.h"

#include <stdint.h>

#define PYRO_FILE_LIST_DEFAULT_ENTRIES 10000
#define PYRO_FILE_LIST_MAX_ENTRIES 100000
/* file_manifest reads every file in one turn of the loop: its content is bounded. */
#define PYRO_FILE_MANIFEST_DEFAULT_BYTES (256LL * 1024 * 1024)
#define PYRO_FILE_MANIFEST_MAX_BYTES (2LL * 1024 * 1024 * 1024)

void pyro_file_list(struct pyro_conn *conn, uint32_t channel,
                    const struct pyro_json_value *req);

/* file_manifest: a recursive file_list of path whose lines also carry each entry's mode
 * and, for files, the SHA-256 of the content, so the host can tell which files changed
 * without copying them out. */
void pyro_file_manifest(struct pyro_conn *conn, uint32_t channel,
                        const struct pyro_json_value *req);

#endif
