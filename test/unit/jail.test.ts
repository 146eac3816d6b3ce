import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { JAIL_UID_BASE, jailCommand, jailIdentity, type JailPlan } from "../../src/vmm/jail.js";

const isRoot = process.getuid?.() === 0;

const plan = (overrides: Partial<JailPlan> = {}): JailPlan => ({
  identity: jailIdentity(4242, true, undefined),
  nofile: 64,
  fsizeBytes: 1 << 20,
  cgroupProcs: [],
  ...overrides,
});

/** Runs a shell script inside the jail and returns what it printed. */
function insideJail(jail: JailPlan, script: string): string {
  const [command, ...args] = jailCommand(jail, ["sh", "-c", script]);
  const result = spawnSync(command!, args, { encoding: "utf8", cwd: "/" });
  expect(result.stderr).toBe("");
  return result.stdout;
}

const statusField = (status: string, field: string) =>
  new RegExp(`^${field}:[ \\t]*(.*)$`, "m").exec(status)?.[1]?.trim();

describe("VMM jail", () => {
  it("gives each VM's QEMU a uid of its own when pyro is root, and none otherwise", () => {
    expect(jailIdentity(4242, true, undefined)).toEqual({
      uid: JAIL_UID_BASE + 4242,
      gid: JAIL_UID_BASE + 4242,
      groups: [],
    });
    // Under KVM it keeps /dev/kvm's group, which QEMU needs to open the device by name.
    expect(jailIdentity(4242, true, 108)?.groups).toEqual([108]);
    expect(jailIdentity(4242, false, 108)).toBeUndefined();
  });

  it("enters the cgroups first, then rlimits, then drops privileges, then execs", () => {
    const argv = jailCommand(plan({ cgroupProcs: ["/cg/a/cgroup.procs"] }), ["qemu", "-M"]);
    expect(argv.slice(0, 2)).toEqual(["sh", "-c"]);
    expect(argv.slice(3, 6)).toEqual(["pyro-vmm-jail", "/cg/a/cgroup.procs", "--"]);
    const prlimit = argv.indexOf("prlimit");
    const setpriv = argv.indexOf("setpriv");
    expect(prlimit).toBeGreaterThan(5);
    expect(setpriv).toBeGreaterThan(prlimit);
    expect(argv.slice(prlimit, setpriv)).toEqual([
      "prlimit",
      "--nofile=64:64",
      "--fsize=1048576:1048576",
      "--core=0:0",
      "--",
    ]);
    expect(argv.slice(-3)).toEqual(["--", "qemu", "-M"]);
    expect(argv).toContain("--bounding-set=-all");
    expect(argv).toContain("--no-new-privs");
    expect(argv).toContain("--pdeathsig=KILL");
  });

  it("without root keeps the user but still sets no-new-privs and the rlimits", () => {
    const argv = jailCommand(plan({ identity: undefined }), ["qemu"]);
    expect(argv[0]).toBe("prlimit");
    expect(argv.some((a) => a.startsWith("--reuid"))).toBe(false);
    expect(argv).toContain("--no-new-privs");
  });

  it.runIf(isRoot)("really runs the program unprivileged, capability-free and limited", () => {
    const status = insideJail(plan(), "cat /proc/self/status");
    expect(statusField(status, "Uid")).toBe(
      Array(4)
        .fill(JAIL_UID_BASE + 4242)
        .join("\t"),
    );
    expect(statusField(status, "Gid")).toBe(
      Array(4)
        .fill(JAIL_UID_BASE + 4242)
        .join("\t"),
    );
    expect(statusField(status, "Groups")).toBe("");
    for (const caps of ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"])
      expect(statusField(status, caps)).toBe("0000000000000000");
    expect(statusField(status, "NoNewPrivs")).toBe("1");
    const limits = insideJail(plan(), "ulimit -n; ulimit -f; ulimit -c");
    // sh's `ulimit -f` counts 512-byte blocks.
    expect(limits.split("\n")).toEqual(["64", String((1 << 20) / 512), "0", ""]);
  });

  it.runIf(isRoot)("the jailed process cannot read what only root may", () => {
    const out = insideJail(plan(), "cat /root/.bashrc /etc/shadow 2>/dev/null; echo rc=$?");
    expect(out).toBe("rc=1\n");
  });
});
