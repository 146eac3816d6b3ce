import { constants } from "node:fs";
import { access, readFile } from "node:fs/promises";
import { release } from "node:os";
import { PyroError } from "../contract/errors.js";
import { readJsonIfExists, writeJsonAtomic } from "../util/fs.js";
import type { Acceleration } from "./driver.js";

export interface AccelerationFacts {
  /** `PYRO_ACCEL` when set. */
  override: string | undefined;
  kvmDeviceExists: boolean;
  kvmDeviceAccessible: boolean;
  /** The CPU advertises hardware virtualisation (`vmx` or `svm`). */
  cpuHasVirtualization: boolean;
  /**
   * The running host kernel (`uname -r`): a cached probe answer holds only for the kernel
   * it was taken on, since a kernel update can fix or break KVM. @default os.release()
   */
  hostKernel?: string;
}

export interface AccelerationDecision {
  acceleration: Acceleration;
  reason: string;
  /** True when a boot probe is still needed to confirm KVM. */
  needsProbe: boolean;
}

/**
 * Decides KVM vs TCG from host facts. `/dev/kvm` existing is not enough: a paravirtual
 * nested KVM exposes the device while lacking `vmx`/`svm`, and a QEMU/KVM launch there
 * aborts (`failed to set MSR 0x10a`). So: flags first, then a short boot probe.
 */
export function decideAcceleration(facts: AccelerationFacts): AccelerationDecision {
  const override = facts.override?.trim().toLowerCase();
  if (override) {
    if (override !== "kvm" && override !== "tcg") {
      throw new PyroError(
        "invalid_argument",
        `PYRO_ACCEL must be "kvm" or "tcg", not "${facts.override}"`,
      );
    }
    return {
      acceleration: override,
      reason: `forced by PYRO_ACCEL=${override}`,
      needsProbe: false,
    };
  }
  if (!facts.kvmDeviceExists) {
    return tcg("/dev/kvm does not exist (no KVM on this host)");
  }
  if (!facts.kvmDeviceAccessible) {
    return tcg("/dev/kvm is not readable and writable by this user (add the user to group kvm)");
  }
  if (!facts.cpuHasVirtualization) {
    return tcg(
      "/dev/kvm exists but the CPU has no vmx/svm flag (nested or paravirtual KVM cannot run a normal guest)",
    );
  }
  return { acceleration: "kvm", reason: "KVM usable", needsProbe: true };
}

function tcg(why: string): AccelerationDecision {
  return {
    acceleration: "tcg",
    reason: `${why}; using TCG software emulation (correct, about 10x slower)`,
    needsProbe: false,
  };
}

export async function readAccelerationFacts(): Promise<AccelerationFacts> {
  const exists = await access("/dev/kvm").then(
    () => true,
    () => false,
  );
  const accessible = await access("/dev/kvm", constants.R_OK | constants.W_OK).then(
    () => true,
    () => false,
  );
  const cpuinfo = await readFile("/proc/cpuinfo", "utf8").catch(() => "");
  const flags = /^flags\s*:(.*)$/m.exec(cpuinfo)?.[1]?.split(/\s+/) ?? [];
  return {
    override: process.env.PYRO_ACCEL || undefined,
    kvmDeviceExists: exists,
    kvmDeviceAccessible: accessible,
    cpuHasVirtualization: flags.includes("vmx") || flags.includes("svm"),
    hostKernel: release(),
  };
}

export interface ResolvedAcceleration {
  acceleration: Acceleration;
  reason: string;
  probed: boolean;
}

interface CachedProbe {
  host_kernel: string;
  acceleration: Acceleration;
  reason: string;
  checked_at: string;
}

/**
 * The acceleration this host will use. A needed KVM probe runs once per host kernel and
 * its answer is cached at `cachePath`; with no `probe` given, nothing is launched.
 */
export async function resolveAcceleration(
  cachePath: string,
  probe: (() => Promise<{ ok: boolean; detail: string; transient?: boolean }>) | undefined,
  facts?: AccelerationFacts,
): Promise<ResolvedAcceleration> {
  const hostFacts = facts ?? (await readAccelerationFacts());
  const hostKernel = hostFacts.hostKernel ?? release();
  const decision = decideAcceleration(hostFacts);
  if (!decision.needsProbe) return { ...decision, probed: false };
  const cached = await readJsonIfExists<CachedProbe>(cachePath);
  if (cached?.host_kernel === hostKernel) {
    return { acceleration: cached.acceleration, reason: cached.reason, probed: true };
  }
  // Without a probe (doctor), report the likely answer and that it is not confirmed yet.
  if (!probe) {
    return {
      ...decision,
      reason: `${decision.reason} (boot probe runs on first VM start)`,
      probed: false,
    };
  }
  const result = await probe();
  const resolved: CachedProbe = result.ok
    ? {
        host_kernel: hostKernel,
        acceleration: "kvm",
        reason: "KVM usable (boot probe passed)",
        checked_at: new Date().toISOString(),
      }
    : {
        host_kernel: hostKernel,
        acceleration: "tcg",
        reason: `KVM boot probe failed (${result.detail}); using TCG software emulation`,
        checked_at: new Date().toISOString(),
      };
  // A probe that only timed out (a loaded host) says nothing lasting: ask again next time.
  if (result.ok || !result.transient) await writeJsonAtomic(cachePath, resolved);
  return { acceleration: resolved.acceleration, reason: resolved.reason, probed: true };
}
