import { describe, expect, it } from "vitest";
import { ERROR_CODES, PyroError } from "../../src/contract/errors.js";
import { MAX_OUTPUT_BYTES_LIMIT, MAX_TIMER_MS, requestBounds } from "../../src/guest/bounds.js";
import { agentError, parseFromGuest } from "../../src/guest/client.js";
import { decodeControl, MAX_CONTROL_BYTES, ProtocolError } from "../../src/guest/frame.js";
import {
  AGENT_OPS,
  ExitRecordSchema,
  HelloResultSchema,
  SHIM_OPS,
  type AnyOp,
} from "../../src/guest/ops/index.js";
import { exitCodeOf } from "../../src/manager/command-result.js";
import { exitRecord } from "../helpers/fake-agent.js";
import { propertyRuns, propertySeed, random } from "../helpers/random.js";

/**
 * The host's validation of control messages from the (untrusted) guest: decoding, the exit
 * record, hello and error replies. Valid messages are mutated at random; whatever comes
 * out, the host either refuses it with its own error type or accepts a value within bounds.
 */

const RUNS = propertyRuns(400);
const SEED = propertySeed(9001);
const TIMEOUT_MS = Math.max(5_000, RUNS * 5);

type Rng = () => number;
const int = (rng: Rng, below: number) => Math.floor(rng() * below);
const pick = <T>(rng: Rng, items: readonly T[]): T => items[int(rng, items.length)]!;

const VALID_EXIT = exitRecord({ stdout_bytes: 10, duration_ms: 12.5 });
const VALID_HELLO = {
  type: "result",
  protocol: 1,
  agent_version: "0.2.0",
  pid1: true,
  init_errors: [],
};
const VALID_ERROR = { type: "error", code: "not_found", message: "path a does not exist" };

/** Values a hostile guest might put anywhere. */
function hostileValue(rng: Rng, depth = 0): unknown {
  switch (int(rng, 12)) {
    case 0:
      return null;
    case 1:
      return rng() < 0.5;
    case 2:
      return pick(rng, [-1, 0, 1, 124, 255, 256, 2 ** 31, 2 ** 53 - 1, 2 ** 53 + 2, 1e308, 0.5]);
    case 3:
      return "A".repeat(int(rng, 20));
    case 4:
      return pick(rng, ["KILL", "kill", "SIG KILL", "\u001b[2J", "TERM\n", "", "x".repeat(5000)]);
    case 5:
      return depth < 3
        ? Array.from({ length: int(rng, 4) }, () => hostileValue(rng, depth + 1))
        : [];
    case 6:
      return depth < 3 ? { nested: hostileValue(rng, depth + 1) } : {};
    case 7:
      return pick(rng, ERROR_CODES);
    case 8:
      return pick(rng, ["busy", "unsupported", "internal", "__proto__", "constructor"]);
    case 9:
      return "x".repeat(4000 + int(rng, 200));
    case 10:
      return pick(rng, ["exit", "result", "error", "progress"]);
    default:
      return int(rng, 1000);
  }
}

/** Numbers at the edges (and, now and then, not a number at all). */
function hostileNumber(rng: Rng): unknown {
  if (rng() < 0.2) return hostileValue(rng);
  const edges = [0, 1, -1, 0.5, 2 ** 30, 2 ** 30 + 1, 2 ** 31 - 1, 2 ** 31, 2 ** 53 - 1, 2 ** 53];
  return rng() < 0.5 ? pick(rng, edges) : int(rng, 2 ** 32);
}

const KEYS = [
  ...Object.keys(VALID_EXIT),
  ...Object.keys(VALID_HELLO),
  "code",
  "message",
  "errno",
  "__proto__",
  "constructor",
  "prototype",
];

/** A valid message with a few fields replaced, removed or added. */
function mutatedMessage(rng: Rng): Record<string, unknown> {
  const base = pick(rng, [VALID_EXIT, VALID_HELLO, VALID_ERROR]);
  const message: Record<string, unknown> = { ...base };
  for (let edits = int(rng, 4); edits > 0; edits--) {
    const key = pick(rng, KEYS);
    if (rng() < 0.2) delete message[key];
    else
      Object.defineProperty(message, key, {
        value: hostileValue(rng),
        enumerable: true,
        writable: true,
        configurable: true,
      });
  }
  return message;
}

/** JSON text of a message, sometimes with bytes flipped or cut, sometimes not JSON at all. */
function wireBytes(rng: Rng): Buffer {
  const text = Buffer.from(JSON.stringify(mutatedMessage(rng)), "utf8");
  const roll = rng();
  if (roll < 0.6) return text;
  if (roll < 0.75) return text.subarray(0, int(rng, text.length + 1));
  if (roll < 0.9) {
    const copy = Buffer.from(text);
    for (let i = 1 + int(rng, 3); i > 0 && copy.length; i--)
      copy[int(rng, copy.length)] = int(rng, 256);
    return copy;
  }
  return Buffer.from(pick(rng, ["[]", "null", "42", '"exit"', "", "{", "\u0000", "{}"]));
}

const SERVICE = {
  name: "web",
  pid: 7,
  state: "exited",
  exit_code: 1,
  signal: null,
  started_at_ms: 1,
  ended_at_ms: 2,
};
const SHELL = {
  shell_id: "sh-1",
  pid: 8,
  state: "running",
  cols: 120,
  rows: 30,
  available: 10,
  exit_code: null,
  signal: null,
};
const STATUS = {
  shim_pid: 1,
  vmm_pid: 2,
  state: "ready",
  acceleration: "tcg",
  agent_version: "0.2.0",
  timings: { boot_ms: 5 },
  error: null,
  stop_reason: null,
  updated_at: "2026-01-01T00:00:00.000Z",
};
const ok = (fields: Record<string, unknown> = {}) => ({ type: "result", ...fields });

/** A valid terminal frame of every op; an op added without one fails the property below. */
const VALID_REPLIES: Record<string, Record<string, unknown>> = {
  hello: VALID_HELLO,
  shutdown: ok(),
  signal: ok(),
  exec: VALID_EXIT,
  file_list: ok({ path: ".", count: 2, truncated: false }),
  file_manifest: ok({ path: ".", count: 2, truncated: false, hashed_bytes: 3 }),
  file_read: ok({ path: "a", size_bytes: 3, truncated: false }),
  file_write: ok({ path: "a", bytes_written: 3 }),
  file_delete: ok({ path: "a", deleted: true }),
  mkdir: ok({ path: "a" }),
  service_start: ok({ name: "web", pid: 7, started_at_ms: 1 }),
  service_list: ok({ services: [SERVICE] }),
  service_stop: ok({ name: "web", state: "exited", exit_code: null, signal: "KILL", killed: true }),
  service_logs: ok({ name: "web", stdout_truncated: false, stderr_truncated: true }),
  shell_open: ok({ shell_id: "sh-1", pid: 8 }),
  shell_read: ok({
    shell_id: "sh-1",
    cursor: 2,
    next_cursor: 5,
    available: 9,
    truncated: true,
    state: "exited",
    exit_code: 0,
    signal: null,
  }),
  shell_write: ok({ shell_id: "sh-1", bytes_written: 3 }),
  shell_signal: ok({ shell_id: "sh-1" }),
  shell_close: ok({ shell_id: "sh-1", closed: true }),
  shell_list: ok({ shells: [SHELL] }),
  "shim.status": ok(STATUS),
  "shim.wait_ready": ok(STATUS),
  "shim.claim": ok(),
  "shim.stop": ok(STATUS),
  "shim.pause": ok({ ...STATUS, state: "paused" }),
  "shim.fork": ok({ stopped_ms: 120 }),
  net_configure: ok(),
  "shim.network_info": ok({
    policy: "egress+published-ports",
    guest_address: "10.0.2.15",
    prefix_len: 24,
    gateway: "10.0.2.2",
    dns: ["10.0.2.3"],
    allowed_domains: [],
    proxy_port: null,
    published_ports: [{ guest_port: 80, host_port: 8080, host_address: "127.0.0.1" }],
    refusals: { refused_total: 1, refused_by_reason: { host_loopback: 1 } },
  }),
  "shim.publish_port": ok({ guest_port: 80, host_port: 8080, host_address: "127.0.0.1" }),
  "shim.unpublish_port": ok(),
};
const ALL_OPS: AnyOp[] = [...Object.values(AGENT_OPS), ...Object.values(SHIM_OPS)];

/** A valid reply with fields (or fields of its list entries) replaced, removed or added. */
function mutatedReply(rng: Rng, base: Record<string, unknown>): Record<string, unknown> {
  const reply: Record<string, unknown> = structuredClone(base);
  for (let edits = int(rng, 4); edits > 0; edits--) {
    const list = Object.values(reply).find(Array.isArray) as Record<string, unknown>[] | undefined;
    const entry: unknown = list?.[0];
    const isObject = typeof entry === "object" && entry !== null && !Array.isArray(entry);
    const target = isObject && rng() < 0.4 ? (entry as Record<string, unknown>) : reply;
    const key = pick(rng, [...Object.keys(target), ...KEYS]);
    if (rng() < 0.2) delete target[key];
    else
      Object.defineProperty(target, key, {
        value: rng() < 0.5 ? hostileNumber(rng) : hostileValue(rng),
        enumerable: true,
        writable: true,
        configurable: true,
      });
  }
  return reply;
}

describe(`control message validation properties (seed ${SEED}, ${RUNS} runs)`, () => {
  it(
    "decodes to one plain object or refuses with ProtocolError",
    () => {
      let accepted = 0;
      let refused = 0;
      for (let run = 0; run < RUNS; run++) {
        const rng = random(SEED + run);
        const bytes = wireBytes(rng);
        let decoded: unknown;
        try {
          decoded = decodeControl(bytes);
        } catch (error) {
          expect(error, `seed ${SEED + run}`).toBeInstanceOf(ProtocolError);
          refused += 1;
          continue;
        }
        accepted += 1;
        expect(
          typeof decoded === "object" && decoded !== null && !Array.isArray(decoded),
          `seed ${SEED + run}`,
        ).toBe(true);
      }
      expect(() => decodeControl(Buffer.alloc(MAX_CONTROL_BYTES + 1, 0x20))).toThrow(ProtocolError);
      expect({ accepted: accepted > 0, refused: refused > 0 }, `seed ${SEED}`).toEqual({
        accepted: true,
        refused: true,
      });
    },
    TIMEOUT_MS,
  );

  it(
    "accepts only exit records within bounds, and their exit status is a shell status",
    () => {
      let accepted = 0;
      let refused = 0;
      for (let run = 0; run < RUNS; run++) {
        const rng = random(SEED + run);
        const message = mutatedMessage(rng);
        const where = `seed ${SEED + run}: ${JSON.stringify(message).slice(0, 200)}`;
        let exit;
        try {
          exit = parseFromGuest(ExitRecordSchema, message);
        } catch (error) {
          expect(error, where).toBeInstanceOf(PyroError);
          expect((error as PyroError).code, where).toBe("guest_error");
          refused += 1;
          continue;
        }
        accepted += 1;
        expect(
          exit.exit_code === null ||
            (Number.isInteger(exit.exit_code) && exit.exit_code >= 0 && exit.exit_code <= 255),
          where,
        ).toBe(true);
        expect(exit.signal === null || /^[A-Z0-9]{1,16}$/.test(exit.signal), where).toBe(true);
        expect(exit.stdout_bytes >= 0 && exit.stderr_bytes >= 0, where).toBe(true);
        const status = exitCodeOf(exit);
        expect(Number.isInteger(status) && status >= 0 && status <= 255, where).toBe(true);
      }
      expect({ accepted: accepted > 0, refused: refused > 0 }, `seed ${SEED}`).toEqual({
        accepted: true,
        refused: true,
      });
    },
    TIMEOUT_MS,
  );

  it(
    "maps any error or hello reply to the host's own codes and bounded text",
    () => {
      for (let run = 0; run < RUNS; run++) {
        const rng = random(SEED + run);
        const message = mutatedMessage(rng);
        const where = `seed ${SEED + run}`;
        const error = agentError(message);
        expect(error, where).toBeInstanceOf(PyroError);
        expect(ERROR_CODES, where).toContain(error.code);
        expect(error.message.length, where).toBeLessThanOrEqual(4096);
        try {
          const hello = parseFromGuest(HelloResultSchema, message);
          expect(hello.agent_version.length, where).toBeLessThanOrEqual(64);
          expect(hello.init_errors.length, where).toBeLessThanOrEqual(64);
        } catch (caught) {
          expect(caught, where).toBeInstanceOf(PyroError);
        }
      }
      // A "__proto__" key from the guest stays an own property of its message.
      expect(Object.keys(Object.prototype)).toEqual([]);
    },
    TIMEOUT_MS,
  );

  it(
    "parses any reply of any op into that op's result or refuses it as a guest_error",
    () => {
      expect(Object.keys(VALID_REPLIES).sort()).toEqual(ALL_OPS.map((op) => op.name).sort());
      for (const op of ALL_OPS)
        expect(op.result.safeParse(VALID_REPLIES[op.name]).success, op.name).toBe(true);
      const outcomes = new Map<string, { accepted: number; refused: number }>();
      for (let run = 0; run < RUNS; run++) {
        const rng = random(SEED + run);
        const op = pick(rng, ALL_OPS);
        const reply =
          rng() < 0.1 ? VALID_REPLIES[op.name]! : mutatedReply(rng, VALID_REPLIES[op.name]!);
        const where = `seed ${SEED + run}: ${op.name} ${JSON.stringify(reply).slice(0, 200)}`;
        const outcome = outcomes.get(op.name) ?? { accepted: 0, refused: 0 };
        outcomes.set(op.name, outcome);
        let parsed: unknown;
        try {
          parsed = parseFromGuest(op.result, reply, op.name);
        } catch (error) {
          expect(error, where).toBeInstanceOf(PyroError);
          expect((error as PyroError).code, where).toBe("guest_error");
          expect((error as PyroError).message, where).toContain(op.name);
          outcome.refused += 1;
          continue;
        }
        outcome.accepted += 1;
        // What was accepted is a value of the op's type: parsing it again changes nothing.
        expect(op.result.parse(parsed), where).toEqual(parsed);
      }
      const neverRefused = [...outcomes].filter(([, o]) => o.refused === 0 && o.accepted > 20);
      expect(neverRefused, `seed ${SEED}`).toEqual([]);
    },
    TIMEOUT_MS,
  );

  it(
    "derives finite deadlines and caps from any request fields",
    () => {
      for (let run = 0; run < RUNS; run++) {
        const rng = random(SEED + run);
        const request = {
          op: pick(rng, ["exec", "file_read", "file_list", "signal", hostileValue(rng)]),
          timeout_ms: hostileNumber(rng),
          max_output_bytes: hostileNumber(rng),
          max_bytes: hostileNumber(rng),
        };
        const bounds = requestBounds(request);
        const where = `seed ${SEED + run}: ${JSON.stringify(request).slice(0, 200)}`;
        // Node fires a timer above 2^31-1 ms at once: a deadline must stay below that.
        expect(bounds.deadlineMs > 0 && bounds.deadlineMs <= MAX_TIMER_MS, where).toBe(true);
        for (const cap of [bounds.stdoutCap, bounds.stderrCap]) {
          expect(Number.isInteger(cap) && cap >= 0 && cap <= MAX_OUTPUT_BYTES_LIMIT, where).toBe(
            true,
          );
        }
      }
    },
    TIMEOUT_MS,
  );
});
