/**
 * Service operation costs, measured in one run on one workspace:
 *
 *   npm run bench:service          (BENCH_RUNS=10 by default)
 *
 * "start with readiness" is the whole call a user waits for: the agent starting
 * `python3 -m http.server` plus the HTTP readiness checks (every 100 ms) until it answers.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Pyro } from "../src/index.js";
import { median, timed } from "./measure.js";

const RUNS = Number(process.env.BENCH_RUNS ?? 10);

async function main() {
  const scratch = mkdtempSync(join(tmpdir(), "pyro-service-bench-"));
  process.env.PYRO_HOME = join(scratch, "home");
  const pyro = new Pyro();
  const { workspace_id } = await pyro.createWorkspace({ environment: "debian:12-build" });
  const web = { workspace_id, service_name: "web" };
  const times = {
    ready: [] as number[],
    file: [] as number[],
    plain: [] as number[],
    stop: [] as number[],
  };
  const times2 = { list: [] as number[], logs: [] as number[] };
  try {
    for (let i = 0; i < RUNS; i++) {
      const [readyMs] = await timed(() =>
        pyro.startService({
          ...web,
          command: ["python3", "-m", "http.server", "8000", "--bind", "127.0.0.1"],
          readiness: { type: "http", url: "http://127.0.0.1:8000/" },
          ready_interval_ms: 100,
        }),
      );
      times.ready.push(readyMs);
      times2.list.push((await timed(() => pyro.listServices({ workspace_id })))[0]);
      times2.logs.push((await timed(() => pyro.logsService(web)))[0]);
      times.stop.push((await timed(() => pyro.stopService(web)))[0]);
      const [plainMs] = await timed(() =>
        pyro.startService({ ...web, command: ["sleep", "1000"] }),
      );
      times.plain.push(plainMs);
      await pyro.stopService(web);
      const [fileMs] = await timed(() =>
        pyro.startService({
          ...web,
          command: ["sh", "-c", `touch ready-${i}; exec sleep 1000`],
          readiness: { type: "file", path: `ready-${i}` },
          ready_interval_ms: 100,
        }),
      );
      times.file.push(fileMs);
      await pyro.stopService(web);
    }
  } finally {
    await pyro.deleteWorkspace({ workspace_id }).catch(() => {});
    rmSync(scratch, { recursive: true, force: true });
  }
  const ms = (xs: number[]) => `${median(xs).toFixed(0)} ms`;
  console.log(`medians of ${RUNS} runs:`);
  console.log(`service start with HTTP readiness (python3 http.server): ${ms(times.ready)}`);
  console.log(`service start with file readiness (sh touches it at once): ${ms(times.file)}`);
  console.log(`service start without readiness (sleep): ${ms(times.plain)}`);
  console.log(`service stop (TERM, exits at once): ${ms(times.stop)}`);
  console.log(`service list: ${ms(times2.list)}; service logs: ${ms(times2.logs)}`);
}

await main();
