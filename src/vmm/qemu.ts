import { spawn, type ChildProcess } from "node:child_process";
import {
  closeSync,
  existsSync,
  fchmodSync,
  fchownSync,
  fstatSync,
  openSync,
  readFileSync,
  statSync,
} from "node:fs";
import { Socket } from "node:net";
import { join } from "node:path";
import { PyroError } from "../contract/errors.js";
import { lastLines } from "../util/process.js";
import { AGENT_PORT_NAME } from "../guest/frame.js";
import {
  createCgroupForVm,
  removeVmCgroup,
  TCG_TB_SIZE_MIB,
  vmLimits,
  type CgroupDir,
} from "./cgroup.js";
import { CappedLog, captureToLog, readFileTail, VMM_LOG_LIMITS } from "./console-log.js";
import type { VmmDriver, VmmExit, VmmHandle, VmmLaunchSpec, VmmNetworkChannels } from "./driver.js";
import { JAIL_NOFILE, jailCommand, jailIdentity, type JailPlan } from "./jail.js";
import { QEMU_KERNEL_ARGS } from "./kernel-args.js";
import { memoryFileBytes } from "./memory.js";
import { restoreVmState, saveVmState } from "./migration.js";
import { QmpClient } from "./qmp.js";

export const QEMU_BINARY = process.env.PYRO_QEMU || "qemu-system-x86_64";

/**
 * QEMU's seccomp filter: besides the default deny list (obsolete calls, reboot, mount,
 * ...), no set*uid/capabilities, no fork/exec, no scheduler or affinity changes.
 */
export const QEMU_SANDBOX =
  "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/** What every QEMU pyro starts shares: no default devices or config, no display, no
 * reboot (a guest reset ends the VM), and the seccomp sandbox. */
export const QEMU_ISOLATION_ARGS = [
  "-nodefaults",
  "-no-user-config",
  "-display",
  "none",
  "-no-reboot",
  "-sandbox",
  QEMU_SANDBOX,
] as const;

/**
 * Escapes a value for QEMU's `key=value,...` option syntax, where a `,` ends the value
 * unless doubled: a path with a comma would otherwise end early or inject options.
 */
export function qemuOptionValue(value: string): string {
  return value.replaceAll(",", ",,");
}

/**
 * QEMU opens nothing by name: every file and channel is an fd it inherits (see jail.ts).
 * The channels are socket pairs made at spawn; files follow, in `qemuInheritedFiles` order.
 */
export const QEMU_FD = { control: 3, agent: 4, console: 5, firstFile: 6 } as const;

export interface InheritedFile {
  path: string;
  /** `r` or `r+`; a writable disk also gets a read-only fd (QEMU probes the image with one). */
  flags: "r" | "r+";
  fd: number;
  role: "kernel" | "initrd" | "disk" | "memory" | "vmstate";
}

/**
 * The files QEMU inherits and at which fd: kernel, initramfs, each disk's fds, then the
 * RAM file and the state to restore when the spec has them.
 */
export function qemuInheritedFiles(spec: VmmLaunchSpec): InheritedFile[] {
  const opens: Omit<InheritedFile, "fd">[] = [
    { path: spec.kernelPath, flags: "r", role: "kernel" },
    { path: spec.initrdPath, flags: "r", role: "initrd" },
  ];
  for (const disk of spec.disks) {
    if (!disk.readOnly) opens.push({ path: disk.path, flags: "r+", role: "disk" });
    opens.push({ path: disk.path, flags: "r", role: "disk" });
  }
  if (spec.memoryPath) opens.push({ path: spec.memoryPath, flags: "r+", role: "memory" });
  if (spec.restoreFrom) opens.push({ path: spec.restoreFrom, flags: "r", role: "vmstate" });
  return opens.map((open, index) => ({ ...open, fd: QEMU_FD.firstFile + index }));
}

/** The inherited fd of a file role (the first, for disks). */
export function qemuFileFd(spec: VmmLaunchSpec, role: InheritedFile["role"]): number | undefined {
  return qemuInheritedFiles(spec).find((file) => file.role === role)?.fd;
}

/** QEMU's id of the RAM backend; migration matches RAM blocks by it. */
const MEMORY_BACKEND_ID = "mem";

/**
 * Guest RAM in the VM's own file, `share=on`: what the guest writes lands in the file,
 * so a save leaves RAM out of the stream (`x-ignore-shared`) and a restore maps it back.
 * QEMU reopens the inherited fd by its /proc path (O_RDWR: the file must be its uid's).
 */
function memoryArgs(spec: VmmLaunchSpec): string[] {
  const fd = qemuFileFd(spec, "memory");
  if (fd === undefined) return [];
  return [
    "-object",
    `memory-backend-file,id=${MEMORY_BACKEND_ID},size=${spec.memMib}M,mem-path=/proc/self/fd/${fd},share=on`,
  ];
}

/** A restore starts QEMU waiting for its state; QMP then feeds it from the vmstate fd. */
function incomingArgs(spec: VmmLaunchSpec): string[] {
  return spec.restoreFrom ? ["-incoming", "defer"] : [];
}

/**
 * The two channels of the NIC splice, after the files: frames from the guest's NIC come
 * out on `fromGuest`, frames the shim lets through go in on `toNetwork`.
 */
export function qemuNetworkFds(spec: VmmLaunchSpec): { fromGuest: number; toNetwork: number } {
  const next = QEMU_FD.firstFile + qemuInheritedFiles(spec).length;
  return { fromGuest: next, toNetwork: next + 1 };
}

/**
 * A virtio NIC on slirp with the shim spliced in by two `filter-redirector`s on the
 * netdev's receive queue (frames the NIC sends toward slirp). `netguard` takes every
 * such frame out to the shim; `netinject` puts what the shim writes back in. Order
 * matters: receive-queue filters run last-declared first, and a redirector's injected
 * frame continues to the filters after it, so `netinject` must be declared first or the
 * frames it injects would reach `netguard` again and loop (seen on QEMU 7.2).
 */
export function networkArgs(spec: VmmLaunchSpec): string[] {
  const net = spec.network;
  if (!net) return [];
  const fds = qemuNetworkFds(spec);
  return [
    "-netdev",
    `user,id=net0,net=${net.subnet},host=${net.gateway},dns=${net.dns},ipv6=off`,
    "-device",
    `virtio-net-device,netdev=net0,mac=${net.mac}`,
    "-chardev",
    `socket,id=netin,fd=${fds.toNetwork}`,
    "-chardev",
    `socket,id=netout,fd=${fds.fromGuest}`,
    "-object",
    "filter-redirector,id=netinject,netdev=net0,queue=rx,indev=netin",
    "-object",
    "filter-redirector,id=netguard,netdev=net0,queue=rx,outdev=netout",
  ];
}

/**
 * `-add-fd` for each disk's fds (fd set N+1 for disk N) and the drives that use them.
 * Image locking is off: QEMU's OFD locks guard against two QEMUs opening one image by
 * path, but ours get fds from the shim that owns the VM's directory, and with two open
 * descriptions of one image in its fd set QEMU's own locks refused its `cont` after a
 * save (`Failed to get shared "write" lock`, QEMU 7.2): pause-then-continue needs it off.
 */
function diskArgs(spec: VmmLaunchSpec, files: InheritedFile[]): string[] {
  const diskFiles = files.filter((file) => file.role === "disk");
  let next = 0;
  return spec.disks.flatMap((disk, index) => {
    const count = disk.readOnly ? 1 : 2;
    const fds = diskFiles.slice(next, next + count);
    next += count;
    return [
      ...fds.flatMap((file) => ["-add-fd", `fd=${file.fd},set=${index + 1}`]),
      "-drive",
      `id=disk${index},file=/dev/fdset/${index + 1},format=raw,if=none,file.locking=off${disk.readOnly ? ",readonly=on" : ""}`,
      "-device",
      `virtio-blk-device,drive=disk${index}`,
    ];
  });
}

/** The QEMU command line for a `microvm` guest (pure, so tests can check it). */
export function qemuArgs(spec: VmmLaunchSpec, hostTscKhz?: number): string[] {
  const files = qemuInheritedFiles(spec);
  const accel =
    spec.acceleration === "kvm"
      ? ["-accel", "kvm", "-cpu", "host"]
      : // A bounded translation buffer (QEMU's default is 1 GiB) keeps the VM within its
        // cgroup's memory limit (cgroup.ts).
        ["-accel", `tcg,tb-size=${TCG_TB_SIZE_MIB}`, "-cpu", "max"];
  const machine = ["microvm", "x-option-roms=off", "rtc=on"];
  if (spec.memoryPath) machine.push(`memory-backend=${MEMORY_BACKEND_ID}`);
  return [
    "-M",
    machine.join(","),
    ...accel,
    "-m",
    String(spec.memMib),
    "-smp",
    String(spec.vcpuCount),
    ...memoryArgs(spec),
    ...QEMU_ISOLATION_ARGS,
    // -kernel and -initrd take a plain path (not option syntax); /proc/self/fd reopens
    // the inherited file without QEMU needing any access to the directories above it.
    "-kernel",
    `/proc/self/fd/${files[0]!.fd}`,
    "-initrd",
    `/proc/self/fd/${files[1]!.fd}`,
    "-append",
    [...QEMU_KERNEL_ARGS, ...tcgClockArgs(spec, hostTscKhz), ...spec.kernelArgs].join(" "),
    "-chardev",
    `socket,id=console,fd=${QEMU_FD.console}`,
    "-serial",
    "chardev:console",
    ...diskArgs(spec, files),
    "-object",
    "rng-random,id=rng0,filename=/dev/urandom",
    "-device",
    "virtio-rng-device,rng=rng0",
    "-device",
    "virtio-serial-device,max_ports=2",
    "-chardev",
    `socket,id=agent,fd=${QEMU_FD.agent}`,
    "-device",
    `virtserialport,chardev=agent,name=${AGENT_PORT_NAME}`,
    "-chardev",
    `socket,id=qmp,fd=${QEMU_FD.control}`,
    "-mon",
    "chardev=qmp,mode=control",
    ...networkArgs(spec),
    ...incomingArgs(spec),
  ];
}

/**
 * Under TCG the guest's TSC ticks at the host's TSC rate. The guest normally measures it
 * against the emulated PIT, but on a loaded host that measurement fails and the fallback
 * calibration hangs the boot; telling the guest the rate skips both.
 */
function tcgClockArgs(spec: VmmLaunchSpec, hostTscKhz: number | undefined): string[] {
  return spec.acceleration === "tcg" && hostTscKhz ? [`tsc_early_khz=${hostTscKhz}`] : [];
}

/**
 * The host's TSC rate, when the CPU says it is constant (`constant_tsc`) and "cpu MHz" is
 * that rate: with frequency scaling (a cpufreq driver) it is the current clock instead.
 */
export function hostTscKhz(
  cpuinfo = readFileSync("/proc/cpuinfo", "utf8"),
  frequencyScaling = existsSync("/sys/devices/system/cpu/cpu0/cpufreq"),
): number | undefined {
  if (frequencyScaling) return undefined;
  const flags = /^flags\s*:(.*)$/m.exec(cpuinfo)?.[1]?.split(/\s+/) ?? [];
  const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)$/m.exec(cpuinfo)?.[1]);
  return flags.includes("constant_tsc") && mhz > 0 ? Math.round(mhz * 1000) : undefined;
}

const QMP_ATTACH_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 3_000;
const VMM_ERROR_TAIL_BYTES = 4096;
/** QEMU's end of the log pipes closes with it; this only bounds the wait if it did not. */
const LOG_DRAIN_MS = 2_000;

function launchTimeout(ms: number): Promise<never> {
  return new Promise((_, reject) => {
    setTimeout(
      () =>
        reject(new PyroError("unavailable", `QEMU did not become controllable within ${ms} ms`)),
      ms,
    ).unref();
  });
}

export class QemuDriver implements VmmDriver {
  readonly name = "qemu" as const;

  constructor(private readonly binary = QEMU_BINARY) {}

  async launch(spec: VmmLaunchSpec): Promise<VmmHandle> {
    // Without its RAM file a restore would run the saved devices on blank memory.
    if (spec.restoreFrom && !spec.memoryPath)
      throw new PyroError("invalid_argument", "restoring a VM needs its RAM file (memoryPath)");
    const cgroup = await createCgroupForVm(
      spec.vmId,
      vmLimits(spec.vcpuCount, spec.memMib, spec.acceleration === "tcg"),
    );
    let started: ReturnType<typeof startQemu>;
    try {
      started = startQemu(spec, this.binary, cgroup);
    } catch (error) {
      await removeVmCgroup(cgroup);
      throw error;
    }
    const { child, stderrPath, stderrClosed, consoleClosed, identity } = started;
    const exited = new Promise<VmmExit>((resolve) => {
      child.on("exit", (code, signal) => resolve({ code, signal }));
      child.on("error", () => resolve({ code: 127, signal: null }));
    }).then(async (exit) => {
      // Whoever awaits `exited` finds the console's last lines on disk (a boot failure
      // quotes them) and the leaf removed (it can go only once QEMU is gone).
      await settledWithin(Promise.all([consoleClosed, stderrClosed]), LOG_DRAIN_MS);
      await removeVmCgroup(cgroup);
      return exit;
    });
    const failed = exited.then(async (exit) => {
      await stderrClosed;
      const output = lastLines(await readFileTail(stderrPath, VMM_ERROR_TAIL_BYTES), 10);
      throw new PyroError(
        "unavailable",
        `QEMU exited (${exit.code ?? exit.signal}) at launch: ${output}`,
      );
    });
    failed.catch(() => {});
    let qmp: QmpClient | undefined;
    try {
      const attached = settledQuietly(QmpClient.attach(stdioSocket(child, QEMU_FD.control)));
      qmp = await Promise.race([attached, failed, launchTimeout(QMP_ATTACH_TIMEOUT_MS)]);
      if (spec.restoreFrom) {
        const restoring = restoreVmState(qmp, qemuFileFd(spec, "vmstate")!);
        await Promise.race([settledQuietly(restoring), failed]);
      }
    } catch (error) {
      child.kill("SIGKILL");
      await exited;
      if (!qmp || !spec.restoreFrom) throw error;
      throw await restoreFailure(spec.restoreFrom, error as Error, stderrPath);
    }
    const agentChannel = Promise.resolve(stdioSocket(child, QEMU_FD.agent));
    const network = spec.network ? networkChannels(spec, child, qmp) : undefined;
    return new QemuHandle(child.pid!, exited, agentChannel, qmp, {
      network,
      identity,
      savable: spec.memoryPath !== undefined,
      kill: () => child.kill("SIGKILL"),
    });
  }
}

/**
 * Waits for `promise` at most `ms`. The timer is cleared once it settles: a process that
 * drove QEMU itself (a template build in the CLI) would otherwise live on for `ms`.
 */
async function settledWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
  try {
    await Promise.race([
      promise.then(
        () => {},
        () => {},
      ),
      bound,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The same promise, marked handled: raced against QEMU's exit, the loser's rejection
 * (a QMP connection closing as QEMU dies) must not become an unhandled rejection.
 */
function settledQuietly<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {});
  return promise;
}

/** A QEMU whose state load fails exits; what it printed says why (a changed device...). */
async function restoreFailure(path: string, error: Error, stderrPath: string): Promise<PyroError> {
  const said = lastLines(await readFileTail(stderrPath, VMM_ERROR_TAIL_BYTES), 10);
  const detail =
    said && !error.message.includes(said) ? `${error.message}; QEMU: ${said}` : error.message;
  return new PyroError(
    error instanceof PyroError ? error.code : "unavailable",
    `restoring the VM's state from ${path} failed: ${detail}`,
    { cause: error },
  );
}

/**
 * Spawns QEMU in its jail with everything it needs as inherited fds: socket pairs for QMP,
 * the agent and the console (which the shim writes to a capped log), and the files.
 */
function startQemu(spec: VmmLaunchSpec, binary: string, cgroup: CgroupDir[]) {
  const files = qemuInheritedFiles(spec);
  const fds: number[] = [];
  const identity = jailIdentity(process.pid, process.getuid?.() === 0, kvmGroup(spec));
  try {
    for (const file of files) fds.push(openSync(file.path, file.flags));
    const memory = files.findIndex((file) => file.role === "memory");
    if (memory >= 0) prepareMemoryFd(fds[memory]!, files[memory]!.path, spec.memMib, identity);
    const plan: JailPlan = {
      identity,
      nofile: JAIL_NOFILE,
      // Sized from the opened fds: the files QEMU gets, whatever their paths point at now.
      fsizeBytes: Math.max(
        0,
        ...files.flatMap((f, i) => (f.flags === "r+" ? [fstatSync(fds[i]!).size] : [])),
      ),
      cgroupProcs: cgroup.map((leaf) => join(leaf.dir, "cgroup.procs")),
    };
    const [command, ...args] = jailCommand(plan, [binary, ...qemuArgs(spec, hostTscKhz())]);
    const child = spawn(command!, args, {
      cwd: "/",
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
      stdio: [
        "ignore",
        "ignore",
        "pipe",
        "pipe",
        "pipe",
        "pipe",
        ...fds,
        ...(spec.network ? (["pipe", "pipe"] as const) : []),
      ],
    });
    const stderrPath = `${spec.consoleLogPath}.vmm`;
    const stderrClosed = captureToLog(child.stderr!, new CappedLog(stderrPath, VMM_LOG_LIMITS));
    const consoleClosed = captureToLog(
      stdioSocket(child, QEMU_FD.console),
      new CappedLog(spec.consoleLogPath),
    );
    return { child, stderrPath, stderrClosed, consoleClosed, identity };
  } finally {
    for (const fd of fds) closeSync(fd);
  }
}

/**
 * The RAM file must be exactly the VM's memory (a short one would be extended by QEMU, a
 * template copy of another size is not this VM's) and, under the jail, QEMU's uid's:
 * QEMU reopens it read-write by its /proc path, which checks the inode's permissions.
 */
function prepareMemoryFd(
  fd: number,
  path: string,
  memMib: number,
  identity: JailPlan["identity"],
): void {
  const size = fstatSync(fd).size;
  if (size !== memoryFileBytes(memMib))
    throw new PyroError(
      "unavailable",
      `the VM's RAM file ${path} is ${size} bytes, not ${memMib} MiB; remove it to boot afresh`,
    );
  if (identity) fchownSync(fd, identity.uid, identity.gid);
  fchmodSync(fd, 0o600);
}

function networkChannels(
  spec: VmmLaunchSpec,
  child: ChildProcess,
  qmp: QmpClient,
): VmmNetworkChannels {
  const fds = qemuNetworkFds(spec);
  return {
    fromGuest: stdioSocket(child, fds.fromGuest),
    toNetwork: stdioSocket(child, fds.toNetwork),
    monitor: async (command) => {
      const output = await qmp.execute("human-monitor-command", { "command-line": command });
      return typeof output === "string" ? output : "";
    },
  };
}

/** Our end of the socket pair spawn made for one of QEMU's fds. */
function stdioSocket(child: ChildProcess, fd: number): Socket {
  const streams: readonly unknown[] = child.stdio;
  const stream = streams[fd];
  if (!(stream instanceof Socket)) throw new PyroError("internal", `no socket for QEMU fd ${fd}`);
  return stream;
}

/** Under KVM the jailed QEMU keeps the group that may open /dev/kvm (it opens it by name). */
function kvmGroup(spec: VmmLaunchSpec): number | undefined {
  if (spec.acceleration !== "kvm") return undefined;
  try {
    return statSync("/dev/kvm").gid;
  } catch {
    return undefined;
  }
}

interface QemuHandleOptions {
  network: VmmNetworkChannels | undefined;
  /** QEMU's jail identity (root only): the save socket must be its to connect to. */
  identity: JailPlan["identity"];
  /** The VM's RAM is in a file: only then is its state small enough to save. */
  savable: boolean;
  kill: () => void;
}

class QemuHandle implements VmmHandle {
  private exitedFlag = false;
  /** saveState was called and no resume since. */
  private saved = false;
  readonly network: VmmNetworkChannels | undefined;
  readonly kill: () => void;

  constructor(
    readonly pid: number,
    readonly exited: Promise<VmmExit>,
    readonly agentChannel: Promise<Socket>,
    private readonly qmp: QmpClient,
    private readonly options: QemuHandleOptions,
  ) {
    this.network = options.network;
    this.kill = options.kill;
    void exited.then(() => {
      this.exitedFlag = true;
      qmp.close();
    });
  }

  /** Asks QEMU to quit; a QEMU that does not go within the grace period is killed. */
  async stop(): Promise<void> {
    if (this.exitedFlag) return;
    const timer = setTimeout(() => this.kill(), STOP_GRACE_MS);
    await this.qmp.execute("quit").catch(() => this.kill());
    await this.exited;
    clearTimeout(timer);
  }

  status(): "running" | "exited" {
    return this.exitedFlag ? "exited" : "running";
  }

  /**
   * Stops the guest and writes its device state; RAM is already in the memory file. On
   * failure the guest stays stopped too: resume() it or stop() it.
   */
  async saveState(vmstatePath: string): Promise<void> {
    if (this.exitedFlag) throw new PyroError("unavailable", "the VM's QEMU has exited");
    if (!this.options.savable)
      throw new PyroError("unavailable", "this VM's RAM is not in a file; it cannot be saved");
    // After a save QEMU has handed its disks over (inactive) until `cont`; a second
    // migration from there is not one QEMU 7.2 supports.
    if (this.saved)
      throw new PyroError("conflict", "the VM's state is already saved; resume it first");
    this.saved = true;
    await saveVmState(this.qmp, vmstatePath, this.options.identity);
  }

  /** Runs the guest again after saveState (QEMU takes its disks back on `cont`). */
  async resume(): Promise<void> {
    if (this.exitedFlag) throw new PyroError("unavailable", "the VM's QEMU has exited");
    await this.qmp.execute("cont");
    this.saved = false;
  }
}
