import { z } from "zod";
import { count, integer, readMaxBytes } from "./fields.js";
import { changes, defineOperation, readOnly } from "./operation.js";

/**
 * Offline disk tools: a stopped workspace's whole root file system (the environment's
 * image with the workspace's changes on top), read from its disk on the host without
 * booting. Runtime-only paths (/run/pyro-*) never appear.
 */

const workspaceId = z
  .string()
  .min(1)
  .describe('The workspace id returned by workspace_create, e.g. "ws_0123456789ab".');
const diskPath = z
  .string()
  .min(1)
  .max(4096)
  .describe('An absolute path in the guest\'s root file system, e.g. "/etc/os-release".');

export const DiskEntry = z.object({
  path: z.string(),
  artifact_type: z.enum(["file", "directory", "symlink", "other"]),
  size_bytes: count(),
  link_target: z.string().nullable(),
  mode: z.string().describe('Permission bits in octal, e.g. "0755".'),
  uid: integer(0, 2 ** 32 - 1),
  gid: integer(0, 2 ** 32 - 1),
});

const DISK_ERRORS = [
  "invalid_argument",
  "not_found",
  "conflict",
  "unavailable",
  "guest_error",
  "internal",
] as const;

export const MAX_DISK_LIST_ENTRIES = 10_000;

export const listWorkspaceDisk = defineOperation({
  sdkMethod: "listWorkspaceDisk",
  mcpTool: "workspace_disk_list",
  cliCommand: "workspace disk list",
  // Read-only in content: replaying the disk's journal first only does what the guest's
  // next mount would do.
  annotations: readOnly("List a stopped workspace's disk"),
  description:
    "List a path of a stopped workspace's whole root file system, read offline from its disk. Use it to inspect a workspace without booting it.",
  params: z.object({
    workspace_id: workspaceId,
    path: diskPath.default("/"),
    recursive: z.boolean().default(false).describe("Walk subdirectories too."),
  }),
  result: z.object({
    workspace_id: z.string(),
    path: z.string(),
    recursive: z.boolean(),
    entries: z.array(DiskEntry),
    truncated: z
      .boolean()
      .describe(`More than ${MAX_DISK_LIST_ENTRIES} entries; list a deeper path.`),
  }),
  errors: DISK_ERRORS,
});

export const readWorkspaceDisk = defineOperation({
  sdkMethod: "readWorkspaceDisk",
  mcpTool: "workspace_disk_read",
  cliCommand: "workspace disk read",
  annotations: readOnly("Read a file from a stopped workspace's disk"),
  description:
    "Read a file of a stopped workspace's root file system, up to max_bytes, offline from its disk. Text comes back as UTF-8, anything else as base64.",
  params: z.object({
    workspace_id: workspaceId,
    path: diskPath,
    max_bytes: readMaxBytes,
  }),
  result: z.object({
    workspace_id: z.string(),
    path: z.string(),
    size_bytes: count(),
    content: z.string(),
    encoding: z.enum(["utf-8", "base64"]),
    truncated: z.boolean(),
  }),
  errors: DISK_ERRORS,
});

export const exportWorkspaceDisk = defineOperation({
  sdkMethod: "exportWorkspaceDisk",
  mcpTool: "workspace_disk_export",
  cliCommand: "workspace disk export",
  // `overwrite` replaces a host path; the same call again writes the same image.
  annotations: changes("Export a stopped workspace's disk as an ext4 image", {
    destructive: true,
    idempotent: true,
    openWorld: false,
  }),
  description:
    "Write a stopped workspace's whole root file system as a standalone raw ext4 image to a host path, offline from its disk.",
  params: z.object({
    workspace_id: workspaceId,
    output_path: z
      .string()
      .describe("Host path of the image to create; it must not exist unless overwrite is set."),
    overwrite: z.boolean().default(false).describe("Replace output_path if it exists."),
  }),
  result: z.object({
    workspace_id: z.string(),
    output_path: z.string(),
    size_bytes: count().describe("Size of the image file."),
    entries: count().describe("Files, directories and links in the image."),
    bytes: count().describe("Bytes of file content in the image."),
    skipped_entries: count().describe(
      "Entries left out: sockets, symlinks whose target could not be read, and device nodes and fifos when pyro does not run as root.",
    ),
  }),
  errors: DISK_ERRORS,
});
