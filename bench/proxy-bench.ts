/**
 * Throughput of the allowlist proxy (`npm run build && tsx bench/proxy-bench.ts`, root:
 * it makes a network namespace; boots one workspace, so run it under the VM lock): MB/s
 * of one download from an HTTP/HTTPS server in a test namespace - on the host directly
 * and through the proxy (plain HTTP, and a CONNECT tunnel carrying TLS), which isolates
 * what the proxy costs; then from a guest with `allowed_domains` (python's urllib through
 * slirp, the guard and the proxy), which is what a user gets. BENCH_GUEST=0 skips it.
 */
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request, type IncomingMessage } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { spawnSync } from "node:child_process";
import { connect as tlsConnect } from "node:tls";
import type { Socket } from "node:net";
import { RefusalLog, startAllowlistProxy } from "../src/network/index.js";
import { createTestNetns, firstLine, spawnTestServer } from "../test/helpers/netns.js";
import { median, timed } from "./measure.js";

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const BYTES = Number(process.env.BENCH_BYTES ?? 256 * 1024 * 1024);

async function drain(stream: NodeJS.ReadableStream): Promise<number> {
  let total = 0;
  for await (const chunk of stream) total += (chunk as Buffer).length;
  return total;
}

async function httpGet(port: number, host: string, path: string, address = "127.0.0.1") {
  const req = request({ host: address, port, path, headers: { host } });
  req.end();
  const [res] = (await once(req, "response")) as [IncomingMessage];
  return drain(res);
}

async function tlsGetThroughTunnel(port: number, ca: Buffer): Promise<number> {
  const req = request({ host: "127.0.0.1", port, method: "CONNECT", path: "bench.test:443" });
  req.end();
  const [, socket] = (await once(req, "connect")) as [IncomingMessage, Socket];
  const tls = tlsConnect({ socket, servername: "bench.test", ca });
  await once(tls, "secureConnect");
  tls.write(`GET /bytes/${BYTES} HTTP/1.1\r\nhost: bench.test\r\nconnection: close\r\n\r\n`);
  return drain(tls);
}

async function rate(label: string, fn: () => Promise<number>): Promise<void> {
  const rates: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const [ms, bytes] = await timed(fn);
    if (bytes < BYTES) throw new Error(`${label}: got ${bytes} of ${BYTES} bytes`);
    rates.push(bytes / 1e6 / (ms / 1000));
  }
  console.log(`${label.padEnd(34)} median ${median(rates).toFixed(0)} MB/s over ${RUNS} runs`);
}

const GUEST_BYTES = Number(process.env.BENCH_GUEST_BYTES ?? 64 * 1024 * 1024);

/** Seconds one download takes inside the guest, timed there (no exec round trip counted). */
const guestDownload = (url: string) => `python3 - <<'EOF'
import time, urllib.request
start = time.monotonic()
with urllib.request.urlopen("${url}", timeout=120) as r:
    size = 0
    while True:
        chunk = r.read(1 << 20)
        if not chunk: break
        size += len(chunk)
print(size, time.monotonic() - start)
EOF`;

/**
 * A workspace whose proxy resolves bench.test to the namespace: the CLI that creates it
 * runs with a bind-mounted /etc/hosts, and its shim (which runs the proxy) keeps that.
 */
async function guestRate(dir: string, address: string): Promise<void> {
  const home = join(dir, "home");
  const hosts = join(dir, "hosts");
  writeFileSync(hosts, `127.0.0.1 localhost\n${address} bench.test\n`);
  const script = 'mount --bind "$0" /etc/hosts && exec "$@"';
  const cli = [process.execPath, resolve("dist/cli/main.js")];
  const env = { ...process.env, PYRO_HOME: home };
  const created = spawnSync(
    "unshare",
    ["-m", "sh", "-c", script, hosts, ...cli, "workspace", "create", "debian:12-build"].concat([
      "--network-policy",
      "egress",
      "--allow-domain",
      "bench.test",
      "--id-only",
    ]),
    { env, encoding: "utf8" },
  );
  if (created.status !== 0) throw new Error(`workspace create failed: ${created.stderr}`);
  const id = created.stdout.trim();
  try {
    const rates: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const run = spawnSync(
        cli[0]!,
        [cli[1]!, "workspace", "exec", id, "--timeout-seconds", "300", "--"].concat([
          "sh",
          "-c",
          guestDownload(`http://bench.test/bytes/${GUEST_BYTES}`),
        ]),
        { env, encoding: "utf8" },
      );
      const [bytes, seconds] = run.stdout.trim().split(" ").map(Number);
      if (run.status !== 0 || bytes !== GUEST_BYTES)
        throw new Error(`guest download failed: ${run.stdout} ${run.stderr}`);
      rates.push(bytes / 1e6 / seconds!);
    }
    console.log(
      `${"guest through slirp, guard, proxy".padEnd(34)} median ${median(rates).toFixed(1)} MB/s over ${RUNS} runs (${GUEST_BYTES / 1024 / 1024} MiB)`,
    );
  } finally {
    spawnSync(cli[0]!, [cli[1]!, "workspace", "delete", id], { env });
  }
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "pyro-proxy-bench-"));
  const netns = createTestNetns("bench");
  try {
    const { certs, server } = spawnTestServer(netns, dir, ["bench.test"]);
    if ((await firstLine(server)) !== "ready") throw new Error("test server did not start");
    const proxy = await startAllowlistProxy({
      allowed_domains: ["bench.test"],
      refusals: new RefusalLog(() => {}),
      resolve: async () => [netns.address],
    });
    const path = `/bytes/${BYTES}`;
    console.log(`download of ${BYTES / 1024 / 1024} MiB from a server in a test namespace:`);
    // Direct: the host's own client straight to the namespace (no proxy), the ceiling.
    await rate("direct HTTP (no proxy)", () => httpGet(80, "bench.test", path, netns.address));
    await rate("through the proxy, HTTP", () =>
      httpGet(proxy.port, "bench.test", `http://bench.test${path}`),
    );
    await rate("through the proxy, CONNECT + TLS", () =>
      tlsGetThroughTunnel(proxy.port, readFileSync(certs.ca)),
    );
    await proxy.close();
    if (process.env.BENCH_GUEST !== "0") await guestRate(dir, netns.address);
  } finally {
    netns.remove();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
