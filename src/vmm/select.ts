import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import { delimiter, join, resolve } from "node:path";
import { PyroError } from "../contract/errors.js";
import type { Acceleration, VmmDriver } from "./driver.js";

export type VmmName = VmmDriver["name"];

export interface VmmFacts {
  /** `PYRO_VMM` when set. */
  override: string | undefined;
  acceleration: Acceleration;
  /** An executable `firecracker` that was found, absolute; undefined when none was. */
  firecrackerPath: string | undefined;
  /** Where the lookup looked, for messages: `PYRO_FIRECRACKER=...` or `PATH`. */
  firecrackerLookup: string;
}

export interface VmmDecision {
  vmm: VmmName;
  /** Why, in words `pyro doctor` prints. */
  reason: string;
}

/** What `pyro doctor` says about the host-process driver: it is not a VM. */
export const HOST_VMM_REASON =
  "forced by PYRO_VMM=host: no VM, the agent runs as a host process with this user's " +
  "rights (a test driver; it isolates nothing)";

/**
 * QEMU unless Firecracker can really run: a `firecracker` binary and KVM (it has no
 * software emulation). `PYRO_VMM=qemu|firecracker` forces the choice; forcing Firecracker
 * where it cannot run is an error rather than a silent fallback. `PYRO_VMM=host` (tests
 * only) is never chosen by itself.
 */
export function decideVmm(facts: VmmFacts): VmmDecision {
  const override = facts.override?.trim().toLowerCase();
  if (override && override !== "qemu" && override !== "firecracker" && override !== "host") {
    throw new PyroError(
      "invalid_argument",
      `PYRO_VMM must be "qemu" or "firecracker" (or "host" in tests), not "${facts.override}"`,
    );
  }
  if (override === "qemu") return { vmm: "qemu", reason: "forced by PYRO_VMM=qemu" };
  if (override === "host") return { vmm: "host", reason: HOST_VMM_REASON };
  const found = facts.firecrackerPath;
  if (override === "firecracker") {
    if (facts.acceleration !== "kvm") {
      throw new PyroError(
        "unavailable",
        "PYRO_VMM=firecracker, but Firecracker needs KVM and this host runs guests under TCG " +
          "(see the acceleration line of `pyro doctor`); unset PYRO_VMM or set PYRO_VMM=qemu",
      );
    }
    if (!found) {
      throw new PyroError(
        "unavailable",
        `PYRO_VMM=firecracker, but no executable firecracker was found (${facts.firecrackerLookup}); ` +
          "put it on PATH or set PYRO_FIRECRACKER=/path/to/firecracker",
      );
    }
    return { vmm: "firecracker", reason: `forced by PYRO_VMM=firecracker (${found})` };
  }
  if (!found) {
    return {
      vmm: "qemu",
      reason: `no executable firecracker found (${facts.firecrackerLookup}); QEMU is the default`,
    };
  }
  if (facts.acceleration !== "kvm") {
    return {
      vmm: "qemu",
      reason: `${found} found, but Firecracker needs KVM and this host uses TCG`,
    };
  }
  return { vmm: "firecracker", reason: `${found} found and KVM is usable` };
}

/** `PYRO_FIRECRACKER` if set (and only it), else `firecracker` on `PATH`. */
export async function findFirecracker(
  env: NodeJS.ProcessEnv,
): Promise<{ path: string | undefined; lookup: string }> {
  if (env.PYRO_FIRECRACKER) {
    const path = resolve(env.PYRO_FIRECRACKER);
    return {
      path: (await isExecutableFile(path)) ? path : undefined,
      lookup: `PYRO_FIRECRACKER=${env.PYRO_FIRECRACKER}`,
    };
  }
  for (const dir of (env.PATH ?? "").split(delimiter).filter(Boolean)) {
    const path = resolve(join(dir, "firecracker"));
    if (await isExecutableFile(path)) return { path, lookup: "PATH" };
  }
  return { path: undefined, lookup: "PATH" };
}

async function isExecutableFile(path: string): Promise<boolean> {
  const file = await stat(path).catch(() => undefined);
  if (!file?.isFile()) return false;
  return access(path, constants.X_OK).then(
    () => true,
    () => false,
  );
}

/** The VMM for VMs on this host (looks for the binary, then decides). */
export async function chooseDriver(
  acceleration: Acceleration,
  env: NodeJS.ProcessEnv = process.env,
): Promise<VmmDecision> {
  const firecracker = await findFirecracker(env);
  return decideVmm({
    override: env.PYRO_VMM || undefined,
    acceleration,
    firecrackerPath: firecracker.path,
    firecrackerLookup: firecracker.lookup,
  });
}

/** `PYRO_VMM=host`: the only way the host-process driver is ever used. */
export function hostVmmForced(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.PYRO_VMM?.trim().toLowerCase() === "host";
}

/**
 * The driver the shim boots its VM with, as the manager chose it (`launch.json`). The
 * host-process driver runs guest commands unisolated on the host, so a launch config
 * alone cannot ask for it: the shim's own environment must say `PYRO_VMM=host` too.
 */
export async function createDriver(
  vmm: VmmName,
  env: NodeJS.ProcessEnv = process.env,
): Promise<VmmDriver> {
  // Each driver loads only when chosen: the shim starts its VMM right after this, and the
  // others' modules (Firecracker's pulls in node:http) would only delay that (issue 10).
  if (vmm === "qemu") return new (await import("./qemu.js")).QemuDriver();
  if (vmm === "host") {
    if (!hostVmmForced(env)) {
      throw new PyroError(
        "unavailable",
        "this VM was set up for the host-process test driver, which runs commands without " +
          "a VM; set PYRO_VMM=host to allow it, or delete the VM and create it without it",
      );
    }
    return new (await import("./host-process.js")).HostProcessDriver();
  }
  const { path } = await findFirecracker(env);
  const { FirecrackerDriver } = await import("./firecracker.js");
  return new FirecrackerDriver(path ? { binary: path } : {});
}
