import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pyro } from "../../src/sdk/pyro.js";
import { runCli } from "../helpers/cli.js";
import { eventually, isolatedHome, processesMentioning } from "../helpers/guest.js";

const home = isolatedHome();

async function ok(args: string[]): Promise<string> {
  const result = await runCli(args);
  expect(result.code, `pyro ${args.join(" ")}\n${result.stderr}`).toBe(0);
  return result.stdout;
}

/**
 * A table's rows keyed by header. Columns are two or more spaces apart and no cell here
 * holds two spaces in a row; each left-aligned cell must start right under its header.
 */
function rowsOf(table: string, rightAligned: string[] = []): Record<string, string>[] {
  const [header = "", ...lines] = table.trimEnd().split("\n");
  const names = header.split(/ {2,}/);
  return lines.map((line) => {
    const cells = line.split(/ {2,}/).filter((cell, i) => cell !== "" || i > 0);
    expect(cells.length, line).toBe(names.length);
    names.forEach((name, i) => {
      if (!rightAligned.includes(name)) {
        expect(line.slice(header.indexOf(name)).startsWith(cells[i]!), `${name} in ${line}`).toBe(
          true,
        );
      }
    });
    return Object.fromEntries(names.map((name, i) => [name, cells[i]!] as const));
  });
}

/**
 * One real workspace with a snapshot and a service, listed by the built CLI: each list
 * command prints an aligned table a person scans, and `--json` the SDK's own payload.
 */
describe("list commands as tables", () => {
  let id = "";
  beforeAll(async () => {
    const create = ["workspace", "create", "debian:12-base", "--mem-mib", "512"];
    id = (await ok([...create, "--name", "tables", "--label", "topic=ui", "--id-only"])).trim();
    await ok(["workspace", "snapshot", "create", id, "first"]);
    await ok(["workspace", "service", "start", id, "sleeper", "--", "sleep", "600"]);
  });
  afterAll(async () => {
    if (id) await runCli(["workspace", "delete", id]);
    expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
  });

  it("workspace list: one aligned row per workspace, --json as the SDK returns it", async () => {
    const table = await ok(["workspace", "list"]);
    expect(table.split("\n")[0]).toMatch(
      /^ID +NAME +STATE +ENVIRONMENT +NETWORK +LAST ACTIVE +LABELS$/,
    );
    expect(rowsOf(table)).toEqual([
      {
        ID: id,
        NAME: "tables",
        STATE: "started",
        ENVIRONMENT: "debian:12-base",
        NETWORK: "off",
        "LAST ACTIVE": expect.stringMatching(/ago|just now/),
        LABELS: "topic=ui",
      },
    ]);
    const json = JSON.parse(await ok(["workspace", "list", "--json"]));
    const sdk = await new Pyro().listWorkspaces();
    expect(json.workspaces.map((w: { workspace_id: string }) => w.workspace_id)).toEqual([id]);
    expect(Object.keys(json.workspaces[0]).sort()).toEqual(Object.keys(sdk.workspaces[0]!).sort());
  });

  it("snapshot list and service list: aligned rows with the columns a person scans", async () => {
    const snapshots = rowsOf(await ok(["workspace", "snapshot", "list", id]), ["SIZE"]);
    expect(snapshots.map((s) => [s.NAME, s.KIND])).toEqual([
      ["baseline", "baseline"],
      ["first", "named"],
    ]);
    for (const s of snapshots) expect(s.SIZE).toMatch(/^\d+(\.\d)? (B|KiB|MiB)$/);

    const services = rowsOf(await ok(["workspace", "service", "list", id]), ["PID"]);
    expect(services).toEqual([
      {
        NAME: "sleeper",
        STATE: "running",
        PID: expect.stringMatching(/^\d+$/),
        EXIT: "-",
        PORTS: "-",
        COMMAND: "sleep 600",
      },
    ]);
    const json = JSON.parse(await ok(["workspace", "service", "list", id, "--json"]));
    expect(json).toMatchObject({ workspace_id: id, services: [{ service_name: "sleeper" }] });
  });

  it("env list: a table of environments with whether each is built", async () => {
    const environments = rowsOf(await ok(["env", "list"]), ["SIZE"]);
    expect(environments.find((e) => e.NAME === "debian:12-base")).toMatchObject({ BUILT: "yes" });
    expect(environments.map((e) => e.NAME)).toEqual(
      expect.arrayContaining(["debian:12", "debian:12-base", "debian:12-build"]),
    );
  });
});
