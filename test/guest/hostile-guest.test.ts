import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Pyro } from "../../src/index.js";
import { eventually, isolatedHome, processesMentioning } from "../helpers/guest.js";

/**
 * A guest that answers pyro's `tar -c` with an archive of its choosing: the guest is
 * untrusted, and its tar is just a file in /workspace's VM that any exec can replace.
 */

const home = isolatedHome();
const pyro = new Pyro();
const scratch = mkdtempSync(join(tmpdir(), "pyro-hostile-test-"));
/** A host directory the hostile archive points a link at; it must never be touched. */
const hostDir = join(scratch, "host");
const hostFile = join(hostDir, "src", "main.py");
let id = "";

beforeAll(async () => {
  mkdirSync(join(hostDir, "src"), { recursive: true });
  writeFileSync(hostFile, "host original\n");
  const created = await pyro.createWorkspace({ environment: "debian:12-base", mem_mib: 512 });
  id = created.workspace_id;
});

afterAll(async () => {
  if (id) await pyro.deleteWorkspace({ workspace_id: id }).catch(() => {});
  expect(await eventually(() => processesMentioning(home).length === 0)).toBe(true);
  rmSync(scratch, { recursive: true, force: true });
});

async function sh(script: string): Promise<void> {
  const result = await pyro.execWorkspace({ workspace_id: id, command: ["sh", "-c", script] });
  expect(result.exit_code, result.stderr).toBe(0);
}

/** Replaces the guest's tar with a script that always archives /staged with these options. */
async function replaceGuestTar(tarOptions: string): Promise<void> {
  await sh(
    [
      "set -e",
      "[ -e /usr/bin/tar.real ] || mv /usr/bin/tar /usr/bin/tar.real",
      "rm -rf /staged && mkdir /staged",
      `ln -s ${hostDir} /staged/proj`,
      "ln -s /usr /staged/data",
      `printf '#!/bin/sh\\nexec /usr/bin/tar.real ${tarOptions} -f - -C /staged proj data\\n' > /usr/bin/tar`,
      "chmod 755 /usr/bin/tar",
    ].join("\n"),
  );
}

describe("export from a real guest", () => {
  it("drops group and other write bits from what it exports (umask 022)", async () => {
    await sh("mkdir pub && echo hi > pub/open.txt && chmod 777 pub pub/open.txt");
    await sh("echo x > shared && chmod 666 shared");
    const dir = join(scratch, "pub");
    await pyro.exportWorkspace({ workspace_id: id, path: "pub", output_path: dir });
    expect(statSync(dir).mode & 0o7777).toBe(0o755);
    expect(statSync(join(dir, "open.txt")).mode & 0o7777).toBe(0o755);
    const file = join(scratch, "shared");
    await pyro.exportWorkspace({ workspace_id: id, path: "shared", output_path: file });
    expect(statSync(file).mode & 0o7777).toBe(0o644);
  });
});

describe("a guest whose tar answers with a crafted archive", () => {
  it("cannot make export move a host file through a link (proj -> host dir)", async () => {
    await replaceGuestTar("-c");
    const output = join(scratch, "main.py");
    await expect(
      pyro.exportWorkspace({ workspace_id: id, path: "proj/src/main.py", output_path: output }),
    ).rejects.toMatchObject({
      code: "guest_error",
      message: expect.stringContaining("has a symlink at /workspace/proj, where a directory"),
    });
    expect(readFileSync(hostFile, "utf8")).toBe("host original\n");
    expect(existsSync(output)).toBe(false);
  });

  it("cannot make export walk the host's /usr through a link (data -> /usr)", async () => {
    const output = join(scratch, "data");
    await expect(
      pyro.exportWorkspace({ workspace_id: id, path: "data", output_path: output }),
    ).rejects.toMatchObject({
      code: "invalid_argument",
      message: expect.stringContaining("/workspace/data is a symlink"),
    });
    expect(existsSync(output)).toBe(false);
  });

  it("shows links planted in /workspace in a diff as inert entries", async () => {
    // The diff reads the agent's manifest, not the tar: the links are planted for real.
    await sh(`ln -s ${hostDir} proj && ln -s /usr data`);
    const diff = await pyro.diffWorkspace({ workspace_id: id });
    expect(diff.entries.filter((e) => e.artifact_type === "symlink").map((e) => e.path)).toEqual(
      expect.arrayContaining(["data", "proj"]),
    );
    expect(readFileSync(hostFile, "utf8")).toBe("host original\n");
  });

  it("takes only the asked-for files from a crafted archive in a diff, never through its links", async () => {
    // Over 64 changed files: the diff asks the (replaced) tar for them in one archive.
    await sh("mkdir many && for i in $(seq 70); do echo $i > many/f$i; done");
    const diff = await pyro.diffWorkspace({ workspace_id: id });
    expect(diff.patch).not.toContain("host original");
    expect(diff.entries.some((e) => e.path.startsWith("proj/") || e.path.startsWith("data/"))).toBe(
      false,
    );
    expect(readFileSync(hostFile, "utf8")).toBe("host original\n");
  });

  it("cannot send a compressed capture", async () => {
    await replaceGuestTar("-c -z");
    await expect(
      pyro.exportWorkspace({
        workspace_id: id,
        path: "proj/src/main.py",
        output_path: join(scratch, "gz"),
      }),
    ).rejects.toMatchObject({
      code: "guest_error",
      message: expect.stringContaining("it is compressed; a plain tar was expected"),
    });
    expect(readFileSync(hostFile, "utf8")).toBe("host original\n");
  });
});
