import * as disk from "./disk.js";
import * as environment from "./environment.js";
import * as services from "./services.js";
import * as shells from "./shells.js";
import * as vm from "./vm.js";
import * as ws from "./workspace.js";
import type { McpProfile } from "./profiles.js";

/**
 * Every public operation, in the order surfaces list them. The MCP tool list, the SDK
 * method list and the CLI are checked against this (test/unit/contract.test.ts).
 */
export const OPERATIONS = [
  environment.listEnvironments,
  environment.pullEnvironment,
  environment.inspectEnvironment,
  environment.pruneEnvironments,
  vm.runInVm,
  vm.createVm,
  vm.startVm,
  vm.execVm,
  vm.stopVm,
  vm.deleteVm,
  vm.statusVm,
  vm.networkInfoVm,
  vm.reapExpired,
  ws.createWorkspace,
  ws.listWorkspaces,
  ws.statusWorkspace,
  ws.updateWorkspace,
  ws.logsWorkspace,
  ws.deleteWorkspace,
  ws.stopWorkspace,
  ws.startWorkspace,
  // VM state (issue 10): workspace-full only.
  ws.pauseWorkspace,
  ws.resumeWorkspace,
  ws.forkWorkspace,
  ws.execWorkspace,
  ws.pushWorkspaceSync,
  ws.exportWorkspace,
  ws.diffWorkspace,
  ws.resetWorkspace,
  ws.listWorkspaceFiles,
  ws.readWorkspaceFile,
  ws.writeWorkspaceFile,
  ws.applyWorkspacePatch,
  // Offline disk tools (issue 10): workspace-full only.
  disk.exportWorkspaceDisk,
  disk.listWorkspaceDisk,
  disk.readWorkspaceDisk,
  ws.createSnapshot,
  ws.listSnapshots,
  ws.deleteSnapshot,
  // Services: tools of workspace-full only (docs/architecture.md says why).
  services.startService,
  services.listServices,
  services.statusService,
  services.logsService,
  services.stopService,
  // shells (issue 8)
  shells.openShell,
  shells.readShell,
  shells.writeShell,
  shells.signalShell,
  shells.closeShell,
] as const;

export type AnyOperation = (typeof OPERATIONS)[number];

export { DEFAULT_MCP_PROFILE, MCP_PROFILES, type McpProfile } from "./profiles.js";

/**
 * Tools per profile (CONTRACT.md). `workspace-core` names workspace tools that join as
 * their operations land; a profile only exposes tools that exist in OPERATIONS.
 */
export const PROFILE_TOOLS: Record<McpProfile, readonly string[] | "all"> = {
  "vm-run": ["vm_run"],
  "workspace-core": [
    "vm_run",
    "workspace_create",
    "workspace_list",
    "workspace_status",
    "workspace_update",
    "workspace_exec",
    "workspace_sync_push",
    "workspace_file_list",
    "workspace_file_read",
    "workspace_file_write",
    "workspace_patch_apply",
    "workspace_diff",
    "workspace_export",
    "workspace_reset",
    "workspace_delete",
  ],
  "workspace-full": "all",
};

export function operationsForProfile(profile: McpProfile): AnyOperation[] {
  const wanted = PROFILE_TOOLS[profile];
  return OPERATIONS.filter(
    (op) => op.mcpTool !== undefined && (wanted === "all" || wanted.includes(op.mcpTool)),
  );
}
