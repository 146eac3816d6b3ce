import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
import { base64Forms } from "../../src/secrets/forms.js";
import { runCli } from "../helpers/cli.js";
import { eventually, isolatedHome, processesMentioning } from "../helpers/guest.js";
import { filesContaining } from "../helpers/secrets.js";
import { tempDir } from "../helpers/temp.js";

// What only a real guest can show about secrets: the tmpfs under /run, the modes, a
// process's environment, and that no disk, archive, process list or file under PYRO_HOME
// (but the store) ever holds a value. One workspace for the file, created by the CLI.
const home = isolatedHome();
const pyro = new Pyro();
const scratch = tempDir("pyro-secrets-guest-");
const TOKEN = `tok-${randomBytes(12).toString("hex")}`;
let id = "";

const patterns = [TOKEN, ...base64Forms(Buffer.from(TOKEN)).map(String)];
const leaked = (text: string) =>
  patterns.filter((p) => text.includes(p) || text.replace(/\n/g, "").includes(p));

const sh = (script: string, secret_env: Record<string, string> = {}) =>
  pyro.execWorkspace({ workspace_id: id, command: ["sh", "-c", script], secret_env });

/** Every process's argv and environment on the host (we run as root: all of them). */
function hostProcessText(): string {
  const parts: string[] = [];
  for (const pid of readdirSync("/proc").filter((e) => /^\d+$/.test(e))) {
    if (Number(pid) === process.pid) continue;
    for (const file of ["cmdline", "environ"]) {
      try {
        parts.push(readFileSync(`/proc/${pid}/${file}`, "latin1"));
      } catch {
        // gone, or not ours to read
      }
    }
  }
  return parts.join("\n");
}

beforeAll(async () => {
  const file = join(scratch, "token");
  writeFileSync(file, `${TOKEN}\n`);
  const created = await runCli([
    "workspace",
    "create",
    "debian:12-base",
    "--secret-file",
    `TOKEN=${file}`,
    "--secret",
    "OTHER=not-so-secret-value",
    "--json",
  ]);
  expect(created.code, created.stderr).toBe(0);
  expect(leaked(created.stdout + created.stderr)).toEqual([]);
  const record = JSON.parse(created.stdout) as { workspace_id: string; secrets: unknown };
  id = record.workspace_id;
  expect(record.secrets).toEqual([
    { name: "OTHER", source: "value" },
    { name: "TOKEN", source: "file" },
  ]);
});

afterAll(async () => {
  if (id) await pyro.deleteWorkspace({ workspace_id: id }).catch(() => {});
  expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
});

describe("workspace secrets on a real VM", () => {
  it("live in the guest only on a tmpfs, root-only", async () => {
    const stat = await sh(
      "stat -f -c %T /run/pyro-secrets; stat -c '%a %U' /run/pyro-secrets /run/pyro-secrets/TOKEN",
    );
    expect(stat.stdout).toBe("tmpfs\n700 root\n600 root\n");
    expect((await sh("wc -c < /run/pyro-secrets/TOKEN")).stdout.trim()).toBe(
      String(TOKEN.length + 1),
    );
  });

  it("reach a command's environment only when mapped, and come back redacted", async () => {
    expect((await sh('printf "[%s]" "$TOKEN"')).stdout).toBe("[]");
    expect((await sh('echo "$TOKEN"', { TOKEN: "TOKEN" })).stdout).toBe("[REDACTED:TOKEN]\n");
    const encoded = await sh("printenv | base64", { TOKEN: "TOKEN" });
    expect(encoded.exit_code).toBe(0);
    expect(leaked(encoded.stdout)).toEqual([]);
    expect(encoded.stdout).toContain("[REDACTED:TOKEN]");
    const split = await sh(
      'h=${TOKEN%??????????}; printf %s "$h"; sleep 0.5; printf "%s\\n" "${TOKEN#"$h"}"',
      { TOKEN: "TOKEN" },
    );
    expect(split.stdout).toBe("[REDACTED:TOKEN]\n");
    const cli = await runCli([
      "workspace",
      "exec",
      id,
      "--secret-env",
      "TOKEN=T",
      "--",
      "sh",
      "-c",
      "echo $T",
    ]);
    // Unquoted, the value loses its newline and echo adds one: the whole value again.
    expect(cli).toMatchObject({ code: 0, stdout: "[REDACTED:TOKEN]" });
    const unknown = await runCli(["workspace", "exec", id, "--secret-env", "NOPE", "--", "true"]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/unknown secret "NOPE"/);
  });

  it("stay out of the host's process list while a service holds one", async () => {
    await pyro.startService({
      workspace_id: id,
      service_name: "holder",
      command: ["sh", "-c", 'echo "has $TOKEN"; exec sleep 120'],
      secret_env: { TOKEN: "TOKEN" },
    });
    // Once it has printed, the service surely runs with the value in its environment.
    let stdout = "";
    for (const deadline = Date.now() + 30_000; Date.now() < deadline && !stdout;) {
      stdout = (await pyro.logsService({ workspace_id: id, service_name: "holder" })).stdout;
      if (!stdout) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(stdout).toBe("has [REDACTED:TOKEN]\n");
    expect(leaked(hostProcessText())).toEqual([]);
    await pyro.stopService({ workspace_id: id, service_name: "holder" });
  });

  it("stay out of diff, export and snapshot archives, even after a copy in /run", async () => {
    await sh("echo changed > file.txt; cp /run/pyro-secrets/TOKEN /run/copy");
    const diff = await pyro.diffWorkspace({ workspace_id: id });
    expect(diff.entries.map((e) => e.path)).toEqual(["file.txt"]);
    expect(leaked(JSON.stringify(diff))).toEqual([]);
    const output = join(scratch, "export");
    await pyro.exportWorkspace({ workspace_id: id, path: ".", output_path: output });
    await pyro.createSnapshot({ workspace_id: id, snapshot_name: "s1" });
    expect(filesContaining(output, patterns)).toEqual([]);
  });

  it("come back after reset and after stop/start, and no disk under PYRO_HOME holds one", async () => {
    await pyro.resetWorkspace({ workspace_id: id });
    const afterReset = await sh("cat /run/pyro-secrets/TOKEN | wc -c; ls /run/copy 2>&1 | wc -l");
    expect(afterReset.stdout).toBe(`${TOKEN.length + 1}\n1\n`);
    await pyro.stopWorkspace({ workspace_id: id });
    // Stopped: the state disk, snapshots, journal and records are all there is.
    const store = join(home, "secrets", id, "values.json");
    expect(filesContaining(home, patterns)).toEqual([store]);
    await pyro.startWorkspace({ workspace_id: id });
    expect(
      (await sh('printf %s "$T" | cmp - /run/pyro-secrets/TOKEN', { T: "TOKEN" })).exit_code,
    ).toBe(0);
    const logs = await pyro.logsWorkspace({ workspace_id: id });
    expect(leaked(JSON.stringify(logs))).toEqual([]);
  });
});
