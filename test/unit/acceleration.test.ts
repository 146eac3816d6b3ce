import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { decideAcceleration, type AccelerationFacts } from "../../src/vmm/acceleration.js";
import { tempDir } from "../helpers/temp.js";

const tempCache = () => join(tempDir("pyro-accel-"), "acceleration.json");

const hardwareKvm: AccelerationFacts = {
  override: undefined,
  kvmDeviceExists: true,
  kvmDeviceAccessible: true,
  cpuHasVirtualization: true,
};

describe("acceleration decision", () => {
  it("chooses KVM, pending a boot probe, on a host with hardware virtualisation", () => {
    expect(decideAcceleration(hardwareKvm)).toMatchObject({
      acceleration: "kvm",
      needsProbe: true,
    });
  });

  it("falls back to TCG when /dev/kvm exists but the CPU has no vmx/svm (paravirtual nested KVM)", () => {
    const d = decideAcceleration({ ...hardwareKvm, cpuHasVirtualization: false });
    expect(d).toMatchObject({ acceleration: "tcg", needsProbe: false });
    expect(d.reason).toMatch(/vmx\/svm/);
  });

  it("falls back to TCG without /dev/kvm or without access to it", () => {
    expect(decideAcceleration({ ...hardwareKvm, kvmDeviceExists: false }).acceleration).toBe("tcg");
    const noAccess = decideAcceleration({ ...hardwareKvm, kvmDeviceAccessible: false });
    expect(noAccess.acceleration).toBe("tcg");
    expect(noAccess.reason).toMatch(/group kvm/);
  });

  it("obeys PYRO_ACCEL and rejects other values", () => {
    expect(decideAcceleration({ ...hardwareKvm, override: "tcg" })).toMatchObject({
      acceleration: "tcg",
      needsProbe: false,
    });
    expect(
      decideAcceleration({ ...hardwareKvm, kvmDeviceExists: false, override: "kvm" }).acceleration,
    ).toBe("kvm");
    expect(() => decideAcceleration({ ...hardwareKvm, override: "xen" })).toThrow(/PYRO_ACCEL/);
  });
});

describe("acceleration probe and cache", () => {
  it("uses KVM when the boot probe passes and asks only once per host kernel", async () => {
    const { resolveAcceleration } = await import("../../src/vmm/acceleration.js");
    const cache = tempCache();
    let probes = 0;
    const probe = async () => {
      probes += 1;
      return { ok: true, detail: "booted" };
    };
    expect((await resolveAcceleration(cache, probe, hardwareKvm)).acceleration).toBe("kvm");
    expect((await resolveAcceleration(cache, probe, hardwareKvm)).acceleration).toBe("kvm");
    expect(probes).toBe(1);
  });

  it("falls back to TCG, and says why, when the boot probe fails", async () => {
    const { resolveAcceleration } = await import("../../src/vmm/acceleration.js");
    const cache = tempCache();
    const failing = async () => ({ ok: false, detail: "failed to set MSR 0x10a" });
    const resolved = await resolveAcceleration(cache, failing, hardwareKvm);
    expect(resolved.acceleration).toBe("tcg");
    expect(resolved.reason).toMatch(/MSR 0x10a/);
  });
});

describe("a probe that only timed out", () => {
  it("falls back to TCG now but is asked again next time", async () => {
    const { resolveAcceleration } = await import("../../src/vmm/acceleration.js");
    const cache = tempCache();
    let probes = 0;
    const slow = async () => {
      probes += 1;
      return { ok: false, detail: "timed out after 20000 ms", transient: true };
    };
    expect((await resolveAcceleration(cache, slow, hardwareKvm)).acceleration).toBe("tcg");
    await resolveAcceleration(cache, slow, hardwareKvm);
    expect(probes).toBe(2);
  });
});

describe("a cached probe answer and the host kernel", () => {
  const kernelA = { ...hardwareKvm, hostKernel: "6.1.0-40-amd64" };
  const kernelB = { ...hardwareKvm, hostKernel: "6.1.0-41-amd64" };

  it("probes again after the host kernel changes, and caches the new kernel's answer", async () => {
    const { resolveAcceleration } = await import("../../src/vmm/acceleration.js");
    const { readFile } = await import("node:fs/promises");
    const cache = tempCache();
    const probed: string[] = [];
    // KVM broken on kernel A, fixed on kernel B: the old answer must not stick.
    const probeOn = (kernel: string, ok: boolean) => async () => {
      probed.push(kernel);
      return { ok, detail: ok ? "booted" : "failed to set MSR 0x10a" };
    };
    const onA = await resolveAcceleration(cache, probeOn("A", false), kernelA);
    expect(onA.acceleration).toBe("tcg");
    expect((await resolveAcceleration(cache, probeOn("A", true), kernelA)).acceleration).toBe(
      "tcg",
    );
    expect(probed).toEqual(["A"]);
    const onB = await resolveAcceleration(cache, probeOn("B", true), kernelB);
    expect(onB).toMatchObject({ acceleration: "kvm", probed: true });
    expect(probed).toEqual(["A", "B"]);
    expect(JSON.parse(await readFile(cache, "utf8"))).toMatchObject({
      host_kernel: "6.1.0-41-amd64",
      acceleration: "kvm",
    });
    // And back on A (a reboot into the old kernel) it asks again rather than trusting B's answer.
    await resolveAcceleration(cache, probeOn("A", false), kernelA);
    expect(probed).toEqual(["A", "B", "A"]);
  });

  it("reads the running kernel's release as a host fact", async () => {
    const { readAccelerationFacts } = await import("../../src/vmm/acceleration.js");
    const { release } = await import("node:os");
    expect((await readAccelerationFacts()).hostKernel).toBe(release());
  });
});
