import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { PyroError } from "../contract/errors.js";
import { lastLines } from "../util/process.js";
import { AGENT_PORT_NAME } from "../guest/frame.js";
import type { VmmDriver, VmmExit, VmmHandle, VmmLaunchSpec } from "./driver.js";
import { QEMU_KERNEL_ARGS } from "./kernel-args.js";
import { QmpClient } from "./qmp.js";

export const QEMU_BINARY = process.env.PYRO_QEMU || "qemu-system-x86_64";

/** The QEMU command line for a `microvm` guest (pure, so tests can check it). */
export function qemuArgs(spec: VmmLaunchSpec, hostTscKhz?: number): string[] {
  const accel =
    spec.acceleration === "kvm"
      ? ["-accel", "kvm", "-cpu", "host"]
      : ["-accel", "tcg", "-cpu", "max"];
  const disks = spec.disks.flatMap((disk, index) => [
    "-drive",
    `id=disk${index},file=${disk.path},format=raw,if=none${disk.readOnly ? ",readonly=on" : ""}`,
    "-device",
    `virtio-blk-device,drive=disk${index}`,
  ]);
  return [
    "-M",
    "microvm,x-option-roms=off,rtc=on",
    ...accel,
    "-m",
    String(spec.memMib),
    "-smp",
    String(spec.vcpuCount),
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-no-reboot",
    "-kernel",
    spec.kernelPath,
    "-initrd",
    spec.initrdPath,
    "-append",
    [...QEMU_KERNEL_ARGS, ...tcgClockArgs(spec, hostTscKhz), ...spec.kernelArgs].join(" "),
    "-chardev",
    `file,id=console,path=${spec.consoleLogPath}`,
    "-serial",
    "chardev:console",
    ...disks,
    "-object",
    "rng-random,id=rng0,filename=/dev/urandom",
    "-device",
    "virtio-rng-device,rng=rng0",
    "-device",
    "virtio-serial-device,max_ports=2",
    "-chardev",
    `socket,id=agent,path=${spec.agentSocketPath}`,
    "-device",
    `virtserialport,chardev=agent,name=${AGENT_PORT_NAME}`,
    "-chardev",
    `socket,id=qmp,path=${spec.controlSocketPath}`,
    "-mon",
    "chardev=qmp,mode=control",
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
    // QEMU dials into both sockets at startup, so nothing has to poll for them.
    const control = await listenOnce(spec.controlSocketPath);
    const agent = await listenOnce(spec.agentSocketPath);
    const stderrPath = `${spec.consoleLogPath}.vmm`;
    const stderrFd = openSync(stderrPath, "w", 0o600);
    // setpriv's parent-death signal kills QEMU if the shim itself dies, however it dies.
    const child = spawn(
      "setpriv",
      ["--pdeathsig", "KILL", "--", this.binary, ...qemuArgs(spec, hostTscKhz())],
      {
        stdio: ["ignore", "ignore", stderrFd],
      },
    );
    closeSync(stderrFd);
    const exited = new Promise<VmmExit>((resolve) => {
      child.on("exit", (code, signal) => resolve({ code, signal }));
      child.on("error", () => resolve({ code: 127, signal: null }));
    });
    const failed = exited.then((exit) => {
      const output = lastLines(readFileSync(stderrPath, "utf8"), 10);
      throw new PyroError(
        "unavailable",
        `QEMU exited (${exit.code ?? exit.signal}) at launch: ${output}`,
      );
    });
    let qmp: QmpClient;
    try {
      const attached = control.accepted.then((s) => QmpClient.attach(s));
      qmp = await Promise.race([attached, failed, launchTimeout(QMP_ATTACH_TIMEOUT_MS)]);
    } catch (error) {
      child.kill("SIGKILL");
      agent.server.close();
      throw error;
    } finally {
      control.server.close();
    }
    failed.catch(() => {});
    const agentChannel = agent.accepted.finally(() => agent.server.close());
    return new QemuHandle(child.pid!, exited, agentChannel, qmp, () => child.kill("SIGKILL"));
  }
}

class QemuHandle implements VmmHandle {
  private exitedFlag = false;

  constructor(
    readonly pid: number,
    readonly exited: Promise<VmmExit>,
    readonly agentChannel: Promise<Socket>,
    private readonly qmp: QmpClient,
    readonly kill: () => void,
  ) {
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
}

/** Listens on a Unix socket (0600) for exactly one connection: the VMM dialling in. */
export async function listenOnce(
  path: string,
): Promise<{ server: Server; accepted: Promise<Socket> }> {
  const server = createServer();
  const accepted = new Promise<Socket>((resolve) => server.once("connection", resolve));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ path, readableAll: false, writableAll: false }, resolve);
  });
  return { server, accepted };
}
