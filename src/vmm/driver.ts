import type { Socket } from "node:net";

/** What a VMM driver needs to boot one VM. Paths are absolute; the shim owns them all. */
export interface VmmLaunchSpec {
  /** The VM's id; names its cgroup leaf. */
  vmId: string;
  kernelPath: string;
  initrdPath: string;
  /** Kernel arguments beyond the driver's own (console, reboot behaviour). */
  kernelArgs: string[];
  vcpuCount: number;
  memMib: number;
  acceleration: Acceleration;
  /** Block devices in order; the guest finds them by ext4 label, not by position. */
  disks: { path: string; readOnly: boolean }[];
  /** Where the driver puts the agent channel's Unix socket. */
  agentSocketPath: string;
  /** Where the VMM's control socket (QMP, Firecracker API) goes. */
  controlSocketPath: string;
  consoleLogPath: string;
  /**
   * A virtio NIC on user-mode networking (slirp) whose every frame toward slirp passes
   * through the shim first (docs/architecture.md "Network plumbing"); absent = no NIC at all.
   */
  network?: VmmNetworkSpec;
  /**
   * Guest RAM backed by this file (QEMU `memory-backend-file`, `share=on`): exactly
   * `memMib`, owned by QEMU's jail uid when root (the driver sets both owner and mode).
   * QEMU only; required by `restoreFrom` and `saveState`.
   */
  memoryPath?: string;
  /**
   * Restore instead of booting: device and CPU state from this vmstate file, RAM from
   * `memoryPath`. Everything else in the spec must match the VM that was saved. `launch()`
   * resolves once the guest runs again (incoming migration done, `cont` sent).
   */
  restoreFrom?: string;
}

export interface VmmNetworkSpec {
  /** The NIC's MAC address (`52:54:00:..`). */
  mac: string;
  /** Slirp's subnet as `10.0.2.0/24`, its gateway (the host alias) and its DNS address. */
  subnet: string;
  gateway: string;
  dns: string;
}

/**
 * The two ends of the splice between the guest's NIC and slirp: every frame the guest
 * sends arrives on `fromGuest`; what the shim writes to `toNetwork` continues to slirp.
 * Both carry frames as a uint32 big-endian length then the Ethernet frame.
 */
export interface VmmNetworkChannels {
  fromGuest: Socket;
  toNetwork: Socket;
  /** Runs a human monitor command (`hostfwd_add ...`); resolves with its output text. */
  monitor(command: string): Promise<string>;
}

export type Acceleration = "kvm" | "tcg";

export interface VmmExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One running VMM process. */
export interface VmmHandle {
  readonly pid: number;
  /** Settles when the VMM process has exited, for whatever reason. */
  readonly exited: Promise<VmmExit>;
  /** The byte stream to the guest agent (virtio-serial under QEMU, vsock under Firecracker). */
  readonly agentChannel: Promise<Socket>;
  /** Present when the spec asked for a NIC. */
  readonly network?: VmmNetworkChannels;
  /** Asks the VMM to stop the VM now (the guest should already have synced). */
  stop(): Promise<void>;
  /** SIGKILL, for when stop did not work. */
  kill(): void;
  status(): "running" | "exited";
  /**
   * Stops the guest's CPUs and writes its device state to `vmstatePath` (RAM stays in the
   * `memoryPath` file); the VM stays stopped: then either `stop()` it or `resume()` it.
   * Undefined for drivers that cannot.
   */
  saveState?(vmstatePath: string): Promise<void>;
  /** Continues a VM stopped by saveState. */
  resume?(): Promise<void>;
}

export interface VmmDriver {
  /** `host` runs the agent as a host process, without a VM: a test driver (`host-process.ts`). */
  readonly name: "qemu" | "firecracker" | "host";
  launch(spec: VmmLaunchSpec): Promise<VmmHandle>;
}
