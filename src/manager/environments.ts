import { agentVersion } from "../env/agent.js";
import {
  inspectEnvironment as inspectImage,
  pruneEnvironments as pruneImages,
  pullEnvironment as pullImage,
} from "../env/environments.js";
import { cachedKernel } from "../env/kernel.js";
import { stableJson } from "../util/json.js";
import type { ProgressSink } from "../util/progress.js";
import { qemuIdentity, TEMPLATE_FORMAT_VERSION } from "../vmstate/template-key.js";
import { listTemplates, pruneTemplates, type TemplateManifest } from "../vmstate/templates.js";
import { SandboxRuntime } from "./runtime.js";

/** Environment operations of the core, as the SDK facade sees them. */
export { listEnvironments } from "../env/environments.js";

/** Builds or verifies the environment, then the memory template of a default VM of it. */
export async function pullEnvironment(name: string, progress: ProgressSink) {
  const image = await pullImage(name, progress);
  const template = await new SandboxRuntime({ progress }).pullTemplate(name);
  return { ...image, template };
}

/** The environment's recipe and manifest, and the memory templates built from it. */
export async function inspectEnvironment(name: string) {
  const image = await inspectImage(name);
  const templates = [];
  for (const entry of await listTemplates()) {
    const manifest = entry.manifest;
    if (manifest?.inputs.environment.name !== name) continue;
    const shape = shapeOfArgs(manifest.inputs.qemu_args);
    templates.push({
      key: entry.key,
      kind: manifest.inputs.kind ?? "early",
      ...shape,
      state_disk_bytes: manifest.inputs.state_disk_bytes,
      built_at: manifest.built_at,
      build_ms: manifest.build_ms,
      disk_bytes: entry.disk_bytes,
      current: await templateIsCurrent(manifest),
      failure: entry.failure ? `${entry.failure.stage}: ${entry.failure.error}` : null,
    });
  }
  return { ...image, templates };
}

/** Unused images, kernels and agents, then templates nothing current can restore. */
export async function pruneEnvironments() {
  const images = await pruneImages();
  const templates = await pruneTemplates(templateIsCurrent);
  return {
    ...images,
    removed: [...images.removed, ...templates.removed],
    freed_bytes: images.freed_bytes + templates.freed_bytes,
  };
}

/** Built by this host's QEMU from the kernel, agent and image a boot would use now. */
export async function templateIsCurrent(manifest: TemplateManifest): Promise<boolean> {
  const inputs = manifest.inputs;
  if (inputs.format !== TEMPLATE_FORMAT_VERSION) return false;
  const qemu = await qemuIdentity().catch(() => undefined);
  if (!qemu || stableJson(qemu) !== stableJson(inputs.qemu)) return false;
  if ((await cachedKernel().catch(() => undefined))?.key !== inputs.kernel.key) return false;
  if ((await agentVersion()) !== inputs.agent.version) return false;
  const image = await inspectImage(inputs.environment.name).catch(() => undefined);
  return image?.manifest?.image_sha256 === inputs.environment.image_sha256;
}

/** The VM shape a template was built for, read back from its QEMU argv. */
function shapeOfArgs(args: string[]) {
  const after = (flag: string) => args[args.indexOf(flag) + 1] ?? "";
  return {
    vcpu_count: Number(after("-smp")),
    mem_mib: Number(after("-m")),
    acceleration: after("-accel").startsWith("kvm") ? ("kvm" as const) : ("tcg" as const),
    network: args.includes("-netdev"),
  };
}
