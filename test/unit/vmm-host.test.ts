import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ext4Uuid, hostAgentCommand } from "../../src/vmm/host-process.js";
import { createDriver, decideVmm } from "../../src/vmm/select.js";
import { vmmFacts as facts } from "../helpers/vmm-spec.js";

describe("the host-process driver is for tests only", () => {
  it("is never chosen without PYRO_VMM=host, on any host", () => {
    for (const acceleration of ["kvm", "tcg"] as const) {
      for (const firecrackerPath of ["/usr/bin/firecracker", undefined]) {
        expect(decideVmm(facts({ acceleration, firecrackerPath })).vmm).not.toBe("host");
      }
    }
  });

  it("PYRO_VMM=host chooses it and says plainly that it isolates nothing", () => {
    const decision = decideVmm(facts({ override: " HOST ", acceleration: "tcg" }));
    expect(decision.vmm).toBe("host");
    expect(decision.reason).toMatch(/no VM.*isolates nothing/);
  });

  it("a shim refuses a launch config asking for it unless its own PYRO_VMM says host", async () => {
    await expect(createDriver("host", { PYRO_VMM: "qemu" })).rejects.toMatchObject({
      code: "unavailable",
      message: expect.stringContaining("set PYRO_VMM=host"),
    });
    await expect(createDriver("host", {})).rejects.toMatchObject({ code: "unavailable" });
    expect((await createDriver("host", { PYRO_VMM: "host" })).name).toBe("host");
    expect((await createDriver("qemu", { PYRO_VMM: "host" })).name).toBe("qemu");
  });
});

describe("host agent command line", () => {
  it("runs the agent as PID 1 of its own namespace, dying with the shim", () => {
    const argv = hostAgentCommand("/a/pyro-agent", "/d/agent.sock", "/d/host-root", true);
    expect(argv.slice(0, 4)).toEqual(["setpriv", "--pdeathsig", "KILL", "--"]);
    const unshare = argv.slice(4, argv.indexOf("/a/pyro-agent"));
    expect(unshare).toEqual(expect.arrayContaining(["unshare", "--pid", "--fork", "--kill-child"]));
    expect(unshare).not.toContain("--user");
    expect(argv.slice(argv.indexOf("/a/pyro-agent"))).toEqual([
      "/a/pyro-agent",
      "--listen",
      "/d/agent.sock",
      "--root",
      "/d/host-root",
    ]);
  });

  it("adds a user namespace when not root (unshare --pid needs the capability)", () => {
    expect(hostAgentCommand("/a", "/s", "/r", false)).toEqual(
      expect.arrayContaining(["--user", "--map-root-user"]),
    );
  });
});

describe("ext4Uuid", () => {
  it("reads the volume UUID from the superblock and refuses a non-ext4 file", async () => {
    const dir = await mkdtemp(join(tmpdir(), "pyro-ext4-uuid-"));
    try {
      const image = Buffer.alloc(2048);
      image.writeUInt16LE(0xef53, 1024 + 0x38);
      Buffer.from("00112233445566778899aabbccddeeff", "hex").copy(image, 1024 + 0x68);
      await writeFile(join(dir, "disk"), image);
      expect(await ext4Uuid(join(dir, "disk"))).toBe("00112233445566778899aabbccddeeff");
      await writeFile(join(dir, "other"), Buffer.alloc(2048));
      await expect(ext4Uuid(join(dir, "other"))).rejects.toMatchObject({ code: "internal" });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
