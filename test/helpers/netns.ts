import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";

/**
 * A network namespace joined to the host by a veth pair with addresses of its own, so a
 * test has "outside" servers that are neither the host's loopback nor any real network.
 * Needs root (the test machine's tiers run as root).
 */
export interface TestNetns {
  name: string;
  /** The host's end of the veth pair. */
  hostAddress: string;
  /** The namespace's end: servers started with `run` listen here. */
  address: string;
  /** Starts a process inside the namespace; it is killed by `remove`. */
  spawn(command: string, args: string[]): ChildProcess;
  remove(): void;
}

export function createTestNetns(tag: string): TestNetns {
  const id = `${process.pid % 10_000}${Math.floor(Math.random() * 100)}`;
  const name = `pyro-${tag}-${id}`.slice(0, 15);
  const hostLink = `pv${id}h`.slice(0, 15);
  const nsLink = `pv${id}n`.slice(0, 15);
  const subnet = 1 + Math.floor(Math.random() * 250);
  const hostAddress = `10.253.${subnet}.1`;
  const address = `10.253.${subnet}.2`;
  const children: ChildProcess[] = [];
  const ip = (...args: string[]) => execFileSync("ip", args, { stdio: "pipe" });
  const remove = () => {
    for (const child of children) child.kill("SIGKILL");
    try {
      ip("netns", "del", name);
    } catch {
      /* already gone */
    }
    try {
      ip("link", "del", hostLink);
    } catch {
      /* removed with the namespace */
    }
  };
  try {
    ip("netns", "add", name);
    ip("link", "add", hostLink, "type", "veth", "peer", "name", nsLink);
    ip("link", "set", nsLink, "netns", name);
    ip("addr", "add", `${hostAddress}/30`, "dev", hostLink);
    ip("link", "set", hostLink, "up");
    ip("-n", name, "addr", "add", `${address}/30`, "dev", nsLink);
    ip("-n", name, "link", "set", nsLink, "up");
    ip("-n", name, "link", "set", "lo", "up");
  } catch (error) {
    remove();
    throw error;
  }
  return {
    name,
    hostAddress,
    address,
    spawn(command, args) {
      const child = spawn("ip", ["netns", "exec", name, command, ...args], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      children.push(child);
      return child;
    },
    remove,
  };
}

/** Waits for a child's first stdout line (a server printing "ready" once it listens). */
export async function firstLine(child: ChildProcess): Promise<string> {
  const lines = createInterface({ input: child.stdout! });
  const exited = once(child, "exit").then(([code]) => {
    throw new Error(`server exited (${String(code)}) before it was ready`);
  });
  const [line] = (await Promise.race([once(lines, "line"), exited])) as [string];
  return line;
}

/**
 * A CA and a server certificate for `names`, made with openssl in `dir`: the TLS server's
 * key and chain, and the CA a client (or a guest) trusts.
 */
export function makeTestCertificates(dir: string, names: string[]) {
  const run = (args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  run(
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "2",
      "-subj",
      "/CN=pyro test CA",
    ].concat(["-keyout", "ca.key", "-out", "ca.pem"]),
  );
  run([
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-subj",
    `/CN=${names[0]}`,
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
  ]);
  writeFileSync(join(dir, "san.ext"), `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}\n`);
  run(
    [
      "x509",
      "-req",
      "-in",
      "server.csr",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
    ].concat(["-days", "2", "-extfile", "san.ext", "-out", "server.pem"]),
  );
  return { ca: join(dir, "ca.pem"), key: join(dir, "server.key"), cert: join(dir, "server.pem") };
}

/**
 * The servers a network test reaches: HTTP on port 80 and HTTPS on 443 answering
 * `<scheme> ok <path>`, and `/bytes/N` with N bytes (for throughput). Prints "ready".
 */
export const TEST_SERVER_SCRIPT = `
import { createServer } from "node:http";
import { createServer as createTlsServer } from "node:https";
import { readFileSync } from "node:fs";
const [key, cert, host] = process.argv.slice(2);
const handler = (scheme) => (req, res) => {
  const bytes = /^\\/bytes\\/(\\d+)$/.exec(req.url ?? "");
  if (bytes) {
    let left = Number(bytes[1]);
    res.writeHead(200, { "content-length": String(left) });
    const chunk = Buffer.alloc(64 * 1024, 120);
    const pump = () => {
      while (left > 0) {
        const part = chunk.subarray(0, Math.min(left, chunk.length));
        left -= part.length;
        if (!res.write(part)) return res.once("drain", pump);
      }
      res.end();
    };
    return pump();
  }
  res.end(scheme + " ok " + req.url + " host=" + req.headers.host + "\\n");
};
const http = createServer(handler("http"));
const https = createTlsServer({ key: readFileSync(key), cert: readFileSync(cert) }, handler("https"));
let listening = 0;
const ready = () => { if (++listening === 2) console.log("ready"); };
http.listen(80, host, ready);
https.listen(443, host, ready);
`;

/**
 * Writes TEST_SERVER_SCRIPT and a certificate for `names` into `dir` and starts the
 * servers in `netns`, listening on its address; wait for `firstLine(server)` to be "ready".
 */
export function spawnTestServer(netns: TestNetns, dir: string, names: string[]) {
  const certs = makeTestCertificates(dir, names);
  writeFileSync(join(dir, "server.mjs"), TEST_SERVER_SCRIPT);
  const server = netns.spawn(process.execPath, [
    join(dir, "server.mjs"),
    certs.key,
    certs.cert,
    netns.address,
  ]);
  return { certs, server };
}
