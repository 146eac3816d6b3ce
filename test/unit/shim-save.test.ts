import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { vmFiles } from "../../src/shim/launch.js";
import { forkVm, saveable, saveVm, waitUntilIdle, type SaveableVmm } from "../../src/shim/save.js";
import type { VmmHandle } from "../../src/vmm/driver.js";
import type { SavedStateInputs } from "../../src/vmstate/saved-state.js";

// The shim's save steps against a scripted VMM handle: the order of save, copy, describe
// and resume, and what a failure leaves. The real save is test/guest/pause-fork.test.ts.

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "pyro-shim-save-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const INPUTS = {
  format: 1,
  pyro_version: "0.0.0",
  vmm: "qemu",
  vmm_binary: null,
  kernel: null,
  initrd: null,
  rootfs: null,
  vcpu_count: 1,
  mem_mib: 4,
  acceleration: "tcg",
  network: false,
} satisfies SavedStateInputs;
const SPEC = { inputs: Promise.resolve(INPUTS), memMib: 4 };

/** A handle whose save writes `state` (or fails after writing part of it). */
function scriptedVmm(options: { failSave?: boolean } = {}) {
  const calls: string[] = [];
  const vmm = {
    saveState: async (path: string) => {
      calls.push("save");
      await writeFile(path, options.failSave ? "part" : "device state");
      if (options.failSave) throw new Error("migration failed: disk full");
    },
    resume: async () => void calls.push("resume"),
  } as unknown as SaveableVmm;
  return { vmm, calls };
}

describe("saving a VM (src/shim/save.ts)", () => {
  it("writes the device state, then its description; the guest stays stopped", async () => {
    const { vmm, calls } = scriptedVmm();
    await saveVm(vmm, dir, SPEC, { resumeOnFailure: true });
    expect(calls).toEqual(["save"]);
    const meta = JSON.parse(readFileSync(vmFiles(dir).savedState, "utf8"));
    expect(meta).toMatchObject({ vmstate_bytes: 12, memory_bytes: 4 * 2 ** 20, inputs: INPUTS });
  });

  it("a failed save leaves no partial state and lets the guest continue", async () => {
    const { vmm, calls } = scriptedVmm({ failSave: true });
    await expect(saveVm(vmm, dir, SPEC, { resumeOnFailure: true })).rejects.toThrow("disk full");
    expect(calls).toEqual(["save", "resume"]);
    expect(existsSync(vmFiles(dir).vmstate)).toBe(false);
    expect(existsSync(vmFiles(dir).savedState)).toBe(false);
  });

  it("a fork copies RAM and disk while stopped, then resumes; a failed copy still resumes", async () => {
    const parent = join(dir, "parent");
    const child = join(dir, "child");
    for (const d of [parent, child]) mkdirSync(d);
    writeFileSync(vmFiles(parent).memory, "ram");
    writeFileSync(vmFiles(parent).stateDisk, "disk");
    const { vmm, calls } = scriptedVmm();
    const spec = {
      ...SPEC,
      memoryPath: vmFiles(parent).memory,
      stateDiskPath: vmFiles(parent).stateDisk,
    };
    expect(await forkVm(vmm, child, spec, () => {})).toBeGreaterThanOrEqual(0);
    expect(calls).toEqual(["save", "resume"]);
    expect(readFileSync(vmFiles(child).memory, "utf8")).toBe("ram");
    expect(readFileSync(vmFiles(child).stateDisk, "utf8")).toBe("disk");
    expect(existsSync(vmFiles(child).savedState)).toBe(true);

    rmSync(vmFiles(parent).memory);
    const second = scriptedVmm();
    const elsewhere = join(dir, "elsewhere");
    mkdirSync(elsewhere);
    await expect(forkVm(second.vmm, elsewhere, spec, () => {})).rejects.toMatchObject({
      message: expect.stringContaining("copy the VM's files failed"),
    });
    expect(second.calls).toEqual(["save", "resume"]);
    expect(existsSync(vmFiles(elsewhere).vmstate)).toBe(false);
    expect(existsSync(vmFiles(elsewhere).savedState)).toBe(false);
  });

  it("refuses a driver that cannot save, and requests that stay in flight", async () => {
    const hostHandle = { stop: async () => {} } as unknown as VmmHandle;
    expect(() => saveable(hostHandle, "host", null)).toThrow(
      expect.objectContaining({
        code: "unavailable",
        message: "the host driver cannot save a running VM (only QEMU can); stop it instead",
      }),
    );
    await expect(waitUntilIdle(() => 2, 50)).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringContaining("2 request(s) still running in the VM"),
    });
    let inFlight = 1;
    setTimeout(() => (inFlight = 0), 30);
    await expect(waitUntilIdle(() => inFlight, 5_000)).resolves.toBeUndefined();
  });
});
