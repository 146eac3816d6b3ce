/* The file operations' group: the handlers live in files.c, file_list.c and
 * file_write.c (see protocol/README.md, Workspace files). */
#include "file_list.h"
#include "file_write.h"
#include "files.h"
#include "ops.h"

static const struct pyro_op ops[] = {
    {"file_list", pyro_file_list},
    {"file_manifest", pyro_file_manifest},
    {"file_read", pyro_file_read},
    {"file_write", pyro_file_write_start},
    {"file_delete", pyro_file_delete},
    {"mkdir", pyro_file_mkdir},
    {NULL, NULL},
};

const struct pyro_op_group pyro_files_ops = {
    .name = "files",
    .ops = ops,
    .channel_busy = pyro_file_write_channel_busy,
    .take_stdin = pyro_file_write_stdin,
    .drop_conn = pyro_file_write_drop_conn,
};
