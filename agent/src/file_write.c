#include "file_write.h"

#include "confine.h"
#include "files.h"
#include "log.h"
#include "path.h"
#include "request.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Attempts at a temporary name that is not taken. */
#define TEMP_NAME_ATTEMPTS 16

struct upload {
    bool used;
    struct pyro_conn *conn;
    uint32_t channel;
    struct pyro_confined target;
    uint8_t *data;
    size_t len, cap, expected;
    bool too_much;   /* more than size_bytes arrived; the rest is ignored */
    int alloc_errno; /* keeping the content failed */
    bool has_mode, create_parents;
    mode_t mode;
};

static struct upload uploads[PYRO_MAX_FILE_WRITES];

/* Where the content goes. */
struct destination {
    int dir_fd; /* O_RDONLY, so the rename can be synced */
    char name[NAME_MAX + 1];
    bool exists;
    struct stat st; /* lstat of name, when it exists */
};

static struct upload *find_upload(const struct pyro_conn *conn, uint32_t channel)
{
    for (size_t i = 0; i < PYRO_MAX_FILE_WRITES; i++)
        if (uploads[i].used && uploads[i].conn == conn && uploads[i].channel == channel)
            return &uploads[i];
    return NULL;
}

static struct upload *free_upload(void)
{
    for (size_t i = 0; i < PYRO_MAX_FILE_WRITES; i++)
        if (!uploads[i].used)
            return &uploads[i];
    return NULL;
}

bool pyro_file_write_channel_busy(const struct pyro_conn *conn, uint32_t channel)
{
    return find_upload(conn, channel) != NULL;
}

static size_t pending_bytes(void)
{
    size_t total = 0;
    for (size_t i = 0; i < PYRO_MAX_FILE_WRITES; i++)
        if (uploads[i].used)
            total += uploads[i].expected;
    return total;
}

static void release(struct upload *u)
{
    free(u->data);
    pyro_confine_release(&u->target);
    memset(u, 0, sizeof *u);
    u->target.root_fd = -1;
}

/* Finds the directory and name the content goes to. A symbolic link as the last
 * component is followed: its target is looked up from the root again (so it has to stay
 * beneath it) and replaced, and the link is left as it is. make_parents creates the
 * missing directories of the request's own path, not those of a link's target. *hops
 * counts the links followed. False with errno; the caller closes d->dir_fd either way. */
static bool find_destination(const struct pyro_confined *c, bool make_parents,
                             struct destination *d, int *hops)
{
    char cur[PATH_MAX], dir[PATH_MAX + 2], target[PATH_MAX];
    snprintf(cur, sizeof cur, "%s", c->rel);
    d->dir_fd = -1;
    for (*hops = 0;; (*hops)++) {
        const char *base = pyro_path_split(cur, dir, sizeof dir);
        if (*base == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
            errno = EISDIR; /* the root, or a link to a directory */
            return false;
        }
        if (strlen(base) > NAME_MAX) {
            errno = ENAMETOOLONG;
            return false;
        }
        strcpy(d->name, base);
        d->dir_fd = make_parents && *hops == 0
                        ? pyro_confine_mkdirs(c->root_fd, dir, O_RDONLY | O_DIRECTORY,
                                              PYRO_FILE_DIR_MODE)
                        : pyro_confine_open(c->root_fd, dir, O_RDONLY | O_DIRECTORY);
        if (d->dir_fd < 0)
            return false;
        d->exists = fstatat(d->dir_fd, d->name, &d->st, AT_SYMLINK_NOFOLLOW) == 0;
        if (!d->exists)
            return errno == ENOENT;
        if (!S_ISLNK(d->st.st_mode))
            return true;
        ssize_t n = *hops < PYRO_CONFINE_MAX_SYMLINKS
                        ? readlinkat(d->dir_fd, d->name, target, sizeof target - 1)
                        : (errno = ELOOP, -1);
        if (n < 0)
            return false;
        target[n] = '\0';
        if (target[0] == '/') {
            errno = EXDEV; /* as RESOLVE_BENEATH: absolute links are refused */
            return false;
        }
        if (snprintf(cur, sizeof cur, "%s/%s", dir, target) >= (int)sizeof cur) {
            errno = ENAMETOOLONG;
            return false;
        }
        pyro_close(&d->dir_fd);
    }
}

/* Resolves the destination; with check_only, a missing parent is fine when it will be
 * created. False with e set. */
static bool resolve(const struct upload *u, bool check_only, struct destination *d,
                    struct pyro_error *e)
{
    const struct pyro_confined *c = &u->target;
    int hops = 0;
    bool found = find_destination(c, u->create_parents && !check_only, d, &hops);
    if (!found && check_only && u->create_parents && hops == 0 && errno == ENOENT)
        return true;
    if (!found)
        pyro_confine_error(c, "file_write", errno, true, e);
    else if (d->exists && S_ISDIR(d->st.st_mode))
        pyro_confine_error(c, "file_write", EISDIR, true, e);
    else if (d->exists && !S_ISREG(d->st.st_mode))
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0, "path %s is not a regular file",
                       c->given);
    else
        return true;
    return false;
}

/* Creates a temporary file next to the destination; -1 with errno. */
static int create_temp(const struct destination *d, char tmp[NAME_MAX + 1])
{
    static unsigned counter;
    for (int attempt = 0; attempt < TEMP_NAME_ATTEMPTS; attempt++) {
        snprintf(tmp, NAME_MAX + 1, ".%.200s.pyro-%d-%u", d->name, (int)getpid(), counter++);
        int fd =
            openat(d->dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1;
}

/* Writes the content to a temporary file, syncs it and renames it over the destination. */
static bool replace(const struct upload *u, const struct destination *d, struct pyro_error *e)
{
    char tmp[NAME_MAX + 1];
    int fd = create_temp(d, tmp);
    if (fd < 0) {
        if (!pyro_no_space_error("file_write", u->target.given, "temporary file:", errno, e))
            pyro_error_set(e, PYRO_ERR_INTERNAL, errno,
                           "file_write: path %s: temporary file: %s", u->target.given,
                           strerror(errno));
        return false;
    }
    mode_t mode = u->has_mode ? u->mode
                  : d->exists ? d->st.st_mode & 07777
                              : PYRO_FILE_DEFAULT_MODE;
    bool chown_needed = d->exists && (d->st.st_uid != geteuid() || d->st.st_gid != getegid());
    const char *step = NULL;
    if (u->len > 0 && pyro_write_all(fd, u->data, u->len) != 0)
        step = "write";
    else if (chown_needed && fchown(fd, d->st.st_uid, d->st.st_gid) != 0)
        step = "chown";
    else if (fchmod(fd, mode) != 0) /* after chown, which clears set-id bits */
        step = "chmod";
    else if (fsync(fd) != 0)
        step = "fsync";
    int err = errno;
    if (close(fd) != 0 && errno != EINTR && !step) {
        step = "close";
        err = errno;
    }
    if (!step && renameat(d->dir_fd, tmp, d->dir_fd, d->name) != 0) {
        step = "rename";
        err = errno;
    }
    if (step) {
        if (unlinkat(d->dir_fd, tmp, 0) != 0)
            LOG_ERRNO("file_write: remove temporary file %s", tmp);
        char what[16];
        snprintf(what, sizeof what, "%s:", step);
        if (err == EISDIR) /* a directory appeared there since the lookup */
            pyro_confine_error(&u->target, "file_write", err, true, e);
        else if (!pyro_no_space_error("file_write", u->target.given, what, err, e))
            pyro_error_set(e, PYRO_ERR_INTERNAL, err, "file_write: path %s: %s: %s",
                           u->target.given, step, strerror(err));
        return false;
    }
    /* The new content is in place; only the rename's durability is in doubt. */
    if (fsync(d->dir_fd) != 0)
        LOG_ERRNO("file_write: fsync the directory of %s", u->target.rel);
    return true;
}

static bool commit(const struct upload *u, struct pyro_error *e)
{
    if (u->too_much) {
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0,
                       "file_write: more than size_bytes (%zu) bytes of content arrived; "
                       "nothing was written",
                       u->expected);
        return false;
    }
    if (u->alloc_errno != 0) {
        pyro_error_set(e, PYRO_ERR_INTERNAL, u->alloc_errno, "file_write: keep content: %s",
                       strerror(u->alloc_errno));
        return false;
    }
    if (u->len != u->expected) {
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0,
                       "file_write: %zu bytes of content arrived before stdin_eof but "
                       "size_bytes is %zu; nothing was written",
                       u->len, u->expected);
        return false;
    }
    struct destination d;
    bool ok = resolve(u, false, &d, e) && replace(u, &d, e);
    pyro_close(&d.dir_fd);
    return ok;
}

static bool parse(const struct pyro_json_value *req, struct upload *u, struct pyro_error *e)
{
    static const char *const fields[] = {"op",   "root",           "path", "size_bytes",
                                         "mode", "create_parents", NULL};
    int64_t size = 0, mode = 0;
    bool has_size = false;
    if (!pyro_fields_known(req, "file_write", fields, e) ||
        !pyro_field_int(req, "file_write", "size_bytes", 0, PYRO_FILE_MAX_BYTES, &has_size,
                        &size, e) ||
        !pyro_field_int(req, "file_write", "mode", 0, 07777, &u->has_mode, &mode, e) ||
        !pyro_field_bool(req, "file_write", "create_parents", &u->create_parents, e))
        return false;
    if (!has_size) {
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0, "file_write: size_bytes is required");
        return false;
    }
    u->expected = (size_t)size;
    u->mode = (mode_t)mode;
    return true;
}

void pyro_file_write_start(struct pyro_conn *conn, uint32_t channel,
                           const struct pyro_json_value *req)
{
    static struct upload u; /* filled here, copied to a free slot when accepted */
    struct pyro_error e;
    struct upload *slot = free_upload();
    memset(&u, 0, sizeof u);
    u.target.root_fd = -1;
    if (parse(req, &u, &e)) {
        if (!slot || pending_bytes() + u.expected > PYRO_FILE_WRITE_PENDING_BYTES) {
            pyro_error_set(&e, PYRO_ERR_BUSY, 0,
                           "file_write: %d uploads or %d MiB of content are already pending",
                           PYRO_MAX_FILE_WRITES, PYRO_FILE_WRITE_PENDING_BYTES >> 20);
        } else if (pyro_confine_request(req, "file_write", &u.target, &e)) {
            /* Refuse early what is already wrong, before the host sends the content;
             * the lookup is done again when it has arrived. */
            struct destination d;
            bool ok = resolve(&u, true, &d, &e);
            pyro_close(&d.dir_fd);
            if (ok) {
                *slot = u;
                slot->used = true;
                slot->conn = conn;
                slot->channel = channel;
                return;
            }
        }
    }
    pyro_confine_release(&u.target);
    pyro_send_error(conn, channel, &e);
}

static void keep(struct upload *u, const uint8_t *data, size_t len)
{
    if (u->too_much || u->alloc_errno != 0)
        return;
    if (len > u->expected - u->len) {
        u->too_much = true;
    } else if (u->len + len > u->cap) {
        size_t cap = u->cap ? u->cap * 2 : 65536;
        if (cap < u->len + len)
            cap = u->len + len;
        if (cap > u->expected)
            cap = u->expected;
        uint8_t *grown = realloc(u->data, cap);
        if (!grown) {
            u->alloc_errno = ENOMEM;
        } else {
            u->data = grown;
            u->cap = cap;
        }
    }
    if (u->too_much || u->alloc_errno != 0) {
        free(u->data); /* nothing of it will be written */
        u->data = NULL;
        u->cap = 0;
        return;
    }
    memcpy(u->data + u->len, data, len);
    u->len += len;
}

bool pyro_file_write_stdin(struct pyro_conn *conn, uint32_t channel, const uint8_t *data,
                           size_t len, bool eof)
{
    struct upload *u = find_upload(conn, channel);
    if (!u)
        return false;
    if (!eof) {
        if (len > 0)
            keep(u, data, len);
        return true;
    }
    struct pyro_error e;
    if (commit(u, &e)) {
        struct pyro_json_writer w;
        pyro_files_result_begin(&w, u->target.rel);
        pyro_json_key(&w, "bytes_written");
        pyro_json_int(&w, (int64_t)u->len);
        pyro_json_object_end(&w);
        pyro_send_control(conn, channel, &w);
    } else {
        pyro_send_error(conn, channel, &e);
    }
    release(u);
    return true;
}

void pyro_file_write_drop_conn(struct pyro_conn *conn)
{
    for (size_t i = 0; i < PYRO_MAX_FILE_WRITES; i++)
        if (uploads[i].used && uploads[i].conn == conn)
            release(&uploads[i]);
}
