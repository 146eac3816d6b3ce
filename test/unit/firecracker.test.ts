/**
 * The Firecracker driver against Firecracker's documents, not against Firecracker: no
 * firecracker binary exists on the project's machines and their KVM cannot run guests, so
 * the real binary has never run this code. The field names below are transcribed from
 * firecracker-microvm/firecracker src/firecracker/swagger/firecracker.yaml (1.17.0-dev),
 * the handshake from docs/vsock.md and the action from docs/api_requests/actions.md; the
 * fake servers implement those documents and nothing more.
 */
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer as createHttpServer, type IncomingHttpHeaders } from "node:http";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { encodeControl, FrameReader, FrameType } from "../../src/guest/frame.js";
import type { VmmExit } from "../../src/vmm/driver.js";
import {
  FirecrackerDriver,
  firecrackerArgs,
  firecrackerConfig,
  FirecrackerHandle,
} from "../../src/vmm/firecracker.js";
import { connectVsock } from "../../src/vmm/vsock.js";
import { GUEST_KERNEL_ARGS } from "../../src/vmm/kernel-args.js";
import { decideVmm, findFirecracker } from "../../src/vmm/select.js";
import { sampleLaunchSpec, vmmFacts as facts } from "../helpers/vmm-spec.js";

const spec = sampleLaunchSpec({ acceleration: "kvm" });

/** Properties of the swagger definitions (FullVmConfiguration and what it references). */
const DOCUMENTED = {
  top: [
    "balloon",
    "drives",
    "boot-source",
    "cpu-config",
    "logger",
    "machine-config",
    "metrics",
    "memory-hotplug",
    "mmds-config",
    "network-interfaces",
    "pmem",
    "vsock",
    "entropy",
  ],
  bootSource: ["boot_args", "initrd_path", "kernel_image_path"],
  drive: [
    "drive_id",
    "partuuid",
    "is_root_device",
    "cache_type",
    "is_read_only",
    "path_on_host",
    "rate_limiter",
    "io_engine",
    "socket",
  ],
  machineConfig: [
    "cpu_template",
    "smt",
    "mem_size_mib",
    "track_dirty_pages",
    "vcpu_count",
    "huge_pages",
  ],
  vsock: ["guest_cid", "uds_path", "vsock_id"],
};

type Config = {
  "boot-source": { kernel_image_path: string; initrd_path: string; boot_args: string };
  drives: Record<string, unknown>[];
  "machine-config": Record<string, unknown>;
  "network-interfaces": unknown[];
  vsock: Record<string, unknown>;
};

describe("Firecracker config file", () => {
  const config = JSON.parse(JSON.stringify(firecrackerConfig(spec, "/vm/agent.sock"))) as Config &
    Record<string, unknown>;

  it("uses only documented field names and sets every required one", () => {
    expect(DOCUMENTED.top).toEqual(expect.arrayContaining(Object.keys(config)));
    expect(DOCUMENTED.bootSource).toEqual(
      expect.arrayContaining(Object.keys(config["boot-source"])),
    );
    for (const drive of config.drives) {
      expect(DOCUMENTED.drive).toEqual(expect.arrayContaining(Object.keys(drive)));
      // Required: drive_id, is_root_device; and for virtio-block is_read_only, path_on_host.
      expect(Object.keys(drive).sort()).toEqual(
        ["drive_id", "is_read_only", "is_root_device", "path_on_host"].sort(),
      );
    }
    expect(DOCUMENTED.machineConfig).toEqual(
      expect.arrayContaining(Object.keys(config["machine-config"])),
    );
    expect(DOCUMENTED.vsock).toEqual(expect.arrayContaining(Object.keys(config.vsock)));
  });

  it("boots the kernel with the initramfs as root and attaches no root device", () => {
    expect(config["boot-source"]).toMatchObject({
      kernel_image_path: "/k/vmlinux",
      initrd_path: "/k/initramfs.cpio",
    });
    expect(config.drives.every((d) => d.is_root_device === false)).toBe(true);
  });

  it("attaches the base image read-only and the state disk writable, in order", () => {
    expect(config.drives).toEqual([
      {
        drive_id: "disk0",
        path_on_host: "/img/rootfs.ext4",
        is_root_device: false,
        is_read_only: true,
      },
      {
        drive_id: "disk1",
        path_on_host: "/vm/state.ext4",
        is_root_device: false,
        is_read_only: false,
      },
    ]);
  });

  it("sizes the machine and gives the guest vsock CID 3 on the agent socket", () => {
    expect(config["machine-config"]).toEqual({ vcpu_count: 2, mem_size_mib: 512 });
    expect(config.vsock).toEqual({ guest_cid: 3, uds_path: "/vm/agent.sock" });
  });

  it("has no network interface", () => {
    expect(config["network-interfaces"]).toEqual([]);
  });

  it("passes Firecracker's boot args, pyro's guest args and the caller's args last", () => {
    const args = config["boot-source"].boot_args.split(" ");
    expect(args.slice(0, 4)).toEqual(["console=ttyS0", "reboot=k", "panic=1", "pci=off"]);
    expect(args).toEqual(expect.arrayContaining(GUEST_KERNEL_ARGS));
    expect(args).toContain("rdinit=/init");
    expect(args.at(-1)).toBe("pyro.hostname=vm-1");
    // QEMU's reboot handling would leave Firecracker running after a guest reboot.
    expect(args).not.toContain("reboot=t");
  });

  it("starts Firecracker from the config file with its API socket and log file", () => {
    expect(firecrackerArgs(spec)).toEqual([
      "--api-sock",
      "/vm/vmm.sock",
      "--config-file",
      "/vm/firecracker.json",
      "--log-path",
      "/vm/console.log.vmm",
    ]);
  });

  it("refuses to launch under TCG before starting anything", async () => {
    const driver = new FirecrackerDriver({ binary: "/nonexistent/firecracker" });
    await expect(driver.launch({ ...spec, acceleration: "tcg" })).rejects.toMatchObject({
      code: "unavailable",
      message: expect.stringMatching(/^Firecracker needs KVM/),
    });
  });
});

describe("choosing the VMM", () => {
  it("picks Firecracker when its binary is there and KVM is usable", () => {
    expect(decideVmm(facts({}))).toMatchObject({ vmm: "firecracker" });
  });

  it("stays on QEMU without a firecracker binary, and says where it looked", () => {
    const d = decideVmm(facts({ firecrackerPath: undefined, firecrackerLookup: "PATH" }));
    expect(d.vmm).toBe("qemu");
    expect(d.reason).toContain("PATH");
  });

  it("stays on QEMU under TCG even with a firecracker binary", () => {
    const d = decideVmm(facts({ acceleration: "tcg" }));
    expect(d.vmm).toBe("qemu");
    expect(d.reason).toMatch(/needs KVM/);
  });

  it("PYRO_VMM=qemu forces QEMU where Firecracker could run", () => {
    expect(decideVmm(facts({ override: "qemu" }))).toEqual({
      vmm: "qemu",
      reason: "forced by PYRO_VMM=qemu",
    });
  });

  it("PYRO_VMM=firecracker forces Firecracker (case and spaces ignored)", () => {
    expect(decideVmm(facts({ override: " Firecracker " })).vmm).toBe("firecracker");
  });

  it("PYRO_VMM=firecracker without KVM is unavailable, not a silent fallback", () => {
    expect(() => decideVmm(facts({ override: "firecracker", acceleration: "tcg" }))).toThrow(
      expect.objectContaining({ code: "unavailable", message: expect.stringMatching(/KVM/) }),
    );
  });

  it("PYRO_VMM=firecracker without a binary is unavailable and names PYRO_FIRECRACKER", () => {
    const forced = facts({
      override: "firecracker",
      firecrackerPath: undefined,
      firecrackerLookup: "PYRO_FIRECRACKER=/opt/fc",
    });
    expect(() => decideVmm(forced)).toThrow(
      expect.objectContaining({
        code: "unavailable",
        message: expect.stringMatching(/PYRO_FIRECRACKER=\/opt\/fc.*PYRO_FIRECRACKER=/),
      }),
    );
  });

  it("rejects an unknown PYRO_VMM", () => {
    expect(() => decideVmm(facts({ override: "xen" }))).toThrow(
      expect.objectContaining({ code: "invalid_argument" }),
    );
  });

  describe("binary lookup", () => {
    let dir: string;
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), "pyro-fc-lookup-"));
    });
    afterEach(() => rm(dir, { recursive: true, force: true }));

    it("finds an executable firecracker on PATH but not a non-executable one", async () => {
      const binary = join(dir, "firecracker");
      await writeFile(binary, "#!/bin/sh\n", { mode: 0o644 });
      expect((await findFirecracker({ PATH: dir })).path).toBeUndefined();
      await chmod(binary, 0o755);
      expect(await findFirecracker({ PATH: `/nonexistent:${dir}` })).toEqual({
        path: binary,
        lookup: "PATH",
      });
    });

    it("uses only PYRO_FIRECRACKER when it is set", async () => {
      await writeFile(join(dir, "firecracker"), "#!/bin/sh\n", { mode: 0o755 });
      const other = join(dir, "fc-custom");
      expect((await findFirecracker({ PATH: dir, PYRO_FIRECRACKER: other })).path).toBeUndefined();
      await writeFile(other, "#!/bin/sh\n", { mode: 0o755 });
      expect((await findFirecracker({ PATH: dir, PYRO_FIRECRACKER: other })).path).toBe(other);
    });
  });
});

describe("host-initiated vsock handshake", () => {
  let dir: string;
  let servers: Server[];
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "pyro-vsock-"));
    servers = [];
  });
  afterEach(async () => {
    for (const server of servers) server.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** A stand-in for Firecracker's vsock Unix socket; `onConnect` plays the guest side. */
  async function fakeVsock(path: string, onConnect: (socket: Socket, line: string) => void) {
    const server = createServer((socket) => {
      let text = "";
      socket.on("error", () => {});
      const onData = (chunk: Buffer) => {
        text += chunk.toString("latin1");
        const newline = text.indexOf("\n");
        if (newline < 0) return;
        socket.off("data", onData);
        onConnect(socket, text.slice(0, newline + 1));
      };
      socket.on("data", onData);
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(path, resolve));
  }

  const collect = (socket: Socket, bytes: number) =>
    new Promise<Buffer>((resolve) => {
      let got = Buffer.alloc(0);
      socket.on("data", (chunk: Buffer) => {
        got = Buffer.concat([got, chunk]);
        if (got.length >= bytes) resolve(got);
      });
    });

  it("retries while the guest is not listening, then keeps the bytes that follow OK", async () => {
    const path = join(dir, "v.sock");
    const hello = encodeControl(1, { type: "result", agent_version: "test" });
    const connects: string[] = [];
    // Nothing at the path at first (Firecracker not up), then one refused connection
    // (Firecracker closes it: nothing listens on the port yet), then the agent answers.
    setTimeout(() => {
      void fakeVsock(path, (socket, line) => {
        connects.push(line);
        if (connects.length === 1) return socket.destroy();
        // The OK line and the agent's first frame in one write, as a fast guest may do.
        socket.write(Buffer.concat([Buffer.from("OK 1073741824\n"), hello]));
        socket.on("data", (chunk: Buffer) => socket.write(chunk)); // echo what follows
      });
    }, 100);
    const socket = await connectVsock(path, 5005, 5_000, { retryIntervalMs: 10 });
    // A consumer that attaches late (the shim builds its mux after an await) loses nothing.
    await new Promise((r) => setTimeout(r, 50));
    const received = collect(socket, hello.length);
    const frames = new FrameReader().push(await received);
    expect(frames.map((f) => [f.channel, f.type, f.payload.toString()])).toEqual([
      [1, FrameType.control, '{"type":"result","agent_version":"test"}'],
    ]);
    expect(connects).toEqual(["CONNECT 5005\n", "CONNECT 5005\n"]);
    // And the stream carries the host's bytes to the guest, nothing else after CONNECT.
    const echoed = collect(socket, hello.length);
    socket.write(hello);
    expect(await echoed).toEqual(hello);
    socket.destroy();
  });

  it("reads an OK line that arrives split across writes", async () => {
    const path = join(dir, "v.sock");
    await fakeVsock(path, (socket) => {
      socket.write("O");
      setTimeout(() => socket.write("K 1073741825\nagent-bytes"), 20);
    });
    const socket = await connectVsock(path, 5005, 2_000);
    expect((await collect(socket, 11)).toString()).toBe("agent-bytes");
    socket.destroy();
  });

  it("fails at once on a reply that is not OK <port>", async () => {
    const path = join(dir, "v.sock");
    let attempts = 0;
    await fakeVsock(path, (socket) => {
      attempts += 1;
      socket.end("HTTP/1.1 400 Bad Request\r\n\r\n");
    });
    // A deadline far beyond the test's own timeout: only an answer without retrying passes.
    await expect(connectVsock(path, 5005, 600_000, { retryIntervalMs: 10 })).rejects.toMatchObject({
      code: "unavailable",
      message: expect.stringContaining("unexpected reply to CONNECT 5005"),
    });
    expect(attempts).toBe(1);
  });

  it("fails on an endless line without a newline instead of buffering it", async () => {
    const path = join(dir, "v.sock");
    await fakeVsock(path, (socket) => socket.write("x".repeat(100)));
    await expect(connectVsock(path, 5005, 2_000)).rejects.toMatchObject({ code: "unavailable" });
  });

  it("times out, saying why, when the guest never listens", async () => {
    const path = join(dir, "v.sock");
    await fakeVsock(path, (socket) => socket.destroy());
    await expect(connectVsock(path, 5005, 300, { retryIntervalMs: 10 })).rejects.toMatchObject({
      code: "timeout",
      message: expect.stringContaining("closed before OK"),
    });
  });

  it("keeps the last real reason when the deadline cuts the final attempt short", async () => {
    // Refused while the guest boots, then a connection that never answers: on a loaded
    // host the last attempt is often still waiting when the deadline comes.
    const path = join(dir, "v.sock");
    const start = Date.now();
    await fakeVsock(path, (socket) => {
      if (Date.now() - start < 150) socket.destroy();
    });
    await expect(connectVsock(path, 5005, 400, { retryIntervalMs: 10 })).rejects.toMatchObject({
      code: "timeout",
      message: expect.stringContaining("closed before OK"),
    });
  });

  it("stops retrying when the VMM is gone", async () => {
    const gone = new AbortController();
    setTimeout(() => gone.abort(), 50);
    await expect(
      connectVsock(join(dir, "missing.sock"), 5005, 5_000, { signal: gone.signal }),
    ).rejects.toMatchObject({ message: expect.stringContaining("VMM exited") });
  });
});

describe("stopping a Firecracker VM", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "pyro-fc-api-"));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  interface Seen {
    method?: string;
    url?: string;
    headers: IncomingHttpHeaders;
    body: string;
  }

  /** A stand-in for Firecracker's API socket: answers 204 and records the request. */
  async function fakeApi(path: string, onAction: () => void) {
    const seen: Seen[] = [];
    const server = createHttpServer((request, response) => {
      let body = "";
      request.on("data", (chunk: Buffer) => (body += chunk.toString()));
      request.on("end", () => {
        seen.push({ method: request.method, url: request.url, headers: request.headers, body });
        response.writeHead(204).end();
        onAction();
      });
    });
    await new Promise<void>((resolve) => server.listen(path, resolve));
    return { seen, server };
  }

  function handle(apiPath: string, stopGraceMs: number) {
    let exit!: (value: VmmExit) => void;
    const exited = new Promise<VmmExit>((resolve) => (exit = resolve));
    const kill = vi.fn(() => exit({ code: null, signal: "SIGKILL" }));
    const never = new Promise<Socket>(() => {});
    const vm = new FirecrackerHandle(1, exited, never, apiPath, kill, { stopGraceMs });
    return { vm, kill, exit };
  }

  it("sends a well-formed PUT /actions SendCtrlAltDel and waits for the exit", async () => {
    const apiPath = join(dir, "vmm.sock");
    const { vm, kill, exit } = handle(apiPath, 5_000);
    const api = await fakeApi(apiPath, () => exit({ code: 0, signal: null }));
    await vm.stop();
    api.server.close();
    expect(api.seen).toHaveLength(1);
    const [request] = api.seen;
    expect(request).toMatchObject({ method: "PUT", url: "/actions" });
    expect(JSON.parse(request!.body)).toEqual({ action_type: "SendCtrlAltDel" });
    expect(request!.headers["content-type"]).toBe("application/json");
    expect(request!.headers["content-length"]).toBe(String(Buffer.byteLength(request!.body)));
    expect(request!.headers["transfer-encoding"]).toBeUndefined();
    expect(kill).not.toHaveBeenCalled();
    expect(vm.status()).toBe("exited");
  });

  it("kills Firecracker when the guest ignores the key press", async () => {
    const apiPath = join(dir, "vmm.sock");
    const { vm, kill } = handle(apiPath, 100);
    const api = await fakeApi(apiPath, () => {}); // 204, but nothing exits
    await vm.stop();
    api.server.close();
    expect(api.seen).toHaveLength(1);
    expect(kill).toHaveBeenCalledTimes(1);
  });

  it("kills Firecracker at once when its API socket does not answer", async () => {
    // A grace far beyond the test's own timeout: waiting it out instead of killing fails.
    const { vm, kill } = handle(join(dir, "missing.sock"), 600_000);
    await vm.stop();
    expect(kill).toHaveBeenCalledTimes(1);
    expect(vm.status()).toBe("exited");
  });

  it("does nothing once Firecracker has exited", async () => {
    const { vm, kill, exit } = handle(join(dir, "missing.sock"), 5_000);
    exit({ code: 0, signal: null });
    await new Promise((r) => setTimeout(r, 0));
    await vm.stop();
    expect(kill).not.toHaveBeenCalled();
  });
});
