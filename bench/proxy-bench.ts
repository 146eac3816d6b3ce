/**
 * Throughput of the allowlist proxy on the host (`tsx bench/proxy-bench.ts`, root: it
 * makes a network namespace): MB/s of one download from an HTTP/HTTPS server in a test
 * namespace, directly and through the proxy (plain HTTP, and a CONNECT tunnel carrying
 * TLS). The guest-side figure (a guest's curl through slirp and the proxy) is in
 * `npm run bench:network`; this one isolates what the proxy itself costs.
 */
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request, type IncomingMessage } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import type { Socket } from "node:net";
import { RefusalLog, startAllowlistProxy } from "../src/network/index.js";
import {
  createTestNetns,
  firstLine,
  makeTestCertificates,
  TEST_SERVER_SCRIPT,
} from "../test/helpers/netns.js";
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

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "pyro-proxy-bench-"));
  const certs = makeTestCertificates(dir, ["bench.test"]);
  writeFileSync(join(dir, "server.mjs"), TEST_SERVER_SCRIPT);
  const netns = createTestNetns("bench");
  try {
    const server = netns.spawn(process.execPath, [
      join(dir, "server.mjs"),
      certs.key,
      certs.cert,
      netns.address,
    ]);
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
  } finally {
    netns.remove();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
