import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  debianMirror,
  parseDeb822Sources,
  parseOneLineSources,
  pickMirror,
} from "../../src/env/apt-mirror.js";

// Placeholder hosts: pyro never names a real mirror; it reads the host's apt sources.
const DEB822 = `Types: deb
# a snapshot comment
URIs: http://archive.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://archive.example/debian-security
Suites: bookworm-security
Components: main
`;

describe("the Debian mirror comes from the host's apt configuration", () => {
  const dirs: string[] = [];
  afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

  async function aptTree(list: string, sources: Record<string, string>) {
    const root = await mkdtemp(join(tmpdir(), "pyro-apt-"));
    dirs.push(root);
    const dir = join(root, "sources.list.d");
    await mkdir(dir);
    await writeFile(join(root, "sources.list"), list);
    for (const [name, text] of Object.entries(sources)) await writeFile(join(dir, name), text);
    return { list: join(root, "sources.list"), dir };
  }

  it("reads deb822 stanzas and skips the security archive", () => {
    expect(pickMirror(parseDeb822Sources(DEB822), "bookworm")).toBe(
      "http://archive.example/debian",
    );
    expect(pickMirror(parseDeb822Sources(DEB822), "trixie")).toBeUndefined();
  });

  it("reads one-line sources with options and comments", () => {
    const text = [
      "# deb http://commented.example/debian bookworm main",
      "deb-src http://src.example/debian bookworm main",
      "deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian/ bookworm main",
    ].join("\n");
    expect(pickMirror(parseOneLineSources(text), "bookworm")).toBe("http://one.example/debian");
  });

  it("ignores disabled stanzas", () => {
    const text = `Enabled: no\nTypes: deb\nURIs: http://off.example/debian\nSuites: bookworm\n`;
    expect(pickMirror(parseDeb822Sources(text), "bookworm")).toBeUndefined();
  });

  it("prefers PYRO_DEBIAN_MIRROR, then sources.list, then sources.list.d", async () => {
    const sources = await aptTree("", { "debian.sources": DEB822 });
    expect(await debianMirror("bookworm", {}, sources)).toBe("http://archive.example/debian");
    expect(
      await debianMirror("bookworm", { PYRO_DEBIAN_MIRROR: "http://set.example/d" }, sources),
    ).toBe("http://set.example/d");
    const both = await aptTree("deb http://list.example/debian bookworm main\n", {
      "d.sources": DEB822,
    });
    expect(await debianMirror("bookworm", {}, both)).toBe("http://list.example/debian");
  });

  it("says how to set one when the host has none", async () => {
    const none = await aptTree("", {});
    await expect(debianMirror("bookworm", {}, none)).rejects.toMatchObject({
      code: "unavailable",
      message: expect.stringContaining("PYRO_DEBIAN_MIRROR"),
    });
  });
});
