import { readFileSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
import type { RunResultValue } from "../../src/contract/vm.js";
import { templateIsCurrent } from "../../src/manager/environments.js";
import {
  templateFiles,
  listTemplates,
  type TemplateManifest,
} from "../../src/vmstate/templates.js";
import { eventually, isolatedHome, processesMentioning, vmDirs } from "../helpers/guest.js";
import { runCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/temp.js";

// Warm boots through the SDK on real VMs. The template cache is this file's own
// (PYRO_TEMPLATE_DIR), so breaking templates here never touches the shared cache; the
// kernel, agent and environments stay shared.
const home = isolatedHome();
process.env.PYRO_TEMPLATE_DIR = tempDir("pyro-templates-");

const ENV = "debian:12-base";
const pyro = new Pyro();
const run = (command: string, options: { cold?: boolean } = {}) =>
  pyro.runInVm({ environment: ENV, command: ["sh", "-c", command], mem_mib: 256, ...options });

afterEach(async () => {
  expect(vmDirs(home)).toEqual([]);
  expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
});

/** The one template of a kind: `late` serves `pyro run` (fresh disks), `early` workspaces. */
async function onlyTemplate(
  kind: "early" | "late" = "late",
): Promise<{ key: string; manifest: TemplateManifest }> {
  const entries = await listTemplates();
  expect(entries.map((e) => e.key).filter((k) => k.startsWith("."))).toEqual([]);
  const ofKind = entries.filter((e) => e.manifest?.inputs.kind === kind);
  expect(ofKind).toHaveLength(1);
  return { key: ofKind[0]!.key, manifest: ofKind[0]!.manifest! };
}

describe("warm boots from memory templates", () => {
  it("racing first runs (two pyro processes) build one template, and both restore from it", async () => {
    const cli = (word: string) =>
      runCli(["run", ENV, "--mem-mib", "256", "--json", "--", "echo", word]);
    const [a, b] = await Promise.all([cli("a"), cli("b")]);
    const [ra, rb] = [a, b].map((r) => JSON.parse(r.stdout) as RunResultValue);
    expect([ra!.stdout, rb!.stdout]).toEqual(["a\n", "b\n"]);
    expect([ra!.boot_mode, rb!.boot_mode]).toEqual(["warm", "warm"]);
    const builds = [a, b].filter((r) => r.stderr.includes("[template] phase=build"));
    expect(builds).toHaveLength(1);
    await onlyTemplate();
    console.log(`template build: ${Math.max(ra!.timings.template_ms, rb!.timings.template_ms)} ms`);
  });

  it("env inspect lists the template as current; one built from another kernel is not", async () => {
    const { manifest } = await onlyTemplate();
    const inspected = await pyro.inspectEnvironment({ environment: ENV });
    expect(inspected.templates).toMatchObject([
      { kind: "late", vcpu_count: 1, mem_mib: 256, network: false, current: true, failure: null },
    ]);
    expect(await templateIsCurrent(manifest)).toBe(true);
    const otherKernel = { ...manifest.inputs.kernel, key: "6.1.0-other" };
    expect(
      await templateIsCurrent({ ...manifest, inputs: { ...manifest.inputs, kernel: otherKernel } }),
    ).toBe(false);
  });

  it("warm and cold runs give the same output, exit code, hostname and clock", async () => {
    const command =
      "cat /etc/debian_version; ls /; hostname; date +%s; echo err >&2; touch /root/x; exit 3";
    const warm = await run(command);
    const cold = await run(command, { cold: true });
    expect([warm.boot_mode, warm.cold_reason]).toEqual(["warm", null]);
    expect(cold.boot_mode).toBe("cold");
    expect(cold.cold_reason).toMatch(/--cold/);
    const [warmLines, coldLines] = [warm, cold].map((r) => r.stdout.trim().split("\n"));
    const hostnameAt = warmLines!.length - 2;
    expect(warmLines!.slice(0, hostnameAt)).toEqual(coldLines!.slice(0, hostnameAt));
    expect(warmLines![hostnameAt]).toBe(warm.vm_id.replace("_", "-"));
    expect(coldLines![hostnameAt]).toBe(cold.vm_id.replace("_", "-"));
    for (const r of [warm, cold]) {
      expect(Math.abs(Number(r.stdout.trim().split("\n").at(-1)) - Date.now() / 1000)).toBeLessThan(
        120,
      );
      expect([r.exit_code, r.stderr]).toEqual([3, "err\n"]);
    }
    expect(warm.timings.restore_ms).toBeGreaterThan(0);
    expect(cold.timings.restore_ms).toBe(0);
    console.log(
      `agent ready: warm ${warm.timings.agent_ready_ms} ms (restore ${warm.timings.restore_ms}), ` +
        `cold ${cold.timings.agent_ready_ms} ms`,
    );
  });

  it("two warm clones of one template draw different random numbers", async () => {
    const command = "cat /proc/sys/kernel/random/uuid; od -An -N16 /dev/urandom";
    const [a, b] = [await run(command), await run(command)];
    expect([a.boot_mode, b.boot_mode]).toEqual(["warm", "warm"]);
    const [uuidA, bytesA] = a.stdout.trim().split("\n");
    const [uuidB, bytesB] = b.stdout.trim().split("\n");
    expect(uuidA).toMatch(/^[0-9a-f-]{36}$/);
    expect(uuidA).not.toBe(uuidB);
    expect(bytesA).not.toBe(bytesB);
  });

  it("one template fits every disk: a seeded workspace is created and restarted warm", async () => {
    const seed = tempDir("pyro-templates-seed-");
    writeFileSync(join(seed, "seeded.txt"), "from the seed\n");
    const created = await pyro.createWorkspace({ environment: ENV, mem_mib: 256, seed_path: seed });
    const id = created.workspace_id;
    try {
      expect([created.state, created.boot_mode, created.cold_reason]).toEqual([
        "started",
        "warm",
        null,
      ]);
      // A host-built disk is the workspace's own: the template parked before mounting it.
      await onlyTemplate("early");
      expect(created.timings?.restore_ms).toBeGreaterThan(0);
      await pyro.execWorkspace({
        workspace_id: id,
        command: ["sh", "-c", "echo kept > /workspace/made.txt"],
      });
      await pyro.stopWorkspace({ workspace_id: id });
      const started = await pyro.startWorkspace({ workspace_id: id });
      expect([started.state, started.boot_mode]).toEqual(["started", "warm"]);
      const r = await pyro.execWorkspace({
        workspace_id: id,
        command: ["cat", "/workspace/seeded.txt", "/workspace/made.txt"],
      });
      expect(r.stdout).toBe("from the seed\nkept\n");
      // `cold` boots the same disk without the template, and says why.
      await pyro.stopWorkspace({ workspace_id: id });
      const cold = await pyro.startWorkspace({ workspace_id: id, cold: true });
      expect([cold.state, cold.boot_mode]).toEqual(["started", "cold"]);
      expect(cold.cold_reason).toMatch(/cold/);
      const again = await pyro.execWorkspace({
        workspace_id: id,
        command: ["cat", "/workspace/made.txt"],
      });
      expect(again.stdout).toBe("kept\n");
    } finally {
      await pyro.deleteWorkspace({ workspace_id: id });
    }
  });

  it("workspace create with cold boots without a template", async () => {
    const created = await pyro.createWorkspace({ environment: ENV, mem_mib: 256, cold: true });
    try {
      expect([created.state, created.boot_mode]).toEqual(["started", "cold"]);
      expect(created.cold_reason).toMatch(/cold/);
    } finally {
      await pyro.deleteWorkspace({ workspace_id: created.workspace_id });
    }
  });

  it("a template whose manifest names another key is not used: cold, then rebuilt", async () => {
    const { key, manifest } = await onlyTemplate();
    const other = {
      ...manifest,
      inputs: { ...manifest.inputs, agent: { ...manifest.inputs.agent, version: "other" } },
    };
    writeFileSync(templateFiles(key).manifest, JSON.stringify(other));
    const r = await run("echo ok");
    expect([r.stdout, r.boot_mode]).toEqual(["ok\n", "cold"]);
    expect(r.cold_reason).toMatch(/built for another key/);
    const next = await run("echo ok");
    expect(next.boot_mode).toBe("warm");
    expect((await onlyTemplate()).manifest.inputs.agent.version).not.toBe("other");
  });

  it("a truncated RAM file falls back to a cold boot, and the next run rebuilds it", async () => {
    const { key } = await onlyTemplate();
    truncateSync(templateFiles(key).memory, 4096);
    const r = await run("echo ok");
    expect([r.stdout, r.boot_mode]).toEqual(["ok\n", "cold"]);
    expect(r.cold_reason).toMatch(/memory\.ram is 4096 bytes/);
    const next = await run("echo ok");
    expect([next.stdout, next.boot_mode]).toEqual(["ok\n", "warm"]);
    const rebuilt = await onlyTemplate();
    expect(rebuilt.manifest.memory.size_bytes).toBe(256 * 2 ** 20);
  });

  it("a vmstate QEMU cannot load makes the warm boot fall back to cold once, same VM", async () => {
    const { key } = await onlyTemplate();
    const files = templateFiles(key);
    // Same size and a matching manifest digest: only QEMU can tell it is garbage.
    const garbage = Buffer.alloc(readFileSync(files.vmstate).length, 0x5a);
    writeFileSync(files.vmstate, garbage);
    const manifest = JSON.parse(readFileSync(files.manifest, "utf8")) as TemplateManifest;
    const { createHash } = await import("node:crypto");
    manifest.vmstate.sha256 = createHash("sha256").update(garbage).digest("hex");
    writeFileSync(files.manifest, JSON.stringify(manifest));
    const r = await run("echo ok");
    expect([r.stdout, r.exit_code, r.boot_mode]).toEqual(["ok\n", 0, "cold"]);
    expect(r.cold_reason).toMatch(/warm boot from the memory template failed/);
    // The template is blamed: no warm boot retries it until the retry delay has passed.
    const next = await run("echo ok");
    expect(next.boot_mode).toBe("cold");
    expect(next.cold_reason).toMatch(/restoring the memory template failed/);
  });

  it("a VM with a NIC restores from a template of its own shape, NIC up", async () => {
    const r = await pyro.runInVm({
      environment: ENV,
      mem_mib: 256,
      network: true,
      command: ["sh", "-c", "grep -c eth0 /proc/net/dev; cat /sys/class/net/eth0/operstate"],
    });
    expect([r.boot_mode, r.stdout]).toEqual(["warm", "1\nup\n"]);
    const nic = (await listTemplates()).filter((e) =>
      e.manifest?.inputs.qemu_args.includes("-netdev"),
    );
    expect(nic).toHaveLength(1);
  });
});
