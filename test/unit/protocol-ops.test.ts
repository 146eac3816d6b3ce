import { afterEach, describe, expect, it } from "vitest";
import { ERROR_CODE_MEANINGS, ERROR_CODES, PyroError } from "../../src/contract/errors.js";
import { agentError, WIRE_ERROR_CODES } from "../../src/guest/errors.js";
import { FrameType } from "../../src/guest/frame.js";
import { AGENT_OPS, opNamed, SHIM_OPS } from "../../src/guest/ops/index.js";
import { readShellOutput } from "../../src/guest/shells.js";
import { exitRecord, fakeAgentClient, type AgentScript } from "../helpers/fake-agent.js";

/**
 * The typed protocol layer (src/guest/ops, client.ts, mux.ts, errors.ts) against a scripted
 * agent on a real socket: requests are checked before they leave, replies are parsed with
 * their op's schema, and whatever the guest sends is a value or a PyroError, never a cast.
 */

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

/** A client whose agent answers each op with `replies[op]` (a function of the call's message). */
async function clientAnswering(
  replies: Record<string, (message: Record<string, unknown>) => Record<string, unknown>>,
) {
  const script: AgentScript = (call) => {
    const reply = replies[String(call.message.op)];
    if (reply) call.reply(reply(call.message));
  };
  const connected = await fakeAgentClient(script, { defaultDeadlineMs: 5_000 });
  cleanups.push(connected.close);
  return connected;
}

const SERVICE = {
  name: "web",
  pid: 42,
  state: "running",
  exit_code: null,
  signal: null,
  started_at_ms: 1_700_000_000_000,
  ended_at_ms: null,
};
const SHELL_READ = {
  type: "result",
  shell_id: "sh-1",
  cursor: 0,
  next_cursor: 5,
  available: 5,
  truncated: false,
  state: "running",
  exit_code: null,
  signal: null,
};

describe("op definitions", () => {
  it("name every op after its table key and find them by wire name only", () => {
    for (const [key, op] of Object.entries(AGENT_OPS)) expect(op.name).toBe(key);
    for (const op of Object.values(SHIM_OPS)) expect(op.name).toMatch(/^shim\./);
    expect(opNamed("service_logs")).toBe(AGENT_OPS.service_logs);
    // A Map, not an object: a guest- or client-chosen name cannot reach a prototype key.
    for (const name of ["__proto__", "constructor", "toString", 7, null])
      expect(opNamed(name)).toBeUndefined();
  });
});

describe("typed requests", () => {
  it("send the op's name with the fields and resolve with the parsed result", async () => {
    const { client, agent } = await clientAnswering({
      service_list: () => ({ type: "result", services: [SERVICE] }),
    });
    const listed = await client.request(AGENT_OPS.service_list, {});
    expect(listed.services).toEqual([SERVICE]);
    expect(agent.calls[0]?.message).toEqual({ op: "service_list" });
  });

  it("refuse a request outside the op's schema with invalid_argument before sending it", async () => {
    const { client, agent } = await clientAnswering({
      service_list: () => ({ type: "result", services: [] }),
    });
    const refused = [
      client.request(AGENT_OPS.service_start, { name: "../etc", argv: ["sh"] }),
      client.request(AGENT_OPS.shell_open, { shell_id: "sh-1", cols: 0 }),
      client.request(AGENT_OPS.shell_write, { shell_id: "sh-1", data: "é".repeat(20_000) }),
      client.request(AGENT_OPS.service_stop, { name: "web", grace_ms: -1 }),
      // Strict, like the agent's field allowlists: a misspelt field is not silently sent.
      client.request(AGENT_OPS.exec, { argv: ["true"], timeout_sec: 5 } as never),
    ];
    for (const request of refused)
      await expect(request).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(refused[0]).rejects.toThrow(/^service_start: name: /);
    await expect(refused[2]).rejects.toThrow(/data is over 32768 bytes/);
    await expect(refused[4]).rejects.toThrow(/timeout_sec/);
    await client.request(AGENT_OPS.service_list, {});
    expect(agent.ops).toEqual(["service_list"]);
  });

  it("turn a reply that breaks the op's schema into a guest_error naming the op and field", async () => {
    const { client } = await clientAnswering({
      service_start: () => ({ type: "result", name: "web", pid: -5, started_at_ms: 1 }),
      service_list: () => ({ type: "result", services: [{ ...SERVICE, state: "zombie" }] }),
      service_stop: () => ({ type: "result", name: "web", state: "exited", exit_code: 0 }),
      shell_read: () => ({ ...SHELL_READ, next_cursor: 9 }),
      shell_list: () => ({ type: "result", shells: "none" }),
      exec: () => exitRecord({ exit_code: 300 }),
    });
    const cases = [
      [client.request(AGENT_OPS.service_start, { name: "web", argv: ["x"] }), /service_start.*pid/],
      [client.request(AGENT_OPS.service_list, {}), /service_list.*services\.0\.state/],
      [client.request(AGENT_OPS.service_stop, { name: "web" }), /service_stop.*signal/],
      [
        client.request(AGENT_OPS.shell_read, { shell_id: "sh-1", cursor: 0 }),
        /cursors out of order/,
      ],
      [client.request(AGENT_OPS.shell_list, {}), /shell_list.*shells/],
      [client.exec({ argv: ["true"] }), /exec.*exit_code/],
    ] as const;
    for (const [request, message] of cases) {
      const error = await request.catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PyroError);
      expect(error).toMatchObject({ code: "guest_error", message: expect.stringMatching(message) });
    }
  });

  it("end only the request whose control frame is malformed, and keep the connection", async () => {
    const script: AgentScript = async (call) => {
      if (call.message.op === "service_list")
        return call.output(FrameType.control, Buffer.from("{not json"));
      call.reply({ type: "result", shells: [] });
    };
    const { client, close } = await fakeAgentClient(script);
    cleanups.push(close);
    await expect(client.request(AGENT_OPS.service_list, {})).rejects.toMatchObject({
      code: "guest_error",
      message: expect.stringMatching(/malformed control frame/),
    });
    await expect(client.request(AGENT_OPS.shell_list, {})).resolves.toEqual({
      type: "result",
      shells: [],
    });
  });

  it("keep streamed output within the op's caps and say what was dropped", async () => {
    const script: AgentScript = async (call) => {
      await call.output(FrameType.stdout, Buffer.from("0123456789"));
      await call.output(FrameType.stderr, Buffer.from("abc"));
      call.reply({ ...SHELL_READ, next_cursor: 4, available: 10 });
    };
    const { client, close } = await fakeAgentClient(script);
    cleanups.push(close);
    const read = await client.requestWithOutput(AGENT_OPS.shell_read, {
      shell_id: "sh-1",
      cursor: 0,
      max_bytes: 4,
    });
    expect(read.stdout.toString()).toBe("0123");
    expect([read.stdout_dropped, read.stderr.length, read.stderr_dropped]).toEqual([true, 0, true]);
  });

  it("fail a request whose data handler throws, and only that one", async () => {
    const script: AgentScript = async (call) => {
      await call.output(FrameType.stdout, Buffer.from("x"));
      call.reply({ type: "result", path: "a", size_bytes: 1, truncated: false });
    };
    const { client, close } = await fakeAgentClient(script);
    cleanups.push(close);
    const target = { root: "/workspace", path: "a" };
    const boom = client.request(AGENT_OPS.file_read, target, {
      onData: () => {
        throw new Error("handler failed");
      },
    });
    await expect(boom).rejects.toThrow("handler failed");
    await expect(client.request(AGENT_OPS.file_read, target)).resolves.toMatchObject({
      size_bytes: 1,
    });
  });

  it("fail every pending request with unavailable when the connection drops, and later ones at once", async () => {
    const script: AgentScript = (call) => {
      if (call.message.op === "shell_list") call.hangUp();
    };
    const { client, close } = await fakeAgentClient(script);
    cleanups.push(close);
    const pending = client.request(AGENT_OPS.service_list, {});
    const dropped = client.request(AGENT_OPS.shell_list, {});
    await expect(pending).rejects.toMatchObject({ code: "unavailable" });
    await expect(dropped).rejects.toMatchObject({ code: "unavailable" });
    await expect(client.request(AGENT_OPS.service_list, {})).rejects.toMatchObject({
      code: "unavailable",
    });
  });
});

describe("shell reads", () => {
  /** An agent that answers every shell_read with `bytes` and the cursors of `reply`. */
  async function shellAnswering(bytes: string, reply: Record<string, unknown>) {
    const script: AgentScript = async (call) => {
      if (bytes) await call.output(FrameType.stdout, Buffer.from(bytes));
      call.reply({ ...SHELL_READ, ...reply });
    };
    const connected = await fakeAgentClient(script);
    cleanups.push(connected.close);
    return connected.client;
  }

  it("return the bytes between the cursors the guest reports", async () => {
    const client = await shellAnswering("hello", { cursor: 3, next_cursor: 8, available: 8 });
    const read = await readShellOutput(client, { shell_id: "sh-1", cursor: 3 });
    expect([read.data.toString(), read.cursor, read.next_cursor]).toEqual(["hello", 3, 8]);
  });

  it("accept a later start only when the ring dropped bytes, or the cursor is past the end", async () => {
    const dropped = { cursor: 5, next_cursor: 10, available: 10, truncated: true };
    const client = await shellAnswering("world", dropped);
    expect((await readShellOutput(client, { shell_id: "sh-1", cursor: 1 })).cursor).toBe(5);
    const end = await shellAnswering("", { cursor: 10, next_cursor: 10, available: 10 });
    expect((await readShellOutput(end, { shell_id: "sh-1", cursor: 99 })).data.length).toBe(0);
  });

  it("refuse bytes that do not fill the cursors, or a start the rules do not allow", async () => {
    const short = await shellAnswering("hel", { cursor: 0, next_cursor: 5, available: 5 });
    await expect(readShellOutput(short, { shell_id: "sh-1", cursor: 0 })).rejects.toMatchObject({
      code: "guest_error",
      message: expect.stringMatching(/sent 3 bytes for cursors 0\.\.5/),
    });
    const moved = await shellAnswering("hello", { cursor: 0, next_cursor: 5, available: 9 });
    await expect(readShellOutput(moved, { shell_id: "sh-1", cursor: 2 })).rejects.toMatchObject({
      code: "guest_error",
      message: expect.stringMatching(/started at cursor 0 for a read from 2/),
    });
  });
});

describe("wire error codes", () => {
  it("map through one table: busy and unsupported keep codes of their own", () => {
    const mapped = (code: string) =>
      agentError({ type: "error", code, message: "m", errno: 17 }).code;
    expect(mapped("busy")).toBe("busy");
    expect(mapped("unsupported")).toBe("unsupported");
    expect(mapped("not_found")).toBe("not_found");
    expect(mapped("invalid_argument")).toBe("invalid_argument");
    // The agent's own failure is the guest's, not the host's; unknown codes are too.
    expect(mapped("internal")).toBe("guest_error");
    expect(mapped("launch_missiles")).toBe("guest_error");
    expect(mapped("__proto__")).toBe("guest_error");
    for (const code of WIRE_ERROR_CODES.values()) expect(ERROR_CODES).toContain(code);
  });

  it("say what to do about an unsupported op and keep the guest's code and errno", () => {
    const error = agentError({
      type: "error",
      code: "unsupported",
      message: 'unknown op "shell_open"',
      errno: 95,
    });
    expect(error.message).toMatch(/^unknown op "shell_open": .*rebuild the environment/);
    expect(error.details).toEqual({ guest_code: "unsupported", errno: 95 });
  });

  it("give every host code a meaning that tells a caller what to do", () => {
    expect(Object.keys(ERROR_CODE_MEANINGS).sort()).toEqual([...ERROR_CODES].sort());
    expect(ERROR_CODE_MEANINGS.busy).toMatch(/stop or close something/);
  });

  it("reach the caller of a typed request as that code", async () => {
    const { client } = await clientAnswering({
      service_start: (message) => ({
        type: "error",
        code: "busy",
        message: `service ${String(message.name)} is already running`,
      }),
    });
    await expect(
      client.request(AGENT_OPS.service_start, { name: "web", argv: ["sleep", "9"] }),
    ).rejects.toMatchObject({ code: "busy", message: "service web is already running" });
  });
});
