import { existsSync, mkdirSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bootArtifacts, type BootArtifacts } from "../../src/env/environments.js";
import { ChannelClient } from "../../src/guest/client.js";
import { AGENT_OPS } from "../../src/guest/ops/index.js";
import { helloEntropy } from "../../src/guest/ops/system.js";
import { sendGo, waitParked } from "../../src/guest/park.js";
import { bootSandbox, createStateDisk } from "../../src/manager/boot.js";
import { vmFiles, type ShimLaunchConfig } from "../../src/shim/launch.js";
import { vmmNetworkSpec } from "../../src/shim/network.js";
import { runChecked } from "../../src/util/process.js";
import { silentProgress } from "../../src/util/progress.js";
import type { VmmHandle, VmmLaunchSpec } from "../../src/vmm/driver.js";
import { JAIL_UID_BASE } from "../../src/vmm/jail.js";
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
const isRoot = process.getuid?.() === 0;

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

// /run is a tmpfs in the guest (the overlay root keeps /tmp on the state disk): a mark
// there, like the boot id, lives only in the guest's memory.
const GUEST_FACTS = "stat -f -c %T /run; cat /run/mark; cat /proc/sys/kernel/random/boot_id";

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

  it("a VM restored from its saved state has its memory (a tmpfs file, the boot id) and working disks", async () => {
    const cold = await launch();
    facts = await sh(cold.client, `echo before-save > /run/mark; ${GUEST_FACTS}`);
    expect(facts).toMatch(/^tmpfs\nbefore-save\n[0-9a-f-]{36}\n$/);

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
    await sh(parent.client, "echo shared > /run/mark2");
    await parent.handle.saveState!(files.vmstate);
    // A saved state holds only while its RAM file is as it was at the save: the copies
    // are taken before the parent runs again (what a fork does).
    const child = { memory: join(dir, "child.ram"), disk: join(dir, "child.ext4") };
    const copyStarted = performance.now();
    await runChecked("copy the RAM", "cp", ["--sparse=always", files.memory, child.memory]);
    await runChecked("copy the disk", "cp", ["--sparse=always", stateDisk, child.disk]);
    const copyMs = Math.round(performance.now() - copyStarted);
    await parent.handle.resume!();
    await sh(parent.client, "echo parent > /run/mark3; echo parent > /root/disk-mark; sync");

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
    await sh(forked.client, "echo child > /run/mark3; echo child > /root/disk-mark; sync");
    const read = "cat /run/mark2 /run/mark3 /root/disk-mark";
    expect(await sh(parent.client, read)).toBe("shared\nparent\nparent\n");
    expect(await sh(forked.client, read)).toBe("shared\nchild\nchild\n");
    console.log(`fork: RAM + disk copy ${copyMs} ms`);
    for (const vm of [parent, forked]) {
      vm.client.destroy();
      await vm.handle.stop();
    }
  });

  it("a VM with a NIC restores with it: the guest's frames reach the shim's end again", async () => {
    const net = { network: vmmNetworkSpec(), vmId: `vm-restore-net-${process.pid}` };
    const nicRam = join(dir, "nic.ram");
    await createMemoryFile(nicRam, MEM_MIB);
    const cold = await launch({ ...net, memoryPath: nicRam });
    await cold.client.request(AGENT_OPS.net_configure, {
      address: "10.0.2.15",
      prefix_len: 24,
      gateway: "10.0.2.2",
      dns: [],
    });
    await cold.handle.saveState!(join(dir, "nic.vmstate"));
    cold.client.destroy();
    await cold.handle.stop();

    const warm = await launch({
      ...net,
      memoryPath: nicRam,
      restoreFrom: join(dir, "nic.vmstate"),
    });
    // Frames come as a uint32 big-endian length, then the Ethernet frame (driver.ts).
    const frame = new Promise<Buffer>((resolve) => {
      let seen = Buffer.alloc(0);
      warm.handle.network!.fromGuest.on("data", (chunk: Buffer) => {
        seen = Buffer.concat([seen, chunk]);
        if (seen.length >= 4 && seen.length >= 4 + seen.readUInt32BE(0))
          resolve(seen.subarray(4, 4 + seen.readUInt32BE(0)));
      });
    });
    // The default route via 10.0.2.2 survived in the guest's memory; a datagram to the
    // gateway starts with an ARP request, which comes out on the shim's end.
    expect(await sh(warm.client, "grep -c 0202000A /proc/net/route")).toBe("1\n");
    await sh(warm.client, "bash -c 'echo x > /dev/udp/10.0.2.2/9' || true");
    expect((await frame).length).toBeGreaterThan(14);
    warm.client.destroy();
    await warm.handle.stop();
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

describe("a parked template and its clones", () => {
  type Park = "early" | "late";
  /** Early: parked before the state disk is read (template.* is the shim test's too). */
  const templates = {
    early: { memory: join(dir, "template.ram"), vmstate: join(dir, "template.vmstate") },
    late: { memory: join(dir, "late.ram"), vmstate: join(dir, "late.vmstate") },
  };
  const lateDisk = join(dir, "late-template.ext4");

  async function buildTemplate(park: Park) {
    const template = templates[park];
    await createMemoryFile(template.memory, MEM_MIB);
    if (park === "late")
      await runChecked("make a disk", "mkfs.ext4", [
        "-q",
        "-F",
        "-L",
        "pyro-state",
        lateDisk,
        "8G",
      ]);
    const parked = await driver.launch(
      spec({
        vmId: `vm-restore-template-${process.pid}`,
        kernelArgs: [
          "pyro.hostname=pyro-template",
          park === "late" ? "pyro.park=late" : "pyro.park=1",
        ],
        memoryPath: template.memory,
        ...(park === "late"
          ? {
              disks: [
                { path: artifacts.rootfs, readOnly: true },
                { path: lateDisk, readOnly: false },
              ],
            }
          : {}),
        consoleLogPath: join(dir, `template-${park}-console.log`),
      }),
    );
    handles.push(parked);
    await waitParked(await parked.agentChannel, 60_000);
    await parked.saveState!(template.vmstate);
    await parked.stop();
  }

  /**
   * A clone as the shim makes one: its own RAM copy and a state disk, fresh after an
   * early park, a byte copy of the template's after a late one.
   */
  async function clone(name: string, park: Park) {
    const template = templates[park];
    const own = { memory: join(dir, `${name}.ram`), disk: join(dir, `${name}.ext4`) };
    await runChecked("copy the RAM", "cp", ["--sparse=always", template.memory, own.memory]);
    if (park === "late")
      await runChecked("copy the disk", "cp", ["--sparse=always", lateDisk, own.disk]);
    else
      await runChecked("make a disk", "mkfs.ext4", [
        "-q",
        "-F",
        "-L",
        "pyro-state",
        own.disk,
        "8G",
      ]);
    const started = performance.now();
    const handle = await driver.launch(
      spec({
        vmId: `vm-restore-${name}-${process.pid}`,
        kernelArgs: [`pyro.hostname=${name}`],
        memoryPath: own.memory,
        restoreFrom: template.vmstate,
        disks: [
          { path: artifacts.rootfs, readOnly: true },
          { path: own.disk, readOnly: false },
        ],
        consoleLogPath: join(dir, `${name}-console.log`),
      }),
    );
    handles.push(handle);
    const launchMs = Math.round(performance.now() - started);
    const channel = await handle.agentChannel;
    await sendGo(channel);
    const client = new ChannelClient(channel);
    await client.request(
      AGENT_OPS.hello,
      { time_ms: Date.now(), hostname: name, entropy: helloEntropy() },
      { deadlineMs: 60_000 },
    );
    return { handle, client, launchMs, helloMs: Math.round(performance.now() - started) };
  }

  it.each(["early", "late"] as const)(
    "%s park: clones restore, write their own disks, each with its own randomness",
    async (park) => {
      await buildTemplate(park);
      const clones = [await clone(`${park}-a`, park), await clone(`${park}-b`, park)];
      const facts = "hostname; cat /proc/sys/kernel/random/uuid; od -An -N16 /dev/urandom";
      const seen = [];
      for (const vm of clones) {
        expect(await sh(vm.client, "echo mine > /root/m; sync; cat /root/m")).toBe("mine\n");
        seen.push((await sh(vm.client, facts)).split("\n"));
      }
      expect(seen.map((lines) => lines[0])).toEqual([`${park}-a`, `${park}-b`]);
      expect(seen[0]![1]).not.toBe(seen[1]![1]);
      expect(seen[0]![2]).not.toBe(seen[1]![2]);
      console.log(
        `${park} template clone: restore to hello ${clones.map((c) => `${c.helloMs} (launch ${c.launchMs})`).join(", ")} ms`,
      );
      for (const vm of clones) {
        vm.client.destroy();
        await vm.handle.stop();
      }
    },
  );
});

describe("the shim's boot from a restore", () => {
  const vmDir = join(dir, "shim-vm");
  const vm = vmFiles(vmDir);
  const template = { memory: join(dir, "template.ram"), vmstate: join(dir, "template.vmstate") };

  const launchConfig = (restore: ShimLaunchConfig["restore"]): ShimLaunchConfig => ({
    vm_id: `vm_restore_shim_${process.pid}`,
    kernel_path: artifacts.kernel.path,
    initrd_path: artifacts.agent.initramfs,
    rootfs_path: artifacts.rootfs,
    state_disk_path: vm.stateDisk,
    vcpu_count: 1,
    mem_mib: MEM_MIB,
    acceleration: expectedAcceleration(),
    vmm: "qemu",
    hostname: "shim-restored",
    kernel_args: [],
    ttl_seconds: 0,
    ttl_action: "stop",
    boot_timeout_ms: 60_000,
    workspace_root: null,
    delete_on_exit: false,
    owner_pid: null,
    network: null,
    memory_path: vm.memory,
    restore,
  });

  async function boot(restore: ShimLaunchConfig["restore"]) {
    const { client, ready } = await bootSandbox(vmDir, launchConfig(restore), { claim: false });
    const exec = async (script: string) =>
      (await client.exec({ argv: ["sh", "-c", script] })).stdout.toString("utf8");
    return { client, ready, exec };
  }

  it("template: the clone goes on from the park with this VM's name, disk and a RAM copy", async () => {
    mkdirSync(vmDir);
    await runChecked("copy the RAM", "cp", ["--sparse=always", template.memory, vm.memory]);
    const warm = await boot({ kind: "template", vmstate_path: template.vmstate });
    expect(warm.ready).toMatchObject({ state: "ready", boot_mode: "warm" });
    expect(warm.ready.timings.restore_ms).toBeGreaterThan(0);
    expect(await warm.exec("hostname; echo kept > /root/kept; sync")).toBe("shim-restored\n");
    // A template serves every clone: its state stays.
    expect(existsSync(template.vmstate)).toBe(true);
    if (isRoot) expect(statSync(vm.memory).uid).toBe(JAIL_UID_BASE + warm.ready.shim_pid);
    await warm.client.stop(false);
    warm.client.destroy();
  });

  it("saved: a VM saved by the driver boots warm through the shim, and its state is consumed", async () => {
    // The shim removed the previous test's RAM file when that VM stopped unpaused.
    await createMemoryFile(vm.memory, MEM_MIB);
    const saved = await driver.launch(
      spec({
        vmId: `vm-restore-saver-${process.pid}`,
        kernelArgs: ["pyro.hostname=shim-restored"],
        memoryPath: vm.memory,
        disks: [
          { path: artifacts.rootfs, readOnly: true },
          { path: vm.stateDisk, readOnly: false },
        ],
        consoleLogPath: join(dir, "saver-console.log"),
      }),
    );
    handles.push(saved);
    const client = new ChannelClient(await saved.agentChannel);
    await client.request(AGENT_OPS.hello, {}, { deadlineMs: 60_000 });
    await sh(client, "echo in-memory > /run/mark");
    await saved.saveState!(vm.vmstate);
    client.destroy();
    await saved.stop();

    const warm = await boot({ kind: "saved", vmstate_path: vm.vmstate });
    expect(warm.ready).toMatchObject({ state: "ready", boot_mode: "warm" });
    expect(await warm.exec("cat /run/mark /root/kept")).toBe("in-memory\nkept\n");
    expect(existsSync(vm.vmstate)).toBe(false);
    await warm.client.stop(false);
    warm.client.destroy();

    // Without a restore the same VM boots cold (RAM file reused, not trusted as state).
    const cold = await boot(null);
    expect(cold.ready.boot_mode).toBe("cold");
    expect(cold.ready.timings.restore_ms).toBeUndefined();
    expect(await cold.exec("cat /run/mark 2>/dev/null || echo none; cat /root/kept")).toBe(
      "none\nkept\n",
    );
    await cold.client.stop(false);
    cold.client.destroy();
  });
});
