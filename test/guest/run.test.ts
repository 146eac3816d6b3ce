import { afterEach, describe, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
import { SandboxRuntime } from "../../src/manager/runtime.js";
import { VmManager } from "../../src/manager/vms.js";
import { expectedAcceleration } from "../helpers/accel.js";
import { eventually, isolatedHome, processesMentioning, vmDirs } from "../helpers/guest.js";

const home = isolatedHome();
const pyro = new Pyro();

afterEach(async () => {
  // Every run must leave nothing behind: no state directory, no shim, no VMM.
  expect(vmDirs(home)).toEqual([]);
  expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
});

describe("pyro run through real VMs", () => {
  it("runs git inside debian:12 and returns its output", async () => {
    const r = await pyro.runInVm({ environment: "debian:12", command: ["git", "--version"] });
    expect(r.exit_code).toBe(0);
    expect(r.stdout).toMatch(/^git version 2\.39\.\d+/);
    expect(r.execution_mode).toBe("guest");
    expect(r.acceleration).toBe(expectedAcceleration());
    expect(r.timings.boot_ms).toBeGreaterThan(0);
    expect(r.vm_id).toMatch(/^vm_[0-9a-f]{12}$/);
  });

  it("keeps stdout and stderr apart and passes the exit code through", async () => {
    const r = await pyro.runInVm({
      environment: "debian:12-base",
      command: ["sh", "-c", "echo out; echo err >&2; exit 3"],
    });
    expect([r.exit_code, r.stdout, r.stderr]).toEqual([3, "out\n", "err\n"]);
  });

  it("runs as root in / with the default environment, on the VM's own hostname and clock", async () => {
    const r = await pyro.runInVm({
      environment: "debian:12-base",
      command: ["sh", "-c", 'echo "$HOME|$PATH"; pwd; id -u; hostname; date +%s'],
    });
    const [env, cwd, uid, hostname, epoch] = r.stdout.trim().split("\n");
    expect(env).toBe("/root|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    expect([cwd, uid]).toEqual(["/", "0"]);
    expect(hostname).toBe(r.vm_id.replace("_", "-"));
    expect(Math.abs(Number(epoch) - Date.now() / 1000)).toBeLessThan(120);
  });

  it("kills a command at its timeout and reports 124", async () => {
    const r = await pyro.runInVm({
      environment: "debian:12-base",
      command: ["sleep", "60"],
      timeout_seconds: 1,
    });
    expect(r.timed_out).toBe(true);
    expect(r.exit_code).toBe(124);
  });

  it("stops the command when the caller aborts (MCP cancellation)", async () => {
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 2_500);
    const r = await pyro.runInVm(
      { environment: "debian:12-base", command: ["sleep", "60"] },
      { signal: controller.signal },
    );
    expect(r.exit_code).toBe(137);
    expect(r.timed_out).toBe(false);
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it("truncates output larger than the bound", async () => {
    const r = await pyro.runInVm({
      environment: "debian:12-base",
      command: ["sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x"],
    });
    expect(r.stdout_truncated).toBe(true);
    expect(r.stdout.length).toBe(1 << 20);
    expect(r.exit_code).toBe(0);
  });

  it("exits 127 with the guest's message for a command that does not exist", async () => {
    const r = await pyro.runInVm({ environment: "debian:12-base", command: ["no-such-tool"] });
    expect(r.exit_code).toBe(127);
    expect(r.stderr).toMatch(/no-such-tool/);
  });

  it("runs four VMs at once: all four commands are running before any of them ends", async () => {
    // Each command says it started, then sleeps until the host releases it, which the host
    // does only once all four have said so. VMs run one after another would never get
    // there: the first ending on its own (or failing) releases everyone early, and the
    // order of events below shows it.
    const ids = [1, 2, 3, 4];
    const release = new AbortController();
    const running = new Set<number>();
    const events: string[] = [];
    const results = await Promise.all(
      ids.map((i) =>
        pyro
          .runInVm(
            {
              environment: "debian:12-base",
              command: ["sh", "-c", `echo ${i}; exec sleep 150`],
              timeout_seconds: 120,
            },
            {
              signal: release.signal,
              onStdout: () => {
                if (running.has(i)) return;
                running.add(i);
                events.push("started");
                if (running.size === ids.length) release.abort();
              },
            },
          )
          .finally(() => {
            events.push("ended");
            release.abort();
          }),
      ),
    );
    expect(events).toEqual([...ids.map(() => "started"), ...ids.map(() => "ended")]);
    // Ended by the host's release (killed, 137), not by their timeout or sleep running out.
    expect(results.map((r) => [r.exit_code, r.timed_out])).toEqual(ids.map(() => [137, false]));
    expect(results.map((r) => r.stdout)).toEqual(["1\n", "2\n", "3\n", "4\n"]);
    expect(new Set(results.map((r) => r.vm_id)).size).toBe(4);
  });

  it("reports a guest that cannot boot with its console lines, and cleans up", async () => {
    const broken = new VmManager(
      new SandboxRuntime({ extraKernelArgs: ["rdinit=/does-not-exist", "loglevel=7"] }),
    );
    const error = await broken
      .run({ environment: "debian:12-base", command: ["true"] })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "unavailable" });
    expect((error as Error).message).toMatch(/last console lines/);
  });
});

describe("bad input", () => {
  it("names the known environments for an unknown one", async () => {
    await expect(
      pyro.runInVm({ environment: "ubuntu:99", command: ["true"] }),
    ).rejects.toMatchObject({
      code: "not_found",
      message: expect.stringContaining("debian:12-base"),
    });
  });

  it("rejects out-of-range resources naming the field and range", async () => {
    await expect(
      pyro.runInVm({ environment: "debian:12", command: ["true"], vcpu_count: 999 }),
    ).rejects.toMatchObject({
      code: "invalid_argument",
      message: expect.stringMatching(/vcpu_count must be between 1 and \d+/),
    });
    await expect(
      pyro.runInVm({ environment: "debian:12", command: ["true"], mem_mib: 64 }),
    ).rejects.toMatchObject({
      code: "invalid_argument",
      message: expect.stringContaining("mem_mib"),
    });
    await expect(
      pyro.runInVm({ environment: "debian:12", command: ["true"], timeout_seconds: 0 }),
    ).rejects.toMatchObject({
      code: "invalid_argument",
      message: expect.stringContaining("timeout_seconds"),
    });
    await expect(pyro.runInVm({ environment: "debian:12", command: [] })).rejects.toMatchObject({
      code: "invalid_argument",
    });
  });

  it("refuses features that are not built yet instead of ignoring them", async () => {
    await expect(
      pyro.runInVm({ environment: "debian:12", command: ["true"], allow_host_compat: true }),
    ).rejects.toMatchObject({ code: "unavailable" });
  });
});
