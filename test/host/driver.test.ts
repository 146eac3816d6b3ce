import { existsSync, readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ensureAgent } from "../../src/env/agent.js";
import { ChannelClient } from "../../src/guest/client.js";
import { AGENT_OPS } from "../../src/guest/ops/index.js";
import { runChecked } from "../../src/util/process.js";
import { HostProcessDriver } from "../../src/vmm/host-process.js";
import { eventually, processesMentioning } from "../helpers/guest.js";
import { scratchDir } from "../helpers/host.js";
import { sampleLaunchSpec } from "../helpers/vmm-spec.js";

// The driver on its own, below the shim: what launch, stop and the disk-keyed tree do.
const dir = scratchDir();
afterAll(() => rm(dir, { recursive: true, force: true }));

const spec = () =>
  sampleLaunchSpec({
    vmId: "vm-host",
    disks: [{ path: join(dir, "state.ext4"), readOnly: false }],
    agentSocketPath: join(dir, "agent.sock"),
    controlSocketPath: join(dir, "vmm.sock"),
    consoleLogPath: join(dir, "console.log"),
  });

const newDisk = () =>
  runChecked("make a disk", "mkfs.ext4", ["-q", "-F", join(dir, "state.ext4"), "8M"]);

async function launchAndWrite(driver: HostProcessDriver, text: string) {
  const handle = await driver.launch(spec());
  const client = new ChannelClient(await handle.agentChannel);
  await client.request(AGENT_OPS.hello, { workspace_root: "/workspace" });
  const result = await client.exec({
    argv: ["sh", "-c", `cat seen 2>/dev/null; echo ${text} >> seen`],
    cwd: "/workspace",
  });
  client.destroy();
  return { handle, seen: result.stdout.toString("utf8") };
}

describe("host-process driver", () => {
  it("runs the real agent rooted beside the disk; stop ends it; the tree follows the disk", async () => {
    const driver = new HostProcessDriver({ agentBinary: (await ensureAgent(() => {})).binary });
    await newDisk();
    const first = await launchAndWrite(driver, "one");
    expect(first.seen).toBe("");
    expect(readFileSync(join(dir, "host-root", "workspace", "seen"), "utf8")).toBe("one\n");
    expect(first.handle.status()).toBe("running");
    await first.handle.stop();
    expect(first.handle.status()).toBe("exited");
    expect(await eventually(() => processesMentioning(dir).length === 0)).toBe(true);

    // Same disk (stop/start): the tree is kept.
    const second = await launchAndWrite(driver, "two");
    expect(second.seen).toBe("one\n");
    second.handle.kill();
    await second.handle.exited;

    // A new disk (what reset makes): a fresh tree.
    await newDisk();
    const third = await launchAndWrite(driver, "three");
    expect(third.seen).toBe("");
    await third.handle.stop();
    expect(await eventually(() => processesMentioning(dir).length === 0)).toBe(true);
  });

  it("an agent that cannot start fails the channel with its exit, and leaves nothing", async () => {
    const driver = new HostProcessDriver({ agentBinary: join(dir, "no-such-agent") });
    await newDisk();
    const handle = await driver.launch(spec());
    await expect(handle.agentChannel).rejects.toMatchObject({
      code: "unavailable",
      message: expect.stringMatching(/host agent exited \(\d+\) before it listened/),
    });
    expect((await handle.exited).code).not.toBe(0);
    expect(readFileSync(join(dir, "console.log"), "utf8")).toContain("no-such-agent");
    expect(existsSync(join(dir, "agent.sock"))).toBe(false);
    expect(processesMentioning(dir)).toEqual([]);
  });
});
