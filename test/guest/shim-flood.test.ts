import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createConnection, type Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { encodeControl, FrameReader, FrameType } from "../../src/guest/frame.js";
import { workspaceDir } from "../../src/manager/workspace-store.js";
import { Pyro } from "../../src/index.js";
import { vmFiles, type ShimStatus } from "../../src/shim/launch.js";
import { sleep } from "../../src/util/process.js";
import { isolatedHome } from "../helpers/guest.js";

isolatedHome();
const pyro = new Pyro();

/** Resident memory of a process in KiB, from /proc. */
function rssKib(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1]);
}

/** Reads stdout frames of `channel` until `bytes` have come (or the stream ends). */
async function readStdout(socket: Socket, channel: number, bytes: number): Promise<number> {
  const reader = new FrameReader();
  let received = 0;
  socket.resume();
  for await (const chunk of socket as AsyncIterable<Buffer>) {
    for (const frame of reader.push(chunk)) {
      if (frame.channel === channel && frame.type === FrameType.stdout) {
        received += frame.payload.length;
      }
    }
    if (received >= bytes) break;
  }
  return received;
}

describe("shim under a flooding guest (issue 7, defect 6)", () => {
  it("keeps its memory bounded while a client does not read, and the VM still works", async () => {
    const { workspace_id } = await pyro.createWorkspace({
      environment: "debian:12-base",
      mem_mib: 256,
    });
    const files = vmFiles(workspaceDir(workspace_id));
    const shim = JSON.parse(readFileSync(files.status, "utf8")) as ShimStatus;
    const before = rssKib(shim.shim_pid);

    // A client that asks for a flood (within the agent's own 1 GiB cap) and never reads.
    const client = createConnection(files.socket);
    await once(client, "connect");
    client.pause();
    client.write(
      encodeControl(1, {
        op: "exec",
        argv: ["cat", "/dev/zero"],
        timeout_ms: 120_000,
        max_output_bytes: 1 << 30,
      }),
    );
    let peak = before;
    for (let sample = 0; sample < 40; sample++) {
      await sleep(250);
      peak = Math.max(peak, rssKib(shim.shim_pid));
    }

    // The flood was real: once the client reads, it flows (and the shim passes it on).
    expect(await readStdout(client, 1, 64 << 20)).toBeGreaterThanOrEqual(64 << 20);
    client.destroy();
    // Before the fix the shim buffered the whole flood for the client: hundreds of MiB here.
    const growthMib = (peak - before) / 1024;
    console.log(`shim RSS ${before} KiB before the flood, ${peak} KiB at most during it`);
    expect(growthMib, `shim RSS grew from ${before} KiB to ${peak} KiB`).toBeLessThan(64);

    // The client's disconnect killed the flood; the workspace answers as before.
    const result = await pyro.execWorkspace({ workspace_id, command: ["echo", "still here"] });
    expect([result.exit_code, result.stdout]).toEqual([0, "still here\n"]);
    await pyro.deleteWorkspace({ workspace_id });
  });
});
