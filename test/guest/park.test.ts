import { mkdtemp, readFile, rm } from "node:fs/promises";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bootArtifacts } from "../../src/env/environments.js";
import { ChannelClient } from "../../src/guest/client.js";
import { decodeControl, encodeControl, FRAME_HEADER_BYTES } from "../../src/guest/frame.js";
import { AGENT_OPS } from "../../src/guest/ops/index.js";
import { helloEntropy } from "../../src/guest/ops/system.js";
import { createStateDisk } from "../../src/manager/boot.js";
import { vmFiles } from "../../src/shim/launch.js";
import { silentProgress } from "../../src/util/progress.js";
import type { VmmHandle } from "../../src/vmm/driver.js";
import { QemuDriver } from "../../src/vmm/qemu.js";
import { expectedAcceleration } from "../helpers/accel.js";

/**
 * The agent's side of template parking (agent/src/park.h) in a real guest, driven below
 * the shim: with `pyro.park=1` init says PYRO-PARKED and nothing else, skips whatever
 * precedes PYRO-GO (a request there is not served), and then boots on and serves, even
 * a request written right behind the GO bytes. Saving and restoring a parked VM is the
 * VMM's test (vm-restore.test.ts).
 */

const PARKED = "PYRO-PARKED\n";
const GO = "PYRO-GO\n";

let dir = "";
let vmm: VmmHandle | undefined;
let channel: Socket;

/** Bytes from the agent channel until `done` says enough; bounded by a deadline. */
function readUntil(socket: Socket, done: (seen: Buffer) => boolean, ms = 120_000) {
  return new Promise<Buffer>((resolve, reject) => {
    let seen = Buffer.alloc(0);
    const finish = (error?: Error) => {
      clearTimeout(timer);
      socket.off("data", onData);
      if (error) reject(error);
      else resolve(seen);
    };
    const onData = (chunk: Buffer) => {
      seen = Buffer.concat([seen, chunk]);
      if (done(seen)) finish();
    };
    const timer = setTimeout(
      () => finish(new Error(`only ${JSON.stringify(seen.toString("latin1"))} within ${ms} ms`)),
      ms,
    );
    socket.on("data", onData);
  });
}

/** True once `seen` holds one whole frame. */
const oneFrame = (seen: Buffer) =>
  seen.length >= FRAME_HEADER_BYTES && seen.length >= FRAME_HEADER_BYTES + seen.readUInt32LE(0);

/** A VM of `dir` booted with `pyro.park=<mode>`, straight on the QEMU driver. */
async function launchParked(dir: string, mode: string): Promise<VmmHandle> {
  const artifacts = await bootArtifacts("debian:12-base", silentProgress);
  await createStateDisk(dir);
  const files = vmFiles(dir);
  return new QemuDriver().launch({
    vmId: `park-${mode}`,
    kernelPath: artifacts.kernel.path,
    initrdPath: artifacts.agent.initramfs,
    kernelArgs: ["pyro.hostname=pyro-template", `pyro.park=${mode}`],
    vcpuCount: 1,
    memMib: 256,
    acceleration: expectedAcceleration(),
    disks: [
      { path: artifacts.rootfs, readOnly: true },
      { path: files.stateDisk, readOnly: false },
    ],
    agentSocketPath: files.agentSocket,
    controlSocketPath: files.controlSocket,
    consoleLogPath: files.console,
  });
}

async function stopVm(handle: VmmHandle | undefined) {
  if (handle?.status() === "running") await handle.stop().catch(() => handle.kill());
  await handle?.exited;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "pyro-park-"));
  vmm = await launchParked(dir, "1");
  channel = await vmm.agentChannel;
});

afterAll(async () => {
  await stopVm(vmm);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("a guest booted with pyro.park=1", () => {
  it("parks, skips what precedes GO and serves what follows it", async () => {
    const parked = await readUntil(channel, (seen) => seen.length >= PARKED.length);
    expect(parked.toString("latin1")).toBe(PARKED);

    // A hello before GO is junk to the parked init; the one right behind GO is served.
    const early = encodeControl(1, { op: "hello" });
    const late = encodeControl(2, { op: "hello", hostname: "unparked" });
    const reply = readUntil(channel, oneFrame);
    channel.write(Buffer.concat([early, Buffer.from("PYRO-PYRO-GO"), Buffer.from(GO), late]));
    const frame = await reply;
    expect(frame.readUInt32LE(4)).toBe(2);
    const hello = decodeControl(frame.subarray(FRAME_HEADER_BYTES));
    expect(hello).toMatchObject({ type: "result", pid1: true, init_errors: [] });
    const console = await readFile(vmFiles(dir).console, "utf8");
    expect(console.indexOf("parked: waiting for the host")).toBeGreaterThanOrEqual(0);
    expect(console.indexOf("unparked")).toBeGreaterThan(console.indexOf("parked: waiting"));
  });

  it("then boots on: entropy reseeds, the root and state disk are mounted", async () => {
    const client = new ChannelClient(channel);
    try {
      const hello = await client.request(AGENT_OPS.hello, { entropy: helloEntropy() });
      expect(hello.init_errors).toEqual([]);
      const result = await client.exec({
        argv: [
          "sh",
          "-c",
          "hostname; grep -c ' / overlay ' /proc/mounts; echo kept > /root/x; cat /root/x; " +
            "cat /proc/sys/kernel/random/uuid",
        ],
      });
      const [hostname, overlays, kept, uuid] = result.stdout.toString().trim().split("\n");
      expect([result.exit_code, hostname, overlays, kept]).toEqual([0, "unparked", "1", "kept"]);
      expect(uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    } finally {
      client.destroy();
    }
  });
});

describe("a guest booted with pyro.park=late", () => {
  it("parks once init is done and serves the hello right behind GO", async () => {
    const lateDir = await mkdtemp(join(tmpdir(), "pyro-park-late-"));
    let late: VmmHandle | undefined;
    try {
      late = await launchParked(lateDir, "late");
      const socket = await late.agentChannel;
      const parked = await readUntil(socket, (seen) => seen.length >= PARKED.length);
      expect(parked.toString("latin1")).toBe(PARKED);
      const console = await readFile(vmFiles(lateDir).console, "utf8");
      // Parked after the root switch: the overlay root was set up before the signal.
      expect(console).toContain("parked: waiting for the host");
      const reply = readUntil(socket, oneFrame);
      socket.write(Buffer.concat([Buffer.from(GO), encodeControl(1, { op: "hello" })]));
      const frame = await reply;
      expect(decodeControl(frame.subarray(FRAME_HEADER_BYTES))).toMatchObject({
        type: "result",
        init_errors: [],
      });
      const client = new ChannelClient(socket);
      const result = await client.exec({
        argv: ["sh", "-c", "grep -c ' / overlay ' /proc/mounts"],
      });
      client.destroy();
      expect(result.stdout.toString()).toBe("1\n");
    } finally {
      await stopVm(late);
      await rm(lateDir, { recursive: true, force: true });
    }
  });
});
