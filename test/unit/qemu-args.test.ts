import { describe, expect, it } from "vitest";
import { hostTscKhz, qemuArgs } from "../../src/vmm/qemu.js";
import { sampleLaunchSpec } from "../helpers/vmm-spec.js";

const spec = sampleLaunchSpec({ acceleration: "tcg" });

const after = (args: string[], flag: string) => args.filter((_, i) => args[i - 1] === flag);

describe("QEMU command line", () => {
  it("boots a microvm with the base image read-only and the state disk writable", () => {
    const args = qemuArgs(spec);
    expect(after(args, "-M")[0]).toMatch(/^microvm/);
    expect(after(args, "-drive")).toEqual([
      "id=disk0,file=/img/rootfs.ext4,format=raw,if=none,readonly=on",
      "id=disk1,file=/vm/state.ext4,format=raw,if=none",
    ]);
    expect(after(args, "-smp")).toEqual(["2"]);
    expect(after(args, "-m")).toEqual(["512"]);
  });

  it("adds no network device unless asked", () => {
    const args = qemuArgs(spec).join(" ");
    expect(args).not.toMatch(/netdev|virtio-net/);
    expect(args).toContain("-nodefaults");
  });

  it("names the agent port as the protocol spec says and dials the shim's sockets", () => {
    const args = qemuArgs(spec);
    expect(args).toContain("virtserialport,chardev=agent,name=pyro.agent");
    expect(args).toContain("socket,id=agent,path=/vm/agent.sock");
    expect(args).toContain("socket,id=qmp,path=/vm/vmm.sock");
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
