/**
 * The guest's side of slirp (`-netdev user,net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3`):
 * fixed addresses every guard rule and the plumbing agree on.
 */
export const GUEST_NETWORK = {
  address: "10.0.2.15",
  prefix_len: 24,
  /** Slirp's gateway; it is also the host's loopback seen from the guest. */
  gateway: "10.0.2.2",
  dns: "10.0.2.3",
  network: "10.0.2.0",
} as const;

/** Names the guest reaches without the proxy (none leave the guest: its own loopback). */
const NO_PROXY = "localhost,127.0.0.1,::1";

/**
 * The environment every exec, service and shell gets when the workspace has an allowlist:
 * both spellings, since curl reads only `http_proxy` in lower case and others only upper.
 */
export function proxyEnvironment(proxyPort: number): Record<string, string> {
  const url = `http://${GUEST_NETWORK.gateway}:${proxyPort}`;
  return {
    HTTP_PROXY: url,
    HTTPS_PROXY: url,
    http_proxy: url,
    https_proxy: url,
    NO_PROXY,
    no_proxy: NO_PROXY,
  };
}

/** The text of an apt.conf.d file pointing apt at the proxy (apt ignores the environment under sudo). */
export function aptProxyConfig(proxyPort: number): string {
  const url = `http://${GUEST_NETWORK.gateway}:${proxyPort}`;
  return `Acquire::http::Proxy "${url}";\nAcquire::https::Proxy "${url}";\n`;
}
