/* file_write: a file's new content arrives as stdin frames after the request and is
 * kept in memory (size_bytes, at most 16 MiB, says how much) until stdin_eof; only then,
 * and only when exactly size_bytes arrived, is it written to a temporary file in the
 * target's directory, synced and renamed over the target. So a failed or short upload
 * changes nothing, and the main loop never waits for the host. */
#ifndef PYRO_FILE_WRITE_H
#define PYRO_FILE_WRITE_H

#include "json.h"
#include "transport.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Uploads waiting for their content, across connections, and the content they may
 * declare in total: past either, a file_write gets `busy`. */
#define PYRO_MAX_FILE_WRITES 16
#define PYRO_FILE_WRITE_PENDING_BYTES (64 * 1024 * 1024)
/* Mode of a new file when the request has none (an existing file keeps its mode). */
#define PYRO_FILE_DEFAULT_MODE 0644

void pyro_file_write_start(struct pyro_conn *conn, uint32_t channel,
                           const struct pyro_json_value *req);

/* A file_write on this channel is waiting for its content. */
bool pyro_file_write_channel_busy(const struct pyro_conn *conn, uint32_t channel);

/* Takes a stdin (or stdin_eof) frame; false when no file_write waits on that channel. */
bool pyro_file_write_stdin(struct pyro_conn *conn, uint32_t channel, const uint8_t *data,
                           size_t len, bool eof);

/* Forgets the uploads of a connection that went away (nothing is written or sent). */
void pyro_file_write_drop_conn(struct pyro_conn *conn);

#endif
