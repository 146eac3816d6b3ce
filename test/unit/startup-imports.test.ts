/**
 * What pyro's processes load before they do any work (issue 10, "Start-up cost"): the
 * static import graph from each entry point, read from the sources. zod, the MCP SDK and
 * the managers cost hundreds of milliseconds to load, so the cheap paths reach them only
 * through a dynamic `import()` on first use. `npm run bench:startup` measures the result.
 */
import { readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { commandsFor } from "../../src/cli/program.js";

const SRC = resolve(import.meta.dirname, "../../src");

/** Value imports and re-exports (not `import type`), each statement's specifier. */
const STATIC_IMPORT =
  /^(?:import|export)\s+(?!type\s)(?:[\w*{}\s,$]+?\s+from\s+)?["']([^"']+)["'];?/gm;

/** Every source file, npm package and Node module an entry loads statically, transitively. */
function staticGraph(entry: string): { files: string[]; packages: string[]; builtins: string[] } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const builtins = new Set<string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    for (const [, spec] of readFileSync(file, "utf8").matchAll(STATIC_IMPORT)) {
      if (spec!.startsWith(".")) visit(resolve(dirname(file), spec!).replace(/\.js$/, ".ts"));
      else if (spec!.startsWith("node:")) builtins.add(spec!);
      else packages.add(packageName(spec!));
    }
  };
  visit(join(SRC, entry));
  return {
    files: [...files].map((file) => relative(SRC, file)).sort(),
    packages: [...packages].sort(),
    builtins: [...builtins].sort(),
  };
}

const packageName = (spec: string) =>
  spec
    .split("/")
    .slice(0, spec.startsWith("@") ? 2 : 1)
    .join("/");

describe("start-up import graph", () => {
  it("reads static imports and skips type-only ones (the reader itself)", () => {
    const text = [
      'import { a, type B } from "./a.js";',
      'import type { C } from "zod";',
      'export type { D } from "./d.js";',
      'export { e } from "./e.js";',
      "import {\n  f,\n  g,\n} from 'commander';",
      'import "./side.js";',
      '  const x = await import("./lazy.js");',
    ].join("\n");
    const specs = [...text.matchAll(STATIC_IMPORT)].map((m) => m[1]);
    expect(specs).toEqual(["./a.js", "./e.js", "commander", "./side.js"]);
  });

  it('import("pyro-mcp") loads no npm package and none of the core', () => {
    const { files, packages } = staticGraph("index.ts");
    expect(packages).toEqual([]);
    expect(files.filter((f) => /^(manager|workspace|vmm|shim|guest|env)\//.test(f))).toEqual([]);
    // Only these contract modules: errors and profile names, no operation schema.
    expect(files.filter((f) => f.startsWith("contract/"))).toEqual([
      "contract/errors.ts",
      "contract/profiles.ts",
    ]);
  });

  it("`pyro --version` loads commander and no contract schema or core module", () => {
    const { files, packages, builtins } = staticGraph("cli/main.ts");
    expect(packages).toEqual(["commander"]);
    // node:crypto and fs/promises (with the streams under it) cost tens of milliseconds.
    expect(builtins.filter((b) => /crypto|promises|stream/.test(b))).toEqual([]);
    expect(files.filter((f) => !/^(cli|util|sdk)\/|^contract\/errors\.ts$/.test(f))).toEqual([]);
    expect(files).not.toContain("cli/schema-options.ts");
    expect(commandsFor(["node", "pyro", "--version"])).toEqual([]);
  });

  it("a one-shot VM's calls load the VM core only: no workspace code, archives or diffs", () => {
    const { files, packages } = staticGraph("sdk/vm-core.ts");
    expect(packages).toEqual(["zod"]);
    expect(files.filter((f) => /^manager\/(workspace|shells|services|doctor)/.test(f))).toEqual([]);
    expect(files.filter((f) => f.startsWith("workspace/"))).toEqual([]);
  });

  it("the shim reaches its VMM's start without zod, the protocol or another driver", () => {
    const { files, packages } = staticGraph("shim/main.ts");
    expect(packages).toEqual([]);
    // The supervisor (and zod under it) is a dynamic import, after startVmm().
    expect(files).toEqual([
      "contract/errors.ts",
      "guest/park.ts",
      "shim/client-listener.ts",
      "shim/launch.ts",
      "shim/main.ts",
      "shim/vmm-start.ts",
      "vmm/memory.ts",
      "vmm/select.ts",
    ]);
    // Each driver is loaded only when chosen, and none of them loads zod.
    for (const driver of ["vmm/qemu.ts", "vmm/host-process.ts", "vmm/firecracker.ts"]) {
      expect(staticGraph(driver).packages).toEqual([]);
    }
  });
});

describe("which commands a command line loads", () => {
  const all = ["run", "env", "workspace", "doctor", "mcp"];
  it.each([
    [["run", "debian:12", "--", "true"], ["run"]],
    [["--json", "workspace", "list"], ["workspace"]],
    [["doctor", "--help"], ["doctor"]],
    [["-V"], []],
    [[], all],
    [["--help"], all],
    [["help", "run"], all],
    [["wrokspace"], all],
  ])("%j loads %j", (args, expected) => {
    expect(commandsFor(["node", "pyro", ...args])).toEqual(expected);
  });
});
