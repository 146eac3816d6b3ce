import { describe, expect, it } from "vitest";
import { probeArgs } from "../../src/vmm/probe.js";
import {
  hostTscKhz,
  QEMU_FD,
  QEMU_SANDBOX,
  qemuArgs,
  qemuFileFd,
  qemuInheritedFiles,
  qemuNetworkFds,
  qemuOptionValue,
} from "../../src/vmm/qemu.js";
import { sampleLaunchSpec } from "../helpers/vmm-spec.js";

const spec = sampleLaunchSpec({ acceleration: "tcg" });
const warmSpec = sampleLaunchSpec({ memoryPath: "/vm/memory.ram", restoreFrom: "/vm/vmstate" });

const after = (args: string[], flag: string) => args.filter((_, i) => args[i - 1] === flag);

/** The flags whose value QEMU parses as `key=value,...` (QemuOpts / keyval). */
const OPTION_FLAGS = [
  "-M",
  "-accel",
  "-drive",
  "-device",
  "-chardev",
  "-object",
  "-add-fd",
  "-mon",
];

/**
 * Splits one option value as QEMU does: `,` separates, `,,` is a literal comma. Returns
 * the keys (a leading bare word, like `socket` in `socket,id=x`, counts as a key too).
 */
function optionKeys(value: string): string[] {
  const parts = value.replaceAll(",,", "\u0000").split(",");
  return parts.map((part) => part.split("=")[0]!.replaceAll("\u0000", ","));
}

describe("QEMU command line", () => {
  it("boots a microvm with the base image read-only and the state disk writable", () => {
    const args = qemuArgs(spec);
    expect(after(args, "-M")[0]).toMatch(/^microvm/);
    expect(after(args, "-drive")).toEqual([
      "id=disk0,file=/dev/fdset/1,format=raw,if=none,file.locking=off,readonly=on",
      "id=disk1,file=/dev/fdset/2,format=raw,if=none,file.locking=off",
    ]);
    expect(after(args, "-smp")).toEqual(["2"]);
    expect(after(args, "-m")).toEqual(["512"]);
  });

  it("adds no network device unless asked", () => {
    const args = qemuArgs(spec).join(" ");
    expect(args).not.toMatch(/netdev|virtio-net/);
    expect(args).toContain("-nodefaults");
  });

  it("with a network: slirp with the guest plan, IPv6 off, and the guard spliced in by fds", () => {
    const net = sampleLaunchSpec({
      acceleration: "tcg",
      network: {
        mac: "52:54:00:70:79:72",
        subnet: "10.0.2.0/24",
        gateway: "10.0.2.2",
        dns: "10.0.2.3",
      },
    });
    const args = qemuArgs(net);
    const fds = qemuNetworkFds(net);
    // After the kernel, the initramfs and the disks' three fds.
    expect(fds).toEqual({ fromGuest: QEMU_FD.firstFile + 5, toNetwork: QEMU_FD.firstFile + 6 });
    expect(after(args, "-netdev")).toEqual([
      "user,id=net0,net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3,ipv6=off",
    ]);
    expect(args).toContain("virtio-net-device,netdev=net0,mac=52:54:00:70:79:72");
    expect(args).toContain(`socket,id=netout,fd=${fds.fromGuest}`);
    expect(args).toContain(`socket,id=netin,fd=${fds.toNetwork}`);
    // The injecting redirector comes first: declared after the capturing one, the frames
    // it injects would be captured again (a loop, seen on QEMU 7.2).
    expect(after(args, "-object").filter((o) => o.startsWith("filter-redirector"))).toEqual([
      "filter-redirector,id=netinject,netdev=net0,queue=rx,indev=netin",
      "filter-redirector,id=netguard,netdev=net0,queue=rx,outdev=netout",
    ]);
    // No slirp service that reaches the host on the guest's behalf.
    expect(args.join(" ")).not.toMatch(/hostfwd=|guestfwd=|smb=|tftp=/);
  });

  it("names the agent port as the protocol spec says and takes its channels as fds", () => {
    const args = qemuArgs(spec);
    expect(args).toContain("virtserialport,chardev=agent,name=pyro.agent");
    expect(args).toContain(`socket,id=agent,fd=${QEMU_FD.agent}`);
    expect(args).toContain(`socket,id=qmp,fd=${QEMU_FD.control}`);
    expect(args).toContain(`socket,id=console,fd=${QEMU_FD.console}`);
  });

  it("opens no host path by name: kernel, initramfs and disks are inherited fds", () => {
    const files = qemuInheritedFiles(spec);
    expect(files.map((f) => [f.path, f.flags, f.fd])).toEqual([
      ["/k/vmlinux", "r", 6],
      ["/k/initramfs.cpio", "r", 7],
      ["/img/rootfs.ext4", "r", 8],
      // A writable disk: QEMU wants a read-write fd and a read-only one in its set.
      ["/vm/state.ext4", "r+", 9],
      ["/vm/state.ext4", "r", 10],
    ]);
    const args = qemuArgs(spec);
    expect(after(args, "-kernel")).toEqual(["/proc/self/fd/6"]);
    expect(after(args, "-initrd")).toEqual(["/proc/self/fd/7"]);
    expect(after(args, "-add-fd")).toEqual(["fd=8,set=1", "fd=9,set=2", "fd=10,set=2"]);
    for (const path of ["/k/", "/img/", "/vm/"]) {
      expect(args.filter((a) => a.includes(path))).toEqual([]);
    }
  });

  it("a comma in PYRO_HOME or the cache path cannot end an option early or add one", () => {
    const hostile = "/tmp/a,readonly=off,cache=unsafe,x";
    const commaSpec = sampleLaunchSpec({
      kernelPath: `${hostile}/vmlinux`,
      initrdPath: `${hostile}/initramfs.cpio`,
      disks: [
        { path: `${hostile}/rootfs.ext4`, readOnly: true },
        { path: `${hostile}/vms/vm-1/state.ext4`, readOnly: false },
      ],
      memoryPath: `${hostile}/vms/vm-1/memory.ram`,
      restoreFrom: `${hostile}/vms/vm-1/vmstate`,
      agentSocketPath: `${hostile}/vms/vm-1/agent.sock`,
      controlSocketPath: `${hostile}/vms/vm-1/vmm.sock`,
      consoleLogPath: `${hostile}/vms/vm-1/console.log`,
    });
    const optionKeysOf = (args: string[]) =>
      args.flatMap((arg, i) => (OPTION_FLAGS.includes(args[i - 1]!) ? optionKeys(arg) : []));
    const args = qemuArgs(commaSpec);
    expect(optionKeysOf(args)).toEqual(optionKeysOf(qemuArgs(warmSpec)));
    expect(args.filter((a) => a.includes(hostile))).toEqual([]);
    expect(after(args, "-drive")[1]).toBe(
      "id=disk1,file=/dev/fdset/2,format=raw,if=none,file.locking=off",
    );
  });

  it("without a RAM file: no memory backend and no incoming state", () => {
    const args = qemuArgs(spec);
    expect(args.join(" ")).not.toMatch(/memory-backend|-incoming/);
    expect(qemuInheritedFiles(spec).map((f) => f.role)).not.toContain("memory");
  });

  it("keeps guest RAM in the VM's file: a shared file backend on an inherited read-write fd", () => {
    const withRam = sampleLaunchSpec({ memoryPath: "/vm/memory.ram" });
    const files = qemuInheritedFiles(withRam);
    // After the kernel, the initramfs and the disks' three fds.
    expect(files.at(-1)).toEqual({ path: "/vm/memory.ram", flags: "r+", fd: 11, role: "memory" });
    const args = qemuArgs(withRam);
    expect(after(args, "-M")).toEqual(["microvm,x-option-roms=off,rtc=on,memory-backend=mem"]);
    expect(after(args, "-object")).toContain(
      "memory-backend-file,id=mem,size=512M,mem-path=/proc/self/fd/11,share=on",
    );
    expect(after(args, "-m")).toEqual(["512"]);
    expect(args).not.toContain("-incoming");
    // The NIC's channels move past the RAM file's fd.
    const net = {
      ...withRam,
      network: {
        mac: "52:54:00:00:00:01",
        subnet: "10.0.2.0/24",
        gateway: "10.0.2.2",
        dns: "10.0.2.3",
      },
    };
    expect(qemuNetworkFds(net)).toEqual({ fromGuest: 12, toNetwork: 13 });
  });

  it("a restore waits at -incoming defer with the saved state as a read-only fd", () => {
    const files = qemuInheritedFiles(warmSpec);
    expect(files.slice(-2).map((f) => [f.path, f.flags, f.fd, f.role])).toEqual([
      ["/vm/memory.ram", "r+", 11, "memory"],
      ["/vm/vmstate", "r", 12, "vmstate"],
    ]);
    expect(qemuFileFd(warmSpec, "vmstate")).toBe(12);
    const args = qemuArgs(warmSpec);
    expect(after(args, "-incoming")).toEqual(["defer"]);
    // Apart from the incoming state and its fd, a restore's QEMU is the saved one's.
    const saved = qemuArgs({ ...warmSpec, restoreFrom: undefined });
    expect(args.slice(0, saved.length)).toEqual(saved);
    expect(args.slice(saved.length)).toEqual(["-incoming", "defer"]);
  });

  it("escapes commas in option values by doubling them", () => {
    expect(qemuOptionValue("/tmp/a,b,,c")).toBe("/tmp/a,,b,,,,c");
    expect(optionKeys(`file,id=console,path=${qemuOptionValue("/tmp/x,readonly=on")}`)).toEqual([
      "file",
      "id",
      "path",
    ]);
  });

  it("escapes the KVM probe's console path too", () => {
    const args = probeArgs("/k,x/vmlinux", "/k,x/initramfs.cpio", "/tmp/pyro-kvm-probe-a,b/c.log");
    expect(after(args, "-chardev")).toEqual([
      "file,id=console,path=/tmp/pyro-kvm-probe-a,,b/c.log",
    ]);
    // -kernel and -initrd are plain paths to QEMU, not option syntax: no escaping there.
    expect(after(args, "-kernel")).toEqual(["/k,x/vmlinux"]);
  });

  it("runs QEMU under its seccomp sandbox with every deny option", () => {
    expect(after(qemuArgs(spec), "-sandbox")).toEqual([QEMU_SANDBOX]);
    expect(QEMU_SANDBOX.split(",").sort()).toEqual([
      "elevateprivileges=deny",
      "obsolete=deny",
      "on",
      "resourcecontrol=deny",
      "spawn=deny",
    ]);
  });

  it("bounds TCG's translation buffer so QEMU fits its cgroup's memory limit", () => {
    expect(after(qemuArgs(spec), "-accel")).toEqual(["tcg,tb-size=256"]);
  });

  it("tells a TCG guest the TSC rate, and a KVM guest nothing of it", () => {
    expect(after(qemuArgs(spec, 2_596_140), "-append")[0]).toContain("tsc_early_khz=2596140");
    const kvm = qemuArgs({ ...spec, acceleration: "kvm" }, 2_596_140);
    expect(after(kvm, "-append")[0]).not.toContain("tsc_early_khz");
    expect(after(kvm, "-accel")).toEqual(["kvm"]);
  });

  it("reads the TSC rate only from a CPU with a constant TSC", () => {
    expect(hostTscKhz("flags\t: fpu constant_tsc\ncpu MHz\t\t: 2596.140\n", false)).toBe(2_596_140);
    expect(hostTscKhz("flags\t: fpu\ncpu MHz\t\t: 2596.140\n", false)).toBeUndefined();
    // With frequency scaling "cpu MHz" is the current clock, not the TSC rate.
    expect(hostTscKhz("flags\t: fpu constant_tsc\ncpu MHz\t\t: 1200.000\n", true)).toBeUndefined();
  });
});
