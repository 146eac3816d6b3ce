/* shell_open: a PTY, the program on it (root's login shell by default) and the table
 * entry that owns both. */
#include "agent.h"
#include "log.h"
#include "proc.h"
#include "shell_table.h"
#include "spawn.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define FALLBACK_SHELL "/bin/sh"

/* The regular file at path for reading, or NULL. Non-blocking open: a FIFO a guest
 * process put there would block the agent forever. */
static FILE *open_regular(const char *path)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return NULL;
    FILE *f = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? fdopen(fd, "r") : NULL;
    if (!f)
        close(fd);
    return f;
}

/* The 7th field of the uid-0 line of (root-prefixed) /etc/passwd, when it names an
 * executable file; otherwise /bin/sh. */
static void root_login_shell(char *out, size_t cap)
{
    char path[PATH_MAX], line[1024];
    snprintf(out, cap, "%s", FALLBACK_SHELL);
    snprintf(path, sizeof path, "%s/etc/passwd",
             pyro_agent.root_dir ? pyro_agent.root_dir : "");
    FILE *f = open_regular(path);
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        char *fields[7], *rest = line;
        size_t n = 0;
        while (n < 7 && rest)
            fields[n++] = strsep(&rest, ":");
        if (n < 7 || strcmp(fields[2], "0") != 0)
            continue;
        fields[6][strcspn(fields[6], "\r\n")] = '\0';
        if (fields[6][0] == '/' && access(fields[6], X_OK) == 0)
            snprintf(out, cap, "%s", fields[6]);
        break;
    }
    fclose(f);
}

/* A login shell: run path with argv[0] "-NAME", as login(1) does. */
static void use_login_shell(struct pyro_spawn_request *req)
{
    static char path[PATH_MAX], argv0[PATH_MAX + 1];
    static char *argv[2];
    root_login_shell(path, sizeof path);
    const char *slash = strrchr(path, '/');
    snprintf(argv0, sizeof argv0, "-%s", slash ? slash + 1 : path);
    argv[0] = argv0;
    argv[1] = NULL;
    req->path = path;
    req->argv = argv;
}

/* The master (non-blocking) and slave of a new PTY of cols x rows. */
static bool open_pty(int cols, int rows, int *master, int *slave, struct pyro_error *e)
{
    struct winsize size = {.ws_col = (unsigned short)cols, .ws_row = (unsigned short)rows};
    *slave = -1;
    *master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (*master < 0 || grantpt(*master) != 0 || unlockpt(*master) != 0 ||
        ioctl(*master, TIOCSWINSZ, &size) != 0 || pyro_set_nonblock(*master) != 0)
        goto fail;
    /* TIOCGPTPEER opens the slave without a path lookup in /dev/pts. */
    *slave = ioctl(*master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (*slave < 0) {
        char name[64];
        if (ptsname_r(*master, name, sizeof name) != 0)
            goto fail;
        *slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (*slave < 0)
            goto fail;
    }
    return true;
fail:
    pyro_error_set(e, PYRO_ERR_INTERNAL, errno, "shell_open: pseudo-terminal: %s",
                   strerror(errno));
    pyro_close(master);
    return false;
}

struct open_request {
    char id[PYRO_NAME_MAX + 1];
    int64_t cols, rows;
    struct pyro_spawn_request spawn;
};

static bool parse_open(const struct pyro_json_value *json, struct open_request *r,
                       struct pyro_error *e)
{
    static const char *const fields[] = {"op",  "shell_id", "argv", "env",
                                         "cwd", "cols",     "rows", NULL};
    struct pyro_shell *existing = NULL;
    *r = (struct open_request){.cols = PYRO_SHELL_DEFAULT_COLS,
                               .rows = PYRO_SHELL_DEFAULT_ROWS,
                               .spawn = {.tty_fd = -1}};
    if (!pyro_fields_known(json, "shell_open", fields, e) ||
        !pyro_shell_parse_id(json, "shell_open", false, r->id, &existing, e) ||
        !pyro_field_int(json, "shell_open", "cols", 1, PYRO_SHELL_MAX_SIZE, NULL, &r->cols,
                        e) ||
        !pyro_field_int(json, "shell_open", "rows", 1, PYRO_SHELL_MAX_SIZE, NULL, &r->rows, e))
        return false;
    if (existing) {
        pyro_error_set(e, PYRO_ERR_BUSY, 0, "shell_open: shell %s is already open", r->id);
        return false;
    }
    if (!pyro_shell_free_slot()) {
        pyro_error_set(e, PYRO_ERR_BUSY, 0,
                       "shell_open: %d shells are open; close one (shell_close) first",
                       PYRO_MAX_SHELLS);
        return false;
    }
    if (!pyro_spawn_parse_process(json, "shell_open", false, &r->spawn, e))
        return false;
    pyro_spawn_default_term(&r->spawn, "TERM=xterm-256color");
    if (!r->spawn.argv)
        use_login_shell(&r->spawn);
    return true;
}

/* Starts the program on a new PTY; on failure nothing is left behind. */
static bool start(struct open_request *r, struct pyro_shell *sh, struct pyro_error *e)
{
    int master, slave;
    uint8_t *ring = malloc(PYRO_SHELL_RING_BYTES);
    if (!ring) {
        pyro_error_set(e, PYRO_ERR_BUSY, ENOMEM, "shell_open: no memory for the output ring");
        return false;
    }
    if (!open_pty((int)r->cols, (int)r->rows, &master, &slave, e)) {
        free(ring);
        return false;
    }
    struct pyro_spawned child;
    r->spawn.tty_fd = slave;
    bool ok = pyro_spawn(&r->spawn, &child, e);
    /* The child has its own copy; the agent keeping one would hide the EIO that says
     * every process on the terminal is gone. */
    pyro_close(&slave);
    if (!ok) {
        pyro_close(&master);
        free(ring);
        return false;
    }
    *sh = (struct pyro_shell){.used = true,
                              .pid = child.pid,
                              .master_fd = master,
                              .cols = (int)r->cols,
                              .rows = (int)r->rows};
    memcpy(sh->id, r->id, sizeof sh->id);
    pyro_ring_init(&sh->ring, ring, PYRO_SHELL_RING_BYTES);
    if (!pyro_shell_track(sh)) {
        pyro_proc_kill_session(child.pid, SIGKILL);
        sh->reaped = true; /* nothing to HUP or wait for */
        pyro_shell_release(sh);
        pyro_error_set(e, PYRO_ERR_BUSY, 0, "shell_open: the agent's process table is full");
        return false;
    }
    return true;
}

void pyro_shell_open(struct pyro_conn *conn, uint32_t channel,
                     const struct pyro_json_value *req)
{
    struct open_request r;
    struct pyro_error e;
    struct pyro_shell *sh = pyro_shell_free_slot();
    if (!parse_open(req, &r, &e) || !start(&r, sh, &e)) {
        pyro_send_error(conn, channel, &e);
        return;
    }
    LOG_DEBUG("shell %s: started %s as pid %d", sh->id, r.spawn.argv[0], (int)sh->pid);
    char buf[256];
    struct pyro_json_writer w;
    pyro_result_begin(&w, buf, sizeof buf, "shell_id", sh->id);
    pyro_json_key(&w, "pid");
    pyro_json_int(&w, sh->pid);
    pyro_json_object_end(&w);
    pyro_send_control(conn, channel, &w);
}
