import { describe, expect, it } from "vitest";
import { PyroError } from "../../src/contract/errors.js";
import { SessionRegistry } from "../../src/mcp/session-scope.js";

/** A registry whose releases are recorded instead of deleting anything. */
function registry(missing: string[] = []) {
  const released: string[] = [];
  const sessions = new SessionRegistry((kind, id) => {
    if (missing.includes(id)) {
      return Promise.reject(new PyroError("not_found", `${kind} ${id} does not exist`));
    }
    released.push(`${kind}:${id}`);
    return Promise.resolve();
  });
  return { sessions, released };
}

const create = (id: string) => () => Promise.resolve({ workspace_id: id, state: "started" });
const listing =
  (...ids: string[]) =>
  () =>
    Promise.resolve({ workspaces: ids.map((workspace_id) => ({ workspace_id })) });
const ok = () => Promise.resolve({});

describe("MCP session scope", () => {
  it("a session lists only what it created or named", async () => {
    const { sessions } = registry();
    const a = sessions.open();
    const b = sessions.open();
    await a.call("workspace_create", {}, create("ws_a"));
    await b.call("workspace_create", {}, create("ws_b"));
    const all = listing("ws_a", "ws_b", "ws_cli");
    expect(await a.call("workspace_list", {}, all)).toEqual({
      workspaces: [{ workspace_id: "ws_a" }],
    });
    await a.call("workspace_status", { workspace_id: "ws_cli" }, ok);
    expect(await a.call("workspace_list", {}, all)).toEqual({
      workspaces: [{ workspace_id: "ws_a" }, { workspace_id: "ws_cli" }],
    });
  });

  it("an ended session releases what it created, and only that", async () => {
    const { sessions, released } = registry();
    const a = sessions.open();
    await a.call("workspace_create", {}, create("ws_a"));
    await a.call("vm_create", {}, () => Promise.resolve({ vm_id: "vm_a" }));
    await a.call("workspace_exec", { workspace_id: "ws_cli" }, ok);
    expect(await a.end()).toEqual([]);
    expect(released.sort()).toEqual(["vm:vm_a", "workspace:ws_a"]);
  });

  it("a failed call names nothing: a guessed id is not adopted", async () => {
    const { sessions, released } = registry();
    const a = sessions.open();
    const b = sessions.open();
    await a.call("workspace_create", {}, create("ws_a"));
    const refused = () => Promise.reject(new PyroError("not_found", "no such workspace"));
    await expect(b.call("workspace_status", { workspace_id: "ws_a" }, refused)).rejects.toThrow();
    await a.end();
    expect(released).toEqual(["workspace:ws_a"]);
  });

  it("a workspace another session used is handed off: released when its last holder ends", async () => {
    const { sessions, released } = registry();
    const a = sessions.open();
    const b = sessions.open();
    await a.call("workspace_create", {}, create("ws_a"));
    await b.call("workspace_exec", { workspace_id: "ws_a" }, ok);
    await a.end();
    expect(released).toEqual([]);
    expect(await b.call("workspace_list", {}, listing("ws_a"))).toEqual({
      workspaces: [{ workspace_id: "ws_a" }],
    });
    await b.end();
    expect(released).toEqual(["workspace:ws_a"]);
  });

  it("what a session deleted is not released again; a vanished one is no error", async () => {
    const { sessions, released } = registry(["ws_gone"]);
    const a = sessions.open();
    await a.call("workspace_create", {}, create("ws_a"));
    await a.call("workspace_create", {}, create("ws_gone"));
    await a.call("vm_create", {}, () => Promise.resolve({ vm_id: "vm_a" }));
    await a.call("workspace_delete", { workspace_id: "ws_a" }, ok);
    await a.call("vm_exec", { vm_id: "vm_a" }, ok);
    expect(await a.end()).toEqual([]);
    expect(released).toEqual([]);
  });

  it("a session's end waits for its calls in flight: a creation that finishes late is released first", async () => {
    // The server exits once every end() resolved (SIGTERM): a workspace_create still
    // booting then must not outlive it.
    const { sessions, released } = registry();
    const a = sessions.open();
    let finish: (value: unknown) => void = () => {};
    const slow = a.call("workspace_create", {}, () => new Promise((r) => (finish = r)));
    let releasedAtEnd: string[] | undefined;
    const ending = a.end().then(() => (releasedAtEnd = [...released]));
    await new Promise((r) => setImmediate(r));
    expect(releasedAtEnd).toBeUndefined();
    finish({ workspace_id: "ws_late" });
    await ending;
    expect(releasedAtEnd).toEqual(["workspace:ws_late"]);
    await expect(slow).resolves.toMatchObject({ workspace_id: "ws_late" });
  });

  it("a call in flight that fails does not keep its session's end from finishing", async () => {
    const { sessions } = registry();
    const a = sessions.open();
    let fail: (error: Error) => void = () => {};
    const slow = a.call("vm_run", {}, () => new Promise((_, reject) => (fail = reject)));
    const ending = a.end();
    fail(new PyroError("timeout", "cancelled"));
    await expect(slow).rejects.toThrow("cancelled");
    expect(await ending).toEqual([]);
  });

  it("a release that fails is reported, and the others still happen", async () => {
    const released: string[] = [];
    const sessions = new SessionRegistry((kind, id) => {
      if (id === "ws_stuck") return Promise.reject(new Error("disk busy"));
      released.push(id);
      return Promise.resolve();
    });
    const a = sessions.open();
    await a.call("workspace_create", {}, create("ws_stuck"));
    await a.call("workspace_create", {}, create("ws_ok"));
    const errors = await a.end();
    expect(errors.map((e) => e.message)).toEqual(["disk busy"]);
    expect(released).toEqual(["ws_ok"]);
  });

  it("vm_reap_expired reports only the session's own VMs", async () => {
    const { sessions } = registry();
    const a = sessions.open();
    await a.call("vm_create", {}, () => Promise.resolve({ vm_id: "vm_a" }));
    const reaped = () =>
      Promise.resolve({
        removed: [
          { vm_id: "vm_a", reason: "expired" },
          { vm_id: "vm_other", reason: "expired" },
        ],
      });
    expect(await a.call("vm_reap_expired", {}, reaped)).toEqual({
      removed: [{ vm_id: "vm_a", reason: "expired" }],
    });
  });
});
