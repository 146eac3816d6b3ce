/**
 * The VMM's jail, after Firecracker's jailer: whatever the guest manages to do to QEMU,
 * QEMU can do little to the host. The layers, each applied by a standard tool on the way
 * to QEMU's exec (so they hold from QEMU's first instruction):
 *
 * - a cgroup leaf per VM with memory, pids and cpu limits (`cgroup.ts`), entered by a
 *   two-line shell before anything else runs;
 * - rlimits (`prlimit`): few open files, no core dumps (they would hold guest memory), and
 *   no file larger than the VM's own writable disk;
 * - `setpriv`: when pyro is root, a uid and gid of the VM's own with no supplementary
 *   groups and every capability set emptied; always no-new-privs and the parent-death
 *   signal (QEMU dies with its shim);
 * - QEMU's own seccomp filter (`QEMU_SANDBOX`, in qemu.ts).
 *
 * QEMU opens no host path by name: the shim hands it every file and socket as an
 * inherited fd, so the VM's uid needs access to nothing at all.
 */

/** Per-VM uids are this plus the shim's pid: unique while the VM lives, never a real user. */
export const JAIL_UID_BASE = 1_900_000_000;

/** QEMU with a microvm holds a few dozen fds; ten times that is still a small number. */
export const JAIL_NOFILE = 256;

export interface JailPlan {
  /** Who QEMU runs as; undefined when pyro is not root (QEMU keeps the caller's user). */
  identity: { uid: number; gid: number; groups: number[] } | undefined;
  /** RLIMIT_NOFILE. */
  nofile: number;
  /** RLIMIT_FSIZE in bytes: the largest file QEMU may write (its writable disks). */
  fsizeBytes: number;
  /** `cgroup.procs` files QEMU's process enters before it execs. */
  cgroupProcs: string[];
}

/**
 * The identity for a VM: root gives QEMU a uid of its own, derived from the shim's pid
 * (one shim per VM). `groups` keeps only what the VMM needs: /dev/kvm's group under KVM.
 */
export function jailIdentity(
  shimPid: number,
  isRoot: boolean,
  kvmGid: number | undefined,
): JailPlan["identity"] {
  if (!isRoot) return undefined;
  const id = JAIL_UID_BASE + shimPid;
  return { uid: id, gid: id, groups: kvmGid === undefined ? [] : [kvmGid] };
}

/** Enters each cgroup named before `--`, then execs the rest. */
const ENTER_CGROUPS =
  'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"';

/** The full command line that starts `argv` (the VMM and its arguments) inside the jail. */
export function jailCommand(plan: JailPlan, argv: string[]): string[] {
  const identity = plan.identity
    ? [
        `--reuid=${plan.identity.uid}`,
        `--regid=${plan.identity.gid}`,
        plan.identity.groups.length
          ? `--groups=${plan.identity.groups.join(",")}`
          : "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
      ]
    : [];
  const setpriv = ["setpriv", ...identity, "--no-new-privs", "--pdeathsig=KILL", "--", ...argv];
  const prlimit = [
    "prlimit",
    `--nofile=${plan.nofile}:${plan.nofile}`,
    `--fsize=${plan.fsizeBytes}:${plan.fsizeBytes}`,
    "--core=0:0",
    "--",
    ...setpriv,
  ];
  if (plan.cgroupProcs.length === 0) return prlimit;
  return ["sh", "-c", ENTER_CGROUPS, "pyro-vmm-jail", ...plan.cgroupProcs, "--", ...prlimit];
}
