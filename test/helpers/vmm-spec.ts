import type { VmmLaunchSpec } from "../../src/vmm/driver.js";
import type { VmmFacts } from "../../src/vmm/select.js";

/** A launch spec with recognisable paths, for drivers' pure command-line/config tests. */
export function sampleLaunchSpec(overrides: Partial<VmmLaunchSpec> = {}): VmmLaunchSpec {
  return {
    vmId: "vm-1",
    kernelPath: "/k/vmlinux",
    initrdPath: "/k/initramfs.cpio",
    kernelArgs: ["pyro.hostname=vm-1"],
    vcpuCount: 2,
    memMib: 512,
    acceleration: "tcg",
    disks: [
      { path: "/img/rootfs.ext4", readOnly: true },
      { path: "/vm/state.ext4", readOnly: false },
    ],
    agentSocketPath: "/vm/agent.sock",
    controlSocketPath: "/vm/vmm.sock",
    consoleLogPath: "/vm/console.log",
    ...overrides,
  };
}

/** What the VMM choice sees on a KVM host with firecracker on PATH, plus overrides. */
export const vmmFacts = (over: Partial<VmmFacts>): VmmFacts => ({
  override: undefined,
  acceleration: "kvm",
  firecrackerPath: "/usr/bin/firecracker",
  firecrackerLookup: "PATH",
  ...over,
});
