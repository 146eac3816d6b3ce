/**
 * What a network costs a guest (`npm run bench:network`, root: it makes a network
 * namespace; run it under the VM lock on a shared machine):
 * - the extra boot time of a VM with a NIC (policy egress) over one without: the median
 *   `boot_ms` (VMM start to agent answer, net_configure included) of `runInVm` runs;
 * - HTTP throughput through egress (the guard relay and slirp): a guest downloads
 *   BENCH_BYTES from a server in a test namespace, timed inside the guest.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Pyro } from "../src/index.js";
import { createTestNetns, firstLine, spawnTestServer } from "../test/helpers/netns.js";
import { median } from "./measure.js";

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const BYTES = Number(process.env.BENCH_BYTES ?? 64 * 1024 * 1024);
const ENVIRONMENT = process.env.BENCH_ENV ?? "debian:12-build";

/** Alternating runs without and with a NIC, so warm-up and load drift hit both alike. */
async function bootMs(pyro: Pyro): Promise<{ without: number[]; withNic: number[] }> {
  const samples = { without: [] as number[], withNic: [] as number[] };
  const boot = async (network: boolean) =>
    (await pyro.runInVm({ environment: ENVIRONMENT, command: ["true"], network })).timings.boot_ms;
  await boot(false); // warm-up: page cache, first agent build
  for (let i = 0; i < RUNS; i++) {
    samples.without.push(await boot(false));
    samples.withNic.push(await boot(true));
  }
  return samples;
}

/** A guest download timed in the guest (python3 is in debian:12-build). */
function downloadScript(url: string): string[] {
  const code = `
import time, urllib.request
started = time.monotonic()
total = 0
with urllib.request.urlopen("${url}", timeout=60) as response:
    while True:
        chunk = response.read(1 << 20)
        if not chunk:
            break
        total += len(chunk)
print(total, time.monotonic() - started)
`;
  return ["python3", "-c", code];
}

async function egressThroughput(pyro: Pyro, address: string): Promise<number[]> {
  const workspace = await pyro.createWorkspace({
    environment: ENVIRONMENT,
    network_policy: "egress",
    mem_mib: 512,
  });
  try {
    const rates: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const result = await pyro.execWorkspace({
        workspace_id: workspace.workspace_id,
        command: downloadScript(`http://${address}/bytes/${BYTES}`),
        timeout_seconds: 300,
      });
      const [bytes, seconds] = result.stdout.trim().split(" ").map(Number);
      if (result.exit_code !== 0 || bytes !== BYTES)
        throw new Error(`download failed: ${result.stderr || result.stdout}`);
      rates.push(bytes / seconds! / 1e6);
    }
    return rates;
  } finally {
    await pyro.deleteWorkspace({ workspace_id: workspace.workspace_id });
  }
}

async function main(): Promise<void> {
  const home = mkdtempSync(join(tmpdir(), "pyro-net-bench-"));
  process.env.PYRO_HOME = home;
  const pyro = new Pyro();
  const netns = createTestNetns("bench");
  try {
    const dir = join(home, "server");
    mkdirSync(dir);
    const { server } = spawnTestServer(netns, dir, ["bench.test"]);
    if ((await firstLine(server)) !== "ready") throw new Error("test server did not start");
    const { without, withNic } = await bootMs(pyro);
    console.log(`boot_ms without NIC: median ${median(without)} (${without.join(", ")})`);
    console.log(`boot_ms with NIC (egress): median ${median(withNic)} (${withNic.join(", ")})`);
    console.log(`extra boot time of a NIC: ${median(withNic) - median(without)} ms (median)`);
    const rates = await egressThroughput(pyro, netns.address);
    const shown = rates.map((r) => r.toFixed(1)).join(", ");
    console.log(
      `egress HTTP download (${BYTES / 1024 / 1024} MiB): median ${median(rates).toFixed(1)} MB/s (${shown})`,
    );
  } finally {
    netns.remove();
    rmSync(home, { recursive: true, force: true });
  }
}

await main();
