/**
 * `npm run bench:shell`: the cost of driving a shell, measured in one run on one
 * workspace. The round trip is what a model sees: from sending a command line to the read
 * that holds its output (reads repeated at once until it shows up), so it includes the
 * guest's bash running `echo`. Each call opens its own connection to the shim, as the
 * CLI and the MCP server do.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Pyro } from "../src/index.js";
import { median, timed } from "./measure.js";

const RUNS = Number(process.env.BENCH_RUNS ?? 20);

/** Reads from `cursor` until `pattern` shows up; returns the cursor after it and the reads. */
async function readUntil(
  pyro: Pyro,
  ids: { workspace_id: string; shell_id: string },
  cursor: number,
  pattern: RegExp,
) {
  let text = "";
  let reads = 0;
  const deadline = performance.now() + 60_000;
  while (!pattern.test(text)) {
    if (performance.now() > deadline) throw new Error(`no ${pattern} in the shell's output`);
    const read = await pyro.readShell({ ...ids, cursor, plain: true });
    text += read.output;
    cursor = read.next_cursor;
    reads += 1;
  }
  return { cursor, reads };
}

async function main() {
  const scratch = mkdtempSync(join(tmpdir(), "pyro-shell-bench-"));
  process.env.PYRO_HOME = join(scratch, "home");
  const pyro = new Pyro();
  const ws = await pyro.createWorkspace({ environment: "debian:12-base" });
  const workspace_id = ws.workspace_id;
  const opens: number[] = [];
  for (let i = 0; i < Math.min(RUNS, 10); i++) {
    const [ms, shell] = await timed(() => pyro.openShell({ workspace_id }));
    opens.push(ms);
    await pyro.closeShell({ workspace_id, shell_id: shell.shell_id });
  }
  const { shell_id } = await pyro.openShell({ workspace_id });
  const ids = { workspace_id, shell_id };
  let { cursor } = await readUntil(pyro, ids, 0, /[#$] $/);
  const roundTrips: number[] = [];
  const readsPerTrip: number[] = [];
  const writes: number[] = [];
  const idleReads: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const started = performance.now();
    const [writeMs] = await timed(() =>
      pyro.writeShell({ ...ids, input: `echo mark-${i}-$((1+1))` }),
    );
    const done = await readUntil(pyro, ids, cursor, new RegExp(`^mark-${i}-2$`, "m"));
    roundTrips.push(performance.now() - started);
    writes.push(writeMs);
    readsPerTrip.push(done.reads);
    cursor = done.cursor;
  }
  // Once the shell is quiet: what one read costs when there is nothing to return.
  cursor = (await pyro.readShell({ ...ids, cursor, wait_for_idle_ms: 500 })).next_cursor;
  for (let i = 0; i < RUNS; i++) {
    idleReads.push((await timed(() => pyro.readShell({ ...ids, cursor })))[0]);
  }
  await pyro.deleteWorkspace({ workspace_id });
  rmSync(scratch, { recursive: true, force: true });

  console.log(`shell open, median of ${opens.length}: ${median(opens).toFixed(1)} ms`);
  console.log(
    `shell write+read round trip (echo, read until its output), median of ${RUNS}: ${median(roundTrips).toFixed(1)} ms (median ${median(readsPerTrip)} reads)`,
  );
  console.log(
    `shell write alone: ${median(writes).toFixed(1)} ms; shell read with nothing new: ${median(idleReads).toFixed(1)} ms`,
  );
}

await main();
