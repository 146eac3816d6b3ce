import { createServer } from "node:net";
import { PyroError } from "../contract/errors.js";
import type { ChannelClient } from "../guest/client.js";
import { AGENT_OPS, type ShimNetwork as ShimNetworkInfo } from "../guest/ops/index.js";
import { CappedLog, VMM_LOG_LIMITS } from "../vmm/console-log.js";
import type { VmmNetworkChannels, VmmNetworkSpec } from "../vmm/driver.js";
import {
  aptProxyConfig,
  GUEST_NETWORK,
  proxyEnvironment,
  RefusalLog,
  startAllowlistProxy,
  startGuestFrameRelay,
  type AllowlistProxy,
  type GuestFrameRelay,
} from "../network/index.js";

/** What launch.json says about the VM's network; absent = policy `off`, no NIC. */
export interface ShimNetworkConfig {
  policy: "egress" | "egress+published-ports";
  /** Non-empty: egress only through the allowlist proxy, no DNS in the guest. */
  allowed_domains: string[];
}

/** Published ports bind here only: the host's other interfaces never see a guest port. */
export const PUBLISH_ADDRESS = "127.0.0.1";
/** Fixed: one NIC per VM, alone on its own slirp, so no two guests' MACs ever meet. */
const GUEST_MAC = "52:54:00:70:79:72";
/** Tries at a free host port before giving up (another process may take the one we found). */
const FREE_PORT_ATTEMPTS = 5;

export function vmmNetworkSpec(): VmmNetworkSpec {
  return {
    mac: GUEST_MAC,
    subnet: `${GUEST_NETWORK.network}/${GUEST_NETWORK.prefix_len}`,
    gateway: GUEST_NETWORK.gateway,
    dns: GUEST_NETWORK.dns,
  };
}

/**
 * A VM's network on the shim's side: the guard relay between the NIC and slirp, the
 * allowlist proxy when there is a list, published ports (slirp host forwards) and the
 * refusal log (`network.log` in the VM's directory).
 */
export class ShimNetwork {
  private relay: GuestFrameRelay | undefined;
  private proxy: AllowlistProxy | undefined;
  private channels: VmmNetworkChannels | undefined;
  private readonly refusals: RefusalLog;
  private readonly log: CappedLog;
  /** By host port. */
  private readonly published = new Map<number, { guest_port: number; host_port: number }>();

  constructor(
    private readonly config: ShimNetworkConfig,
    logPath: string,
  ) {
    this.log = new CappedLog(logPath, VMM_LOG_LIMITS);
    this.refusals = new RefusalLog((line) => this.log.write(Buffer.from(line)));
  }

  /** Before the VM boots: the proxy must listen before the guest can use it. */
  async prepare(): Promise<void> {
    if (this.config.allowed_domains.length === 0) return;
    this.proxy = await startAllowlistProxy({
      allowed_domains: this.config.allowed_domains,
      refusals: this.refusals,
    });
  }

  /** Splices the guard between the guest's NIC and slirp, as soon as the VMM runs. */
  attach(channels: VmmNetworkChannels): void {
    this.channels = channels;
    // A broken splice ends with the VMM; an error event must not take the shim down.
    for (const socket of [channels.fromGuest, channels.toNetwork]) socket.on("error", () => {});
    this.relay = startGuestFrameRelay({
      fromGuest: channels.fromGuest,
      toNetwork: channels.toNetwork,
      policy: { allowlist_proxy_port: this.proxy?.port ?? null, published_guest_ports: [] },
      refusals: this.refusals,
    });
  }

  /** Brings eth0 up in the guest; with an allowlist, points its tools at the proxy. */
  async configureGuest(agent: ChannelClient, deadlineMs: number): Promise<void> {
    await agent.request(
      AGENT_OPS.net_configure,
      {
        address: GUEST_NETWORK.address,
        prefix_len: GUEST_NETWORK.prefix_len,
        gateway: GUEST_NETWORK.gateway,
        // Under an allowlist the guest resolves nothing itself: no DNS tunnel out.
        dns: this.proxy ? [] : [GUEST_NETWORK.dns],
      },
      { deadlineMs },
    );
    if (this.proxy) await writeProxySettings(agent, this.proxy.port, deadlineMs);
  }

  /** The proxy variables every exec, service and shell gets (none without a list). */
  guestEnvironment(): Record<string, string> {
    return this.proxy ? proxyEnvironment(this.proxy.port) : {};
  }

  async publish(guestPort: number, hostPort: number | null) {
    if (this.config.policy !== "egress+published-ports")
      throw new PyroError(
        "invalid_argument",
        `publishing ports needs network_policy "egress+published-ports"; this VM has "${this.config.policy}"`,
      );
    const monitor = this.channels?.monitor;
    if (!monitor) throw new PyroError("conflict", "the VM's network is not up yet");
    if (hostPort !== null) {
      await this.forward(monitor, guestPort, hostPort);
    } else {
      hostPort = await this.forwardToFreePort(monitor, guestPort);
    }
    return { guest_port: guestPort, host_port: hostPort, host_address: PUBLISH_ADDRESS };
  }

  async unpublish(hostPort: number): Promise<void> {
    if (!this.published.delete(hostPort) || !this.channels) return;
    await this.channels.monitor(`hostfwd_remove net0 tcp:${PUBLISH_ADDRESS}:${hostPort}`);
    this.relay?.setPublishedGuestPorts(this.publishedGuestPorts());
  }

  info(): ShimNetworkInfo {
    return {
      policy: this.config.policy,
      guest_address: GUEST_NETWORK.address,
      prefix_len: GUEST_NETWORK.prefix_len,
      gateway: GUEST_NETWORK.gateway,
      dns: this.proxy ? [] : [GUEST_NETWORK.dns],
      allowed_domains: this.config.allowed_domains,
      proxy_port: this.proxy?.port ?? null,
      published_ports: [...this.published.values()].map((p) => ({
        ...p,
        host_address: PUBLISH_ADDRESS,
      })),
      refusals: this.refusals.counters(),
    };
  }

  async close(): Promise<void> {
    this.relay?.close();
    await this.proxy?.close().catch(() => {});
    this.log.close();
  }

  private async forwardToFreePort(monitor: VmmNetworkChannels["monitor"], guestPort: number) {
    for (let attempt = 1; ; attempt++) {
      const candidate = await freeLoopbackPort();
      try {
        await this.forward(monitor, guestPort, candidate);
        return candidate;
      } catch (error) {
        // Someone took the port between our probe and slirp's bind: pick another.
        if (attempt >= FREE_PORT_ATTEMPTS || (error as PyroError).code !== "conflict") throw error;
      }
    }
  }

  private async forward(
    monitor: VmmNetworkChannels["monitor"],
    guestPort: number,
    hostPort: number,
  ) {
    if (this.published.has(hostPort)) throw portInUse(hostPort, "this VM already publishes it");
    // Slirp's own failure says only "could not set up"; probing first names the cause.
    if (!(await loopbackPortFree(hostPort))) throw portInUse(hostPort, "another process uses it");
    // The guard must let the service's replies out before the first connection arrives.
    this.published.set(hostPort, { guest_port: guestPort, host_port: hostPort });
    this.relay?.setPublishedGuestPorts(this.publishedGuestPorts());
    const rule = `tcp:${PUBLISH_ADDRESS}:${hostPort}-${GUEST_NETWORK.address}:${guestPort}`;
    const output = await monitor(`hostfwd_add net0 ${rule}`).catch((error: Error) => error.message);
    if (output.trim() !== "") {
      this.published.delete(hostPort);
      this.relay?.setPublishedGuestPorts(this.publishedGuestPorts());
      throw portInUse(hostPort, output.trim().slice(0, 200));
    }
  }

  private publishedGuestPorts(): number[] {
    return [...new Set([...this.published.values()].map((p) => p.guest_port))];
  }
}

function portInUse(hostPort: number, why: string): PyroError {
  return new PyroError(
    "conflict",
    `host port ${PUBLISH_ADDRESS}:${hostPort} cannot be published (${why}); choose another port or leave HOST_PORT out to get a free one`,
  );
}

function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, PUBLISH_ADDRESS, () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address
          ? resolve(address.port)
          : reject(new Error("no port")),
      );
    });
  });
}

function loopbackPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, PUBLISH_ADDRESS, () => server.close(() => resolve(true)));
  });
}

/**
 * System-wide proxy settings for what does not inherit the agent's environment (a login
 * shell reads /etc/environment through PAM; apt ignores the environment under sudo).
 */
async function writeProxySettings(agent: ChannelClient, port: number, deadlineMs: number) {
  const environment = Object.entries(proxyEnvironment(port))
    .map(([name, value]) => `${name}=${value}\n`)
    .join("");
  const script =
    'printf %s "$1" >> /etc/environment && mkdir -p /etc/apt/apt.conf.d && printf %s "$2" > /etc/apt/apt.conf.d/80pyro-proxy';
  const result = await agent.exec(
    {
      argv: ["/bin/sh", "-c", script, "sh", environment, aptProxyConfig(port)],
      timeout_ms: deadlineMs,
    },
    {},
  );
  if (result.exit_code !== 0)
    throw new PyroError(
      "guest_error",
      `could not write the guest's proxy settings: ${result.stderr.toString().slice(0, 500)}`,
    );
}
