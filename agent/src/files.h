/* File operations on a workspace: file_read, file_delete, mkdir and hello's
 * workspace_root here; file_list and file_write have files of their own.
 *
 * Every path is confined to the request's root (confine.h). The operations run to the
 * end within one turn of the main loop; their cost is bounded by the limits below. */
#ifndef PYRO_FILES_H
#define PYRO_FILES_H

#include "json.h"
#include "request.h"
#include "transport.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most file_read returns and file_write takes. */
#define PYRO_FILE_MAX_BYTES (16 * 1024 * 1024)
#define PYRO_FILE_READ_DEFAULT_BYTES (1024 * 1024)
/* Mode of directories that file_write, mkdir and workspace_root create (before umask). */
#define PYRO_FILE_DIR_MODE 0755

void pyro_file_read(struct pyro_conn *conn, uint32_t channel,
                    const struct pyro_json_value *req);
void pyro_file_delete(struct pyro_conn *conn, uint32_t channel,
                      const struct pyro_json_value *req);
void pyro_file_mkdir(struct pyro_conn *conn, uint32_t channel,
                     const struct pyro_json_value *req);

/* hello's optional workspace_root: parse validates it into out (*present says whether it
 * was given); make creates it (under --root in host mode) if it is missing. */
bool pyro_files_parse_workspace_root(const struct pyro_json_value *req, char *out, size_t cap,
                                     bool *present, struct pyro_error *e);
bool pyro_files_make_workspace_root(const char *root, struct pyro_error *e);

/* Starts {"type":"result","path":rel in a buffer shared by the file operations; the
 * caller adds its fields, ends the object and sends it with pyro_send_control. */
void pyro_files_result_begin(struct pyro_json_writer *w, const char *rel);

#endif
