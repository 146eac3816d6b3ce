import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  canonicalSpec,
  templateKey,
  type TemplateKeyInputs,
  type TemplateShape,
} from "../../src/vmstate/template-key.js";
import {
  ensureTemplate,
  pruneTemplates,
  recordTemplateFailure,
  templateFiles,
  TEMPLATE_RETRY_MS,
  verifyTemplate,
  type TemplateBuilder,
} from "../../src/vmstate/templates.js";
import { qemuArgs } from "../../src/vmm/qemu.js";

const previousCache = process.env.PYRO_CACHE_DIR;
let root: string;
let cache: string;

beforeEach(() => {
  cache = mkdtempSync(join(tmpdir(), "pyro-templates-cache-"));
  root = join(cache, "templates");
  process.env.PYRO_CACHE_DIR = cache;
});
afterEach(() => rmSync(cache, { recursive: true, force: true }));
afterAll(() => {
  if (previousCache === undefined) delete process.env.PYRO_CACHE_DIR;
  else process.env.PYRO_CACHE_DIR = previousCache;
});

const SHAPE: TemplateShape = {
  kind: "early",
  vcpuCount: 1,
  memMib: 256,
  acceleration: "tcg",
  network: null,
  stateDiskBytes: 8 * 2 ** 30,
};

function inputs(changes: Partial<TemplateKeyInputs> = {}): TemplateKeyInputs {
  return {
    format: 2,
    kind: "early",
    qemu: {
      path: "/usr/bin/qemu-system-x86_64",
      version: "QEMU emulator version 7.2.15",
      size: 1000,
      mtime_ms: 1,
      inode: 7,
    },
    qemu_args: qemuArgs(canonicalSpec(SHAPE), 2_000_000),
    kernel: { key: "6.1-abc", size: 10, mtime_ms: 1 },
    agent: { version: "0.1.0+abc", size: 20, mtime_ms: 1 },
    environment: { name: "debian:12-base", image_sha256: "aa", image_size_bytes: 30 },
    state_disk_bytes: SHAPE.stateDiskBytes,
    ...changes,
  };
}

/** A builder that writes plausible template files and counts its calls. */
function fakeBuilder(calls: { count: number }, delayMs = 0): TemplateBuilder {
  return async (dir) => {
    calls.count += 1;
    await new Promise((r) => setTimeout(r, delayMs));
    await writeFile(join(dir, "vmstate"), "device state");
    await writeFile(join(dir, "memory.ram"), Buffer.alloc(4096));
    await writeFile(join(dir, "state.ext4"), Buffer.alloc(8192));
  };
}

describe("template key", () => {
  it("changes with every input", () => {
    const base = templateKey(inputs());
    const variants: Partial<TemplateKeyInputs>[] = [
      { format: 3 },
      { kind: "late" },
      { qemu: { ...inputs().qemu, version: "QEMU emulator version 8.2.0" } },
      { qemu: { ...inputs().qemu, path: "/opt/qemu" } },
      { qemu: { ...inputs().qemu, size: 1001 } },
      { qemu: { ...inputs().qemu, mtime_ms: 2 } },
      { qemu: { ...inputs().qemu, inode: 8 } },
      { kernel: { key: "6.1-abd", size: 10, mtime_ms: 1 } },
      { kernel: { key: "6.1-abc", size: 11, mtime_ms: 1 } },
      { agent: { version: "0.1.0+abd", size: 20, mtime_ms: 1 } },
      { agent: { version: "0.1.0+abc", size: 20, mtime_ms: 2 } },
      { environment: { name: "debian:12", image_sha256: "aa", image_size_bytes: 30 } },
      { environment: { name: "debian:12-base", image_sha256: "ab", image_size_bytes: 30 } },
      { state_disk_bytes: 4 * 2 ** 30 },
    ];
    const keys = variants.map((v) => templateKey(inputs(v)));
    for (const key of keys) expect(key).not.toBe(base);
    expect(new Set(keys).size).toBe(keys.length);
    expect(templateKey(inputs())).toBe(base);
  });

  it("covers the VM's shape through QEMU's argv", () => {
    const argv = (shape: Partial<TemplateShape>) =>
      qemuArgs(canonicalSpec({ ...SHAPE, ...shape }), 2_000_000);
    const base = JSON.stringify(argv({}));
    const network = {
      mac: "52:54:00:70:79:72",
      subnet: "10.0.2.0/24",
      gateway: "10.0.2.2",
      dns: "10.0.2.3",
    };
    for (const shape of [
      { kind: "late" as const },
      { vcpuCount: 2 },
      { memMib: 512 },
      { acceleration: "kvm" as const },
      { network },
    ]) {
      expect(JSON.stringify(argv(shape))).not.toBe(base);
    }
    // Template boots park before the root mount (early) or after init (late); the real
    // hostname comes with hello.
    expect(base).toContain("pyro.park=1");
    expect(JSON.stringify(argv({ kind: "late" }))).toContain("pyro.park=late");
  });
});

describe("template cache", () => {
  it("builds once, then verifies and reuses what it built", async () => {
    const calls = { count: 0 };
    const first = await ensureTemplate(inputs(), fakeBuilder(calls), { root });
    expect(first).toMatchObject({ ok: true, built: true });
    const second = await ensureTemplate(inputs(), fakeBuilder(calls), { root });
    expect(second).toMatchObject({ ok: true, built: false });
    expect(calls.count).toBe(1);
    const manifest = JSON.parse(
      readFileSync(templateFiles(templateKey(inputs()), root).manifest, "utf8"),
    );
    expect(manifest).toMatchObject({ key: templateKey(inputs()), memory: { size_bytes: 4096 } });
  });

  it("racing first uses build one template", async () => {
    const calls = { count: 0 };
    const results = await Promise.all(
      [0, 1, 2].map(() => ensureTemplate(inputs(), fakeBuilder(calls, 200), { root })),
    );
    expect(calls.count).toBe(1);
    expect(results.every((r) => r.ok)).toBe(true);
    expect(results.filter((r) => r.ok && r.built)).toHaveLength(1);
  });

  it.each([
    ["vmstate", "vmstate is 3 bytes, expected 12"],
    ["memory.ram", "memory.ram is 3 bytes, expected 4096"],
  ])("a truncated %s is refused, removed, and rebuilt by the next use", async (file, reason) => {
    const calls = { count: 0 };
    await ensureTemplate(inputs(), fakeBuilder(calls), { root });
    const key = templateKey(inputs());
    truncateSync(join(templateFiles(key, root).dir, file), 3);
    expect(await verifyTemplate(key, root)).toMatchObject({ ok: false, reason });
    const damaged = await ensureTemplate(inputs(), fakeBuilder(calls), { root });
    expect(damaged).toMatchObject({ ok: false });
    expect(damaged.ok || damaged.reason).toContain(reason);
    expect(calls.count).toBe(1);
    const rebuilt = await ensureTemplate(inputs(), fakeBuilder(calls), { root });
    expect(rebuilt).toMatchObject({ ok: true, built: true });
  });

  it("a late template's state disk is verified too; an early one keeps none", async () => {
    const late = inputs({ kind: "late" });
    const built = await ensureTemplate(late, fakeBuilder({ count: 0 }), { root });
    expect(built.ok && built.manifest.state_disk).toEqual({ size_bytes: 8192 });
    truncateSync(templateFiles(templateKey(late), root).stateDisk, 100);
    expect(await verifyTemplate(templateKey(late), root)).toMatchObject({
      ok: false,
      reason: "state.ext4 is 100 bytes, expected 8192",
    });
    const early = await ensureTemplate(inputs(), fakeBuilder({ count: 0 }), { root });
    expect(early.ok && early.manifest.state_disk).toBeNull();
  });

  it("a vmstate changed in place fails its sha256", async () => {
    await ensureTemplate(inputs(), fakeBuilder({ count: 0 }), { root });
    const key = templateKey(inputs());
    writeFileSync(templateFiles(key, root).vmstate, "device stat!");
    expect(await verifyTemplate(key, root)).toMatchObject({
      ok: false,
      reason: "vmstate does not match its sha256",
    });
  });

  it("a template whose manifest names another key is not used", async () => {
    await ensureTemplate(inputs(), fakeBuilder({ count: 0 }), { root });
    const key = templateKey(inputs());
    const other = templateKey(inputs({ agent: { version: "other", size: 1, mtime_ms: 1 } }));
    // The other key's directory holds this key's files, as a stale or copied cache would.
    await mkdir(templateFiles(other, root).dir, { recursive: true });
    for (const name of ["vmstate", "memory.ram", "template.json"]) {
      writeFileSync(
        join(templateFiles(other, root).dir, name),
        readFileSync(join(templateFiles(key, root).dir, name)),
      );
    }
    expect(await verifyTemplate(other, root)).toMatchObject({
      ok: false,
      reason: "template.json was built for another key",
    });
  });

  it.each([
    ["not JSON", "{"],
    ["without inputs", JSON.stringify({ key: "KEY" })],
  ])("a template.json %s is refused as damaged", async (_, text) => {
    await ensureTemplate(inputs(), fakeBuilder({ count: 0 }), { root });
    const key = templateKey(inputs());
    writeFileSync(templateFiles(key, root).manifest, text.replace("KEY", key));
    expect(await verifyTemplate(key, root)).toMatchObject({ ok: false, missing: false });
  });

  it("a failed build is remembered, so boots go cold without retrying until the delay", async () => {
    const calls = { count: 0 };
    const failing: TemplateBuilder = async () => {
      calls.count += 1;
      throw new Error("the guest never parked");
    };
    const first = await ensureTemplate(inputs(), failing, { root });
    expect(first.ok || first.reason).toContain("the guest never parked");
    const again = await ensureTemplate(inputs(), failing, { root });
    expect(again.ok || again.reason).toContain("building the memory template failed at");
    expect(calls.count).toBe(1);
    const later = await ensureTemplate(inputs(), fakeBuilder(calls), {
      root,
      now: () => Date.now() + TEMPLATE_RETRY_MS + 1,
    });
    expect(later).toMatchObject({ ok: true, built: true });
  });

  it("a failed restore removes the template and holds off a rebuild", async () => {
    const calls = { count: 0 };
    await ensureTemplate(inputs(), fakeBuilder(calls), { root });
    const key = templateKey(inputs());
    await recordTemplateFailure(key, "restore", "migration failed", root);
    expect((await verifyTemplate(key, root)).ok).toBe(false);
    const next = await ensureTemplate(inputs(), fakeBuilder(calls), { root });
    expect(next.ok || next.reason).toContain("restoring the memory template failed");
    expect(calls.count).toBe(1);
  });
});

describe("template prune", () => {
  it("keeps current templates and live builds; removes stale ones, failures and dead builds", async () => {
    const stale = inputs({ kernel: { key: "old", size: 1, mtime_ms: 1 } });
    await ensureTemplate(inputs(), fakeBuilder({ count: 0 }), { root });
    await ensureTemplate(stale, fakeBuilder({ count: 0 }), { root });
    const failedKey = templateKey(inputs({ state_disk_bytes: 1 }));
    await recordTemplateFailure(failedKey, "build", "no park", root);
    const deadBuild = join(root, `.build-abc-${spawnSync("true").pid}-0a0b0c`);
    const liveBuild = join(root, `.build-abc-${process.pid}-0a0b0c`);
    for (const dir of [deadBuild, liveBuild]) await mkdir(dir, { recursive: true });
    const result = await pruneTemplates(async (m) => m.inputs.kernel.key !== "old", root);
    expect(result.removed.sort()).toEqual(
      [
        templateFiles(templateKey(stale), root).dir,
        templateFiles(failedKey, root).dir,
        deadBuild,
      ].sort(),
    );
    expect((await verifyTemplate(templateKey(inputs()), root)).ok).toBe(true);
    expect(existsSync(liveBuild)).toBe(true);
  });
});
