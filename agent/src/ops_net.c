/* The network op: net_configure brings eth0 up with a static IPv4 address, a default
 * route and the resolvers in /etc/resolv.conf. The host sends it right after hello when
 * the VM has a network policy (the NIC exists only then); the addresses are slirp's
 * fixed plan (docs/architecture.md, "Network plumbing"), but the agent takes them from
 * the request so the plan lives in one place on the host. */
#include "agent.h"
#include "log.h"
#include "ops.h"
#include "request.h"
#include "sys.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define NET_INTERFACE "eth0"
#define NET_MAX_DNS 3
#define RESOLV_CONF "/etc/resolv.conf"
#define RESOLV_CONF_TMP "/etc/.resolv.conf.pyro"

struct net_config {
    struct in_addr address;
    struct in_addr netmask;
    struct in_addr gateway;
    struct in_addr dns[NET_MAX_DNS];
    size_t dns_count;
};

/* A required dotted-quad IPv4 field. */
static bool field_ipv4(const struct pyro_json_value *req, const char *field,
                       struct in_addr *out, struct pyro_error *e)
{
    const struct pyro_json_value *v = pyro_json_get(req, field);
    if (!pyro_json_is_cstring(v) || v->len > 15 || inet_pton(AF_INET, v->str, out) != 1) {
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0,
                       "net_configure: %s must be an IPv4 address like 10.0.2.15", field);
        return false;
    }
    return true;
}

static bool parse_config(const struct pyro_json_value *req, struct net_config *c,
                         struct pyro_error *e)
{
    static const char *const fields[] = {"op", "address", "prefix_len", "gateway", "dns", NULL};
    int64_t prefix = 0;
    bool has_prefix = false;
    if (!pyro_fields_known(req, "net_configure", fields, e) ||
        !field_ipv4(req, "address", &c->address, e) ||
        !field_ipv4(req, "gateway", &c->gateway, e) ||
        !pyro_field_int(req, "net_configure", "prefix_len", 1, 30, &has_prefix, &prefix, e))
        return false;
    if (!has_prefix) {
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0,
                       "net_configure: prefix_len is required");
        return false;
    }
    c->netmask.s_addr = htonl(0xffffffffu << (32 - prefix));
    const struct pyro_json_value *dns = pyro_json_get(req, "dns");
    if (!dns || dns->type != PYRO_JSON_ARRAY || dns->count > NET_MAX_DNS) {
        pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0,
                       "net_configure: dns must be an array of at most %d IPv4 addresses",
                       NET_MAX_DNS);
        return false;
    }
    c->dns_count = 0;
    for (const struct pyro_json_value *d = dns->child; d; d = d->next) {
        if (!pyro_json_is_cstring(d) || d->len > 15 ||
            inet_pton(AF_INET, d->str, &c->dns[c->dns_count]) != 1) {
            pyro_error_set(e, PYRO_ERR_INVALID_ARGUMENT, 0,
                           "net_configure: dns entries must be IPv4 addresses");
            return false;
        }
        c->dns_count++;
    }
    return true;
}

static bool set_ipv4(int fd, unsigned long request, struct in_addr value)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, NET_INTERFACE);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
    sin->sin_family = AF_INET;
    sin->sin_addr = value;
    return ioctl(fd, request, &ifr) == 0;
}

static bool interface_up(int fd)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, NET_INTERFACE);
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0)
        return false;
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    return ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
}

/* The default route via the gateway. EEXIST (a second call) is success: the op is
 * idempotent so a host that retries after a lost reply does no harm. */
static bool default_route(int fd, struct in_addr gateway)
{
    struct rtentry rt;
    memset(&rt, 0, sizeof rt);
    struct sockaddr_in *dst = (struct sockaddr_in *)&rt.rt_dst;
    struct sockaddr_in *gw = (struct sockaddr_in *)&rt.rt_gateway;
    struct sockaddr_in *mask = (struct sockaddr_in *)&rt.rt_genmask;
    dst->sin_family = gw->sin_family = mask->sin_family = AF_INET;
    gw->sin_addr = gateway;
    rt.rt_flags = RTF_UP | RTF_GATEWAY;
    rt.rt_dev = (char *)NET_INTERFACE;
    return ioctl(fd, SIOCADDRT, &rt) == 0 || errno == EEXIST;
}

static bool configure_interface(const struct net_config *c, struct pyro_error *e)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        pyro_error_set(e, PYRO_ERR_INTERNAL, errno, "net_configure: socket: %s",
                       strerror(errno));
        return false;
    }
    const char *step = "SIOCSIFADDR";
    bool ok = set_ipv4(fd, SIOCSIFADDR, c->address);
    if (ok && (step = "SIOCSIFNETMASK"))
        ok = set_ipv4(fd, SIOCSIFNETMASK, c->netmask);
    if (ok && (step = "SIOCSIFFLAGS"))
        ok = interface_up(fd);
    if (ok && (step = "SIOCADDRT"))
        ok = default_route(fd, c->gateway);
    if (!ok) {
        const char *code = errno == ENODEV ? PYRO_ERR_NOT_FOUND : PYRO_ERR_INTERNAL;
        pyro_error_set(e, code, errno, "net_configure: %s on %s: %s", step, NET_INTERFACE,
                       strerror(errno));
    }
    close(fd);
    return ok;
}

/* Replaces /etc/resolv.conf (a symlink there is replaced, not followed). No resolvers
 * (an allowlist: names resolve on the host's proxy) leaves a file without nameserver
 * lines, so the guest's libc has nothing to ask. */
static bool write_resolv_conf(const struct net_config *c, struct pyro_error *e)
{
    char text[256];
    size_t len = (size_t)snprintf(text, sizeof text, "# written by pyro-agent\n");
    for (size_t i = 0; i < c->dns_count; i++) {
        char addr[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &c->dns[i], addr, sizeof addr);
        len += (size_t)snprintf(text + len, sizeof text - len, "nameserver %s\n", addr);
    }
    int fd = open(RESOLV_CONF_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    bool ok = fd >= 0 && write(fd, text, len) == (ssize_t)len;
    int saved = errno;
    if (fd >= 0)
        close(fd);
    if (ok)
        ok = rename(RESOLV_CONF_TMP, RESOLV_CONF) == 0;
    else
        errno = saved;
    if (!ok) {
        pyro_error_set(e, PYRO_ERR_INTERNAL, errno, "net_configure: write %s: %s", RESOLV_CONF,
                       strerror(errno));
        unlink(RESOLV_CONF_TMP);
    }
    return ok;
}

static void handle_net_configure(struct pyro_conn *conn, uint32_t channel,
                                 const struct pyro_json_value *req)
{
    struct pyro_error e;
    struct net_config config;
    if (!parse_config(req, &config, &e)) {
        pyro_send_error(conn, channel, &e);
        return;
    }
    if (!pyro_agent.guest_mode) {
        pyro_error_set(&e, PYRO_ERR_UNSUPPORTED, 0,
                       "net_configure: only a guest agent configures a network");
        pyro_send_error(conn, channel, &e);
        return;
    }
    if (!configure_interface(&config, &e) || !write_resolv_conf(&config, &e)) {
        LOG_ERROR("%s", e.message);
        pyro_send_error(conn, channel, &e);
        return;
    }
    pyro_send_result(conn, channel);
}

static const struct pyro_op ops[] = {
    {"net_configure", handle_net_configure},
    {NULL, NULL},
};

const struct pyro_op_group pyro_net_ops = {.name = "net", .ops = ops};
