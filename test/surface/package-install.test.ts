/**
 * The installable package (issue 11): `npm pack`, then `npm install -g` of the tarball
 * into an empty prefix, gives a `pyro` that works from the files the package ships (it
 * builds kernel, agent and environments from them, or finds them in the cache by the
 * same content hashes as this checkout). Needs a built `dist/` (`npm run build`) and the
 * package's dependencies from npm's cache or registry.
 */
import { execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { beforeAll, describe, expect, it } from "vitest";
import { agentVersion } from "../../src/env/agent.js";
import { isolatedHome } from "../helpers/guest.js";
import { tempDir } from "../helpers/temp.js";

const run = promisify(execFile);
const REPO = resolve(".");
const { version } = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as {
  version: string;
};
const home = isolatedHome();
const work = tempDir("pyro-package-");
const prefix = join(work, "prefix");
const pyro = join(prefix, "bin", "pyro");
/** Quiet, and offline when npm's cache already holds the dependencies. */
const NPM_FLAGS = ["--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"];
let tarball = "";

/** Runs the installed `pyro` the way a user's shell does; never throws on a failing exit. */
function installed(args: string[]): Promise<{ code: number | null; stdout: string }> {
  return new Promise((done, reject) => {
    const child = spawn(pyro, args, { stdio: ["ignore", "pipe", "inherit"], cwd: work });
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) => done({ code, stdout }));
  });
}

beforeAll(async () => {
  const packed = await run("npm", ["pack", "--pack-destination", work, "--silent"], { cwd: REPO });
  tarball = join(work, packed.stdout.trim().split("\n").pop()!);
  await run("npm", ["install", "-g", "--prefix", prefix, ...NPM_FLAGS, tarball], { cwd: work });
});

describe("the packed package", () => {
  it("ships the built code and the sources the host builds from, not the tests", async () => {
    const { stdout } = await run("tar", ["-tzf", tarball]);
    const files = stdout.split("\n").map((f) => f.replace(/^package\//, ""));
    for (const needed of [
      "dist/cli/main.js",
      "dist/index.js",
      "dist/index.d.ts",
      "dist/shim/main.js",
      "agent/Makefile",
      "agent/src/main.c",
      "kernel/pyro-guest.config",
      "environments/debian-12.json",
      "protocol/spec.json",
      "README.md",
    ]) {
      expect(files, needed).toContain(needed);
    }
    expect(files.filter((f) => /^(test|src|bench|scripts|agent\/tests)\//.test(f))).toEqual([]);
  });

  it("installs a `pyro` that prints the package version", async () => {
    expect(await installed(["--version"])).toEqual({ code: 0, stdout: `${version}\n` });
  });

  it("runs a command in a microVM, then `doctor` finds the agent this checkout builds", async () => {
    const result = await installed(["run", "debian:12", "--", "sh", "-c", "echo packaged"]);
    expect(result).toEqual({ code: 0, stdout: "packaged\n" });
    const doctor = await installed(["doctor", "--json"]);
    expect(doctor.code).toBe(0);
    const report = JSON.parse(doctor.stdout) as {
      ok: boolean;
      checks: { name: string; status: string; detail: string }[];
    };
    expect(report.ok).toBe(true);
    // The installed copy hashes the agent sources it ships: the same version as here.
    const agent = report.checks.find((c) => c.name === "guest agent");
    expect(agent).toMatchObject({ status: "pass", detail: `built: ${await agentVersion()}` });
  });

  it("`npx pyro-mcp mcp serve`, the MCP config one-liner, serves pyro's tools", async () => {
    // npx resolves `pyro-mcp` to the package's one bin, `pyro`; in a project that depends
    // on the package it runs the installed copy (elsewhere it would fetch it first).
    const project = join(work, "project");
    await run("npm", ["install", "--prefix", project, ...NPM_FLAGS, tarball], { cwd: work });
    // The examples' config, with `--no-install` for `-y` so the test never fetches.
    const config = JSON.parse(
      readFileSync(join(REPO, "examples/mcp/cursor/.cursor/mcp.json"), "utf8"),
    ) as { mcpServers: { pyro: { command: string; args: string[] } } };
    const { command, args } = config.mcpServers.pyro;
    expect([command, ...args]).toEqual(["npx", "-y", "pyro-mcp", "mcp", "serve"]);
    const transport = new StdioClientTransport({
      command,
      args: [...args.map((a) => (a === "-y" ? "--no-install" : a)), "--profile", "vm-run"],
      cwd: project,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", PYRO_HOME: home },
      stderr: "inherit",
    });
    const client = new Client({ name: "package-test", version: "0" });
    await client.connect(transport);
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toEqual(["vm_run"]);
      expect(client.getServerVersion()).toMatchObject({ name: "pyro", version });
    } finally {
      await client.close();
    }
  });
});
