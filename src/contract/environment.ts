import { z } from "zod";
import { count } from "./fields.js";
import { changes, defineOperation, readOnly } from "./operation.js";

export const EnvironmentParams = z.object({
  environment: z.string().min(1).describe('Environment name, e.g. "debian:12".'),
});

export const EnvironmentSummary = z.object({
  name: z.string(),
  description: z.string(),
  installed: z.boolean().describe("Built and cached on this host."),
  packages: z.array(z.string()).describe("Packages the recipe adds to the minimal base."),
  image_size_bytes: count().nullable(),
});

export const EnvironmentManifest = z.object({
  name: z.string(),
  description: z.string(),
  recipe_digest: z.string(),
  suite: z.string(),
  packages: z.array(z.object({ name: z.string(), version: z.string() })),
  image_size_bytes: count(),
  image_sha256: z.string(),
  kernel_version: z.string(),
  agent_version: z.string(),
  mirror: z.string(),
  built_at: z.string(),
  build_seconds: z.number(),
});

export const TemplateSummary = z.object({
  key: z.string(),
  kind: z
    .enum(["early", "late"])
    .describe(
      "late: parked after init, for fresh disks (run); early: before the root mount, any disk.",
    ),
  vcpu_count: count(),
  mem_mib: count(),
  acceleration: z.enum(["kvm", "tcg"]),
  network: z.boolean().describe("Built for VMs with a NIC."),
  state_disk_bytes: count(),
  built_at: z.string(),
  build_ms: z.number(),
  disk_bytes: count().describe("Host disk the template takes (its RAM file is sparse)."),
  current: z
    .boolean()
    .describe("Built by this host's QEMU from the current kernel, agent and image."),
  failure: z.string().nullable().describe("A recent build or restore failure, if any."),
});

export const listEnvironments = defineOperation({
  sdkMethod: "listEnvironments",
  mcpTool: "vm_list_environments",
  cliCommand: "env list",
  annotations: readOnly("List environments"),
  description: "List the environments VMs can boot, and which are already built on this host.",
  params: z.object({}),
  result: z.object({ environments: z.array(EnvironmentSummary) }),
  errors: ["internal"],
});

export const pullEnvironment = defineOperation({
  sdkMethod: "pullEnvironment",
  mcpTool: undefined,
  cliCommand: "env pull",
  annotations: changes("Build an environment", {
    destructive: false,
    idempotent: true,
    openWorld: true,
  }),
  description:
    "Build (or verify and repair) an environment, the kernel and agent it boots with, and the memory template warm boots of a default VM restore.",
  params: EnvironmentParams,
  result: z.object({
    environment: z.string(),
    status: z.enum(["cached", "built", "repaired"]),
    manifest: EnvironmentManifest,
    template: z
      .object({
        status: z.enum(["cached", "built", "failed", "unavailable"]),
        key: z.string().nullable(),
        reason: z.string().nullable(),
      })
      .describe("The memory template of a default VM of the environment (warm boots)."),
  }),
  errors: ["not_found", "unavailable", "internal"],
});

export const inspectEnvironment = defineOperation({
  sdkMethod: "inspectEnvironment",
  mcpTool: undefined,
  cliCommand: "env inspect",
  annotations: readOnly("Inspect an environment"),
  description: "Show an environment's recipe and, when built, its manifest and memory templates.",
  params: EnvironmentParams,
  result: z.object({
    name: z.string(),
    description: z.string(),
    installed: z.boolean(),
    recipe: z.object({
      suite: z.string(),
      variant: z.string(),
      packages: z.array(z.string()),
      digest: z.string(),
    }),
    image_path: z.string().nullable(),
    manifest: EnvironmentManifest.nullable(),
    templates: z
      .array(TemplateSummary)
      .describe("Memory templates built from this environment (one per VM shape)."),
  }),
  errors: ["not_found", "internal"],
});

export const pruneEnvironments = defineOperation({
  sdkMethod: "pruneEnvironments",
  mcpTool: undefined,
  cliCommand: "env prune",
  annotations: changes("Prune unused environment files", {
    destructive: true,
    idempotent: true,
    openWorld: false,
  }),
  description:
    "Delete cached kernels, agents, environment images and memory templates that nothing current uses.",
  params: z.object({}),
  result: z.object({
    removed: z.array(z.string()),
    freed_bytes: count(),
    environments: z.array(z.string()),
  }),
  errors: ["internal"],
});
