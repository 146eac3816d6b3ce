import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { expectedAcceleration } from "../helpers/accel.js";
import { CLI_ENTRY, runCli } from "../helpers/cli.js";
import { eventually, isolatedHome, processesMentioning, vmDirs } from "../helpers/guest.js";

const home = isolatedHome();

describe("pyro CLI as a subprocess", () => {
  it("prints the git version from inside a VM and exits 0", async () => {
    const r = await runCli(["run", "debian:12", "--", "git", "--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^git version 2\.39\.\d+\n$/);
    expect(r.stderr).toMatch(/^\[run\] phase=boot vm_id=vm_[0-9a-f]{12} environment=debian:12$/m);
    expect(vmDirs(home)).toEqual([]);
  });

  it("exits with the guest command's status", async () => {
    const r = await runCli(["run", "debian:12-base", "--", "sh", "-c", "echo oops >&2; exit 7"]);
    expect(r.code).toBe(7);
    expect(r.stderr).toContain("oops\n");
  });

  it("prints the contract payload with --json, keys sorted", async () => {
    const r = await runCli([
      "run",
      "debian:12-base",
      "--json",
      "--mem-mib",
      "256",
      "--",
      "echo",
      "hi",
    ]);
    expect(r.code).toBe(0);
    const payload = JSON.parse(r.stdout);
    expect(payload).toMatchObject({ exit_code: 0, stdout: "hi\n", stderr: "", timed_out: false });
    for (const key of ["vmm_start_ms", "boot_ms", "agent_ready_ms", "exec_ms", "teardown_ms"]) {
      expect(payload.timings[key]).toBeTypeOf("number");
    }
    expect(Object.keys(payload)).toEqual([...Object.keys(payload)].sort());
    expect(r.stdout).toContain('\n  "acceleration"');
    expect(payload.acceleration).toBe(expectedAcceleration());
  });

  it("exits 124 on timeout", async () => {
    const r = await runCli([
      "run",
      "debian:12-base",
      "--timeout-seconds",
      "1",
      "--",
      "sleep",
      "30",
    ]);
    expect(r.code).toBe(124);
  });

  it("exits 125 with a clear message when pyro itself fails", async () => {
    const noCommand = await runCli(["run", "debian:12"]);
    expect(noCommand.code).toBe(125);
    expect(noCommand.stderr).toMatch(/no command given.*pyro run ENV \[flags\] -- CMD/);
    const unknown = await runCli(["run", "nope:1", "--", "true"]);
    expect(unknown.code).toBe(125);
    expect(unknown.stderr).toContain("[not_found]");
    expect(unknown.stderr).toContain("debian:12-build");
    const badFlag = await runCli(["run", "debian:12", "--vcpu-count", "two", "--", "true"]);
    expect(badFlag.code).toBe(125);
    expect(badFlag.stderr).toContain("--vcpu-count needs a whole number");
  });

  it("leaves no VM behind when the client is killed with SIGKILL mid-run", async () => {
    const child = spawn(
      process.execPath,
      [CLI_ENTRY, "run", "debian:12-base", "--", "sleep", "120"],
      {
        stdio: "ignore",
      },
    );
    const ready = await eventually(() => {
      const [dir] = vmDirs(home);
      if (!dir) return false;
      try {
        return (
          JSON.parse(readFileSync(join(home, "vms", dir, "shim.json"), "utf8")).state === "ready"
        );
      } catch {
        return false;
      }
    }, 60_000);
    expect(ready).toBe(true);
    child.kill("SIGKILL");
    expect(await eventually(() => vmDirs(home).length === 0, 20_000)).toBe(true);
    expect(await eventually(() => processesMentioning(home).length === 0, 20_000)).toBe(true);
  });

  it("lists environments and reports the host with doctor", async () => {
    const list = await runCli(["env", "list", "--json"]);
    expect(list.code).toBe(0);
    const names = JSON.parse(list.stdout).environments.map((e: { name: string }) => e.name);
    expect(names).toEqual(["debian:12", "debian:12-base", "debian:12-build"]);
    const doctor = await runCli(["doctor", "--json"]);
    const report = JSON.parse(doctor.stdout);
    expect(report.checks.map((c: { name: string }) => c.name)).toEqual(
      expect.arrayContaining([
        "qemu",
        "mkfs.ext4",
        "mmdebstrap",
        "gcc",
        "cpio",
        "guest kernel",
        "acceleration",
      ]),
    );
    // One line per network policy saying what it needs; this host has QEMU with slirp.
    const network = (report.checks as { name: string; status: string; detail: string }[]).filter(
      (c) => c.name.startsWith("network: "),
    );
    expect(network.map((c) => [c.name, c.status])).toEqual([
      ["network: off", "pass"],
      ["network: egress", "pass"],
      ["network: egress+published-ports", "pass"],
      ["network: allowed_domains", "pass"],
    ]);
    expect(network[1]!.detail).toMatch(/filter-redirector/);
    expect(report.acceleration.mode).toBe(expectedAcceleration());
    expect(doctor.code).toBe(report.ok ? 0 : 1);
  });

  it("prints an error that quotes control characters with them escaped", async () => {
    const r = await runCli(["env", "inspect", "nope\x1b]0;pwned\x07\x1b[2J:1"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      '[not_found]: unknown environment "nope\\x1b]0;pwned\\x07\\x1b[2J:1"',
    );
    expect(r.stderr).not.toContain("\x1b");
    expect(r.stderr).not.toContain("\x07");
  });

  it("answers --version and rejects unknown commands with exit 2", async () => {
    const version = await runCli(["--version"]);
    expect(version.stdout.trim()).toBe(JSON.parse(readFileSync("package.json", "utf8")).version);
    expect((await runCli(["frobnicate"])).code).toBe(2);
  });
});
