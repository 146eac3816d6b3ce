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
import { SandboxRuntime, type RuntimeOptions } from "../manager/runtime.js";
import { workspaceServices } from "../manager/services.js";
import { ShellManager } from "../manager/shells.js";
import { VmManager } from "../manager/vms.js";
import { WorkspaceContent } from "../manager/workspace-content.js";
import { WorkspaceDisk } from "../manager/workspace-disk.js";
import { WorkspaceManager } from "../manager/workspaces.js";
import type { ProgressSink } from "../util/progress.js";

/**
 * Everything behind the `Pyro` facade, made on a facade's first call (`sdk/pyro.ts`
 * imports this module only then, so importing the SDK loads none of it).
 */
export function createCore(options: RuntimeOptions & { progress: ProgressSink }) {
  const runtime = new SandboxRuntime(options);
  const workspaces = new WorkspaceManager(runtime);
  return {
    vms: new VmManager(runtime),
    workspaces,
    content: new WorkspaceContent(workspaces),
    disk: new WorkspaceDisk(options.progress),
    services: workspaceServices(workspaces),
    shells: new ShellManager(workspaces),
    host: hostCalls(options.progress),
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
