/**
 * The floor of `npm run bench`: the same QEMU, kernel, initramfs and base image booted to an
 * answering agent and powered off, driven by a few raw socket writes (no pyro code in the
 * path), so pyro's own overhead is what a `pyro run` takes beyond it.
 */
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import type { Socket } from "node:net";
import { join } from "node:path";
import type { bootArtifacts } from "../src/env/environments.js";
import { encodeControl, FrameReader } from "../src/guest/frame.js";
import { runChecked } from "../src/util/process.js";
import { decideAcceleration, readAccelerationFacts } from "../src/vmm/acceleration.js";
import { hostTscKhz, qemuArgs, qemuInheritedFiles } from "../src/vmm/qemu.js";

export interface FloorRun {
  /** QEMU's spawn until the agent answered `hello`. */
  readyMs: number;
  /** QEMU's spawn until it exited after the agent powered the guest off. */
  totalMs: number;
}

type Artifacts = Awaited<ReturnType<typeof bootArtifacts>>;

/** One raw boot in a fresh directory under `work`, removed afterwards. */
export async function floorRun(work: string, artifacts: Artifacts): Promise<FloorRun> {
  const dir = await mkdtemp(join(work, "floor-"));
  try {
    const stateDisk = join(dir, "state.ext4");
    await runChecked("state disk", "mkfs.ext4", [
      ...["-q", "-F", "-L", "pyro-state", "-E", "lazy_itable_init=1,lazy_journal_init=1"],
      ...[stateDisk, "8G"],
    ]);
    const spec = {
      vmId: "floor",
      kernelPath: artifacts.kernel.path,
      initrdPath: artifacts.agent.initramfs,
      kernelArgs: ["pyro.hostname=floor"],
      vcpuCount: 1,
      memMib: 1024,
      acceleration: decideAcceleration(await readAccelerationFacts()).acceleration,
      disks: [
        { path: artifacts.rootfs, readOnly: true },
        { path: stateDisk, readOnly: false },
      ],
      agentSocketPath: join(dir, "agent.sock"),
      controlSocketPath: join(dir, "vmm.sock"),
      consoleLogPath: join(dir, "console.log"),
    };
    return await bootToAgent(spec);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function bootToAgent(spec: Parameters<typeof qemuArgs>[0]): Promise<FloorRun> {
  // QEMU takes its channels (socket pairs) and files as inherited fds (vmm/qemu.ts).
  const files = qemuInheritedFiles(spec).map((file) => openSync(file.path, file.flags));
  const started = performance.now();
  const qemu = spawn("qemu-system-x86_64", qemuArgs(spec, hostTscKhz()), {
    stdio: ["ignore", "ignore", "ignore", "pipe", "pipe", "pipe", ...files],
  });
  files.forEach((fd) => closeSync(fd));
  const exited = new Promise((r) => qemu.on("exit", r));
  const socketAt = (fd: number) => qemu.stdio[fd as 3] as Socket;
  const agent = socketAt(4);
  socketAt(3).resume(); // QMP greets; nobody needs to answer.
  socketAt(5).resume(); // the console
  const reader = new FrameReader();
  const replies: number[] = [];
  let wake = () => {};
  agent.on("data", (chunk: Buffer) => {
    for (const frame of reader.push(chunk)) replies.push(frame.channel);
    wake();
  });
  const awaitReply = async (channel: number) => {
    while (!replies.includes(channel)) await new Promise<void>((r) => (wake = r));
  };
  agent.write(encodeControl(1, { op: "hello" }));
  await awaitReply(1);
  const readyMs = performance.now() - started;
  agent.write(encodeControl(2, { op: "shutdown", power_off: true }));
  await exited;
  return { readyMs, totalMs: performance.now() - started };
}
