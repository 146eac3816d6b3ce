/* pyro-agent: the guest agent of pyro.
 *
 * As PID 1 in a VM it initialises the system and serves the agent protocol on the
 * virtio-serial port and vsock; as a host process (--listen) it serves a Unix socket
 * so the same binary can be tested without a VM. One thread, one poll loop. */
#include "agent.h"
#include "init.h"
#include "log.h"
#include "loop.h"
#include "ops.h"
#include "proc.h"
#include "sys.h"
#include "transport.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int signal_pipe[2] = {-1, -1};

static const char usage[] =
    "usage: pyro-agent --listen SOCKET_PATH [--root DIR] [--verbose]\n"
    "       pyro-agent --version\n"
    "As PID 1 (the /init of pyro's initramfs) it takes no arguments: it initialises\n"
    "the VM and serves the virtio-serial port " PYRO_VIRTIO_SERIAL_NAME
    " and vsock port 5005.\n";

/* Signal handlers only write the signal number to the self-pipe; the loop does the
 * work, so nothing async-signal-unsafe runs in a handler. */
static void on_signal(int signo)
{
    int saved = errno;
    unsigned char b = (unsigned char)signo;
    ssize_t w = write(signal_pipe[1], &b, 1); /* full pipe: a wake-up is pending anyway */
    (void)w;
    errno = saved;
}

static int setup_signals(void)
{
    if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        LOG_ERRNO("pipe2");
        return -1;
    }
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART | SA_NOCLDSTOP};
    sigemptyset(&sa.sa_mask);
    int rc = sigaction(SIGCHLD, &sa, NULL);
    if (!pyro_agent.guest_mode) {
        rc |= sigaction(SIGTERM, &sa, NULL);
        rc |= sigaction(SIGINT, &sa, NULL);
    }
    /* A peer that went away must be an EPIPE on write, not a fatal signal. */
    struct sigaction ign = {.sa_handler = SIG_IGN};
    rc |= sigaction(SIGPIPE, &ign, NULL);
    if (rc != 0)
        LOG_ERRNO("sigaction");
    return rc == 0 ? 0 : -1;
}

static void drain_signal_pipe(void)
{
    unsigned char buf[64];
    for (;;) {
        ssize_t n = read(signal_pipe[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] == SIGTERM || buf[i] == SIGINT)
                pyro_agent.terminate_requested = true;
    }
}

static void dispatch(const struct pyro_pollset *ps, int64_t now_ms)
{
    for (size_t i = 0; i < ps->count; i++) {
        short revents = ps->fds[i].revents;
        const struct pyro_poll_tag *tag = &ps->tags[i];
        if (revents == 0)
            continue;
        switch (tag->kind) {
        case PYRO_POLL_OWNED:
            tag->on_ready(tag, revents, now_ms);
            break;
        case PYRO_POLL_CONN:
        case PYRO_POLL_LISTENER:
            pyro_transport_on_ready(tag, revents, now_ms);
            break;
        case PYRO_POLL_SIGNAL_PIPE:
            drain_signal_pipe();
            break;
        }
    }
}

static int poll_timeout(int64_t deadline_ms, int64_t now_ms)
{
    if (deadline_ms == INT64_MAX)
        return -1;
    if (deadline_ms <= now_ms)
        return 0;
    return deadline_ms - now_ms > INT_MAX ? INT_MAX : (int)(deadline_ms - now_ms);
}

static void host_exit(int code)
{
    pyro_proc_kill_all();
    pyro_transport_close_all();
    exit(code);
}

/* Acts on a shutdown request or a termination signal once the turn's replies are out. */
static void handle_requests_to_stop(void)
{
    if (pyro_agent.guest_mode) {
        if (pyro_agent.shutdown_requested && pyro_agent.power_off_requested)
            pyro_init_power_off(); /* returns only if powering off failed */
        /* Services and shells outlive their clients, but not a shutdown. */
        if (pyro_agent.shutdown_requested)
            pyro_proc_kill_all();
        pyro_agent.shutdown_requested = false;
        return;
    }
    if (pyro_agent.shutdown_requested) {
        LOG_DEBUG("shutdown requested; exiting");
        host_exit(0);
    }
    if (pyro_agent.terminate_requested) {
        LOG_INFO("terminated by signal; exiting");
        host_exit(0);
    }
}

static void serve(void)
{
    static struct pyro_pollset ps;
    for (;;) {
        int64_t now_ms = pyro_now_ms();
        pyro_pollset_reset(&ps);
        /* Order matters: the capabilities' descriptors are handled before requests that
         * may create new ones, see loop.h. */
        pyro_ops_poll_add(&ps);
        pyro_transport_poll_add(&ps, now_ms);
        pyro_pollset_add(&ps, signal_pipe[0], POLLIN, PYRO_POLL_SIGNAL_PIPE, NULL);
        int n = poll(ps.fds, ps.count, poll_timeout(ps.deadline_ms, now_ms));
        if (n < 0 && errno != EINTR) {
            LOG_ERRNO("poll");
            /* Never spin or exit on an unexpected poll failure: wait and go on. */
            struct timespec pause = {.tv_nsec = 50 * 1000000};
            nanosleep(&pause, NULL);
            continue;
        }
        now_ms = pyro_now_ms();
        if (n > 0)
            dispatch(&ps, now_ms);
        /* As PID 1 this also reaps the orphans the kernel re-parents to the agent. */
        pyro_proc_reap(now_ms);
        pyro_ops_tick(now_ms);
        pyro_transport_maintain(now_ms);
        handle_requests_to_stop();
    }
}

static int parse_args(int argc, char **argv, const char **listen_path)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--version") == 0) {
            printf("pyro-agent %s (protocol %d)\n", PYRO_AGENT_VERSION, PYRO_PROTOCOL_VERSION);
            exit(0);
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            exit(0);
        } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            pyro_log_verbose = true;
        } else if (strcmp(a, "--listen") == 0 && i + 1 < argc) {
            *listen_path = argv[++i];
        } else if (strcmp(a, "--root") == 0 && i + 1 < argc) {
            pyro_agent.root_dir = argv[++i];
        } else {
            fprintf(stderr, "pyro-agent: unknown or incomplete argument %s\n%s", a, usage);
            return -1;
        }
    }
    return 0;
}

/* --root DIR is used as a prefix for request paths, so make it absolute and clean. */
static int resolve_root(void)
{
    static char root[PATH_MAX];
    if (!pyro_agent.root_dir)
        return 0;
    struct stat st;
    if (!realpath(pyro_agent.root_dir, root) || stat(root, &st) != 0 || !S_ISDIR(st.st_mode)) {
        LOG_ERROR("--root %s is not a directory", pyro_agent.root_dir);
        return -1;
    }
    pyro_agent.root_dir = strcmp(root, "/") == 0 ? NULL : root;
    return 0;
}

int main(int argc, char **argv)
{
    const char *listen_path = NULL;
    pyro_ensure_stdio();
    pyro_agent.pid1 = getpid() == 1;
    int args_rc = parse_args(argc, argv, &listen_path);
    /* PID 1 never exits: the kernel would panic. It may receive stray kernel
     * command-line words as arguments; they are ignored. */
    pyro_agent.guest_mode = pyro_agent.pid1 && !listen_path;
    if (pyro_agent.guest_mode) {
        LOG_INFO("pyro-agent %s starting as init", PYRO_AGENT_VERSION);
        if (args_rc != 0)
            pyro_agent.root_dir = NULL;
        if (setup_signals() != 0)
            pyro_init_error("signal setup failed: %s", strerror(errno));
        int parked_port = pyro_init_run();
        pyro_transport_start_guest(pyro_now_ms(), parked_port);
        serve();
    }
    if (args_rc != 0 || !listen_path) {
        if (args_rc == 0)
            fputs(usage, stderr);
        return 2;
    }
    if (resolve_root() != 0 || setup_signals() != 0 ||
        pyro_transport_listen_unix(listen_path) != 0)
        return 1;
    LOG_DEBUG("listening on %s", listen_path);
    serve();
    return 0;
}
