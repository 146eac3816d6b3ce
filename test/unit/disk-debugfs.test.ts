import { describe, expect, it } from "vitest";
import { isPyroError } from "../../src/contract/errors.js";
import {
  deviceNumbers,
  fastLinkTarget,
  isOpaqueBlock,
  parseCatBlocks,
  parseListings,
  splitBlocks,
} from "../../src/disk/debugfs.js";
import { isRuntimeOnly, normalizeDiskPath } from "../../src/disk/merged.js";

// debugfs output is parsed from text a guest can shape through its file names; these are
// the shapes it prints, written out by hand (test/host/disk-tools.test.ts runs the real one).
const ls = (ino: number, ...records: string[]) =>
  `debugfs: ls -p <${ino}>\n/${ino}/040755/0/0/.//\n/2/040755/0/0/..//\n${records.join("")}\n`;

const errorCode = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    return isPyroError(error) ? error.code : String(error);
  }
  return "no error";
};

describe("parseListings", () => {
  it("reads each listing in order, without . and ..", () => {
    const output =
      ls(12, "/13/100644/1000/100/a.txt/5/\n", "/14/040700/0/0/dir//\n") +
      ls(14, "/15/120777/0/0/link/11/\n");
    const listings = parseListings("img", output, [12, 14]);
    expect(listings.get(12)).toEqual([
      { ino: 13, mode: 0o100644, uid: 1000, gid: 100, name: "a.txt", size: 5 },
      { ino: 14, mode: 0o040700, uid: 0, gid: 0, name: "dir", size: 0 },
    ]);
    expect(listings.get(14)).toEqual([
      { ino: 15, mode: 0o120777, uid: 0, gid: 0, name: "link", size: 11 },
    ]);
  });

  it("keeps a name with newlines whole, even one that imitates records and commands", () => {
    // A name cannot hold "/" (the kernel refuses it), but newlines and command text it can.
    const possible = "x\n\ndebugfs: ls -p <99>\n";
    const output = ls(12, `/13/100644/0/0/${possible}/3/\n`, "/14/100644/0/0/real/1/\n");
    expect(
      parseListings("img", output, [12])
        .get(12)!
        .map((e) => e.name),
    ).toEqual([possible, "real"]);
  });

  it("decodes names as UTF-8 from the raw bytes", () => {
    const raw = Buffer.from("/13/100644/0/0/café/1/\n", "utf8").toString("latin1");
    expect(parseListings("img", ls(12, raw), [12]).get(12)![0]!.name).toBe("café");
  });

  it("gives a directory debugfs could not list no entries", () => {
    const output = "debugfs: ls -p <9>\n\n" + ls(12, "/13/100644/0/0/a/1/\n");
    const listings = parseListings("img", output, [9, 12]);
    expect(listings.get(9)).toEqual([]);
    expect(listings.get(12)).toHaveLength(1);
  });

  it("refuses output that is not debugfs's shape", () => {
    expect(errorCode(() => parseListings("img", "garbage", [12]))).toBe("guest_error");
    const torn = `debugfs: ls -p <12>\n/13/100644/0/0/a/1/\nstray text\n`;
    expect(errorCode(() => parseListings("img", torn, [12]))).toBe("guest_error");
    const missing = ls(12);
    expect(errorCode(() => parseListings("img", missing, [12, 14]))).toBe("guest_error");
  });
});

describe("stat, ea_list and cat blocks", () => {
  const stat = (ino: number, body: string) => `debugfs: stat <${ino}>\n${body}\n`;

  it("splits blocks by the commands in order", () => {
    const commands = ["stat <5>", "stat <6>"];
    const blocks = splitBlocks("img", stat(5, "one") + stat(6, "two"), commands);
    expect(blocks).toEqual(["one\n", "two\n"]);
    expect(errorCode(() => splitBlocks("img", stat(5, "one"), commands))).toBe("guest_error");
  });

  it("reads a fast link's target by its length, quotes and newlines included", () => {
    const target = 'a"b\nc';
    const block = `Inode: 5   Type: symlink\nFast link dest: "${target}"\n`;
    expect(fastLinkTarget(block, target.length)).toBe(target);
    expect(fastLinkTarget(block, target.length - 1)).toBeUndefined();
    expect(fastLinkTarget("no target here", 3)).toBeUndefined();
  });

  it("tells a whiteout (0:0) from another character device", () => {
    expect(deviceNumbers("(New-style) Device major/minor number: 00:00 (hex 00:00)")).toEqual({
      major: 0,
      minor: 0,
    });
    expect(deviceNumbers("Device major/minor number: 01:03 (hex 01:03)")).toEqual({
      major: 1,
      minor: 3,
    });
    expect(deviceNumbers("Type: regular")).toBeUndefined();
  });

  it("sees the opaque mark only as its own attribute line", () => {
    expect(isOpaqueBlock('Extended attributes:\n  trusted.overlay.opaque (1) = "y"\n')).toBe(true);
    expect(
      isOpaqueBlock(
        'Extended attributes:\n  user.x (33) = "trusted.overlay.opaque (1) = \\"y\\""\n',
      ),
    ).toBe(false);
    expect(isOpaqueBlock("")).toBe(false);
  });

  it("reads slow link targets by length and refuses a short one", () => {
    const output = "debugfs: cat <7>\nabcdebugfs: cat <8>\nxy";
    expect(
      parseCatBlocks("img", output, [
        { ino: 7, size: 3 },
        { ino: 8, size: 2 },
      ]),
    ).toEqual(
      new Map([
        [7, "abc"],
        [8, "xy"],
      ]),
    );
    expect(
      errorCode(() =>
        parseCatBlocks("img", output, [
          { ino: 7, size: 5 },
          { ino: 8, size: 2 },
        ]),
      ),
    ).toBe("guest_error");
  });
});

describe("disk paths", () => {
  it("normalises to an absolute path and refuses .. and NUL", () => {
    expect(normalizeDiskPath("/")).toBe("/");
    expect(normalizeDiskPath("etc//./hosts")).toBe("/etc/hosts");
    expect(normalizeDiskPath("/workspace/")).toBe("/workspace");
    expect(errorCode(() => normalizeDiskPath("/etc/../root"))).toBe("invalid_argument");
    expect(errorCode(() => normalizeDiskPath("/a\0b"))).toBe("invalid_argument");
  });

  it("hides pyro's runtime paths under /run and nothing else", () => {
    for (const name of ["pyro", "pyro-secrets", "pyro-shells", "pyro-services"])
      expect(isRuntimeOnly("/run", name)).toBe(true);
    expect(isRuntimeOnly("/run", "lock")).toBe(false);
    expect(isRuntimeOnly("/workspace", "pyro-secrets")).toBe(false);
  });
});
