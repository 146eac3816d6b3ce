#include "transport.h"

#include "exec.h"
#include "init.h"
#include "log.h"
#include "request.h"
#include "sys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* How long to look for the virtio port after boot; devices may register late. */
#define VIRTIO_PORT_SEARCH_MS 5000
#define VIRTIO_RETRY_MS 50
#define READ_CHUNK_BYTES 65536

struct pyro_listener {
    int fd;
    struct pyro_conn *conn; /* the one client it serves at a time */
};

static struct pyro_frame_reader readers[3];
static struct pyro_conn unix_conn = {
    .kind = PYRO_CONN_UNIX, .name = "client", .fd = -1, .reader = &readers[0]};
static struct pyro_conn vsock_conn = {
    .kind = PYRO_CONN_VSOCK, .name = "vsock", .fd = -1, .reader = &readers[1]};
static struct pyro_conn virtio_conn = {
    .kind = PYRO_CONN_VIRTIO, .name = "virtio", .fd = -1, .reader = &readers[2]};
static struct pyro_listener unix_listener = {.fd = -1, .conn = &unix_conn};
static struct pyro_listener vsock_listener = {.fd = -1, .conn = &vsock_conn};
static struct pyro_conn *const conns[] = {&unix_conn, &vsock_conn, &virtio_conn};
static struct pyro_listener *const listeners[] = {&unix_listener, &vsock_listener};

static char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static bool virtio_searching;
static int64_t virtio_search_until_ms;

int pyro_transport_listen_unix(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path) {
        LOG_ERROR("socket path %s is longer than %zu bytes", path, sizeof addr.sun_path - 1);
        return -1;
    }
    strcpy(addr.sun_path, path);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            LOG_ERROR("%s exists and is not a socket; refusing to replace it", path);
            return -1;
        }
        if (unlink(path) != 0) {
            LOG_ERRNO("unlink stale socket %s", path);
            return -1;
        }
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        LOG_ERRNO("socket(AF_UNIX)");
        return -1;
    }
    mode_t old_umask = umask(077); /* the socket runs commands: owner only */
    int rc = bind(fd, (struct sockaddr *)&addr, sizeof addr);
    umask(old_umask);
    if (rc != 0 || listen(fd, 8) != 0) {
        LOG_ERRNO("listen on %s", path);
        close(fd);
        return -1;
    }
    strcpy(unix_path, path);
    unix_listener.fd = fd;
    return 0;
}

static void listen_vsock(void)
{
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        /* No vsock in this kernel or VM (QEMU uses virtio-serial instead). */
        LOG_INFO("vsock unavailable (%s); serving virtio-serial only", strerror(errno));
        return;
    }
    struct sockaddr_vm addr = {
        .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = PYRO_VSOCK_PORT};
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 8) != 0) {
        LOG_ERRNO("listen on vsock port %d", PYRO_VSOCK_PORT);
        pyro_init_error("listen on vsock port %d: %s", PYRO_VSOCK_PORT, strerror(errno));
        close(fd);
        return;
    }
    vsock_listener.fd = fd;
}

void pyro_transport_start_guest(int64_t now_ms, int virtio_fd)
{
    listen_vsock();
    virtio_conn.resume_ms = now_ms;
    if (virtio_fd >= 0) {
        virtio_conn.fd = virtio_fd;
        pyro_frame_reader_reset(virtio_conn.reader);
        return;
    }
    virtio_searching = true;
    virtio_search_until_ms = now_ms + VIRTIO_PORT_SEARCH_MS;
}

/* The numbering of /dev/vportNpM depends on device order, so the name is the only
 * stable handle. */
bool pyro_transport_find_virtio_port(char *dev, size_t dev_len)
{
    DIR *dir = opendir("/sys/class/virtio-ports");
    if (!dir)
        return false;
    bool found = false;
    struct dirent *ent;
    while (!found && (ent = readdir(dir)) != NULL) {
        if (ent->d_name[0] == '.')
            continue;
        char path[512], name[64] = "";
        snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", ent->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n;
        do
            n = read(fd, name, sizeof name - 1);
        while (n < 0 && errno == EINTR);
        close(fd);
        if (n <= 0)
            continue;
        name[n] = '\0';
        name[strcspn(name, "\n")] = '\0';
        if (strcmp(name, PYRO_VIRTIO_SERIAL_NAME) == 0) {
            snprintf(dev, dev_len, "/dev/%s", ent->d_name);
            found = true;
        }
    }
    closedir(dir);
    return found;
}

static void open_virtio_port(int64_t now_ms)
{
    char dev[300];
    if (!pyro_transport_find_virtio_port(dev, sizeof dev)) {
        if (now_ms >= virtio_search_until_ms) {
            virtio_searching = false;
            LOG_ERROR("no virtio-serial port named %s", PYRO_VIRTIO_SERIAL_NAME);
            pyro_init_error("no virtio-serial port named %s", PYRO_VIRTIO_SERIAL_NAME);
        }
        virtio_conn.resume_ms = now_ms + VIRTIO_RETRY_MS;
        return;
    }
    /* Non-blocking: a write while the host side is away must not hang PID 1. */
    int fd = open(dev, O_RDWR | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        LOG_ERRNO("open %s", dev);
        virtio_conn.resume_ms = now_ms + VIRTIO_RETRY_MS;
        return;
    }
    LOG_INFO("serving on %s", dev);
    virtio_conn.fd = fd;
    virtio_conn.broken = false;
    virtio_conn.host_seen = false;
    virtio_conn.resume_ms = now_ms;
    pyro_frame_reader_reset(virtio_conn.reader);
}

void pyro_transport_poll_add(struct pyro_pollset *ps, int64_t now_ms)
{
    for (size_t i = 0; i < sizeof conns / sizeof conns[0]; i++) {
        struct pyro_conn *c = conns[i];
        bool searching = c == &virtio_conn && virtio_searching && c->fd < 0;
        if (searching || (c->fd >= 0 && now_ms < c->resume_ms)) {
            pyro_pollset_timer(ps, c->resume_ms);
            continue;
        }
        /* Stop reading while a process has a large stdin backlog: that is the only
         * way to push back on the host without blocking the loop. */
        if (c->fd >= 0 && !c->broken && !pyro_exec_conn_backlogged(c))
            pyro_pollset_add(ps, c->fd, POLLIN, PYRO_POLL_CONN, c);
    }
    for (size_t i = 0; i < sizeof listeners / sizeof listeners[0]; i++) {
        struct pyro_listener *l = listeners[i];
        if (l->fd >= 0 && l->conn->fd < 0)
            pyro_pollset_add(ps, l->fd, POLLIN, PYRO_POLL_LISTENER, l);
    }
}

static void accept_client(struct pyro_listener *l)
{
    int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
        if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
            LOG_ERRNO("accept");
        return;
    }
    LOG_DEBUG("%s connected", l->conn->name);
    l->conn->fd = fd;
    l->conn->broken = false;
    pyro_frame_reader_reset(l->conn->reader);
}

static void feed_frames(struct pyro_conn *c, const uint8_t *data, size_t len)
{
    while (len > 0 && !c->broken) {
        size_t used;
        enum pyro_frame_status st = pyro_frame_reader_push(c->reader, data, len, &used);
        data += used;
        len -= used;
        if (st == PYRO_FRAME_READY) {
            pyro_request_frame(c, &c->reader->header, c->reader->payload);
        } else if (st == PYRO_FRAME_TOO_LARGE) {
            /* The stream cannot be resynchronised: there are no frame markers. */
            LOG_ERROR("%s: frame on channel %u declares %u payload bytes (limit %d); "
                      "dropping the connection",
                      c->name, c->reader->header.channel, c->reader->header.payload_len,
                      PYRO_MAX_PAYLOAD_BYTES);
            c->broken = true;
        }
    }
}

/* The virtio port reads 0 bytes (and polls POLLHUP) whenever no host is connected to
 * its chardev; that is not an error, so back off instead of spinning. */
static void virtio_hangup(struct pyro_conn *c, int64_t now_ms)
{
    if (c->host_seen) {
        LOG_INFO("host disconnected from the virtio port");
        pyro_request_drop_conn(c);
        pyro_frame_reader_reset(c->reader);
        c->host_seen = false;
    }
    c->resume_ms = now_ms + VIRTIO_RETRY_MS;
}

static void read_conn(struct pyro_conn *c, short revents, int64_t now_ms)
{
    static uint8_t buf[READ_CHUNK_BYTES];
    ssize_t n = read(c->fd, buf, sizeof buf);
    if (n > 0) {
        c->host_seen = true;
        feed_frames(c, buf, (size_t)n);
        return;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        if (c->kind == PYRO_CONN_VIRTIO && (revents & POLLHUP))
            virtio_hangup(c, now_ms);
        return;
    }
    if (n == 0 && c->kind == PYRO_CONN_VIRTIO) {
        virtio_hangup(c, now_ms);
        return;
    }
    if (n < 0)
        LOG_ERRNO("%s: read", c->name);
    else
        LOG_DEBUG("%s disconnected", c->name);
    c->broken = true;
}

void pyro_transport_on_ready(const struct pyro_poll_tag *tag, short revents, int64_t now_ms)
{
    if (tag->kind == PYRO_POLL_LISTENER) {
        struct pyro_listener *l = tag->object;
        if (l->fd == tag->fd && l->conn->fd < 0)
            accept_client(l);
        return;
    }
    struct pyro_conn *c = tag->object;
    if (c->fd == tag->fd && !c->broken)
        read_conn(c, revents, now_ms);
}

static void close_conn(struct pyro_conn *c)
{
    pyro_request_drop_conn(c);
    pyro_close(&c->fd);
    pyro_frame_reader_reset(c->reader);
    c->broken = false;
    c->host_seen = false;
}

void pyro_transport_maintain(int64_t now_ms)
{
    for (size_t i = 0; i < sizeof conns / sizeof conns[0]; i++) {
        struct pyro_conn *c = conns[i];
        if (c->fd >= 0 && c->broken) {
            close_conn(c);
            if (c == &virtio_conn) {
                /* Reopening is the only way to start over on a port. */
                virtio_searching = true;
                virtio_search_until_ms = now_ms + VIRTIO_PORT_SEARCH_MS;
                c->resume_ms = now_ms + VIRTIO_RETRY_MS;
            }
        }
    }
    if (virtio_searching && virtio_conn.fd < 0 && now_ms >= virtio_conn.resume_ms)
        open_virtio_port(now_ms);
}

void pyro_transport_close_all(void)
{
    for (size_t i = 0; i < sizeof conns / sizeof conns[0]; i++)
        if (conns[i]->fd >= 0)
            close_conn(conns[i]);
    for (size_t i = 0; i < sizeof listeners / sizeof listeners[0]; i++)
        pyro_close(&listeners[i]->fd);
    if (unix_path[0] != '\0' && unlink(unix_path) != 0 && errno != ENOENT)
        LOG_ERRNO("unlink %s", unix_path);
    unix_path[0] = '\0';
}

void pyro_conn_send(struct pyro_conn *conn, uint32_t channel, uint8_t type, const void *payload,
                    size_t payload_len)
{
    /* One buffer and one write per frame for the common sizes (output chunks and
     * control messages), so a frame is never split into two syscalls. */
    static uint8_t frame[PYRO_FRAME_HEADER_SIZE + 65536];
    if (conn->fd < 0 || conn->broken)
        return;
    if (payload_len > PYRO_MAX_PAYLOAD_BYTES) {
        LOG_ERROR("refusing to send a %zu-byte frame", payload_len);
        return;
    }
    struct pyro_frame_header h = {
        .payload_len = (uint32_t)payload_len, .channel = channel, .type = type};
    pyro_frame_header_encode(frame, &h);
    int rc;
    if (payload_len <= sizeof frame - PYRO_FRAME_HEADER_SIZE) {
        if (payload_len > 0)
            memcpy(frame + PYRO_FRAME_HEADER_SIZE, payload, payload_len);
        rc = pyro_write_all(conn->fd, frame, PYRO_FRAME_HEADER_SIZE + payload_len);
    } else {
        rc = pyro_write_all(conn->fd, frame, PYRO_FRAME_HEADER_SIZE);
        if (rc == 0)
            rc = pyro_write_all(conn->fd, payload, payload_len);
    }
    if (rc != 0) {
        LOG_ERRNO("%s: write", conn->name);
        conn->broken = true;
    }
}
