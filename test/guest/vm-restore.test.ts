import { statSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bootArtifacts, type BootArtifacts } from "../../src/env/environments.js";
import { ChannelClient } from "../../src/guest/client.js";
import { AGENT_OPS } from "../../src/guest/ops/index.js";
import { createStateDisk } from "../../src/manager/boot.js";
import { runChecked } from "../../src/util/process.js";
import { silentProgress } from "../../src/util/progress.js";
import type { VmmHandle, VmmLaunchSpec } from "../../src/vmm/driver.js";
import { createMemoryFile } from "../../src/vmm/memory.js";
import { QemuDriver } from "../../src/vmm/qemu.js";
import { expectedAcceleration } from "../helpers/accel.js";
import { eventually, processesMentioning } from "../helpers/guest.js";
import { tempDir } from "../helpers/temp.js";

// The QEMU driver on its own, below the shim: a VM's RAM in its own file, its device
// state saved beside it, and a new QEMU that carries on from both.
const dir = tempDir("pyro-vm-restore-");
const MEM_MIB = 256;
const stateDisk = join(dir, "state.ext4");
const files = {
  memory: join(dir, "memory.ram"),
  vmstate: join(dir, "vmstate"),
  console: join(dir, "console.log"),
};
let artifacts: BootArtifacts;
const handles: VmmHandle[] = [];
const driver = new QemuDriver();

const spec = (extra: Partial<VmmLaunchSpec> = {}): VmmLaunchSpec => ({
  vmId: `vm-restore-${process.pid}`,
  kernelPath: artifacts.kernel.path,
  initrdPath: artifacts.agent.initramfs,
  kernelArgs: ["pyro.hostname=restore"],
  vcpuCount: 1,
  memMib: MEM_MIB,
  acceleration: expectedAcceleration(),
  disks: [
    { path: artifacts.rootfs, readOnly: true },
    { path: stateDisk, readOnly: false },
  ],
  agentSocketPath: join(dir, "agent.sock"),
  controlSocketPath: join(dir, "vmm.sock"),
  consoleLogPath: files.console,
  memoryPath: files.memory,
  ...extra,
});

async function launch(extra: Partial<VmmLaunchSpec> = {}) {
  const handle = await driver.launch(spec(extra));
  handles.push(handle);
  const client = new ChannelClient(await handle.agentChannel);
  const started = performance.now();
  await client.request(AGENT_OPS.hello, { time_ms: Date.now() }, { deadlineMs: 60_000 });
  return { handle, client, helloMs: Math.round(performance.now() - started) };
}

async function sh(client: ChannelClient, script: string): Promise<string> {
  const result = await client.exec({ argv: ["sh", "-c", script], timeout_ms: 30_000 });
  expect(result.stderr.toString("utf8")).toBe("");
  expect(result.exit_code).toBe(0);
  return result.stdout.toString("utf8");
}

const GUEST_FACTS = "cat /tmp/mark; cat /proc/sys/kernel/random/boot_id";

beforeAll(async () => {
  artifacts = await bootArtifacts("debian:12-base", silentProgress);
  await createStateDisk(dir);
  await createMemoryFile(files.memory, MEM_MIB);
});

afterAll(async () => {
  for (const handle of handles) {
    handle.kill();
    await handle.exited;
  }
});

describe("QEMU save and restore", () => {
  let facts = "";
  /** The restored VM, which the fork test goes on with. */
  let running: Awaited<ReturnType<typeof launch>> | undefined;

  it("a VM restored from its saved state has its memory: /tmp, boot id, and working disks", async () => {
    const cold = await launch();
    facts = await sh(cold.client, `echo before-save > /tmp/mark; ${GUEST_FACTS}`);
    expect(facts).toMatch(/^before-save\n[0-9a-f-]{36}\n$/);

    const saveStarted = performance.now();
    await cold.handle.saveState!(files.vmstate);
    const saveMs = Math.round(performance.now() - saveStarted);
    // Device state only: the RAM stayed in its file (x-ignore-shared).
    const stateBytes = statSync(files.vmstate).size;
    expect(stateBytes).toBeGreaterThan(0);
    expect(stateBytes).toBeLessThan(1024 * 1024);
    expect(statSync(files.memory).blocks * 512).toBeGreaterThan(16 * 1024 * 1024);
    cold.client.destroy();
    await cold.handle.stop();

    const restoreStarted = performance.now();
    const warm = await launch({ restoreFrom: files.vmstate });
    const restoreToHelloMs = Math.round(performance.now() - restoreStarted);
    expect(await sh(warm.client, GUEST_FACTS)).toBe(facts);
    // The state disk is usable again (QEMU reopened it for the restored devices).
    expect(await sh(warm.client, "echo after > /root/after; sync; cat /root/after")).toBe(
      "after\n",
    );
    console.log(
      `save ${saveMs} ms, ${stateBytes} B of state; restore to hello ${restoreToHelloMs} ms (hello alone ${warm.helloMs} ms)`,
    );
    running = warm;
  });

  it("a fork: save, copy RAM and disk, resume; parent and child then diverge", async () => {
    const parent = running!;
    await sh(parent.client, "echo shared > /tmp/mark2");
    await parent.handle.saveState!(files.vmstate);
    // A saved state holds only while its RAM file is as it was at the save: the copies
    // are taken before the parent runs again (what a fork does).
    const child = { memory: join(dir, "child.ram"), disk: join(dir, "child.ext4") };
    const copyStarted = performance.now();
    await runChecked("copy the RAM", "cp", ["--sparse=always", files.memory, child.memory]);
    await runChecked("copy the disk", "cp", ["--sparse=always", stateDisk, child.disk]);
    const copyMs = Math.round(performance.now() - copyStarted);
    await parent.handle.resume!();
    await sh(parent.client, "echo parent > /tmp/mark3; echo parent > /root/disk-mark; sync");

    const forked = await launch({
      vmId: `vm-restore-child-${process.pid}`,
      memoryPath: child.memory,
      restoreFrom: files.vmstate,
      disks: [
        { path: artifacts.rootfs, readOnly: true },
        { path: child.disk, readOnly: false },
      ],
      consoleLogPath: join(dir, "child-console.log"),
    });
    await sh(forked.client, "echo child > /tmp/mark3; echo child > /root/disk-mark; sync");
    const read = "cat /tmp/mark2 /tmp/mark3 /root/disk-mark";
    expect(await sh(parent.client, read)).toBe("shared\nparent\nparent\n");
    expect(await sh(forked.client, read)).toBe("shared\nchild\nchild\n");
    console.log(`fork: RAM + disk copy ${copyMs} ms`);
    for (const vm of [parent, forked]) {
      vm.client.destroy();
      await vm.handle.stop();
    }
  });

  it("a corrupt state file fails the launch with QEMU's reason and leaves no QEMU behind", async () => {
    const bad = join(dir, "bad-vmstate");
    writeFileSync(bad, Buffer.alloc(4096, 7));
    await expect(driver.launch(spec({ restoreFrom: bad }))).rejects.toMatchObject({
      code: "unavailable",
      message: expect.stringMatching(/restoring the VM's state from .*bad-vmstate failed/),
    });
    expect(await eventually(() => processesMentioning(dir).length === 0)).toBe(true);
  });

  it("a RAM file of the wrong size is refused before QEMU starts", async () => {
    const short = join(dir, "short.ram");
    writeFileSync(short, "");
    truncateSync(short, 1024 * 1024);
    await expect(
      driver.launch(spec({ memoryPath: short, restoreFrom: files.vmstate })),
    ).rejects.toMatchObject({ code: "unavailable", message: expect.stringMatching(/RAM file/) });
    expect(processesMentioning(dir)).toEqual([]);
  });
});
