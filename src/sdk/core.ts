import type { z } from "zod";
import { EnvironmentParams } from "../contract/environment.js";
import { parseParams } from "../contract/validate.js";
import { runDoctor } from "../manager/doctor.js";
import {
  inspectEnvironment,
  listEnvironments,
  pruneEnvironments,
  pullEnvironment,
} from "../manager/environments.js";
import { confineHostPaths } from "../manager/host-paths.js";
import { workspaceServices } from "../manager/services.js";
import { ShellManager } from "../manager/shells.js";
import { WorkspaceContent } from "../manager/workspace-content.js";
import { WorkspaceDisk } from "../manager/workspace-disk.js";
import { WorkspaceManager } from "../manager/workspaces.js";
import type { ProgressSink } from "../util/progress.js";
import type { VmCore } from "./vm-core.js";

/**
 * Everything behind the `Pyro` facade but the VM manager, made on a facade's first call
 * that needs it (`sdk/pyro.ts` imports this module only then, so importing the SDK loads
 * none of it), over the runtime of the VM core (`vm-core.ts`).
 */
export function createCore({ runtime }: VmCore, progress: ProgressSink) {
  const workspaces = new WorkspaceManager(runtime);
  return {
    workspaces,
    content: new WorkspaceContent(workspaces),
    disk: new WorkspaceDisk(progress),
    services: workspaceServices(workspaces),
    shells: new ShellManager(workspaces),
    host: hostCalls(progress),
  };
}

export type Core = ReturnType<typeof createCore>;

/** The calls about the host and its environment cache rather than one VM or workspace. */
function hostCalls(progress: ProgressSink) {
  return {
    listEnvironments: async () => ({ environments: await listEnvironments() }),
    pullEnvironment: async (options: z.input<typeof EnvironmentParams>) =>
      pullEnvironment(parseParams(EnvironmentParams, options).environment, progress),
    inspectEnvironment: async (options: z.input<typeof EnvironmentParams>) =>
      inspectEnvironment(parseParams(EnvironmentParams, options).environment),
    pruneEnvironments: () => pruneEnvironments(),
    doctor: () => runDoctor(),
    confineHostPaths,
  };
}
