#include "file_list.h"
#include "file_walk.h"

#include "confine.h"
#include "exec.h"
#include "files.h"
#include "log.h"
#include "sys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const artifact_types[] = {"file", "directory", "symlink"};

/* Grows *buf to hold need elements of size elem; false with ENOMEM. */
static bool reserve(void **buf, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t grown = *cap ? *cap : 256;
    while (grown < need)
        grown *= 2;
    void *p = realloc(*buf, grown * elem);
    if (!p) {
        errno = ENOMEM;
        return false;
    }
    *buf = p;
    *cap = grown;
    return true;
}

static bool store_string(char **arena, size_t *len, size_t *cap, const char *s, size_t n,
                         size_t *offset)
{
    if (!reserve((void **)arena, cap, *len + n + 1, 1))
        return false;
    memcpy(*arena + *len, s, n);
    (*arena)[*len + n] = '\0';
    *offset = *len;
    *len += n + 1;
    return true;
}

/* Adds the entry for l->path (name in dir_fd, status st). Returns 0 (added, or skipped:
 * fifos, sockets and devices are not listed), 1 when the listing is full, -1 on error. */
static int add_entry(struct pyro_listing *l, int dir_fd, const char *name,
                     const struct stat *st)
{
    struct pyro_walk_entry ent = {
        .target = PYRO_NO_TARGET, .size_bytes = st->st_size, .mode = st->st_mode & 07777};
    if (S_ISREG(st->st_mode))
        ent.type = PYRO_ARTIFACT_FILE;
    else if (S_ISDIR(st->st_mode))
        ent.type = PYRO_ARTIFACT_DIRECTORY;
    else if (S_ISLNK(st->st_mode))
        ent.type = PYRO_ARTIFACT_SYMLINK;
    else
        return 0;
    if (l->count == l->max_entries) {
        l->truncated = true;
        return 1;
    }
    if (ent.type == PYRO_ARTIFACT_DIRECTORY)
        ent.size_bytes = 0; /* a directory's st_size is file-system specific */
    if (l->manifest && ent.type == PYRO_ARTIFACT_FILE) {
        int rc = pyro_manifest_hash_file(l, dir_fd, name, &ent);
        if (rc != 0)
            return rc == 2 ? 0 : rc;
    }
    if (ent.type == PYRO_ARTIFACT_SYMLINK) {
        char target[PATH_MAX];
        ssize_t n = readlinkat(dir_fd, name, target, sizeof target);
        if (n < 0 || !store_string(&l->strings, &l->strings_len, &l->strings_cap, target,
                                   (size_t)n, &ent.target))
            return -1;
    }
    if (!store_string(&l->strings, &l->strings_len, &l->strings_cap, l->path, strlen(l->path),
                      &ent.path) ||
        !reserve((void **)&l->entries, &l->entries_cap, l->count + 1, sizeof ent))
        return -1;
    l->entries[l->count++] = ent;
    return 0;
}

struct names {
    char *buf;
    size_t len, cap;
    size_t *offsets;
    size_t count, offsets_cap;
};

static int compare_names(const void *a, const void *b, void *arena)
{
    return strcmp((const char *)arena + *(const size_t *)a,
                  (const char *)arena + *(const size_t *)b);
}

/* Reads the names in a directory (without "." and ".."), sorted, so that which entries
 * a truncated listing keeps does not depend on the order readdir returns them in. */
static int read_names(int dir_fd, struct names *n)
{
    int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (!dir) {
        pyro_close(&fd);
        return -1;
    }
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *ent = readdir(dir);
        if (!ent) {
            rc = errno != 0 ? -1 : 0;
            break;
        }
        if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
            continue;
        size_t off;
        if (!store_string(&n->buf, &n->len, &n->cap, ent->d_name, strlen(ent->d_name), &off) ||
            !reserve((void **)&n->offsets, &n->offsets_cap, n->count + 1, sizeof off)) {
            rc = -1;
            break;
        }
        n->offsets[n->count++] = off;
    }
    int saved = errno;
    if (closedir(dir) != 0)
        LOG_ERRNO("closedir");
    errno = saved;
    if (rc == 0 && n->count > 1)
        qsort_r(n->offsets, n->count, sizeof n->offsets[0], compare_names, n->buf);
    return rc;
}

/* A name that went away, or turned into something else, between readdir and the lookup. */
static bool raced(int err)
{
    return err == ENOENT || err == ENOTDIR || err == ELOOP;
}

static int walk_dir(struct pyro_listing *l, int dir_fd, int depth);

/* Looks at one name of dir_fd; l->path already holds its path. Returns as add_entry. */
static int visit(struct pyro_listing *l, int dir_fd, const char *name, int depth)
{
    struct stat st;
    if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return raced(errno) ? 0 : -1;
    int rc = add_entry(l, dir_fd, name, &st);
    if (rc != 0 || !l->recursive || !S_ISDIR(st.st_mode))
        return rc;
    if (depth + 1 >= PYRO_CONFINE_MAX_DEPTH) {
        l->truncated = true;
        return 0;
    }
    int sub = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0)
        return raced(errno) ? 0 : -1;
    rc = walk_dir(l, sub, depth + 1);
    pyro_close(&sub);
    return rc;
}

/* Lists dir_fd, whose path is l->path ("" for the root). Returns as add_entry. */
static int walk_dir(struct pyro_listing *l, int dir_fd, int depth)
{
    struct names n = {0};
    int rc = read_names(dir_fd, &n);
    size_t base = strlen(l->path);
    for (size_t i = 0; rc == 0 && i < n.count; i++) {
        const char *name = n.buf + n.offsets[i];
        size_t len = strlen(name);
        size_t sep = base > 0 ? 1 : 0;
        if (base + sep + len >= sizeof l->path) {
            l->truncated = true; /* cannot be named in a request either */
            continue;
        }
        if (sep)
            l->path[base] = '/';
        memcpy(l->path + base + sep, name, len + 1);
        rc = visit(l, dir_fd, name, depth);
        l->path[base] = '\0';
    }
    int saved = errno;
    free(n.buf);
    free(n.offsets);
    errno = saved;
    return rc;
}

static int list_root(struct pyro_listing *l, const struct pyro_confined *c)
{
    int fd = pyro_confine_open(c->root_fd, ".", O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -1;
    l->path[0] = '\0';
    int rc = walk_dir(l, fd, 0);
    pyro_close(&fd);
    return rc;
}

/* Gathers the listing of c's path; false with e set. */
static bool gather(struct pyro_listing *l, const struct pyro_confined *c, const char *op,
                   struct pyro_error *e)
{
    if (strcmp(c->rel, ".") == 0) {
        if (list_root(l, c) >= 0)
            return true;
        pyro_confine_error(c, op, errno, false, e);
        return false;
    }
    char name[NAME_MAX + 1];
    struct stat st;
    int parent = pyro_confine_open_parent(c->root_fd, c->rel, name);
    int rc = -1;
    if (parent >= 0 && fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        snprintf(l->path, sizeof l->path, "%s", c->rel);
        if (S_ISDIR(st.st_mode)) {
            int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            rc = fd >= 0 ? walk_dir(l, fd, 0) : -1;
            pyro_close(&fd);
        } else if (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) {
            rc = add_entry(l, parent, name, &st);
        } else {
            pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0,
                           "path %s is not a file, directory or symbolic link", c->given);
            pyro_close(&parent);
            return false;
        }
    }
    if (rc < 0)
        pyro_confine_error(c, op, errno, false, e);
    pyro_close(&parent);
    return rc >= 0;
}

static int compare_entries(const void *a, const void *b, void *strings)
{
    const struct pyro_walk_entry *x = a, *y = b;
    return strcmp((const char *)strings + x->path, (const char *)strings + y->path);
}

/* Sends the entries as JSON lines, as many whole lines per stdout frame as fit. */
static void send_entries(struct pyro_conn *conn, uint32_t channel, const struct pyro_listing *l)
{
    static char frame[PYRO_OUTPUT_CHUNK_BYTES], line[PYRO_OUTPUT_CHUNK_BYTES];
    size_t used = 0;
    for (size_t i = 0; i < l->count; i++) {
        const struct pyro_walk_entry *ent = &l->entries[i];
        struct pyro_json_writer w;
        pyro_json_writer_init(&w, line, sizeof line - 1);
        pyro_json_object_begin(&w);
        pyro_json_key(&w, "path");
        pyro_json_string(&w, l->strings + ent->path);
        pyro_json_key(&w, "artifact_type");
        pyro_json_string(&w, artifact_types[ent->type]);
        pyro_json_key(&w, "size_bytes");
        pyro_json_int(&w, ent->size_bytes);
        if (l->manifest)
            pyro_manifest_write_fields(&w, ent);
        pyro_json_key(&w, "link_target");
        if (ent->target != PYRO_NO_TARGET)
            pyro_json_string(&w, l->strings + ent->target);
        else
            pyro_json_null(&w);
        pyro_json_object_end(&w);
        long len = pyro_json_finish(&w);
        if (len < 0) { /* cannot happen: a path and a target escape to under 50 KiB */
            LOG_ERROR("channel %u: file_list entry too large; skipped", channel);
            continue;
        }
        line[len++] = '\n';
        if (used + (size_t)len > sizeof frame) {
            pyro_conn_send(conn, channel, PYRO_FRAME_STDOUT, frame, used);
            used = 0;
        }
        memcpy(frame + used, line, (size_t)len);
        used += (size_t)len;
    }
    if (used > 0)
        pyro_conn_send(conn, channel, PYRO_FRAME_STDOUT, frame, used);
}

/* Gathers, sorts and sends l's entries for the request, then the result (with the hashed
 * bytes for a manifest). */
void pyro_listing_send(struct pyro_conn *conn, uint32_t channel, struct pyro_listing *l,
                       const struct pyro_confined *c, const char *op)
{
    struct pyro_error e;
    if (!gather(l, c, op, &e)) {
        pyro_send_error(conn, channel, &e);
        return;
    }
    if (l->count > 1)
        qsort_r(l->entries, l->count, sizeof l->entries[0], compare_entries, l->strings);
    send_entries(conn, channel, l);
    struct pyro_json_writer w;
    pyro_files_result_begin(&w, c->rel);
    pyro_json_key(&w, "count");
    pyro_json_int(&w, (int64_t)l->count);
    pyro_json_key(&w, "truncated");
    pyro_json_bool(&w, l->truncated);
    if (l->manifest) {
        pyro_json_key(&w, "hashed_bytes");
        pyro_json_int(&w, (int64_t)l->hashed_bytes);
    }
    pyro_json_object_end(&w);
    pyro_send_control(conn, channel, &w);
}

void pyro_listing_release(struct pyro_listing *l, struct pyro_confined *c)
{
    free(l->strings);
    free(l->entries);
    pyro_confine_release(c);
}

void pyro_file_list(struct pyro_conn *conn, uint32_t channel, const struct pyro_json_value *req)
{
    static const char *const fields[] = {"op",        "root",        "path",
                                         "recursive", "max_entries", NULL};
    static struct pyro_listing l; /* for its path buffer; the arrays are freed below */
    struct pyro_confined c;
    struct pyro_error e;
    int64_t max_entries = PYRO_FILE_LIST_DEFAULT_ENTRIES;
    memset(&l, 0, sizeof l);
    if (!pyro_fields_known(req, "file_list", fields, &e) ||
        !pyro_field_bool(req, "file_list", "recursive", &l.recursive, &e) ||
        !pyro_field_int(req, "file_list", "max_entries", 1, PYRO_FILE_LIST_MAX_ENTRIES, NULL,
                        &max_entries, &e) ||
        !pyro_confine_request(req, "file_list", &c, &e)) {
        pyro_send_error(conn, channel, &e);
        return;
    }
    l.max_entries = (size_t)max_entries;
    pyro_listing_send(conn, channel, &l, &c, "file_list");
    pyro_listing_release(&l, &c);
}
