import { join } from "node:path";
import type { Acceleration, VmmDriver } from "../vmm/driver.js";
import type { ShimNetworkConfig } from "./network.js";

/** Written by the manager into the VM's state directory; the shim boots from it. */
export interface ShimLaunchConfig {
  vm_id: string;
  kernel_path: string;
  initrd_path: string;
  rootfs_path: string;
  state_disk_path: string;
  vcpu_count: number;
  mem_mib: number;
  acceleration: Acceleration;
  /** Which driver boots the VM (decided by the manager, `vmm/select.ts`). */
  vmm: VmmDriver["name"];
  hostname: string;
  /** Extra guest kernel arguments (tests use them to provoke boot failures). */
  kernel_args: string[];
  /** The shim ends the VM this long after start; 0 = never. */
  ttl_seconds: number;
  /**
   * At the TTL: delete the VM (one-shot and lifecycle VMs), only stop it, or pause it
   * (workspaces: saved to its directory; a driver that cannot save stops it instead).
   */
  ttl_action: "delete" | "stop" | "pause";
  /**
   * Time a guest gets past a request's own timeout before the shim gives up on it.
   * @default 20000 (`guest/bounds.ts`; tests shorten it)
   */
  reply_grace_ms?: number;
  /**
   * How long a request without a timeout of its own may wait for the guest.
   * @default 300000 (`guest/bounds.ts`)
   */
  request_deadline_ms?: number;
  /** How long the guest may take from VMM start to an answering agent. */
  boot_timeout_ms: number;
  /** A directory the agent creates at boot (workspaces: /workspace). */
  workspace_root: string | null;
  /** Remove the whole state directory when the VM ends (one-shot VMs). */
  delete_on_exit: boolean;
  /**
   * The process a one-shot VM belongs to. If it dies, even before it could claim the VM
   * over the socket, the shim ends the VM: a killed client never leaks one.
   */
  owner_pid: number | null;
  /** The VM's NIC and its policy; null = policy `off`: no NIC at all. */
  network?: ShimNetworkConfig | null;
  /**
   * QEMU: the guest's RAM file (`vmFiles(dir).memory`), created sparse by the shim when
   * absent; null/absent for drivers without one (then there is no save or restore).
   */
  memory_path?: string | null;
  /**
   * Boot by restoring saved state instead of a cold boot: `template` (a parked template's
   * state, RAM copied into `memory_path` by the manager; the shim lets the guest go on)
   * or `saved` (this VM's own state from a pause or a fork).
   */
  restore?: ShimRestore | null;
}

export interface ShimRestore {
  vmstate_path: string;
  kind: "template" | "saved";
}

export type { ShimState, ShimStatus } from "../guest/ops/index.js";

/** File names inside a VM's state directory. */
export function vmFiles(dir: string) {
  return {
    launch: join(dir, "launch.json"),
    status: join(dir, "shim.json"),
    socket: join(dir, "shim.sock"),
    agentSocket: join(dir, "agent.sock"),
    controlSocket: join(dir, "vmm.sock"),
    console: join(dir, "console.log"),
    /** Refusals of the network guard and the allowlist proxy (rate-limited lines). */
    networkLog: join(dir, "network.log"),
    shimLog: join(dir, "shim.log"),
    stateDisk: join(dir, "state.ext4"),
    /** The guest's RAM (QEMU, `share=on`): a pause leaves the VM's memory here. */
    memory: join(dir, "memory.ram"),
    /** Device and CPU state saved by a pause or a fork (RAM is in `memory`). */
    vmstate: join(dir, "vmstate"),
    /** `vmstate` while a resume restores it: no longer a saved state (`shim/vmm-start.ts`). */
    vmstateRestoring: join(dir, "vmstate.restoring"),
    /** What the paused VM was saved by and when; written after `vmstate`, read before resume. */
    savedState: join(dir, "saved-state.json"),
    record: join(dir, "record.json"),
    /** pid of the process that made a one-shot VM, written before anything else. */
    owner: join(dir, "owner.pid"),
  };
}
