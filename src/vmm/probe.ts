import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCommand } from "../util/process.js";
import { QEMU_BINARY, QEMU_ISOLATION_ARGS, qemuOptionValue } from "./qemu.js";

const PROBE_TIMEOUT_MS = 20_000;
export const PROBE_MARKER = "pyro-agent: probe ok";

/** The probe's QEMU command line (pure, so tests can check it). */
export function probeArgs(kernelPath: string, initrdPath: string, consolePath: string) {
  return [
    "-M",
    "microvm",
    "-accel",
    "kvm",
    "-cpu",
    "host",
    "-m",
    "256",
    "-smp",
    "1",
    ...QEMU_ISOLATION_ARGS,
    // Plain paths to QEMU (not option syntax), unlike the chardev's path below.
    "-kernel",
    kernelPath,
    "-initrd",
    initrdPath,
    "-append",
    "console=ttyS0 reboot=t panic=-1 rdinit=/init pyro.probe=1",
    "-chardev",
    `file,id=console,path=${qemuOptionValue(consolePath)}`,
    "-serial",
    "chardev:console",
  ];
}

/**
 * Boots the guest kernel under `-accel kvm` with `pyro.probe=1`, which makes the agent
 * print a marker and power off at once. KVM counts as usable only if that marker appears.
 */
export async function probeKvm(kernelPath: string, initrdPath: string) {
  const dir = await mkdtemp(join(tmpdir(), "pyro-kvm-probe-"));
  const consolePath = join(dir, "console.log");
  try {
    const result = await runCommand(QEMU_BINARY, probeArgs(kernelPath, initrdPath, consolePath), {
      timeout: PROBE_TIMEOUT_MS,
      killSignal: "SIGKILL",
    });
    const console = await readFile(consolePath, "utf8").catch(() => "");
    if (console.includes(PROBE_MARKER)) return { ok: true, detail: "guest booted" };
    const why = result.signal
      ? `timed out after ${PROBE_TIMEOUT_MS} ms`
      : result.stderr.trim().split("\n").pop();
    return {
      ok: false,
      detail: why || `QEMU exited ${result.code}`,
      transient: result.signal !== null,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
