import { writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
import { runCli, runCliWithMount } from "../helpers/cli.js";
import { eventually, isolatedHome, processesMentioning } from "../helpers/guest.js";
import { createTestNetns, firstLine, spawnTestServer, type TestNetns } from "../helpers/netns.js";
import { tempDir } from "../helpers/temp.js";

/**
 * Network policies in real guests (issue 9). Every server is the test's own: HTTP in a
 * network namespace with a dnsmasq resolver for one name, and a "secret" server on the
 * host. One workspace (egress+published-ports, created by the CLI in a mount namespace
 * whose /etc/resolv.conf names the test resolver, so slirp forwards the guest's DNS
 * there), plus one-shot VMs for `egress` and `off`.
 */
const home = isolatedHome();
const pyro = new Pyro();
const TEST_NAME = "web.pyro-test";
let netns: TestNetns;
let hostServer: Server;
let hostPort = 0;
let id = "";

/** Every IPv4 address of the host (loopback included): none may answer the guest. */
function hostAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((a) => a?.family === "IPv4")
    .map((a) => a!.address);
}

/**
 * A guest-side TCP connect to each address, 3 s each: prints `ADDR open` or `ADDR closed`
 * (python3: debian:12-build has it).
 */
function probeScript(targets: string[]): string[] {
  const code = `
import socket, sys
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((host, int(port)))
        s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
        print(target, "open", s.recv(64).split(b"\\r\\n")[0].decode())
    except Exception as e:
        print(target, "closed", type(e).__name__)
    finally:
        s.close()
`;
  return ["python3", "-c", code, ...targets];
}

async function exec(command: string[]) {
  return pyro.execWorkspace({ workspace_id: id, command, timeout_seconds: 120 });
}

beforeAll(async () => {
  netns = createTestNetns("net");
  const dir = tempDir("pyro-net-test-");
  const { server } = spawnTestServer(netns, dir, [TEST_NAME]);
  expect(await firstLine(server)).toBe("ready");
  netns.spawn("dnsmasq", [
    "--keep-in-foreground",
    "--no-resolv",
    "--no-hosts",
    `--listen-address=${netns.address}`,
    "--bind-interfaces",
    `--address=/${TEST_NAME}/${netns.address}`,
  ]);
  // The host service the guest must never reach, on every interface of the host.
  hostServer = createServer((_req, res) => res.end("host secret\n"));
  await new Promise<void>((resolve) => hostServer.listen(0, "0.0.0.0", resolve));
  hostPort = (hostServer.address() as { port: number }).port;
  writeFileSync(join(dir, "resolv.conf"), `nameserver ${netns.address}\n`);
  const created = await createInMountNamespace(join(dir, "resolv.conf"));
  id = created.workspace_id;
}, 240_000);

/** `workspace create` with /etc/resolv.conf replaced for it and the shim it starts. */
async function createInMountNamespace(resolvConf: string): Promise<{ workspace_id: string }> {
  const created = await runCliWithMount(resolvConf, "/etc/resolv.conf", [
    ...["workspace", "create", "debian:12-build"],
    ...["--network-policy", "egress+published-ports", "--mem-mib", "512", "--json"],
  ]);
  if (created.code !== 0)
    throw new Error(`workspace create failed (${created.code}): ${created.stderr}`);
  return JSON.parse(created.stdout) as { workspace_id: string };
}

afterAll(async () => {
  if (id) await pyro.deleteWorkspace({ workspace_id: id }).catch(() => {});
  hostServer?.close();
  netns?.remove();
  expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
});

describe("egress", () => {
  it("reaches a server outside the host by address and by a name the test's resolver serves", async () => {
    const result = await exec([
      "python3",
      "-c",
      `import socket, urllib.request
print(socket.gethostbyname("${TEST_NAME}"))
print(urllib.request.urlopen("http://${TEST_NAME}/hello", timeout=10).read().decode().strip())`,
    ]);
    expect(result.stderr).toBe("");
    expect(result.stdout.split("\n")).toEqual([
      netns.address,
      `http ok /hello host=${TEST_NAME}`,
      "",
    ]);
  });

  it("the guest is configured as the status says", async () => {
    const status = await pyro.statusWorkspace({ workspace_id: id });
    expect(status.network_status).toMatchObject({
      policy: "egress+published-ports",
      guest_address: "10.0.2.15",
      gateway: "10.0.2.2",
      dns: ["10.0.2.3"],
    });
    const guest = await exec(["sh", "-c", "cat /etc/resolv.conf; cat /proc/net/route"]);
    expect(guest.stdout).toContain("nameserver 10.0.2.3");
    // The default route (destination 0) through 10.0.2.2 (little-endian hex).
    expect(guest.stdout).toMatch(/eth0\s+00000000\s+0202000A/);
  });
});

describe("the host is out of reach", () => {
  it("refuses the host's loopback (10.0.2.2), every host address and 169.254.169.254", async () => {
    const targets = [
      `10.0.2.2:${hostPort}`,
      ...hostAddresses().map((a) => `${a}:${hostPort}`),
      "169.254.169.254:80",
    ];
    const before = await pyro.statusWorkspace({ workspace_id: id });
    const result = await exec(probeScript(targets));
    const lines = result.stdout.trim().split("\n");
    expect(lines).toHaveLength(targets.length);
    // 127.0.0.1 in the guest is the guest's own loopback: refused there, nothing listens.
    for (const line of lines) expect(line).toMatch(/ closed /);
    const after = await pyro.statusWorkspace({ workspace_id: id });
    expect(after.network_status!.refusals.refused_total).toBeGreaterThan(
      before.network_status!.refusals.refused_total,
    );
  });

  it("a one-shot VM with --network reaches the test server but not the host", async () => {
    const result = await runCli([
      "run",
      "debian:12-build",
      "--network",
      "--",
      ...probeScript([`${netns.address}:80`, `10.0.2.2:${hostPort}`, "169.254.169.254:80"]),
    ]);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trim().split("\n");
    expect(lines[0]).toBe(`${netns.address}:80 open HTTP/1.1 200 OK`);
    expect(lines.slice(1).every((line) => / closed /.test(line))).toBe(true);
  });

  it("a one-shot VM without --network has no route at all", async () => {
    const result = await runCli([
      "run",
      "debian:12-build",
      "--",
      "sh",
      "-c",
      "tail -n +2 /proc/net/route | wc -l; ls /sys/class/net",
    ]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.split("\n").slice(0, 2)).toEqual(["0", "lo"]);
  });
});

describe("published ports", () => {
  const web = (name: string, extra: string[] = []) => [
    ...["workspace", "service", "start", id, name, "--json"],
    ...["--ready-http", "http://127.0.0.1:8000/", ...extra],
    ...["--", "python3", "-m", "http.server", "8000"],
  ];

  it("--publish answers on 127.0.0.1:host_port from the host and is gone after stop", async () => {
    const started = await runCli(web("web", ["--publish", "8000"]));
    expect(started.code, started.stderr).toBe(0);
    const [port] = (JSON.parse(started.stdout) as { published_ports: PublishedPort[] })
      .published_ports;
    expect(port).toMatchObject({ guest_port: 8000, host_address: "127.0.0.1" });
    const response = await fetch(`http://127.0.0.1:${port!.host_port}/`);
    expect(response.status).toBe(200);
    const status = await pyro.statusWorkspace({ workspace_id: id });
    expect(status.network_status!.published_ports).toEqual([port]);
    await pyro.stopService({ workspace_id: id, service_name: "web" });
    await expect(fetch(`http://127.0.0.1:${port!.host_port}/`)).rejects.toThrow();
    const after = await pyro.statusWorkspace({ workspace_id: id });
    expect(after.network_status!.published_ports).toEqual([]);
  });

  it("two workspaces publishing the same guest port get different host ports", async () => {
    const other = await pyro.createWorkspace({
      environment: "debian:12-build",
      network_policy: "egress+published-ports",
      mem_mib: 512,
    });
    try {
      const start = (workspace_id: string) =>
        pyro.startService({
          workspace_id,
          service_name: "same",
          command: ["python3", "-m", "http.server", "8000"],
          readiness: { type: "http", url: "http://127.0.0.1:8000/" },
          published_ports: [{ guest_port: 8000 }],
        });
      const [a, b] = [await start(id), await start(other.workspace_id)];
      const ports = [a.published_ports[0]!.host_port, b.published_ports[0]!.host_port];
      expect(ports[0]).not.toBe(ports[1]);
      for (const port of ports) expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(200);
      await pyro.stopService({ workspace_id: id, service_name: "same" });
    } finally {
      await pyro.deleteWorkspace({ workspace_id: other.workspace_id });
    }
  });

  it("a host port already in use is a conflict and leaves no service running", async () => {
    const busy = await runCli(web("busy", ["--publish", `${hostPort}:8000`]));
    expect(busy.code).not.toBe(0);
    expect(busy.stdout + busy.stderr).toMatch(/conflict/);
    expect(busy.stdout + busy.stderr).toContain(`127.0.0.1:${hostPort}`);
    const { services } = await pyro.listServices({ workspace_id: id });
    expect(services.filter((s) => s.state === "running")).toEqual([]);
  });

  it("refuses malformed and out-of-range --publish before any guest work", async () => {
    for (const value of ["abc", "80:", "1:2:3", "70000", "0", "8080:0"]) {
      const result = await runCli(web("bad", ["--publish", value]));
      expect(result.code, value).not.toBe(0);
      expect(result.stdout + result.stderr, value).toMatch(/publish|port/i);
    }
    const { services } = await pyro.listServices({ workspace_id: id });
    expect(services.map((s) => s.service_name)).not.toContain("bad");
  });
});

type PublishedPort = { guest_port: number; host_port: number; host_address: string };
