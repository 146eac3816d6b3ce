import { afterAll, describe, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  eventually,
  isolatedHome,
  processGone,
  processesMentioning,
  vmDirs,
} from "../helpers/guest.js";
import { expectedAcceleration } from "../helpers/accel.js";

const home = isolatedHome();
const pyro = new Pyro();

afterAll(async () => {
  for (const vm_id of vmDirs(home)) await pyro.deleteVm({ vm_id }).catch(() => {});
});

describe("VM lifecycle through the SDK", () => {
  it("create → start → status → exec runs one command and then deletes the VM", async () => {
    const created = await pyro.createVm({ environment: "debian:12-base", mem_mib: 256 });
    expect(created).toMatchObject({
      state: "created",
      mem_mib: 256,
      vcpu_count: 1,
      network: false,
      acceleration: null,
    });
    const started = await pyro.startVm({ vm_id: created.vm_id });
    expect(started.state).toBe("started");
    expect(started.acceleration).toBe(expectedAcceleration());
    expect((await pyro.statusVm({ vm_id: created.vm_id })).state).toBe("started");
    expect(await pyro.networkInfoVm({ vm_id: created.vm_id })).toEqual({
      vm_id: created.vm_id,
      network: false,
      interfaces: [],
      policy: "off",
      guest_address: null,
      gateway: null,
      dns: [],
      allowed_domains: [],
      published_ports: [],
      refusals: { refused_total: 0, refused_by_reason: {} },
    });
    const result = await pyro.execVm({
      vm_id: created.vm_id,
      command: ["sh", "-c", "echo hi; exit 4"],
    });
    expect([result.exit_code, result.stdout]).toEqual([4, "hi\n"]);
    await expect(pyro.statusVm({ vm_id: created.vm_id })).rejects.toMatchObject({
      code: "not_found",
    });
    expect(vmDirs(home)).toEqual([]);
    expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
  });

  it("stop powers the VM off and start boots it again", async () => {
    const { vm_id } = await pyro.createVm({ environment: "debian:12-base", mem_mib: 256 });
    await pyro.startVm({ vm_id });
    await expect(pyro.startVm({ vm_id })).rejects.toMatchObject({ code: "conflict" });
    const stopped = await pyro.stopVm({ vm_id });
    expect(stopped.state).toBe("stopped");
    await expect(pyro.stopVm({ vm_id })).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringContaining("stopped"),
    });
    await expect(pyro.execVm({ vm_id, command: ["true"] })).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringContaining("vm_start"),
    });
    expect(processesMentioning(join(home, "vms", vm_id))).toEqual([]);
    expect((await pyro.startVm({ vm_id })).state).toBe("started");
    expect((await pyro.execVm({ vm_id, command: ["true"] })).exit_code).toBe(0);
  });

  it("deletes a started VM with its processes", async () => {
    const { vm_id } = await pyro.createVm({ environment: "debian:12-base", mem_mib: 256 });
    await pyro.startVm({ vm_id });
    expect(await pyro.deleteVm({ vm_id })).toEqual({ vm_id, deleted: true });
    expect(vmDirs(home)).not.toContain(vm_id);
    expect(await eventually(() => processesMentioning(join(home, "vms", vm_id)).length === 0)).toBe(
      true,
    );
  });

  it("the shim destroys a started VM when its ttl passes", async () => {
    const { vm_id } = await pyro.createVm({
      environment: "debian:12-base",
      mem_mib: 256,
      ttl_seconds: 6,
    });
    await pyro.startVm({ vm_id });
    expect(await eventually(() => !vmDirs(home).includes(vm_id), 20_000)).toBe(true);
    await expect(pyro.statusVm({ vm_id })).rejects.toMatchObject({ code: "not_found" });
    expect(await eventually(() => processesMentioning(join(home, "vms", vm_id)).length === 0)).toBe(
      true,
    );
  });

  it("reapExpired removes a VM whose shim was killed, with its VMM, and expired created VMs", async () => {
    const { vm_id } = await pyro.createVm({ environment: "debian:12-base", mem_mib: 256 });
    await pyro.startVm({ vm_id });
    const shim = JSON.parse(readFileSync(join(home, "vms", vm_id, "shim.json"), "utf8"));
    process.kill(shim.shim_pid, "SIGKILL");
    // kill() only queues the signal: wait until the shim has really exited.
    expect(await eventually(() => processGone(shim.shim_pid))).toBe(true);
    expect((await pyro.statusVm({ vm_id })).state).toBe("failed");
    const idle = await pyro.createVm({ environment: "debian:12-base", ttl_seconds: 1 });
    await new Promise((r) => setTimeout(r, 1100));
    const reaped = await pyro.reapExpired();
    expect(reaped.removed).toEqual(
      expect.arrayContaining([
        { vm_id, reason: "orphaned" },
        { vm_id: idle.vm_id, reason: "expired" },
      ]),
    );
    expect(vmDirs(home)).toEqual([]);
    expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
  });

  it("says not_found for ids that do not exist or are malformed", async () => {
    const before = vmDirs(home);
    await expect(pyro.statusVm({ vm_id: "vm_000000000000" })).rejects.toMatchObject({
      code: "not_found",
    });
    await expect(pyro.startVm({ vm_id: "../../etc" })).rejects.toMatchObject({ code: "not_found" });
    await expect(pyro.deleteVm({ vm_id: "" })).rejects.toMatchObject({ code: "invalid_argument" });
    expect(vmDirs(home)).toEqual(before);
  });
});
