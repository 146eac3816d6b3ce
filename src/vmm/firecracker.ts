/**
 * The Firecracker driver, written to Firecracker's documented interface: `--config-file`
 * boot (src/firecracker/swagger/firecracker.yaml, `FullVmConfiguration`), the API socket
 * for `SendCtrlAltDel` (docs/api_requests/actions.md) and host-initiated vsock
 * connections over its Unix socket (docs/vsock.md).
 *
 * No Firecracker binary has ever run this code: none exists on the project's machines and
 * their KVM cannot run guests. The unit tests check the config file, the vsock handshake
 * and the API request against fakes that follow those documents, nothing more.
 */
import { spawn } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import type { Socket } from "node:net";
import { dirname, join } from "node:path";
import { PyroError } from "../contract/errors.js";
import { AGENT_VSOCK_PORT } from "../guest/frame.js";
import { lastLines, sleep } from "../util/process.js";
import { CappedLog, captureToLog } from "./console-log.js";
import type { VmmDriver, VmmExit, VmmHandle, VmmLaunchSpec } from "./driver.js";
import { FIRECRACKER_KERNEL_ARGS } from "./kernel-args.js";
import { connectVsock } from "./vsock.js";

/** The guest's vsock context id; 3 is the lowest a guest may have (0-2 are reserved). */
export const GUEST_CID = 3;

/**
 * The `--config-file` JSON for one VM (pure, so tests can check it). The initramfs is the
 * root, so no drive is the root device (docs/initrd.md); the guest finds its disks by ext4
 * label. No `network-interfaces`: pyro VMs have no network yet.
 */
export function firecrackerConfig(spec: VmmLaunchSpec, vsockUdsPath: string): object {
  return {
    "boot-source": {
      kernel_image_path: spec.kernelPath,
      initrd_path: spec.initrdPath,
      boot_args: [...FIRECRACKER_KERNEL_ARGS, ...spec.kernelArgs].join(" "),
    },
    drives: spec.disks.map((disk, index) => ({
      drive_id: `disk${index}`,
      path_on_host: disk.path,
      is_root_device: false,
      is_read_only: disk.readOnly,
    })),
    "machine-config": { vcpu_count: spec.vcpuCount, mem_size_mib: spec.memMib },
    "network-interfaces": [],
    // No `vsock_id`: optional and deprecated (Firecracker #2763, DEPRECATED.md).
    vsock: { guest_cid: GUEST_CID, uds_path: vsockUdsPath },
  };
}

/** Files the driver keeps beside the shim's: config, Firecracker's log, its stderr. */
export function firecrackerFiles(spec: VmmLaunchSpec) {
  return {
    config: join(dirname(spec.controlSocketPath), "firecracker.json"),
    log: `${spec.consoleLogPath}.vmm`,
    stderr: `${spec.consoleLogPath}.vmm.stderr`,
  };
}

/**
 * The command line. The API socket stays on (no `--no-api`) because stop needs
 * `SendCtrlAltDel`. Its log goes to its own file, not stdout, which is the guest console.
 */
export function firecrackerArgs(spec: VmmLaunchSpec): string[] {
  const files = firecrackerFiles(spec);
  return [
    "--api-sock",
    spec.controlSocketPath,
    "--config-file",
    files.config,
    "--log-path",
    files.log,
  ];
}

export interface FirecrackerOptions {
  /** @default PYRO_FIRECRACKER, else `firecracker` on PATH */
  binary?: string;
  /** Bound on the API answering that the VM runs. @default 10000 */
  startTimeoutMs?: number;
  /**
   * Bound on the guest agent accepting vsock port 5005, guest boot included (the shim
   * waits 10 s for the agent channel; this stays under it so its error is the one seen).
   * @default 8000
   */
  agentConnectTimeoutMs?: number;
  /**
   * How long stop waits for Firecracker to exit after `SendCtrlAltDel`. A guest that
   * handles the key press resets within milliseconds; one that cannot (no AT keyboard
   * driver) would only make every stop wait this long before the kill. @default 1000
   */
  stopGraceMs?: number;
}

const API_TIMEOUT_MS = 2_000;
const API_POLL_MS = 20;

export class FirecrackerDriver implements VmmDriver {
  readonly name = "firecracker" as const;
  private readonly options: Required<FirecrackerOptions>;

  constructor(options: FirecrackerOptions = {}) {
    this.options = {
      binary: options.binary ?? (process.env.PYRO_FIRECRACKER || "firecracker"),
      startTimeoutMs: options.startTimeoutMs ?? 10_000,
      agentConnectTimeoutMs: options.agentConnectTimeoutMs ?? 8_000,
      stopGraceMs: options.stopGraceMs ?? 1_000,
    };
  }

  async launch(spec: VmmLaunchSpec): Promise<VmmHandle> {
    if (spec.network)
      throw new PyroError(
        "unavailable",
        "network policies need the QEMU driver (the guard splices into QEMU's network filters); set PYRO_VMM=qemu",
      );
    if (spec.acceleration !== "kvm") {
      throw new PyroError(
        "unavailable",
        "Firecracker needs KVM; this VM would run under TCG (software emulation), which " +
          "Firecracker cannot do. Unset PYRO_VMM (or set PYRO_VMM=qemu) to run it under QEMU.",
      );
    }
    const { child, exited } = await this.start(spec);
    const failed = exited.then((exit) => {
      throw new PyroError(
        "unavailable",
        `Firecracker exited (${exit.code ?? exit.signal}) at launch: ${launchOutput(spec)}`,
      );
    });
    const polling = new AbortController();
    try {
      await Promise.race([
        waitUntilRunning(spec.controlSocketPath, polling.signal),
        failed,
        rejectAfter(
          this.options.startTimeoutMs,
          `Firecracker did not report the VM running within ${this.options.startTimeoutMs} ms`,
        ),
      ]);
    } catch (error) {
      child.kill("SIGKILL");
      throw error;
    } finally {
      polling.abort();
    }
    failed.catch(() => {});
    const agentChannel = this.agentChannel(spec.agentSocketPath, exited);
    const kill = () => void child.kill("SIGKILL");
    return new FirecrackerHandle(child.pid!, exited, agentChannel, spec.controlSocketPath, kill, {
      stopGraceMs: this.options.stopGraceMs,
    });
  }

  /** Writes the config and starts Firecracker: console on stdout, its log in a file. */
  private async start(spec: VmmLaunchSpec) {
    const files = firecrackerFiles(spec);
    // Firecracker binds both sockets itself, and a stale file in the way fails the boot.
    await Promise.all(
      [spec.controlSocketPath, spec.agentSocketPath].map((p) => rm(p, { force: true })),
    );
    const config = firecrackerConfig(spec, spec.agentSocketPath);
    await writeFile(files.config, JSON.stringify(config, null, 2), { mode: 0o600 });
    // Created first, as docs/logger.md asks (older releases open it without O_CREAT). Its
    // stderr gets a file of its own: the logger writes at its own offset, not appending.
    closeSync(openSync(files.log, "w", 0o600));
    const stderrFd = openSync(files.stderr, "w", 0o600);
    // setpriv's parent-death signal kills Firecracker if the shim itself dies. stdin is
    // /dev/null as under the jailer's --daemonize: no serial input, only a logged warning.
    const child = spawn(
      "setpriv",
      ["--pdeathsig", "KILL", "--", this.options.binary, ...firecrackerArgs(spec)],
      { stdio: ["ignore", "pipe", stderrFd] },
    );
    // The console goes through a capped log: a guest can print forever.
    void captureToLog(child.stdout!, new CappedLog(spec.consoleLogPath));
    closeSync(stderrFd);
    const exited = new Promise<VmmExit>((resolve) => {
      child.on("exit", (code, signal) => resolve({ code, signal }));
      child.on("error", () => resolve({ code: 127, signal: null }));
    });
    return { child, exited };
  }

  /** The agent's stream, once the guest has booted far enough to accept on port 5005. */
  private agentChannel(udsPath: string, exited: Promise<VmmExit>): Promise<Socket> {
    const vmmGone = new AbortController();
    void exited.then(() => vmmGone.abort());
    const channel = connectVsock(udsPath, AGENT_VSOCK_PORT, this.options.agentConnectTimeoutMs, {
      signal: vmmGone.signal,
    });
    channel.catch(() => {}); // the shim awaits it; this only keeps an early failure handled
    return channel;
  }
}

export class FirecrackerHandle implements VmmHandle {
  private exitedFlag = false;
  private readonly stopGraceMs: number;

  constructor(
    readonly pid: number,
    readonly exited: Promise<VmmExit>,
    readonly agentChannel: Promise<Socket>,
    private readonly apiSocketPath: string,
    readonly kill: () => void,
    options: { stopGraceMs?: number } = {},
  ) {
    this.stopGraceMs = options.stopGraceMs ?? 1_000;
    void exited.then(() => {
      this.exitedFlag = true;
    });
  }

  /**
   * Asks for an orderly end (`SendCtrlAltDel`: the guest resets, Firecracker exits) and
   * kills Firecracker if it is still there after the grace period. The key press only
   * works if the guest kernel has the i8042 and AT keyboard drivers; pyro's has no AT
   * keyboard driver (kernel/pyro-guest.config), so today the kill is the expected path.
   * Nothing is lost by it: the agent synced the disks before the shim asked for this.
   */
  async stop(): Promise<void> {
    if (this.exitedFlag) return;
    const timer = setTimeout(() => this.kill(), this.stopGraceMs);
    await sendCtrlAltDel(this.apiSocketPath).catch(() => this.kill());
    await this.exited;
    clearTimeout(timer);
  }

  status(): "running" | "exited" {
    return this.exitedFlag ? "exited" : "running";
  }
}

/** `PUT /actions {"action_type": "SendCtrlAltDel"}`; Firecracker answers 204. */
export async function sendCtrlAltDel(apiSocketPath: string): Promise<void> {
  const reply = await firecrackerApi(apiSocketPath, "PUT", "/actions", {
    action_type: "SendCtrlAltDel",
  });
  if (reply.status !== 204) {
    throw new Error(`Firecracker refused SendCtrlAltDel (${reply.status}): ${reply.body}`);
  }
}

const MAX_API_REPLY_BYTES = 64 * 1024;

/**
 * One request to Firecracker's API: HTTP/1.1 over its Unix socket, JSON bodies with an
 * explicit Content-Length (its HTTP server does not take chunked bodies), one connection
 * per request (`agent: false`), bounded in time and in reply size.
 */
export function firecrackerApi(
  apiSocketPath: string,
  method: "GET" | "PUT" | "PATCH",
  path: string,
  body?: object,
  timeoutMs = API_TIMEOUT_MS,
): Promise<{ status: number; body: string }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const headers: Record<string, string | number> = { Accept: "application/json" };
  if (payload !== undefined) {
    headers["Content-Type"] = "application/json";
    headers["Content-Length"] = Buffer.byteLength(payload);
  }
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      { socketPath: apiSocketPath, method, path, headers, agent: false, timeout: timeoutMs },
      (response) => {
        let text = "";
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => {
          if (text.length < MAX_API_REPLY_BYTES) text += chunk;
        });
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body: text }));
        response.on("error", reject);
      },
    );
    request.on("timeout", () =>
      request.destroy(new Error(`Firecracker API ${method} ${path}: no answer in ${timeoutMs} ms`)),
    );
    request.on("error", reject);
    request.end(payload);
  });
}

/**
 * Polls `GET /` until the instance state is `Running`. The API socket is bound before the
 * VM is built from the config file, and the answer comes from the VMM thread once it has
 * booted, so `Running` means the config was accepted and the guest started.
 */
async function waitUntilRunning(apiSocketPath: string, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    const reply = await firecrackerApi(apiSocketPath, "GET", "/").catch(() => undefined);
    if (reply?.status === 200 && instanceState(reply.body) === "Running") return;
    await sleep(API_POLL_MS);
  }
}

function instanceState(body: string): unknown {
  try {
    return (JSON.parse(body) as { state?: unknown }).state;
  } catch {
    return undefined;
  }
}

function launchOutput(spec: VmmLaunchSpec): string {
  const files = firecrackerFiles(spec);
  const read = (path: string) => {
    try {
      return readFileSync(path, "utf8");
    } catch {
      return "";
    }
  };
  return lastLines(`${read(files.log)}\n${read(files.stderr)}`, 10) || "(no output)";
}

function rejectAfter(ms: number, message: string): Promise<never> {
  return new Promise((_, reject) => {
    setTimeout(() => reject(new PyroError("unavailable", message)), ms).unref();
  });
}
