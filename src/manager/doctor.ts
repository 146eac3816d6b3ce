import { constants } from "node:fs";
import { access } from "node:fs/promises";
import { arch, platform, release } from "node:os";
import { cachedAgent } from "../env/agent.js";
import { cachePaths } from "../env/artifacts.js";
import { listEnvironments } from "../env/environments.js";
import { cachedKernel, installedPackageVersion, KERNEL_SOURCE_PACKAGE } from "../env/kernel.js";
import { runCommand } from "../util/process.js";
import { readAccelerationFacts, resolveAcceleration } from "../vmm/acceleration.js";
import {
  CGROUP_PARENT,
  cgroupsWritable,
  placeControllers,
  readCgroupLayout,
  tryCgroupLeaf,
  type CgroupLayout,
} from "../vmm/cgroup.js";
import { JAIL_NOFILE, JAIL_UID_BASE } from "../vmm/jail.js";
import { QEMU_BINARY } from "../vmm/qemu.js";
import { chooseDriver, hostVmmForced } from "../vmm/select.js";
import { listTemplates, templatesRoot } from "../vmstate/templates.js";

export interface DoctorCheck {
  name: string;
  status: "pass" | "fail";
  detail: string;
  /** The command that fixes a failing check. */
  fix: string | null;
  /** Whether pyro can run VMs without it (network policies other than `off` are optional). */
  required: boolean;
}

export interface DoctorReport {
  ok: boolean;
  platform: string;
  acceleration: { mode: "kvm" | "tcg"; reason: string };
  checks: DoctorCheck[];
}

const HOST_TOOLS: [tool: string, pkg: string][] = [
  ["mkfs.ext4", "e2fsprogs"],
  ["debugfs", "e2fsprogs"],
  ["mmdebstrap", "mmdebstrap"],
  ["gcc", "gcc"],
  ["make", "make"],
  ["cpio", "cpio"],
  // The VMM's jail (vmm/jail.ts): rlimits, then uid, capabilities and no-new-privs.
  ["prlimit", "util-linux"],
  ["setpriv", "util-linux"],
];

const check = (
  name: string,
  pass: boolean,
  detail: string,
  fix: string | null,
  required = true,
): DoctorCheck => ({
  name,
  status: pass ? "pass" : "fail",
  detail,
  fix: pass ? null : fix,
  required,
});

/** Everything pyro needs from the host, each with the command that fixes it. */
export async function runDoctor(): Promise<DoctorReport> {
  const checks: DoctorCheck[] = [];
  const supported = platform() === "linux" && arch() === "x64";
  checks.push(
    check(
      "platform",
      supported,
      `${platform()} ${arch()} (kernel ${release()})`,
      "pyro needs Linux on x86_64",
    ),
  );
  const facts = await readAccelerationFacts();
  checks.push(
    check(
      "kvm device",
      facts.kvmDeviceExists,
      facts.kvmDeviceExists ? "/dev/kvm exists" : "/dev/kvm is missing",
      "modprobe kvm_intel || modprobe kvm_amd",
      false,
    ),
  );
  if (facts.kvmDeviceExists) {
    checks.push(
      check(
        "kvm access",
        facts.kvmDeviceAccessible,
        facts.kvmDeviceAccessible
          ? "/dev/kvm is readable and writable"
          : "/dev/kvm is not readable and writable",
        `usermod -aG kvm ${process.env.USER ?? "$USER"}`,
        false,
      ),
    );
  }
  const resolved = await resolveAcceleration(cachePaths.accel(), undefined, facts);
  const accel = { mode: resolved.acceleration, reason: resolved.reason };
  checks.push(check("acceleration", true, `${accel.mode}: ${accel.reason}`, null));
  checks.push(await vmmCheck(accel.mode));
  checks.push(...(hostVmmForced() ? [unjailedCheck()] : await jailChecks()));

  const qemu = await runCommand(QEMU_BINARY, ["--version"]).catch(() => undefined);
  const qemuVersion = qemu?.code === 0 ? qemu.stdout.split("\n")[0]!.trim() : "";
  checks.push(
    check(
      "qemu",
      Boolean(qemuVersion),
      qemuVersion || `${QEMU_BINARY} not found`,
      "apt-get install --no-install-recommends qemu-system-x86",
    ),
  );
  for (const [tool, pkg] of HOST_TOOLS) {
    const found = await which(tool);
    checks.push(
      check(
        tool,
        Boolean(found),
        found ?? "not found",
        `apt-get install --no-install-recommends ${pkg}`,
      ),
    );
  }
  const sourceVersion = await installedPackageVersion(KERNEL_SOURCE_PACKAGE);
  checks.push(
    check(
      "kernel source",
      Boolean(sourceVersion),
      sourceVersion
        ? `${KERNEL_SOURCE_PACKAGE} ${sourceVersion}`
        : `${KERNEL_SOURCE_PACKAGE} not installed`,
      `apt-get install --no-install-recommends ${KERNEL_SOURCE_PACKAGE}`,
    ),
  );

  const kernel = sourceVersion ? await cachedKernel().catch(() => undefined) : undefined;
  checks.push(
    check(
      "guest kernel",
      Boolean(kernel),
      kernel ? `built: ${kernel.path}` : "not built yet (about 8 minutes on 2 cores)",
      "pyro env pull debian:12",
    ),
  );
  const agent = await cachedAgent().catch(() => undefined);
  checks.push(
    check(
      "guest agent",
      Boolean(agent),
      agent ? `built: ${agent.version}` : "not built yet",
      "pyro env pull debian:12",
    ),
  );
  const envs = await listEnvironments();
  const built = envs.filter((e) => e.installed).map((e) => e.name);
  checks.push(
    check(
      "environments",
      built.length > 0,
      built.length ? `built: ${built.join(", ")}` : "none built yet",
      "pyro env pull debian:12",
    ),
  );

  checks.push(await templateCheck(accel.mode));
  checks.push(...(await networkChecks()));

  return {
    ok: checks.every((c) => c.status === "pass" || !c.required),
    platform: `${platform()}-${arch()}`,
    acceleration: accel,
    checks,
  };
}

/** Whether boots can be warm (memory templates need QEMU) and what the cache holds. */
async function templateCheck(acceleration: "kvm" | "tcg"): Promise<DoctorCheck> {
  const vmm = await chooseDriver(acceleration).catch(() => undefined);
  if (vmm && vmm.vmm !== "qemu") {
    const detail = `cold boots only: the ${vmm.vmm} driver cannot restore memory templates`;
    return check("memory templates", true, detail, null, false);
  }
  const entries = await listTemplates();
  const built = entries.filter((e) => e.manifest && !e.failure);
  const failed = entries.filter((e) => e.failure);
  const bytes = entries.reduce((sum, e) => sum + e.disk_bytes, 0);
  const detail =
    `warm boots restore memory templates (built on first boot of each VM shape, or by ` +
    `pyro env pull): ${built.length} cached, ${(bytes / 2 ** 20).toFixed(0)} MiB on disk, ` +
    `in ${templatesRoot()}` +
    (failed.length ? `; ${failed.length} failed lately: ${failed[0]!.failure!.error}` : "");
  return check("memory templates", failed.length === 0, detail, "pyro env prune", false);
}

/** Which VMM VMs will use and why (`vmm/select.ts`); fails only for an impossible PYRO_VMM. */
/**
 * What each network policy needs (docs/architecture.md "Network plumbing"): `off` nothing;
 * the others QEMU's user networking (slirp) and its filter-redirector, which splice pyro's
 * guard between the NIC and slirp, so no root, TAP device or firewall rules. Published
 * ports are slirp host forwards on 127.0.0.1; an allowlist adds a proxy in the shim.
 */
async function networkChecks(): Promise<DoctorCheck[]> {
  const help = async (what: string) =>
    (await runCommand(QEMU_BINARY, [what, "help"]).catch(() => undefined))?.stdout ?? "";
  const slirp = /^user$/m.test(await help("-netdev"));
  const redirector = /filter-redirector/.test(await help("-object"));
  // A VM with a NIC boots under QEMU even where Firecracker is the default (runtime.ts).
  const vmm = process.env.PYRO_VMM?.trim().toLowerCase();
  const onQemu = vmm !== "firecracker";
  const egress = slirp && redirector && onQemu;
  const missing = [
    ...(slirp ? [] : ["QEMU without user networking (slirp)"]),
    ...(redirector ? [] : ["QEMU without filter-redirector"]),
    ...(onQemu ? [] : ["PYRO_VMM=firecracker, which has no guarded NIC"]),
  ].join("; ");
  const needs = "QEMU user networking + filter-redirector (no root, no TAP)";
  return [
    check("network: off", true, "no NIC; needs nothing", null, false),
    check(
      "network: egress",
      egress,
      egress ? `ready: ${needs}` : missing,
      onQemu ? "apt-get install --no-install-recommends qemu-system-x86" : "unset PYRO_VMM",
      false,
    ),
    check(
      "network: egress+published-ports",
      egress,
      egress ? "ready: egress + slirp host forwards bound to 127.0.0.1" : missing,
      onQemu ? "apt-get install --no-install-recommends qemu-system-x86" : "unset PYRO_VMM",
      false,
    ),
    check(
      "network: allowed_domains",
      egress,
      egress ? "ready: egress through pyro's HTTP(S) proxy, names resolved on the host" : missing,
      onQemu ? "apt-get install --no-install-recommends qemu-system-x86" : "unset PYRO_VMM",
      false,
    ),
  ];
}

async function vmmCheck(acceleration: "kvm" | "tcg"): Promise<DoctorCheck> {
  try {
    const decision = await chooseDriver(acceleration);
    return check("vmm", true, `${decision.vmm}: ${decision.reason}`, null);
  } catch (error) {
    return check("vmm", false, (error as Error).message, "unset PYRO_VMM to let pyro choose");
  }
}

/** Under the host-process test driver there is no VMM to jail: say so, not QEMU's jail. */
function unjailedCheck(): DoctorCheck {
  const detail = "none: under PYRO_VMM=host guest commands are host processes, unjailed";
  return check("vmm jail", false, detail, "unset PYRO_VMM (the host driver is for tests)", false);
}

/**
 * What the VMM's jail can apply here. Seccomp and rlimits always apply; a uid of its own
 * needs root; per-VM cgroup limits need root and the memory, pids and cpu controllers.
 */
async function jailChecks(): Promise<DoctorCheck[]> {
  const root = process.getuid?.() === 0;
  const identity = root
    ? `QEMU runs as a uid of its own (${JAIL_UID_BASE} + its shim's pid) with no capabilities`
    : "QEMU runs as this user (pyro is not root, so it cannot give QEMU a uid of its own)";
  const jail = check(
    "vmm jail",
    true,
    `seccomp sandbox, no-new-privs, rlimits (${JAIL_NOFILE} open files, no core dumps, ` +
      `file size up to the VM's disk); ${identity}`,
    null,
  );
  const layout = await readCgroupLayout();
  const writable = await cgroupsWritable(layout);
  const refused = writable ? await tryCgroupLeaf(layout) : undefined;
  return [jail, cgroupCheck(layout, writable, root, refused)];
}

/** Whether per-VM cgroup limits apply, and if not why and what fixes it (pure). */
export function cgroupCheck(
  layout: CgroupLayout,
  writable: boolean,
  root: boolean,
  /** Why a trial leaf could not be made, when it could not. */
  refused?: string,
): DoctorCheck {
  const placed = placeControllers(layout);
  const where = [
    ...(placed.v2.length ? [`v2 ${placed.v2.join(",")} at ${layout.v2!.mount}`] : []),
    ...placed.v1.map(([controller, mount]) => `v1 ${controller} at ${mount}`),
  ].join("; ");
  const problems = [
    ...(placed.missing.length ? [`no ${placed.missing.join(", ")} controller mounted`] : []),
    ...(!writable && where ? [root ? "cgroup tree not writable" : "pyro is not root"] : []),
    ...(refused ? [`a trial leaf failed: ${refused}`] : []),
  ];
  return check(
    "vm cgroup limits",
    problems.length === 0,
    problems.length === 0
      ? `each VM gets a leaf ${CGROUP_PARENT}/<vm id> with memory, pids and cpu limits (${where})`
      : `per-VM limits cannot be applied: ${problems.join("; ")}` +
          (where ? ` (found: ${where})` : "") +
          "; VMs run without memory, pids and cpu limits of their own",
    root
      ? "mount the memory, pids and cpu controllers (cgroup v2, or v1 under /sys/fs/cgroup)"
      : "run pyro as root to jail the VMM fully",
    false,
  );
}

async function which(tool: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? "").split(":").concat(["/usr/sbin", "/sbin"])) {
    const path = `${dir}/${tool}`;
    if (
      await access(path, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return path;
  }
  return undefined;
}
