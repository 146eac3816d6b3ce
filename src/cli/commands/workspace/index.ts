import type { Command } from "commander";
import type { Pyro } from "../../../sdk/pyro.js";
import { registerContent } from "./content.js";
import { registerCreate } from "./create.js";
import { registerDisk } from "./disk.js";
import { registerExec } from "./exec.js";
import { registerFiles } from "./files.js";
import { registerLifecycle } from "./lifecycle.js";
import { registerService } from "./service.js";
import { registerShell } from "./shell.js";

/** `pyro workspace ...`: persistent workspaces. */
export function registerWorkspace(program: Command, pyro: () => Pyro): void {
  const workspace = program
    .command("workspace")
    .description("Persistent workspaces: one VM whose /workspace survives across commands.");
  registerCreate(workspace, pyro);
  registerLifecycle(workspace, pyro);
  registerExec(workspace, pyro);
  registerFiles(workspace, pyro);
  registerContent(workspace, pyro);
  registerDisk(workspace, pyro);
  registerService(workspace, pyro);
  registerShell(workspace, pyro);
}
