import { mkdirSync, writeFileSync, copyFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
import { runCliWithMount } from "../helpers/cli.js";
import { eventually, isolatedHome, processesMentioning } from "../helpers/guest.js";
import { createTestNetns, firstLine, spawnTestServer, type TestNetns } from "../helpers/netns.js";
import { tempDir } from "../helpers/temp.js";

/**
 * A workspace with `allowed_domains` in a real guest: the guest reaches listed names over
 * HTTP and HTTPS only through the proxy, and nothing else (other names, IP literals, raw
 * TCP, DNS). The servers live in a test network namespace; the names resolve there
 * through an /etc/hosts bind-mounted for the CLI that creates the workspace (its shim,
 * which runs the proxy, keeps that mount namespace), so nothing touches real DNS.
 */
const home = isolatedHome();
const pyro = new Pyro();
let netns: TestNetns;
let id = "";

async function guest(script: string) {
  return pyro.execWorkspace({
    workspace_id: id,
    command: ["sh", "-c", script],
    timeout_seconds: 60,
  });
}

/** python3's urllib honours http_proxy/https_proxy, as pip does. Prints status and body. */
const fetchScript = (url: string) =>
  `python3 - <<'EOF'
import urllib.request, urllib.error
try:
    with urllib.request.urlopen(${JSON.stringify(url)}, timeout=20) as r:
        print(r.status, r.read().decode().strip())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode().strip())
EOF`;

beforeAll(async () => {
  const dir = tempDir("pyro-net-allow-");
  netns = createTestNetns("allow");
  const { certs, server } = spawnTestServer(netns, dir, [
    "allowed.test",
    "www.allowed.test",
    "other.test",
  ]);
  expect(await firstLine(server)).toBe("ready");
  const hosts = join(dir, "hosts");
  writeFileSync(
    hosts,
    `127.0.0.1 localhost\n${netns.address} allowed.test www.allowed.test other.test\n127.0.0.1 loop.allowed.test\n`,
  );
  const created = await runCliWithMount(hosts, "/etc/hosts", [
    "workspace",
    "create",
    "debian:12-build",
    "--mem-mib",
    "512",
    "--network-policy",
    "egress",
    "--allow-domain",
    "allowed.test",
    "--allow-domain",
    "*.allowed.test",
    "--json",
  ]);
  expect(created.code, created.stderr).toBe(0);
  id = (JSON.parse(created.stdout) as { workspace_id: string }).workspace_id;
  // The test CA, added to the guest's system bundle (what OpenSSL and python trust).
  // update-ca-certificates would rehash every CA: over a minute under TCG.
  const seed = join(dir, "ca");
  mkdirSync(seed);
  copyFileSync(certs.ca, join(seed, "pyro-test-ca.crt"));
  await pyro.pushWorkspaceSync({ workspace_id: id, source_path: seed, dest: "/workspace/ca" });
  const installed = await guest(
    "cat /workspace/ca/pyro-test-ca.crt >> /etc/ssl/certs/ca-certificates.crt",
  );
  expect(installed.exit_code, installed.stderr).toBe(0);
});

afterAll(async () => {
  if (id) await pyro.deleteWorkspace({ workspace_id: id }).catch(() => {});
  netns?.remove();
  expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
});

describe("allowlist in a real guest", () => {
  it("gives every command the proxy in its environment", async () => {
    const env = await guest("echo $HTTP_PROXY $https_proxy");
    expect(env.stdout.trim()).toMatch(/^http:\/\/10\.0\.2\.2:\d+ http:\/\/10\.0\.2\.2:\d+$/);
  });

  it("reaches an allowed name over HTTP and a wildcard subdomain over HTTPS (test CA)", async () => {
    expect((await guest(fetchScript("http://allowed.test/plain"))).stdout).toContain(
      "200 http ok /plain host=allowed.test",
    );
    expect((await guest(fetchScript("https://www.allowed.test/secure"))).stdout).toContain(
      "200 https ok /secure host=www.allowed.test",
    );
  });

  it("gets 403 for a name not on the list and for an IP literal", async () => {
    expect((await guest(fetchScript("http://other.test/"))).stdout).toMatch(
      /^403 .*not in this workspace's allowed_domains/,
    );
    expect((await guest(fetchScript(`http://${netns.address}/`))).stdout).toMatch(
      /^403 .*IP address/,
    );
    expect((await guest(fetchScript("http://loop.allowed.test/"))).stdout).toMatch(
      /^403 .*never reach/,
    );
  });

  it("cannot open raw TCP to the allowed server, nor resolve names itself", async () => {
    const raw = await guest(
      `python3 -c "import socket; socket.create_connection(('${netns.address}', 80), timeout=3)" 2>&1; echo exit=$?`,
    );
    expect(raw.stdout).toMatch(/timed out|unreachable|refused/i);
    expect(raw.stdout).toContain("exit=1");
    const dns = await guest("getent hosts allowed.test; echo exit=$?");
    expect(dns.stdout).toContain("exit=2");
    // Asking slirp's resolver directly (a DNS tunnel would): no answer comes back.
    const query = await guest(
      `python3 -c "
import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
s.sendto(bytes.fromhex('123401000001000000000000' '07616c6c6f776564' '0474657374' '00' '0001' '0001'), ('10.0.2.3', 53))
print(s.recv(512))" 2>&1; echo exit=$?`,
    );
    expect(query.stdout).toMatch(/timed out/);
  });

  it("counts every kind of refusal in the workspace status", async () => {
    const status = await pyro.statusWorkspace({ workspace_id: id });
    const network = status.network_status!;
    expect(network.allowed_domains).toEqual(["allowed.test", "*.allowed.test"]);
    expect(network.dns).toEqual([]);
    const byReason = network.refusals.refused_by_reason;
    // The proxy's 403s, and the guard's drops of raw TCP to the server and of DNS.
    expect(byReason["not-allowed"]).toBeGreaterThanOrEqual(1);
    expect(byReason["ip-literal"]).toBeGreaterThanOrEqual(1);
    expect(byReason["refused-address"]).toBeGreaterThanOrEqual(1);
    expect(byReason["allowlist"]).toBeGreaterThanOrEqual(1);
    expect(byReason["dns-under-allowlist"]).toBeGreaterThanOrEqual(1);
    expect(network.refusals.refused_total).toBeGreaterThanOrEqual(5);
  });

  it("shows the refusals, one line per kind and destination, in workspace logs", async () => {
    const { network_refusals } = await pyro.logsWorkspace({ workspace_id: id });
    const expected = [
      "refused proxy not-allowed other.test:80",
      `refused guard allowlist tcp ${netns.address}:80`,
      "refused guard dns-under-allowlist udp 10.0.2.3:53",
    ];
    const missing = expected.filter((text) => !network_refusals.some((l) => l.includes(text)));
    expect(missing, network_refusals.join("\n")).toEqual([]);
  });
});
