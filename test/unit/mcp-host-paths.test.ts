import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { ListRootsRequestSchema, type CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { isPyroError } from "../../src/contract/errors.js";
import { OPERATIONS, type McpProfile } from "../../src/contract/operations.js";
import { HOST_PATH_FIELDS, resolveHostPath } from "../../src/manager/host-paths.js";
import { allowedDirectories, startDirectoryRoots } from "../../src/mcp/roots.js";
import { createServer, type CreateServerOptions } from "../../src/mcp/server.js";
import { Pyro } from "../../src/sdk/pyro.js";

/**
 * Layout, all under one temp dir:
 *   project/            the server's root
 *     sub/  inside.txt
 *     escape   -> ../outside            a link inside the root pointing out of it
 *     dangling -> ../outside/new.txt    writing through it would create new.txt outside
 *     loop     -> loop
 *   outside/secret.txt  what a hostile call wants to overwrite or read
 *   extra/              a directory only the client's roots or an allow-list name
 */
const base = realpathSync(mkdtempSync(join(tmpdir(), "mcp-host-paths-")));
const project = join(base, "project");
const outside = join(base, "outside");
const extra = join(base, "extra");
const secret = join(outside, "secret.txt");
const home = join(base, "home");
const previousHome = process.env.PYRO_HOME;
// No workspace exists: a path that passes the check reaches the workspace lookup (not_found).
const NO_WORKSPACE = "ws_000000000000";

beforeAll(() => {
  for (const dir of [join(project, "sub"), outside, extra, home])
    mkdirSync(dir, { recursive: true });
  writeFileSync(join(project, "inside.txt"), "inside\n");
  writeFileSync(secret, "host secret\n");
  symlinkSync("../outside", join(project, "escape"));
  symlinkSync("../outside/new.txt", join(project, "dangling"));
  symlinkSync("loop", join(project, "loop"));
  process.env.PYRO_HOME = home;
});
afterAll(() => {
  if (previousHome === undefined) delete process.env.PYRO_HOME;
  else process.env.PYRO_HOME = previousHome;
  rmSync(base, { recursive: true, force: true });
});

interface ClientRootsSetup {
  /** The client's current roots (directories); the test may change it. */
  dirs: string[];
  /** Answer the next `roots/list` with an error instead. */
  failNext?: boolean;
  listChanged: boolean;
  /** How many `roots/list` requests the server sent. */
  asked: number;
}

/** A real MCP client on the real server over the SDK's linked in-memory pair. */
async function connect(options: CreateServerOptions = {}, roots?: ClientRootsSetup) {
  const server = createServer({ hostPathRoots: [project], ...options });
  const capabilities = roots ? { roots: { listChanged: roots.listChanged } } : {};
  const client = new Client({ name: "pyro-host-paths-test", version: "0" }, { capabilities });
  if (roots) {
    client.setRequestHandler(ListRootsRequestSchema, () => {
      roots.asked += 1;
      if (roots.failNext) {
        roots.failNext = false;
        throw new Error("roots are not ready");
      }
      return {
        roots: [
          ...roots.dirs.map((dir) => ({ uri: pathToFileURL(dir).href })),
          // Another machine's directory: ignored, not mistaken for a local one.
          { uri: `file://elsewhere.invalid${outside}` },
        ],
      };
    });
  }
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await Promise.all([server.connect(serverSide), client.connect(clientSide)]);
  return client;
}

const text = (result: CallToolResult) =>
  result.content.map((c) => (c.type === "text" ? c.text : "")).join("\n");

async function call(client: Client, name: string, args: Record<string, unknown>) {
  return text((await client.callTool({ name, arguments: args })) as CallToolResult);
}

const exportTo = (client: Client, output_path: string) =>
  call(client, "workspace_export", {
    workspace_id: NO_WORKSPACE,
    path: "src",
    output_path,
    overwrite: true,
  });

/** The refusal a model reads: the code, the path, the roots and the flag that widens them. */
function expectRefused(message: string, path: string, roots: string[] = [project]) {
  expect(message).toMatch(/^\[invalid_argument\] /);
  expect(message).toContain(path);
  for (const root of roots) expect(message).toContain(root);
  expect(message).toContain("--allow-host-path");
}

/** The check let the path through: the call went on and found no such workspace. */
function expectPassed(message: string) {
  expect(message).toMatch(/^\[not_found\] /);
}

describe("resolveHostPath", () => {
  it("follows a link inside a directory out of it", async () => {
    expect(await resolveHostPath(join(project, "escape/secret.txt"))).toBe(secret);
  });

  it("applies .. after the link before it, as the kernel does", async () => {
    // Lexically project/escape/.. is project; on disk it is the parent of outside/.
    expect(await resolveHostPath(`${project}/escape/..`)).toBe(base);
  });

  it("resolves a dangling link to where a write through it would land", async () => {
    expect(await resolveHostPath(join(project, "dangling"))).toBe(join(outside, "new.txt"));
  });

  it("resolves relative paths from the given directory and keeps missing tails", async () => {
    expect(await resolveHostPath("sub/../new/dir", project)).toBe(join(project, "new/dir"));
    expect(await resolveHostPath("./escape/x/y", project)).toBe(join(outside, "x/y"));
  });

  it("refuses a symlink loop", async () => {
    await expect(resolveHostPath(join(project, "loop"))).rejects.toMatchObject({
      code: "invalid_argument",
    });
  });
});

describe("MCP host paths without client roots", () => {
  it("refuses exporting over a host file outside the roots and leaves it untouched", async () => {
    const client = await connect();
    expectRefused(await exportTo(client, secret), secret);
    expect(readFileSync(secret, "utf8")).toBe("host secret\n");
  });

  it("refuses a .. escape out of the root", async () => {
    const client = await connect();
    const path = `${project}/sub/../../outside/secret.txt`;
    expectRefused(await exportTo(client, path), path);
  });

  it("refuses a symlink inside the root that points outside, for every host path", async () => {
    const client = await connect({ profile: "workspace-full" });
    const through = join(project, "escape/secret.txt");
    const refusal = await exportTo(client, through);
    expectRefused(refusal, through);
    expect(refusal).toContain(`resolves to ${secret}`);
    expectRefused(await exportTo(client, join(project, "dangling")), "dangling");
    expect(existsSync(join(outside, "new.txt"))).toBe(false);
    const escape = join(project, "escape");
    expectRefused(
      await call(client, "workspace_sync_push", {
        workspace_id: NO_WORKSPACE,
        source_path: escape,
      }),
      escape,
    );
    const create = { environment: "debian:12-base" };
    expectRefused(await call(client, "workspace_create", { ...create, seed_path: escape }), escape);
    const secrets = [{ name: "TOKEN", file_path: secret }];
    expectRefused(await call(client, "workspace_create", { ...create, secrets }), secret);
    expect(workspacesIn(home)).toEqual([]);
  });

  it("lets paths under the root through, relative ones from the server's directory", async () => {
    const client = await connect();
    expectPassed(await exportTo(client, join(project, "sub/out.txt")));
    expectPassed(
      await call(client, "workspace_sync_push", {
        workspace_id: NO_WORKSPACE,
        source_path: join(project, "sub"),
      }),
    );
    // createServer's default root is the process's directory, as for `pyro mcp serve`.
    const byDefault = await connectDefault();
    expectPassed(await exportTo(byDefault, "out.txt"));
    expectRefused(await exportTo(byDefault, join(project, "out.txt")), project, [process.cwd()]);
  });

  it("widens to every directory it is given (--allow-host-path)", async () => {
    const client = await connect({ hostPathRoots: [project, relative(process.cwd(), extra)] });
    expectPassed(await exportTo(client, join(extra, "out.txt")));
    expectRefused(await exportTo(client, secret), secret, [project, extra]);
  });
});

describe("MCP host paths with client roots", () => {
  it("honours the client's roots and asks again after roots/list_changed", async () => {
    const roots: ClientRootsSetup = { dirs: [extra], listChanged: true, asked: 0 };
    const client = await connect({}, roots);
    expectPassed(await exportTo(client, join(extra, "out.txt")));
    expectPassed(await exportTo(client, join(project, "out.txt")));
    expectRefused(await exportTo(client, secret), secret, [project, extra]);
    expect(roots.asked).toBe(1);
    roots.dirs = [];
    await client.sendRootsListChanged();
    expectRefused(await exportTo(client, join(extra, "out.txt")), "out.txt");
    expect(roots.asked).toBe(2);
  });

  it("asks on every call when the client cannot announce changes", async () => {
    const roots: ClientRootsSetup = { dirs: [extra], listChanged: false, asked: 0 };
    const client = await connect({}, roots);
    expectPassed(await exportTo(client, join(extra, "out.txt")));
    roots.dirs = [];
    expectRefused(await exportTo(client, join(extra, "out.txt")), "out.txt");
    expect(roots.asked).toBe(2);
  });

  it("a failed roots/list counts as no client roots and is asked again", async () => {
    const roots: ClientRootsSetup = { dirs: [extra], listChanged: true, asked: 0, failNext: true };
    const client = await connect({}, roots);
    expectRefused(await exportTo(client, join(extra, "out.txt")), "out.txt");
    expectPassed(await exportTo(client, join(extra, "out.txt")));
    expect(roots.asked).toBe(2);
  });

  it("a link inside a client root that points outside is still refused", async () => {
    const roots: ClientRootsSetup = { dirs: [project], listChanged: true, asked: 0 };
    const client = await connect({ hostPathRoots: [] }, roots);
    expectRefused(await exportTo(client, join(project, "escape/secret.txt")), secret);
    expect(readFileSync(secret, "utf8")).toBe("host secret\n");
  });

  it("calls without a host path never ask for roots", async () => {
    const roots: ClientRootsSetup = { dirs: [extra], listChanged: false, asked: 0 };
    const client = await connect({}, roots);
    await call(client, "workspace_status", { workspace_id: NO_WORKSPACE });
    expect(roots.asked).toBe(0);
  });
});

describe("the SDK facade", () => {
  it("is unrestricted by default and confined with hostPathRoots", async () => {
    const params = { workspace_id: NO_WORKSPACE, path: "src", output_path: secret };
    await expect(new Pyro().exportWorkspace({ ...params, overwrite: true })).rejects.toMatchObject({
      code: "not_found",
    });
    const confined = new Pyro({ hostPathRoots: [project] });
    const error = await confined.exportWorkspace(params).catch((e: unknown) => e);
    expect(isPyroError(error) && error.details).toMatchObject({
      field: "output_path",
      resolved: secret,
      roots: [project],
    });
  });

  it("checks every host-path field it lists before any other work", async () => {
    const confined = new Pyro({ hostPathRoots: [project] });
    const calls: Record<string, () => Promise<unknown>> = {
      createWorkspace: () =>
        confined.createWorkspace({ environment: "debian:12-base", seed_path: secret }),
      "createWorkspace secrets": () =>
        confined.createWorkspace({
          environment: "debian:12-base",
          secrets: [{ name: "T", file_path: secret }],
        }),
      pushWorkspaceSync: () =>
        confined.pushWorkspaceSync({ workspace_id: NO_WORKSPACE, source_path: outside }),
      exportWorkspace: () =>
        confined.exportWorkspace({ workspace_id: NO_WORKSPACE, path: "a", output_path: secret }),
      exportWorkspaceDisk: () =>
        confined.exportWorkspaceDisk({ workspace_id: NO_WORKSPACE, output_path: secret }),
    };
    expect(Object.keys(calls).map((name) => name.split(" ")[0])).toEqual(
      expect.arrayContaining(Object.keys(HOST_PATH_FIELDS)),
    );
    for (const [name, run] of Object.entries(calls)) {
      const error = await run().catch((e: unknown) => e);
      expect(isPyroError(error) && error.details.roots, name).toEqual([project]);
    }
  });
});

describe("the host-path list and the server's own roots", () => {
  it("lists every *_path param of the contract", () => {
    for (const op of OPERATIONS) {
      const fields = pathFields(op.params).filter((field) => field.endsWith("_path"));
      expect(HOST_PATH_FIELDS[op.sdkMethod] ?? [], op.sdkMethod).toEqual(
        expect.arrayContaining(fields),
      );
    }
    expect(Object.values(HOST_PATH_FIELDS).flat()).toHaveLength(5);
  });

  it("does not take / as a start directory, and refuses allow-list typos", () => {
    expect(startDirectoryRoots("/")).toEqual([]);
    expect(startDirectoryRoots(project)).toEqual([project]);
    expect(allowedDirectories(["sub"], project)).toEqual([join(project, "sub")]);
    expect(() => allowedDirectories(["inside.txt"], project)).toThrow(/--allow-host-path/);
    expect(() => allowedDirectories(["nope"], project)).toThrow(/not an existing directory/);
  });
});

async function connectDefault(profile?: McpProfile) {
  const server = createServer(profile ? { profile } : {});
  const client = new Client({ name: "pyro-host-paths-test", version: "0" });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await Promise.all([server.connect(serverSide), client.connect(clientSide)]);
  return client;
}

/** The workspaces PYRO_HOME holds: none, when every call was refused before any work. */
function workspacesIn(dir: string): string[] {
  return existsSync(join(dir, "workspaces")) ? readdirSync(join(dir, "workspaces")) : [];
}

/** Every field name in a params schema, dotted through arrays and unions of objects. */
function pathFields(schema: z.ZodType, prefix = ""): string[] {
  if (schema instanceof z.ZodObject) {
    return Object.entries(schema.shape as Record<string, z.ZodType>).flatMap(([key, value]) => [
      `${prefix}${key}`,
      ...pathFields(value, `${prefix}${key}.`),
    ]);
  }
  if (schema instanceof z.ZodOptional || schema instanceof z.ZodDefault) {
    return pathFields(schema.unwrap() as z.ZodType, prefix);
  }
  if (schema instanceof z.ZodArray) return pathFields(schema.element as z.ZodType, prefix);
  if (schema instanceof z.ZodUnion) {
    return [...new Set(schema.options.flatMap((o) => pathFields(o as z.ZodType, prefix)))];
  }
  return [];
}
