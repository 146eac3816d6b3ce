/**
 * `npm run bench:workspace`: workspace operation costs, measured in one run. The seed is
 * a 1,000-file tree; exec overhead is the round trip minus the guest's own duration_ms.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Pyro } from "../src/index.js";
import { median, timed } from "./measure.js";

const RUNS = Number(process.env.BENCH_RUNS ?? 20);

function makeTree(root: string, files: number): void {
  for (let i = 0; i < files; i++) {
    const dir = join(root, `pkg${i % 20}`, `mod${i % 7}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `file${i}.txt`), `line one of ${i}\nline two\n`.repeat(5));
  }
}

async function main() {
  const scratch = mkdtempSync(join(tmpdir(), "pyro-ws-bench-"));
  process.env.PYRO_HOME = join(scratch, "home");
  const seed = join(scratch, "seed");
  makeTree(seed, 1000);
  const pyro = new Pyro();
  const [createMs, ws] = await timed(() =>
    pyro.createWorkspace({ environment: "debian:12-base", seed_path: seed }),
  );
  const id = ws.workspace_id;
  const execTotal: number[] = [];
  const execOverhead: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const [ms, result] = await timed(() =>
      pyro.execWorkspace({ workspace_id: id, command: ["true"] }),
    );
    execTotal.push(ms);
    execOverhead.push(ms - result.duration_ms);
  }
  const reads: number[] = [];
  const writes: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    writes.push(
      (
        await timed(() =>
          pyro.writeWorkspaceFile({
            workspace_id: id,
            path: "pkg0/mod0/file0.txt",
            text: `v${i}\n`,
          }),
        )
      )[0],
    );
    reads.push(
      (
        await timed(() => pyro.readWorkspaceFile({ workspace_id: id, path: "pkg0/mod0/file0.txt" }))
      )[0],
    );
  }
  const [diffMs, diff] = await timed(() => pyro.diffWorkspace({ workspace_id: id }));
  const [snapshotMs] = await timed(() =>
    pyro.createSnapshot({ workspace_id: id, snapshot_name: "bench" }),
  );
  const [resetMs] = await timed(() => pyro.resetWorkspace({ workspace_id: id, snapshot: "bench" }));
  await pyro.deleteWorkspace({ workspace_id: id });
  rmSync(scratch, { recursive: true, force: true });

  console.log(`workspace create, seeded with 1,000 files: ${createMs.toFixed(0)} ms`);
  console.log(
    `exec round trip (true), median of ${RUNS}: ${median(execTotal).toFixed(1)} ms; pyro overhead beyond the guest command: ${median(execOverhead).toFixed(1)} ms`,
  );
  console.log(
    `file write round trip: ${median(writes).toFixed(1)} ms; file read round trip: ${median(reads).toFixed(1)} ms`,
  );
  console.log(
    `diff of the 1,000-file tree (${diff.summary.total} change): ${diffMs.toFixed(0)} ms`,
  );
  console.log(
    `snapshot create: ${snapshotMs.toFixed(0)} ms; reset to it: ${resetMs.toFixed(0)} ms`,
  );
}

await main();
