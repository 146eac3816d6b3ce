import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
import { eventually, isolatedHome, processesMentioning } from "../helpers/guest.js";

// A command in a workspace may be a fork bomb, fill the disk or eat all memory. None of
// that may take the agent down: it keeps answering, and the next exec works.
const home = isolatedHome();
const pyro = new Pyro();
const MEM_MIB = 512;
let id = "";

beforeAll(async () => {
  const created = await pyro.createWorkspace({ environment: "debian:12-base", mem_mib: MEM_MIB });
  id = created.workspace_id;
});

afterAll(async () => {
  if (id) await pyro.deleteWorkspace({ workspace_id: id }).catch(() => {});
  expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
});

function sh(script: string, timeout_seconds = 60) {
  return pyro.execWorkspace({ workspace_id: id, command: ["sh", "-c", script], timeout_seconds });
}

/** The agent answers, and can still start a process that starts another. */
async function expectAgentWorks(): Promise<void> {
  const r = await sh("echo alive; ls /workspace > /dev/null && echo forked");
  expect(r).toMatchObject({ exit_code: 0, stdout: "alive\nforked\n" });
}

describe("guest self-protection, on a real VM", () => {
  it("keeps the agent out of the OOM killer's reach and fences exec children", async () => {
    const r = await sh(
      "cat /proc/1/oom_score_adj /proc/self/oom_score_adj /proc/self/cgroup " +
        "/sys/fs/cgroup/pyro-exec/pids.max /sys/fs/cgroup/pyro-exec/memory.max",
    );
    const [agentAdj, childAdj, cgroup, pidsMax, memoryMax] = r.stdout.trim().split("\n");
    expect(agentAdj).toBe("-1000");
    expect(childAdj).toBe("0");
    expect(cgroup).toBe("0::/pyro-exec");
    expect(Number(pidsMax)).toBeGreaterThanOrEqual(64);
    expect(Number(pidsMax)).toBeLessThanOrEqual(1024);
    // Below the VM's RAM, with at least the 32 MiB reserve left for the agent.
    expect(Number(memoryMax)).toBeLessThanOrEqual((MEM_MIB - 32) * 2 ** 20);
    expect(Number(memoryMax)).toBeGreaterThan((MEM_MIB / 2) * 2 ** 20);
  });

  it("answers during a fork bomb and runs the next exec after it", async () => {
    // Non-interactive bash keeps every copy in the exec's process group, so the end of
    // the exec (its timeout) kills them all. Each copy marks the bomb as running with a
    // redirection (no fork); `exec sleep` needs no free slot.
    const bomb = pyro.execWorkspace({
      workspace_id: id,
      command: [
        "bash",
        "-c",
        "bomb() { : > /workspace/bomb-running; bomb | bomb & }; bomb; exec sleep 600",
      ],
      timeout_seconds: 60,
    });
    // Commands in the leaf crawl while the bomb rages (they share its CPU share), so the
    // test watches through the agent's own file operations, which fork nothing.
    const running = async () =>
      (await pyro.listWorkspaceFiles({ workspace_id: id })).entries.some((e) =>
        e.path.endsWith("bomb-running"),
      );
    const deadline = Date.now() + 50_000;
    while (!(await running()) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(await running()).toBe(true);
    // The agent, outside the leaf, can still fork: the command starts and ends.
    const during = await pyro.execWorkspace({
      workspace_id: id,
      command: ["echo", "alive"],
      timeout_seconds: 90,
    });
    expect(during).toMatchObject({ exit_code: 0, stdout: "alive\n" });
    const ended = await bomb;
    expect(ended.timed_out).toBe(true);
    // The leaf refused forks: the bomb really hit its limit.
    const events = await sh("cat /sys/fs/cgroup/pyro-exec/pids.events");
    expect(Number(/max (\d+)/.exec(events.stdout)?.[1])).toBeGreaterThan(0);
    await sh("rm /workspace/bomb-running");
    await expectAgentWorks();
  });

  it("reports a full disk to the caller and keeps working", async () => {
    // fallocate takes most of the free space without writing it (the host's sparse state
    // disk stays small); dd then writes until the disk is really full.
    const fill = await sh(
      "avail=$(df -k --output=avail /workspace | tail -n 1); " +
        "fallocate -l $(( (avail - 65536) * 1024 )) /workspace/ballast && " +
        "dd if=/dev/zero of=/workspace/fill bs=1M 2>&1; echo dd=$?",
      120,
    );
    expect(fill.stdout).toMatch(/No space left on device/);
    expect(fill.stdout).toMatch(/dd=1\n$/);
    await expectAgentWorksOnFullDisk();
    await expect(
      pyro.writeWorkspaceFile({ workspace_id: id, path: "notes.txt", text: "x".repeat(65536) }),
    ).rejects.toMatchObject({ message: expect.stringMatching(/disk is full.*delete files/) });
    // A full disk survives a restart: the writable layer mounts again, read-write.
    await pyro.stopWorkspace({ workspace_id: id });
    await pyro.startWorkspace({ workspace_id: id });
    await expectAgentWorksOnFullDisk();
    // Deleting files is the fix, and it works from a full disk.
    expect((await sh("rm /workspace/fill /workspace/ballast && echo freed")).stdout).toBe(
      "freed\n",
    );
    const written = await pyro.writeWorkspaceFile({
      workspace_id: id,
      path: "notes.txt",
      text: "ok\n",
    });
    expect(written.bytes_written).toBe(3);
    await expectAgentWorks();
  });

  it("OOM-kills a memory hog inside its leaf, not the agent", async () => {
    // tail keeps a line in memory, and /dev/zero has no newline: it grows until killed.
    const hog = await sh("exec tail /dev/zero", 120);
    // Killed by SIGKILL (137), and not by its timeout.
    expect(hog).toMatchObject({ exit_code: 137, timed_out: false });
    const events = await sh("cat /sys/fs/cgroup/pyro-exec/memory.events");
    expect(Number(/oom_kill (\d+)/.exec(events.stdout)?.[1])).toBeGreaterThanOrEqual(1);
    await expectAgentWorks();
  });
});

/** On a full disk: the agent answers and a command that forks still runs. */
async function expectAgentWorksOnFullDisk(): Promise<void> {
  await expectAgentWorks();
  const r = await sh("df -k --output=avail /workspace | tail -n 1");
  expect(Number(r.stdout.trim())).toBeLessThan(1024);
}
