import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pyro, type PyroError } from "../../src/index.js";
import { base64Forms } from "../../src/secrets/forms.js";
import { filesContaining } from "../helpers/secrets.js";
import { HOST_ENVIRONMENT, hostTierHome, scratchDir } from "../helpers/host.js";

// Secrets through the real manager, shim and agent (host-process driver): what reaches a
// process, what comes back, and what is kept on the host. One workspace for the file.
const home = hostTierHome();
const pyro = new Pyro();
const TOKEN = `tok-${randomBytes(12).toString("hex")}`;
const FILE_VALUE = `file-${randomBytes(12).toString("hex")}\n`;
let id = "";

const errorOf = async (promise: Promise<unknown>) =>
  (await promise.then(
    () => undefined,
    (error: unknown) => error,
  )) as PyroError;

const leaks = (text: string) => {
  const forms = [TOKEN, FILE_VALUE.trimEnd()].flatMap((v) => [
    v,
    ...base64Forms(Buffer.from(v)).map(String),
  ]);
  return forms.filter((form) => text.replace(/\n/g, "").includes(form) || text.includes(form));
};

/** Polls an async check until it holds or 15 s pass. */
async function until(check: () => Promise<boolean>): Promise<boolean> {
  for (const deadline = Date.now() + 15_000; Date.now() < deadline;) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return check();
}

const exec = (command: string, secret_env: Record<string, string> = {}) =>
  pyro.execWorkspace({ workspace_id: id, command: ["sh", "-c", command], secret_env });

beforeAll(async () => {
  const file = join(scratchDir(), "token.txt");
  writeFileSync(file, FILE_VALUE);
  const created = await pyro.createWorkspace({
    environment: HOST_ENVIRONMENT,
    secrets: [
      { name: "TOKEN", value: TOKEN },
      { name: "FILE_TOKEN", file_path: file },
    ],
  });
  id = created.workspace_id;
});

afterAll(async () => {
  if (id) await pyro.deleteWorkspace({ workspace_id: id }).catch(() => {});
});

describe("workspace secrets (host-process driver)", () => {
  it("records names and source kinds only; values live in a 0600 file in 0700 dirs", async () => {
    const record = await pyro.statusWorkspace({ workspace_id: id });
    expect(record.secrets).toEqual([
      { name: "TOKEN", source: "value" },
      { name: "FILE_TOKEN", source: "file" },
    ]);
    expect(leaks(JSON.stringify(record))).toEqual([]);
    const store = join(home, "secrets", id);
    expect(statSync(join(home, "secrets")).mode & 0o777).toBe(0o700);
    expect(statSync(store).mode & 0o777).toBe(0o700);
    expect(statSync(join(store, "values.json")).mode & 0o777).toBe(0o600);
  });

  it("puts each secret in the guest's /run/pyro-secrets, mode 0600", () => {
    const dir = join(home, "workspaces", id, "host-root", "run", "pyro-secrets");
    expect(readFileSync(join(dir, "TOKEN"), "utf8")).toBe(TOKEN);
    expect(readFileSync(join(dir, "FILE_TOKEN"), "utf8")).toBe(FILE_VALUE);
    expect(statSync(join(dir, "TOKEN")).mode & 0o777).toBe(0o600);
  });

  it("maps a secret into a command's environment only when asked, and redacts it", async () => {
    expect(await exec('printf "[%s]" "$TOKEN"')).toMatchObject({ stdout: "[]" });
    const mapped = await exec('echo "$API_KEY"; echo "$FILE_TOKEN" >&2', {
      API_KEY: "TOKEN",
      FILE_TOKEN: "FILE_TOKEN",
    });
    expect(mapped).toMatchObject({
      exit_code: 0,
      stdout: "[REDACTED:TOKEN]\n",
      stderr: "[REDACTED:FILE_TOKEN]\n",
    });
    // The process really had the values: their length and a digest computed in the guest.
    const length = await exec('printf %s "$T" | wc -c', { T: "TOKEN" });
    expect(length.stdout.trim()).toBe(String(TOKEN.length));
  });

  it("redacts base64 of the environment and a value written in two parts", async () => {
    const encoded = await exec("printenv | base64", { TOKEN: "TOKEN" });
    expect(leaks(encoded.stdout)).toEqual([]);
    expect(encoded.stdout).toContain("[REDACTED:TOKEN]");
    const split = await exec(
      'head=${T%????????????}; printf %s "$head"; sleep 0.3; printf "%s\\n" "${T#"$head"}"',
      { T: "TOKEN" },
    );
    expect(split.stdout).toBe("[REDACTED:TOKEN]\n");
  });

  it("keeps a value given on the command line out of the result, the journal and the record", async () => {
    const result = await pyro.execWorkspace({
      workspace_id: id,
      command: ["sh", "-c", `echo ${TOKEN} >&2; exit 3`],
    });
    expect(result).toMatchObject({ exit_code: 3, stderr: "[REDACTED:TOKEN]\n" });
    expect(result.command).toEqual(["sh", "-c", "echo [REDACTED:TOKEN] >&2; exit 3"]);
    const logs = await pyro.logsWorkspace({ workspace_id: id });
    expect(leaks(JSON.stringify(logs))).toEqual([]);
    expect(JSON.stringify(logs)).toContain("[REDACTED:TOKEN]");
    const record = await pyro.statusWorkspace({ workspace_id: id });
    expect(record.last_command?.command).toEqual(result.command);
  });

  it("refuses an unknown secret in secret_env before any guest work", async () => {
    const before = (await pyro.statusWorkspace({ workspace_id: id })).command_count;
    const error = await errorOf(exec("true", { X: "NOPE" }));
    expect(error).toMatchObject({ code: "invalid_argument" });
    expect(error.message).toMatch(/unknown secret "NOPE".*TOKEN, FILE_TOKEN/);
    expect((await pyro.statusWorkspace({ workspace_id: id })).command_count).toBe(before);
    const service = await errorOf(
      pyro.startService({
        workspace_id: id,
        service_name: "nope",
        command: ["true"],
        secret_env: { X: "NOPE" },
      }),
    );
    expect(service.code).toBe("invalid_argument");
    const shell = await errorOf(pyro.openShell({ workspace_id: id, secret_env: { X: "NOPE" } }));
    expect(shell.code).toBe("invalid_argument");
  });

  it("gives a service its secret and redacts its logs", async () => {
    await pyro.startService({
      workspace_id: id,
      service_name: "svc",
      command: ["sh", "-c", 'echo "svc $S"; echo "err $S" >&2; exec sleep 60'],
      secret_env: { S: "TOKEN" },
    });
    expect(
      await until(async () => {
        const logs = await pyro.logsService({ workspace_id: id, service_name: "svc" });
        return logs.stdout === "svc [REDACTED:TOKEN]\n" && logs.stderr === "err [REDACTED:TOKEN]\n";
      }),
    ).toBe(true);
    await pyro.stopService({ workspace_id: id, service_name: "svc" });
  });

  it("redacts a failed service start's error, which quotes its logs", async () => {
    const error = await errorOf(
      pyro.startService({
        workspace_id: id,
        service_name: "bad",
        command: ["sh", "-c", 'echo "failing with $S"; exit 4'],
        secret_env: { S: "TOKEN" },
        readiness: { type: "file", path: "/workspace/never" },
        ready_timeout_seconds: 5,
      }),
    );
    expect(error.message).toContain("failing with [REDACTED:TOKEN]");
    expect(leaks(JSON.stringify({ message: error.message, details: error.details }))).toEqual([]);
  });

  it("gives a shell its secret and redacts it, also when read between two writes", async () => {
    const shell = await pyro.openShell({ workspace_id: id, secret_env: { T: "TOKEN" } });
    const shell_id = shell.shell_id;
    let cursor = 0;
    let seen = "";
    const readAll = async () => {
      const read = await pyro.readShell({
        workspace_id: id,
        shell_id,
        cursor,
        wait_for_idle_ms: 300,
      });
      cursor = read.next_cursor;
      seen += read.output;
      return read;
    };
    await pyro.writeShell({
      workspace_id: id,
      shell_id,
      input: 'h=${T%??????????}; printf "<%s" "$h"; sleep 2; printf "%s>\\n" "${T#"$h"}"',
    });
    // Read while only the first part is out: it must be held back, not shown.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await readAll();
    expect(leaks(seen)).toEqual([]);
    expect(seen).not.toContain(TOKEN.slice(0, 10));
    expect(await until(async () => (await readAll(), seen.includes("<[REDACTED:TOKEN]>")))).toBe(
      true,
    );
    expect(leaks(seen)).toEqual([]);
    await pyro.closeShell({ workspace_id: id, shell_id });
  });

  it("keeps every value out of every file under PYRO_HOME but the store (and the guest's own tree)", () => {
    const values = [TOKEN, FILE_VALUE.trimEnd()];
    const patterns = values.flatMap((v) => [v, ...base64Forms(Buffer.from(v)).map(String)]);
    // host-root is the guest's own filesystem under this driver (in a VM: its disk and RAM).
    const guestTree = join(home, "workspaces", id, "host-root");
    expect(filesContaining(home, patterns, [guestTree])).toEqual([
      join(home, "secrets", id, "values.json"),
    ]);
  });

  it("refuses bad secrets with invalid_argument and creates nothing", async () => {
    const before = readdirSync(join(home, "workspaces")).sort();
    const dir = scratchDir();
    mkdirSync(join(dir, "a-directory"));
    writeFileSync(join(dir, "big"), Buffer.alloc(64 * 1024 + 1, 0x61));
    const cases = [
      [
        [
          { name: "A", value: "x" },
          { name: "A", value: "y" },
        ],
        /given twice/,
      ],
      [[{ name: "A", file_path: join(dir, "missing") }], /does not exist/],
      [[{ name: "A", file_path: join(dir, "a-directory") }], /not a regular file/],
      [[{ name: "A", file_path: join(dir, "big") }], /larger than 65536/],
      [[{ name: "bad name", value: "x" }], /not valid/],
      [[{ name: "A", value: "" }], /empty/],
    ] as const;
    for (const [secrets, message] of cases) {
      const error = await errorOf(
        pyro.createWorkspace({ environment: HOST_ENVIRONMENT, secrets: [...secrets] }),
      );
      expect(error, JSON.stringify(secrets)).toMatchObject({ code: "invalid_argument" });
      expect(error.message).toMatch(message);
    }
    expect(readdirSync(join(home, "workspaces")).sort()).toEqual(before);
    expect(readdirSync(join(home, "secrets"))).toEqual([id]);
  });

  it("puts the secrets back after a stop and start, and delete removes the store", async () => {
    await pyro.stopWorkspace({ workspace_id: id });
    const guestFile = join(home, "workspaces", id, "host-root", "run", "pyro-secrets", "TOKEN");
    writeFileSync(guestFile, "stale");
    await pyro.startWorkspace({ workspace_id: id });
    expect(readFileSync(guestFile, "utf8")).toBe(TOKEN);
    await pyro.deleteWorkspace({ workspace_id: id });
    expect(existsSync(join(home, "secrets", id))).toBe(false);
    id = "";
  });
});
