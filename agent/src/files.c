#include "files.h"

#include "confine.h"
#include "exec.h"
#include "log.h"
#include "sys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char result_buf[PYRO_MAX_CONTROL_BYTES];

void pyro_files_result_begin(struct pyro_json_writer *w, const char *rel)
{
    pyro_json_writer_init(w, result_buf, sizeof result_buf);
    pyro_json_object_begin(w);
    pyro_json_key(w, "type");
    pyro_json_string(w, "result");
    pyro_json_key(w, "path");
    pyro_json_string(w, rel);
}

static void send_path_result(struct pyro_conn *conn, uint32_t channel, const char *rel)
{
    struct pyro_json_writer w;
    pyro_files_result_begin(&w, rel);
    pyro_json_object_end(&w);
    pyro_send_control(conn, channel, &w);
}

/* Streams up to max bytes of fd as stdout frames; returns the count or -1 with errno. */
static int64_t send_content(struct pyro_conn *conn, uint32_t channel, int fd, int64_t max)
{
    static uint8_t buf[PYRO_OUTPUT_CHUNK_BYTES];
    int64_t sent = 0;
    while (sent < max) {
        size_t want = max - sent < (int64_t)sizeof buf ? (size_t)(max - sent) : sizeof buf;
        ssize_t n = read(fd, buf, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        pyro_conn_send(conn, channel, PYRO_FRAME_STDOUT, buf, (size_t)n);
        sent += n;
    }
    return sent;
}

static bool read_file(struct pyro_conn *conn, uint32_t channel, const struct pyro_confined *c,
                      int64_t max, struct pyro_error *e)
{
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below. */
    int fd = pyro_confine_open(c->root_fd, c->rel, O_RDONLY | O_NOCTTY | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        pyro_confine_error(c, "file_read", errno, false, e);
        pyro_close(&fd);
        return false;
    }
    bool ok = false;
    if (S_ISDIR(st.st_mode)) {
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, EISDIR, "path %s is a directory",
                       c->given);
    } else if (!S_ISREG(st.st_mode)) {
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0, "path %s is not a regular file",
                       c->given);
    } else {
        int64_t sent = send_content(conn, channel, fd, max);
        if (sent < 0) {
            pyro_confine_error(c, "file_read", errno, false, e);
        } else {
            struct pyro_json_writer w;
            pyro_files_result_begin(&w, c->rel);
            pyro_json_key(&w, "size_bytes");
            pyro_json_int(&w, st.st_size);
            pyro_json_key(&w, "truncated");
            pyro_json_bool(&w, sent == max && st.st_size > sent);
            pyro_json_object_end(&w);
            pyro_send_control(conn, channel, &w);
            ok = true;
        }
    }
    pyro_close(&fd);
    return ok;
}

void pyro_file_read(struct pyro_conn *conn, uint32_t channel, const struct pyro_json_value *req)
{
    static const char *const fields[] = {"op", "root", "path", "max_bytes", NULL};
    struct pyro_confined c;
    struct pyro_error e;
    int64_t max = PYRO_FILE_READ_DEFAULT_BYTES;
    if (!pyro_fields_known(req, "file_read", fields, &e) ||
        !pyro_field_int(req, "file_read", "max_bytes", 1, PYRO_FILE_MAX_BYTES, NULL, &max,
                        &e) ||
        !pyro_confine_request(req, "file_read", &c, &e)) {
        pyro_send_error(conn, channel, &e);
        return;
    }
    if (!read_file(conn, channel, &c, max, &e))
        pyro_send_error(conn, channel, &e);
    pyro_confine_release(&c);
}

static int remove_tree(int parent, const char *name, int depth);

static bool entry_is_dir(int dir_fd, const struct dirent *ent)
{
    if (ent->d_type != DT_UNKNOWN)
        return ent->d_type == DT_DIR;
    struct stat st;
    return fstatat(dir_fd, ent->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

/* Removes what dir (open as fd) holds, without following symbolic links (unlinkat
 * removes a link itself). Returns 0 or -1 with errno. */
static int remove_entries(DIR *dir, int fd, int depth)
{
    for (;;) {
        errno = 0;
        struct dirent *ent = readdir(dir);
        if (!ent)
            return errno != 0 ? -1 : 0;
        if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
            continue;
        int rc = entry_is_dir(fd, ent) ? remove_tree(fd, ent->d_name, depth + 1)
                                       : unlinkat(fd, ent->d_name, 0);
        if (rc != 0 && errno != ENOENT) /* ENOENT: removed meanwhile */
            return -1;
    }
}

/* Removes the directory name in parent and everything in it. Returns 0 or -1 with errno. */
static int remove_tree(int parent, const char *name, int depth)
{
    if (depth >= PYRO_CONFINE_MAX_DEPTH) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (!dir) {
        pyro_close(&fd);
        return -1;
    }
    /* A file system may skip entries when a directory changes while it is read; another
     * pass picks them up. */
    int rc = -1;
    for (int pass = 0; pass < 3; pass++) {
        rewinddir(dir);
        rc = remove_entries(dir, fd, depth);
        if (rc == 0)
            rc = unlinkat(parent, name, AT_REMOVEDIR);
        if (rc == 0 || errno != ENOTEMPTY)
            break;
    }
    int saved = errno;
    if (closedir(dir) != 0)
        LOG_ERRNO("closedir");
    errno = saved;
    return rc;
}

static bool delete_path(const struct pyro_confined *c, bool recursive, struct pyro_error *e)
{
    char name[NAME_MAX + 1];
    struct stat st;
    int parent = pyro_confine_open_parent(c->root_fd, c->rel, name);
    if (parent < 0 || fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        pyro_confine_error(c, "file_delete", errno, false, e);
        pyro_close(&parent);
        return false;
    }
    int rc;
    if (!S_ISDIR(st.st_mode))
        rc = unlinkat(parent, name, 0);
    else if (recursive)
        rc = remove_tree(parent, name, 0);
    else
        rc = unlinkat(parent, name, AT_REMOVEDIR);
    if (rc != 0 && !recursive && (errno == ENOTEMPTY || errno == EEXIST))
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, errno,
                       "path %s is a directory that is not empty (recursive is false)",
                       c->given);
    else if (rc != 0)
        pyro_confine_error(c, "file_delete", errno, false, e);
    pyro_close(&parent);
    return rc == 0;
}

void pyro_file_delete(struct pyro_conn *conn, uint32_t channel,
                      const struct pyro_json_value *req)
{
    static const char *const fields[] = {"op", "root", "path", "recursive", NULL};
    struct pyro_confined c;
    struct pyro_error e;
    bool recursive = false;
    if (!pyro_fields_known(req, "file_delete", fields, &e) ||
        !pyro_field_bool(req, "file_delete", "recursive", &recursive, &e) ||
        !pyro_confine_request(req, "file_delete", &c, &e)) {
        pyro_send_error(conn, channel, &e);
        return;
    }
    if (strcmp(c.rel, ".") == 0) {
        pyro_error_set(&e, PYRO_ERR_INVALID_ARGUMENT, 0,
                       "file_delete: path %s is the root itself", c.given);
        pyro_send_error(conn, channel, &e);
    } else if (!delete_path(&c, recursive, &e)) {
        pyro_send_error(conn, channel, &e);
    } else {
        struct pyro_json_writer w;
        pyro_files_result_begin(&w, c.rel);
        pyro_json_key(&w, "deleted");
        pyro_json_bool(&w, true);
        pyro_json_object_end(&w);
        pyro_send_control(conn, channel, &w);
    }
    pyro_confine_release(&c);
}

void pyro_file_mkdir(struct pyro_conn *conn, uint32_t channel,
                     const struct pyro_json_value *req)
{
    static const char *const fields[] = {"op", "root", "path", NULL};
    struct pyro_confined c;
    struct pyro_error e;
    if (!pyro_fields_known(req, "mkdir", fields, &e) ||
        !pyro_confine_request(req, "mkdir", &c, &e)) {
        pyro_send_error(conn, channel, &e);
        return;
    }
    int fd = pyro_confine_mkdirs(c.root_fd, c.rel, O_PATH | O_DIRECTORY, PYRO_FILE_DIR_MODE);
    if (fd < 0) {
        pyro_confine_error(&c, "mkdir", errno, true, &e);
        pyro_send_error(conn, channel, &e);
    } else {
        send_path_result(conn, channel, c.rel);
    }
    pyro_close(&fd);
    pyro_confine_release(&c);
}

bool pyro_files_parse_workspace_root(const struct pyro_json_value *req, char *out, size_t cap,
                                     bool *present, struct pyro_error *e)
{
    const struct pyro_json_value *v = pyro_json_get(req, "workspace_root");
    *present = v != NULL;
    return !v || pyro_confine_parse_root(v, "hello", "workspace_root", out, cap, e);
}

bool pyro_files_make_workspace_root(const char *root, struct pyro_error *e)
{
    char host[PATH_MAX];
    if (!pyro_confine_host_path(root, host, sizeof host)) {
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0, "hello: workspace_root is too long");
        return false;
    }
    if (pyro_mkdir_p(host, PYRO_FILE_DIR_MODE) != 0) {
        pyro_error_set(e, PYRO_ERR_INTERNAL, errno, "hello: workspace_root %.256s: %s", root,
                       strerror(errno));
        return false;
    }
    return true;
}
