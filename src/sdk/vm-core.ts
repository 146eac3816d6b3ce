import { SandboxRuntime, type RuntimeOptions } from "../manager/runtime.js";
import { VmManager } from "../manager/vms.js";
import type { ProgressSink } from "../util/progress.js";

/**
 * The part of the core a one-shot VM needs: the runtime every manager shares, and the VM
 * manager. It loads on its own because `pyro run` needs nothing else, and the workspace
 * side (archives, diffs, disks, shells) costs about 100 ms more to load (issue 10). The
 * rest of the core (`core.ts`) builds on the same runtime.
 */
export function createVmCore(options: RuntimeOptions & { progress: ProgressSink }) {
  const runtime = new SandboxRuntime(options);
  return { runtime, vms: new VmManager(runtime) };
}

export type VmCore = ReturnType<typeof createVmCore>;
